//! `out`'s lock.

use std::path::Path;

use anyhow::Result;

use crate::util::lock::DirLock;

/// The exclusive lock on `out` (`out/.lock`, see [`DirLock`]): every
/// command that writes there holds it from reading the kept secrets to the
/// last rename, so two runs never mix their output or mint two CAs.
pub fn lock(out: &Path) -> Result<OutLock> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give another -o/--out, or move the file away",
            out.display()
        );
    }
    let created = !out.exists();
    Ok(OutLock {
        lock: DirLock::acquire(out, 0o755)?,
        created,
    })
}

/// Proof that this process holds `out`'s lock: what writes `out` asks for
/// one. A run that created `out` and wrote nothing there (a bad config, a
/// missing secret) removes it again: nothing half-written stays.
#[derive(Debug)]
pub struct OutLock {
    lock: DirLock,
    created: bool,
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
