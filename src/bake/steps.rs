//! Long-running bakes as a straight list of named steps: each shows a spinner
//! with its name and elapsed time, streams the tool's output into
//! `out/logs/NN-step.log`, and fails with the command, its exit status and
//! the last lines of its log. Ctrl-C stops the running tool (SIGINT) and the
//! step fails as "interrupted" so callers run their cleanup.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::tools::Cmd;
use crate::util::interrupt::{catch_interrupts, interrupted};

pub struct Steps {
    log_dir: PathBuf,
    dry_run: bool,
    count: usize,
    /// Commands run (or printed, with dry-run), in order.
    pub history: Vec<String>,
}

/// A step's failure, for callers that decide about cleanup.
#[derive(Debug, thiserror::Error)]
#[error("step {name} failed ({status}): {command}\n{tail}\nfull log: {log}")]
pub struct StepError {
    pub name: String,
    pub command: String,
    pub status: String,
    pub tail: String,
    pub log: String,
}

impl Steps {
    pub fn new(out: &Path, dry_run: bool) -> Result<Self> {
        let log_dir = out.join("logs");
        if !dry_run {
            std::fs::create_dir_all(&log_dir)
                .with_context(|| format!("creating {}", log_dir.display()))?;
            keep_previous_logs(&log_dir)?;
        }
        catch_interrupts();
        Ok(Self {
            log_dir,
            dry_run,
            count: 0,
            history: vec![],
        })
    }

    pub fn run(&mut self, name: &str, cmd: &Cmd) -> Result<()> {
        self.run_with(name, cmd, &mut |_| None)
    }

    /// Run a step; `on_line` sees every output line and may return a new
    /// status message for the spinner (e.g. Packer's current phase).
    pub fn run_with(
        &mut self,
        name: &str,
        cmd: &Cmd,
        on_line: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<()> {
        self.count += 1;
        let n = self.count;
        self.history.push(cmd.to_string());
        if self.dry_run {
            println!("[{n:02}] {name}: {cmd}");
            return Ok(());
        }
        if interrupted() {
            return Err(anyhow!(
                "interrupted ({}) before step {name}",
                crate::util::interrupt::what()
            ));
        }
        let log_path = self.log_dir.join(format!("{n:02}-{}.log", slug(name)));
        let mut log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        writeln!(log, "$ {cmd}").context("writing the step log")?;

        let bar = spinner(n, name, cmd);
        let started = Instant::now();
        let (mut child, rx, readers) = spawn(cmd)?;
        let (status, tail) = watch(&mut child, &rx, &mut log, &bar, on_line)?;
        for r in readers {
            let _ = r.join();
        }
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        // After a hangup the log is all the user has: it says what stopped the step.
        let stopped = interrupted();
        let ok = status.success() && !stopped;
        let status = if stopped {
            format!("interrupted ({}): {status}", crate::util::interrupt::what())
        } else {
            status.to_string()
        };
        writeln!(log, "# {status} after {:.1}s", elapsed.as_secs_f64())
            .context("writing the step log")?;
        if ok {
            eprintln!("    [{n:02}] {name} done in {:.1}s", elapsed.as_secs_f64());
            return Ok(());
        }
        let tail = tail[tail.len().saturating_sub(10)..].join("\n");
        Err(StepError {
            name: name.to_string(),
            command: cmd.to_string(),
            status,
            tail,
            log: log_path.display().to_string(),
        }
        .into())
    }
}

/// The step's spinner; without a terminal (hidden), a line saying what runs.
fn spinner(n: usize, name: &str, cmd: &Cmd) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{prefix}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(format!("{n:02} {name}"));
    if bar.is_hidden() {
        eprintln!("==> [{n:02}] {name}: {cmd}");
    }
    bar
}

/// Start `cmd` with its stdout and stderr read line by line, each by its
/// own thread, into one channel.
fn spawn(cmd: &Cmd) -> Result<(Child, mpsc::Receiver<String>, Vec<JoinHandle<()>>)> {
    let mut child = cmd.spawn_piped()?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = vec![];
    if let Some(out) = child.stdout.take() {
        readers.push(send_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(send_lines(err, tx.clone()));
    }
    Ok((child, rx, readers))
}

/// A thread sending each line `from` gives until its end (or until no one
/// listens).
fn send_lines(from: impl Read + Send + 'static, tx: mpsc::Sender<String>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    })
}

/// Log the child's lines as they come, show `on_line`'s messages, pass a
/// Ctrl-C on to it once, until it exits: its status and the last lines.
fn watch(
    child: &mut Child,
    rx: &mpsc::Receiver<String>,
    log: &mut std::fs::File,
    bar: &ProgressBar,
    on_line: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<(ExitStatus, Vec<String>)> {
    let mut tail: Vec<String> = vec![];
    let mut signalled = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                writeln!(log, "{line}").context("writing the step log")?;
                if let Some(msg) = on_line(&line) {
                    if bar.is_hidden() {
                        eprintln!("    {msg}");
                    }
                    bar.set_message(msg);
                }
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bar.tick(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if interrupted() && !signalled {
            signalled = true;
            // The child leads its own process group (`Cmd::spawn_piped`):
            // the tool and what it started (ssh, qemu) get one SIGINT each,
            // as from a terminal.
            // SAFETY: kill(2) with our own child's process group.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGINT);
            }
        }
        if let Some(st) = child.try_wait().context("waiting for the step")? {
            // Drain what the readers still hold.
            for line in rx {
                writeln!(log, "{line}").context("writing the step log")?;
                tail.push(line);
            }
            return Ok((st, tail));
        }
    }
}

/// A new bake numbers its logs from 01 again: the last bake's logs move to
/// `logs/previous/` (replacing the ones before), so none are mixed or lost
/// to the run that follows.
fn keep_previous_logs(log_dir: &Path) -> Result<()> {
    let logs: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .with_context(|| format!("reading {}", log_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "log"))
        .collect();
    if logs.is_empty() {
        return Ok(());
    }
    let previous = log_dir.join("previous");
    if previous.exists() {
        std::fs::remove_dir_all(&previous)
            .with_context(|| format!("removing {}", previous.display()))?;
    }
    std::fs::create_dir_all(&previous)
        .with_context(|| format!("creating {}", previous.display()))?;
    for log in logs {
        if let Some(name) = log.file_name() {
            std::fs::rename(&log, previous.join(name))
                .with_context(|| format!("moving {} aside", log.display()))?;
        }
    }
    Ok(())
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_and_failure_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut steps = Steps::new(dir.path(), false).expect("steps");
        steps
            .run(
                "say hello",
                &Cmd::new("sh").args(["-c", "echo hello; echo warn >&2"]),
            )
            .expect("step runs");
        let log = std::fs::read_to_string(dir.path().join("logs/01-say-hello.log")).expect("log");
        assert!(log.starts_with("$ sh -c"), "{log}");
        assert!(log.contains("hello") && log.contains("warn"), "{log}");

        let err = steps
            .run(
                "fail",
                &Cmd::new("sh").args(["-c", "echo last words; exit 4"]),
            )
            .unwrap_err();
        let e = err.downcast_ref::<StepError>().expect("a StepError");
        assert_eq!(e.name, "fail");
        assert!(e.status.contains('4'), "{}", e.status);
        assert!(e.tail.contains("last words"));
        assert!(e.log.ends_with("02-fail.log"));
    }

    #[test]
    fn a_new_run_keeps_the_last_runs_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        Steps::new(dir.path(), false)
            .expect("steps")
            .run("one", &Cmd::new("true"))
            .expect("runs");
        Steps::new(dir.path(), false)
            .expect("steps")
            .run("two", &Cmd::new("true"))
            .expect("runs");
        assert!(dir.path().join("logs/previous/01-one.log").is_file());
        assert!(dir.path().join("logs/01-two.log").is_file());
        assert!(!dir.path().join("logs/01-one.log").exists());
    }

    #[test]
    fn phases_reach_the_callback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut steps = Steps::new(dir.path(), false).expect("steps");
        let mut seen = vec![];
        steps
            .run_with("phases", &Cmd::new("printf").arg("a\\nb\\n"), &mut |l| {
                seen.push(l.to_string());
                None
            })
            .expect("runs");
        assert_eq!(seen, ["a", "b"]);
    }
}
