//! Ctrl-C in the middle of a real bake (README "Real VMs"): SIGINT to
//! regbake's whole process group, as a terminal sends it, while the
//! provisioners run in the booted build VM. The bake stops, Vagrant gets one
//! interrupt (a second makes it exit without cleanup), and the build VM is
//! destroyed: no domain, volume or box is left.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{free_port, Test};
use crate::real_vm::{
    assert_nothing_left, clear_leftovers, config, vagrant_in, vm_env, vm_lock, BOX,
};

/// The bake's `vagrant up` log, once it exists.
fn up_log(t: &Test) -> String {
    std::fs::read_dir(t.path().join("out/logs"))
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-vagrant-up.log"))
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_default()
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
    let stderr_path = t.path().join("stderr.txt");
    let mut child = t
        .command()
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn regbake");
    let pgid = child.id();

    // Wait until the VM is up and regbake-install runs in it.
    let t0 = Instant::now();
    while !up_log(&t).contains("Running provisioner: regbake-install") {
        if t0.elapsed() > Duration::from_secs(600) || child.try_wait().ok().flatten().is_some() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            let _ = child.wait();
            panic!(
                "regbake-install never started:\n{}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                up_log(&t)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -INT -{pgid}");
    let t1 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(300),
            "regbake still runs 5 min after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    eprintln!(
        "real VMs: Ctrl-C after {:.0}s; regbake stopped and cleaned up in {:.0}s",
        t1.duration_since(t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("destroying the build VM"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let log = up_log(&t);
    assert!(
        !log.contains("Exiting immediately"),
        "Vagrant got a second interrupt and skipped its cleanup:\n{log}"
    );
    assert_nothing_left("after Ctrl-C");
    let boxes =
        String::from_utf8_lossy(&vagrant_in(env, t.path(), &["box", "list"]).stdout).into_owned();
    assert!(
        !boxes.lines().any(|l| l.starts_with(&format!("{BOX} "))),
        "an interrupted bake imported its box:\n{boxes}"
    );
    assert!(
        std::fs::read_dir(t.path().join("out/box"))
            .into_iter()
            .flatten()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".box")),
        "an interrupted bake left a box in out/box"
    );
}
