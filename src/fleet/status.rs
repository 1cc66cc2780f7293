//! What the kickstart server knows of each host's install: its stage (never
//! contacted, kickstart served, installing, %post failed, installed,
//! firstboot failed, ready), when each was reached, from where, and the log
//! tail of a failure. The same rows make the terminal table, `--status`,
//! `/status.json` and the status page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::util::text::printable;

/// Where a host's install is, in the order an install goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    #[default]
    Never,
    Served,
    Installing,
    PostFailed,
    Installed,
    FirstbootFailed,
    Ready,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Never,
        Stage::Served,
        Stage::Installing,
        Stage::PostFailed,
        Stage::Installed,
        Stage::FirstbootFailed,
        Stage::Ready,
    ];

    /// The name in JSON and in the store.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Never => "never_contacted",
            Stage::Served => "kickstart_served",
            Stage::Installing => "installing",
            Stage::PostFailed => "post_failed",
            Stage::Installed => "installed",
            Stage::FirstbootFailed => "firstboot_failed",
            Stage::Ready => "ready",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Never => "never contacted",
            Stage::Served => "kickstart served",
            Stage::Installing => "installing",
            Stage::PostFailed => "%post failed",
            Stage::Installed => "installed, booting",
            Stage::FirstbootFailed => "firstboot failed",
            Stage::Ready => "ready",
        }
    }

    pub fn from_key(key: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.key() == key)
    }

    pub fn failed(self) -> bool {
        matches!(self, Stage::PostFailed | Stage::FirstbootFailed)
    }

    /// The installer has said it runs the kickstart (`--serve-once` stops
    /// serving it from then on).
    pub fn started(self) -> bool {
        self >= Stage::Installing
    }
}

/// What changes a host's stage: the server's own fetch record, or a report
/// from the installer or the installed system (`POST /report/HOST/EVENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Served,
    Pre,
    PostOk,
    PostFailed,
    FirstbootOk,
    FirstbootFailed,
}

impl Event {
    /// The events a report may carry, by their name in the report URL.
    pub const REPORTED: [Event; 5] = [
        Event::Pre,
        Event::PostOk,
        Event::PostFailed,
        Event::FirstbootOk,
        Event::FirstbootFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Served => "served",
            Event::Pre => "pre",
            Event::PostOk => "post-ok",
            Event::PostFailed => "post-failed",
            Event::FirstbootOk => "firstboot-ok",
            Event::FirstbootFailed => "firstboot-failed",
        }
    }

    /// A reported event by its name (`served` is the server's own).
    pub fn reported(name: &str) -> Option<Event> {
        Event::REPORTED.into_iter().find(|e| e.name() == name)
    }

    pub fn from_name(name: &str) -> Option<Event> {
        (name == "served")
            .then_some(Event::Served)
            .or_else(|| Event::reported(name))
    }

    pub fn stage(self) -> Stage {
        match self {
            Event::Served => Stage::Served,
            Event::Pre => Stage::Installing,
            Event::PostOk => Stage::Installed,
            Event::PostFailed => Stage::PostFailed,
            Event::FirstbootOk => Stage::Ready,
            Event::FirstbootFailed => Stage::FirstbootFailed,
        }
    }

    /// Whether the body is kept as the host's log tail.
    pub fn keeps_log(self) -> bool {
        matches!(self, Event::PostFailed | Event::FirstbootFailed)
    }
}

/// One host's install as known: times are milliseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStatus {
    pub name: String,
    pub stage: Stage,
    /// When the current stage was reached.
    pub since: Option<i64>,
    pub served_at: Option<i64>,
    pub installing_at: Option<i64>,
    pub installed_at: Option<i64>,
    pub ready_at: Option<i64>,
    pub failed_at: Option<i64>,
    /// The address the last fetch or report came from.
    pub peer: Option<String>,
    /// The log tail of the last failure (at most [`MAX_LOG`] bytes).
    pub log: Option<String>,
}

/// The most of a failure's log that is kept: its last 64 KiB.
pub const MAX_LOG: usize = 64 * 1024;

impl HostStatus {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    /// The host after `event` at `at` from `peer`; `log` is the report's body.
    pub fn apply(&mut self, event: Event, at: i64, peer: &str, log: Option<&str>) {
        self.stage = event.stage();
        self.since = Some(at);
        self.peer = Some(peer.to_string());
        match event {
            // A fetch or a %pre starts an install afresh.
            Event::Served | Event::Pre => {
                if event == Event::Served {
                    self.served_at = Some(at);
                    self.installing_at = None;
                } else {
                    self.installing_at = Some(at);
                }
                self.installed_at = None;
                self.ready_at = None;
                self.failed_at = None;
                self.log = None;
            }
            Event::PostOk => self.installed_at = Some(at),
            Event::FirstbootOk => {
                self.ready_at = Some(at);
                self.log = None;
            }
            Event::PostFailed | Event::FirstbootFailed => {
                self.failed_at = Some(at);
                self.log = Some(tail(log.unwrap_or_default(), MAX_LOG).to_string());
            }
        }
    }

    /// The install's duration: from the first contact to ready or to the
    /// failure, or until `now` while it goes on.
    pub fn took(&self, now: i64) -> Option<i64> {
        let start = self.served_at.or(self.installing_at)?;
        let end = match self.stage {
            Stage::Ready => self.ready_at,
            s if s.failed() => self.failed_at,
            Stage::Never => None,
            _ => Some(now),
        }?;
        Some((end - start).max(0))
    }

    /// One line that says why a failed host failed: the log's last line
    /// naming a failure or an error, else its last line; escaped.
    pub fn detail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let lines: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.contains("FAILED") || l.contains("error"))
            .or(lines.last())
            .copied()
            .unwrap_or_default();
        printable(line)
    }
}

/// The end of `text`, at most `max` bytes, cut at a character boundary
/// (and after a line break when one is near).
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    match rest.find('\n') {
        Some(i) if i < 200 => &rest[i + 1..],
        _ => rest,
    }
}

/// How many hosts are at each stage.
pub fn counts(hosts: &[HostStatus]) -> BTreeMap<Stage, usize> {
    let mut c = BTreeMap::new();
    for h in hosts {
        *c.entry(h.stage).or_insert(0) += 1;
    }
    c
}

/// `3 hosts: 1 ready, 1 %post failed, 1 never contacted`.
pub fn summary(hosts: &[HostStatus]) -> String {
    let c = counts(hosts);
    let mut parts: Vec<String> = vec![];
    // Outcomes first, then what goes on, then what has not begun.
    for s in [
        Stage::Ready,
        Stage::PostFailed,
        Stage::FirstbootFailed,
        Stage::Installed,
        Stage::Installing,
        Stage::Served,
        Stage::Never,
    ] {
        if let Some(n) = c.get(&s) {
            parts.push(format!("{n} {}", s.label()));
        }
    }
    format!(
        "{} host{}: {}",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// `2026-05-01 10:02:03Z` for a time in milliseconds since the epoch.
pub fn time_text(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".into(),
    }
}

/// `6m12s` for a duration in milliseconds.
pub fn duration_text(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The table's rows as text: `HOST STATE SINCE TOOK FROM DETAIL`, columns
/// as wide as their widest cell; each line at most `width` characters.
pub fn table(hosts: &[&HostStatus], now: i64, width: usize) -> Vec<String> {
    let rows: Vec<[String; 6]> = hosts
        .iter()
        .map(|h| {
            [
                h.name.clone(),
                h.stage.label().to_string(),
                h.since.map_or("-".into(), time_text),
                h.took(now).map_or(String::new(), duration_text),
                h.peer.clone().unwrap_or_default(),
                h.detail(),
            ]
        })
        .collect();
    let head = ["HOST", "STATE", "SINCE", "TOOK", "FROM", "DETAIL"].map(str::to_string);
    let mut widths = head.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    std::iter::once(&head)
        .chain(&rows)
        .map(|r| {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
            let line = line.trim_end();
            line.chars().take(width).collect()
        })
        .collect()
}

/// The hosts of a running server, as recorded: what the status page, the
/// terminal table and `--serve-once` read. Updated after each commit to
/// the store, so what shows here is durable.
#[derive(Debug, Default)]
pub struct Live {
    hosts: Mutex<Vec<HostStatus>>,
    /// Bumped on every change: the terminal redraws when it moved.
    version: AtomicU64,
}

impl Live {
    pub fn new(hosts: Vec<HostStatus>) -> Self {
        Self {
            hosts: Mutex::new(hosts),
            version: AtomicU64::new(0),
        }
    }

    /// The rows, locked (briefly: copy what is needed).
    pub fn hosts(&self) -> MutexGuard<'_, Vec<HostStatus>> {
        // A panic elsewhere leaves whole rows: each change is one assignment.
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn stage(&self, host: usize) -> Stage {
        self.hosts().get(host).map_or(Stage::Never, |h| h.stage)
    }

    /// Apply recorded events, `(host index, event, at, peer, log)`.
    pub fn apply<'a>(
        &self,
        events: impl IntoIterator<Item = (usize, Event, i64, &'a str, Option<&'a str>)>,
    ) {
        let mut hosts = self.hosts();
        for (i, ev, at, peer, log) in events {
            if let Some(h) = hosts.get_mut(i) {
                h.apply(ev, at, peer, log);
            }
        }
        drop(hosts);
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// The rows as JSON, for `--status --format json` (`full_log`: each
/// failure's whole kept tail) and `/status.json` (the last [`EXCERPT`]
/// bytes, with the URL of the rest).
pub fn json(hosts: &[HostStatus], now: i64, full_log: bool) -> serde_json::Value {
    let c = counts(hosts);
    let time = |t: Option<i64>| t.map(time_text);
    let rows: Vec<serde_json::Value> = hosts
        .iter()
        .map(|h| {
            let mut row = serde_json::json!({
                "host": h.name,
                "state": h.stage.key(),
                "label": h.stage.label(),
                "since": time(h.since),
                "served_at": time(h.served_at),
                "installing_at": time(h.installing_at),
                "installed_at": time(h.installed_at),
                "ready_at": time(h.ready_at),
                "failed_at": time(h.failed_at),
                "took_seconds": h.took(now).map(|ms| ms / 1000),
                "took": h.took(now).map(duration_text),
                "from": h.peer,
                "detail": h.log.as_ref().map(|_| h.detail()),
            });
            if let Some(log) = &h.log {
                row["log_tail"] = if full_log {
                    log.clone().into()
                } else {
                    tail(log, EXCERPT).into()
                };
                if !full_log {
                    row["log_url"] = format!("log/{}", h.name).into();
                }
            }
            row
        })
        .collect();
    let counts: serde_json::Map<String, serde_json::Value> = Stage::ALL
        .iter()
        .map(|s| (s.key().to_string(), c.get(s).copied().unwrap_or(0).into()))
        .collect();
    serde_json::json!({
        "generated": time_text(now),
        "total": hosts.len(),
        "summary": summary(hosts),
        "counts": counts,
        "hosts": rows,
    })
}

/// The end of a log shown with each row of the status page.
pub const EXCERPT: usize = 4 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_goes_through_its_stages() {
        let mut h = HostStatus::new("reg1");
        assert_eq!(h.stage, Stage::Never);
        h.apply(Event::Served, 1_000, "192.0.2.5", None);
        h.apply(Event::Pre, 2_000, "192.0.2.5", None);
        assert!(h.stage.started());
        h.apply(
            Event::PostFailed,
            62_000,
            "192.0.2.5",
            Some("a\nregbake: FAILED while x\nthe whole log is y\n"),
        );
        assert_eq!(h.stage, Stage::PostFailed);
        assert_eq!(h.took(99_999), Some(61_000));
        assert_eq!(h.detail(), "regbake: FAILED while x");
        // A new install starts afresh.
        h.apply(Event::Served, 100_000, "192.0.2.5", None);
        assert_eq!((h.log.clone(), h.failed_at), (None, None));
        h.apply(Event::Pre, 101_000, "192.0.2.5", None);
        h.apply(Event::PostOk, 200_000, "192.0.2.5", None);
        h.apply(Event::FirstbootOk, 260_000, "192.0.2.6", None);
        assert_eq!(h.stage, Stage::Ready);
        assert_eq!(h.took(0), Some(160_000));
        assert_eq!(h.peer.as_deref(), Some("192.0.2.6"));
    }

    #[test]
    fn a_kept_log_is_its_last_64_kib_from_a_line_start() {
        let long = format!("{}\nend\n", "é".repeat(40_000));
        let mut h = HostStatus::new("h");
        h.apply(Event::FirstbootFailed, 1, "p", Some(&long));
        let log = h.log.unwrap();
        assert!(
            log.len() <= MAX_LOG && log.ends_with("end\n"),
            "{}",
            log.len()
        );
        assert_eq!(tail("short", 10), "short");
    }

    #[test]
    fn the_table_and_summary_read_as_the_states() {
        let mut a = HostStatus::new("reg1");
        a.apply(Event::Served, 0, "10.0.0.1", None);
        a.apply(Event::FirstbootOk, 372_000, "10.0.0.1", None);
        let mut b = HostStatus::new("reg2-long-name");
        b.apply(
            Event::PostFailed,
            5_000,
            "10.0.0.2",
            Some("boom \u{1b}[31m error\n"),
        );
        let c = HostStatus::new("reg3");
        let hosts = [a, b, c];
        let lines = table(&hosts.iter().collect::<Vec<_>>(), 0, 200);
        assert_eq!(
            lines[0],
            "HOST            STATE            SINCE                 TOOK   FROM      DETAIL"
        );
        assert!(
            lines[1].starts_with(
                "reg1            ready            1970-01-01 00:06:12Z  6m12s  10.0.0.1"
            ),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with("boom \\u{1b}[31m error"), "{}", lines[2]);
        assert_eq!(lines[3], "reg3            never contacted  -");
        assert_eq!(
            summary(&hosts),
            "3 hosts: 1 ready, 1 %post failed, 1 never contacted"
        );
        let j = json(&hosts, 0, false);
        assert_eq!(j["counts"]["ready"], 1);
        assert_eq!(j["counts"]["post_failed"], 1);
        assert_eq!(j["hosts"][1]["log_url"], "log/reg2-long-name");
        assert_eq!(j["hosts"][2]["state"], "never_contacted");
        for s in Stage::ALL {
            assert_eq!(Stage::from_key(s.key()), Some(s));
        }
        for e in Event::REPORTED {
            assert_eq!(Event::from_name(e.name()), Some(e));
        }
    }
}
