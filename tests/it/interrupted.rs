//! Runs stopped by SIGINT or SIGTERM clean up after themselves, and what a
//! SIGKILLed one left is removed by the next run that takes `out/.lock`
//! (issue 18 §7, §10): `regbake check`'s scratch copies of the appliance's
//! secrets, and the staged kickstarts of `kickstart --inventory`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{regbake_cmd, require_tool, Test};

/// TLS with a generated CA and a registry user: the overlay the kickstart's
/// `%post` carries holds the TLS key, the http secret and the htpasswd.
const SECRETS: &str = "version = 1\n[user]\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t\"]\n[registry.tls]\nmode = \"generate\"\n[[registry.auth.users]]\nname = \"alice\"\npassword_hash = \"$2y$05$x5fBVWcav3ra05p0wm6YBunMW997C0NKgC43ePmBN.MxkMn8y3mRa\"\n";

/// regbake in a process group of its own, so SIGKILL can take its
/// validators too (as a kill of the session would), and none is left
/// writing while the next run cleans up.
fn spawn(t: &Test, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    regbake_cmd()
        .args(args)
        .process_group(0)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .env("TMPDIR", t.path().join("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start regbake")
}

/// Signal regbake alone, or (SIGKILL) its whole process group.
fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let pid = if sig == libc::SIGKILL { -pid } else { pid };
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {sig}");
}

/// Wait (bounded) for `child` to end; its exit code (None: killed by a
/// signal) and stderr.
fn finish(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status.code(), err);
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("regbake still running {within:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll (bounded) until `found` gives something.
fn wait_for<T>(what: &str, child: &mut Child, mut found: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = found() {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("regbake ended ({status}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {what} within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entries of `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file and dir under `dir`, with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut all = vec![];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                dirs.push(e.path());
            }
            all.push((e.path(), md.permissions().mode() & 0o777, md.is_dir()));
        }
    }
    all
}

/// A running `regbake check`, once it has written the `%post` of `ks.cfg`
/// (the whole overlay) to its scratch dir: that dir is inside `out/`,
/// hidden, 0700, and what it holds the owner's only; nothing goes to
/// `TMPDIR`.
fn check_with_scratch(t: &Test) -> (Child, PathBuf) {
    let mut child = spawn(t, &["check"]);
    let out = t.path().join("out");
    let tmp = t.path().join("tmp");
    let scratch = wait_for("a scratch copy of %post", &mut child, || {
        let dirs = [named(&out, ".regbake-"), named(&tmp, "")].concat();
        dirs.into_iter().find(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.contains("ks.cfg.post") && e.metadata().is_ok_and(|m| m.len() > 0)
                })
        })
    });
    assert_eq!(
        scratch.parent(),
        Some(out.as_path()),
        "the scratch dir is {}",
        scratch.display()
    );
    let name = scratch.file_name().unwrap_or_default().to_string_lossy();
    assert!(name.starts_with(".regbake-scratch-"), "{name}");
    let mode = scratch.metadata().expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", scratch.display());
    for (p, mode, dir) in modes(&scratch) {
        let want = if dir { 0o700 } else { 0o600 };
        // The docker stub runs: owner-only, with its x bit.
        let want = if p.ends_with("docker-stub") {
            0o700
        } else {
            want
        };
        assert_eq!(mode, want, "{}", p.display());
    }
    (child, scratch)
}

fn tools() -> bool {
    ["ksvalidator", "bash", "shellcheck"]
        .iter()
        .all(|t| require_tool(t))
}

#[test]
fn a_stopped_check_leaves_no_copy_of_the_secrets() {
    if !tools() {
        return;
    }
    let t = Test::new().config(SECRETS);
    std::fs::create_dir_all(t.path().join("tmp")).expect("mkdir tmp");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (child, scratch) = check_with_scratch(&t);
        signal(&child, sig);
        let (code, err) = finish(child, Duration::from_secs(30));
        assert_eq!(code, Some(1), "signal {sig}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(!scratch.exists(), "{} left", scratch.display());
        assert!(named(&t.path().join("out"), ".regbake-").is_empty());
        let tmp = named(&t.path().join("tmp"), "");
        assert!(tmp.is_empty(), "{tmp:?}");
    }
}

#[test]
fn the_next_run_removes_what_a_killed_check_left() {
    if !tools() {
        return;
    }
    let t = Test::new().config(SECRETS);
    std::fs::create_dir_all(t.path().join("tmp")).expect("mkdir tmp");
    let (child, scratch) = check_with_scratch(&t);
    signal(&child, libc::SIGKILL);
    let (code, _) = finish(child, Duration::from_secs(30));
    assert_eq!(code, None);
    assert!(scratch.is_dir(), "SIGKILL leaves it (0700, in out/)");
    // Any run that takes out/.lock.
    let t = t.args(&["render"]);
    let o = t.success();
    assert!(
        o.stderr.contains("left by an interrupted run"),
        "{}",
        o.stderr
    );
    assert!(!scratch.exists(), "{} left", scratch.display());
}

/// An inventory big enough that a render is still staging kickstarts when
/// the signal comes.
fn big_inventory(hosts: usize) -> String {
    let mut s = String::from("[registries]\n");
    for i in 0..hosts {
        s.push_str(&format!("reg{i:05} ip=dhcp\n"));
    }
    s
}

/// The hidden temp files in `out/kickstart` (all but the manifest) and
/// the staging dirs in `out/`.
fn temp_files(t: &Test) -> Vec<PathBuf> {
    let out = t.path().join("out");
    let mut all = named(&out.join("kickstart"), ".");
    all.retain(|p| !p.ends_with(".regbake.manifest"));
    all.extend(named(&out, ".regbake-"));
    all
}

/// Start `kickstart --inventory` and wait until it has staged kickstarts.
fn staging_fleet(t: &Test) -> Child {
    let mut child = spawn(t, &["kickstart", "--inventory", "hosts.ini"]);
    let dir = t.path().join("out/kickstart");
    wait_for("staged kickstarts", &mut child, || {
        (named(&dir, ".reg").len() >= 20).then_some(())
    });
    child
}

#[test]
fn a_stopped_fleet_render_leaves_no_temp_files() {
    let t = Test::new()
        .config(SECRETS)
        .file("hosts.ini", &big_inventory(4000));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let child = staging_fleet(&t);
        signal(&child, sig);
        let (code, err) = finish(child, Duration::from_secs(60));
        assert_eq!(code, Some(1), "signal {sig}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        let left = temp_files(&t);
        assert!(
            left.is_empty(),
            "{} left: {:?}",
            left.len(),
            &left[..3.min(left.len())]
        );
        // Nothing was replaced: no kickstart of the inventory is in place.
        assert!(!t.path().join("out/kickstart/reg00000.ks").exists());
    }
}

#[test]
fn the_next_run_removes_what_a_killed_fleet_render_left() {
    let t = Test::new()
        .config(SECRETS)
        .file("hosts.ini", &big_inventory(4000));
    let child = staging_fleet(&t);
    signal(&child, libc::SIGKILL);
    let (code, _) = finish(child, Duration::from_secs(30));
    assert_eq!(code, None);
    let left = temp_files(&t);
    assert!(left.len() >= 20, "{left:?}");
    // Any run that takes out/.lock: here the single kickstart.
    let t = t.args(&["kickstart"]);
    let o = t.success();
    assert!(
        o.stderr
            .contains("temp files in out/kickstart left by an interrupted run"),
        "{}",
        o.stderr
    );
    assert_eq!(temp_files(&t), Vec::<PathBuf>::new());
    assert!(t.path().join("out/kickstart/ks.cfg").is_file());
}
