//! One exclusive advisory lock per directory: `DIR/.lock`, locked with
//! `flock(2)` (std's `File::lock`), held by whoever writes there.
//!
//! flock rather than a pid file: the kernel drops the lock when its holder
//! dies, even by SIGKILL, so there is never a stale lock to break. The lock
//! file itself is never deleted (deleting it would let two runs lock two
//! different inodes). A run that finds the lock taken says once that it is
//! waiting and polls, so Ctrl-C ([`crate::util::interrupt`]) ends the wait.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Name of the lock file in a locked directory.
pub const LOCK_FILE: &str = ".lock";

/// How often a waiting run tries again (and looks at Ctrl-C).
const POLL: Duration = Duration::from_millis(100);

/// Proof that this process holds a directory's lock; dropping releases it.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Lock `dir` (created with `mode` if missing), waiting for another
    /// regbake that holds it.
    pub fn acquire(dir: &Path, mode: u32) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            if !said {
                eprintln!(
                    "regbake: waiting for another regbake in {} to finish (it holds {})",
                    dir.display(),
                    path.display()
                );
                said = true;
            }
            if crate::util::interrupt::interrupted() {
                bail!(
                    "interrupted ({}) while waiting for the lock on {}",
                    crate::util::interrupt::what(),
                    dir.display()
                );
            }
            std::thread::sleep(POLL);
        }
        Ok(Self {
            file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases it too; unlocking says so.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("box");
        let first = DirLock::acquire(&d, 0o755).unwrap();
        let other = File::open(d.join(LOCK_FILE)).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(first);
        other.try_lock().unwrap();
        other.unlock().unwrap();
        let again = DirLock::acquire(&d, 0o755).unwrap();
        assert_eq!(again.dir(), d);
    }
}
