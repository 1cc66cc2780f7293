//! `regbake probe` against servers that misbehave: one that never answers,
//! and a registry that sends the upload elsewhere. Both are small
//! `TcpListener` threads speaking just enough HTTP/1.1; they record what
//! they were sent.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{header, read_head, regbake_cmd, Output, Test};

/// One request as a fake server saw it: request line and lowercased headers.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Read one request (headers, then a Content-Length body); `None` at EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let (line, headers) = read_head(r)?;
    let seen = Seen { line, headers };
    let len: u64 = seen
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink()).ok()?;
    Some(seen)
}

/// Serve on 127.0.0.1 until the test ends: each request is logged and
/// answered by `answer` (status line and extra headers; no body).
fn fake_server(answer: impl Fn(&Seen) -> String + Send + Sync + 'static) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log: Log = Arc::default();
    let log2 = log.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, answer) = (log2.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                while let Some(seen) = read_request(&mut r) {
                    let head = answer(&seen);
                    log.lock().expect("log").push(seen);
                    let resp = format!("{head}\r\nContent-Length: 0\r\n\r\n");
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

/// Run regbake, killed after `limit` so a hang fails the test instead of
/// stalling it.
pub(crate) fn run_limited(
    t: &Test,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Output, Duration) {
    let mut cmd = regbake_cmd();
    cmd.args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run regbake");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let elapsed = started.elapsed();
    (
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        elapsed,
    )
}

/// A listener that accepts and never answers: the probe gives up after
/// `--timeout`, naming the request and the address, over http and https.
#[test]
fn a_silent_server_times_out_naming_the_step() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepted connections are kept open, unread, until the test ends.
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().flatten().collect();
        drop(held);
    });
    for scheme in ["http", "https"] {
        let url = format!("{scheme}://127.0.0.1:{port}");
        let t = Test::new();
        let (out, took) = run_limited(
            &t,
            &["probe", &url, "--timeout", "1"],
            &[],
            Duration::from_secs(20),
        );
        assert!(
            took < Duration::from_secs(10),
            "{scheme}: took {took:?}\n{}",
            out.stderr
        );
        assert_eq!(out.code, 1, "{scheme}: {}{}", out.stdout, out.stderr);
        // With TLS, the handshake is where it waits.
        let said = if scheme == "http" {
            format!("GET /v2/: no answer from 127.0.0.1:{port} within 1 s")
        } else {
            format!("GET /v2/: no connection or TLS handshake with 127.0.0.1:{port} within 1 s")
        };
        assert!(out.stderr.contains(&said), "{scheme}: {}", out.stderr);
    }
    // The default is bounded too, and stated in --help.
    let help = Test::new().args(&["probe", "--help"]).success().stdout;
    assert!(
        help.contains("--timeout") && help.contains("[default: 30]"),
        "{help}"
    );
}

/// A registry whose upload Location names another origin: the credentials
/// given for the registry are not sent there.
#[test]
fn credentials_stay_with_their_origin() {
    let (other, other_log) = fake_server(|_| "HTTP/1.1 404 Not Found".into());
    let (port, log) = fake_server(move |seen| {
        if seen.line.starts_with("GET /v2/ ") {
            "HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0".into()
        } else if seen
            .line
            .starts_with("POST /v2/regbake-probe/blobs/uploads/ ")
        {
            format!(
                "HTTP/1.1 202 Accepted\r\nLocation: http://127.0.0.1:{other}/v2/regbake-probe/blobs/uploads/u1?_state=x"
            )
        } else {
            "HTTP/1.1 404 Not Found".into()
        }
    });
    let t = Test::new();
    let url = format!("http://127.0.0.1:{port}");
    let (out, _) = run_limited(
        &t,
        &[
            "probe",
            &url,
            "--push",
            "--username",
            "prober",
            "--password-env",
            "PROBE_PW",
            "--timeout",
            "5",
        ],
        &[("PROBE_PW", "s3cret-origin-pw")],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let seen = log.lock().expect("log").clone();
    let post = seen
        .iter()
        .find(|s| s.line.starts_with("POST "))
        .unwrap_or_else(|| panic!("no POST: {seen:?}\n{}", out.stderr));
    assert!(
        post.header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "the registry itself gets the credentials: {post:?}"
    );
    let elsewhere = other_log.lock().expect("log").clone();
    let patch = elsewhere
        .iter()
        .find(|s| {
            s.line
                .starts_with("PATCH /v2/regbake-probe/blobs/uploads/u1")
        })
        .unwrap_or_else(|| {
            panic!(
                "no PATCH at the other origin: {elsewhere:?}\n{}",
                out.stderr
            )
        });
    assert_eq!(
        patch.header("authorization"),
        None,
        "credentials sent to another origin: {patch:?}"
    );
    // The failure says why the other origin may have refused.
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{other}"))
            && out.stderr.contains(&format!(
                "credentials are sent only to http://127.0.0.1:{port}"
            )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-origin-pw") && !out.stdout.contains("s3cret-origin-pw"));
}

/// `user:password@` in the URL is refused (exit 2) without echoing it, with
/// the options to use instead.
#[test]
fn credentials_in_the_url_are_refused_unechoed() {
    for url in [
        "https://prober:s3cret-url-pw@127.0.0.1:5000",
        "http://prober@127.0.0.1:5000/v2/",
    ] {
        let out = Test::new()
            .args(&["probe", url])
            .status(2)
            .stderr_contains("--username")
            .stderr_contains("--password-env")
            .check();
        assert!(
            !out.stderr.contains("s3cret-url-pw") && !out.stderr.contains("prober"),
            "{url}: echoed: {}",
            out.stderr
        );
    }
}
