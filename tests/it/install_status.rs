//! Issue 21: the install status of a served fleet. Reports over HTTP with
//! each host's token, the durable store in `out/fleet/` (a restart keeps
//! it), `regbake kickstart --status [--format json]` while the server
//! runs, `--serve-once` and `--reset`, the refusals, the live table in a
//! real terminal (tmux), and 1,000 hosts reporting at once. The status page
//! in a real browser is `status_page.rs`; the reports sent by the
//! kickstart's own scripts are in the testbed.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{regbake_cmd, require_tool, Test, BIN};
use crate::served::{exchange, report_request, Server};

const INVENTORY: &str = "[registries]\nreg1 mac=52:54:00:12:34:01\nreg2\nreg3\n";

/// `regbake kickstart --status [ARGS]` in `t`'s dir: (exit code, stdout, stderr).
pub(crate) fn status(t: &Test, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["kickstart", "--status"];
    all.extend_from_slice(args);
    regbake(t, &all)
}

/// `regbake ARGS` in `t`'s dir: (exit code, stdout, stderr).
pub(crate) fn regbake(t: &Test, args: &[&str]) -> (i32, String, String) {
    let o = regbake_cmd()
        .args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .output()
        .expect("regbake kickstart --status");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Each host and its state, from `/status.json` or `--status --format json`.
pub(crate) fn states(j: &serde_json::Value) -> Vec<(String, String)> {
    j["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or_default().to_string(),
                h["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// One host installs and comes up, one fails in %post with its log, one
/// never calls: the table, `--status` (while serving and after), its JSON
/// and `/status.json` say exactly that, and a restart keeps it.
#[test]
fn reports_are_recorded_shown_and_kept_across_a_restart() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let mut server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    let (status_code, _) = server.get(&server.paths["reg1"], &[]);
    assert_eq!(status_code, 200);
    for event in ["pre", "post-ok", "firstboot-ok"] {
        let a = server.report("reg1", event, b"");
        assert_eq!(a.status, 200, "{event}: {}", a.text());
    }
    let mut log = String::new();
    for i in 0..3000 {
        log.push_str(&format!(
            "regbake-install: step {i} of the install, going well\n"
        ));
    }
    log.push_str(
        "regbake: FAILED while running regbake-install (exit status 1); the lines above say why.\n",
    );
    let (code, _) = server.get(&server.paths["reg2"], &[]);
    assert_eq!(code, 200);
    assert_eq!(server.report("reg2", "pre", b"").status, 200);
    // As the %post sends it: its log's last 64 KiB.
    let a = server.report(
        "reg2",
        "post-failed",
        &log.as_bytes()[log.len() - 64 * 1024..],
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let want = [
        ("reg1".to_string(), "ready".to_string()),
        ("reg2".to_string(), "post_failed".to_string()),
        ("reg3".to_string(), "never_contacted".to_string()),
    ];
    assert_eq!(states(&server.status_json()), want);

    // --status reads the store while the server writes it.
    let (code, out, err) = status(&t, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("HOST  STATE"), "{out}");
    assert!(lines[1].starts_with("reg1  ready "), "{out}");
    assert!(lines[1].contains(" 127.0.0.1"), "{out}");
    assert!(lines[2].starts_with("reg2  %post failed "), "{out}");
    assert!(
        lines[2].ends_with("regbake: FAILED while running regbake-install (exit status 1); the lines above say why."),
        "{out}"
    );
    assert_eq!(lines[3], "reg3  never contacted  -");
    assert_eq!(
        lines[4],
        "3 hosts: 1 ready, 1 %post failed, 1 never contacted"
    );
    assert!(out.contains("reg2: %post failed at "), "{out}");
    assert!(
        out.contains("  | regbake-install: step 2999 of the install"),
        "{out}"
    );
    let (code, out, _) = status(&t, &["--format", "json"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(states(&j), want);
    assert_eq!(j["counts"]["ready"], 1);
    assert_eq!(j["counts"]["post_failed"], 1);
    assert_eq!(j["counts"]["never_contacted"], 1);
    // The log's last 64 KiB, ending with the failure.
    let tail = j["hosts"][1]["log_tail"].as_str().expect("log tail");
    assert_eq!(tail.len(), 64 * 1024);
    assert!(log.ends_with(tail));
    assert!(j["hosts"][0]["ready_at"].is_string() && j["hosts"][0]["took_seconds"].is_number());
    // The terminal (not a tty here): a summary line per change.
    let shown = Instant::now();
    while !server
        .stdout()
        .contains("status: 3 hosts: 1 ready, 1 %post failed, 1 never contacted")
    {
        assert!(
            shown.elapsed() < Duration::from_secs(10),
            "{}",
            server.stdout()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_text = server.log();
    assert!(
        log_text.contains("report POST \"/report/reg2/post-failed\" status=200 host=reg2"),
        "{log_text}"
    );

    // The store: owner-only, and kept across a restart.
    for f in ["status.db", "boot-params", ".lock"] {
        assert_eq!(t.mode(&format!("out/fleet/{f}")), 0o600, "{f}");
    }
    assert_eq!(t.mode("out/fleet"), 0o700);
    let tokens = server.paths.clone();
    assert!(server.stop().success());
    let (_, after_stop, _) = status(&t, &["--format", "json"]);
    assert_eq!(states(&serde_json::from_str(&after_stop).unwrap()), want);
    let again = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    assert_eq!(again.paths, tokens, "the tokens are kept");
    assert_eq!(states(&again.status_json()), want);
    assert!(
        again.stdout().contains("install status of 3 hosts (0 new)"),
        "{}",
        again.stdout()
    );
}

/// A report without its host's token is refused and logged, changes
/// nothing, and no token is ever written to the log.
#[test]
fn a_report_without_the_right_token_is_refused_and_logged() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    let reg1 = server.token("reg1");
    let reg2 = server.token("reg2");
    for (token, want) in [(None, 401), (Some(reg2.as_str()), 403), (Some("0000"), 403)] {
        let a = exchange(
            &server.addr,
            &report_request("reg1", "firstboot-ok", token, b"x"),
        )
        .unwrap();
        assert_eq!(a.status, want, "{}", a.text());
        assert!(a.head.contains("Connection: close"), "{}", a.head);
    }
    let a = exchange(
        &server.addr,
        &report_request("reg1", "reboot", Some(&reg1), b""),
    )
    .unwrap();
    assert_eq!(a.status, 404);
    assert!(a
        .text()
        .contains("expected one of pre, post-ok, post-failed, firstboot-ok, firstboot-failed"));
    assert_eq!(
        states(&server.status_json())[0],
        ("reg1".to_string(), "never_contacted".to_string())
    );
    // A fetch with a mistyped URL that holds a token.
    let (code, _) = server.get(&format!("/ks//{reg1}/reg1.ks"), &[]);
    assert_eq!(code, 404);
    let log = server.log();
    assert!(
        log.contains("report POST \"/report/reg1/firstboot-ok\" status=403 host=- peer=127.0.0.1")
            && log.contains("(wrong token for host reg1)"),
        "{log}"
    );
    assert!(
        log.contains("status=401") && log.contains("needs host reg1's token"),
        "{log}"
    );
    for token in [&reg1, &reg2] {
        assert!(!log.contains(token.as_str()), "a token in the log:\n{log}");
        assert!(
            !server.stdout().contains(token.as_str()),
            "a token on stdout"
        );
    }
}

/// `--serve-once`: after `pre`, the kickstart is gone (410), also after a
/// restart; `--reset` (refused while a server runs) serves it again.
#[test]
fn serve_once_stops_serving_a_kickstart_whose_install_began() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let args = ["kickstart", "--inventory", "hosts.ini", "--serve-once"];
    let mut server = Server::start(&t, &args);
    let path = server.paths["reg1"].clone();
    assert_eq!(server.get(&path, &[]).0, 200);
    assert_eq!(
        server.get(&path, &[]).0,
        200,
        "served until the install began"
    );
    assert_eq!(server.report("reg1", "pre", b"").status, 200);
    let (code, body) = server.get(&path, &[]);
    assert_eq!(code, 410, "{}", String::from_utf8_lossy(&body));
    assert_eq!(server.get(&server.paths["reg2"], &[]).0, 200);
    let (code, _, err) = regbake(&t, &["kickstart", "--reset", "reg1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another regbake kickstart --serve records installs in"),
        "{err}"
    );
    assert!(server.stop().success());
    let mut server = Server::start(&t, &args);
    assert_eq!(server.get(&path, &[]).0, 410, "kept across a restart");
    assert!(server.stop().success());
    let (code, _, err) = regbake(&t, &["kickstart", "--reset", "reg1", "reg9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reset: no host reg9 in"), "{err}");
    let (code, out, err) = regbake(&t, &["kickstart", "--reset", "reg1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reset reg1: never contacted"), "{out}");
    let server = Server::start(&t, &args);
    assert_eq!(server.get(&path, &[]).0, 200);
}

/// Reports are refused until the CLI is right: an address on every
/// interface needs `--report-url` (exit 2, before anything is rendered).
#[test]
fn serving_on_every_address_needs_a_report_url() {
    let t = Test::new()
        .args(&["kickstart", "--serve", "0.0.0.0:8080"])
        .status(2)
        .stderr_contains("--serve = \"0.0.0.0:8080\": listens on every address")
        .stderr_contains("add --report-url http://ADDRESS:8080");
    t.check();
    assert!(!t.path().join("out").exists(), "nothing is written");
    Test::new()
        .args(&[
            "kickstart",
            "--serve",
            "127.0.0.1:0",
            "--report-url",
            "http://0.0.0.0:8080",
        ])
        .status(2)
        .stderr_contains("--report-url = \"http://0.0.0.0:8080\": 0.0.0.0 is not an address")
        .check();
    Test::new()
        .args(&["kickstart", "--report-url", "http://192.0.2.5:8080"])
        .status(2)
        .stderr_contains("--serve")
        .check();
    Test::new()
        .args(&["kickstart", "--status"])
        .status(1)
        .stderr_contains(
            "no install status in out/fleet/status.db: `regbake kickstart --serve` records it",
        )
        .check();
}

/// With `--report-url`, the served kickstarts and boot parameters carry it.
#[test]
fn the_report_url_is_what_the_installers_are_given() {
    let t = Test::new().file("hosts.ini", INVENTORY);
    let server = Server::start_at(
        &t,
        &[
            "kickstart",
            "--inventory",
            "hosts.ini",
            "--report-url",
            "http://192.0.2.5:8080/",
        ],
        "127.0.0.1:0",
    );
    let params = t.read("out/fleet/boot-params");
    let token = server.token("reg2");
    assert!(
        params.contains(&format!(
            "reg2 inst.ks=http://192.0.2.5:8080/ks/{token}/reg2.ks\n"
        )),
        "{params}"
    );
    assert!(server
        .stdout()
        .contains("installers reach it as http://192.0.2.5:8080"));
    assert!(!server.stdout().contains(&token), "a token on stdout");
}

/// The live table in a real terminal (tmux): the progress line, the counts
/// and a failed host's row appear as reports arrive.
#[test]
fn the_live_table_shows_progress_in_a_terminal() {
    if !require_tool("tmux") {
        return;
    }
    let t = Test::new().file("hosts.ini", INVENTORY);
    let session = format!("regbake-live-{}", std::process::id());
    let socket = t.path().join("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux")
    };
    struct Kill<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["kill-server"]);
        }
    }
    let _kill = Kill(&tmux);
    let cmd = format!(
        "cd {} && HOME={}/home {BIN} kickstart --inventory hosts.ini --serve 127.0.0.1:0 2>serve.log",
        t.path().display(),
        t.path().display()
    );
    let o = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    let wait = |what: &str| {
        let t0 = Instant::now();
        loop {
            let s = screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no {what:?} on screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let s = wait("[--------------------] 0 of 3 done");
    let addr = s
        .lines()
        .find_map(|l| l.strip_prefix("listening on http://"))
        .expect("address")
        .trim()
        .to_string();
    let paths = crate::served::boot_paths(&t.path().join("out"));
    let token = |h: &str| paths[h].split('/').nth(2).unwrap().to_string();
    for (host, event, body) in [
        ("reg1", "pre", ""),
        ("reg1", "post-ok", ""),
        ("reg1", "firstboot-ok", ""),
        ("reg2", "pre", ""),
        (
            "reg2",
            "post-failed",
            "x\nregbake: FAILED while unpacking the appliance (exit status 2)\n",
        ),
    ] {
        let a = exchange(
            &addr,
            &report_request(host, event, Some(&token(host)), body.as_bytes()),
        )
        .unwrap();
        assert_eq!(a.status, 200);
    }
    let s = wait("2 of 3 done (1 ready, 1 failed)");
    assert!(
        s.contains("3 hosts: 1 ready, 1 %post failed, 1 never contacted"),
        "{s}"
    );
    let row = s
        .lines()
        .find(|l| l.starts_with("reg2 "))
        .unwrap_or_else(|| panic!("no reg2 row:\n{s}"));
    assert!(
        row.contains("%post failed") && row.contains("FAILED while unpacking the appliance"),
        "{row}"
    );
    // The table is drawn once, in place: one header line on the screen.
    assert_eq!(s.matches("HOST  ").count(), 1, "{s}");
}

/// 1,000 hosts report at once, three reports each (pre, then post-ok or
/// post-failed with a 64 KiB log for every tenth, then firstboot-ok): every
/// report is answered 200 and recorded, as `/status.json` and `--status`
/// say. Bounded: each request times out after 20 s, the whole in 120 s.
#[test]
fn a_thousand_hosts_reporting_at_once_are_all_recorded() {
    const HOSTS: usize = 1000;
    let mut inv = String::from("[registries]\n");
    for i in 0..HOSTS {
        inv.push_str(&format!("h{i}\n"));
    }
    let t = Test::new().file("hosts.ini", &inv);
    let server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    let addr = server.addr.clone();
    let started = Instant::now();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(HOSTS));
    let log = std::sync::Arc::new("y".repeat(64 * 1024));
    let handles: Vec<_> = (0..HOSTS)
        .map(|i| {
            let host = format!("h{i}");
            let token = server.token(&host);
            let (addr, barrier, log) = (addr.clone(), barrier.clone(), log.clone());
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || -> Result<u32, String> {
                    barrier.wait();
                    let post = if i % 10 == 0 {
                        "post-failed"
                    } else {
                        "post-ok"
                    };
                    let mut retries = 0;
                    for event in ["pre", post, "firstboot-ok"] {
                        let body: &[u8] = if event == "post-failed" {
                            log.as_bytes()
                        } else {
                            b""
                        };
                        let req = report_request(&host, event, Some(&token), body);
                        // As the kickstart's scripts do: a few tries.
                        let mut last = String::new();
                        let ok = (0..5).any(|_| match exchange(&addr, &req) {
                            Ok(a) if a.status == 200 => true,
                            Ok(a) => {
                                last = format!("{} {}", a.status, a.text());
                                retries += 1;
                                false
                            }
                            Err(e) => {
                                last = e.to_string();
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(100));
                                false
                            }
                        });
                        if !ok {
                            return Err(format!("{host} {event}: {last}"));
                        }
                    }
                    Ok(retries)
                })
                .expect("spawn")
        })
        .collect();
    let mut retries = 0;
    for h in handles {
        retries += h.join().expect("client thread").expect("report");
    }
    let took = started.elapsed();
    eprintln!(
        "{} reports from {HOSTS} hosts in {took:?} ({retries} retried)",
        HOSTS * 3
    );
    assert!(took < Duration::from_secs(120), "{took:?}");
    let j = server.status_json();
    assert_eq!(j["total"], HOSTS);
    assert_eq!(j["counts"]["ready"], HOSTS, "{}", j["summary"]);
    let (code, out, _) = status(&t, &["--format", "json"]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["counts"]["ready"], HOSTS);
    // Every tenth host's failure log was kept until its firstboot-ok: the
    // events table has them all.
    let events = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             print(c.execute(\"select event, count(*), sum(bytes) from events group by event order by event\").fetchall())",
        ])
        .arg(t.path().join("out/fleet/status.db"))
        .output()
        .expect("python3");
    let events = String::from_utf8_lossy(&events.stdout);
    assert_eq!(
        events.trim(),
        format!(
            "[('firstboot-ok', {HOSTS}, 0), ('post-failed', {}, {}), ('post-ok', {}, 0), ('pre', {HOSTS}, 0)]",
            HOSTS / 10,
            HOSTS / 10 * 64 * 1024,
            HOSTS - HOSTS / 10
        )
    );
}
