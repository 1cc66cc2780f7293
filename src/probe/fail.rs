//! What the probe says when a request fails: transport errors, timeouts and
//! TLS errors as advice, and unexpected answers with the registry's body.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use ureq::http::{Response, StatusCode};
use ureq::Body;
use url::Url;

/// What the messages need to know of the probe's settings.
#[derive(Debug, Clone)]
pub(super) struct Explain {
    /// The registry URL: credentials go only to its origin.
    pub(super) base: Url,
    pub(super) credentials: bool,
    /// `--ca`, named when it does not vouch for the registry's certificate.
    pub(super) ca: Option<PathBuf>,
    /// `--timeout`.
    pub(super) timeout: Duration,
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
                _ => anyhow!("{what}: no answer from {at} within {secs} s (--timeout)"),
            };
        }
        let text = err.to_string();
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
            ureq::Error::Timeout(ureq::Timeout::PerRead | ureq::Timeout::RecvBody) => anyhow!(
                "{method} {}: {} stopped sending its answer for {} s (--timeout)",
                url.path(),
                host_port(url),
                self.timeout.as_secs()
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
        if self.credentials && !self.same_origin(url) {
            let _ = write!(
                msg,
                "\nthe registry sent this request to {}, without credentials: credentials are \
                 sent only to {}, the registry they were given for",
                url.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            );
        }
        anyhow!(msg)
    }
}

pub(super) fn status_text(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

/// ": <body>" of an error answer (the registry's JSON errors), trimmed.
pub(super) fn error_body(resp: &mut Response<Body>) -> String {
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

pub(super) fn host_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
