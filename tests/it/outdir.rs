//! `out/` under concurrent, failing, killed and unusual runs (issue 12,
//! items 2 to 5 and 18): one lock, everything or nothing, no secret copies
//! left, any file system, and a clear word when `out` is not a directory.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{regbake_cmd, require_tool, Test, BIN};

const TLS: &str = "version = 1\n[user]\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t\"]\n[registry.tls]\nmode = \"generate\"\n";

fn render_in(dir: &Path, out: &str) -> std::process::Child {
    regbake_cmd()
        .args(["-o", out, "render"])
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start regbake")
}

/// Four renders at once into one `out/` with a generated CA: every one
/// succeeds and the CA kept in state is the one the overlay and the client
/// files carry (before the lock, 5 of 12 trials left them different).
#[test]
fn concurrent_renders_agree_on_one_ca() {
    for trial in 0..3 {
        let t = Test::new().config(TLS);
        let children: Vec<_> = (0..4).map(|_| render_in(t.path(), "out")).collect();
        for c in children {
            let o = c.wait_with_output().expect("wait");
            assert!(
                o.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let state = t.read("out/secrets/tls/ca.crt");
        assert_eq!(
            t.read("out/overlay/opt/docker/certs/ca.crt"),
            state,
            "trial {trial}"
        );
        assert_eq!(
            t.read("out/client/certs.d/registry.local:443/ca.crt"),
            state,
            "trial {trial}"
        );
        let leftovers: Vec<String> = std::fs::read_dir(t.path().join("out"))
            .expect("read out")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".regbake-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A run that finds `out/` locked says so once and waits.
#[test]
fn a_second_run_waits_for_the_lock_and_says_so() {
    let t = Test::new().config(TLS);
    std::fs::create_dir_all(t.path().join("out")).expect("mkdir");
    let lock = File::create(t.path().join("out/.lock")).expect("lock file");
    lock.lock().expect("lock");
    let mut child = render_in(t.path(), "out");
    // Its first line says it waits; until we unlock, it writes nothing.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("read stderr");
    assert!(first.contains("waiting for another regbake"), "{first}");
    assert!(
        !t.path().join("out/overlay").exists(),
        "rendered without the lock"
    );
    lock.unlock().expect("unlock");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("read stderr");
    assert!(child.wait().expect("wait").success(), "{rest}");
    assert!(!rest.contains("waiting"), "said more than once: {rest}");
    assert!(t.path().join("out/overlay").is_dir());
}

/// A render that cannot replace one family replaces none: with
/// `out/vagrant` immutable, a new port reaches no file.
#[test]
fn a_failed_render_leaves_the_previous_output() {
    if !require_tool("chattr") {
        return;
    }
    let t = Test::new().config(TLS).args(&["render"]);
    t.success();
    let before = crate::golden::snapshot(&t.path().join("out"), &[".lock"]);
    let vagrant = t.path().join("out/vagrant");
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&vagrant)
        .status()
        .expect("chattr");
    assert!(st.success(), "chattr +i needs a file system that has it");
    let t = t.config(&format!("{TLS}[registry]\nport = 5443\n"));
    let o = t.run();
    let _ = Command::new("chattr").arg("-i").arg(&vagrant).status();
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("nothing was replaced"), "{}", o.stderr);
    let after = crate::golden::snapshot(&t.path().join("out"), &[".lock"]);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (path, (data, mode)) in &before {
        assert!(after[path] == (data.clone(), *mode), "{path} changed");
    }
}

/// Staging, old and scratch dirs and `.partial` temp files left by a
/// killed run in `out/` are removed by the next run; a staging dir beside
/// `out/` is not this out's (the parent may be another out dir, with a
/// render going on), so it stays.
#[test]
fn leftovers_of_a_killed_run_are_removed() {
    let t = Test::new().config(TLS);
    for d in [
        "out/.regbake-staging-abc/overlay/opt/docker/certs",
        "out/.regbake-old-def/overlay",
        "out/.regbake-scratch-jkl",
        "out/kickstart",
        "out/secrets/tls/hosts",
        "out/ssh",
        ".regbake-staging-ghi/overlay",
    ] {
        std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
    }
    for f in [
        "out/.regbake-staging-abc/overlay/opt/docker/certs/registry.key",
        "out/.regbake-scratch-jkl/out_kickstart_ks.cfg.post.sh",
        "out/kickstart/.reg1.ks.a1B2c3.partial",
        "out/secrets/.http_secret.x9Y8z7.partial",
        "out/secrets/tls/hosts/.reg1.key.q1W2e3.partial",
        "out/ssh/.id_ed25519.r4T5y6.partial",
    ] {
        std::fs::write(t.path().join(f), "secret").expect("write");
    }
    // Not regbake's temp files: a user's, and a link out of the directory.
    std::fs::write(t.path().join("out/kickstart/notes.partial"), "mine").expect("write");
    std::os::unix::fs::symlink("/etc/hostname", t.path().join("out/ssh/.link.partial"))
        .expect("symlink");
    let t = t.args(&["render"]);
    let o = t.success();
    assert!(
        o.stderr.contains("left by an interrupted run"),
        "{}",
        o.stderr
    );
    for d in [
        "out/.regbake-staging-abc",
        "out/.regbake-old-def",
        "out/.regbake-scratch-jkl",
        "out/kickstart/.reg1.ks.a1B2c3.partial",
        "out/secrets/.http_secret.x9Y8z7.partial",
        "out/secrets/tls/hosts/.reg1.key.q1W2e3.partial",
        "out/ssh/.id_ed25519.r4T5y6.partial",
    ] {
        assert!(!t.path().join(d).exists(), "{d} is still there");
    }
    for kept in [
        ".regbake-staging-ghi/overlay",
        "out/kickstart/notes.partial",
        "out/ssh/.link.partial",
    ] {
        assert!(
            t.path().join(kept).symlink_metadata().is_ok(),
            "{kept} was removed"
        );
    }
}

/// Nested out dirs (issue 18 §9): a render of `o/sub` leaves alone the
/// staging dir of a render of `o` going on at the same time (it holds
/// `o/.lock`; here the test does). Before, the stale-dir cleanup of `o/sub`
/// also looked in its parent and removed it, and `o`'s render lost its
/// files ("moving o/client into place: No such file or directory").
#[test]
fn a_nested_out_leaves_the_outer_renders_staging_alone() {
    let t = Test::new().config(TLS);
    let live = t.path().join("o/.regbake-staging-live/overlay");
    std::fs::create_dir_all(&live).expect("mkdir");
    std::fs::write(live.join("f"), "staged").expect("write");
    let lock = File::create(t.path().join("o/.lock")).expect("lock file");
    lock.lock().expect("lock");
    let t = t.args(&["-o", "o/sub", "render"]);
    t.success();
    assert_eq!(t.read("o/.regbake-staging-live/overlay/f"), "staged");
    assert!(t.path().join("o/sub/overlay").is_dir());
    lock.unlock().expect("unlock");
    // And the real thing: renders of both at once, a few times.
    for round in 0..4 {
        let outer = render_in(t.path(), "o");
        let inner = render_in(t.path(), "o/sub");
        for (name, c) in [("o", outer), ("o/sub", inner)] {
            let o = c.wait_with_output().expect("wait");
            assert!(
                o.status.success(),
                "round {round}, {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// `out/` as a mount point of another file system (tmpfs, in a private
/// mount namespace), and as a symlink to one: renders twice (the second
/// replaces the first).
#[test]
fn out_on_another_file_system_renders() {
    if !require_tool("unshare") {
        return;
    }
    let t = Test::new().config(TLS);
    std::fs::create_dir_all(t.path().join("out")).expect("mkdir");
    std::fs::create_dir_all(t.path().join("elsewhere")).expect("mkdir");
    let bin = BIN;
    let script = format!(
        "set -e\nmount -t tmpfs tmpfs out\nmount -t tmpfs tmpfs elsewhere\n\
         mkdir elsewhere/out && ln -s elsewhere/out link\n\
         for o in out link; do {bin} -o $o render; {bin} -o $o render; done\n\
         test -s out/overlay/etc/ssh/sshd_config && test -s elsewhere/out/kickstart/ks.cfg\n"
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .output()
        .expect("unshare");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `-o FILE`: the message says what is wrong, and the file is untouched.
#[test]
fn out_that_is_a_file_is_named() {
    let t = Test::new().file("out", "mine").args(&["render"]);
    let t = t.status(1).stderr_contains("is not a directory");
    let o = t.check();
    assert!(!o.stderr.contains("secrets/http_secret"), "{}", o.stderr);
    assert_eq!(t.read("out"), "mine");
}
