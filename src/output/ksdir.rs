//! `out/kickstart/` is shared by two commands: `regbake render`/`kickstart`
//! write the single-appliance `ks.cfg` (and `oemdrv.img`), `regbake kickstart
//! --inventory` one `HOST.ks` (and `HOST-oemdrv.img`) per host. So the
//! directory is never swapped as a whole: each file is replaced atomically,
//! and a hidden manifest records which run wrote which file. A run removes
//! only files that it wrote itself earlier and no longer writes (hosts dropped
//! from the inventory); files a user put there are never listed, so never
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::tree::Entry;
use crate::util::fsx;

/// The family written here, under `out/`.
pub const DIR: &str = "kickstart";

/// The manifest's name inside [`DIR`].
pub const MANIFEST: &str = ".regbake.manifest";

/// Which run owns a file of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// `regbake render`, `regbake kickstart` (and every render of the whole
    /// appliance): `ks.cfg`, `oemdrv.img`.
    Single,
    /// `regbake kickstart --inventory`: `HOST.ks`, `HOST-oemdrv.img`.
    Inventory,
}

impl Owner {
    fn word(self) -> &'static str {
        match self {
            Owner::Single => "single",
            Owner::Inventory => "inventory",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "single" => Some(Owner::Single),
            "inventory" => Some(Owner::Inventory),
            _ => None,
        }
    }
}

/// File names by owner, as recorded.
type Manifest = BTreeMap<Owner, BTreeSet<String>>;

/// A name the manifest may hold: a plain file name of this directory (a
/// hand-edited manifest must not reach outside it).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name != MANIFEST
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut m = Manifest::new();
    // Lines it does not understand record nothing: at worst an old file stays.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((owner, name)) = line.split_once(' ') {
            if let Some(owner) = Owner::parse(owner) {
                if plain_name(name) {
                    m.entry(owner).or_default().insert(name.to_string());
                }
            }
        }
    }
    Ok(m)
}

/// Every file name the manifest in `dir` records, or `None` without one
/// (output of a regbake before the manifest).
pub fn recorded(dir: &Path) -> Result<Option<BTreeSet<String>>> {
    if !dir.join(MANIFEST).is_file() {
        return Ok(None);
    }
    Ok(Some(read_manifest(dir)?.into_values().flatten().collect()))
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let mut text = String::from(
        "# Files regbake wrote here, by the run that owns them. A run removes its own\n\
         # files it no longer writes; files not listed here are never touched.\n",
    );
    for (owner, names) in m {
        for name in names {
            text.push_str(owner.word());
            text.push(' ');
            text.push_str(name);
            text.push('\n');
        }
    }
    fsx::write_file(&dir.join(MANIFEST), text.as_bytes(), 0o644, 0o755, false)
}

/// The OEMDRV image that goes with a kickstart file name.
fn image_of(name: &str) -> Option<String> {
    if name == "ks.cfg" {
        Some("oemdrv.img".into())
    } else {
        name.strip_suffix(".ks").map(|h| format!("{h}-oemdrv.img"))
    }
}

/// `owner`'s new set of files for `dir`, each written to a hidden temp file
/// beside its place as it comes ([`Plan::add`]), so even 100,000
/// kickstarts are never all held in memory; nothing replaces a file before
/// [`Plan::commit`].
pub struct Plan {
    dir: PathBuf,
    owner: Owner,
    old: Manifest,
    names: BTreeSet<String>,
    staged: Vec<(fsx::Closed, u32)>,
    /// Kickstarts whose OEMDRV image an earlier run of this owner wrote.
    images: BTreeSet<String>,
}

impl Plan {
    /// Start the set of `owner`'s files for `dir`.
    pub fn new(dir: &Path, owner: Owner) -> Result<Self> {
        fsx::create_dir(dir, 0o755)?;
        let old = read_manifest(dir)?;
        let images = old
            .get(&owner)
            .into_iter()
            .flatten()
            .filter(|n| n.ends_with(".img") && dir.join(n.as_str()).is_file())
            .cloned()
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            owner,
            old,
            names: BTreeSet::new(),
            staged: vec![],
            images,
        })
    }

    /// One file of the set (a name of `dir`), staged unless it is there
    /// already as it is.
    pub fn add(&mut self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        let staged = stage(&self.dir, name, data, mode)?;
        self.add_staged(name, staged, mode);
        Ok(())
    }

    /// The directory this set is written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One file of the set that [`stage`] wrote (on any thread).
    pub fn add_staged(&mut self, name: &str, staged: Option<fsx::Closed>, mode: u32) {
        self.names.insert(name.to_string());
        if let Some(staged) = staged {
            self.staged.push((staged, mode));
        }
    }

    /// Put the set in place: the manifest first records the new files (so an
    /// interrupted run leaves none that the next would mistake for a user's),
    /// then each file is renamed into place, then this owner's files that
    /// are no longer in the set are removed (unless another owner wrote the
    /// same name since), and the manifest is written as it now is.
    ///
    /// A kickstart whose OEMDRV image an earlier run of the same owner wrote
    /// gets its image rebuilt (even when this run was not asked for images:
    /// a stale image would install an old appliance), unless this run wrote
    /// the image itself.
    pub fn commit(mut self) -> Result<()> {
        let rebuild: Vec<(String, String)> = self
            .names
            .iter()
            .filter_map(|n| image_of(n).map(|img| (n.clone(), img)))
            .filter(|(_, img)| self.images.contains(img) && !self.names.contains(img))
            .collect();
        self.names
            .extend(rebuild.iter().map(|(_, img)| img.clone()));
        let old_own = self.old.get(&self.owner).cloned().unwrap_or_default();
        let mut intent = self.old.clone();
        intent
            .entry(self.owner)
            .or_default()
            .extend(self.names.iter().cloned());
        if intent != self.old {
            write_manifest(&self.dir, &intent)?;
        }
        for (staged, mode) in self.staged {
            staged.commit(mode)?;
        }
        for (ks, img) in &rebuild {
            let path = self.dir.join(img);
            let data = std::fs::read(self.dir.join(ks))
                .with_context(|| format!("reading {}", self.dir.join(ks).display()))?;
            let image = crate::render::oemdrv::image(&data)
                .with_context(|| format!("rebuilding {}", path.display()))?;
            if !same_file(&path, &image, 0o600) {
                fsx::write_atomic(&path, &image, 0o600, false)?;
            }
        }
        for name in old_own.difference(&self.names) {
            if self
                .old
                .iter()
                .any(|(o, names)| *o != self.owner && names.contains(name))
            {
                continue;
            }
            let path = self.dir.join(name);
            match path.symlink_metadata() {
                Ok(md) if !md.is_dir() => std::fs::remove_file(&path)
                    .with_context(|| format!("removing the stale {}", path.display()))?,
                _ => {}
            }
        }
        let mut done = self.old;
        done.insert(self.owner, self.names);
        if done != intent {
            write_manifest(&self.dir, &done)?;
        }
        Ok(())
    }
}

/// Stage `data` as the file `name` of `dir` (a hidden temp file beside it,
/// closed), or `None` when the file is there already as it is.
pub fn stage(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<Option<fsx::Closed>> {
    let path = dir.join(name);
    if same_file(&path, data, mode) {
        return Ok(None);
    }
    let mut staged = fsx::Staged::beside(&path)?;
    staged
        .write_all(data)
        .with_context(|| format!("writing {}", staged.path().display()))?;
    Ok(Some(staged.close()))
}

/// Write `files` (names relative to `dir`) as `owner`'s complete set.
pub fn write(dir: &Path, files: &BTreeMap<String, Entry>, owner: Owner) -> Result<()> {
    let mut plan = Plan::new(dir, owner)?;
    for (name, e) in files {
        plan.add(name, &e.data, e.mode)?;
    }
    plan.commit()
}

/// Whether `path` already holds exactly `e` (content and mode): then it is
/// left as it is.
fn same_file(path: &Path, data: &[u8], mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file() && m.permissions().mode() & 0o7777 == mode && m.len() == data.len() as u64
    }) && std::fs::read(path).ok().as_deref() == Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> Entry {
        Entry {
            data: s.as_bytes().to_vec(),
            mode: 0o600,
        }
    }

    fn files(names: &[&str]) -> BTreeMap<String, Entry> {
        names
            .iter()
            .map(|n| (n.to_string(), entry(&format!("{n}\n"))))
            .collect()
    }

    #[test]
    fn owners_keep_each_others_files_and_drop_their_own_stale_ones() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("kickstart");
        write(&dir, &files(&["a.ks", "b.ks"]), Owner::Inventory).unwrap();
        write(&dir, &files(&["ks.cfg"]), Owner::Single).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        write(&dir, &files(&["a.ks"]), Owner::Inventory).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [MANIFEST, "a.ks", "ks.cfg", "notes.txt"]);
        let m = read_manifest(&dir).unwrap();
        assert_eq!(m[&Owner::Single], BTreeSet::from(["ks.cfg".to_string()]));
        assert_eq!(m[&Owner::Inventory], BTreeSet::from(["a.ks".to_string()]));
    }

    #[test]
    fn a_hand_edited_manifest_cannot_reach_outside() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("kickstart");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(d.path().join("precious"), "x").unwrap();
        std::fs::write(
            dir.join(MANIFEST),
            "single ../precious\nsingle .\nbogus line\nother x.ks\n",
        )
        .unwrap();
        write(&dir, &files(&["ks.cfg"]), Owner::Single).unwrap();
        assert!(d.path().join("precious").is_file());
    }

    #[test]
    fn image_names() {
        assert_eq!(image_of("ks.cfg").as_deref(), Some("oemdrv.img"));
        assert_eq!(image_of("reg1.ks").as_deref(), Some("reg1-oemdrv.img"));
        assert_eq!(image_of("oemdrv.img"), None);
    }
}
