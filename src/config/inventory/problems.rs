//! The inventory's problems, each by its line, reported together.

use std::fmt::Write as _;

use crate::config::{BadInput, Problem};

/// Problems by line, reported together.
pub(super) struct Problems<'a> {
    pub(super) file: &'a str,
    pub(super) list: Vec<(usize, String)>,
}

impl Problems<'_> {
    pub(super) fn add(&mut self, line: usize, msg: impl Into<String>) {
        self.list.push((line, msg.into()));
    }

    /// A var's problem, with the inventory's value as every problem shows it.
    pub(super) fn problem(&mut self, line: usize, problem: Problem) {
        self.list.push((line, problem.to_string()));
    }

    pub(super) fn into_result(mut self) -> Result<(), BadInput> {
        if self.list.is_empty() {
            return Ok(());
        }
        self.list.sort_by_key(|(l, _)| *l);
        if let [(line, msg)] = &self.list[..] {
            return Err(BadInput::Inventory {
                at: format!("{}:{line}", self.file),
                message: msg.clone(),
            });
        }
        let mut message = format!("{} problems:", self.list.len());
        for (line, msg) in &self.list {
            let _ = write!(message, "\n  {}:{line}: {msg}", self.file);
        }
        Err(BadInput::Inventory {
            at: self.file.to_string(),
            message,
        })
    }
}
