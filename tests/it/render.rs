//! Rendering with the embedded defaults and the real validators.

use crate::common::{check_all, require_tool, Test, CORE_VALIDATORS};
use crate::golden::snapshot;

#[test]
fn fresh_render_with_embedded_defaults_generates_a_key() {
    let t = Test::new().args(&["render"]);
    let o = t.success();
    assert!(o.stderr.contains("generated key"), "{}", o.stderr);
    assert_eq!(t.mode("out/ssh/id_ed25519"), 0o600);
    assert_eq!(t.mode("out/secrets/http_secret"), 0o600);
    let pubkey = t.read("out/ssh/id_ed25519.pub");
    let authorized = t.read("out/overlay/home/ansible/.ssh/authorized_keys");
    assert_eq!(authorized.trim(), pubkey.trim());
}

#[test]
fn check_passes_for_defaults() {
    check_all(Test::new());
}

#[test]
fn renders_are_deterministic_and_secrets_stable() {
    // TLS on: the CA, server certificate, http secret and generated SSH key
    // are created once and then reused.
    let t = Test::new()
        .config("version = 1\n[registry.tls]\nmode = \"generate\"\n")
        .args(&["render"]);
    t.success();
    let first = snapshot(&t.path().join("out"), &[]);
    t.success();
    let second = snapshot(&t.path().join("out"), &[]);
    assert_eq!(first, second, "a re-render changed the output");
    assert_eq!(t.mode("out/secrets/tls/ca.key"), 0o600);
    assert_eq!(t.mode("out/secrets/tls/server.key"), 0o600);
    assert_eq!(t.mode("out/overlay/opt/docker/certs/registry.key"), 0o600);

    // Turning TLS off and on again keeps the CA.
    let ca = t.read("out/secrets/tls/ca.crt");
    let t = t.config("version = 1\n").args(&["render"]);
    t.success();
    let t = t
        .config("version = 1\n[registry.tls]\nmode = \"generate\"\n")
        .args(&["render"]);
    t.success();
    assert_eq!(t.read("out/secrets/tls/ca.crt"), ca);

    // A new SAN re-issues the server certificate from the same CA.
    let server = t.read("out/secrets/tls/server.crt");
    let t = t
        .config("version = 1\n[registry.tls]\nmode = \"generate\"\nsans = [\"10.1.2.3\"]\n")
        .args(&["render"]);
    t.success();
    assert_ne!(t.read("out/secrets/tls/server.crt"), server);
    assert_eq!(t.read("out/secrets/tls/ca.crt"), ca);
}

#[test]
fn render_leaves_boxes_and_logs_alone() {
    let t = Test::new()
        .file("out/box/keep.box", "box")
        .file("out/logs/01-up.log", "log")
        .args(&["render"]);
    t.success();
    t.success();
    assert_eq!(t.read("out/box/keep.box"), "box");
    assert_eq!(t.read("out/logs/01-up.log"), "log");
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .expect("read dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".regbake-"))
        .collect();
    assert!(leftovers.is_empty(), "staging dirs left behind");
}

#[test]
fn init_writes_defaults_and_does_not_overwrite() {
    let t = Test::new().args(&["init"]);
    t.success();
    let written = t.read("regbake.toml");
    assert!(written.contains("version = 1"));
    let t = t.file("regbake.toml", "# mine\n").args(&["init"]);
    let t = t.status(1).stderr_contains("--force");
    t.check();
    assert_eq!(t.read("regbake.toml"), "# mine\n");
    let t = t.args(&["init", "--force"]);
    t.success();
    assert_eq!(t.read("regbake.toml"), written);
    // What init writes renders as is.
    t.args(&["render"]).success();
}

#[test]
fn kickstart_command_renders_only_the_kickstart() {
    let t = Test::new().args(&["kickstart"]);
    let o = t.success();
    assert!(o.stdout.contains("out/kickstart/ks.cfg"));
    assert!(t.path().join("out/kickstart/ks.cfg").is_file());
    assert!(!t.path().join("out/overlay").exists());
    if require_tool("ksvalidator") {
        let st = crate::common::ksvalidator(t.path())
            .args(["-v", "RHEL7"])
            .arg(t.path().join("out/kickstart/ks.cfg"))
            .status()
            .expect("ksvalidator");
        assert!(st.success());
    }
}

#[test]
fn check_reports_a_broken_file() {
    for tool in CORE_VALIDATORS {
        if !require_tool(tool) {
            return;
        }
    }
    let t = Test::new().args(&["render"]);
    t.success();
    // Break the sudoers file behind regbake's back, then check only (re-render
    // would repair it), through the library's check entry point via JSON.
    let sudoers = t.path().join("out/overlay/etc/sudoers.d/ansible");
    std::fs::write(&sudoers, "ansible ALL=(ALL) NOPASSWD ALL\n").expect("write");
    let out = t.path().join("out");
    let lock = regbake::output::lock(&out).expect("lock");
    let checks = regbake::check::run_checks(&out, &lock, false).expect("checks");
    let visudo = checks
        .iter()
        .find(|c| c.check == "visudo")
        .expect("a visudo check");
    assert!(
        matches!(visudo.outcome, regbake::check::Outcome::Failed(_)),
        "{visudo:?}"
    );
}

#[test]
fn check_json_lists_every_check() {
    let t = Test::new().args(&["check", "--format", "json"]);
    let o = t.run();
    let checks: serde_json::Value = serde_json::from_str(&o.stdout).expect("json output");
    let checks = checks.as_array().expect("an array");
    assert!(checks.len() >= 12, "{checks:?}");
    for c in checks {
        let status = c["status"].as_str().expect("status");
        assert!(
            ["passed", "warning", "failed", "skipped"].contains(&status),
            "{c}"
        );
        assert!(c["check"].is_string() && c["file"].is_string(), "{c}");
    }
    let units = checks
        .iter()
        .filter(|c| c["check"] == "systemd-analyze")
        .count();
    // firstboot, registry, and the garbage collection's service and timer.
    assert_eq!(units, 4, "every unit verified");
}

/// Issue 12, item 6: proxy and repository credentials (`user:password@`)
/// reach only files their owner alone can read, in `out/` and inside the
/// overlay the appliance unpacks.
#[test]
fn credentials_stay_in_owner_only_files() {
    let t = Test::new()
        .config(
            "version = 1\n[proxy]\nhttp = \"http://ops:s3cretPW@proxy.example:3128\"\n\
             https = \"http://ops:s3cretPW@proxy.example:3128\"\n\
             [repos]\nmirror = \"https://mirror:m1rrorPW@vault.example/7.9.2009\"\n",
        )
        .args(&["render"]);
    t.success();
    let out = t.path().join("out");
    let files = crate::golden::snapshot(&out, &[".lock"]);
    let mut holders = 0;
    for (path, (data, mode)) in &files {
        let text = String::from_utf8_lossy(data);
        if text.contains("s3cretPW") || text.contains("m1rrorPW") {
            holders += 1;
            assert_eq!(mode & 0o077, 0, "{path} is {mode:o} and holds a password");
        }
    }
    // yum.conf, two repo files, two drop-ins, the Vagrantfile, Packer's
    // variables, two kickstarts at least.
    assert!(holders >= 9, "only {holders} files hold the credentials");
    let tar = std::fs::File::open(out.join("overlay.tar.gz")).expect("overlay");
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(tar));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let mode = e.header().mode().expect("mode");
        let mut data = String::new();
        let _ = std::io::Read::read_to_string(&mut e, &mut data);
        if data.contains("s3cretPW") || data.contains("m1rrorPW") {
            let path = e.path().expect("path").display().to_string();
            assert_eq!(mode & 0o077, 0, "{path} in the overlay is {mode:o}");
        }
    }
}
