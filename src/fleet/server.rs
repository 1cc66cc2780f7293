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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::recorder::Recorder;
use super::serve::{error_response, step, Action, Reply, Site, Step, MAX_BODY, MAX_HEAD};
use super::slots::{Conn, Limits, Slots, Ticket};

/// What a connection needs: the site, and the writer of the store.
pub(super) struct Shared {
    pub(super) site: Site,
    pub(super) recorder: Recorder,
}

/// Serve on `listener` until SIGINT, SIGTERM or SIGHUP (a closed terminal
/// must not leave a server holding the port), except those ignored when
/// regbake started (nohup).
pub(super) fn serve(listener: TcpListener, shared: Shared, limits: Limits) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new(crate::util::interrupt::stop_signals())
        .context("installing the signal handler")?;
    let shared = Arc::new(shared);
    std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(listener, shared, limits))
        .context("starting the server thread")?;
    let sig = signals.forever().next().unwrap_or_default();
    let name = match sig {
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "SIGINT",
    };
    // Connection threads are detached: leaving run() ends them with the
    // process. A report is answered only after its commit, so none that
    // was answered is lost. After a hangup stdout may be gone: no panic.
    let _ = writeln!(std::io::stdout(), "stopped ({name})");
    Ok(())
}

/// Accept connections until the process ends.
pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>, limits: Limits) {
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
        let shared = shared.clone();
        // A failed spawn drops `conn`: the slot is released, the socket closed.
        let _ = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let Conn { ticket, mut stream } = conn;
                connection(&mut stream, &shared, &limits, &ticket);
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

pub(super) fn warn(line: &str) {
    super::console::line(line);
}

/// 503 to a connection there is no slot for, without waiting on it.
fn busy(stream: &TcpStream) {
    let answer = error_response(503, "too many connections, try again", true);
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&*stream).write(&answer);
    }
}

/// The log line of an answer (a refusal says why; a kickstart names the
/// MACs that chose it). Never a token: paths are logged without theirs.
fn log(peer: &SocketAddr, r: &Reply<'_>) {
    if r.quiet {
        return;
    }
    let kind = if r.method == "POST" {
        "report"
    } else {
        "fetch"
    };
    let mut line = format!(
        "{kind} {} {:?} status={} host={} peer={peer}",
        r.method, r.path, r.status, r.host
    );
    if !r.macs.is_empty() {
        line.push_str(" mac=");
        line.push_str(&r.macs.join(","));
    }
    if let Some(Action::Report { body, .. }) = &r.action {
        line.push_str(&format!(" bytes={}", body.len()));
    }
    if r.status >= 400 && !r.note.is_empty() {
        line.push_str(&format!(" ({})", r.note));
    }
    super::console::line(&super::routes::redact(&line));
}

fn log_refusal(peer: &SocketAddr, status: u16, why: &str) {
    super::console::line(&format!(
        "refused - \"-\" status={status} peer={peer} ({why})"
    ));
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
    let mut left = MAX_HEAD + MAX_BODY;
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
fn connection(stream: &mut TcpStream, shared: &Shared, limits: &Limits, ticket: &Ticket) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let (mut read_t, mut write_t) = (Timeout(None), Timeout(None));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let site = &shared.site;
    loop {
        ticket.waiting();
        let deadline = Instant::now() + limits.head;
        let mut continued = false;
        // Parse what is buffered; read more only when it is incomplete.
        let r = loop {
            match step(site, &buf) {
                Step::Reply(r) => break r,
                Step::More => {}
                Step::Continue if continued => {}
                Step::Continue => {
                    continued = true;
                    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
                    if !write_within(stream, interim, deadline, &mut write_t) {
                        return;
                    }
                }
            }
            if !read_t.until(deadline, |d| stream.set_read_timeout(Some(d)).is_ok()) {
                if !buf.is_empty() {
                    let why = format!(
                        "the request did not arrive within {} s",
                        limits.head.as_secs()
                    );
                    refuse(stream, &error_response(408, &why, true));
                    log_refusal(&peer, 408, &why);
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
            log(&peer, &r);
            return;
        }
        buf.drain(..r.consumed);
        let mut r = r;
        let peer_ip = peer.ip().to_string();
        match &r.action {
            Some(Action::Served(i)) => {
                shared
                    .recorder
                    .note(*i, super::status::Event::Served, &peer_ip);
            }
            Some(Action::Report { host, event, body }) => {
                // Answered once on disk: an installer told "recorded" can
                // rely on it across a crash of the server.
                if let Err(e) = shared
                    .recorder
                    .record(*host, *event, &peer_ip, Some(body.clone()))
                {
                    r.status = 500;
                    r.note = format!("{e:#}");
                    r.out = error_response(500, "the report could not be stored", r.close).into();
                }
            }
            None => {}
        }
        let ok = write_within(stream, &r.out, Instant::now() + limits.answer, &mut write_t);
        log(&peer, &r);
        if !ok || r.close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn shared(dir: &std::path::Path) -> Shared {
        let live = Arc::new(super::super::status::Live::new(vec![
            super::super::status::HostStatus::new("ks.cfg"),
        ]));
        let site = Site::new(
            vec![super::super::serve::Kickstart {
                host: None,
                mac: None,
                data: b"ks".to_vec().into(),
            }],
            &["0123456789abcdef0123456789abcdef".to_string()],
            live.clone(),
            super::super::serve::Options::default(),
        );
        let mut store = super::super::store::Store::open(dir).unwrap();
        store.register(&site.names()).unwrap();
        let recorder = Recorder::start(store, live, site.names()).unwrap();
        Shared { site, recorder }
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
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let handle = std::thread::spawn(move || {
            connection(&mut server, &shared, &limits, &ticket);
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
        assert_eq!(slots.open(), 0, "the slot is released");
    }
}
