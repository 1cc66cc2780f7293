//! One line of `regbake check`: what was checked, on which file, and how
//! it went.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "status", content = "message")]
pub enum Outcome {
    Passed,
    /// Works, but costs something the user should know of; a failure
    /// with `--strict`.
    Warning(String),
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub file: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The file whose full validation this one stands on: a per-host
    /// kickstart of the same shape (see `check::shape`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like: Option<String>,
}
