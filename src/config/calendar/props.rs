//! The schedule grammar against systemd's own reader: values made of the
//! grammar's pieces (weekday names and ranges, dates and times with lists
//! and `N/STEP` repeats, numbers in and just out of range, steps that reach
//! or pass a part's end, impossible dates) and of forms it leaves out
//! (`..`, `*/N`, `~`, `*` minutes). `systemd-analyze calendar` (252 here)
//! reads each, with `TZ=UTC`: a value we accept must parse and have a next
//! elapse; a value in the grammar's form that systemd parses and can fire
//! must be accepted. 219 reads the accepted subset the same way (its
//! `calendarspec.c`, compared in the module docs); it is not installed.

use std::collections::HashMap;
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use super::is_on_calendar;

/// A missing tool fails the test under `REGBAKE_REQUIRE_TOOLS=1` (CI) and
/// skips it otherwise, as tests/it/common.rs's `require_tool`.
fn systemd_analyze() -> bool {
    if which::which("systemd-analyze").is_ok() {
        return true;
    }
    assert!(
        std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "systemd-analyze is required (REGBAKE_REQUIRE_TOOLS=1) but not installed"
    );
    eprintln!("SKIPPED: systemd-analyze is not installed");
    false
}

/// What systemd makes of each value: `None` refused, `Some(fires)` read,
/// with whether it has a next elapse. One process for many values.
fn systemd(values: &[String]) -> Result<HashMap<String, Option<bool>>, TestCaseError> {
    let out = Command::new("systemd-analyze")
        .arg("calendar")
        .arg("--")
        .args(values)
        .env("TZ", "UTC")
        .output()
        .map_err(|e| TestCaseError::fail(format!("systemd-analyze: {e}")))?;
    let mut read: HashMap<String, Option<bool>> =
        values.iter().map(|v| (v.clone(), None)).collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A block per value read; its "Original form" is left out when the
    // value is already in normal form.
    for block in stdout.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(str::to_string)
        };
        let (Some(value), Some(next)) = (
            field("Original form: ").or_else(|| field("Normalized form: ")),
            field("Next elapse: "),
        ) else {
            continue;
        };
        if !read.contains_key(&value) {
            return Err(TestCaseError::fail(format!(
                "systemd-analyze read {value:?}, not one of {values:?}:\n{stdout}"
            )));
        }
        read.insert(value, Some(next != "never"));
    }
    Ok(read)
}

/// A number written as systemd and the grammar take it, sometimes with a
/// leading zero.
fn number(range: std::ops::RangeInclusive<u32>) -> BoxedStrategy<String> {
    (range, any::<bool>())
        .prop_map(|(n, pad)| {
            if pad && n < 10 {
                format!("0{n}")
            } else {
                n.to_string()
            }
        })
        .boxed()
}

/// `N` or `N/STEP` for a part from `least` to `most`: mostly in range,
/// often at or just past its ends, with steps that stay in, reach the end,
/// pass it, or are 0.
fn item(least: u32, most: u32) -> impl Strategy<Value = String> {
    let start = prop_oneof![
        4 => number(least..=most),
        1 => number(least.saturating_sub(1)..=most + 2),
    ];
    let step = prop_oneof![
        3 => number(1..=(most - least) / 2),
        1 => number(0..=most - least + 2),
    ];
    prop_oneof![
        2 => start.clone(),
        3 => (start, step).prop_map(|(n, s)| format!("{n}/{s}")),
    ]
}

/// A part: a `,` list of items, or (when `star`) `*`.
fn part(item: impl Strategy<Value = String> + 'static, star: bool) -> BoxedStrategy<String> {
    let list = prop::collection::vec(item, 1..=3).prop_map(|l| l.join(","));
    if star {
        prop_oneof![1 => Just("*".to_string()), 3 => list].boxed()
    } else {
        list.boxed()
    }
}

fn weekday() -> impl Strategy<Value = String> {
    const NAMES: &[&str] = &[
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
        "Sat",
        "Sun",
        "monday",
        "TUESDAY",
        "Wednesday",
        "thursday",
        "Friday",
        "saturday",
        "Sunday",
    ];
    prop::sample::select(NAMES).prop_map(str::to_string)
}

fn weekdays() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        2 => weekday(),
        // Descending ranges included: both versions refuse them.
        1 => (weekday(), weekday()).prop_map(|(a, b)| format!("{a}-{b}")),
    ];
    prop::collection::vec(item, 1..=3).prop_map(|l| l.join(","))
}

/// Years (and `YEAR/STEP`) where systemd's answer does not depend on
/// today: refused before 1970, in the future from 2100 to 2199, refused
/// after.
fn year() -> BoxedStrategy<String> {
    let year = prop_oneof![
        1 => 1960u32..=1969,
        4 => 2100u32..=2210,
    ];
    prop_oneof![
        2 => year.clone().prop_map(|y| y.to_string()),
        1 => (year, 0u32..=120).prop_map(|(y, s)| format!("{y}/{s}")),
    ]
    .boxed()
}

fn date() -> impl Strategy<Value = String> {
    let month = || part(item(1, 12), true);
    let day = || part(item(1, 31), true);
    prop_oneof![
        (month(), day()).prop_map(|(m, d)| format!("{m}-{d}")),
        (part(year(), true), month(), day()).prop_map(|(y, m, d)| format!("{y}-{m}-{d}")),
        // Late days of short months, often impossible.
        (
            prop::sample::select(&["*", "2100", "2104", "2100,2104"][..]),
            prop::sample::select(&["02", "04", "2", "6", "9", "11", "2,4", "*"][..]),
            prop::sample::select(&["28", "29", "30", "31", "29,30", "30/1", "31"][..]),
        )
            .prop_map(|(y, m, d)| format!("{y}-{m}-{d}")),
    ]
}

fn time() -> impl Strategy<Value = String> {
    let hour = part(item(0, 23), true);
    let minute = || part(item(0, 59), false);
    (hour, minute(), prop::option::of(minute())).prop_map(|(h, m, s)| match s {
        Some(s) => format!("{h}:{m}:{s}"),
        None => format!("{h}:{m}"),
    })
}

/// A value in the grammar's form: `[WEEKDAYS] [DATE] TIME`.
fn in_form() -> impl Strategy<Value = String> {
    (
        prop::option::of(weekdays()),
        prop::option::of(date()),
        time(),
    )
        .prop_map(|(w, d, t)| {
            [w, d, Some(t)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// A value in the grammar's form with one piece it leaves out put in.
fn out_of_form() -> impl Strategy<Value = String> {
    const LEFT_OUT: &[(&str, &str)] = &[
        (":", ":*:"),
        (":", ":*/5:"),
        ("-", ".."),
        ("-", "~"),
        (" ", " UTC "),
        ("0", "*/2"),
        ("1", "1..3"),
        (":", "."),
    ];
    (in_form(), prop::sample::select(LEFT_OUT)).prop_map(|(v, (from, to))| v.replacen(from, to, 1))
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // A failure is kept as a regression unit test, not in a file.
        failure_persistence: None,
        ..Config::default()
    }
}

/// In the grammar's form, we accept exactly what systemd reads and can
/// fire; we accept nothing it refuses.
#[test]
fn accepts_exactly_what_systemd_reads_and_fires() {
    if !systemd_analyze() {
        return;
    }
    let values = prop::collection::vec(
        prop_oneof![
            4 => in_form().prop_map(|v| (v, true)),
            1 => out_of_form().prop_map(|v| (v, false)),
        ],
        1..=24,
    );
    proptest!(config(160), |(values in values)| {
        let names: Vec<String> = values.iter().map(|(v, _)| v.clone()).collect();
        let read = systemd(&names)?;
        for (v, in_form) in &values {
            let ours = is_on_calendar(v);
            let theirs = read.get(v).copied().flatten();
            if ours {
                prop_assert_eq!(theirs, Some(true), "{:?}: accepted, systemd reads {:?}", v, theirs);
            } else if *in_form {
                prop_assert_ne!(theirs, Some(true), "{:?}: refused, systemd reads it and it fires", v);
            }
        }
    });
}

/// Issue 18 §12's values: systemd refuses the repeats and never fires the
/// dates; we refuse both. The shorthands and the README's examples fire.
#[test]
fn systemd_agrees_on_the_reported_values() {
    if !systemd_analyze() {
        return;
    }
    let refused = [
        "*:0/60",
        "0/24:00",
        "*-*-1/31 00:00",
        "*-1/12-01 00:00",
        "*-*-31/1 00:00",
        "2030/1000-01-01 00:00",
    ];
    let never = [
        "*-02-30 00:00",
        "*-04-31 00:00",
        "02-30 00:00",
        "Mon 2030-01-01 00:00",
    ];
    let fire = [
        "weekly",
        "daily",
        "hourly",
        "monthly",
        "yearly",
        "annually",
        "Sun *-*-* 03:00",
        "Mon-Fri 02:30",
        "*-*-1,15 0/6:00",
        "*-02-29 00:00",
    ];
    let all: Vec<String> = refused
        .iter()
        .chain(&never)
        .chain(&fire)
        .map(|s| (*s).to_string())
        .collect();
    let read = systemd(&all).expect("systemd-analyze runs");
    for v in refused {
        assert_eq!(read[v], None, "{v:?}");
        assert!(!is_on_calendar(v), "{v:?} accepted");
    }
    for v in never {
        assert_eq!(read[v], Some(false), "{v:?}");
        assert!(!is_on_calendar(v), "{v:?} accepted");
    }
    for v in fire {
        assert_eq!(read[v], Some(true), "{v:?}");
        assert!(is_on_calendar(v), "{v:?} refused");
    }
}
