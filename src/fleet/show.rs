//! `regbake kickstart --status` (the install table of the last serve, from
//! the store, also while a server runs) and `--reset HOST`.

use std::path::Path;

use anyhow::{bail, Result};

use super::status::{self, Stage};
use super::store::{self, Store};
use crate::config::BadInput;
use crate::util::text::printable;
use crate::util::Format;

/// Lines of a failure's log shown under the text table.
const LOG_LINES: usize = 20;

fn open(out: &Path) -> Result<Store> {
    match Store::open_existing(out)? {
        Some(s) => Ok(s),
        None => bail!(
            "no install status in {}: `regbake kickstart --serve` records it",
            store::db_path(out).display()
        ),
    }
}

/// Print the table (or JSON) of the hosts of the last serve.
pub(super) fn status(out: &Path, format: Format) -> Result<()> {
    let hosts = open(out)?.active()?;
    let now = status::now_ms();
    if format == Format::Json {
        let j = status::json(&hosts, now, true);
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    let rows: Vec<&status::HostStatus> = hosts.iter().collect();
    for line in status::table(&rows, now, usize::MAX) {
        println!("{line}");
    }
    println!("{}", status::summary(&hosts));
    for h in hosts.iter().filter(|h| h.stage.failed()) {
        let Some(log) = &h.log else { continue };
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_LINES);
        println!(
            "\n{}: {} at {}; the last {} lines of its log (all of the kept 64 KiB: --format json):",
            h.name,
            h.stage.label(),
            h.failed_at.map_or("-".into(), status::time_text),
            lines.len() - from
        );
        for l in &lines[from..] {
            println!("  | {}", printable(l));
        }
    }
    Ok(())
}

/// Back to never contacted: the next `--serve-once` serves these again.
pub(super) fn reset(out: &Path, names: &[String]) -> Result<()> {
    let _lock = store::lock(out, "--reset")?;
    let mut store = open(out)?;
    let unknown = store.reset(names)?;
    if !unknown.is_empty() {
        return Err(BadInput::Usage {
            flag: "--reset".into(),
            message: format!(
                "no host {} in {}; nothing was reset",
                unknown.join(", "),
                store::db_path(out).display()
            ),
        }
        .into());
    }
    println!(
        "reset {}: {} (their tokens stay the same)",
        names.join(", "),
        Stage::Never.label()
    );
    Ok(())
}
