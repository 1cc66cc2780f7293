//! `regbake kickstart --serve ADDR`: what the server answers. The rendered
//! kickstarts over HTTP for `inst.ks=`, only those, from memory: there is no
//! file system behind the URLs, so no traversal or listing is possible; odd
//! paths get 400 or 404.
//!
//! HTTP/1.1 with keep-alive, parsed by `httparse`; each response prebuilt so
//! it goes out in one write. The request path is the pure [`step`] (fuzzed);
//! the sockets, the connection cap and the deadlines are in `fleet::server`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::parse_mac;

/// The header anaconda sends per interface with `inst.ks.sendmac`:
/// `X-RHN-Provisioning-MAC-0: eth0 52:54:00:12:34:56`.
const MAC_HEADER: &str = "x-rhn-provisioning-mac-";
/// Room for a server with 64 NICs (one ~60-byte MAC header each) beside the
/// installer's own headers, with margin; bounded so a client cannot make a
/// connection hold more.
const MAX_HEADERS: usize = 128;
/// The most a request head (request line and headers, through the blank
/// line) may hold; a longer one is answered 431, whatever the reads were.
pub const MAX_HEAD: usize = 32 * 1024;

/// One rendered kickstart, as served.
#[derive(Debug, Clone)]
pub struct Kickstart {
    /// The inventory host name; `None` for the single `ks.cfg`.
    pub host: Option<String>,
    pub mac: Option<String>,
    pub data: Arc<[u8]>,
}

/// A prebuilt 200 response: headers then body, in one buffer.
struct Page {
    host: String,
    full: Vec<u8>,
    header_len: usize,
}

impl Page {
    fn new(host: String, body: &[u8]) -> Self {
        let mut full = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n",
            body.len()
        )
        .into_bytes();
        let header_len = full.len();
        full.extend_from_slice(body);
        Self {
            host,
            full,
            header_len,
        }
    }
}

/// What the server answers from.
pub struct Site {
    /// `/ks.cfg` without an inventory.
    single: Option<Page>,
    /// `/HOST.ks`.
    by_name: HashMap<String, Arc<Page>>,
    /// MAC (lowercase, colons) → the host's page, for `/ks.cfg`.
    by_mac: HashMap<String, Arc<Page>>,
}

impl Site {
    pub fn new(kickstarts: Vec<Kickstart>) -> Self {
        let mut site = Site {
            single: None,
            by_name: HashMap::new(),
            by_mac: HashMap::new(),
        };
        for k in kickstarts {
            match k.host {
                None => site.single = Some(Page::new("ks.cfg".into(), &k.data)),
                Some(host) => {
                    let page = Arc::new(Page::new(host.clone(), &k.data));
                    if let Some(mac) = k.mac {
                        site.by_mac.insert(mac, page.clone());
                    }
                    site.by_name.insert(host, page);
                }
            }
        }
        site
    }
}

/// A request's outcome: the page, or a status with a plain-text reason.
enum Answer<'a> {
    Page(&'a Page),
    Error(u16, String),
}

/// The MAC headers of a request: the addresses read, and the headers (name,
/// value) whose value held none.
#[derive(Debug, Default)]
struct Macs {
    found: Vec<String>,
    malformed: Vec<(String, String)>,
}

impl Macs {
    /// `eth0 52:54:00:12:34:56`: the MAC is the last word.
    fn add(&mut self, name: &str, value: &str) {
        match value.split_whitespace().last().and_then(parse_mac) {
            Some(mac) => self.found.push(mac),
            None => self.malformed.push((name.to_string(), value.to_string())),
        }
    }
}

/// Route one request. `path` is the raw request target.
fn route<'a>(site: &'a Site, path: &str, macs: &Macs) -> Answer<'a> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return Answer::Error(
            400,
            "bad request target: expected /ks.cfg or /HOST.ks".into(),
        );
    };
    let Ok(name) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
        return Answer::Error(400, "bad path encoding".into());
    };
    // Names are plain file names; anything that could reach elsewhere is refused.
    if name.contains(['/', '\\', '\0']) || name.contains("..") {
        return Answer::Error(400, "bad path: only /ks.cfg and /HOST.ks are served".into());
    }
    if name == "ks.cfg" {
        if let Some(p) = &site.single {
            return Answer::Page(p);
        }
        // Any NIC of the machine may be the one in the inventory; a header
        // regbake cannot read (an InfiniBand address) only matters when no
        // other one matched.
        if let Some(p) = macs.found.iter().find_map(|m| site.by_mac.get(m)) {
            return Answer::Page(p);
        }
        if let Some((name, value)) = macs.malformed.first() {
            return Answer::Error(
                400,
                format!(
                    "malformed {name} header {value:?}: expected INTERFACE MAC, \
                     e.g. \"eth0 52:54:00:12:34:56\"; fetch /HOST.ks instead"
                ),
            );
        }
        if macs.found.is_empty() {
            return Answer::Error(
                404,
                "no X-RHN-Provisioning-MAC-* header: boot with inst.ks.sendmac, or fetch /HOST.ks"
                    .into(),
            );
        }
        return Answer::Error(
            404,
            format!(
                "no inventory host has MAC {}: add mac=… to its host line, or fetch /HOST.ks",
                macs.found.join(", ")
            ),
        );
    }
    if let Some(host) = name.strip_suffix(".ks") {
        if let Some(p) = site.by_name.get(host) {
            return Answer::Page(p);
        }
        return Answer::Error(404, format!("no kickstart for host {host:?}"));
    }
    Answer::Error(
        404,
        "not found: this server has only /ks.cfg and /HOST.ks".into(),
    )
}

/// What to give the installers: printed when the server starts.
pub(super) fn print_boot_params(site: &Site, local: SocketAddr) {
    let base = format!("http://{local}");
    println!("listening on {base}");
    if local.ip().is_unspecified() {
        println!(
            "(replace {} below with an address of this machine the installers can reach)",
            local.ip()
        );
    }
    println!("boot parameters (append to the installer's kernel command line):");
    if site.single.is_some() {
        println!("  inst.ks={base}/ks.cfg");
    } else {
        if !site.by_mac.is_empty() {
            println!(
                "  hosts with mac=: inst.ks={base}/ks.cfg inst.ks.sendmac   ({} of {} hosts)",
                site.by_mac.len(),
                site.by_name.len()
            );
        }
        let mut names: Vec<&String> = site.by_name.keys().collect();
        names.sort();
        if names.len() <= 20 {
            for n in names {
                println!("  {n}: inst.ks={base}/{n}.ks");
            }
        } else {
            println!(
                "  by name: inst.ks={base}/HOST.ks for each of the {} hosts",
                names.len()
            );
        }
    }
}

pub(super) fn error_response(status: u16, reason: &str, close: bool) -> Vec<u8> {
    let text = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("regbake kickstart server: {reason}\n");
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}{}\r\n{body}",
        body.len(),
        if status == 405 { "Allow: GET, HEAD\r\n" } else { "" },
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

/// What a look at a connection's buffered bytes gives.
pub enum Step<'a> {
    /// The request is incomplete: read more.
    More,
    /// Answer with `out`; `consumed` bytes of the buffer were the request.
    Reply(Reply<'a>),
}

/// One answer of the server, and what the access log says of it. A page
/// is answered from the site as it is, not copied.
pub struct Reply<'a> {
    pub consumed: usize,
    pub out: Cow<'a, [u8]>,
    /// Close the connection after `out`.
    pub close: bool,
    /// A refusal of a request that may have more input: drain it first.
    pub refused: bool,
    pub status: u16,
    pub method: String,
    pub path: String,
    pub host: String,
    pub macs: Vec<String>,
}

impl Reply<'_> {
    fn refusal(status: u16, why: &str, consumed: usize) -> Self {
        Self {
            consumed,
            out: error_response(status, why, true).into(),
            close: true,
            refused: true,
            status,
            method: "-".into(),
            path: "-".into(),
            host: "-".into(),
            macs: vec![],
        }
    }
}

/// Parse the first request in `buf` and answer it: the whole request path,
/// without the socket (so it can be fuzzed).
pub fn step<'a>(site: &'a Site, buf: &[u8]) -> Step<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // The limit is on the head itself (through its blank line), wherever
    // the reads happened to split it: a buffer of MAX_HEAD bytes without a
    // complete head, or a complete head longer than MAX_HEAD, is refused.
    let too_large = || Step::Reply(Reply::refusal(431, "request head over 32 KiB", buf.len()));
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return too_large(),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return too_large(),
        Ok(httparse::Status::Partial) => return Step::More,
        Err(e) => {
            let (status, why) = match e {
                httparse::Error::TooManyHeaders => (431, "too many headers".to_string()),
                e => (400, format!("malformed request ({e})")),
            };
            return Step::Reply(Reply::refusal(status, &why, buf.len()));
        }
    };
    let method = req.method.unwrap_or_default().to_string();
    let path = req.path.unwrap_or_default().to_string();
    let mut close = req.version != Some(1);
    let mut has_body = false;
    let mut macs = Macs::default();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value);
        if name == "connection" && value.eq_ignore_ascii_case("close") {
            close = true;
        } else if name == "transfer-encoding" || (name == "content-length" && value.trim() != "0") {
            has_body = true;
        } else if name.starts_with(MAC_HEADER) {
            macs.add(h.name, &value);
        }
    }
    let head = method == "HEAD";
    let (out, status, host): (Cow<'a, [u8]>, u16, &str) = if method != "GET" && !head {
        close = true;
        (
            error_response(405, "only GET and HEAD", true).into(),
            405,
            "-",
        )
    } else if has_body {
        // Requests here have no body; refusing one keeps framing simple.
        close = true;
        (
            error_response(400, "request bodies are not accepted", true).into(),
            400,
            "-",
        )
    } else {
        match route(site, &path, &macs) {
            Answer::Page(p) if close => {
                let mut v = p.full[..p.header_len - 2].to_vec();
                v.extend_from_slice(b"Connection: close\r\n\r\n");
                if !head {
                    v.extend_from_slice(&p.full[p.header_len..]);
                }
                (v.into(), 200, p.host.as_str())
            }
            Answer::Page(p) if head => (p.full[..p.header_len].into(), 200, &p.host),
            Answer::Page(p) => (p.full[..].into(), 200, &p.host),
            Answer::Error(status, why) => {
                let mut v = error_response(status, &why, close);
                if head {
                    let end = v
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(v.len(), |i| i + 4);
                    v.truncate(end);
                }
                (v.into(), status, "-")
            }
        }
    };
    Step::Reply(Reply {
        consumed: n,
        out,
        close,
        refused: false,
        status,
        method,
        path,
        host: host.to_string(),
        macs: macs.found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::new(vec![
            Kickstart {
                host: Some("web1".into()),
                mac: Some("52:54:00:00:00:01".into()),
                data: b"one".to_vec().into(),
            },
            Kickstart {
                host: Some("web2".into()),
                mac: None,
                data: b"two".to_vec().into(),
            },
        ])
    }

    fn status(a: Answer<'_>) -> u16 {
        match a {
            Answer::Page(_) => 200,
            Answer::Error(s, _) => s,
        }
    }

    /// MAC headers as anaconda sends them: `eth0 MAC` values.
    fn macs(values: &[&str]) -> Macs {
        let mut m = Macs::default();
        for (i, v) in values.iter().enumerate() {
            m.add(&format!("X-RHN-Provisioning-MAC-{i}"), v);
        }
        m
    }

    #[test]
    fn routes() {
        let s = site();
        let none = Macs::default();
        let mac = macs(&["eth0 52:54:00:00:00:01"]);
        assert_eq!(status(route(&s, "/web2.ks", &none)), 200);
        assert_eq!(status(route(&s, "/ks.cfg", &mac)), 200);
        assert_eq!(status(route(&s, "/ks.cfg?x=1", &mac)), 200);
        assert_eq!(status(route(&s, "/ks.cfg", &none)), 404);
        assert_eq!(
            status(route(&s, "/ks.cfg", &macs(&["eth0 52:54:00:00:00:09"]))),
            404
        );
        assert_eq!(status(route(&s, "/web3.ks", &none)), 404);
        assert_eq!(status(route(&s, "/", &none)), 404);
        for bad in [
            "/../web1.ks",
            "/..%2fweb1.ks",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/web1.ks%00",
            "/a/web1.ks",
            "/%ff.ks",
            "web1.ks",
        ] {
            assert_eq!(status(route(&s, bad, &none)), 400, "{bad}");
        }
    }

    #[test]
    fn a_malformed_mac_header_is_named_unless_another_matches() {
        let s = site();
        let Answer::Error(400, why) = route(&s, "/ks.cfg", &macs(&["eth0 zz:zz"])) else {
            panic!("expected 400");
        };
        assert!(
            why.contains("malformed X-RHN-Provisioning-MAC-0 header \"eth0 zz:zz\""),
            "{why}"
        );
        let both = macs(&["ib0 80:00:00:48:fe:80:00:00", "eth1 52:54:00:00:00:01"]);
        assert_eq!(status(route(&s, "/ks.cfg", &both)), 200);
    }
}
