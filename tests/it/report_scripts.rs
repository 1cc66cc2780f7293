//! Issue 21: the reports the kickstart's own scripts send, run here under
//! CentOS 7's bash 4.2 against a real server: the %pre as served, and the
//! %post's report function with a failure's log. Only their report part
//! runs (the %post's install writes /etc: that runs in the testbed).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{bash42, Test};
use crate::served::Server;

/// The section of `ks` whose header starts with `head` (its body).
fn section(ks: &str, head: &str) -> String {
    let mut lines = ks.lines().skip_while(|l| !l.starts_with(head));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {head} in the kickstart"));
    lines
        .take_while(|l| l.trim() != "%end")
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// From a script, its report settings and function (up to the function's
/// closing line), to run without the rest.
fn report_part(script: &str) -> String {
    let start = script.find("REGBAKE_REPORT_URL=").expect("report URL");
    let end = script[start..].find("\n)\n").expect("function end") + start + 3;
    script[start..end].to_string()
}

fn run(bash: &std::path::Path, script: &str) -> (bool, String, Duration) {
    let t0 = Instant::now();
    let o = Command::new(bash)
        .arg("-c")
        .arg(script)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("bash");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out, t0.elapsed())
}

#[test]
fn the_kickstarts_scripts_report_to_the_server_under_bash_4_2() {
    let Some(bash) = bash42() else { return };
    let t = Test::new().file("hosts.ini", "[registries]\nreg1\nreg2\n");
    let server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    let (code, ks) = server.get(&server.paths["reg1"], &[]);
    assert_eq!(code, 200);
    let ks = String::from_utf8(ks).expect("utf-8");
    let token = server.token("reg1");

    // The %pre as served: installing.
    let pre = section(
        &ks,
        "%pre --interpreter=/bin/bash --log=/tmp/regbake-report.log",
    );
    assert!(
        pre.contains(&format!("REGBAKE_REPORT_TOKEN='{token}'")),
        "{pre}"
    );
    let (ok, out, _) = run(&bash, &pre);
    assert!(ok, "{out}");
    assert!(out.contains("regbake: reported pre to http://"), "{out}");
    assert!(!out.contains(&token), "the token was printed: {out}");
    assert_eq!(server.status_json()["hosts"][0]["state"], "installing");

    // The %post's end, failed: its log's last 64 KiB, under set -euo pipefail
    // and from the EXIT trap, as the %post calls it.
    let post = section(&ks, "%post --erroronfail --log=/root/regbake-ks-post.log");
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("post.log");
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("regbake-install: line {i:04} of a long log\n"));
    }
    text.push_str(
        "regbake: FAILED while running regbake-install (exit status 1); the lines above say why.\n",
    );
    std::fs::write(&log, &text).expect("log");
    let script = format!(
        "set -euo pipefail\n{}\ntrap 'regbake_report post-failed {}' EXIT\nfalse\n",
        report_part(&post),
        log.display()
    );
    let (ok, out, _) = run(&bash, &script);
    assert!(!ok, "the script's own failure stands");
    assert!(out.contains("regbake: reported post-failed"), "{out}");
    let j = server.status_json();
    assert_eq!(j["hosts"][0]["state"], "post_failed");
    let (code, kept) = server.get("/log/reg1", &[]);
    assert_eq!(code, 200);
    assert_eq!(kept, text.as_bytes()[text.len() - 64 * 1024..].to_vec());

    // The first boot's function is the same text.
    let fb = std::fs::read_to_string(
        crate::common::repo().join("templates/overlay/usr/local/sbin/regbake-firstboot.hbs"),
    )
    .expect("firstboot template");
    let func = |s: &str| {
        let a = s.find("regbake_report() (").expect("function");
        let b = s[a..].find("\n)\n").expect("end") + a;
        s[a..b].to_string()
    };
    assert_eq!(
        func(&fb),
        func(&post),
        "firstboot's report function differs"
    );

    // A server that does not answer: three tries, then the install goes on.
    let dead = format!(
        "REGBAKE_REPORT_URL='http://127.0.0.1:{}/report/reg1'\n",
        crate::common::free_port()
    );
    let script = format!(
        "set -euo pipefail\n{}\nregbake_report post-ok\necho after\n",
        report_part(&post).replace(
            &format!("REGBAKE_REPORT_URL='http://{}/report/reg1'\n", server.addr),
            &dead
        )
    );
    let (ok, out, took) = run(&bash, &script);
    assert!(ok, "{out}");
    assert!(
        out.contains("regbake: could not report post-ok to http://127.0.0.1:")
            && out.contains("(HTTP status 000); the install goes on\nafter"),
        "{out}"
    );
    assert!(!out.contains(&token), "the token was printed: {out}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The other host saw nothing.
    assert_eq!(server.status_json()["hosts"][1]["state"], "never_contacted");
}
