//! `regbake vagrant` when a bake does not go through: a step that fails,
//! Ctrl-C, a VM kept from an earlier bake, the box directory's lock held by
//! another run, another box's catalog in the way. Against the
//! recorded-argument stubs of `vagrant.rs`; no VM boots.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{kill, require_tool, start_with, Test};
use crate::vagrant::{calls, stubbed, VIRTUALBOX_ORDER};

#[test]
fn a_failure_at_each_step_destroys_the_vm_or_keeps_it() {
    for (fail_at, command) in [
        ("up", "vagrant up --provider virtualbox"),
        ("ssh", "vagrant ssh -c"),
        (
            "provision",
            "vagrant provision --provision-with regbake-clean",
        ),
        ("package", "vagrant package --output"),
        ("box", "vagrant box add --force"),
    ] {
        for keep in [false, true] {
            let args: &[&str] = if keep {
                &["vagrant", "--keep-vm"]
            } else {
                &["vagrant"]
            };
            let t = stubbed("virtualbox")
                .env("STUB_FAIL_AT", fail_at)
                .args(args);
            let t = t
                .status(1)
                .stderr_contains(command)
                .stderr_contains("exit status: 3")
                .stderr_contains(&format!("stub failure in {fail_at}"));
            let o = t.check();
            let calls = calls(&t);
            let n = VIRTUALBOX_ORDER
                .iter()
                .position(|c| c.starts_with(command))
                .expect("known step");
            // Everything up to the failing step ran, nothing after it...
            assert_eq!(calls[..=n], VIRTUALBOX_ORDER[..=n], "{fail_at}");
            // ...but the cleanup.
            if keep {
                assert_eq!(calls.len(), n + 1, "{fail_at}: {calls:?}");
                assert!(o.stderr.contains("kept the build VM"), "{}", o.stderr);
            } else {
                assert_eq!(calls[n + 1..], ["vagrant destroy -f"], "{fail_at}");
                let log = format!("out/logs/{:02}-destroy-build-vm-after-failure.log", n + 2);
                assert!(t.read(&log).contains("vagrant destroy -f"));
            }
            // No half-written box.
            assert!(!t
                .path()
                .join("out/box/.regbake-registry-1.0.0-virtualbox.box.partial")
                .exists());
        }
    }
}

#[test]
fn a_failure_in_the_libvirt_steps_destroys_the_vm() {
    if !require_tool("qemu-img") {
        return;
    }
    for (fail_at, command) in [
        ("halt", "vagrant halt"),
        ("vol-path", "virsh -c qemu:///system vol-path"),
        ("convert", "qemu-img convert -O qcow2"),
    ] {
        let t = stubbed("libvirt")
            .env("STUB_FAIL_AT", fail_at)
            .args(&["vagrant"]);
        let t = t.status(1).stderr_contains(command);
        t.check();
        assert_eq!(
            calls(&t).last().map(String::as_str),
            Some("vagrant destroy -f")
        );
        assert!(!t
            .path()
            .join("out/box/.regbake-registry-disk.qcow2.partial")
            .exists());
    }
}

/// A bake whose `vagrant up` waits 30 s for a SIGINT, and whose destroy
/// takes a second: the destroy after the interrupt must run to its end, not
/// be killed by that same interrupt (which left the VM behind).
fn slow_up() -> Test {
    stubbed("virtualbox")
        .env("STUB_SLOW_AT", "up")
        .env("STUB_DESTROY_SECONDS", "1")
        .args(&["vagrant"])
}

/// What the stub saw of [`slow_up`]'s bake, interrupted in `vagrant up`.
const UP_INTERRUPTED_THEN_DESTROYED: [&str; 5] = [
    "vagrant up --provider virtualbox",
    "stub up waiting",
    "stub up interrupted",
    "vagrant destroy -f",
    "stub destroy done",
];

#[test]
fn ctrl_c_stops_the_tool_and_destroys_the_vm() {
    let t = slow_up();
    let root = t.path().to_path_buf();
    let child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    wait_for_slow_up(&root);
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert_eq!(calls(&t), UP_INTERRUPTED_THEN_DESTROYED);
}

/// Wait until the stub is inside `vagrant up` with its trap set.
fn wait_for_slow_up(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(root.join("calls.log"))
        .unwrap_or_default()
        .contains("stub up waiting")
    {
        assert!(Instant::now() < deadline, "vagrant up never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pseudo-terminal: the master end, and the slave end opened as a file.
fn pty() -> (OwnedFd, std::fs::File) {
    // SAFETY: posix_openpt(3) and friends on a descriptor we own; ptsname_r
    // writes a NUL-terminated name into the buffer it is given.
    unsafe {
        // Not inherited by regbake (nor by another test's child): the
        // test's close must be the last one.
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt");
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r"
        );
        let name = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&name)
            .expect("open the pty's slave");
        (master, slave)
    }
}

/// Run a slow bake with stdout and stderr on `out`, close `reader` (the
/// terminal or `tee` going away) and send SIGHUP, as the shell does to its
/// jobs when the session ends. The tool and its VM must not be left
/// running, and the cleanup must not die writing to the dead output.
fn hang_up(out: std::fs::File, reader: OwnedFd) {
    let t = slow_up();
    let root = t.path().to_path_buf();
    let mut child = t
        .command()
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup the output"))
        .stderr(out)
        .spawn()
        .expect("spawn regbake");
    wait_for_slow_up(&root);
    drop(reader);
    kill(child.id(), libc::SIGHUP);
    let status = child.wait().expect("wait");
    // 101 would be a panic writing to the dead terminal (EIO); a kill by
    // SIGPIPE (no code) a write to the pipe whose reader is gone.
    assert_eq!(status.code(), Some(1), "{status}: {:?}", calls(&t));
    assert_eq!(calls(&t), UP_INTERRUPTED_THEN_DESTROYED);
    let up_log = std::fs::read_dir(root.join("out/logs"))
        .expect("out/logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-vagrant-up.log"))
        .expect("the up log");
    let up_log = std::fs::read_to_string(up_log.path()).expect("read the up log");
    assert!(
        up_log.contains("interrupted (SIGHUP: the terminal closed)"),
        "{up_log}"
    );
}

#[test]
fn a_closed_terminal_stops_the_tool_and_destroys_the_vm() {
    // A pty whose master end closes: an ssh session dropped.
    let (master, slave) = pty();
    hang_up(slave, master);
}

#[test]
fn a_hangup_with_output_piped_to_a_dead_reader_destroys_the_vm() {
    // `regbake vagrant 2>&1 | tee bake.log`: the hangup ends tee too.
    let (reader, writer) = std::io::pipe().expect("pipe");
    hang_up(std::fs::File::from(OwnedFd::from(writer)), reader.into());
}

/// Run `t`, started with `ignored` ignored, send it `sent` once its
/// `vagrant up` waits, and wait for its end.
fn signalled_with_one_ignored(
    t: &Test,
    ignored: libc::c_int,
    sent: libc::c_int,
) -> std::process::Output {
    let mut cmd = t.command();
    start_with(&mut cmd, ignored, libc::SIG_IGN);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    wait_for_slow_up(t.path());
    kill(child.id(), sent);
    child.wait_with_output().expect("wait")
}

#[test]
fn sigterm_stops_the_tool_of_a_bake_started_with_sigint_ignored() {
    // A `&` job of a script starts with SIGINT ignored, which regbake keeps
    // for itself; the tool must still take the SIGINT regbake sends it (a
    // shell cannot even trap a signal ignored when it started).
    let t = slow_up();
    let out = signalled_with_one_ignored(&t, libc::SIGINT, libc::SIGTERM);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    assert_eq!(calls(&t), UP_INTERRUPTED_THEN_DESTROYED);
}

#[test]
fn under_nohup_a_hangup_does_not_stop_the_bake() {
    // nohup (or a shell) started regbake with SIGHUP ignored: that choice
    // stays, and the bake goes on to its box.
    let t = stubbed("virtualbox")
        .env("STUB_SLOW_AT", "up")
        .env("STUB_SLOW_SECONDS", "10")
        .args(&["vagrant", "--no-import"]);
    let out = signalled_with_one_ignored(&t, libc::SIGHUP, libc::SIGHUP);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let calls = calls(&t);
    assert!(
        !calls.iter().any(|c| c.contains("interrupted")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("vagrant package")),
        "{calls:?}"
    );
}

#[test]
fn a_kept_vm_is_destroyed_before_the_next_bake() {
    let t = stubbed("virtualbox").args(&["vagrant", "--keep-vm", "--no-import"]);
    t.success();
    assert!(t
        .path()
        .join("out/.vagrant/machines/default/virtualbox/id")
        .is_file());
    let t = t.args(&["vagrant", "--no-import"]);
    t.success();
    let calls = calls(&t);
    // First bake: up … package, no destroy; second: destroy the kept VM first.
    assert_eq!(calls[4], "vagrant destroy -f", "{calls:?}");
    assert_eq!(calls[5], "vagrant up --provider virtualbox", "{calls:?}");
    assert_eq!(calls.last().map(String::as_str), Some("vagrant destroy -f"));
    assert!(t
        .path()
        .join("out/logs/01-destroy-previous-build-vm.log")
        .is_file());
}

/// `regbake vagrant` with `out/box` locked by another run (the test): runs
/// up to packaging, waits there with one message, and goes on once the lock
/// is free, or cleans up on Ctrl-C.
fn bake_behind_a_held_lock(ctrl_c: bool) -> (Test, i32, String) {
    use crate::box_interrupts::{hold_lock, WAITING};
    let t = stubbed("virtualbox").args(&["vagrant", "--no-import"]);
    let root = t.path().to_path_buf();
    let held = hold_lock(&t);
    let stderr_path = root.join("stderr.log");
    let mut child = t
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr.log"))
        .spawn()
        .expect("spawn regbake");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&stderr_path)
        .unwrap_or_default()
        .contains(WAITING)
    {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "ended before waiting: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        assert!(std::time::Instant::now() < deadline, "never waited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Nothing written to out/box while another run holds it.
    assert_eq!(
        calls(&t).last().map(String::as_str),
        Some("vagrant provision --provision-with regbake-clean")
    );
    if ctrl_c {
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    } else {
        drop(held);
    }
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr.log");
    assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    (t, status.code().unwrap_or(-1), stderr)
}

#[test]
fn bake_waits_for_the_box_dir_lock() {
    let (t, code, stderr) = bake_behind_a_held_lock(false);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider virtualbox",
            "vagrant ssh -c CURL",
            "vagrant provision --provision-with regbake-clean",
            "vagrant package --output TMP/out/box/.regbake-registry-1.0.0-virtualbox.box.partial",
            "vagrant destroy -f",
        ]
    );
    let catalog = t.read("out/box/regbake-registry.json");
    assert!(catalog.contains("\"virtualbox\""), "{catalog}");
}

#[test]
fn ctrl_c_while_waiting_for_the_lock_destroys_the_vm() {
    let (t, code, stderr) = bake_behind_a_held_lock(true);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider virtualbox",
            "vagrant ssh -c CURL",
            "vagrant provision --provision-with regbake-clean",
            "vagrant destroy -f",
        ]
    );
    assert!(!t.path().join("out/box/regbake-registry.json").exists());
}

/// A catalog of another box under this box's file name stops the bake
/// before the build VM, not after it (the box would be refused at the end).
#[test]
fn another_boxs_catalog_stops_the_bake_before_it_starts() {
    let t = stubbed("virtualbox")
        .file(
            "out/box/regbake-registry.json",
            r#"{"name":"regbake-registry","versions":[]}"#,
        )
        .args(&["vagrant"]);
    let t = t
        .status(2)
        .stderr_contains("vagrant.box_name")
        .stderr_contains("is the catalog of box \"regbake-registry\"")
        .stderr_contains("vagrant.box_name = \"regbake-registry\"");
    t.check();
    assert!(calls(&t).is_empty(), "{:?}", calls(&t));
}
