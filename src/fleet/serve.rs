//! `regbake kickstart --serve ADDR`: what the server answers. The rendered
//! kickstarts, each only to a request with its host's token (or, with
//! `--trust-mac`, by the MAC anaconda sends), the installs' reports, and
//! the status page. From memory: there is no file system behind the URLs,
//! so no traversal or listing is possible; odd paths get 400 or 404.
//!
//! HTTP/1.1 with keep-alive, parsed by `httparse`; kickstarts prebuilt so
//! each goes out in one write. The request path is the pure [`step`]
//! (fuzzed); what it asks to record, the sockets, the connection cap and
//! the deadlines are in `fleet::server`. Where each request goes is
//! `fleet::routes`.

use std::borrow::Cow;

use super::routes::{self, Answer, Macs};
use super::site::Page;
pub use super::site::{Kickstart, Options, Site, SINGLE, TOKEN_MARK, URL_MARK};
use super::status::Event;

/// The most a request head (request line and headers, through the blank
/// line) may hold; a longer one is answered 431, whatever the reads were.
pub const MAX_HEAD: usize = 32 * 1024;
/// The most a report's body may hold: a 64 KiB log tail and a little.
pub const MAX_BODY: usize = 64 * 1024 + 8 * 1024;
/// Room for a server with 64 NICs (one ~60-byte MAC header each) beside the
/// installer's own headers, with margin; bounded so a client cannot make a
/// connection hold more.
const MAX_HEADERS: usize = 128;
pub(super) fn error_response(status: u16, reason: &str, close: bool) -> Vec<u8> {
    let text = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("regbake kickstart server: {reason}\n");
    let extra = match status {
        405 => "Allow: GET, HEAD, POST\r\n",
        401 => "WWW-Authenticate: Bearer realm=\"regbake\"\r\n",
        _ => "",
    };
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

/// What a look at a connection's buffered bytes gives.
pub enum Step<'a> {
    /// The request is incomplete: read more.
    More,
    /// A report's head is accepted and its body is due: the client waits
    /// for `100 Continue` (once) before sending it. Read more.
    Continue,
    /// Answer with `out`; `consumed` bytes of the buffer were the request.
    Reply(Reply<'a>),
}

/// What the server is to do with a request beside answering it.
#[derive(Debug)]
pub enum Action {
    /// Host `.0`'s kickstart was served: record it (without waiting).
    Served(usize),
    /// Record a host's report, then answer (500 when it cannot be stored).
    Report {
        host: usize,
        event: Event,
        body: String,
    },
}

/// One answer of the server, and what the log says of it. A kickstart is
/// answered from the site as it is, not copied.
pub struct Reply<'a> {
    pub consumed: usize,
    pub out: Cow<'a, [u8]>,
    /// Close the connection after `out`.
    pub close: bool,
    /// A refusal of a request that may have more input: drain it first.
    pub refused: bool,
    pub status: u16,
    pub method: String,
    /// The request path as logged (a token in it replaced by `…`).
    pub path: String,
    pub host: String,
    pub macs: Vec<String>,
    pub action: Option<Action>,
    /// Why a request was refused, for the log.
    pub note: String,
    /// Not worth a log line (the status page's polls).
    pub quiet: bool,
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
            action: None,
            note: why.to_string(),
            quiet: false,
        }
    }
}

/// The headers of a request that matter here.
#[derive(Default)]
struct Head {
    close: bool,
    chunked: bool,
    /// Content-Length: `Err` when unreadable or given twice differently.
    length: Option<Result<usize, ()>>,
    expect_continue: bool,
    bearer: Option<String>,
    macs: Macs,
}

fn read_head(req: &httparse::Request<'_, '_>) -> Head {
    let mut h = Head {
        close: req.version != Some(1),
        ..Head::default()
    };
    for hd in req.headers.iter() {
        let name = hd.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(hd.value);
        let value = value.trim();
        match name.as_str() {
            "connection" if value.eq_ignore_ascii_case("close") => h.close = true,
            "transfer-encoding" => h.chunked = true,
            "content-length" => {
                let n = value.parse::<usize>().map_err(|_| ());
                h.length = match (h.length, n) {
                    (None, n) => Some(n),
                    (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                    _ => Some(Err(())),
                };
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => h.expect_continue = true,
            "authorization" => {
                if let Some(t) = value.strip_prefix("Bearer ") {
                    h.bearer = Some(t.trim().to_string());
                }
            }
            n if n.starts_with(routes::MAC_HEADER) => h.macs.add(hd.name, value),
            _ => {}
        }
    }
    h
}

/// A request's head, parsed, for the answers to it.
struct Request<'b> {
    method: String,
    raw_path: &'b str,
    /// The path as logged (a token in it replaced by `…`).
    path: String,
    /// How many bytes of the buffer the head takes.
    head_len: usize,
    /// How many bytes the buffer holds: a refusal consumes them all.
    buf_len: usize,
    h: Head,
}

impl Request<'_> {
    /// A refusal, logged with the method and path.
    fn refuse<'a>(&self, status: u16, why: &str) -> Step<'a> {
        let mut r = Reply::refusal(status, why, self.buf_len);
        r.method.clone_from(&self.method);
        r.path.clone_from(&self.path);
        Step::Reply(r)
    }

    /// An answer `out` of the head alone, to `host` ("-" when none).
    fn reply<'a>(&self, out: Cow<'a, [u8]>, status: u16, host: &str, close: bool) -> Reply<'a> {
        Reply {
            consumed: self.head_len,
            out,
            close,
            refused: false,
            status,
            method: self.method.clone(),
            path: self.path.clone(),
            host: host.to_string(),
            macs: vec![],
            action: None,
            note: String::new(),
            quiet: false,
        }
    }
}

/// Parse the first request in `buf` and answer it: the whole request path,
/// without the socket (so it can be fuzzed).
pub fn step<'a>(site: &'a Site, buf: &[u8]) -> Step<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let req = match parse(buf, &mut headers) {
        Ok(req) => req,
        Err(NoHead::More) => return Step::More,
        Err(NoHead::Refused(status, why)) => {
            return Step::Reply(Reply::refusal(status, &why, buf.len()))
        }
    };
    if req.h.chunked {
        return req.refuse(400, "chunked bodies are not accepted: send Content-Length");
    }
    let length = match req.h.length {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(())) => return req.refuse(400, "bad Content-Length"),
    };
    if req.method == "POST" {
        return report(site, &req, length, buf);
    }
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        return Step::Reply(req.reply(
            error_response(405, "only GET and HEAD, and POST for reports", true).into(),
            405,
            "-",
            true,
        ));
    }
    if length.unwrap_or(0) > 0 {
        // Requests here have no body; refusing one keeps framing simple.
        return Step::Reply(req.reply(
            error_response(400, "request bodies are not accepted", true).into(),
            400,
            "-",
            true,
        ));
    }
    Step::Reply(get(site, req, head))
}

/// Why there is no request head to answer.
enum NoHead {
    /// It is incomplete: read more.
    More,
    /// Refused with this status, for this reason.
    Refused(u16, String),
}

/// The request head at the start of `buf`.
fn parse<'b>(buf: &'b [u8], headers: &mut [httparse::Header<'b>]) -> Result<Request<'b>, NoHead> {
    let mut req = httparse::Request::new(headers);
    // The limit is on the head itself (through its blank line), wherever
    // the reads happened to split it: a buffer of MAX_HEAD bytes without a
    // complete head, or a complete head longer than MAX_HEAD, is refused.
    let too_large = || NoHead::Refused(431, "request head over 32 KiB".into());
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Err(too_large()),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(too_large()),
        Ok(httparse::Status::Partial) => return Err(NoHead::More),
        Err(e) => {
            let (status, why) = match e {
                httparse::Error::TooManyHeaders => (431, "too many headers".to_string()),
                e => (400, format!("malformed request ({e})")),
            };
            return Err(NoHead::Refused(status, why));
        }
    };
    let raw_path = req.path.unwrap_or_default();
    Ok(Request {
        method: req.method.unwrap_or_default().to_string(),
        raw_path,
        path: routes::logged_path(raw_path),
        head_len,
        buf_len: buf.len(),
        h: read_head(&req),
    })
}

/// A POST: a host's report, taken once its body of `length` bytes is in
/// `buf`.
fn report<'a>(site: &'a Site, req: &Request<'_>, length: Option<usize>, buf: &[u8]) -> Step<'a> {
    let (host, event) = match routes::report(site, req.raw_path, req.h.bearer.as_deref()) {
        Ok(target) => target,
        Err((status, why)) => return req.refuse(status, &why),
    };
    let Some(len) = length else {
        return req.refuse(411, "a report needs a Content-Length");
    };
    if len > MAX_BODY {
        return req.refuse(413, "a report's body may hold at most 72 KiB");
    }
    let n = req.head_len;
    if buf.len() - n < len {
        return if req.h.expect_continue {
            Step::Continue
        } else {
            Step::More
        };
    }
    let body = String::from_utf8_lossy(&buf[n..n + len]).into_owned();
    let mut r = req.reply(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\nrecorded\n"[..]
            .into(),
        200,
        &site.hosts[host].name,
        req.h.close,
    );
    r.consumed = n + len;
    r.action = Some(Action::Report { host, event, body });
    Step::Reply(r)
}

/// A GET (or, with `head`, a HEAD): a kickstart, a page or an error, as
/// `routes::get` decides.
fn get<'a>(site: &'a Site, req: Request<'_>, head: bool) -> Reply<'a> {
    let close = req.h.close;
    let mut r = match routes::get(site, req.raw_path, &req.h.macs) {
        Answer::Kickstart(i) => {
            let p = &site.hosts[i].page;
            let out: Cow<'a, [u8]> = if close {
                let mut v = p.full[..p.header_len - 2].to_vec();
                v.extend_from_slice(b"Connection: close\r\n\r\n");
                if !head {
                    v.extend_from_slice(&p.full[p.header_len..]);
                }
                v.into()
            } else if head {
                p.full[..p.header_len].into()
            } else {
                p.full[..].into()
            };
            let mut r = req.reply(out, 200, &site.hosts[i].name, close);
            r.action = Some(Action::Served(i));
            r
        }
        Answer::Page(page) => {
            let mut extra = String::new();
            if close {
                extra.push_str("Connection: close\r\n");
            }
            extra.push_str(&page.headers);
            let mut v = Page::new(&page.body, page.content_type, &extra).full;
            if head {
                v.truncate(v.len() - page.body.len());
            }
            let mut r = req.reply(v.into(), 200, "-", close);
            r.quiet = true;
            r
        }
        Answer::Error(status, why) => {
            let mut v = error_response(status, &why, close);
            if head {
                let end = v
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(v.len(), |i| i + 4);
                v.truncate(end);
            }
            let mut r = req.reply(v.into(), status, "-", close);
            r.note = why;
            r
        }
    };
    r.macs = req.h.macs.found;
    r
}
