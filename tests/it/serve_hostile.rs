//! `regbake kickstart --serve` under clients that misbehave: connections
//! that trickle their request a byte at a time (slowloris), more of them
//! than the server has file descriptors, a file limit lowered under a
//! running server, request heads around the 32 KiB limit. Each test is
//! bounded (a few seconds, a few hundred loopback connections) and stops
//! its server and its clients however it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{regbake_cmd, Test};

/// A server started for one test; killed when dropped. Its stderr (the
/// access log) goes to a file, so a busy server never blocks on a full pipe.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// What it printed before serving (the boot parameters and limits).
    banner: String,
    log: std::path::PathBuf,
    /// The kickstart's path, with its token.
    ks: String,
}

impl Server {
    /// `regbake kickstart --serve 127.0.0.1:0`, with the open-file limit
    /// `nofile` when given (set in the child before it runs regbake).
    fn start(t: &Test, nofile: Option<u64>) -> Self {
        let log = t.path().join("serve.log");
        let mut cmd = regbake_cmd();
        cmd.args(["kickstart", "--serve", "127.0.0.1:0"])
            .current_dir(t.path())
            .env("HOME", t.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create log"));
        if let Some(n) = nofile {
            // SAFETY: only setrlimit, which is async-signal-safe, between
            // fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start regbake --serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            banner: String::new(),
            log,
            ks: String::new(),
        };
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read server stdout");
            assert!(n > 0, "server exited before serving:\n{}", server.log());
            server.banner.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("listening on http://") {
                server.addr = url.parse().expect("server address");
            }
            if line.starts_with("Ctrl-C stops the server") {
                break;
            }
        }
        // Nothing more is printed on stdout until it stops.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        server.ks = crate::served::boot_paths(&t.path().join("out"))["ks.cfg"].clone();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU seconds the server has used (user + system), from /proc.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("server /proc stat");
        // Fields after the command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').expect("stat format").1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
        // SAFETY: sysconf only reads a system constant.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// The file descriptors the server holds.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, Iterator::count)
    }

    /// Connect and send `request` (without reading).
    fn send(&self, request: &[u8]) -> TcpStream {
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("connect");
        s.write_all(request).expect("send");
        s
    }

    /// The status line of the answer on `s` (read until it closes, at most
    /// `within`), or what went wrong.
    fn status(s: &mut TcpStream, within: Duration) -> Result<String, String> {
        s.set_read_timeout(Some(within)).expect("timeout");
        let mut resp = vec![];
        match s.read_to_end(&mut resp) {
            Ok(_) if resp.is_empty() => Err("closed without an answer".into()),
            Ok(_) => Ok(String::from_utf8_lossy(&resp)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()),
            Err(e) => Err(format!("{e} after {} bytes", resp.len())),
        }
    }

    /// One real request, as an installer sends it: the status line and
    /// how long the answer took.
    fn fetch(&self, path: &str, within: Duration) -> (Result<String, String>, Duration) {
        let started = Instant::now();
        let mut s = self.send(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        (Self::status(&mut s, within), started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Slowloris: `n` connections, each sending one byte of a request head
/// that never ends every `every`, reconnecting when the server closes one.
/// Stops (closing all) when dropped.
struct Loris {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loris {
    fn start(addr: SocketAddr, n: usize, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let (stop2, open2) = (stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
            while !stop2.load(Ordering::Relaxed) {
                let tick = Instant::now();
                for c in &mut conns {
                    if stop2.load(Ordering::Relaxed) {
                        return;
                    }
                    // A method token that never ends: the head stays incomplete.
                    let sent = match c {
                        Some(s) => s.write_all(b"G").is_ok(),
                        None => false,
                    };
                    if !sent {
                        *c = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                            .ok()
                            .filter(|s| (&*s).write_all(b"G").is_ok());
                    }
                }
                open2.store(conns.iter().flatten().count(), Ordering::Relaxed);
                std::thread::sleep(every.saturating_sub(tick.elapsed()));
            }
        });
        Self {
            stop,
            open,
            thread: Some(thread),
        }
    }
}

impl Drop for Loris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 200 trickling connections against a server whose file limit (128)
/// allows far fewer: real clients are still answered at once, and the
/// server does not spin. (Before: accept() failed with EMFILE in a tight
/// loop, 100% of a core, and no client was answered.)
#[test]
fn serve_answers_real_clients_under_slowloris() {
    let t = Test::new();
    let server = Server::start(&t, Some(128));
    let loris = Loris::start(server.addr, 200, Duration::from_secs(1));
    // Until every slot is held by a trickler.
    let deadline = Instant::now() + Duration::from_secs(10);
    while loris.open.load(Ordering::Relaxed) < 64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, t0) = (server.cpu(), Instant::now());
    for i in 0..3 {
        let (status, took) = server.fetch(&server.ks, Duration::from_secs(5));
        assert_eq!(
            status.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "real client {i} under slowloris, after {took:?}:\n{}",
            server.log()
        );
        assert!(took < Duration::from_secs(3), "real client {i}: {took:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (server.cpu() - cpu0, t0.elapsed().as_secs_f64());
    eprintln!("server CPU {cpu:.2} s in {wall:.2} s");
    drop(loris);
    assert!(
        cpu < 0.5 * wall,
        "the server used {cpu:.2} s of CPU in {wall:.2} s under slowloris"
    );
    assert!(
        server.banner.contains("at most 64 connections at once"),
        "{}",
        server.banner
    );
    assert!(
        server.log().contains("64 connections open (the limit)"),
        "{}",
        server.log()
    );
}

/// A file limit lowered under a running server that holds more sockets
/// than it allows (as `ulimit -n` below the load): accept() fails with
/// EMFILE, and the server backs off instead of spinning, says why, and
/// answers again as soon as descriptors are free.
#[test]
fn serve_backs_off_when_out_of_file_descriptors() {
    let t = Test::new();
    let server = Server::start(&t, None);
    let idle: Vec<TcpStream> = (0..100).map(|_| server.send(b"")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.fds() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: prlimit on our own child; only reads `lim`.
    let rc = unsafe {
        libc::prlimit(
            server.child.id() as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &raw const lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    // The accept() already waiting holds a descriptor taken under the old
    // limit: this connection gets it. The next one finds none.
    let _taken = server.send(b"");
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = server.send(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            server.ks
        )
        .as_bytes(),
    );
    let (cpu0, t0) = (server.cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, wall) = (server.cpu() - cpu0, t0.elapsed().as_secs_f64());
    eprintln!("server CPU {cpu:.2} s in {wall:.2} s");
    assert!(
        cpu < 0.2 * wall,
        "the server used {cpu:.2} s of CPU in {wall:.2} s with no descriptor left"
    );
    // Free some: the waiting client is answered within the back-off (1 s).
    drop(idle);
    let status = Server::status(&mut waiting, Duration::from_secs(5));
    assert_eq!(status.as_deref(), Ok("HTTP/1.1 200 OK"), "{}", server.log());
    assert!(
        server.log().contains("Too many open files") && server.log().contains("ulimit -n"),
        "{}",
        server.log()
    );
}

/// The 32 KiB limit is on the request head itself, wherever the reads
/// split it: 32,768 bytes are served, 32,769 (or 33,000) are refused with
/// 431. (Before: anything up to 36 KiB that fit in the read that crossed
/// the limit was served.)
#[test]
fn serve_limits_the_request_head_to_exactly_32_kib() {
    let t = Test::new();
    let server = Server::start(&t, None);
    for (size, want) in [
        (32_768, "HTTP/1.1 200 OK"),
        (32_769, "HTTP/1.1 431 Request Header Fields Too Large"),
        (33_000, "HTTP/1.1 431 Request Header Fields Too Large"),
        (36_000, "HTTP/1.1 431 Request Header Fields Too Large"),
    ] {
        let start = format!("GET {} HTTP/1.1\r\nHost: x\r\nX-Pad: ", server.ks);
        let start = start.as_bytes();
        let end = b"\r\nConnection: close\r\n\r\n";
        let mut req = start.to_vec();
        req.resize(size - end.len(), b'a');
        req.extend_from_slice(end);
        assert_eq!(req.len(), size);
        let mut s = server.send(&req);
        let status = Server::status(&mut s, Duration::from_secs(5));
        assert_eq!(status.as_deref(), Ok(want), "a {size}-byte head");
    }
}
