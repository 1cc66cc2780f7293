//! The kickstart server's connection slots: a cap below the process's
//! file limit, and at the cap the connection that has waited longest for
//! its request head (an idle keep-alive or a trickler) closed to make room.

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Installers and benchmarks hold few connections; more than this is an
/// attack or a mistake.
const MAX_CONNECTIONS: usize = 1024;
/// File descriptors kept free of connections: stdio, the listener, the
/// one just accepted, what the allocator and signal handling open.
const SPARE_FDS: u64 = 64;
/// How long a full server waits for a slot to free before it answers 503.
const SLOT_WAIT: Duration = Duration::from_millis(200);

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
pub(super) struct Ticket {
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

    /// Connections counted against the cap now.
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.lock().open
    }

    /// A slot for `stream`, making room when the server is full; `None`
    /// when no slot freed in time.
    pub(super) fn admit(self: &Arc<Self>, stream: &TcpStream) -> Option<Ticket> {
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
            super::console::line(&format!(
                "warning: {} connections open (the limit): closing the ones that waited \
                 longest for their request, to serve new ones",
                self.cap
            ));
        }
    }
}

impl Ticket {
    /// The connection waits for a request head from now on.
    pub(super) fn waiting(&self) {
        let now = self.slots.now();
        self.state.waiting_since.store(now, Ordering::Relaxed);
    }

    /// The connection has a whole request and answers it: not evicted.
    pub(super) fn answering(&self) {
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
pub(super) struct Conn {
    pub(super) ticket: Ticket,
    pub(super) stream: TcpStream,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A connected pair on loopback: (client, server side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
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
