//! Garbage collection on the appliance (`[registry.gc]`): the collect that
//! `regbake-gc` runs, run here by the real registry binary (Debian's
//! `docker-registry`, distribution 2.8) against the rendered config and the
//! data a real registry wrote, while that registry serves read-only as
//! `regbake-gc` restarts it; and the schedule as systemd reads it. The
//! appliance's own run of the timer's service is in the testbed
//! (`testbed/scenarios.rs`, the Vagrant scenario).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{check_all, require_tool, Test};
use crate::registry::{oci_image, skopeo, tools_present, Served, KEY};

const CONFIG: &str = "etc/docker/registry/config.yml";
const CONFIG3: &str = "etc/distribution/config.yml";
const SCRIPT: &str = "out/overlay/usr/local/sbin/regbake-gc";

fn render(extra: &str) -> Test {
    let t = Test::new()
        .config(&format!(
            "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n{extra}"
        ))
        .args(&["render"]);
    t.success();
    t
}

/// What the rendered `regbake-gc` runs, as bash reads its assignments: the
/// arguments of `registry` in the collect's container, and the line the
/// registry unit's EnvironmentFile gets for the collect.
fn gc_command(t: &Test) -> (Vec<String>, (String, String)) {
    let script = t.read(SCRIPT);
    let start = script.find("\nIMAGE=").expect("IMAGE= in regbake-gc");
    let end = script.find("\nlog() {").expect("log() in regbake-gc");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -eu\n{}\nprintf '%s\\0' \"$READONLY_ENV\" \"${{COLLECT[@]}}\"",
            &script[start..end]
        ))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_terminator('\0')
        .map(str::to_string)
        .collect();
    let env_line = words.remove(0);
    // As systemd reads an EnvironmentFile line: NAME='value'.
    let (name, value) = env_line.split_once('=').expect("NAME=value");
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .expect("a single-quoted value");
    (words, (name.to_string(), value.to_string()))
}

/// The collect as the appliance runs it, the config path being the
/// rendered file's; the storage dir overridden as [`Served`] does.
fn collect(out: &Path, args: &[String], store: &Path) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.strip_prefix('/') {
            Some(rel) => out.join("overlay").join(rel).display().to_string(),
            None => a.clone(),
        })
        .collect();
    let o = Command::new("docker-registry")
        .args(&args)
        .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", store)
        .output()
        .expect("docker-registry");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "docker-registry {args:?}: {text}");
    text
}

/// A blob's data file in the filesystem driver's layout.
fn blob_file(store: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    store
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// A plain-HTTP request without a body to the registry on 127.0.0.1.
fn status(port: u16, method: &str, path: &str) -> u16 {
    status_at("127.0.0.1", port, method, path)
}

/// A plain-HTTP request without a body: the status code.
pub(crate) fn status_at(host: &str, port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect((host, port)).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn push(reg: &Served, src: &str, name: &str) {
    let dest = reg.docker_ref(name);
    let (ok, text) = skopeo(&["copy", "--dest-tls-verify=false", src, &dest]);
    assert!(ok, "push {name}: {text}\n{}", reg.log_text());
}

/// Two tags that share no blob; one deleted through the API
/// (`registry.delete`); the registry restarted read-only as regbake-gc
/// does it (pushes refused, pulls served); the rendered collect frees the
/// deleted tag's layer and config and keeps the other's, which still
/// pulls once the registry is writable again.
#[test]
fn collect_frees_a_deleted_tag_and_keeps_the_other() {
    if !tools_present() {
        return;
    }
    let t = render("");
    let out = t.path().join("out");
    let (args, (name, value)) = gc_command(&t);
    assert_eq!(args, ["garbage-collect", "/etc/docker/registry/config.yml"]);
    let store = tempfile::tempdir().expect("store");
    let store = store.path();
    let keep = oci_image(&t.path().join("keep"), b"a layer that stays\n");
    let gone = oci_image(&t.path().join("gone"), b"a layer that goes\n");
    for a in [&keep.layer, &keep.config] {
        assert!(![&gone.layer, &gone.config].contains(&a), "shared blob");
    }

    let reg = Served::start_on(&out, CONFIG, store, &[]);
    push(&reg, &keep.src, "regbake/gc:keep");
    push(&reg, &gone.src, "regbake/gc:gone");
    let path = format!("/v2/regbake/gc/manifests/{}", gone.manifest);
    assert_eq!(status(reg.port, "DELETE", &path), 202, "{}", reg.log_text());
    drop(reg);
    // Deleting unlinks: the blobs are still on disk.
    assert!(blob_file(store, &gone.layer).is_file());

    let reg = Served::start_on(&out, CONFIG, store, &[(&name, &value)]);
    assert_eq!(
        status(reg.port, "POST", "/v2/regbake/gc/blobs/uploads/"),
        405,
        "a read-only registry took an upload:\n{}",
        reg.log_text()
    );
    let other = oci_image(&t.path().join("other"), b"pushed during the collect\n");
    let (ok, text) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &other.src,
        &reg.docker_ref("regbake/gc:during"),
    ]);
    assert!(!ok, "a push went through during the collect: {text}");
    let (ok, text) = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &reg.docker_ref("regbake/gc:keep"),
    ]);
    assert!(ok, "no pulls during the collect: {text}");
    let said = collect(&out, &args, store);
    assert!(
        said.contains(&format!("blob eligible for deletion: {}", gone.layer)),
        "{said}"
    );
    drop(reg);
    for gone in [&gone.layer, &gone.config] {
        assert!(!blob_file(store, gone).exists(), "{gone} kept:\n{said}");
    }
    for kept in [&keep.layer, &keep.config] {
        assert!(blob_file(store, kept).is_file(), "{kept} collected");
    }

    let reg = Served::start_on(&out, CONFIG, store, &[]);
    let copy = t.path().join("pulled");
    let dir = format!("dir:{}", copy.display());
    let (ok, text) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &reg.docker_ref("regbake/gc:keep"),
        &dir,
    ]);
    assert!(ok, "the kept tag does not pull: {text}");
    let layer = copy.join(keep.layer.trim_start_matches("sha256:"));
    assert!(layer.is_file(), "no layer in {}", copy.display());
    let path = format!("/v2/regbake/gc/blobs/{}", gone.layer);
    assert_eq!(status(reg.port, "GET", &path), 404);
    push(&reg, &other.src, "regbake/gc:after");
}

/// `delete_untagged`: a tag pushed again leaves its old manifest untagged;
/// the rendered collect (`--delete-untagged`) frees its layer, which a
/// collect without the flag keeps. No API delete is needed
/// (`registry.delete = false`).
#[test]
fn delete_untagged_frees_what_a_tag_no_longer_names() {
    if !tools_present() {
        return;
    }
    // registry:3 (delete_untagged needs it); its config is collected here
    // by 2.8, which reads it alike, with single-platform images only.
    let t = render(
        "[registry]\nimage = \"registry:3\"\ndelete = false\n[registry.gc]\ndelete_untagged = true\n",
    );
    let out = t.path().join("out");
    let (args, _) = gc_command(&t);
    assert_eq!(
        args,
        [
            "garbage-collect",
            "--delete-untagged",
            "/etc/distribution/config.yml"
        ]
    );
    let store = tempfile::tempdir().expect("store");
    let store = store.path();
    let old = oci_image(&t.path().join("old"), b"build 1\n");
    let new = oci_image(&t.path().join("new"), b"build 2\n");
    let reg = Served::start_on(&out, CONFIG3, store, &[]);
    push(&reg, &old.src, "regbake/app:latest");
    push(&reg, &new.src, "regbake/app:latest");
    drop(reg);

    let without: Vec<String> = args
        .iter()
        .filter(|a| *a != "--delete-untagged")
        .cloned()
        .collect();
    collect(&out, &without, store);
    assert!(blob_file(store, &old.layer).is_file(), "collected untagged");
    let said = collect(&out, &args, store);
    assert!(!blob_file(store, &old.layer).exists(), "kept:\n{said}");
    assert!(blob_file(store, &new.layer).is_file());

    let reg = Served::start_on(&out, CONFIG3, store, &[]);
    let (ok, text) = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.docker_ref("regbake/app:latest"),
    ]);
    assert!(ok && text.contains(&new.layer), "{text}");
    let path = format!("/v2/regbake/app/manifests/{}", old.manifest);
    assert_eq!(status(reg.port, "GET", &path), 404);
}

/// The schedule reaches the timer as written, and systemd reads it as it
/// reads the config value; `regbake check` verifies the units; a refused
/// schedule names its field; a disabled gc ships nothing of it.
#[test]
fn schedule_reaches_the_timer_and_disabled_gc_ships_nothing() {
    const TIMER: &str = "out/overlay/etc/systemd/system/regbake-gc.timer";
    let have_systemd = require_tool("systemd-analyze");
    for schedule in [
        "weekly",
        "Sun *-*-* 03:00",
        "Mon-Fri 02:30:15",
        "*-*-1,15 0/6:00",
    ] {
        let t = render(&format!("[registry.gc]\nschedule = \"{schedule}\"\n"));
        let timer = t.read(TIMER);
        assert!(
            timer.contains(&format!("\nOnCalendar={schedule}\n")),
            "{timer}"
        );
        if have_systemd {
            let normalized = |s: &str| {
                let o = Command::new("systemd-analyze")
                    .args(["calendar", s])
                    .output()
                    .expect("systemd-analyze");
                assert!(o.status.success(), "{s:?}: {o:?}");
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.contains("Normalized form:"))
                    .expect("normalized form")
                    .to_string()
            };
            let line = timer
                .lines()
                .find_map(|l| l.strip_prefix("OnCalendar="))
                .expect("OnCalendar=");
            assert_eq!(normalized(line), normalized(schedule));
        }
    }
    check_all(
        Test::new()
            .config(&format!(
                "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n\
                 [registry]\nimage = \"registry:3\"\n\
                 [registry.gc]\nschedule = \"Sat,Sun 04:30\"\ndelete_untagged = true\n"
            ))
            .args(&["render"]),
    );

    let t = Test::new()
        .config("version = 1\n[registry.gc]\nschedule = \"Sun 03:00 Europe/Paris\"\n")
        .args(&["render"]);
    let t = t.status(2).stderr_contains("- registry.gc.schedule = ");
    t.check();
    assert!(!t.path().join("out").exists());

    let t = render("[registry.gc]\nenabled = false\n");
    for f in [
        TIMER,
        "out/overlay/etc/systemd/system/regbake-gc.service",
        SCRIPT,
    ] {
        assert!(!t.path().join(f).exists(), "{f} rendered");
    }
    let unit = t.read("out/overlay/etc/systemd/system/regbake-registry.service");
    assert!(!unit.contains("READONLY"), "{unit}");
    let firstboot = t.read("out/overlay/usr/local/sbin/regbake-firstboot");
    assert!(!firstboot.contains("regbake-gc"), "{firstboot}");
}

/// Issue 18 §12: schedules systemd refuses (a repeat past its part's end:
/// the timer would not load, and first boot stops under `set -e`) or that
/// never fire (impossible dates) are refused with the field named, and
/// nothing is written.
#[test]
fn schedules_systemd_refuses_or_never_fires_are_refused() {
    for schedule in [
        "*:0/60",
        "0/24:00",
        "*-*-1/31 00:00",
        "*-1/12-01 00:00",
        "*-*-31/1 00:00",
        "2030/1000-01-01 00:00",
        "*-02-30 00:00",
        "*-04-31 00:00",
        "02-30 00:00",
    ] {
        let t = Test::new()
            .config(&format!(
                "version = 1\n[registry.gc]\nschedule = \"{schedule}\"\n"
            ))
            .args(&["render"]);
        let t = t
            .status(2)
            .stderr_contains(&format!(
                "- registry.gc.schedule = \"{schedule}\": expected"
            ))
            .stderr_contains("on a date that occurs");
        t.check();
        assert!(!t.path().join("out").exists());
    }
}
