//! Problems with the user's input, and the exit status they mean.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: {}", self.path, self.value, self.expected)
    }
}

#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(
        &mut self,
        path: impl Into<String>,
        value: impl std::fmt::Debug,
        expected: &str,
    ) {
        let mut value = format!("{value:?}");
        // Keep messages readable even for a huge bad value.
        if value.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|i| value.is_char_boundary(*i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push_str("...");
        }
        self.0.push(Problem {
            path: path.into(),
            value,
            expected: expected.to_string(),
        });
    }

    /// A number that must lie in `allowed`.
    pub(crate) fn range<T>(
        &mut self,
        path: &str,
        value: T,
        allowed: std::ops::RangeInclusive<T>,
        expected: &str,
    ) where
        T: PartialOrd + std::fmt::Display,
    {
        if !allowed.contains(&value) {
            self.push(path, value.to_string(), expected);
        }
    }

    pub(crate) fn check(&mut self, ok: bool, path: impl Into<String>, value: &str, expected: &str) {
        if !ok {
            self.push(path, value, expected);
        }
    }
}

/// Bad input, the user's to fix: a bad config, inventory or command-line
/// argument. Exit status 2 ([`exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
    #[error("invalid config ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, format_problems(.0))]
    Invalid(Vec<Problem>),
}

/// The exit status for an error: 2 for bad input ([`ConfigError`]), 1 for
/// everything else (a tool failed, I/O).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<ConfigError>().is_some() {
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
