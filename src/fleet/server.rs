//! `regbake kickstart --serve ADDR`, the sockets: a cap on connections below
//! the process's file limit, one thread per connection (installers and
//! benchmarks hold few connections, each mostly idle), and deadlines, so
//! slow or silent clients cannot hold the server away from the installers.
//! What is answered is [`super::serve::step`]'s.
//!
//! - A request head must arrive whole within [`Limits::head`] of the
//!   connection being ready for it (accepted, or its last answer sent), not
//!   per read: a client trickling a byte at a time is cut off all the same.
//! - An answer must be taken within [`Limits::answer`].
//! - At the cap, the connection that has waited longest for its request
//!   head (an idle keep-alive or a trickler) is closed to make room: a
//!   client that sends its request at once is served even while every slot
//!   is held by slow ones. When every connection is busy answering, the
//!   newcomer gets 503.
//! - accept() failing (no file descriptor left, out of memory) backs off
//!   instead of spinning.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::serve::{error_response, print_boot_params, step, Site, Step, MAX_HEAD};

/// Installers and benchmarks hold few connections; more than this is an
/// attack or a mistake.
const MAX_CONNECTIONS: usize = 1024;
/// File descriptors kept free of connections: stdio, the listener, the
/// one just accepted, what the allocator and signal handling open.
const SPARE_FDS: u64 = 64;
/// How long a full server waits for a slot to free before it answers 503.
const SLOT_WAIT: Duration = Duration::from_millis(200);

/// Bind, print the boot parameters, serve until SIGINT or SIGTERM.
pub(super) fn serve(addr: &str, site: Site) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let limits = Limits::for_this_process();
    print_boot_params(&site, local);
    println!(
        "at most {} connections at once; a request must arrive within {} s",
        limits.cap,
        limits.head.as_secs()
    );
    println!("Ctrl-C stops the server.");

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing the signal handler")?;
    let site = Arc::new(site);
    std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(listener, site, limits))
        .context("starting the server thread")?;
    let sig = signals.forever().next().unwrap_or_default();
    let name = if sig == signal_hook::consts::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    // Connection threads are detached: leaving run() ends them with the process.
    println!("stopped ({name})");
    Ok(())
}

/// The server's bounds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once.
    pub cap: usize,
    /// A whole request head must arrive within this long.
    pub head: Duration,
    /// An answer must be taken within this long.
    pub answer: Duration,
}

impl Limits {
    /// The cap below this process's file limit (RLIMIT_NOFILE), as it is now.
    pub(super) fn for_this_process() -> Self {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0;
        let nofile = if ok { lim.rlim_cur } else { 1024 };
        Self {
            cap: cap_for(nofile),
            // anaconda's request is one small packet; 10 s is generous even
            // on a congested provisioning network.
            head: Duration::from_secs(10),
            // Kickstarts are kilobytes to a few MiB.
            answer: Duration::from_secs(60),
        }
    }
}

/// Connections for a file limit of `nofile`: all but [`SPARE_FDS`] of it
/// (half of a small one), at most [`MAX_CONNECTIONS`].
pub(super) fn cap_for(nofile: u64) -> usize {
    let room = nofile.saturating_sub(SPARE_FDS).max(nofile / 2).max(1);
    usize::try_from(room).map_or(MAX_CONNECTIONS, |r| r.min(MAX_CONNECTIONS))
}

/// A connection's state as the cap sees it, updated without the lock.
struct ConnState {
    /// Nanoseconds after the server's start (+1) at which the connection
    /// began to wait for a request head; 0 while it answers one.
    waiting_since: AtomicU64,
}

struct Entry {
    fd: RawFd,
    state: Arc<ConnState>,
}

struct Inner {
    /// Connections counted against the cap: open, or closing after being
    /// evicted, until their thread has let go of the socket.
    open: usize,
    /// The connections that may be evicted (each registered until its
    /// thread ends, removed when evicted), by id.
    conns: HashMap<u64, Entry>,
    next_id: u64,
    last_warning: Option<Instant>,
}

/// The connection slots.
pub(super) struct Slots {
    cap: usize,
    started: Instant,
    inner: Mutex<Inner>,
    freed: Condvar,
}

/// A slot held by one connection's thread: released (and the connection
/// unregistered) when dropped, which must happen before its socket closes
/// (see [`Conn`]).
struct Ticket {
    slots: Arc<Slots>,
    id: u64,
    state: Arc<ConnState>,
}

impl Slots {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                open: 0,
                conns: HashMap::new(),
                next_id: 0,
                last_warning: None,
            }),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking connection thread leaves the counts consistent (the
        // lock is never held across anything that can panic).
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// A slot for `stream`, making room when the server is full; `None`
    /// when no slot freed in time.
    fn admit(self: &Arc<Self>, stream: &TcpStream) -> Option<Ticket> {
        let mut inner = self.lock();
        if inner.open >= self.cap {
            self.evict_oldest_waiting(&mut inner);
            let (guard, _) = self
                .freed
                .wait_timeout_while(inner, SLOT_WAIT, |i| i.open >= self.cap)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner = guard;
            if inner.open >= self.cap {
                return None;
            }
        }
        inner.open += 1;
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnState {
            waiting_since: AtomicU64::new(self.now()),
        });
        inner.conns.insert(
            id,
            Entry {
                fd: stream.as_raw_fd(),
                state: state.clone(),
            },
        );
        Some(Ticket {
            slots: self.clone(),
            id,
            state,
        })
    }

    /// Close the connection that has waited longest for a request head.
    fn evict_oldest_waiting(&self, inner: &mut Inner) {
        let oldest = inner
            .conns
            .iter()
            .map(|(id, e)| (e.state.waiting_since.load(Ordering::Relaxed), *id))
            .filter(|(since, _)| *since != 0)
            .min();
        let Some((_, id)) = oldest else { return };
        if let Some(e) = inner.conns.remove(&id) {
            // The fd is still open: its thread unregisters (under this
            // lock) before it closes the socket. Shutting it down wakes
            // the thread's read with end-of-file, and the thread ends.
            // SAFETY: shutdown on an fd this process holds open.
            unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
        }
        let now = Instant::now();
        if inner
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            inner.last_warning = Some(now);
            warn(&format!(
                "warning: {} connections open (the limit): closing the ones that waited \
                 longest for their request, to serve new ones",
                self.cap
            ));
        }
    }
}

impl Ticket {
    /// The connection waits for a request head from now on.
    fn waiting(&self) {
        let now = self.slots.now();
        self.state.waiting_since.store(now, Ordering::Relaxed);
    }

    /// The connection has a whole request and answers it: not evicted.
    fn answering(&self) {
        self.state.waiting_since.store(0, Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.conns.remove(&self.id);
        inner.open -= 1;
        drop(inner);
        self.slots.freed.notify_one();
    }
}

/// A connection with its slot. Fields drop in order: the ticket (which
/// unregisters the fd) before the socket (which closes it), so an eviction
/// never shuts down an fd number the kernel has handed out again.
struct Conn {
    ticket: Ticket,
    stream: TcpStream,
}

/// Accept connections until the process ends.
pub(super) fn accept_loop(listener: TcpListener, site: Arc<Site>, limits: Limits) {
    let slots = Slots::new(limits.cap);
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOMEM, ENOBUFS do not clear by retrying at
                // once, and a connection aborted before accept costs nothing
                // to wait on: back off, 5 ms doubling up to 1 s.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                if backoff == Duration::from_secs(1) || is_fd_exhaustion(&e) {
                    warn_accept(&e);
                }
                std::thread::sleep(backoff);
                continue;
            }
        };
        let Some(ticket) = slots.admit(&stream) else {
            busy(&stream);
            continue;
        };
        let conn = Conn { ticket, stream };
        let site = site.clone();
        // A failed spawn drops `conn`: the slot is released, the socket closed.
        let _ = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let Conn { ticket, mut stream } = conn;
                connection(&mut stream, &site, &limits, &ticket);
                drop(ticket);
                drop(stream);
            });
    }
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Say why accept() fails, at most once every 10 s.
fn warn_accept(e: &std::io::Error) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
        *last = Some(now);
        let hint = if is_fd_exhaustion(e) {
            " (raise the open-file limit, ulimit -n)"
        } else {
            ""
        };
        warn(&format!(
            "warning: accepting a connection failed: {e}{hint}; retrying"
        ));
    }
}

fn warn(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// 503 to a connection there is no slot for, without waiting on it.
fn busy(stream: &TcpStream) {
    let answer = error_response(503, "too many connections, try again", true);
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&*stream).write(&answer);
    }
}

fn log(peer: &SocketAddr, method: &str, path: &str, status: u16, host: &str, macs: &[String]) {
    let mut line = format!("fetch {method} {path:?} status={status} host={host} peer={peer}");
    if !macs.is_empty() {
        line.push_str(" mac=");
        line.push_str(&macs.join(","));
    }
    line.push('\n');
    // One write per line keeps concurrent lines whole.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A socket's read or write timeout, set only when it changes (one
/// syscall saved per request on a keep-alive connection).
struct Timeout(Option<Duration>);

impl Timeout {
    /// Set the time left until `deadline`; false when none is left.
    fn until(&mut self, deadline: Instant, set: impl FnOnce(Duration) -> bool) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        // Rounded up to 10 ms so a nearly unchanged value is not set again.
        let left = Duration::from_millis(left.as_millis().div_ceil(10) as u64 * 10);
        if self.0 != Some(left) && !set(left) {
            return false;
        }
        self.0 = Some(left);
        true
    }
}

/// Write all of `out` before `deadline`.
fn write_within(
    stream: &mut TcpStream,
    mut out: &[u8],
    deadline: Instant,
    t: &mut Timeout,
) -> bool {
    while !out.is_empty() {
        if !t.until(deadline, |d| stream.set_write_timeout(Some(d)).is_ok()) {
            return false;
        }
        match stream.write(out) {
            Ok(0) => return false,
            Ok(n) => out = &out[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Answer a request that was not read to its end, then close. Closing with
/// unread input would reset the connection and lose the answer, so the rest
/// is read and dropped first, for a bounded time and amount.
fn refuse(stream: &mut TcpStream, answer: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    if !write_within(stream, answer, deadline, &mut Timeout(None)) {
        return;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let mut left = MAX_HEAD * 2;
    let mut t = Timeout(None);
    while left > 0 {
        if !t.until(deadline, |d| stream.set_read_timeout(Some(d)).is_ok()) {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Serve one connection until it closes, errs, misses a deadline, is
/// evicted, or asks to close.
fn connection(stream: &mut TcpStream, site: &Site, limits: &Limits, ticket: &Ticket) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let (mut read_t, mut write_t) = (Timeout(None), Timeout(None));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        ticket.waiting();
        let deadline = Instant::now() + limits.head;
        // Parse what is buffered; read more only when it is incomplete.
        let r = loop {
            match step(site, &buf) {
                Step::Reply(r) => break r,
                Step::More => {}
            }
            if !read_t.until(deadline, |d| stream.set_read_timeout(Some(d)).is_ok()) {
                if !buf.is_empty() {
                    let why = format!(
                        "the request did not arrive within {} s",
                        limits.head.as_secs()
                    );
                    refuse(stream, &error_response(408, &why, true));
                    log(&peer, "-", "-", 408, "-", &[]);
                }
                return;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        };
        ticket.answering();
        if r.refused {
            refuse(stream, &r.out);
            log(&peer, "-", "-", r.status, "-", &[]);
            return;
        }
        buf.drain(..r.consumed);
        let ok = write_within(stream, &r.out, Instant::now() + limits.answer, &mut write_t);
        log(&peer, &r.method, &r.path, r.status, &r.host, &r.macs);
        if !ok || r.close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn site() -> Site {
        Site::new(vec![super::super::serve::Kickstart {
            host: None,
            mac: None,
            data: b"ks".to_vec().into(),
        }])
    }

    /// A connected pair on loopback: (client, server side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// A client sending a byte every 100 ms never lets a per-read timeout
    /// of 500 ms expire; the head deadline cuts it off all the same.
    #[test]
    fn a_trickled_head_is_cut_off_at_the_deadline_not_per_read() {
        let limits = Limits {
            cap: 4,
            head: Duration::from_millis(500),
            answer: Duration::from_secs(5),
        };
        let slots = Slots::new(limits.cap);
        let (mut client, mut server) = pair();
        let ticket = slots.admit(&server).unwrap();
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            connection(&mut server, &site(), &limits, &ticket);
        });
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut got = vec![];
        let mut buf = [0u8; 256];
        while started.elapsed() < Duration::from_secs(5) {
            let _ = client.write_all(b"G");
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        handle.join().unwrap();
        let took = started.elapsed();
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(slots.lock().open, 0, "the slot is released");
    }

    /// At the cap, the connection that has waited longest for its request
    /// is closed for the newcomer; one that answers is not.
    #[test]
    fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let slots = Slots::new(2);
        let (mut old_client, old) = pair();
        let (_c2, busy) = pair();
        let (_c3, new) = pair();
        let old_ticket = slots.admit(&old).unwrap();
        let busy_ticket = slots.admit(&busy).unwrap();
        busy_ticket.answering();
        // The old connection's thread: it ends (and lets go of its slot)
        // when its socket is shut down.
        let handle = std::thread::spawn(move || {
            let conn = Conn {
                ticket: old_ticket,
                stream: old,
            };
            let mut buf = [0u8; 16];
            let n = (&conn.stream).read(&mut buf).unwrap_or(0);
            drop(conn);
            n
        });
        let new_ticket = slots.admit(&new).expect("room made for the newcomer");
        assert_eq!(handle.join().unwrap(), 0, "the old connection saw its end");
        old_client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(old_client.read(&mut [0u8; 16]).unwrap_or(0), 0);
        // Full again, and nobody waits: no room within the wait.
        new_ticket.answering();
        let (_c4, late) = pair();
        assert!(slots.admit(&late).is_none());
        drop((busy_ticket, new_ticket));
        assert_eq!(slots.lock().open, 0);
    }

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        assert_eq!(cap_for(1024), 960);
        assert_eq!(cap_for(128), 64);
        assert_eq!(cap_for(100), 50);
        assert_eq!(cap_for(4), 2);
        assert_eq!(cap_for(0), 1);
        assert_eq!(cap_for(1 << 20), MAX_CONNECTIONS);
        assert_eq!(cap_for(libc::RLIM_INFINITY), MAX_CONNECTIONS);
    }
}
