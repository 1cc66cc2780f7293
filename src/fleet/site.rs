//! What the kickstart server answers from: each served host's kickstart,
//! with its report URL and token filled in, and its token; the hosts by
//! name and by MAC; the live install rows.

use std::collections::HashMap;
use std::sync::Arc;

use super::status::Live;

/// The name of the single kickstart's host (without an inventory).
pub const SINGLE: &str = "ks.cfg";
/// What a rendered kickstart holds for the server to fill in, per host:
/// where to report, and the token. Left empty, the kickstart reports
/// nothing (a kickstart on OEMDRV, or served by something else).
pub const URL_MARK: &str = "REGBAKE_REPORT_URL=''";
pub const TOKEN_MARK: &str = "REGBAKE_REPORT_TOKEN=''";

/// One rendered kickstart, as served.
#[derive(Debug, Clone)]
pub struct Kickstart {
    /// The inventory host name; `None` for the single `ks.cfg`.
    pub host: Option<String>,
    pub mac: Option<String>,
    pub data: Arc<[u8]>,
}

/// How the server serves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The URL the installers reach this server at (no trailing `/`).
    pub base_url: String,
    /// Serve `/ks.cfg` by the MACs of `inst.ks.sendmac`, without a token.
    pub trust_mac: bool,
    /// Stop serving a host's kickstart once its install has begun.
    pub serve_once: bool,
}

/// A prebuilt 200 response: headers then body, in one buffer.
pub(super) struct Page {
    pub(super) full: Vec<u8>,
    pub(super) header_len: usize,
}

impl Page {
    pub(super) fn new(body: &[u8], content_type: &str, extra: &str) -> Self {
        let mut full = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        let header_len = full.len();
        full.extend_from_slice(body);
        Self { full, header_len }
    }
}

/// One served host: its kickstart (with its report URL and token filled
/// in) and its token.
pub(super) struct Host {
    pub(super) name: String,
    pub(super) token: String,
    pub(super) page: Page,
}

/// What the server answers from.
pub struct Site {
    /// Without an inventory: the one host, [`SINGLE`].
    pub(super) single: bool,
    pub(super) hosts: Vec<Host>,
    pub(super) by_name: HashMap<String, usize>,
    /// MAC (lowercase, colons) → host, for `/ks.cfg` with `--trust-mac`.
    pub(super) by_mac: HashMap<String, usize>,
    pub(super) opts: Options,
    pub(super) live: Arc<Live>,
}

/// `data` with every `mark` replaced by `with`.
fn replace(data: &[u8], mark: &str, with: &str) -> Vec<u8> {
    let mark = mark.as_bytes();
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut rest = data;
    while let Some(i) = rest.windows(mark.len()).position(|w| w == mark) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with.as_bytes());
        rest = &rest[i + mark.len()..];
    }
    out.extend_from_slice(rest);
    out
}

impl Site {
    /// The site for `kickstarts`, each with its token (same order); `live`
    /// holds their rows in that order.
    pub fn new(
        kickstarts: Vec<Kickstart>,
        tokens: &[String],
        live: Arc<Live>,
        opts: Options,
    ) -> Self {
        let mut site = Site {
            single: false,
            hosts: Vec::with_capacity(kickstarts.len()),
            by_name: HashMap::new(),
            by_mac: HashMap::new(),
            opts,
            live,
        };
        for (k, token) in kickstarts.into_iter().zip(tokens) {
            let name = match k.host {
                None => {
                    site.single = true;
                    SINGLE.to_string()
                }
                Some(h) => h,
            };
            let url = format!("{}/report/{name}", site.opts.base_url);
            let data = replace(&k.data, URL_MARK, &format!("REGBAKE_REPORT_URL='{url}'"));
            let data = replace(
                &data,
                TOKEN_MARK,
                &format!("REGBAKE_REPORT_TOKEN='{token}'"),
            );
            let i = site.hosts.len();
            if let Some(mac) = k.mac {
                site.by_mac.insert(mac, i);
            }
            site.by_name.insert(name.clone(), i);
            site.hosts.push(Host {
                name,
                token: token.clone(),
                page: Page::new(&data, "text/plain; charset=utf-8", ""),
            });
        }
        site
    }

    /// The host names, in the order of their rows.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The boot parameter that fetches host `i`'s kickstart.
    pub fn boot_param(&self, i: usize) -> Option<String> {
        let h = self.hosts.get(i)?;
        let file = if self.single {
            SINGLE.to_string()
        } else {
            format!("{}.ks", h.name)
        };
        Some(format!(
            "inst.ks={}/ks/{}/{file}",
            self.opts.base_url, h.token
        ))
    }

    /// How many hosts have a MAC (served by it with `--trust-mac`).
    pub fn macs(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_single(&self) -> bool {
        self.single
    }
}
