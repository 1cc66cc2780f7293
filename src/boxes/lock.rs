//! The lock of `out/box` ([`crate::util::lock::DirLock`]), held by whoever
//! writes there: box packing, `vagrant package`, the disk flattened for a
//! libvirt box, catalog updates. Because every writer holds it, a hidden
//! `.partial` file found by a fresh holder belongs to a run that died:
//! [`BoxDirLock::acquire`] removes those. The holder passes the lock down to
//! what it calls, which writes there only with it.

use std::path::Path;

use anyhow::Result;

use crate::util::lock::DirLock;

/// Proof that this process holds `out/box`'s lock.
#[derive(Debug)]
pub struct BoxDirLock(DirLock);

impl BoxDirLock {
    /// Lock `out_dir/box` (created if missing), waiting for another regbake
    /// that holds it (said once on stderr; Ctrl-C ends the wait when
    /// [`crate::util::interrupt::catch_interrupts`] is on, else it ends
    /// regbake). A fresh lock first removes stale `.partial` files.
    pub fn acquire(out_dir: &Path) -> Result<Self> {
        let lock = DirLock::acquire(&out_dir.join("box"), 0o755)?;
        remove_stale(lock.dir());
        Ok(Self(lock))
    }

    /// The locked box directory (`out/box`).
    pub fn dir(&self) -> &Path {
        self.0.dir()
    }
}

/// Remove hidden `*.partial` files: with the lock held, nothing is writing
/// them. Failures only warn; they do not stop the run.
fn remove_stale(dir: &Path) {
    for (path, bytes) in crate::util::fsx::remove_partials(dir, false) {
        eprintln!(
            "regbake: removed {} left by an interrupted run ({} freed)",
            path.display(),
            indicatif::HumanBytes(bytes)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
