//! Problems with the user's input, and the exit status they mean.

/// A value as messages show it ([`show`]): text is quoted, numbers and
/// booleans are bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Text(String),
    Bare(String),
}

impl From<&str> for Shown {
    fn from(s: &str) -> Self {
        Shown::Text(s.to_string())
    }
}

impl From<String> for Shown {
    fn from(s: String) -> Self {
        Shown::Text(s)
    }
}

impl From<&String> for Shown {
    fn from(s: &String) -> Self {
        Shown::Text(s.clone())
    }
}

impl From<&std::path::Path> for Shown {
    fn from(p: &std::path::Path) -> Self {
        Shown::Text(p.display().to_string())
    }
}

macro_rules! bare {
    ($($t:ty),*) => {$(
        impl From<$t> for Shown {
            fn from(v: $t) -> Self {
                Shown::Bare(v.to_string())
            }
        }
    )*};
}
bare!(bool, u8, u16, u32, u64, usize, i64);

/// The one value formatter of every problem: text quoted as Rust's `{:?}`
/// quotes it (control characters visible), cut at about 120 characters so
/// a huge bad value keeps the message readable; numbers and booleans bare.
pub fn show(value: impl Into<Shown>) -> String {
    match value.into() {
        Shown::Bare(s) => s,
        Shown::Text(s) => {
            let mut value = format!("{s:?}");
            if value.len() > 120 {
                let cut = (0..=117)
                    .rev()
                    .find(|i| value.is_char_boundary(*i))
                    .unwrap_or(0);
                value.truncate(cut);
                value.push_str("...");
            }
            value
        }
    }
}

/// One problem with the user's input: the config field, inventory var or
/// command-line flag (`path`), its value as [`show`] formats it, what was
/// expected, and the inventory line it came from, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `FILE:LINE`.
    pub at: Option<String>,
    pub path: String,
    pub value: String,
    pub expected: String,
}

impl Problem {
    pub fn new(
        path: impl Into<String>,
        value: impl Into<Shown>,
        expected: impl Into<String>,
    ) -> Self {
        Problem {
            at: None,
            path: path.into(),
            value: show(value),
            expected: expected.into(),
        }
    }

    /// The problem as found at `file`'s line `line`.
    pub fn at(self, file: &str, line: usize) -> Self {
        Problem {
            at: Some(format!("{file}:{line}")),
            ..self
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        write!(f, "{} = {}: {}", self.path, self.value, self.expected)
    }
}

#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(
        &mut self,
        path: impl Into<String>,
        value: impl Into<Shown>,
        expected: &str,
    ) {
        self.0.push(Problem::new(path, value, expected));
    }

    /// A number that must lie in `allowed`.
    pub(crate) fn range<T>(
        &mut self,
        path: &str,
        value: T,
        allowed: std::ops::RangeInclusive<T>,
        expected: &str,
    ) where
        T: PartialOrd + Into<Shown>,
    {
        if !allowed.contains(&value) {
            self.push(path, value, expected);
        }
    }

    pub(crate) fn check(
        &mut self,
        ok: bool,
        path: impl Into<String>,
        value: impl Into<Shown>,
        expected: &str,
    ) {
        if !ok {
            self.push(path, value, expected);
        }
    }
}

/// Bad input, the user's to fix: a bad config, inventory or command-line
/// argument. Exit status 2 ([`exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum BadInput {
    /// The TOML does not parse into the config's types: `path` is the dotted
    /// field path.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// The inventory: `at` is `FILE:LINE` (or `FILE` for several problems).
    #[error("{at}: {message}")]
    Inventory { at: String, message: String },
    /// A command-line argument: `flag` is the flag (`--disk`).
    #[error("{flag}: {message}")]
    Usage { flag: String, message: String },
    /// A command-line argument's value: the problem's path is the flag.
    #[error("{0}")]
    Arg(Problem),
    #[error("invalid config ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, format_problems(.0))]
    Invalid(Vec<Problem>),
}

/// The exit status for an error: 2 for bad input ([`BadInput`]), 1 for
/// everything else (a tool failed, I/O).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<BadInput>().is_some() {
        2
    } else {
        1
    }
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_quoted_numbers_and_booleans_are_bare() {
        assert_eq!(show("sda1"), "\"sda1\"");
        assert_eq!(show("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(show(70000u32), "70000");
        assert_eq!(show(true), "true");
        // A number written as text stays text: the type decides, not the look.
        assert_eq!(show("5000"), "\"5000\"");
        let long = show("é".repeat(200).as_str());
        assert!(long.ends_with("...") && long.len() <= 120, "{long}");
    }

    #[test]
    fn a_problem_names_its_line_when_it_has_one() {
        let p = Problem::new("host h1: ip", "10.0.0.300/24", "bad CIDR");
        assert_eq!(p.to_string(), "host h1: ip = \"10.0.0.300/24\": bad CIDR");
        assert_eq!(
            p.at("inv.ini", 2).to_string(),
            "inv.ini:2: host h1: ip = \"10.0.0.300/24\": bad CIDR"
        );
    }
}
