//! `out/kickstart/` is shared by two commands: `regbake render`/`kickstart`
//! write the single-appliance `ks.cfg` (and `oemdrv.img`), `regbake kickstart
//! --inventory` one `HOST.ks` (and `HOST-oemdrv.img`) per host. So the
//! directory is never swapped as a whole: each file is replaced atomically,
//! and a hidden manifest records which run wrote which file. A run removes
//! only files that it wrote itself earlier and no longer writes (hosts dropped
//! from the inventory); files a user put there are never listed, so never
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

/// Write `files` (names relative to `dir`) as `owner`'s complete set.
///
/// An OEMDRV image written by an earlier run of the same owner is rebuilt
/// from its new kickstart even when this run was not asked for images (a
/// plain `regbake render` after `regbake kickstart --oemdrv`): a stale image
/// would install an old appliance.
pub fn write(dir: &Path, files: &BTreeMap<String, Entry>, owner: Owner) -> Result<()> {
    let old = read_manifest(dir)?;
    let old_own = old.get(&owner).cloned().unwrap_or_default();
    let mut files = files.clone();
    let kickstarts: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|(n, e)| image_of(n).map(|img| (img, e.data.clone())))
        .collect();
    for (img, ks) in kickstarts {
        if !files.contains_key(&img) && old_own.contains(&img) && dir.join(&img).is_file() {
            let data = crate::render::oemdrv::image(&ks)
                .with_context(|| format!("rebuilding {}", dir.join(&img).display()))?;
            files.insert(img, Entry { data, mode: 0o600 });
        }
    }
    let new_own: BTreeSet<String> = files.keys().cloned().collect();

    // Record the new files before writing them, so an interrupted run leaves
    // none that the next run would mistake for a user's.
    let mut intent = old.clone();
    intent
        .entry(owner)
        .or_default()
        .extend(new_own.iter().cloned());
    if intent != old {
        write_manifest(dir, &intent)?;
    }
    for (name, e) in &files {
        let path = dir.join(name);
        if !same_file(&path, e) {
            fsx::write_file(&path, &e.data, e.mode, 0o755, false)?;
        }
    }
    for name in old_own.difference(&new_own) {
        // Another owner may have written the same name since: it keeps it.
        if old
            .iter()
            .any(|(o, names)| *o != owner && names.contains(name))
        {
            continue;
        }
        let path = dir.join(name);
        match path.symlink_metadata() {
            Ok(md) if !md.is_dir() => std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?,
            _ => {}
        }
    }
    let mut done = old;
    done.insert(owner, new_own);
    if done != intent {
        write_manifest(dir, &done)?;
    }
    Ok(())
}

/// Whether `path` already holds exactly `e` (content and mode): then it is
/// left as it is.
fn same_file(path: &Path, e: &Entry) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o7777 == e.mode)
        && std::fs::read(path).ok().as_deref() == Some(&e.data[..])
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
