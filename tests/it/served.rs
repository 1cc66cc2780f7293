//! A `regbake kickstart --serve` for a test, and a plain HTTP/1.1 client
//! for it: fetches, reports, the boot parameters it wrote.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{regbake_cmd, Test};

/// The server under test; killed when dropped, whatever the test did. Its
/// stderr (the access and report log) goes to a file and its stdout to a
/// buffer, so a busy server never blocks on a full pipe.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    /// What it printed on stdout, up to now.
    stdout: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
    /// Each host's kickstart path (`/ks/TOKEN/HOST.ks`) and token, from
    /// `out/fleet/boot-params`.
    pub(crate) paths: BTreeMap<String, String>,
}

/// A served kickstart with the report URL and token the server filled in
/// emptied again: what is in `out/kickstart/`.
pub(crate) fn unfill(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        let filled = ["REGBAKE_REPORT_URL='", "REGBAKE_REPORT_TOKEN='"]
            .iter()
            .find(|m| bare.starts_with(*m) && bare.ends_with('\'') && bare.len() > m.len());
        match filled {
            Some(m) => {
                out.push_str(m);
                out.push_str("'\n");
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// `HOST inst.ks=URL` lines of `out/fleet/boot-params`: HOST → the URL's path.
pub(crate) fn boot_paths(out: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out.join("fleet/boot-params")).expect("boot-params");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (host, param) = l.split_once(' ')?;
            let url = param.strip_prefix("inst.ks=http://")?;
            let path = &url[url.find('/')?..];
            Some((host.to_string(), path.to_string()))
        })
        .collect()
}

/// An answer: status, head, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `req` to `addr` and read the answer to its end (the request asks
/// to close).
pub(crate) fn exchange(addr: &str, req: &[u8]) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(req)?;
    let mut resp = vec![];
    s.read_to_end(&mut resp)?;
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no answer head in {} bytes", resp.len())))?;
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(Answer {
        status,
        head,
        body: resp[end + 4..].to_vec(),
    })
}

/// `POST /report/HOST/EVENT` with `token` (none: no Authorization).
pub(crate) fn report_request(host: &str, event: &str, token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /report/{host}/{event} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

impl Server {
    /// `regbake ARGS --serve 127.0.0.1:0` in the test's dir.
    pub(crate) fn start(t: &Test, args: &[&str]) -> Self {
        Self::start_at(t, args, "127.0.0.1:0")
    }

    /// `regbake ARGS --serve ADDR`; the stderr log is `serve-N.log`.
    pub(crate) fn start_at(t: &Test, args: &[&str], addr: &str) -> Self {
        let n = std::fs::read_dir(t.path()).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
                .count()
        });
        let log = t.path().join(format!("serve-{n}.log"));
        let mut child = regbake_cmd()
            .args(args)
            .args(["--serve", addr])
            .current_dir(t.path())
            .env("HOME", t.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("start regbake --serve");
        let stdout = child.stdout.take().expect("stdout");
        // Guard first: a failed assertion below still kills the server.
        let mut server = Server {
            child,
            addr: String::new(),
            stdout: Arc::new(Mutex::new(String::new())),
            reader: None,
            log,
            paths: BTreeMap::new(),
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read server stdout");
            assert!(n > 0, "server exited before serving:\n{}", server.log());
            server.stdout.lock().unwrap().push_str(&line);
            if let Some(url) = line.trim().strip_prefix("listening on http://") {
                server.addr = url.to_string();
            }
            if line.starts_with("Ctrl-C stops the server") {
                break;
            }
        }
        let buf = server.stdout.clone();
        server.reader = Some(std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                buf.lock().unwrap().push_str(&line);
                line.clear();
            }
        }));
        server.paths = boot_paths(&t.path().join("out"));
        server
    }

    /// The access and report log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The token of `host`, from its boot parameter.
    pub(crate) fn token(&self, host: &str) -> String {
        self.paths[host]
            .split('/')
            .nth(2)
            .expect("token")
            .to_string()
    }

    /// Send one GET; the status and body of the answer.
    pub(crate) fn get(&self, target: &str, headers: &[&str]) -> (u16, Vec<u8>) {
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("Connection: close\r\n\r\n");
        let a = exchange(&self.addr, req.as_bytes()).expect("GET");
        (a.status, a.body)
    }

    /// Report `event` for `host` with its own token; the answer.
    pub(crate) fn report(&self, host: &str, event: &str, body: &[u8]) -> Answer {
        let req = report_request(host, event, Some(&self.token(host)), body);
        exchange(&self.addr, &req).expect("report")
    }

    /// `/status.json`, parsed.
    pub(crate) fn status_json(&self) -> serde_json::Value {
        let (status, body) = self.get("/status.json", &[]);
        assert_eq!(status, 200);
        serde_json::from_slice(&body).expect("status.json")
    }

    /// SIGTERM, and wait (at most 10 s) for the exit status.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Send `sig`, and wait (at most 10 s) for the exit status.
    pub(crate) fn stop_with(&mut self, sig: libc::c_int) -> std::process::ExitStatus {
        // SAFETY: signalling the child we started, by its pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still running after signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
