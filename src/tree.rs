//! Files by relative path: what rendering makes and `out` writes.

use std::collections::BTreeMap;

/// One file to write: content and Unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Files by relative path (`/`-separated), in a stable order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn add(&mut self, path: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(
            path.into(),
            Entry {
                data: data.into(),
                mode,
            },
        );
    }

    /// Put another tree under `prefix/`.
    pub fn graft(&mut self, prefix: &str, other: &Tree) {
        for (p, e) in &other.files {
            self.files.insert(format!("{prefix}/{p}"), e.clone());
        }
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.files.get(path)
    }

    /// The distinct first path components.
    pub fn top_level(&self) -> Vec<&str> {
        let mut tops: Vec<&str> = self
            .files
            .keys()
            .map(|k| k.split('/').next().unwrap_or(k))
            .collect();
        tops.dedup();
        tops
    }
}
