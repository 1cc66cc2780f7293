//! The one runner for external programs: finds them on `PATH`, logs the full
//! command line, keeps their output in a log file when asked, and puts the
//! exit status and the tail of stderr into its errors.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Look a program up on `PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    which::which(program).ok()
}

/// A command line to run: program, arguments, extra environment, directory.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub dir: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: vec![],
            env: vec![],
            dir: None,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = Some(d.into());
        self
    }

    /// The std `Command` for this command line.
    pub fn to_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Started with stdin closed and stdout and stderr piped to us, in a
    /// process group of its own (led by the child): a Ctrl-C at the
    /// terminal reaches regbake alone, which passes one SIGINT on to that
    /// group. Vagrant and Packer take a second SIGINT as "exit now, without
    /// cleanup", which is what the terminal's and regbake's together were.
    ///
    /// SIGINT is set to its default in the child: a regbake started with it
    /// ignored (a `&` job of a script) keeps that for itself, but its one
    /// way to stop a tool must work.
    pub fn spawn_piped(&self) -> Result<std::process::Child> {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.to_command();
        // SAFETY: signal(2) between fork and exec is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {self}"))
    }
}

impl fmt::Display for Cmd {
    /// The command line as a shell would take it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &OsString| {
            let s = s.to_string_lossy();
            shlex::try_quote(&s).map_or_else(|_| format!("{s:?}"), std::borrow::Cow::into_owned)
        };
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), quote(v)))
            .collect();
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(quote));
        f.write_str(&parts.join(" "))
    }
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Captured {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// stderr, or stdout when stderr is empty, trimmed to its last lines.
    pub fn message(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        tail(text, 12)
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Run to completion with output captured, whatever the exit status. Once
/// [`crate::util::interrupt::interrupted`], the command is killed and this
/// fails: a stop is not held up by a slow tool.
pub fn capture(cmd: &Cmd) -> Result<Captured> {
    crate::util::log::debug(&format!("running: {cmd}"));
    let mut child = cmd.spawn_piped()?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    if !wait_exited(&child) {
        // Not reaped yet, so its pid is still its own.
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "interrupted ({}) while running {cmd}",
            crate::util::interrupt::what()
        );
    }
    let status = child.wait().with_context(|| format!("waiting for {cmd}"))?;
    let joined = |h: std::thread::JoinHandle<String>| h.join().unwrap_or_default();
    Ok(Captured {
        success: status.success(),
        status: status.to_string(),
        stdout: joined(stdout),
        stderr: joined(stderr),
    })
}

/// Wait until `child` has exited without reaping it (`waitid` with
/// `WNOWAIT`, on a thread), polling for an interrupt meanwhile: true when it
/// exited, false when interrupted first.
fn wait_exited(child: &std::process::Child) -> bool {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let pid = child.id();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        loop {
            // SAFETY: waitid only writes the siginfo_t given to it; WNOWAIT
            // leaves the child to be reaped by its owner.
            let rc = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    pid,
                    &raw mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                break;
            }
        }
        let _ = tx.send(());
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) if crate::util::interrupt::interrupted() => {
                return false
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Run and require success; the error names the command, its status and the
/// tail of what it printed. With `log`, the command line and all output are
/// written there too.
pub fn run(cmd: &Cmd, log: Option<&Path>) -> Result<Captured> {
    let c = capture(cmd)?;
    if let Some(path) = log {
        let mut f = std::fs::File::create(path)
            .with_context(|| format!("creating log {}", path.display()))?;
        writeln!(f, "$ {cmd}\n{}{}\n# {}", c.stdout, c.stderr, c.status)
            .with_context(|| format!("writing log {}", path.display()))?;
    }
    if !c.success {
        bail!("command failed ({}): {cmd}\n{}", c.status, c.message());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_for_the_shell() {
        let c = Cmd::new("echo").arg("a b").arg("it's").env("X", "1 2");
        assert_eq!(c.to_string(), "X='1 2' echo 'a b' \"it's\"");
    }

    #[test]
    fn failure_names_command_and_status() {
        let err = run(&Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]), None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }
}
