//! The status page (`/`, `/status`): one HTML document with its style and
//! script inline and a Content-Security-Policy that allows nothing else
//! (no external asset can load, and only this script runs). The rows are
//! in the document as served; the script then polls `status.json` every
//! 2 s and redraws them, keeping open log tails open.

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::Digest as _;

use super::status::{self, HostStatus};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0 0 .3em}#updated{color:#666;font-size:.9em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;\
border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f4}\
tr.st-ready td:nth-child(2){color:#0a6b2d;font-weight:600}\
tr.st-post_failed td:nth-child(2),tr.st-firstboot_failed td:nth-child(2){color:#b00020;font-weight:600}\
tr.st-installing td:nth-child(2),tr.st-installed td:nth-child(2),tr.st-kickstart_served td:nth-child(2){color:#8a5a00}\
tr.st-never_contacted td:nth-child(2){color:#777}\
pre{max-height:24em;overflow:auto;background:#f8f8f8;padding:.5em;white-space:pre-wrap}";

const SCRIPT: &str = r"(function () {
  var body = document.querySelector('#hosts tbody');
  function cell(tr, text) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : text;
    tr.appendChild(td);
    return td;
  }
  function render(s) {
    var open = {};
    body.querySelectorAll('details[open]').forEach(function (d) { open[d.dataset.host] = true; });
    document.getElementById('summary').textContent = s.summary;
    document.getElementById('updated').textContent = 'updated ' + s.generated + ', live';
    var rows = document.createDocumentFragment();
    s.hosts.forEach(function (h) {
      var tr = document.createElement('tr');
      tr.className = 'st-' + h.state;
      tr.dataset.host = h.host;
      tr.dataset.state = h.state;
      cell(tr, h.host);
      cell(tr, h.label);
      cell(tr, h.since || '-');
      cell(tr, h.took);
      cell(tr, h.from);
      var d = cell(tr, h.detail);
      if (h.log_tail) {
        var det = document.createElement('details');
        det.dataset.host = h.host;
        det.open = !!open[h.host];
        var sum = document.createElement('summary');
        sum.textContent = 'log tail';
        var pre = document.createElement('pre');
        pre.textContent = h.log_tail;
        var a = document.createElement('a');
        a.href = h.log_url;
        a.textContent = 'all of the kept tail (64 KiB)';
        det.append(sum, pre, a);
        d.appendChild(det);
      }
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }
  function poll() {
    fetch('status.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(render)
      .catch(function () {
        document.getElementById('updated').textContent = 'the server does not answer; trying again';
      })
      .finally(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();";

/// The page's Content-Security-Policy: only its own style and script, and
/// requests to this server.
pub(super) fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash =
            |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s));
        format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page with the rows as they are now.
pub(super) fn html(hosts: &[HostStatus], now: i64) -> String {
    let mut rows = String::new();
    for h in hosts {
        let key = h.stage.key();
        let name = escape(&h.name);
        let _ = write!(
            rows,
            "<tr class=\"st-{key}\" data-host=\"{name}\" data-state=\"{key}\"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}",
            escape(h.stage.label()),
            h.since.map_or("-".into(), status::time_text),
            h.took(now).map_or(String::new(), status::duration_text),
            escape(h.peer.as_deref().unwrap_or_default()),
            escape(&h.detail()),
        );
        if let Some(log) = &h.log {
            let _ = write!(
                rows,
                "<details data-host=\"{name}\"><summary>log tail</summary><pre>{}</pre><a href=\"log/{name}\">all of the kept tail (64 KiB)</a></details>",
                escape(status::tail(log, status::EXCERPT))
            );
        }
        rows.push_str("</td></tr>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>regbake install status</title><style>{STYLE}</style></head>\n<body>\
<h1>regbake install status</h1><p id=\"summary\">{}</p><p id=\"updated\">updated {}</p>\n\
<table id=\"hosts\"><thead><tr><th>Host</th><th>State</th><th>Since (UTC)</th><th>Took</th>\
<th>From</th><th>Detail</th></tr></thead><tbody>\n{rows}</tbody></table>\n\
<script>{SCRIPT}</script>\n</body></html>\n",
        escape(&status::summary(hosts)),
        status::time_text(now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::status::Event;

    #[test]
    fn the_page_escapes_what_hosts_report() {
        let mut h = HostStatus::new("reg1");
        h.apply(
            Event::PostFailed,
            0,
            "10.0.0.1",
            Some("<script>alert(1)</script> FAILED & \"x\"\n"),
        );
        let page = html(&[h], 0);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; FAILED &amp; &quot;x&quot;"));
        assert!(page.contains("data-host=\"reg1\" data-state=\"post_failed\""));
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(csp().contains("script-src 'sha256-"));
    }
}
