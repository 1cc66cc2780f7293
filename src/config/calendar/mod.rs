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
//!
//! Both versions refuse a repeat `N/STEP` whose first step already passes
//! the part's largest value (`N + STEP > max`: 219's `chain_valid` in
//! src/shared/calendarspec.c, kept by 252 for parts without `..`), and
//! years outside 1970 to 2199; the unit then fails to load and first boot
//! with it. Both also accept dates that never come (`*-02-30`, `Mon
//! 2030-01-01`, a Tuesday): the timer loads and never fires, so those are
//! refused too. `props.rs` checks all this against `systemd-analyze`.

pub(crate) const CALENDAR_HELP: &str = "expected a systemd OnCalendar value that CentOS 7's systemd reads: hourly, daily, weekly, monthly or yearly, or [WEEKDAYS] [[YYYY-]MM-DD] HH:MM[:SS] such as \"Sun *-*-* 03:00\" or \"Mon-Fri 02:30\" (weekday names in ',' lists and '-' ranges; the other parts a number, a ',' list, N/STEP repeats with N+STEP at most the part's largest value (23 for hours, 59 for minutes), or '*' for the year, month, day and hour; minutes and seconds are numbers; years 1970 to 2199), on a date that occurs (not *-02-30)";

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

/// The years systemd reads, 219 and 252 alike.
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2199;

/// Whether systemd 219 and later read `s` as the same calendar event, and
/// that event ever happens.
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
    let (days, date) = match parts.as_slice() {
        [] => (Some([true; 7]), Some(Date::any())),
        [one] => match weekdays(one) {
            Some(w) => (Some(w), Some(Date::any())),
            None => (Some([true; 7]), date(one)),
        },
        [days, d] => (weekdays(days), date(d)),
        _ => return false,
    };
    match (days, date) {
        (Some(days), Some(date)) => date.occurs(days),
        _ => false,
    }
}

fn weekday(name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|(short, long)| name == *short || name == *long)
}

/// `Mon`, `Mon-Fri`, `Sat,Sun`, `Mon-Wed,Fri` (ranges ascending, as 219
/// wants): the days it names, Monday first.
fn weekdays(s: &str) -> Option<[bool; 7]> {
    let mut on = [false; 7];
    for item in s.split(',') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (weekday(a)?, weekday(b)?),
            None => (weekday(item)?, weekday(item)?),
        };
        if a > b {
            return None;
        }
        on[a..=b].fill(true);
    }
    Some(on)
}

/// The values a part of a date or time matches, as flags from its least.
struct Values {
    least: u32,
    on: Vec<bool>,
}

impl Values {
    fn all(least: u32, most: u32) -> Self {
        Values {
            least,
            on: vec![true; (most - least + 1) as usize],
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (self.least..)
            .zip(&self.on)
            .filter_map(|(v, on)| on.then_some(v))
    }
}

/// `[YYYY-]MM-DD`.
struct Date {
    years: Values,
    months: Values,
    days: Values,
}

impl Date {
    fn any() -> Self {
        Date {
            years: Values::all(FIRST_YEAR, LAST_YEAR),
            months: Values::all(1, 12),
            days: Values::all(1, 31),
        }
    }

    /// Whether some day of it exists and is one of `weekdays`: a few
    /// hundred checks at worst (the years times the impossible dates).
    fn occurs(&self, weekdays: [bool; 7]) -> bool {
        self.years.iter().any(|y| {
            self.months.iter().any(|m| {
                self.days
                    .iter()
                    .any(|d| d <= days_in_month(y, m) && weekdays[day_of_week(y, m, d)])
            })
        })
    }
}

fn is_leap(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 for Monday (the Gregorian calendar, as systemd's `mktime`).
fn day_of_week(y: u32, m: u32, d: u32) -> usize {
    // Sakamoto's method: 0 for Sunday.
    const T: [u32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let sunday_first = (y + y / 4 - y / 100 + y / 400 + T[(m - 1) as usize] + d) % 7;
    ((sunday_first + 6) % 7) as usize
}

fn date(s: &str) -> Option<Date> {
    let (years, month, day) = match s.split('-').collect::<Vec<_>>().as_slice() {
        [month, day] => (Values::all(FIRST_YEAR, LAST_YEAR), *month, *day),
        [year, month, day] => (part(year, FIRST_YEAR, LAST_YEAR, true)?, *month, *day),
        _ => return None,
    };
    Some(Date {
        years,
        months: part(month, 1, 12, true)?,
        days: part(day, 1, 31, true)?,
    })
}

/// `HH:MM[:SS]`; only the hour may be `*`.
fn is_time(s: &str) -> bool {
    match s.split(':').collect::<Vec<_>>().as_slice() {
        [h, m] => part(h, 0, 23, true).is_some() && part(m, 0, 59, false).is_some(),
        [h, m, sec] => {
            part(h, 0, 23, true).is_some()
                && part(m, 0, 59, false).is_some()
                && part(sec, 0, 59, false).is_some()
        }
        _ => false,
    }
}

/// `*` (when `star`), or a `,` list of `N` or `N/STEP` with N from `least`
/// to `most`, STEP at least 1 and N+STEP at most `most`: the values it
/// matches.
fn part(s: &str, least: u32, most: u32, star: bool) -> Option<Values> {
    if s == "*" {
        return star.then(|| Values::all(least, most));
    }
    let number = |n: &str| -> Option<u32> {
        (!n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse().ok())
            .flatten()
    };
    let mut values = Values {
        least,
        on: vec![false; (most - least + 1) as usize],
    };
    for item in s.split(',') {
        let (start, step) = match item.split_once('/') {
            Some((v, r)) => (v, Some(r)),
            None => (item, None),
        };
        let start = number(start).filter(|n| (least..=most).contains(n))?;
        let step = match step {
            None => most - least + 1,
            Some(r) => number(r).filter(|r| *r >= 1 && start + r <= most)?,
        };
        for v in (start..=most).step_by(step as usize) {
            values.on[(v - least) as usize] = true;
        }
    }
    Some(values)
}

#[cfg(test)]
mod props;

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
            // Repeats whose first step stays in range.
            "*:0/59",
            "*:30/29:59",
            "0/23:00",
            "*-*-30/1 00:00",
            "*-11/1-01 00:00",
            "2030/169-01-01 00:00",
            // Dates that occur, if not every year.
            "*-02-29 00:00",
            "2028-02-29 00:00",
            "Tue 2030-01-01 00:00",
            "Mon 2030-*-01 00:00",
            "1970-01-01 00:00",
            "2199-12-31 23:59:59",
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
            // systemd refuses a repeat that passes the part's largest value
            // at its first step (issue 18 §12): the unit would not load.
            "*:0/60",
            "0/24:00",
            "*-*-1/31 00:00",
            "*-1/12-01 00:00",
            "*-*-31/1 00:00",
            "2030/1000-01-01 00:00",
            "2030/170-01-01 00:00",
            "*:0:0/60",
            "2200-01-01 00:00",
        ] {
            assert!(!is_on_calendar(bad), "{bad:?} accepted");
        }
    }

    /// systemd 219 and 252 load these, and the timer never fires.
    #[test]
    fn refuses_dates_that_never_occur() {
        for never in [
            "*-02-30 00:00",
            "*-02-31 00:00",
            "*-04-31 00:00",
            "*-06-31 00:00",
            "*-09-31 00:00",
            "*-11-31 00:00",
            "02-30 00:00",
            "*-02-30/1 00:00",
            "Sun *-02-30 00:00",
            "2030-02-29 00:00",
            "2100-02-29 00:00",
            "2030,2031-02-29 00:00",
            "Mon 2030-01-01 00:00",
            "Sat,Sun 2030-01-01 00:00",
            "Mon-Fri 2150-06-13,14 00:00",
        ] {
            assert!(!is_on_calendar(never), "{never:?} accepted");
        }
    }
}
