//! One exclusive advisory lock per box directory: `flock(2)` on
//! `out/box/.lock`, held by whoever writes there (box packing, `vagrant
//! package`, the disk flattened for a libvirt box, catalog updates).
//!
//! flock rather than a pid file: the kernel drops the lock when its holder
//! dies, even by SIGKILL, so there is never a stale lock to break. The lock
//! file itself is never deleted (deleting it would let two runs lock two
//! different inodes). Because every writer holds the lock, a hidden
//! `.partial` file found by a fresh holder belongs to a run that died:
//! [`BoxDirLock::acquire`] removes those.
//!
//! Re-entrant within the process: a caller holding the lock across a pack and
//! its catalog update can call functions that take it again themselves.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Name of the lock file in the box directory.
pub const LOCK_FILE: &str = ".lock";

/// How often a waiting run looks at Ctrl-C: the lock itself is waited for
/// in the kernel, this only bounds how late Ctrl-C is noticed.
const CTRL_C_CHECK: Duration = Duration::from_millis(200);

struct Held {
    file: Arc<File>,
    dev: u64,
    ino: u64,
    dir: PathBuf,
}

/// Locks this process holds, to make acquiring re-entrant.
static HELD: Mutex<Vec<Weak<Held>>> = Mutex::new(Vec::new());

/// Proof that this process holds the box directory's lock; dropping the
/// last clone releases it.
#[derive(Clone)]
pub struct BoxDirLock(Arc<Held>);

impl std::fmt::Debug for BoxDirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxDirLock").field(&self.0.dir).finish()
    }
}

impl BoxDirLock {
    /// Lock `out_dir/box` (created if missing), waiting for another regbake
    /// that holds it (said once on stderr; Ctrl-C ends the wait when
    /// [`crate::util::interrupt::catch_interrupts`] is on, else it ends regbake). A
    /// fresh lock first removes stale `.partial` files.
    pub fn acquire(out_dir: &Path) -> Result<Self> {
        let dir = out_dir.join("box");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let md = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let (dev, ino) = (md.dev(), md.ino());
        {
            let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
            held.retain(|w| w.strong_count() > 0);
            if let Some(h) = held
                .iter()
                .filter_map(Weak::upgrade)
                .find(|h| h.dev == dev && h.ino == ino)
            {
                return Ok(Self(h));
            }
        }
        let file = Arc::new(file);
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                eprintln!(
                    "regbake: waiting for another regbake in {} to finish (it holds {})",
                    dir.display(),
                    path.display()
                );
                wait_for(&file, &dir)?;
            }
            Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        let held = Arc::new(Held {
            file,
            dev,
            ino,
            dir: dir.clone(),
        });
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&held));
        remove_stale(&dir);
        Ok(Self(held))
    }

    /// The locked box directory (`out/box`).
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing the file would release it too, but the waiter thread may
        // still hold a clone of the file for a moment.
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock(2) on a descriptor owned by `file`, alive for the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

enum Wait {
    Waiting,
    Done(std::io::Result<()>),
    /// The waiter gave up (Ctrl-C): the thread unlocks if it still gets it.
    Abandoned,
}

/// Block until the lock is ours. The blocking flock runs on a helper thread:
/// the Ctrl-C handler is installed with SA_RESTART, which restarts flock(2),
/// so the main thread would never see Ctrl-C while blocked in it.
fn wait_for(file: &Arc<File>, dir: &Path) -> Result<()> {
    let state = Arc::new((Mutex::new(Wait::Waiting), Condvar::new()));
    {
        let state = Arc::clone(&state);
        let file = Arc::clone(file);
        std::thread::Builder::new()
            .name("box-lock".into())
            .spawn(move || {
                let r = flock(&file, libc::LOCK_EX);
                let (m, cv) = &*state;
                let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
                if matches!(*st, Wait::Abandoned) {
                    if r.is_ok() {
                        let _ = flock(&file, libc::LOCK_UN);
                    }
                    return;
                }
                *st = Wait::Done(r);
                cv.notify_all();
            })
            .context("starting the lock waiter")?;
    }
    let (m, cv) = &*state;
    let mut st = m.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Wait::Done(r) = std::mem::replace(&mut *st, Wait::Waiting) {
            return r.with_context(|| format!("locking {}", dir.join(LOCK_FILE).display()));
        }
        if crate::util::interrupt::interrupted() {
            *st = Wait::Abandoned;
            bail!(
                "interrupted (Ctrl-C) while waiting for the lock on {}",
                dir.display()
            );
        }
        st = cv
            .wait_timeout(st, CTRL_C_CHECK)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Remove hidden `*.partial` files: with the lock held, nothing is writing
/// them. Failures only warn; they do not stop the run.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".partial")) {
            continue;
        }
        let path = entry.path();
        // Regular files only; never follow a symlink out of the directory.
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!(
                "regbake: removed {} left by an interrupted run ({} freed)",
                path.display(),
                indicatif::HumanBytes(md.blocks() * 512)
            ),
            Err(e) => eprintln!(
                "regbake: could not remove the stale {}: {e}",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reentrant_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = BoxDirLock::acquire(dir.path()).unwrap();
        // Same process: no deadlock.
        let b = BoxDirLock::acquire(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        // Another open file description is refused while held...
        let other = File::open(dir.path().join("box/.lock")).unwrap();
        assert!(flock(&other, libc::LOCK_EX | libc::LOCK_NB).is_err());
        drop(a);
        assert!(flock(&other, libc::LOCK_EX | libc::LOCK_NB).is_err());
        // ...and free once the last holder is gone.
        drop(b);
        flock(&other, libc::LOCK_EX | libc::LOCK_NB).unwrap();
        assert!(dir.path().join("box/.lock").is_file());
    }

    #[test]
    fn stale_partials_go_other_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("box");
        std::fs::create_dir_all(b.join(".dir.partial")).unwrap();
        std::fs::write(b.join(".x.box.abc.partial"), vec![1u8; 10_000]).unwrap();
        std::fs::write(b.join("visible.partial"), "keep").unwrap();
        std::fs::write(b.join("a.box"), "keep").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", b.join(".link.partial")).unwrap();
        let _l = BoxDirLock::acquire(dir.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&b)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".dir.partial",
                ".link.partial",
                ".lock",
                "a.box",
                "visible.partial"
            ]
        );
    }
}
