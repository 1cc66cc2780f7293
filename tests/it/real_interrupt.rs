//! Ctrl-C in the middle of a real bake (README "Real VMs"): SIGINT to
//! regbake's whole process group, as a terminal sends it, while the
//! provisioners run in the booted build VM. The bake stops, the tool gets
//! one interrupt (a second makes Vagrant exit without cleanup and Packer
//! skip its own), and the build VM is gone: no domain, volume, QEMU process
//! or box is left.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, Test};
use crate::real_vm::{
    assert_nothing_left, clear_leftovers, config, remove_box, vagrant_in, vm_env, vm_lock, VmEnv,
    BOX,
};

/// The contents of the first log in out/logs whose name ends with `suffix`.
fn log(t: &Test, suffix: &str) -> String {
    std::fs::read_dir(t.path().join("out/logs"))
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_default()
}

/// What regbake said and how it ended after a Ctrl-C.
struct Interrupted {
    code: Option<i32>,
    stderr: String,
}

/// Run `t` as a terminal's foreground job, wait until `ready` (given its
/// stderr so far) and press Ctrl-C: SIGINT to the whole process group.
fn interrupt_when(t: &Test, what: &str, ready: impl Fn(&str) -> bool) -> Interrupted {
    let stderr_path = t.path().join("stderr.txt");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut child = t
        .command()
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn regbake");
    let group = format!("-{}", child.id());

    let t0 = Instant::now();
    while !ready(&stderr()) {
        if t0.elapsed() > Duration::from_secs(600) || child.try_wait().ok().flatten().is_some() {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!("{what} never started:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let sent = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -INT {group}");
    let t1 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(300),
            "regbake still runs 5 min after Ctrl-C:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "real VMs: Ctrl-C after {:.0}s; regbake stopped and cleaned up in {:.0}s",
        t1.duration_since(t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    let stderr = stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Interrupted {
        code: status.code(),
        stderr,
    }
}

/// Neither `name` imported nor a box (or a partial one) in out/box.
fn assert_no_box(env: &VmEnv, t: &Test, name: &str) {
    let boxes =
        String::from_utf8_lossy(&vagrant_in(env, t.path(), &["box", "list"]).stdout).into_owned();
    assert!(
        !boxes.lines().any(|l| l.starts_with(&format!("{name} "))),
        "an interrupted bake imported its box:\n{boxes}"
    );
    let left: Vec<String> = std::fs::read_dir(t.path().join("out/box"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".box"))
        .collect();
    assert!(
        left.is_empty(),
        "an interrupted bake left {left:?} in out/box"
    );
}

#[test]
fn ctrl_c_during_a_real_bake_destroys_the_build_vm() {
    let Some(env) = vm_env() else { return };
    let _one = vm_lock();
    clear_leftovers(env);
    let home = env.vagrant_home.to_string_lossy().into_owned();
    let t = Test::new()
        .config(&config(env, free_port()))
        .env("VAGRANT_HOME", &home)
        .args(&["vagrant"]);
    // Once the VM is up and regbake-install runs in it.
    let i = interrupt_when(&t, "regbake-install", |_| {
        log(&t, "-vagrant-up.log").contains("Running provisioner: regbake-install")
    });
    assert_eq!(i.code, Some(1), "{}", i.stderr);
    assert!(i.stderr.contains("interrupted"), "{}", i.stderr);
    assert!(i.stderr.contains("destroying the build VM"), "{}", i.stderr);
    let up = log(&t, "-vagrant-up.log");
    assert!(
        !up.contains("Exiting immediately"),
        "Vagrant got a second interrupt and skipped its cleanup:\n{up}"
    );
    assert_nothing_left("after Ctrl-C");
    assert_no_box(env, &t, BOX);
}

/// Processes whose working directory is under `dir`: Packer runs in out/,
/// and its plugins and QEMU inherit that.
fn processes_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)))
        .map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        })
        .collect()
}

#[test]
fn ctrl_c_during_a_real_packer_bake_stops_the_build_vm() {
    const PACKER_BOX: &str = "regbake-test/packer-interrupted";
    let Some(env) = vm_env() else { return };
    let _one = vm_lock();
    // Also what an earlier run left, whose interrupt did not take.
    remove_box(env, PACKER_BOX);
    let home = env.vagrant_home.to_string_lossy().into_owned();
    let config = crate::real_packer::config(env).replace(crate::real_packer::BOX, PACKER_BOX);
    let t = Test::new()
        .config(&config)
        .env("VAGRANT_HOME", &home)
        .args(&["packer"]);
    // Once Packer is inside the VM, running the overlay's install.
    let i = interrupt_when(&t, "provisioning", |stderr| {
        stderr.contains("provisioning: installing the overlay")
    });
    assert_eq!(i.code, Some(1), "{}", i.stderr);
    assert!(i.stderr.contains("interrupted"), "{}", i.stderr);
    let build = log(&t, "-packer-build.log");
    // Packer 1.6.6's words for a cancel that ran every step's cleanup (the
    // QEMU process stopped, the output directory deleted).
    for said in [
        "Cancelling build after receiving interrupt",
        "Deleting output directory...",
        "Cleanly cancelled builds after being interrupted.",
    ] {
        assert!(
            build.contains(said),
            "the build log lacks {said:?}:\n{build}"
        );
    }
    let left = processes_in(t.path());
    assert!(left.is_empty(), "processes left after Ctrl-C: {left:?}");
    assert!(
        !t.path().join("out/packer-build/qemu").exists(),
        "Packer's output directory (the VM's disk) is left"
    );
    assert_no_box(env, &t, PACKER_BOX);
}
