//! A small builder for running the real binary in a temp dir.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_regbake");

/// The regbake binary as a terminal would start it: SIGINT, SIGTERM and
/// SIGHUP at their defaults. regbake keeps a signal ignored when it starts
/// with it ignored (nohup), and a non-interactive shell ignores SIGINT for a
/// `&` job, as `scripts/test` starts the real-VM tests.
pub(crate) fn regbake_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        start_with(&mut cmd, sig, libc::SIG_DFL);
    }
    cmd
}

/// Start `cmd` with `sig` set to `disposition` (`SIG_DFL`, `SIG_IGN`);
/// the last call for a signal wins.
pub(crate) fn start_with(cmd: &mut Command, sig: libc::c_int, disposition: libc::sighandler_t) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) between fork and exec is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(sig, disposition);
            Ok(())
        });
    }
}

/// Send `sig` to the process `pid` (a child of the test).
pub(crate) fn kill(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid} with {sig}");
}

/// Whether a validator tool is installed. Missing: a failure when
/// `REGBAKE_REQUIRE_TOOLS=1` (CI), else a skip with a printed reason.
pub(crate) fn require_tool(name: &str) -> bool {
    if which::which(name).is_ok() {
        return true;
    }
    assert!(
        std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{name} is required (REGBAKE_REQUIRE_TOOLS=1) but not installed"
    );
    eprintln!("SKIPPED: {name} is not installed");
    false
}

/// pykickstart's `ksvalidator`, its temp files kept in `dir`: it writes a
/// preprocessed copy of the kickstart to `$TMPDIR` and never removes it.
pub(crate) fn ksvalidator(dir: &Path) -> Command {
    let mut c = Command::new("ksvalidator");
    c.env("TMPDIR", dir);
    c
}

/// The validators `regbake check` runs on every render.
pub(crate) const CORE_VALIDATORS: [&str; 5] = [
    "ksvalidator",
    "visudo",
    "sshd",
    "shellcheck",
    "systemd-analyze",
];

/// `regbake check` over a test dir, after making sure the core validators
/// are there: with `REGBAKE_REQUIRE_TOOLS=1` (CI) also `--require-all`, so
/// nothing is skipped.
pub(crate) fn check_all(t: Test) -> Output {
    for tool in CORE_VALIDATORS {
        require_tool(tool);
    }
    let require = std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() == Ok("1");
    let args: &[&str] = if require {
        &["check", "--require-all"]
    } else {
        &["check"]
    };
    t.args(args).success()
}

/// The repository root (for fixtures and committed outputs).
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `program ARGS` in the test dir, with the test's HOME and a throwaway
/// Vagrant home (libvirt the default provider, no version check).
pub(crate) fn tool(t: &Test, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .env("VAGRANT_HOME", t.path().join("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
        .into()
}

/// [`tool`], which must succeed.
pub(crate) fn tool_ok(t: &Test, program: &str, args: &[&str]) -> Output {
    let o = tool(t, program, args);
    assert_eq!(
        o.code, 0,
        "{program} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        o.stdout, o.stderr
    );
    o
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An HTTP/1.1 request's head as a fake server reads it: the request line
/// (line break trimmed) and the headers, names lowercased; `None` at EOF.
pub(crate) fn read_head(r: &mut impl std::io::BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some((line.trim_end().to_string(), headers))
}

/// The value of header `name` (lowercase) in `headers` from [`read_head`].
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Expectations that `check()` asserts: exit status and output substrings.
    status: i32,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// A fresh temp dir with an empty `home/` (HOME) and `bin/` (first on PATH).
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("regbake-it-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin");
        Self {
            dir,
            args: vec![],
            env: vec![],
            status: 0,
            stdout_has: vec![],
            stderr_has: vec![],
        }
    }

    /// Expect exit `code` from `check()` (0 unless set).
    pub(crate) fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// Expect `text` in stderr from `check()`.
    pub(crate) fn stderr_contains(mut self, text: &str) -> Self {
        self.stderr_has.push(text.into());
        self
    }

    /// Expect `text` in stdout from `check()`.
    pub(crate) fn stdout_contains(mut self, text: &str) -> Self {
        self.stdout_has.push(text.into());
        self
    }

    /// Run and assert every expectation; a panic of the tool never passes.
    pub(crate) fn check(&self) -> Output {
        let o = self.run();
        let shown = || {
            format!(
                "regbake {:?}\nstdout:\n{}\nstderr:\n{}",
                self.args, o.stdout, o.stderr
            )
        };
        assert_eq!(o.code, self.status, "exit status: {}", shown());
        assert!(!o.stderr.contains("panicked"), "panic: {}", shown());
        for text in &self.stdout_has {
            assert!(
                o.stdout.contains(text),
                "stdout lacks {text:?}: {}",
                shown()
            );
        }
        for text in &self.stderr_has {
            assert!(
                o.stderr.contains(text),
                "stderr lacks {text:?}: {}",
                shown()
            );
        }
        o
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `regbake.toml` in the working directory.
    pub(crate) fn config(self, toml: &str) -> Self {
        self.file("regbake.toml", toml)
    }

    pub(crate) fn file(self, rel: &str, content: &str) -> Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write file");
        self
    }

    /// An executable script `bin/NAME`, first on PATH.
    pub(crate) fn stub(self, name: &str, script: &str) -> Self {
        let p = self.path().join("bin").join(name);
        std::fs::write(&p, script).expect("write stub");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }

    /// The command to run; a new command starts with no expectations
    /// (exit 0), so one test dir can run several, each stated as
    /// `.args(…).status(2).stderr_contains(…).check()`.
    pub(crate) fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(std::string::ToString::to_string).collect();
        self.status = 0;
        self.stdout_has.clear();
        self.stderr_has.clear();
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub(crate) fn run(&self) -> Output {
        self.command().output().expect("run regbake").into()
    }

    /// The command `run` runs: regbake with the test's arguments, in its
    /// dir, with its HOME, PATH and environment.
    pub(crate) fn command(&self) -> Command {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = regbake_cmd();
        cmd.args(&self.args)
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env("PATH", path)
            .env_remove("REGBAKE_ROOT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run and require exit 0.
    pub(crate) fn success(&self) -> Output {
        let o = self.run();
        assert_eq!(
            o.code, 0,
            "regbake {:?} failed\nstdout:\n{}\nstderr:\n{}",
            self.args, o.stdout, o.stderr
        );
        o
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub(crate) fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path().join(rel))
            .unwrap_or_else(|e| panic!("stat {rel}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }
}

/// CentOS 7's bash (4.2), built once by `tests/testbed/bash42` (cached in
/// `~/.cache/regbake-test`), or the binary `REGBAKE_BASH42` names. Missing: a
/// failure under `REGBAKE_REQUIRE_TOOLS=1`, else a skip.
pub(crate) fn bash42() -> Option<PathBuf> {
    static BASH: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let found = BASH.get_or_init(|| {
        if let Some(p) = std::env::var_os("REGBAKE_BASH42") {
            return Ok(PathBuf::from(p));
        }
        let out = Command::new(repo().join("tests/testbed/bash42"))
            .output()
            .map_err(|e| format!("bash 4.2: running tests/testbed/bash42: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bash 4.2: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ))
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(why) if std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("{why} (REGBAKE_REQUIRE_TOOLS=1)")
        }
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// What a Vagrantfile configures, as Vagrant would load it, recorded by
/// `tests/fixtures/vagrant-recorder.rb` (see there for the shape), run in
/// `dir` with `HOME` (for `~` in key paths) when given.
pub(crate) fn vagrant_record(vagrantfile: &Path, dir: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new("ruby");
    cmd.arg(repo().join("tests/fixtures/vagrant-recorder.rb"))
        .arg(vagrantfile);
    if let Some(d) = dir {
        cmd.current_dir(d).env("HOME", d.join("home"));
    }
    let out = cmd.output().expect("run ruby");
    assert!(
        out.status.success(),
        "ruby failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("recorder JSON")
}

/// A port for a test server to listen on. Port 0 would hand out an ephemeral
/// port that the kernel may also pick as the source port of any outgoing
/// connection (or give to another test) between our probe and the server's
/// bind; ports below the ephemeral range, handed out once per process from
/// a per-process offset, are only ever taken by another test binary, and the
/// servers retry on "address already in use".
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + u16::try_from(std::process::id() % 200).unwrap_or(0) * 60;
    for _ in 0..600 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 60;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 60);
}

/// Whether a server log says its port was taken after all.
fn port_taken(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// A server's stdout and stderr into one `log` file (created anew), stdin
/// closed: what a failed start prints comes from there.
pub(crate) fn log_output<'a>(cmd: &'a mut Command, log: &Path) -> &'a mut Command {
    let out = std::fs::File::create(log).expect("create log");
    let err = std::fs::File::options()
        .append(true)
        .open(log)
        .expect("open log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err)
}

/// Start a test server with `start(port)` on a [`free_port`], and again on
/// another one while `start` says the port was taken after all (`None`).
pub(crate) fn on_a_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Option<T>) -> T {
    for _ in 0..5 {
        if let Some(server) = start(free_port()) {
            return server;
        }
    }
    panic!("{what}: five free ports were taken before it could listen");
}

/// Wait until `child`, just started, listens on `port`: true then; false
/// when it exited because the port was taken. Any other exit, or no
/// listener within `timeout`, fails the test with the server's `log`.
pub(crate) fn wait_listening(
    what: &str,
    child: &mut std::process::Child,
    port: u16,
    log: &Path,
    timeout: std::time::Duration,
) -> bool {
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = std::time::Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            if port_taken(&read_log()) {
                return false;
            }
            panic!("{what} exited ({status}):\n{}", read_log());
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "{what} did not listen on {port} within {timeout:?}:\n{}",
                read_log()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}
