//! Parallel gzip for `.box` packing: the stream is cut into fixed-size
//! chunks, each compressed on a worker thread into an independent gzip member,
//! and the members are written in order. A gzip file may hold several members
//! (RFC 1952 §2.2); gzip, bsdtar (what Vagrant extracts boxes with) and
//! flate2's `MultiGzDecoder` read them as one stream. Memory is bounded by
//! `max_pending` chunks in flight, whatever the input size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::write::GzEncoder;
use flate2::Compression;

/// 1 MiB chunks: big enough that restarting the 32 KiB deflate window at each
/// member costs well under 0.1% of the size, small enough to balance threads.
pub(super) const CHUNK: usize = 1 << 20;

struct Job {
    data: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

pub struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    chunk: usize,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    workers: Vec<JoinHandle<()>>,
    members: usize,
}

impl<W: Write> ParGzWriter<W> {
    /// `threads` compression workers (at least 1) at gzip `level` (0-9).
    pub fn new(inner: W, threads: usize, level: u32, chunk: usize) -> Self {
        let threads = threads.max(1);
        let chunk = chunk.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let level = Compression::new(level.min(9));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || loop {
                    // The lock is only held while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let _ = job.reply.send(compress(&job.data, level));
                })
            })
            .collect();
        Self {
            inner: Some(inner),
            buf: Vec::with_capacity(chunk),
            chunk,
            jobs: Some(tx),
            pending: VecDeque::new(),
            // Enough in flight to keep every worker busy while the writer
            // waits on the oldest chunk.
            max_pending: threads * 2 + 1,
            workers,
            members: 0,
        }
    }

    /// Number of gzip members written so far.
    pub fn members(&self) -> usize {
        self.members
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let member = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker stopped"))??;
            self.inner()?.write_all(&member)?;
            self.members += 1;
        }
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        let (reply, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?
            .send(Job { data, reply })
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Compress what is left, write every member, stop the workers and
    /// return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // An empty input still has to be a valid gzip file: one empty member.
        if !self.buf.is_empty() || (self.members == 0 && self.pending.is_empty()) {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            w.join()
                .map_err(|_| io::Error::other("gzip worker panicked"))?;
        }
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        inner.flush()?;
        Ok(inner)
    }
}

fn compress(data: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            self.submit()?;
        }
        Ok(n)
    }

    /// Members already compressed are written out; the partial chunk stays
    /// buffered (flushing it would only cost ratio).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize, chunk: usize) -> (Vec<u8>, usize) {
        let mut w = ParGzWriter::new(Vec::new(), threads, 6, chunk);
        // Odd-sized writes cross chunk boundaries.
        for part in data.chunks(777) {
            w.write_all(part).unwrap();
        }
        let members_before = w.members();
        let gz = w.finish().unwrap();
        assert!(members_before <= data.len() / chunk + 1);
        let mut back = Vec::new();
        MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        (back, gz.len())
    }

    #[test]
    fn members_concatenate_back_to_the_input() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 7 + b'a')
            .collect();
        for threads in [1, 2, 3] {
            for chunk in [1000, 4096, 1 << 20] {
                let (back, _) = roundtrip(&data, threads, chunk);
                assert_eq!(back, data, "threads {threads} chunk {chunk}");
            }
        }
    }

    #[test]
    fn empty_input_is_a_valid_gzip_file() {
        let (back, len) = roundtrip(&[], 2, 1024);
        assert!(back.is_empty());
        assert!(len >= 18, "a gzip member has at least 18 bytes");
    }
}
