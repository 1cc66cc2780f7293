//! The server's terminal: the access and report log on stderr, and the
//! live install table on stdout. On a terminal the table is redrawn in
//! place (at most twice a second, when something changed), and log lines
//! scroll above it; otherwise a summary line is printed when the counts
//! change.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::status::{self, HostStatus, Live, Stage};

struct Screen {
    /// The table as last drawn, and how many lines of it are on screen.
    lines: Vec<String>,
    drawn: usize,
    table_on_tty: bool,
    log_on_same_tty: bool,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    lines: vec![],
    drawn: 0,
    table_on_tty: false,
    log_on_same_tty: false,
});

fn screen() -> std::sync::MutexGuard<'static, Screen> {
    SCREEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn erase(s: &mut Screen, out: &mut impl Write) {
    if s.drawn > 0 {
        // To the start of the table's first line, and clear below.
        let _ = write!(out, "\x1b[{}F\x1b[J", s.drawn);
        s.drawn = 0;
    }
}

fn draw(s: &mut Screen, out: &mut impl Write) {
    let mut text = s.lines.join("\n");
    text.push('\n');
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    s.drawn = s.lines.len();
}

/// One log line on stderr (whole: one write), above the table.
pub(super) fn line(text: &str) {
    let mut s = screen();
    let mut text = text.to_string();
    text.push('\n');
    if s.log_on_same_tty && s.drawn > 0 {
        let mut out = std::io::stdout().lock();
        erase(&mut s, &mut out);
        let _ = out.flush();
        let _ = std::io::stderr().write_all(text.as_bytes());
        draw(&mut s, &mut out);
    } else {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// Show `live` from now on until the process ends.
pub(super) fn start(live: Arc<Live>) {
    let started = Instant::now();
    {
        let mut s = screen();
        s.table_on_tty = std::io::stdout().is_terminal();
        s.log_on_same_tty = s.table_on_tty && std::io::stderr().is_terminal();
    }
    let _ = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut seen = u64::MAX;
            let mut drawn_at: Option<Instant> = None;
            let mut said = String::new();
            loop {
                let v = live.version();
                let on_tty = screen().table_on_tty;
                // On a terminal, redrawn each second too, for the times.
                let stale =
                    on_tty && drawn_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if v != seen || stale {
                    seen = v;
                    let hosts = live.hosts().clone();
                    if on_tty {
                        let (w, h) = terminal_size();
                        let lines = table_screen(&hosts, status::now_ms(), started.elapsed(), w, h);
                        let mut s = screen();
                        let mut out = std::io::stdout().lock();
                        erase(&mut s, &mut out);
                        s.lines = lines;
                        draw(&mut s, &mut out);
                        drawn_at = Some(Instant::now());
                    } else {
                        let now = format!("status: {}", status::summary(&hosts));
                        if now != said {
                            println!("{now}");
                            said = now;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
}

/// Columns and rows of the terminal on stdout (80x24 when unknown).
fn terminal_size() -> (usize, usize) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes the struct it is given.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &raw mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (usize::from(ws.ws_col), usize::from(ws.ws_row))
    } else {
        (80, 24)
    }
}

/// Which rows the live table shows first: failures, then installs under
/// way, then the ready ones, then those not begun.
fn rank(s: Stage) -> u8 {
    match s {
        Stage::PostFailed | Stage::FirstbootFailed => 0,
        Stage::Installing | Stage::Installed | Stage::Served => 1,
        Stage::Ready => 2,
        Stage::Never => 3,
    }
}

/// The live table: a progress line with the counts, then as many rows as
/// fit in `height` (at most 20), each cut to `width`.
pub(super) fn table_screen(
    hosts: &[HostStatus],
    now: i64,
    up: Duration,
    width: usize,
    height: usize,
) -> Vec<String> {
    let total = hosts.len();
    let c = status::counts(hosts);
    let ready = c.get(&Stage::Ready).copied().unwrap_or(0);
    let failed = c.get(&Stage::PostFailed).copied().unwrap_or(0)
        + c.get(&Stage::FirstbootFailed).copied().unwrap_or(0);
    let bar_width = 20;
    let filled = (ready + failed)
        .saturating_mul(bar_width)
        .checked_div(total)
        .unwrap_or(0);
    let mut lines = vec![format!(
        "[{}{}] {} of {total} done ({ready} ready, {failed} failed), serving for {}",
        "#".repeat(filled),
        "-".repeat(bar_width - filled),
        ready + failed,
        status::duration_text(i64::try_from(up.as_millis()).unwrap_or(i64::MAX)),
    )];
    lines.push(status::summary(hosts));
    let mut order: Vec<&HostStatus> = hosts.iter().collect();
    order.sort_by_key(|h| (rank(h.stage), std::cmp::Reverse(h.since)));
    let room = height.saturating_sub(6).clamp(3, 20);
    let shown = order.len().min(room);
    lines.extend(status::table(&order[..shown], now, width));
    if shown < order.len() {
        lines.push(format!(
            "… and {} more (regbake kickstart --status, or the status page)",
            order.len() - shown
        ));
    }
    lines
        .into_iter()
        .map(|l| l.chars().take(width.max(1)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::status::Event;

    #[test]
    fn the_live_table_shows_failures_first_and_fits_the_terminal() {
        let mut hosts: Vec<HostStatus> = (0..30)
            .map(|i| HostStatus::new(&format!("reg{i}")))
            .collect();
        hosts[7].apply(Event::PostFailed, 1, "p", Some("x FAILED y\n"));
        hosts[3].apply(Event::FirstbootOk, 2, "p", None);
        let lines = table_screen(&hosts, 10, Duration::from_secs(75), 60, 24);
        assert!(
            lines[0].starts_with("[#-------------------] 2 of 30 done (1 ready, 1 failed)"),
            "{}",
            lines[0]
        );
        let wide = table_screen(&hosts, 10, Duration::from_secs(75), 200, 24);
        assert!(wide[0].ends_with("serving for 1m15s"), "{}", wide[0]);
        assert_eq!(
            lines[1],
            "30 hosts: 1 ready, 1 %post failed, 28 never contacted"
        );
        assert!(lines[3].starts_with("reg7 "), "{lines:?}");
        assert!(lines[4].starts_with("reg3 "), "{lines:?}");
        assert_eq!(lines.len(), 2 + 1 + 18 + 1);
        assert!(lines.last().unwrap().starts_with("… and 12 more"));
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
    }
}
