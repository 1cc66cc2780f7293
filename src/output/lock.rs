//! `out`'s lock, and what it owns: the hidden staging, old and scratch dirs
//! of a run and its `.partial` temp files. Whoever takes the lock first
//! removes those a killed run left (in `out` only: a parent directory may
//! be another out dir, whose live files are its own run's).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::util::lock::DirLock;

/// The hidden dirs of a run in progress, inside `out`.
pub(super) const STAGING: &str = ".regbake-staging-";
pub(super) const OLD: &str = ".regbake-old-";
const SCRATCH: &str = ".regbake-scratch-";

/// Directories of `out/` where files are replaced one by one through
/// `.partial` temp files; `true`: with their subdirectories.
const PARTIAL_DIRS: &[(&str, bool)] = &[
    (super::ksdir::DIR, false),
    ("secrets", true),
    ("ssh", true),
    // A server's boot parameters, written under the lock.
    ("fleet", false),
];

/// The exclusive lock on `out` (`out/.lock`, see [`DirLock`]): every
/// command that writes there holds it from reading the kept secrets to the
/// last rename, so two runs never mix their output or mint two CAs. Taking
/// it removes what a killed run left (see the module doc).
pub fn lock(out: &Path) -> Result<OutLock> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give another -o/--out, or move the file away",
            out.display()
        );
    }
    let created = !out.exists();
    let lock = OutLock {
        lock: DirLock::acquire(out, 0o755)?,
        created,
    };
    remove_stale(out);
    Ok(lock)
}

/// Proof that this process holds `out`'s lock: what writes `out` asks for
/// one. A run that created `out` and wrote nothing there (a bad config, a
/// missing secret) removes it again: nothing half-written stays.
#[derive(Debug)]
pub struct OutLock {
    lock: DirLock,
    created: bool,
}

impl OutLock {
    /// A private dir (0700) inside `out` for a run's scratch files, which
    /// may hold the appliance's secrets: removed when dropped, and by the
    /// next holder of the lock when this run is killed.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir> {
        let out = self.lock.dir();
        tempfile::Builder::new()
            .prefix(SCRATCH)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(out)
            .with_context(|| format!("creating a scratch dir in {}", out.display()))
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        let dir = self.lock.dir();
        let only_lock = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name() == crate::util::lock::LOCK_FILE)
        });
        if self.created && only_lock {
            let _ = std::fs::remove_file(dir.join(crate::util::lock::LOCK_FILE));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Remove the staging, old and scratch dirs and the `.partial` files a
/// killed run left in `out` (they may hold secrets); with the lock held,
/// no run is writing them.
fn remove_stale(out: &Path) {
    let note = |what: &str, path: &Path, err: Option<std::io::Error>| match err {
        None => crate::util::log::note(&format!(
            "removed {what}{} left by an interrupted run",
            path.display()
        )),
        Some(e) => crate::util::log::note(&format!(
            "could not remove {what}{} left by an interrupted run: {e}",
            path.display()
        )),
    };
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = [STAGING, OLD, SCRATCH].iter().any(|p| name.starts_with(p));
            if ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                note("", &path, std::fs::remove_dir_all(&path).err());
            }
        }
    }
    for (dir, deep) in PARTIAL_DIRS {
        let dir = out.join(dir);
        let removed = crate::util::fsx::remove_partials(&dir, *deep);
        match removed.as_slice() {
            [] => {}
            [(path, _)] => note("", path, None),
            many => note(&format!("{} temp files in ", many.len()), &dir, None),
        }
    }
}
