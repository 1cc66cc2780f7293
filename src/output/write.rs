//! Writing a rendered tree into `out/`, all or nothing as far as the file
//! system allows: everything is prepared first (rendered families in a
//! private staging dir inside `out/`, kickstarts and changed state files as
//! hidden temp files beside their places), then committed by renames; the
//! families are swapped in together, and if one cannot be, those already
//! swapped are put back.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::ksdir;
use super::lock::{OutLock, OLD, STAGING};
use crate::tree::{Entry, Tree};
use crate::util::fsx::{self, Staged};

/// Directories of `out/` that hold state kept across renders; they are
/// written file by file and never swapped out.
const STATE_DIRS: &[&str] = &["secrets", "ssh"];

/// Write the tree into `out` as the single-appliance render.
pub fn write(tree: &Tree, out: &Path, lock: &OutLock) -> Result<()> {
    write_as(tree, out, ksdir::Owner::Single, lock)
}

/// Write the tree into `out`: rendered families (`overlay/`, `packer/`,
/// `overlay.tar.gz`, …) replace the previous ones; state files are replaced
/// one by one and never deleted; `kickstart/`, which two commands share, gets
/// `owner`'s set (see [`ksdir`]); anything else in `out` (boxes, logs) is
/// left alone.
pub fn write_as(tree: &Tree, out: &Path, owner: ksdir::Owner, lock: &OutLock) -> Result<()> {
    let mut w = Writer::new(out, owner, lock)?;
    for (rel, e) in &tree.files {
        w.add(rel, e)?;
    }
    w.commit()
}

/// A write of `out` being prepared: [`Writer::add`] each file, then
/// [`Writer::commit`]. Dropped uncommitted, it leaves `out` as it was.
pub struct Writer {
    out: PathBuf,
    staging: tempfile::TempDir,
    families: BTreeSet<String>,
    state: Vec<(Staged, u32, bool)>,
    kickstarts: Option<ksdir::Plan>,
    owner: ksdir::Owner,
}

impl Writer {
    /// Start a write of `out`, whose lock the caller holds.
    pub fn new(out: &Path, owner: ksdir::Owner, _lock: &OutLock) -> Result<Self> {
        fsx::create_dir(out, 0o755)?;
        // 0700: staged families hold the appliance's secrets.
        let staging = tempfile::Builder::new()
            .prefix(STAGING)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(out)
            .with_context(|| format!("creating a staging dir in {}", out.display()))?;
        Ok(Self {
            out: out.to_path_buf(),
            staging,
            families: BTreeSet::new(),
            state: vec![],
            kickstarts: None,
            owner,
        })
    }

    /// The kickstarts of `out/kickstart`, written as they come (a fleet adds
    /// them here one by one instead of holding them all).
    pub fn kickstarts(&mut self) -> Result<&mut ksdir::Plan> {
        if self.kickstarts.is_none() {
            self.kickstarts = Some(ksdir::Plan::new(&self.out.join(ksdir::DIR), self.owner)?);
        }
        self.kickstarts
            .as_mut()
            .context("the kickstart plan was just made")
    }

    /// Add one file (`rel` to `out`).
    pub fn add(&mut self, rel: &str, e: &Entry) -> Result<()> {
        let top = rel.split('/').next().unwrap_or(rel);
        if let Some(name) = rel.strip_prefix(&format!("{}/", ksdir::DIR)) {
            return self.kickstarts()?.add(name, &e.data, e.mode);
        }
        if STATE_DIRS.contains(&top) {
            return self.add_state(rel, e);
        }
        self.families.insert(top.to_string());
        write_new(&self.staging.path().join(rel), e)
    }

    fn add_state(&mut self, rel: &str, e: &Entry) -> Result<()> {
        let path = self.out.join(rel);
        let same_mode =
            std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == e.mode);
        if same_mode && std::fs::read(&path).ok().as_deref() == Some(&e.data[..]) {
            return Ok(());
        }
        // State directories hold private keys: 0700 all the way down.
        let dir = path.parent().context("file path has a parent")?;
        fsx::create_dir(dir, 0o700)?;
        let mut staged = Staged::beside(&path)?;
        staged
            .write_all(&e.data)
            .with_context(|| format!("writing {}", staged.path().display()))?;
        // Per-host certificates are cheap to issue again from the kept CA
        // (and a fleet has thousands): synced are the CA, keys and secrets
        // that clients and appliances already trust.
        let durable = !rel.starts_with("secrets/tls/hosts/");
        self.state.push((staged, e.mode, durable));
        Ok(())
    }

    /// Put everything in place: the families together (or none of them),
    /// then the state files and the kickstarts.
    pub fn commit(self) -> Result<()> {
        swap_in(&self.out, self.staging.path(), &self.families)?;
        for (staged, mode, durable) in self.state {
            staged.commit(mode, durable)?;
        }
        if let Some(plan) = self.kickstarts {
            plan.commit()
                .with_context(|| format!("writing {}", self.out.join(ksdir::DIR).display()))?;
        }
        Ok(())
    }
}

/// Write a file into the staging dir, which is private until it is renamed
/// into place: no temp file needed.
fn write_new(path: &Path, e: &Entry) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    fsx::create_dir(path.parent().context("file path has a parent")?, 0o755)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(e.mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode given to open.
    f.set_permissions(std::fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(&e.data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Replace each of `families` in `out` with its staged version: the old ones
/// are moved aside first, then the new ones moved in; a rename that fails
/// puts back what was already moved, so `out` has all new families or all
/// old ones.
fn swap_in(out: &Path, staging: &Path, families: &BTreeSet<String>) -> Result<()> {
    let old = tempfile::Builder::new()
        .prefix(OLD)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(out)
        .with_context(|| format!("creating a temp dir in {}", out.display()))?;
    let mut aside: Vec<&str> = vec![];
    let undo_aside = |aside: &[&str]| {
        for f in aside.iter().rev() {
            let _ = std::fs::rename(old.path().join(f), out.join(f));
        }
    };
    for f in families {
        let dest = out.join(f);
        if dest.symlink_metadata().is_err() {
            continue;
        }
        if let Err(e) = std::fs::rename(&dest, old.path().join(f)) {
            undo_aside(&aside);
            return Err(e).with_context(|| {
                format!(
                    "moving the old {} aside (nothing was replaced)",
                    dest.display()
                )
            });
        }
        aside.push(f);
    }
    let mut placed: Vec<&str> = vec![];
    for f in families {
        let dest = out.join(f);
        if let Err(e) = std::fs::rename(staging.join(f), &dest) {
            for p in placed.iter().rev() {
                let _ = std::fs::rename(out.join(p), staging.join(p));
            }
            undo_aside(&aside);
            return Err(e).with_context(|| {
                format!(
                    "moving {} into place (nothing was replaced)",
                    dest.display()
                )
            });
        }
        placed.push(f);
    }
    Ok(())
}
