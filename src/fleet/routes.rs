//! Where each request of the kickstart server goes (see `fleet::serve`):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /ks/TOKEN/HOST.ks` (`/ks/TOKEN/ks.cfg` without an inventory) | the host's kickstart, when TOKEN is its token (compared in constant time) |
//! | `GET /ks.cfg` with `X-RHN-Provisioning-MAC-*` | with `--trust-mac`, the kickstart of the host with that MAC |
//! | `POST /report/HOST/EVENT`, `Authorization: Bearer TOKEN` | the install's report, recorded |
//! | `GET /`, `/status`, `/status.json`, `/log/HOST` | the status page, its data, a failure's log tail |
//!
//! With `--serve-once`, a kickstart is gone (410) once its install began.

use subtle::ConstantTimeEq as _;

use super::page;
use super::site::{Site, SINGLE};
use super::status::{self, Event};
use crate::config::parse_mac;

/// The header anaconda sends per interface with `inst.ks.sendmac`:
/// `X-RHN-Provisioning-MAC-0: eth0 52:54:00:12:34:56`.
pub(super) const MAC_HEADER: &str = "x-rhn-provisioning-mac-";

/// The MAC headers of a request: the addresses read, and the headers (name,
/// value) whose value held none.
#[derive(Debug, Default)]
pub(super) struct Macs {
    pub(super) found: Vec<String>,
    malformed: Vec<(String, String)>,
}

impl Macs {
    /// `eth0 52:54:00:12:34:56`: the MAC is the last word.
    pub(super) fn add(&mut self, name: &str, value: &str) {
        match value.split_whitespace().last().and_then(parse_mac) {
            Some(mac) => self.found.push(mac),
            None => self.malformed.push((name.to_string(), value.to_string())),
        }
    }
}

/// A page made for one request.
pub(super) struct Made {
    pub(super) body: Vec<u8>,
    pub(super) content_type: &'static str,
    /// More header lines, each ending in CRLF.
    pub(super) headers: String,
}

/// A GET's outcome.
pub(super) enum Answer {
    /// Host `.0`'s kickstart.
    Kickstart(usize),
    Page(Made),
    Error(u16, String),
}

type Refusal = (u16, String);

/// The path's segments, percent-decoded; anything that could reach
/// elsewhere (`..`, a slash or backslash inside a segment, NUL) is refused.
fn segments(raw: &str) -> Result<Vec<String>, Refusal> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return Err((400, "bad request target: expected an absolute path".into()));
    };
    if rest.is_empty() {
        return Ok(vec![]);
    }
    rest.split('/')
        .map(|seg| {
            let s = percent_encoding::percent_decode_str(seg)
                .decode_utf8()
                .map_err(|_| (400, "bad path encoding".to_string()))?;
            if s.contains(['/', '\\', '\0']) || s.contains("..") {
                return Err((400, "bad path: only plain names are served".to_string()));
            }
            Ok(s.into_owned())
        })
        .collect()
}

/// `text` with every run of 16 or more hex digits (what a token looks
/// like) replaced by `…`: a token in a mistyped URL stays out of the log.
pub(super) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 16 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The request path as logged: tokens replaced by `…` (see [`redact`]),
/// cut at 200 characters.
pub(super) fn logged_path(raw: &str) -> String {
    redact(raw).chars().take(200).collect()
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Where the boot parameters are, for refusals that point there.
const PARAMS: &str = "out/fleet/boot-params";

/// Host `i`'s kickstart, unless `--serve-once` closed it.
fn kickstart(site: &Site, i: usize) -> Answer {
    if site.opts.serve_once && site.live.stage(i).started() {
        let name = &site.hosts[i].name;
        return Answer::Error(
            410,
            format!(
                "host {name}'s install has begun and this server serves each kickstart once \
                 (--serve-once): `regbake kickstart --reset {name}` serves it again"
            ),
        );
    }
    Answer::Kickstart(i)
}

/// Route a GET (or HEAD).
pub(super) fn get(site: &Site, raw: &str, macs: &Macs) -> Answer {
    let segs = match segments(raw) {
        Ok(s) => s,
        Err((status, why)) => return Answer::Error(status, why),
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let now = status::now_ms();
    match segs.as_slice() {
        [] | ["status"] => Answer::Page(Made {
            body: page::html(&site.live.hosts(), now).into_bytes(),
            content_type: "text/html; charset=utf-8",
            headers: format!(
                "Content-Security-Policy: {}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
                page::csp()
            ),
        }),
        ["status.json"] => {
            let json = status::json(&site.live.hosts(), now, false);
            Answer::Page(Made {
                body: format!("{json}\n").into_bytes(),
                content_type: "application/json",
                headers: "X-Content-Type-Options: nosniff\r\n".into(),
            })
        }
        ["log", name] => {
            let log = site
                .by_name
                .get(*name)
                .and_then(|i| site.live.hosts().get(*i).and_then(|h| h.log.clone()));
            match log {
                Some(log) => Answer::Page(Made {
                    body: log.into_bytes(),
                    content_type: "text/plain; charset=utf-8",
                    headers: "X-Content-Type-Options: nosniff\r\n".into(),
                }),
                None => Answer::Error(404, format!("no failure log for host {name:?}")),
            }
        }
        ["ks", token, file] => {
            let host = if site.single {
                (*file == SINGLE).then_some(0)
            } else {
                file.strip_suffix(".ks")
                    .and_then(|n| site.by_name.get(n).copied())
            };
            match host {
                None => Answer::Error(404, format!("no kickstart {file:?}")),
                Some(i) if !same(token, &site.hosts[i].token) => Answer::Error(
                    403,
                    format!(
                        "wrong token for {file}: each host's URL is in {PARAMS} on the server"
                    ),
                ),
                Some(i) => kickstart(site, i),
            }
        }
        ["ks.cfg"] if site.single => Answer::Error(
            403,
            format!("the kickstart is served with its token: inst.ks=…/ks/TOKEN/ks.cfg, as in {PARAMS} on the server"),
        ),
        ["ks.cfg"] => by_mac(site, macs),
        [file] if file.ends_with(".ks") => match site.by_name.get(&file[..file.len() - 3]) {
            Some(_) => Answer::Error(
                403,
                format!("kickstarts are served with their host's token: inst.ks=…/ks/TOKEN/{file}, as in {PARAMS} on the server"),
            ),
            None => Answer::Error(404, format!("no kickstart for host {:?}", &file[..file.len() - 3])),
        },
        _ => Answer::Error(
            404,
            "not found: this server has /ks/TOKEN/HOST.ks, /status, /status.json and /report/".into(),
        ),
    }
}

/// `/ks.cfg` for an inventory: by the MACs of `inst.ks.sendmac`, only
/// with `--trust-mac`.
fn by_mac(site: &Site, macs: &Macs) -> Answer {
    if !site.opts.trust_mac {
        return Answer::Error(
            403,
            format!(
                "kickstarts are served with their host's token: inst.ks=…/ks/TOKEN/HOST.ks, as in \
                 {PARAMS} on the server; to serve them by MAC (inst.ks.sendmac), start the server \
                 with --trust-mac"
            ),
        );
    }
    // Any NIC of the machine may be the one in the inventory; a header
    // regbake cannot read (an InfiniBand address) only matters when no
    // other one matched.
    if let Some(i) = macs.found.iter().find_map(|m| site.by_mac.get(m)) {
        return kickstart(site, *i);
    }
    if let Some((name, value)) = macs.malformed.first() {
        return Answer::Error(
            400,
            format!(
                "malformed {name} header {value:?}: expected INTERFACE MAC, \
                 e.g. \"eth0 52:54:00:12:34:56\"; fetch /ks/TOKEN/HOST.ks instead"
            ),
        );
    }
    if macs.found.is_empty() {
        return Answer::Error(
            404,
            "no X-RHN-Provisioning-MAC-* header: boot with inst.ks.sendmac, or fetch /ks/TOKEN/HOST.ks"
                .into(),
        );
    }
    Answer::Error(
        404,
        format!(
            "no inventory host has MAC {}: add mac=… to its host line, or fetch /ks/TOKEN/HOST.ks",
            macs.found.join(", ")
        ),
    )
}

/// A report's host and event, when the path names them and `bearer` is
/// the host's token.
pub(super) fn report(
    site: &Site,
    raw: &str,
    bearer: Option<&str>,
) -> Result<(usize, Event), Refusal> {
    let segs = segments(raw)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ["report", name, event] = segs.as_slice() else {
        return Err((
            405,
            "only reports are posted: POST /report/HOST/EVENT".into(),
        ));
    };
    let Some(event) = Event::reported(event) else {
        return Err((
            404,
            format!(
                "unknown event {event:?}: expected one of {}",
                Event::REPORTED.map(Event::name).join(", ")
            ),
        ));
    };
    let Some(&i) = site.by_name.get(*name) else {
        return Err((404, format!("no host {name:?} is served here")));
    };
    match bearer {
        None => Err((
            401,
            format!("a report needs host {name}'s token (Authorization: Bearer)"),
        )),
        Some(t) if !same(t, &site.hosts[i].token) => {
            Err((403, format!("wrong token for host {name}")))
        }
        Some(_) => Ok((i, event)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::serve::{step, Action, Kickstart, Options, Reply, Site, Step, MAX_BODY};
    use super::super::status::{HostStatus, Live};
    use super::*;

    const T1: &str = "11111111111111111111111111111111";
    const T2: &str = "22222222222222222222222222222222";

    fn site(trust_mac: bool, serve_once: bool) -> Site {
        let ks = |host: &str, mac: Option<&str>| Kickstart {
            host: Some(host.into()),
            mac: mac.map(str::to_string),
            data: format!("# {host}\nREGBAKE_REPORT_URL=''\nREGBAKE_REPORT_TOKEN=''\n")
                .into_bytes()
                .into(),
        };
        let live = Arc::new(Live::new(vec![
            HostStatus::new("reg1"),
            HostStatus::new("reg2"),
        ]));
        Site::new(
            vec![ks("reg1", Some("52:54:00:00:00:01")), ks("reg2", None)],
            &[T1.to_string(), T2.to_string()],
            live,
            Options {
                base_url: "http://192.0.2.5:8080".into(),
                trust_mac,
                serve_once,
            },
        )
    }

    fn reply<'a>(site: &'a Site, req: &str) -> Reply<'a> {
        match step(site, req.as_bytes()) {
            Step::Reply(r) => r,
            Step::More => panic!("incomplete: {req:?}"),
            Step::Continue => panic!("continue: {req:?}"),
        }
    }

    fn get(site: &Site, path: &str, headers: &str) -> (u16, String) {
        let r = reply(
            site,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"),
        );
        let text = String::from_utf8_lossy(&r.out).into_owned();
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (r.status, body)
    }

    #[test]
    fn a_kickstart_is_served_only_with_its_token() {
        let s = site(false, false);
        let (status, body) = get(&s, &format!("/ks/{T1}/reg1.ks"), "");
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!(
                "# reg1\nREGBAKE_REPORT_URL='http://192.0.2.5:8080/report/reg1'\nREGBAKE_REPORT_TOKEN='{T1}'\n"
            )
        );
        assert_eq!(get(&s, &format!("/ks/{T2}/reg1.ks"), "").0, 403);
        assert_eq!(get(&s, &format!("/ks/{T1}x/reg1.ks"), "").0, 403);
        assert_eq!(get(&s, &format!("/ks/{T1}/reg3.ks"), "").0, 404);
        let (status, body) = get(&s, "/reg1.ks", "");
        assert_eq!(status, 403);
        assert!(body.contains("out/fleet/boot-params"), "{body}");
        assert_eq!(get(&s, "/reg3.ks", "").0, 404);
        // By MAC only with --trust-mac.
        let mac = "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:01\r\n";
        let (status, body) = get(&s, "/ks.cfg", mac);
        assert_eq!(status, 403);
        assert!(body.contains("--trust-mac"), "{body}");
        let trusting = site(true, false);
        let (status, body) = get(&trusting, "/ks.cfg", mac);
        assert_eq!(status, 200);
        assert!(body.starts_with("# reg1\n"));
        assert_eq!(
            get(
                &trusting,
                "/ks.cfg",
                "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:09\r\n"
            )
            .0,
            404
        );
        assert_eq!(
            get(
                &trusting,
                "/ks.cfg",
                "X-RHN-Provisioning-MAC-0: eth0 zz\r\n"
            )
            .0,
            400
        );
        // The token is not in what is logged.
        let r = reply(&s, &format!("GET /ks/{T1}/reg1.ks HTTP/1.1\r\n\r\n"));
        assert_eq!(r.path, "/ks/…/reg1.ks");
        assert!(matches!(r.action, Some(Action::Served(0))));
        let r = reply(&s, &format!("GET /ks//{T1}/reg1.ks HTTP/1.1\r\n\r\n"));
        assert_eq!(r.path, "/ks//…/reg1.ks");
    }

    #[test]
    fn serve_once_closes_a_kickstart_once_its_install_began() {
        let s = site(true, true);
        assert_eq!(get(&s, &format!("/ks/{T1}/reg1.ks"), "").0, 200);
        s.live().apply([(0, Event::Served, 1, "p", None)]);
        assert_eq!(get(&s, &format!("/ks/{T1}/reg1.ks"), "").0, 200);
        s.live().apply([(0, Event::Pre, 2, "p", None)]);
        let (status, body) = get(&s, &format!("/ks/{T1}/reg1.ks"), "");
        assert_eq!(status, 410, "{body}");
        assert!(body.contains("regbake kickstart --reset reg1"), "{body}");
        let mac = "X-RHN-Provisioning-MAC-0: eth0 52:54:00:00:00:01\r\n";
        assert_eq!(get(&s, "/ks.cfg", mac).0, 410);
        assert_eq!(get(&s, &format!("/ks/{T2}/reg2.ks"), "").0, 200);
    }

    fn post(path: &str, headers: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_report_needs_its_hosts_token_and_a_bounded_body() {
        let s = site(false, false);
        let auth = format!("Authorization: Bearer {T1}\r\n");
        let r = reply(&s, &post("/report/reg1/post-failed", &auth, "the log\n"));
        assert_eq!(r.status, 200);
        match r.action {
            Some(Action::Report { host, event, body }) => {
                assert_eq!(
                    (host, event, body.as_str()),
                    (0, Event::PostFailed, "the log\n")
                );
            }
            other => panic!("{other:?}"),
        }
        let refused = |req: String, want: u16| {
            let r = reply(&s, &req);
            assert_eq!(
                r.status,
                want,
                "{req:?}: {}",
                String::from_utf8_lossy(&r.out)
            );
            assert!(r.refused && r.action.is_none(), "{req:?}");
        };
        refused(post("/report/reg1/pre", "", ""), 401);
        refused(
            post(
                "/report/reg1/pre",
                &format!("Authorization: Bearer {T2}\r\n"),
                "",
            ),
            403,
        );
        refused(post("/report/reg2/pre", &auth, ""), 403);
        refused(post("/report/reg1/done", &auth, ""), 404);
        refused(post("/report/reg9/pre", &auth, ""), 404);
        refused(post(&format!("/ks/{T1}/reg1.ks"), &auth, ""), 405);
        refused(
            format!(
                "POST /report/reg1/pre HTTP/1.1\r\n{auth}Content-Length: {}\r\n\r\n",
                MAX_BODY + 1
            ),
            413,
        );
        refused(format!("POST /report/reg1/pre HTTP/1.1\r\n{auth}\r\n"), 411);
        refused(
            format!("POST /report/reg1/pre HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"),
            400,
        );
        refused(
            format!("POST /report/reg1/pre HTTP/1.1\r\n{auth}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            400,
        );
        // A body still on its way: read on; the client waiting for
        // `100 Continue` gets it.
        let head =
            format!("POST /report/reg1/post-failed HTTP/1.1\r\n{auth}Content-Length: 10\r\n\r\n");
        assert!(matches!(
            step(&s, format!("{head}12345").as_bytes()),
            Step::More
        ));
        let expect = format!(
            "POST /report/reg1/post-failed HTTP/1.1\r\n{auth}Expect: 100-continue\r\nContent-Length: 10\r\n\r\n"
        );
        assert!(matches!(step(&s, expect.as_bytes()), Step::Continue));
        // A full body of the largest size, then the next request.
        let big = "x".repeat(MAX_BODY);
        let two = format!(
            "{}GET /status.json HTTP/1.1\r\n\r\n",
            post("/report/reg1/post-failed", &auth, &big)
        );
        let r = reply(&s, &two);
        assert_eq!(r.status, 200);
        assert!(two[r.consumed..].starts_with("GET /status.json"));
    }

    #[test]
    fn the_status_page_and_json_show_the_rows() {
        let s = site(false, false);
        s.live()
            .apply([(1, Event::PostFailed, 5, "10.0.0.2", Some("<b>FAILED</b>\n"))]);
        let r = reply(&s, "GET / HTTP/1.1\r\n\r\n");
        let page = String::from_utf8_lossy(&r.out);
        assert!(
            r.quiet && page.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html"),
            "{page}"
        );
        assert!(
            page.contains("Content-Security-Policy: default-src 'none';"),
            "{page}"
        );
        assert!(
            page.contains("data-host=\"reg2\" data-state=\"post_failed\""),
            "{page}"
        );
        assert!(page.contains("&lt;b&gt;FAILED&lt;/b&gt;"));
        let (status, body) = get(&s, "/status.json", "");
        assert_eq!(status, 200);
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["hosts"][1]["state"], "post_failed");
        assert_eq!(j["hosts"][1]["log_tail"], "<b>FAILED</b>\n");
        assert_eq!(get(&s, "/log/reg2", ""), (200, "<b>FAILED</b>\n".into()));
        assert_eq!(get(&s, "/log/reg1", "").0, 404);
        // HEAD: the headers alone.
        let r = reply(&s, "HEAD /status HTTP/1.1\r\n\r\n");
        assert!(String::from_utf8_lossy(&r.out).ends_with("\r\n\r\n"));
    }

    #[test]
    fn odd_paths_are_refused() {
        let s = site(true, false);
        for bad in [
            "/../reg1.ks",
            "/..%2freg1.ks",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/reg1.ks%00",
            "/ks/%2e%2e/reg1.ks",
            "/%ff.ks",
            "reg1.ks",
        ] {
            assert_eq!(get(&s, bad, "").0, 400, "{bad}");
        }
        for missing in ["/a/reg1.ks", "/ks/x", "/ks", "/report/reg1/pre"] {
            assert_eq!(get(&s, missing, "").0, 404, "{missing}");
        }
    }
}
