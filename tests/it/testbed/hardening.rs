//! Issue 18's appliance points, run in the testbed: the kickstart's %post
//! fails loudly, and the registry keeps one SELinux level across restarts
//! and upgrades (the level as docker is asked for it, and the one-time
//! relabel, as the `restorecon` stub records it: the testbed's docker runs
//! with SELinux off and its policy tools are stubs).

use std::time::Duration;

use super::scenarios::{
    assert_first_boot_ok, config, hello_present, kickstart_install, posts, DATA_DIR,
};
use super::{env, render, Admin, Testbed};
use crate::common::require_tool;
use crate::registry::{oci_layout, skopeo};

/// The level the registry container runs at, as docker was asked.
fn security_opt(tb: &Testbed, container: &str) -> String {
    tb.sh(&format!(
        "docker inspect -f '{{{{json .HostConfig.SecurityOpt}}}}' {container}"
    ))
    .trim()
    .to_string()
}

/// How many times `restorecon -RF` reset the registry's files.
fn relabels(tb: &Testbed) -> usize {
    tb.stub_calls()
        .lines()
        .filter(|l| l.starts_with("restorecon -RF /data/docker-registry/registry "))
        .count()
}

/// The registry and its collect run at one fixed MCS level, the rendered
/// one; the install resets the files' levels once per level (`restorecon
/// -RF`), not on a re-run; when the level changes (an upgrade from a
/// version that let docker pick a level per container) the registry stops
/// for the relabel and comes back at the new level with its data.
#[test]
fn the_registry_keeps_one_selinux_level_and_relabels_once() {
    let Some(env) = env() else { return };
    if !require_tool("skopeo") {
        return;
    }
    let admin = Admin::new();
    let t = render(&config(&admin, ""), &[]);
    let unit = t.read("out/overlay/etc/systemd/system/regbake-registry.service");
    let level = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("--security-opt label=level:"))
        .and_then(|l| l.strip_suffix(" \\"))
        .expect("a fixed level in the registry unit")
        .to_string();
    assert!(level.starts_with("s0:c"), "{level}");
    let gc = t.read("out/overlay/usr/local/sbin/regbake-gc");
    assert!(gc.contains(&format!("\nLEVEL={level}\n")), "{gc}");
    assert!(
        gc.contains("docker run --rm --name \"$NAME\" --security-opt \"label=level:$LEVEL\""),
        "{gc}"
    );

    let tb = kickstart_install(env, &t, "out/kickstart/ks.cfg", Some("registry:2"));
    assert_first_boot_ok(&tb, 5000);
    let want = format!("[\"label=level:{level}\"]");
    assert_eq!(security_opt(&tb, "registry"), want);
    assert_eq!(relabels(&tb), 1, "{}", tb.stub_calls());
    assert_eq!(
        tb.sh("cat /var/lib/regbake/selinux-level").trim(),
        level.as_str()
    );
    let ip = tb.ip();
    let hello = format!("docker://{ip}:5000/regbake/hello:v1");
    let src = oci_layout(&t.path().join("hello-image"));
    let (ok, out) = skopeo(&["copy", "--dest-tls-verify=false", &src, &hello]);
    assert!(ok, "{out}");

    // A re-run keeps the labels: no second walk of the data.
    tb.sh("/usr/local/sbin/regbake-install");
    assert_eq!(relabels(&tb), 1, "{}", tb.stub_calls());

    // An appliance whose files were labelled for another level.
    tb.sh("printf 's0:c1,c2\\n' > /var/lib/regbake/selinux-level");
    let before = tb.sh("docker inspect -f '{{.State.StartedAt}}' registry");
    let log = tb.sh("/usr/local/sbin/regbake-install 2>&1");
    assert!(
        log.contains("stopping the registry to relabel its files"),
        "{log}"
    );
    assert!(
        log.contains(&format!("for SELinux level {level} (once)")),
        "{log}"
    );
    assert_eq!(relabels(&tb), 2, "{}", tb.stub_calls());
    assert!(tb.wait_registry(5000, Duration::from_secs(60)));
    let after = tb.sh("docker inspect -f '{{.State.StartedAt}}' registry");
    assert_ne!(before, after, "the registry was not restarted");
    assert_eq!(security_opt(&tb, "registry"), want);
    let (ok, out) = hello_present(&hello, &["--tls-verify=false"]);
    assert!(ok, "image lost in the relabel: {out}");

    // A reboot: the same level again (docker would pick a new random one).
    tb.reboot();
    assert!(tb.wait_registry(5000, Duration::from_secs(60)));
    assert_eq!(security_opt(&tb, "registry"), want);
}

/// A `%post` that fails stops the install (`--erroronfail`: anaconda 21
/// then shows the script's log as a fatal error instead of rebooting a
/// half-installed machine), and its log ends by saying what failed, on
/// which line of regbake-install, and where the whole log is; no copy of
/// the overlay stays in /tmp.
#[test]
fn a_failing_post_stops_the_install_and_says_where_its_log_is() {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let t = render(&config(&admin, ""), &[]);
    let ks = t.read("out/kickstart/ks.cfg");
    let (header, body) = posts(&ks).into_iter().next().expect("a %post");
    assert!(
        header.starts_with("%post --erroronfail --log=/root/regbake-ks-post.log"),
        "{header}"
    );
    let tb = Testbed::installer(env, DATA_DIR);
    tb.sh("useradd -m ansible");
    // SELinux's policy store cannot be written: semanage fails.
    tb.write(
        "/usr/local/sbin/semanage",
        b"#!/bin/sh\n[ \"$1 $2\" = 'fcontext -l' ] && exit 0\n\
          echo 'libsemanage.semanage_commit_sandbox: Error while renaming /etc/selinux/targeted/active' >&2\nexit 1\n",
        0o755,
    );
    tb.write("/tmp/ks-script-rbk000", body.as_bytes(), 0o700);
    let o = tb.try_sh("cd / && /bin/sh /tmp/ks-script-rbk000 >/root/regbake-ks-post.log 2>&1");
    let log = tb.sh("cat /root/regbake-ks-post.log");
    assert!(!o.status.success(), "%post succeeded:\n{log}");
    let tail: Vec<&str> = log.lines().rev().take(4).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let tail = tail.join("\n");
    for want in [
        "regbake-install: error: line ",
        "`semanage fcontext -a -e /var/lib/docker \"$DOCKER_DIR\"` failed (exit status 1)",
        "regbake: FAILED while running regbake-install (exit status 1)",
        "the whole log is /root/regbake-ks-post.log on the installed disk",
        "/mnt/sysimage/root/regbake-ks-post.log",
        "The installation stops here.",
    ] {
        assert!(
            tail.contains(want),
            "{want:?} not at the end of the log:\n{log}"
        );
    }
    assert!(log.contains("Error while renaming"), "{log}");
    tb.sh("! ls /tmp/regbake-overlay.tar.gz /tmp/ks-script-rbk000 2>/dev/null");
}
