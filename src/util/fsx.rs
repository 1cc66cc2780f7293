//! The one way regbake replaces a file: written beside it under a hidden
//! temp name, synced, given its mode, renamed into place, and its directory
//! synced. A reader sees the old file or the new one, never a part; a run
//! that dies leaves at most the hidden temp file, `.NAME.XXXXXX.partial`,
//! which the next holder of the directory's lock removes
//! ([`remove_partials`]).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// How the name of a file being written ends.
const PARTIAL: &str = ".partial";

/// A file being written beside `dest`; removed if dropped uncommitted.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

impl Staged {
    /// A temp file `.NAME.XXXXXX.partial` in `dest`'s directory (0600, as
    /// tempfile makes it): the name says it is a dead run's when no run
    /// holds the directory's lock.
    pub fn beside(dest: &Path) -> Result<Self> {
        let dir = parent(dest)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(PARTIAL)
            .tempfile_in(dir)
            .with_context(|| format!("creating a temp file in {}", dir.display()))?;
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Close the temp file (after writing it).
    pub fn close(self) -> Closed {
        Closed {
            tmp: self.tmp.into_temp_path(),
            dest: self.dest,
        }
    }

    /// Give it `mode` and move it into place; `durable` also syncs the file
    /// before and its directory after, for what cannot be made again.
    pub fn commit(self, mode: u32, durable: bool) -> Result<()> {
        self.commit_as(mode, true, durable)
    }

    /// [`Staged::commit`], durable, over a file at `dest` only when
    /// `replace`; else it fails if there is one (checked by the rename).
    pub fn commit_new(self, mode: u32, replace: bool) -> Result<()> {
        self.commit_as(mode, replace, true)
    }

    fn commit_as(self, mode: u32, replace: bool, durable: bool) -> Result<()> {
        let dest = self.dest;
        self.tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", dest.display()))?;
        if durable {
            self.tmp
                .as_file()
                .sync_all()
                .with_context(|| format!("syncing {}", dest.display()))?;
        }
        if replace {
            self.tmp.persist(&dest).map(drop)
        } else {
            self.tmp.persist_noclobber(&dest).map(drop)
        }
        .with_context(|| format!("moving {} into place", dest.display()))?;
        if durable {
            let dir = parent(&dest)?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// A [`Staged`] file written and closed: it holds no file descriptor, so a
/// run may stage 100,000 of them. Removed if dropped uncommitted.
pub struct Closed {
    tmp: tempfile::TempPath,
    dest: PathBuf,
}

impl Closed {
    /// Give it `mode` and move it into place (not synced: what is staged
    /// closed can be made again).
    pub fn commit(self, mode: u32) -> Result<()> {
        std::fs::set_permissions(&self.tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", self.dest.display()))?;
        self.tmp
            .persist(&self.dest)
            .with_context(|| format!("moving {} into place", self.dest.display()))
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> Result<&Path> {
    match path.parent().context("file path has a parent")? {
        p if p.as_os_str().is_empty() => Ok(Path::new(".")),
        p => Ok(p),
    }
}

/// Whether `e` is, or was caused by, an I/O error of `kind`.
pub fn is_io(e: &anyhow::Error, kind: std::io::ErrorKind) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
    })
}

/// Replace `path` with `data` (see [`Staged`]).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32, durable: bool) -> Result<()> {
    let mut staged = Staged::beside(path)?;
    staged
        .tmp
        .write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    staged.commit(mode, durable)
}

/// Write a new file (never over one) that only its owner reads: copies of
/// what holds secrets.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Give `path` `mode`.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Create `dir` (and its parents) with `mode` when missing.
pub fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// [`write_atomic`], creating `path`'s directory with `dir_mode` when missing.
pub fn write_file(path: &Path, data: &[u8], mode: u32, dir_mode: u32, durable: bool) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().context("file path has a parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(path, data, mode, durable)
}

/// Whether `name` is that of a file being written ([`Staged`]): hidden and
/// ending in `.partial`.
pub fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(PARTIAL) && name.len() > PARTIAL.len() + 1
}

/// Remove the files being written ([`is_partial`]) in `dir` (and, with
/// `deep`, in its subdirectories): the caller holds the lock every writer
/// there holds, so they are a dead run's. Regular files only; symlinks are
/// never followed. Returns what was removed, with the bytes each held;
/// what could not be removed is said on stderr.
pub fn remove_partials(dir: &Path, deep: bool) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut removed = vec![];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(t) = entry.file_type() else {
                continue;
            };
            if deep && t.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            if !t.is_file() || !is_partial(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            let bytes = entry.metadata().map_or(0, |m| m.blocks() * 512);
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push((path, bytes)),
                Err(e) => eprintln!(
                    "regbake: could not remove {} left by an interrupted run: {e}",
                    path.display()
                ),
            }
        }
    }
    removed
}

/// `path` opened for reading if it is a regular file of at most `max`
/// bytes. Anything else is an `InvalidInput` error that says what it is: a
/// FIFO would block the read forever (it is opened non-blocking, and the
/// open file is what is looked at, so none can be swapped in between) and
/// `/dev/zero` would never end.
pub fn open_regular(path: &Path, max: u64) -> std::io::Result<File> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let md = file.metadata()?;
    let t = md.file_type();
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    if md.len() > max {
        return Err(too_large(max));
    }
    Ok(file)
}

fn too_large(max: u64) -> std::io::Error {
    let limit = if max >= 1 << 20 && max.is_multiple_of(1 << 20) {
        format!("{} MiB", max >> 20)
    } else {
        format!("{max} bytes")
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("larger than {limit}"),
    )
}

/// A regular file of at most `max` bytes, as text ([`open_regular`]).
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    // A file that grows after the check is still read no further.
    open_regular(path, max)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new", 0o600, true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Issue 18 §16: a FIFO is refused at once (no writer: a blocking open
    /// would wait forever), as are devices, directories and large files.
    #[test]
    fn only_small_regular_files_are_read() {
        use std::io::ErrorKind::InvalidInput;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let refused = |p: &Path, max: u64| {
            let e = read_text(p, max).unwrap_err();
            assert_eq!(e.kind(), InvalidInput, "{}: {e}", p.display());
            e.to_string()
        };
        assert_eq!(refused(&fifo, 10), "a FIFO, not a regular file");
        assert_eq!(
            refused(Path::new("/dev/zero"), 10),
            "a device, not a regular file"
        );
        assert_eq!(refused(dir.path(), 10), "a directory, not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
        assert_eq!(refused(&big, 1 << 20), "larger than 1 MiB");
        assert_eq!(refused(&big, 100), "larger than 100 bytes");
        assert_eq!(read_text(&big, 2 << 20).unwrap().len(), (1 << 20) + 1);
    }

    #[test]
    fn an_uncommitted_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::beside(&dir.path().join("b.box")).unwrap();
        let name = staged
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(".b.box.") && name.ends_with(".partial"),
            "{name}"
        );
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
