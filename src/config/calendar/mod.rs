//! The grammar of `registry.gc.schedule`: systemd `OnCalendar` values, in
//! the subset that CentOS 7's systemd 219 and today's systemd read alike.
//!
//! 219 predates `..` ranges, `~`, time zones and `*/N`, and reads some
//! values differently from later versions: with no seconds, `*:*` is every
//! second to 219 and every minute to 252; `*-*-*` alone is every second to
//! 219 and midnight to 252. So a time is always given, minutes and seconds
//! are numbers, and weekday ranges use `-`. The value reaches a unit file:
//! only letters, digits and ` , - : /` pass, so no line break, `%`
//! specifier or `\` escape can.

pub(crate) const CALENDAR_HELP: &str = "expected a systemd OnCalendar value that CentOS 7's systemd reads: hourly, daily, weekly, monthly or yearly, or [WEEKDAYS] [[YYYY-]MM-DD] HH:MM[:SS] such as \"Sun *-*-* 03:00\" or \"Mon-Fri 02:30\" (weekday names in ',' lists and '-' ranges; the other parts a number, a ',' list, N/STEP repeats, or '*' for the year, month, day and hour; minutes and seconds are numbers)";

const SHORTHANDS: &[&str] = &["hourly", "daily", "weekly", "monthly", "yearly", "annually"];

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// Whether systemd 219 and later read `s` as the same calendar event.
pub(crate) fn is_on_calendar(s: &str) -> bool {
    if SHORTHANDS.contains(&s) {
        return true;
    }
    if s.len() > 100 || s.is_empty() {
        return false;
    }
    let mut parts: Vec<&str> = s.split(' ').collect();
    // The time comes last and is required (see the module docs).
    let Some(time) = parts.pop() else {
        return false;
    };
    if !is_time(time) {
        return false;
    }
    match parts.as_slice() {
        [] => true,
        [one] => is_weekdays(one) || is_date(one),
        [days, date] => is_weekdays(days) && is_date(date),
        _ => false,
    }
}

fn weekday(name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|(short, long)| name == *short || name == *long)
}

/// `Mon`, `Mon-Fri`, `Sat,Sun`, `Mon-Wed,Fri`: ranges ascending, as 219 wants.
fn is_weekdays(s: &str) -> bool {
    s.split(',').all(|item| match item.split_once('-') {
        Some((a, b)) => matches!((weekday(a), weekday(b)), (Some(a), Some(b)) if a <= b),
        None => weekday(item).is_some(),
    })
}

/// `[YYYY-]MM-DD`.
fn is_date(s: &str) -> bool {
    match s.split('-').collect::<Vec<_>>().as_slice() {
        [month, day] => component(month, 1..=12, true) && component(day, 1..=31, true),
        [year, month, day] => {
            component(year, 1970..=2199, true)
                && component(month, 1..=12, true)
                && component(day, 1..=31, true)
        }
        _ => false,
    }
}

/// `HH:MM[:SS]`; only the hour may be `*`.
fn is_time(s: &str) -> bool {
    match s.split(':').collect::<Vec<_>>().as_slice() {
        [h, m] => component(h, 0..=23, true) && component(m, 0..=59, false),
        [h, m, sec] => {
            component(h, 0..=23, true)
                && component(m, 0..=59, false)
                && component(sec, 0..=59, false)
        }
        _ => false,
    }
}

/// `*` (when `star`), or a `,` list of `N` or `N/STEP` with N in `range`
/// and STEP at least 1.
fn component(s: &str, range: std::ops::RangeInclusive<u32>, star: bool) -> bool {
    if s == "*" {
        return star;
    }
    let number = |n: &str| -> Option<u32> {
        (!n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse().ok())
            .flatten()
    };
    s.split(',').all(|item| {
        let (value, step) = match item.split_once('/') {
            Some((v, r)) => (v, Some(r)),
            None => (item, None),
        };
        number(value).is_some_and(|v| range.contains(&v))
            && step.is_none_or(|r| number(r).is_some_and(|r| r >= 1))
    })
}

#[cfg(test)]
mod tests {
    use super::is_on_calendar;

    #[test]
    fn accepts_what_systemd_219_reads_alike() {
        for ok in [
            "weekly",
            "daily",
            "hourly",
            "monthly",
            "yearly",
            "annually",
            "Sun *-*-* 03:00",
            "Sun *-*-* 03:00:00",
            "sun 03:00",
            "Monday 4:05",
            "Mon-Fri 02:30",
            "Sat,Sun 01:00:30",
            "Mon-Wed,Fri *-*-1 00:00",
            "*-*-01 04:00:00",
            "2030-01-01 00:00",
            "01-15 12:00",
            "*:0/30",
            "*:15,45",
            "0/6:00",
            "*-1/3-1 05:00",
        ] {
            assert!(is_on_calendar(ok), "{ok:?} refused");
        }
    }

    #[test]
    fn refuses_newer_syntax_ambiguity_and_injection() {
        for bad in [
            "",
            " weekly",
            "weekly ",
            "Weekly",
            "minutely",
            "quarterly",
            "Mon",
            "*-*-*",
            "*:*",
            "*:*:*",
            "*:00:*",
            "Mon..Fri 02:00",
            "Fri-Mon 02:00",
            "*-*~01 00:00",
            "*-*-* 03:00 Europe/Paris",
            "*/2:00",
            "Sun  03:00",
            "24:00",
            "12:60",
            "*-13-01 00:00",
            "*-*-32 00:00",
            "1969-01-01 00:00",
            "*:0/0",
            "weekly\nExecStart=/bin/sh",
            "Sun 03:00\n[Service]",
            "%H:00",
            "03:00\\",
            "+1:00",
            "1:00.5",
        ] {
            assert!(!is_on_calendar(bad), "{bad:?} accepted");
        }
    }
}
