//! Issue 21: the status page of `regbake kickstart --serve` in a real
//! browser, Debian's headless Chromium: the DOM after its script ran (it
//! polls `status.json` and redraws the rows), and a screenshot. Skipped
//! with a reason when chromium is missing; a failure under
//! `REGBAKE_REQUIRE_TOOLS=1`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{require_tool, Test};
use crate::served::Server;

/// Chromium on `url` with `mode` (`--dump-dom`, `--screenshot=…`), as root
/// in a fresh profile, killed after 60 s at most; its stdout.
fn chromium(profile: &Path, mode: &[&str], url: &str) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,720",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(mode)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("chromium stdout")
}

/// The page as Chromium shows it, after its own script fetched
/// `status.json` and drew the rows: a ready host, a host whose %post failed
/// (its log tail in the row, a script in it shown as text, not run), one
/// never contacted, one whose install began since the page was last
/// loaded.
#[test]
fn the_status_page_shows_each_host_in_headless_chromium() {
    if !require_tool("chromium") {
        return;
    }
    let t = Test::new().file("hosts.ini", "[registries]\nreg1\nreg2\nreg3\nreg4\n");
    let server = Server::start(&t, &["kickstart", "--inventory", "hosts.ini"]);
    for event in ["pre", "post-ok", "firstboot-ok"] {
        assert_eq!(server.report("reg1", event, b"").status, 200);
    }
    let log = "unpacking\n<script>document.title='pwned'</script>\n\
               regbake: FAILED while running regbake-install (exit status 1); the lines above say why.\n";
    assert_eq!(server.report("reg2", "pre", b"").status, 200);
    assert_eq!(
        server.report("reg2", "post-failed", log.as_bytes()).status,
        200
    );
    let url = format!("http://{}/", server.addr);
    let profile = tempfile::tempdir().expect("profile");

    // Virtual time: the page's poll of status.json (after 2 s) runs
    // before the DOM is taken.
    let dump =
        |profile: &Path| chromium(profile, &["--virtual-time-budget=5000", "--dump-dom"], &url);
    let before = dump(profile.path());
    assert!(
        before.contains("data-host=\"reg4\" data-state=\"never_contacted\""),
        "{before}"
    );
    assert_eq!(server.report("reg4", "pre", b"").status, 200);
    let profile = tempfile::tempdir().expect("profile");
    let dom = dump(profile.path());
    assert!(
        dom.contains("<title>regbake install status</title>"),
        "{dom}"
    );
    // Drawn by the script (the page as served says "updated TIME" only).
    assert!(
        dom.contains(", live</p>"),
        "the page's script did not redraw it:\n{dom}"
    );
    for (host, state, label) in [
        ("reg1", "ready", "ready"),
        ("reg2", "post_failed", "%post failed"),
        ("reg3", "never_contacted", "never contacted"),
        ("reg4", "installing", "installing"),
    ] {
        let row = format!(
            "<tr class=\"st-{state}\" data-host=\"{host}\" data-state=\"{state}\"><td>{host}</td><td>{label}</td>"
        );
        assert!(dom.contains(&row), "no {row:?} in:\n{dom}");
    }
    assert!(
        dom.contains("<td>regbake: FAILED while running regbake-install (exit status 1); the lines above say why."),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("pwned</title>"),
        "a reported log ran as script"
    );
    assert!(
        dom.contains("4 hosts: 1 ready, 1 %post failed, 1 installing, 1 never contacted"),
        "{dom}"
    );

    // A screenshot of it, for a look (and: it renders).
    let shot = t.path().join("status.png");
    let profile = tempfile::tempdir().expect("profile");
    chromium(
        profile.path(),
        &[
            "--virtual-time-budget=3000",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(dir) = std::env::var("REGBAKE_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("status.png"));
    }
}
