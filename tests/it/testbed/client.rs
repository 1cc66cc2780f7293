//! The host's side of a testbed: the admin's key pair and ssh, and the real
//! binary's render and probe.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::text;
use crate::common::{regbake_cmd, Test};

/// A client key pair for the admin user (ssh-keygen), and the config that
/// authorizes it.
pub(crate) struct Admin {
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub public: String,
}

impl Admin {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_ed25519");
        let o = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "admin@regbake-test",
                "-f",
            ])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(o.status.success(), "ssh-keygen: {}", text(&o));
        let public = std::fs::read_to_string(key.with_extension("pub"))
            .expect("public key")
            .trim()
            .to_string();
        Self {
            _dir: dir,
            key,
            public,
        }
    }

    /// `ssh -i KEY USER@HOST CMD`, non-interactive; (exit code, output).
    pub(crate) fn ssh(
        key: &Path,
        user: &str,
        host: &str,
        extra: &[&str],
        cmd: &str,
    ) -> (i32, String) {
        let o = Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-i",
            ])
            .arg(key)
            .args(extra)
            .arg(format!("{user}@{host}"))
            .arg(cmd)
            .output()
            .expect("ssh");
        (o.status.code().unwrap_or(-1), text(&o))
    }
}

/// Render `config` with the real binary; the test dir holds `out/`.
pub(crate) fn render(config: &str, extra_env: &[(&str, &str)]) -> Test {
    let mut t = Test::new().config(config).args(&["render"]);
    for (k, v) in extra_env {
        t = t.env(k, v);
    }
    t.success();
    t
}

/// `regbake probe ARGS` from the host; (exit code, output).
pub(crate) fn probe(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = regbake_cmd();
    cmd.arg("probe").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("regbake probe");
    (o.status.code().unwrap_or(-1), text(&o))
}
