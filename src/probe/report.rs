//! The probe's steps: one line each with its timing, or JSON.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One probe step as printed (text) or serialised (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Step {
    pub step: String,
    pub status: Status,
    pub ms: u64,
    pub message: String,
}

/// How a step ended when it did not fail.
pub(super) enum Done {
    Passed(String),
    Skipped(String),
}

pub(super) struct Report {
    pub(super) json: bool,
    pub(super) steps: Vec<Step>,
}

impl Report {
    /// Run one named step, time it and print its line (text mode) at once so
    /// a slow push shows progress step by step.
    pub(super) fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<(T, Done)>,
    ) -> Result<T> {
        let (ms, result) = timed(f);
        self.record(name, ms, result)
    }

    /// Record a step that was timed elsewhere (on another thread).
    pub(super) fn record<T>(
        &mut self,
        name: &str,
        ms: u64,
        result: Result<(T, Done)>,
    ) -> Result<T> {
        let (status, message, ret) = match result {
            Ok((v, Done::Passed(m))) => (Status::Passed, m, Ok(v)),
            Ok((v, Done::Skipped(m))) => (Status::Skipped, m, Ok(v)),
            Err(e) => (
                Status::Failed,
                format!("{e:#}"),
                Err(e.context(format!("{name} failed"))),
            ),
        };
        let step = Step {
            step: name.to_string(),
            status,
            ms,
            message,
        };
        if !self.json {
            print_step(&step);
        }
        self.steps.push(step);
        ret
    }
}

pub(super) fn timed<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let started = Instant::now();
    let v = f();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (ms, v)
}

pub(super) fn print_step(s: &Step) {
    let label = match s.status {
        Status::Passed => "passed",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    };
    let mut lines = s.message.lines();
    println!(
        "{label:<8} {:<24} {:>6} ms  {}",
        s.step,
        s.ms,
        lines.next().unwrap_or("")
    );
    for line in lines {
        println!("{:>42}| {line}", "");
    }
}

/// "sha256:0123456789ab" for step lines.
pub(super) fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

pub(super) fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{bytes} bytes")
    }
}
