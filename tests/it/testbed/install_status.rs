//! Issue 21, proven in the testbed: three inventory hosts served from a
//! real `regbake kickstart --serve` on the testbeds' network gateway
//! (172.30.213.1, which the testbeds reach). One fetches its kickstart
//! from inside its installer, runs the reporting %pre and the %post as
//! anaconda does ([`super::scenarios::run_posts`]), reboots, and its first
//! boot brings the registry up: ready. One fails in %post (SELinux's
//! `semanage` refuses, as on a machine whose policy store is broken): its
//! log tail is in the status. One never calls. The table, the JSON and
//! `/status.json` say exactly that, and a restarted server still does.

use std::time::{Duration, Instant};

use super::scenarios::{config_of, finish_install, journal, run_posts, DATA_DIR};
use super::{env, Admin, Os, Testbed};
use crate::common::Test;
use crate::install_status::states;
use crate::served::Server;

/// The %pre sections that report (the disk %pre runs in `ksdisk`).
fn report_pres(ks: &str) -> Vec<String> {
    let mut out = vec![];
    let mut lines = ks.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("%pre ") && line.contains("--log=/tmp/regbake-report.log") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "%end").collect();
            out.push(body.join("\n") + "\n");
        }
    }
    out
}

#[test]
fn served_installs_report_ready_post_failed_and_never_contacted() {
    served_installs(Os::Centos7);
}

#[test]
fn served_installs_report_ready_post_failed_and_never_contacted_rocky9() {
    served_installs(Os::Rocky9);
}

fn served_installs(os: Os) {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let t = Test::new()
        .config(&config_of(os, &admin, ""))
        .file("hosts.ini", "[registries]\nreg-ok\nreg-bad\nreg-silent\n");
    let gateway = super::static_ip(1);
    let args = ["kickstart", "--inventory", "hosts.ini", "--serve-once"];
    let mut server = Server::start_at(&t, &args, &format!("{gateway}:0"));
    let addr = server.addr.clone();

    // reg-ok: its kickstart fetched from inside its installer, as anaconda's
    // curl does; the reporting %pre, the %post, the reboot.
    let mut ok = Testbed::installer_of(env, os, DATA_DIR);
    let ks = ok.sh(&format!(
        "curl -fsS http://{addr}{}",
        server.paths["reg-ok"]
    ));
    let token = server.token("reg-ok");
    assert!(ks.contains(&format!("REGBAKE_REPORT_TOKEN='{token}'")));
    for pre in report_pres(&ks) {
        ok.write("/tmp/regbake-pre.sh", pre.as_bytes(), 0o700);
        let out = ok.sh("/bin/bash /tmp/regbake-pre.sh 2>&1");
        assert!(out.contains("regbake: reported pre to"), "{out}");
    }
    assert_eq!(states(&server.status_json())[0].1, "installing");
    // --serve-once: no second copy of its kickstart.
    let again = ok.try_sh(&format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' http://{addr}{}",
        server.paths["reg-ok"]
    ));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "410");
    run_posts(&ok, &ks).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states(&server.status_json())[0].1, "installed");
    ok.sh("test \"$(stat -c %a /var/lib/regbake/report)\" = 600");
    finish_install(&mut ok, env, &ks, Some(os.registry()));

    // reg-bad: semanage fails in regbake-install, so the %post fails.
    let bad = Testbed::installer_of(env, os, DATA_DIR);
    let ks_bad = bad.sh(&format!(
        "curl -fsS http://{addr}{}",
        server.paths["reg-bad"]
    ));
    bad.write(
        "/usr/local/sbin/semanage",
        b"#!/bin/sh\necho 'ValueError: SELinux policy is not managed or store cannot be accessed.' >&2\nexit 1\n",
        0o755,
    );
    for pre in report_pres(&ks_bad) {
        bad.write("/tmp/regbake-pre.sh", pre.as_bytes(), 0o700);
        bad.sh("/bin/bash /tmp/regbake-pre.sh");
    }
    let failed = run_posts(&bad, &ks_bad).expect_err("reg-bad's %post fails");
    assert!(
        failed.contains("FAILED while running regbake-install"),
        "{failed}"
    );
    assert!(
        failed.contains("regbake: reported post-failed to"),
        "{failed}"
    );

    // reg-ok's first boot: ready once its registry answers.
    let t0 = Instant::now();
    loop {
        let s = states(&server.status_json());
        if s[0].1 == "ready" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "reg-ok is {:?}:\n{}",
            s[0],
            journal(&ok, "regbake-firstboot")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let fb = journal(&ok, "regbake-firstboot");
    assert!(fb.contains("regbake: reported firstboot-ok to"), "{fb}");
    assert!(
        fb.contains("removed the report token from /root/anaconda-ks.cfg"),
        "{fb}"
    );
    // The token is nowhere on the installed machine any more.
    ok.sh("! test -e /var/lib/regbake/report");
    let holders = ok.sh(&format!(
        "grep -rlF -- '{token}' /etc /root /tmp /var/tmp /var/log /var/lib/regbake /home /opt /usr/local 2>/dev/null || true"
    ));
    assert_eq!(holders.trim(), "", "the token is left in files");

    let want = [
        ("reg-ok".to_string(), "ready".to_string()),
        ("reg-bad".to_string(), "post_failed".to_string()),
        ("reg-silent".to_string(), "never_contacted".to_string()),
    ];
    let check = |j: &serde_json::Value| {
        assert_eq!(states(j), want);
        assert_eq!(j["hosts"][0]["from"], ok.ip());
        assert_eq!(j["hosts"][1]["from"], bad.ip());
        let tail = j["hosts"][1]["log_tail"]
            .as_str()
            .expect("reg-bad's log tail");
        for want in [
            "ValueError: SELinux policy is not managed or store cannot be accessed.",
            "regbake: FAILED while running regbake-install",
            "regbake: the whole log is /root/regbake-ks-post.log",
        ] {
            assert!(tail.contains(want), "{want:?} not in:\n{tail}");
        }
        assert_eq!(j["counts"]["ready"], 1);
        assert_eq!(j["counts"]["post_failed"], 1);
        assert_eq!(j["counts"]["never_contacted"], 1);
    };
    check(&server.status_json());
    let status = |format: &str| {
        let o = std::process::Command::new(crate::common::BIN)
            .args(["kickstart", "--status", "--format", format])
            .current_dir(t.path())
            .output()
            .expect("--status");
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    check(&serde_json::from_str(&status("json")).expect("json"));
    let table = status("text");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("reg-ok      ready "), "{table}");
    assert!(lines[2].starts_with("reg-bad     %post failed "), "{table}");
    assert!(
        lines[2].contains("FAILED while running regbake-install"),
        "{table}"
    );
    assert_eq!(lines[3], "reg-silent  never contacted  -");
    assert_eq!(
        lines[4],
        "3 hosts: 1 ready, 1 %post failed, 1 never contacted"
    );
    assert!(
        table.contains("  | ValueError: SELinux policy is not managed"),
        "{table}"
    );
    eprintln!("{table}");

    // A restart keeps all of it.
    assert!(server.stop().success());
    let server = Server::start_at(&t, &args, &format!("{gateway}:0"));
    check(&server.status_json());
    assert!(
        server.log().is_empty() || !server.log().contains(&token),
        "a token in the log"
    );
}

#[test]
fn served_installs_report_ready_post_failed_and_never_contacted_alma10() {
    served_installs(Os::Alma10);
}

/// A first boot that cannot get its image (no network, no preloaded tar)
/// reports `firstboot failed` with the end of its journal, and keeps its
/// report file for the next boot's try.
#[test]
fn a_failed_first_boot_reports_its_journal_tail() {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let t = Test::new()
        .config(&config_of(Os::Centos7, &admin, ""))
        .file("hosts.ini", "[registries]\nreg-nofb\n");
    let server = Server::start_at(
        &t,
        &["kickstart", "--inventory", "hosts.ini"],
        &format!("{}:0", super::static_ip(1)),
    );
    let mut tb = Testbed::installer_of(env, Os::Centos7, DATA_DIR);
    let ks = tb.sh(&format!(
        "curl -fsS http://{}{}",
        server.addr, server.paths["reg-nofb"]
    ));
    // One pull attempt instead of five, for time.
    tb.sh(
        "install -d /etc/systemd/system/regbake-firstboot.service.d && \
         printf '[Service]\\nEnvironment=REGBAKE_PULL_ATTEMPTS=1\\n' \
         > /etc/systemd/system/regbake-firstboot.service.d/test.conf",
    );
    run_posts(&tb, &ks).unwrap_or_else(|e| panic!("{e}"));
    finish_install(&mut tb, env, &ks, None);
    let t0 = Instant::now();
    let j = loop {
        let j = server.status_json();
        if j["hosts"][0]["state"] == "firstboot_failed" {
            break j;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "{}:\n{}",
            j["hosts"][0],
            journal(&tb, "regbake-firstboot")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let tail = j["hosts"][0]["log_tail"].as_str().expect("log tail");
    for want in [
        "regbake-firstboot: error: could not pull registry:2",
        "regbake-firstboot: FAILED while getting the image registry:2 (exit status 1)",
    ] {
        assert!(tail.contains(want), "{want:?} not in:\n{tail}");
    }
    assert_eq!(
        j["hosts"][0]["detail"],
        "regbake-firstboot: FAILED while getting the image registry:2 (exit status 1)"
    );
    tb.sh("test -s /var/lib/regbake/report");
}
