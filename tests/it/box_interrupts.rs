//! `regbake box pack` cut short or kept waiting: killed or stopped by
//! Ctrl-C mid-pack, and packs that wait for `out/box/.lock`. Whatever
//! happens, the catalog and the boxes already there stay as they were.

use std::time::{Duration, Instant};

use crate::boxfile::{catalog, ovf, pack, qcow2, tools, versions, CATALOG};
use crate::common::{names_in, regbake_cmd, require_tool, tool_ok, Test};

/// A small box packed and in the catalog, then a pack of a big disk started
/// and caught once compressed data has reached its temp file.
struct Interrupted {
    t: Test,
    child: std::process::Child,
    catalog_before: String,
    boxes_before: Vec<String>,
}

fn start_big_pack() -> Interrupted {
    let t = Test::new();
    qcow2(&t, "small.qcow2", "1G");
    pack(&t, &["--provider", "libvirt", "--disk", "small.qcow2"]);
    let catalog_before = t.read(CATALOG);
    let boxes_before = names_in(&t.path().join("out/box"));
    // Metadata preallocation: a real qcow2 whose file spans the whole 16 GiB
    // (sparse on disk), so packing takes far longer than the test waits.
    tool_ok(
        &t,
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "preallocation=metadata",
            "big.qcow2",
            "16G",
        ],
    );
    let mut child = regbake_cmd()
        .args([
            "box",
            "pack",
            "--provider",
            "libvirt",
            "--disk",
            "big.qcow2",
            "--version",
            "9.0.0",
        ])
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    let deadline = Instant::now() + Duration::from_secs(60);
    let box_dir = t.path().join("out/box");
    loop {
        let partial = std::fs::read_dir(&box_dir)
            .expect("read out/box")
            .filter_map(std::result::Result::ok)
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".partial")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            });
        if partial {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the pack ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no partial box appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    Interrupted {
        t,
        child,
        catalog_before,
        boxes_before,
    }
}

/// No new box, no new visible file, the catalog byte for byte as before,
/// and vagrant still imports it.
fn assert_nothing_changed(t: &Test, catalog_before: &str, boxes_before: &[String]) {
    assert_eq!(t.read(CATALOG), catalog_before, "catalog changed");
    let box_dir = t.path().join("out/box");
    let after = names_in(&box_dir);
    let visible = |v: &[String]| -> Vec<String> {
        v.iter().filter(|n| !n.starts_with('.')).cloned().collect()
    };
    assert_eq!(
        visible(&after),
        visible(boxes_before),
        "a new file appeared in out/box"
    );
    assert!(
        after
            .iter()
            .all(|n| !n.ends_with(".box") || boxes_before.contains(n)),
        "{after:?}"
    );
    assert!(!box_dir.join("regbake-registry-9.0.0-libvirt.box").exists());
    tool_ok(t, "vagrant", &["box", "add", CATALOG]);
}

#[test]
fn killed_pack_leaves_no_box_and_the_catalog_unchanged() {
    if !tools() {
        return;
    }
    let mut run = start_big_pack();
    // SIGKILL: no handler runs, the worst case for atomicity. The temp file
    // stays behind, hidden and not named *.box.
    run.child.kill().expect("kill");
    let status = run.child.wait().expect("wait");
    assert!(!status.success(), "the pack finished before the kill");
    assert_nothing_changed(&run.t, &run.catalog_before, &run.boxes_before);
}

#[test]
fn ctrl_c_stops_the_pack_and_removes_its_temp_file() {
    if !tools() {
        return;
    }
    let run = start_big_pack();
    let pid = i32::try_from(run.child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let Interrupted {
        t,
        child,
        catalog_before,
        boxes_before,
    } = run;
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let leftovers: Vec<String> = names_in(&t.path().join("out/box"))
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_nothing_changed(&t, &catalog_before, &boxes_before);
}

/// `out/box/.lock` held from the test with the same flock(2) regbake uses;
/// released on drop (closing the file).
pub(crate) struct HeldLock {
    _file: std::fs::File,
}

pub(crate) fn hold_lock(t: &Test) -> HeldLock {
    use std::os::fd::AsRawFd;
    let dir = t.path().join("out/box");
    std::fs::create_dir_all(&dir).expect("mkdir out/box");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".lock"))
        .expect("open lock");
    // SAFETY: flock(2) on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0, "lock already held");
    HeldLock { _file: f }
}

/// A `regbake box pack` running in the background, its stderr collected.
struct Bg {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn_pack(t: &Test, args: &[&str]) -> Bg {
    use std::io::Read;
    let mut child = regbake_cmd()
        .args(["box", "pack"])
        .args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("stderr buffer")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Bg {
        child,
        stderr,
        reader,
    }
}

impl Bg {
    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Wait until stderr contains `text` (the process must still run).
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(text) {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "regbake ended ({status}) before saying {text:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "regbake did not say {text:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the end: exit code and all of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait");
        self.reader.join().expect("stderr reader");
        let stderr = self.stderr.lock().expect("stderr buffer").clone();
        (status.code(), stderr)
    }
}

pub(crate) const WAITING: &str = "waiting for another regbake in";

#[test]
fn concurrent_packs_of_two_versions_both_reach_the_catalog() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    // Line both runs up behind a held lock so they really run at the same
    // time, then let them race for it.
    let held = hold_lock(&t);
    let mut runs: Vec<Bg> = ["3.0.0", "3.1.0"]
        .iter()
        .map(|v| {
            spawn_pack(
                &t,
                &[
                    "--provider",
                    "libvirt",
                    "--disk",
                    "disk.qcow2",
                    "--version",
                    v,
                ],
            )
        })
        .collect();
    for r in &mut runs {
        r.wait_for(WAITING);
    }
    drop(held);
    for r in runs {
        let (code, stderr) = r.finish();
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    }
    assert_eq!(
        versions(&catalog(&t)),
        [
            ("3.0.0".to_string(), vec!["libvirt".to_string()]),
            ("3.1.0".to_string(), vec!["libvirt".to_string()])
        ]
    );
    for v in ["3.0.0", "3.1.0"] {
        tool_ok(&t, "vagrant", &["box", "add", "--box-version", v, CATALOG]);
    }
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(list.contains("regbake/registry (libvirt, 3.0.0)"), "{list}");
    assert!(list.contains("regbake/registry (libvirt, 3.1.0)"), "{list}");

    // And without a lock to line them up: a virtualbox and a libvirt box of
    // one version, started together, share one version entry.
    let t = Test::new().file("box.ovf", &ovf("disk.vmdk"));
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "disk.raw", "16M"]);
    tool_ok(
        &t,
        "qemu-img",
        &["convert", "-O", "vmdk", "disk.raw", "disk.vmdk"],
    );
    qcow2(&t, "disk.qcow2", "1G");
    let a = spawn_pack(&t, &["--provider", "virtualbox", "--ovf", "box.ovf"]);
    let b = spawn_pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    for r in [a, b] {
        let (code, stderr) = r.finish();
        assert_eq!(code, Some(0), "{stderr}");
    }
    let mut providers = versions(&catalog(&t));
    providers[0].1.sort();
    assert_eq!(
        providers,
        [(
            "1.0.0".to_string(),
            vec!["libvirt".to_string(), "virtualbox".to_string()]
        )]
    );
    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--provider", "libvirt", CATALOG],
    );
}

#[test]
fn a_pack_waits_for_the_lock_then_succeeds_and_cleans_up() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    let held = hold_lock(&t);
    // As if the lock holder were writing it: it must survive the wait.
    let partial = t
        .path()
        .join("out/box/.regbake-registry-4.0.0-libvirt.box.AbCd12.partial");
    std::fs::write(&partial, vec![7u8; 3 << 20]).expect("plant partial");
    let mut run = spawn_pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "disk.qcow2",
            "--version",
            "5.0.0",
        ],
    );
    // WAITING is printed once the lock was found taken, before anything in
    // out/box/ is touched; that a waiter never gets the lock while it is
    // held is util::lock's unit test, so no sleep is needed to prove it here.
    run.wait_for(WAITING);
    assert!(
        run.child.try_wait().expect("wait").is_none(),
        "did not wait"
    );
    assert!(
        partial.exists(),
        "removed a temp file while the lock was held"
    );
    assert!(!t.path().join(CATALOG).exists());
    drop(held);
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    assert!(!partial.exists(), "stale partial kept");
    assert!(
        stderr.contains(".regbake-registry-4.0.0-libvirt.box.AbCd12.partial")
            && stderr.contains("MiB freed"),
        "{stderr}"
    );
    assert_eq!(
        versions(&catalog(&t)),
        [("5.0.0".to_string(), vec!["libvirt".to_string()])]
    );
    tool_ok(&t, "vagrant", &["box", "add", CATALOG]);
    // The lock file stays (deleting it could let two runs lock two files).
    assert!(t.path().join("out/box/.lock").is_file());
}

#[test]
fn ctrl_c_ends_a_wait_for_the_lock() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    let _held = hold_lock(&t);
    let mut run = spawn_pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    run.wait_for(WAITING);
    let pid = i32::try_from(run.child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(names_in(&t.path().join("out/box")), [".lock"]);
}

#[test]
fn the_next_pack_removes_what_a_killed_pack_left() {
    if !tools() {
        return;
    }
    let mut run = start_big_pack();
    run.child.kill().expect("kill");
    run.child.wait().expect("wait");
    let t = run.t;
    let box_dir = t.path().join("out/box");
    let left: Vec<String> = names_in(&box_dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let o = pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "small.qcow2",
            "--version",
            "1.2.0",
        ],
    );
    assert!(o.stderr.contains(&left[0]), "{}", o.stderr);
    assert!(o.stderr.contains("freed"), "{}", o.stderr);
    assert!(
        names_in(&box_dir).iter().all(|n| !n.ends_with(".partial")),
        "{:?}",
        names_in(&box_dir)
    );
    assert_eq!(
        versions(&catalog(&t)),
        [
            ("1.0.0".to_string(), vec!["libvirt".to_string()]),
            ("1.2.0".to_string(), vec!["libvirt".to_string()])
        ]
    );
    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--box-version", "1.2.0", CATALOG],
    );
}
