//! What the probe says when a request fails: transport errors, timeouts and
//! TLS errors as advice, and unexpected answers with the registry's body.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use ureq::http::{Response, StatusCode};
use ureq::{Body, ResponseExt as _};
use url::Url;

use crate::util::text::printable;

use super::report::human;

/// How much of an error answer's body is read, and how much of it shown.
const ERROR_BODY_READ: u64 = 64 * 1024;
const ERROR_BODY_SHOWN: usize = 4 * 1024;

/// What the messages need to know of the probe's settings.
#[derive(Debug, Clone)]
pub(super) struct Explain {
    /// The registry URL: credentials go only to its origin.
    pub(super) base: Url,
    pub(super) credentials: bool,
    /// `--ca`, named when it does not vouch for the registry's certificate.
    pub(super) ca: Option<PathBuf>,
    /// The deadline of one request: `--timeout`, or more for the layer.
    pub(super) timeout: Duration,
    /// What that deadline is, as the messages say it.
    pub(super) budget: &'static str,
}

impl Explain {
    /// Whether `url` is where the credentials may go (scheme, host, port).
    pub(super) fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// A request that got no HTTP answer, as advice naming the request
    /// (`GET /v2/`) and the address.
    pub(super) fn fail(&self, err: ureq::Error, method: &str, url: &Url) -> anyhow::Error {
        let at = host_port(url);
        let what = format!("{method} {}", url.path());
        let secs = self.timeout.as_secs();
        if let ureq::Error::Timeout(phase) = &err {
            use ureq::Timeout as T;
            return match phase {
                T::Resolve => anyhow!(
                    "{what}: {} did not resolve within {secs} s",
                    url.host_str().unwrap_or("")
                ),
                // The TLS handshake is part of connecting.
                T::Connect if url.scheme() == "https" => anyhow!(
                    "{what}: no connection or TLS handshake with {at} within {secs} s (--timeout)"
                ),
                T::Connect => anyhow!("{what}: no connection to {at} within {secs} s (--timeout)"),
                T::SendRequest | T::SendBody | T::PerWrite => {
                    anyhow!("{what}: {at} took none of the request for {secs} s (--timeout)")
                }
                // The whole request's deadline, in whatever phase it was.
                T::Global | T::PerCall => anyhow!(
                    "{what}: no complete answer from {at} within {secs} s ({})",
                    self.budget
                ),
                _ => anyhow!("{what}: no answer from {at} within {secs} s (--timeout)"),
            };
        }
        // Error texts can carry what the server sent.
        let text = printable(&err.to_string());
        if let ureq::Error::Io(io) = &err {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return anyhow!("nothing is listening on {at} (connection refused)")
                }
                std::io::ErrorKind::TimedOut => return anyhow!("{at}: connection timed out"),
                _ => {}
            }
        }
        if matches!(err, ureq::Error::HostNotFound) {
            return anyhow!("cannot resolve {}", url.host_str().unwrap_or(""));
        }
        if url.scheme() == "https" {
            // rustls errors surface either directly or wrapped in an io::Error.
            if text.contains("certificate") || text.contains("Certificate") {
                return self.untrusted(&at, &text);
            }
            if text.contains("corrupt message") || text.contains("InvalidContentType") {
                return anyhow!(
                    "TLS handshake with {at} failed ({text}): the server does not speak TLS there; \
                     for a plain-HTTP registry use http://{at}"
                );
            }
            if matches!(err, ureq::Error::Rustls(_) | ureq::Error::Tls(_)) {
                return anyhow!("TLS handshake with {at} failed: {text}");
            }
        }
        anyhow!("{what} at {at} failed: {text}")
    }

    /// A certificate that did not verify: blamed on `--ca` when it was given
    /// (an unknown issuer, or a CA of the same name that did not sign it, as
    /// a newly generated one), else on the system trust store.
    fn untrusted(&self, at: &str, text: &str) -> anyhow::Error {
        let issuer = ["UnknownIssuer", "BadSignature", "unknown issuer"]
            .iter()
            .any(|e| text.contains(e));
        match &self.ca {
            Some(ca) if issuer => anyhow!(
                "TLS verification of {at} failed ({text}): the CA in {} (--ca) does not vouch \
                 for it; pass the CA that signed the registry's certificate (for a regbake \
                 appliance, out/client/certs.d/HOST:PORT/ca.crt of the render that made it)",
                ca.display()
            ),
            Some(ca) => anyhow!(
                "TLS verification of {at} failed with the CA in {} (--ca): {text}",
                ca.display()
            ),
            None => anyhow!(
                "TLS verification of {at} failed ({text}): the system trust store does not \
                 vouch for it; pass --ca with the registry's CA certificate (or --insecure for \
                 a throwaway test registry)"
            ),
        }
    }

    /// A failure while the answer's body was read: the request was
    /// answered, so a timeout means the registry stopped sending.
    pub(super) fn fail_body(&self, err: ureq::Error, method: &str, url: &Url) -> anyhow::Error {
        match err {
            ureq::Error::Timeout(ureq::Timeout::PerRead) => anyhow!(
                "{method} {}: {} stopped sending its answer for {} s (--timeout)",
                url.path(),
                host_port(url),
                self.timeout.as_secs()
            ),
            ureq::Error::Timeout(_) => anyhow!(
                "{method} {}: {} did not finish its answer within {} s ({})",
                url.path(),
                host_port(url),
                self.timeout.as_secs(),
                self.budget
            ),
            ureq::Error::BodyExceedsLimit(limit) => anyhow!(
                "{method} {}: the answer from {} is over {}, the most the probe reads for it",
                url.path(),
                host_port(url),
                human(limit)
            ),
            ureq::Error::Io(io) => anyhow!("reading {method} {}: {io}", url.path()),
            other => self.fail(other, method, url),
        }
    }

    /// [`Self::fail_body`] for a body read through `std::io::Read`.
    pub(super) fn body_failed(
        &self,
        err: std::io::Error,
        method: &str,
        url: &Url,
    ) -> anyhow::Error {
        self.fail_body(ureq::Error::from(err), method, url)
    }

    /// An unexpected HTTP status, with the registry's error body.
    pub(super) fn unexpected(&self, resp: &mut Response<Body>, url: &Url) -> anyhow::Error {
        let status = resp.status();
        let from = answered_from(resp, url);
        let body = error_body(resp);
        let mut msg = format!("HTTP {}{body}", status_text(status));
        // What a Go TLS server answers to plain HTTP on its port.
        if url.scheme() == "http" && body.contains("HTTP request to an HTTPS server") {
            let _ = write!(
                msg,
                "\n{} speaks TLS: use https://{}",
                host_port(url),
                host_port(url)
            );
        }
        if self.credentials && !self.same_origin(&from) {
            let _ = write!(msg, "\n{}", self.not_sent(url, &from, status));
        }
        anyhow!(msg)
    }

    /// Why an answer from another origin (an upload Location, or a
    /// redirect) came to a request without credentials.
    pub(super) fn not_sent(&self, request: &Url, from: &Url, status: StatusCode) -> String {
        let there = from.origin().ascii_serialization();
        let place = if from.origin() == request.origin() {
            format!("the registry sent this request to {there}")
        } else {
            format!("the request was redirected to {there}")
        };
        let what = if status == StatusCode::UNAUTHORIZED {
            ", which asked for credentials; none were sent"
        } else {
            ", without credentials"
        };
        format!(
            "{place}{what}: credentials are sent only to {}, the registry they were given for",
            self.base.origin().ascii_serialization()
        )
    }
}

/// The URL that gave the answer: the request's, or where redirects led.
pub(super) fn answered_from(resp: &Response<Body>, request: &Url) -> Url {
    Url::parse(&resp.get_uri().to_string()).unwrap_or_else(|_| request.clone())
}

pub(super) fn status_text(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

/// ": <body>" of an error answer (the registry's JSON errors), trimmed,
/// escaped for the terminal, and bounded: at most [`ERROR_BODY_READ`] bytes
/// are read (within the request's deadline), [`ERROR_BODY_SHOWN`] shown.
pub(super) fn error_body(resp: &mut Response<Body>) -> String {
    let mut raw = Vec::new();
    let complete = resp
        .body_mut()
        .as_reader()
        .take(ERROR_BODY_READ)
        .read_to_end(&mut raw)
        .is_ok();
    let text = printable(String::from_utf8_lossy(&raw).trim());
    let mut shown: String = text.chars().take(ERROR_BODY_SHOWN).collect();
    if shown.is_empty() {
        return String::new();
    }
    if !complete {
        shown.push_str(" … (the rest did not arrive)");
    } else if shown.len() < text.len() || raw.len() as u64 == ERROR_BODY_READ {
        shown.push_str(" … (cut)");
    }
    format!(": {shown}")
}

pub(super) fn host_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
