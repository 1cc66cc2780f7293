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
}
