//! Starting `regbake kickstart --serve`: where the installers reach the
//! server (`--report-url`, else the bound address), each host's token from
//! the status store, the boot parameters (`out/fleet/boot-params`, 0600:
//! they hold the tokens), then the server, the store's writer and the live
//! table.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::recorder::Recorder;
use super::serve::{Kickstart, Options, Site, SINGLE};
use super::server::{serve, Shared};
use super::slots::Limits;
use super::status::Live;
use super::store::{self, Store};
use crate::config::{BadInput, Problem};

/// `--serve ADDR` and `--report-url URL`, checked before anything renders.
pub(super) struct Plan {
    addr: String,
    /// The URL the installers reach the server at, without a trailing `/`.
    base_url: Option<String>,
    pub(super) trust_mac: bool,
    pub(super) serve_once: bool,
}

/// Check `--report-url`: an http(s) URL with a host, no query, and nothing
/// that would need quoting in the kickstart's shell.
fn report_url(url: &str) -> Result<String> {
    let bad =
        |why: &str| anyhow::Error::from(BadInput::Arg(Problem::new("--report-url", url, why)));
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("expected an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("expected a host the installers reach"));
    }
    if parsed
        .host_str()
        .is_some_and(|h| h == "0.0.0.0" || h == "[::]")
    {
        return Err(bad(
            "0.0.0.0 is not an address the installers can reach: give one of this machine's",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(bad(
            "expected scheme://host[:port][/path] without a query, fragment or login",
        ));
    }
    let text = parsed.as_str().trim_end_matches('/').to_string();
    if text.contains(['\'', '"', '\\', '$', '`', ' ']) {
        return Err(bad("quotes, backslashes, $ and spaces cannot be in it"));
    }
    Ok(text)
}

/// Check the serving flags, before any render.
pub(super) fn plan(
    serve: Option<&str>,
    url: Option<&str>,
    trust_mac: bool,
    serve_once: bool,
) -> Result<Option<Plan>> {
    let Some(addr) = serve else {
        return Ok(None);
    };
    let base_url = url.map(report_url).transpose()?;
    if base_url.is_none() {
        if let Ok(sa) = addr.parse::<SocketAddr>() {
            if sa.ip().is_unspecified() {
                return Err(unreachable(addr));
            }
        }
    }
    Ok(Some(Plan {
        addr: addr.to_string(),
        base_url,
        trust_mac,
        serve_once,
    }))
}

fn unreachable(addr: &str) -> anyhow::Error {
    let port = addr.rsplit(':').next().unwrap_or("PORT");
    BadInput::Arg(Problem::new(
        "--serve",
        addr,
        format!(
            "listens on every address, and the installers need one to fetch their \
             kickstarts from and to report to: add --report-url http://ADDRESS:{port} \
             with an address of this machine that they reach"
        ),
    ))
    .into()
}

/// Bind, register the hosts, write the boot parameters, serve until Ctrl-C.
pub(super) fn run(
    out: &Path,
    plan: Plan,
    kickstarts: Vec<Kickstart>,
    out_lock: crate::output::OutLock,
) -> Result<()> {
    // One server per out dir: the store has one writer.
    let _lock = store::lock(out, "serving from the same out dir")?;
    let listener =
        TcpListener::bind(&plan.addr).with_context(|| format!("binding {}", plan.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let base_url = match plan.base_url {
        Some(u) => u,
        None if local.ip().is_unspecified() => return Err(unreachable(&plan.addr)),
        None => format!("http://{local}"),
    };
    let names: Vec<String> = kickstarts
        .iter()
        .map(|k| k.host.clone().unwrap_or_else(|| SINGLE.to_string()))
        .collect();
    let mut store = Store::open(out)?;
    let reg = store.register(&names)?;
    let live = Arc::new(Live::new(reg.hosts));
    let opts = Options {
        base_url: base_url.clone(),
        trust_mac: plan.trust_mac,
        serve_once: plan.serve_once,
    };
    let site = Site::new(kickstarts, &reg.tokens, live.clone(), opts);
    let params = out.join(store::DIR).join("boot-params");
    write_params(&site, &names, &params)?;
    drop(out_lock);
    let limits = Limits::for_this_process();

    println!("listening on http://{local}");
    if base_url != format!("http://{local}") {
        println!("installers reach it as {base_url} (kickstarts and reports)");
    }
    println!(
        "boot parameters (append to the installer's kernel command line), one per host in {} \
         (each holds its host's token: keep it private):",
        params.display()
    );
    let file = if site.is_single() {
        SINGLE.to_string()
    } else {
        format!("{}.ks", names[0])
    };
    println!("  {}: inst.ks={base_url}/ks/TOKEN/{file}", names[0]);
    if plan.trust_mac && site.macs() > 0 {
        println!(
            "  hosts with mac= (--trust-mac): inst.ks={base_url}/ks.cfg inst.ks.sendmac   ({} of {} hosts)",
            site.macs(),
            names.len()
        );
    }
    println!(
        "install status of {} host{} ({} new) in {}: {base_url}/status, {base_url}/status.json, \
         regbake kickstart --status",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        reg.new,
        store::db_path(out).display()
    );
    if reg.retired > 0 {
        println!(
            "({} host{} of earlier serves not served now: kept, not shown)",
            reg.retired,
            if reg.retired == 1 { "" } else { "s" }
        );
    }
    if plan.serve_once {
        println!("--serve-once: each kickstart is served until its install has begun");
    }
    println!(
        "at most {} connections at once; a request must arrive within {} s",
        limits.cap,
        limits.head.as_secs()
    );
    println!("Ctrl-C stops the server.");

    let recorder = Recorder::start(store, live.clone(), names)?;
    super::console::start(live);
    serve(listener, Shared { site, recorder }, limits)
}

/// `HOST inst.ks=URL` per host, owner-only.
fn write_params(site: &Site, names: &[String], path: &Path) -> Result<()> {
    let mut text = String::from(
        "# regbake kickstart --serve: each host's boot parameter (append it to the installer's\n\
         # kernel command line). Each holds its host's token: keep this file private.\n",
    );
    for (i, n) in names.iter().enumerate() {
        if let Some(p) = site.boot_param(i) {
            text.push_str(&format!("{n} {p}\n"));
        }
    }
    if site.options().trust_mac && site.macs() > 0 {
        text.push_str(&format!(
            "# hosts with mac= may also boot with: inst.ks={}/ks.cfg inst.ks.sendmac\n",
            site.options().base_url
        ));
    }
    crate::util::fsx::write_atomic(path, text.as_bytes(), 0o600, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_url_must_be_reachable_and_shell_safe() {
        assert_eq!(
            report_url("http://192.0.2.5:8080/").unwrap(),
            "http://192.0.2.5:8080"
        );
        assert_eq!(
            report_url("https://prov.example/regbake/").unwrap(),
            "https://prov.example/regbake"
        );
        for bad in [
            "ftp://x/",
            "http://0.0.0.0:8080",
            "http://x/?a=1",
            "http://u:p@x/",
            "http://x/a'b",
            "not a url",
        ] {
            assert!(report_url(bad).is_err(), "{bad}");
        }
    }
}
