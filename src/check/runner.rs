//! Running one validator over one file and recording how it went.

use std::path::{Path, PathBuf};

use crate::bake::tools::{self, Cmd};

use super::outcome::{Check, Outcome};

/// A validator program and the Debian/PyPI package that provides it.
pub(super) fn tool(name: &str) -> std::result::Result<PathBuf, String> {
    let package = match name {
        "ksvalidator" => "pip install pykickstart",
        "visudo" => "apt-get install sudo",
        "sshd" => "apt-get install openssh-server",
        "shellcheck" => "apt-get install shellcheck",
        "systemd-analyze" => "apt-get install systemd",
        "bash" => "apt-get install bash",
        "vagrant" => "apt-get install vagrant",
        "packer" => "apt-get install packer",
        _ => "install it",
    };
    tools::find(name).ok_or_else(|| format!("{name} not installed ({package})"))
}

pub(super) struct Runner<'a> {
    pub(super) out: &'a Path,
    pub(super) strict: bool,
    pub(super) checks: Vec<Check>,
    /// The private scratch dir, also the validators' `TMPDIR`: ksvalidator
    /// copies the kickstart it reads to a temp file, which a killed
    /// ksvalidator leaves behind.
    pub(super) tmp: &'a Path,
}

impl Runner<'_> {
    pub(super) fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.out).unwrap_or(p).display().to_string()
    }

    /// Run `cmd` built from the tool path; pass when it exits 0 (and, when
    /// strict and `quiet_when_ok`, prints nothing).
    pub(super) fn run(
        &mut self,
        check: &str,
        file: &Path,
        program: &str,
        quiet_when_ok: bool,
        build: impl FnOnce(PathBuf) -> Cmd,
    ) {
        let outcome = match tool(program) {
            // Stopping: nothing more is run (the caller then fails).
            _ if crate::util::interrupt::interrupted() => {
                Outcome::Failed(format!("interrupted ({})", crate::util::interrupt::what()))
            }
            Err(why) => Outcome::Skipped(why),
            Ok(path) => match tools::capture(&build(path).env("TMPDIR", self.tmp)) {
                Err(e) => Outcome::Failed(format!("{e:#}")),
                Ok(c) if !c.success => Outcome::Failed(format!("{}: {}", c.status, c.message())),
                Ok(c)
                    if self.strict
                        && quiet_when_ok
                        && !(c.stderr.trim().is_empty() && c.stdout.trim().is_empty()) =>
                {
                    Outcome::Failed(format!("warnings (strict): {}", c.message()))
                }
                Ok(_) => Outcome::Passed,
            },
        };
        self.push(check, file, outcome);
    }

    pub(super) fn push(&mut self, check: &str, file: &Path, outcome: Outcome) {
        let file = self.rel(file);
        self.checks.push(Check {
            check: check.to_string(),
            file,
            outcome,
            like: None,
        });
    }

    /// A check that stands on `like`'s full validation (the same shape).
    pub(super) fn push_like(&mut self, check: &str, file: &Path, outcome: Outcome, like: String) {
        self.push(check, file, outcome);
        if let Some(c) = self.checks.last_mut() {
            c.like = Some(like);
        }
    }
}

impl Runner<'_> {
    /// `bash -n` and `shellcheck` on `script`, reported as `shown`.
    pub(super) fn shell(&mut self, shown: &Path, script: &Path) {
        let s = script.to_path_buf();
        self.run("bash -n", shown, "bash", false, |t| {
            Cmd::new(t).arg("-n").arg(s)
        });
        let (s, strict) = (script.to_path_buf(), self.strict);
        self.run("shellcheck", shown, "shellcheck", false, |t| {
            shellcheck(t, strict).arg(s)
        });
    }
}

fn shellcheck(tool: PathBuf, strict: bool) -> Cmd {
    Cmd::new(tool).args([
        "--shell=bash",
        if strict {
            "--severity=style"
        } else {
            "--severity=warning"
        },
    ])
}
