//! `regbake probe` against a registry that answers with hostile bodies and
//! redirects: an endless config blob, a body trickled slower than any read
//! timeout, an error body with terminal escape sequences, a redirect to an
//! origin that asks for credentials. The registry is a small fake that
//! speaks just enough of the Distribution API for `probe --push`, with one
//! answer replaced per test.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{header, read_head, Test};
use crate::probe_hostile::run_limited;

/// One request: line, lowercased headers, body (Content-Length only).
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn read_req(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let (line, headers) = read_head(r)?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut req = Req {
        method,
        path,
        query,
        headers,
        body: vec![],
    };
    let len: usize = req
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    req.body.resize(len, 0);
    r.read_exact(&mut req.body).ok()?;
    Some(req)
}

/// What the fake registry does with a request instead of the usual answer.
enum Hostile {
    /// These bytes, then close.
    Raw(Vec<u8>),
    /// `head`, then chunks of `{` forever (until the client goes).
    EndlessChunked(String),
    /// `head`, then `body` a byte every 500 ms (2 B/s).
    Trickle(String, Vec<u8>),
}

type Hook = dyn Fn(&Req, &Store) -> Option<Hostile> + Send + Sync;

/// Blobs and manifests the fake registry holds.
#[derive(Default)]
struct Store {
    blobs: HashMap<String, Vec<u8>>,
    uploads: HashMap<String, Vec<u8>>,
    manifests: HashMap<String, (String, Vec<u8>)>,
    next: u32,
}

impl Store {
    /// Whether `path` is a GET of the image config (a small JSON blob).
    fn is_config(&self, req: &Req) -> bool {
        req.method == "GET"
            && req.path.contains("/blobs/sha256")
            && self
                .blobs
                .get(req.path.rsplit('/').next().unwrap_or_default())
                .is_some_and(|b| b.starts_with(b"{"))
    }

    fn answer(&mut self, req: &Req) -> (String, Vec<u8>) {
        let api = "Docker-Distribution-Api-Version: registry/2.0\r\n";
        let p = req.path.as_str();
        let (m, body) = (req.method.as_str(), req.body.clone());
        if p == "/v2/" {
            return (format!("HTTP/1.1 200 OK\r\n{api}"), vec![]);
        }
        if m == "POST" && p.ends_with("/blobs/uploads/") {
            self.next += 1;
            let id = format!("u{}", self.next);
            self.uploads.insert(id.clone(), vec![]);
            return (
                format!("HTTP/1.1 202 Accepted\r\nLocation: {p}{id}\r\n"),
                vec![],
            );
        }
        if p.contains("/blobs/uploads/") {
            let id = p.rsplit('/').next().unwrap_or_default().to_string();
            let data = self.uploads.entry(id.clone()).or_default();
            data.extend_from_slice(&body);
            if m == "PATCH" {
                return (
                    format!("HTTP/1.1 202 Accepted\r\nLocation: {p}\r\n"),
                    vec![],
                );
            }
            let digest = req
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("digest="))
                .unwrap_or_default()
                .replace("%3A", ":");
            let data = self.uploads.remove(&id).unwrap_or_default();
            self.blobs.insert(digest.clone(), data);
            return (
                format!("HTTP/1.1 201 Created\r\nDocker-Content-Digest: {digest}\r\n"),
                vec![],
            );
        }
        if p.contains("/blobs/") {
            let digest = p.rsplit('/').next().unwrap_or_default();
            return match self.blobs.get(digest) {
                Some(b) => ("HTTP/1.1 200 OK\r\n".into(), b.clone()),
                None => ("HTTP/1.1 404 Not Found\r\n".into(), vec![]),
            };
        }
        if p.contains("/manifests/") {
            let tag = p.rsplit('/').next().unwrap_or_default().to_string();
            return match m {
                "PUT" => {
                    let ty = req.header("content-type").unwrap_or_default().to_string();
                    self.manifests.insert(tag, (ty, body));
                    ("HTTP/1.1 201 Created\r\n".into(), vec![])
                }
                "GET" => match self.manifests.get(&tag) {
                    Some((ty, b)) => (
                        format!("HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\n"),
                        b.clone(),
                    ),
                    None => ("HTTP/1.1 404 Not Found\r\n".into(), vec![]),
                },
                _ => ("HTTP/1.1 405 Method Not Allowed\r\n".into(), vec![]),
            };
        }
        ("HTTP/1.1 404 Not Found\r\n".into(), vec![])
    }
}

/// A fake registry on 127.0.0.1 until the test ends; `hook` may replace
/// any answer.
fn fake_registry(hook: impl Fn(&Req, &Store) -> Option<Hostile> + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let store = Arc::new(Mutex::new(Store::default()));
    let hook: Arc<Hook> = Arc::new(hook);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (store, hook) = (store.clone(), hook.clone());
            std::thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                while let Some(req) = read_req(&mut r) {
                    let hostile = hook(&req, &store.lock().expect("store"));
                    if let Some(h) = hostile {
                        hostile_answer(&mut w, h);
                        return;
                    }
                    let (head, body) = store.lock().expect("store").answer(&req);
                    let mut resp =
                        format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                    if req.method != "HEAD" {
                        resp.extend_from_slice(&body);
                    }
                    if w.write_all(&resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn hostile_answer(w: &mut TcpStream, h: Hostile) {
    match h {
        Hostile::Raw(bytes) => {
            let _ = w.write_all(&bytes);
        }
        Hostile::EndlessChunked(head) => {
            let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
            chunk.extend_from_slice(&[b'{'; 16 * 1024]);
            chunk.extend_from_slice(b"\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            // Until the probe goes away; at most a minute, whatever it does.
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) && w.write_all(&chunk).is_ok() {}
        }
        Hostile::Trickle(head, body) => {
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            for b in body {
                std::thread::sleep(Duration::from_millis(500));
                if w.write_all(&[b]).is_err() {
                    return;
                }
            }
        }
    }
}

fn probe(port: u16, extra: &[&str], limit: Duration) -> (crate::common::Output, Duration) {
    let t = Test::new();
    let url = format!("http://127.0.0.1:{port}");
    let mut args = vec!["probe", url.as_str()];
    args.extend_from_slice(extra);
    run_limited(&t, &args, &[("PROBE_PW", "s3cret-redirect-pw")], limit)
}

/// The registry answers the config blob with an endless chunked body:
/// the probe stops at the blob's size instead of reading gigabytes.
#[test]
fn probe_stops_reading_an_endless_config_blob() {
    let port = fake_registry(|req, store| {
        store.is_config(req).then(|| {
            Hostile::EndlessChunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".into())
        })
    });
    let (out, took) = probe(
        port,
        &["--push", "--timeout", "10"],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 1, "after {took:?}:\n{}{}", out.stdout, out.stderr);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        out.stderr
            .contains("config digest mismatch: the registry sent more than the")
            && out.stderr.contains("bytes of sha256:"),
        "{}",
        out.stderr
    );
}

/// A body trickled at 2 B/s never lets a read wait long, yet the request
/// as a whole ends at `--timeout`: the config blob, and an error body.
#[test]
fn a_trickled_body_does_not_outlive_the_timeout() {
    let port = fake_registry(|req, store| {
        store.is_config(req).then(|| {
            let body = store.blobs[req.path.rsplit('/').next().unwrap_or_default()].clone();
            Hostile::Trickle(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()),
                body,
            )
        })
    });
    let (out, took) = probe(port, &["--push", "--timeout", "2"], Duration::from_secs(30));
    assert_eq!(out.code, 1, "after {took:?}:\n{}{}", out.stdout, out.stderr);
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("did not finish its answer within 2 s (--timeout)"),
        "{}",
        out.stderr
    );

    let error = "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"slowly\"}]}".repeat(20);
    let port = fake_registry(move |req, _| {
        (req.path == "/v2/").then(|| {
            Hostile::Trickle(
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n",
                    error.len()
                ),
                error.clone().into_bytes(),
            )
        })
    });
    let (out, took) = probe(port, &["--timeout", "2"], Duration::from_secs(30));
    assert_eq!(out.code, 1, "after {took:?}:\n{}{}", out.stdout, out.stderr);
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}:\n{}",
        out.stderr
    );
    // What arrived in time is shown.
    assert!(
        out.stderr.contains("HTTP 503 Service Unavailable: {\"e")
            && out.stderr.contains("(the rest did not arrive)"),
        "{}",
        out.stderr
    );
}

/// A registry's error body reaches the terminal escaped: no escape
/// sequence, carriage return or bidi override from it is printed as is.
#[test]
fn a_registry_error_body_is_shown_escaped() {
    let body = "denied \u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\rover \u{202e}txt.exe";
    let port = fake_registry(move |req, _| {
        (req.path == "/v2/").then(|| {
            Hostile::Raw(
                format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        })
    });
    for format in ["text", "json"] {
        let (out, _) = probe(port, &["--format", format], Duration::from_secs(30));
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
            assert!(
                !all.contains(raw),
                "{format}: {raw:?} printed raw:\n{all:?}"
            );
        }
        assert!(
            out.stderr.contains(
                r"denied \u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\rover \u{202e}txt.exe"
            ),
            "{format}: {:?}",
            out.stderr
        );
    }
}

/// `GET /v2/` redirected to another origin that asks for credentials: the
/// probe sent none there (they stay with their origin), and says so
/// instead of calling them rejected.
#[test]
fn a_redirect_to_an_origin_that_wants_credentials_is_not_called_rejected() {
    let saw_auth: Arc<Mutex<Vec<bool>>> = Arc::default();
    let saw = saw_auth.clone();
    let other = fake_registry(move |req, _| {
        saw.lock()
            .expect("log")
            .push(req.header("authorization").is_some());
        Some(Hostile::Raw(
            b"HTTP/1.1 401 Unauthorized\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\
              WWW-Authenticate: Basic realm=\"other\"\r\nContent-Length: 0\r\n\
              Connection: close\r\n\r\n"
                .to_vec(),
        ))
    });
    let port = fake_registry(move |req, _| {
        (req.path == "/v2/").then(|| {
            Hostile::Raw(
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{other}/v2/\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .into_bytes(),
            )
        })
    });
    let (out, _) = probe(
        port,
        &[
            "--username",
            "prober",
            "--password-env",
            "PROBE_PW",
            "--timeout",
            "5",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stderr.contains("credentials rejected"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "redirected to http://127.0.0.1:{other}, which asked for credentials; none were sent"
        )) && out.stderr.contains(&format!(
            "credentials are sent only to http://127.0.0.1:{port}"
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("s3cret-redirect-pw") && !out.stdout.contains("s3cret-redirect-pw")
    );
    let saw = saw_auth.lock().expect("log").clone();
    assert!(
        saw.len() == 2 && !saw.contains(&true),
        "the other origin saw credentials: {saw:?}"
    );
}
