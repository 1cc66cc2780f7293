//! I/O adapters: hashing on the way through, and exact-length reads.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// sha256 and byte count of everything written through it.
pub struct HashWriter<W> {
    pub inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The sha256 (hex) and the number of bytes written.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 and byte count of everything read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> HashReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The sha256 (hex) and the number of bytes read.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads exactly `len` bytes of a file: one that shrinks while being read is
/// an error instead of a short entry (the tar crate pads those). Also where
/// Ctrl-C stops a long read ([`crate::util::interrupt`]).
pub struct Exact<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R> Exact<R> {
    pub fn new(inner: R, len: u64, path: PathBuf) -> Self {
        Self {
            inner,
            remaining: len,
            path,
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        if crate::util::interrupt::interrupted() {
            // Not ErrorKind::Interrupted: io::copy retries on that.
            return Err(io::Error::other(format!(
                "interrupted ({})",
                crate::util::interrupt::what()
            )));
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being packed", self.path.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_what_passes_through() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        assert_eq!(w.inner, b"abc");
        assert_eq!(w.finish(), (ABC.to_string(), 3));
        let mut r = HashReader::new(&b"abc"[..]);
        let mut out = vec![];
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish(), (ABC.to_string(), 3));
    }

    #[test]
    fn a_short_source_is_an_error() {
        let mut r = Exact::new(&b"ab"[..], 3, PathBuf::from("f"));
        let mut out = vec![];
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("f shrank"));
        let mut r = Exact::new(&b"abcd"[..], 3, PathBuf::from("f"));
        let mut out = vec![];
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
