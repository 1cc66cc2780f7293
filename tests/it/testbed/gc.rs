//! Garbage collection on a running appliance (`[registry.gc]`), a step of
//! the Vagrant scenario: the timer firstboot enabled, and its service run
//! by systemd as the timer would.

use std::time::{Duration, Instant};

use super::scenarios::{hello_present, journal, wait_until};
use super::Testbed;
use crate::common::Test;
use crate::gc::status_at;
use crate::registry::{oci_image, skopeo};

const BLOBS: &str = "/data/docker-registry/registry/docker/registry/v2/blobs/sha256";

fn blob(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("{BLOBS}/{}/{hex}/data", &hex[..2])
}

fn push(t: &Test, dir: &str, body: &[u8], dest: &str) -> crate::registry::OciImage {
    let image = oci_image(&t.path().join(dir), body);
    let (ok, out) = skopeo(&["copy", "--dest-tls-verify=false", &image.src, dest]);
    assert!(ok, "push {dest}: {out}");
    image
}

/// Starts a collect (`--no-block`). Back to back, as here, collects would
/// restart the registry more than 5 times in 10 s, when systemd fails a
/// unit (its default start limit): regbake-gc resets the registry's start
/// counter before each of its restarts.
fn start_collect(tb: &Testbed) {
    tb.sh("systemctl start --no-block regbake-gc.service");
}

/// The registry container runs without the read-only setting.
fn writable(tb: &Testbed) -> bool {
    !tb.sh("docker inspect registry")
        .contains("\"REGISTRY_STORAGE_MAINTENANCE_READONLY=")
}

/// The appliance at `ip` (plain HTTP on 5000, `regbake/hello:v1` pushed):
/// - regbake-gc.timer is enabled and listed by `systemctl list-timers`;
/// - a tag deleted through the API leaves its layer on disk until
///   `systemctl start regbake-gc.service`, which frees it, keeps hello,
///   logs to the journal and leaves the registry writable;
/// - during a collect (held open by a `docker` shim on the service's PATH
///   that then fails it) pushes are refused and pulls served, and after
///   the failed collect the registry is writable again.
///
/// `image`: the registry's image (inside the appliance); `config`: where
/// it reads its config.
pub(super) fn collect_on_the_appliance(
    tb: &Testbed,
    t: &Test,
    ip: &str,
    image: &str,
    config: &str,
) {
    let t0 = Instant::now();
    assert_eq!(
        tb.sh("systemctl is-enabled regbake-gc.timer").trim(),
        "enabled"
    );
    let timers = tb.sh("systemctl list-timers --all --no-pager");
    assert!(timers.contains("regbake-gc.timer"), "{timers}");
    let hello = format!("docker://{ip}:5000/regbake/hello:v1");
    let no_tls = ["--tls-verify=false"];

    let gone = push(
        t,
        "gc-gone",
        b"deleted before the collect\n",
        &format!("docker://{ip}:5000/regbake/gone:v1"),
    );
    let path = format!("/v2/regbake/gone/manifests/{}", gone.manifest);
    assert_eq!(status_at(ip, 5000, "DELETE", &path), 202);
    tb.sh(&format!("test -f {}", blob(&gone.layer)));

    // A shim on the service's PATH records what docker is asked.
    tb.write(
        "/usr/local/bin/docker",
        b"#!/bin/sh\nprintf '%s\\n' \"$*\" >> /run/regbake-test-docker.log\nexec /usr/bin/docker \"$@\"\n",
        0o755,
    );
    let o = tb.try_sh("systemctl start regbake-gc.service");
    let log = journal(tb, "regbake-gc");
    assert!(o.status.success(), "regbake-gc failed:\n{log}");
    // The collect runs at the registry's level (it must read its files).
    let level = tb
        .sh("docker inspect -f '{{json .HostConfig.SecurityOpt}}' registry")
        .trim()
        .to_string();
    assert!(level.starts_with("[\"label=level:s0:c"), "{level}");
    let asked = tb.sh("cat /run/regbake-test-docker.log");
    let run = asked
        .lines()
        .find(|l| l.starts_with("run --rm --name registry-gc "))
        .unwrap_or_else(|| panic!("no collect container in:\n{asked}"));
    let want = format!(
        "--security-opt {}",
        level.trim_start_matches("[\"").trim_end_matches("\"]")
    );
    assert!(run.contains(&want), "{want:?} not in {run:?}");
    for want in [
        "regbake-gc: restarting the registry read-only for the collect",
        "regbake-gc: registry is read-only: pulls are served, pushes and deletes refused",
        &format!("regbake-gc: collecting: registry garbage-collect {config}"),
        &format!("blob eligible for deletion: {}", gone.layer),
        "regbake-gc: collect done: /data/docker-registry/registry had ",
        "regbake-gc: registry answers http://127.0.0.1:5000/v2/",
    ] {
        assert!(log.contains(want), "{want:?} not in the journal:\n{log}");
    }
    tb.sh(&format!("! test -e {}", blob(&gone.layer)));
    tb.sh("! test -e /run/regbake/registry-maintenance.env");
    assert!(writable(tb));
    let (ok, out) = hello_present(&hello, &no_tls);
    assert!(ok, "hello lost in the collect: {out}");

    // A collect held open, then failing.
    tb.write(
        "/usr/local/bin/docker",
        b"#!/bin/sh\ncase \" $* \" in\n  *\" garbage-collect \"*)\n    touch /run/regbake-test-collecting\n    \
          while [ ! -e /run/regbake-test-release ]; do sleep 0.2; done\n    echo 'test: the collect fails' >&2\n    exit 3 ;;\nesac\n\
          exec /usr/bin/docker \"$@\"\n",
        0o755,
    );
    start_collect(tb);
    wait_until("the collect to start", Duration::from_secs(120), || {
        tb.try_sh("test -e /run/regbake-test-collecting")
            .status
            .success()
    });
    let during = oci_image(&t.path().join("gc-during"), b"pushed during the collect\n");
    let (ok, out) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &during.src,
        &format!("docker://{ip}:5000/regbake/during:v1"),
    ]);
    assert!(!ok, "a push went through during the collect: {out}");
    assert_eq!(
        status_at(ip, 5000, "POST", "/v2/regbake/during/blobs/uploads/"),
        405,
        "uploads are not refused as read-only"
    );
    let (ok, out) = hello_present(&hello, &no_tls);
    assert!(ok, "no pulls during the collect: {out}");
    tb.sh("touch /run/regbake-test-release");
    let state = tb.wait_unit("regbake-gc.service", Duration::from_secs(120));
    let log = journal(tb, "regbake-gc");
    assert_eq!(state, "failed", "{log}");
    let failed = log.rfind("regbake-gc: error: garbage-collect failed");
    let back = log.rfind("regbake-gc: registry answers");
    assert!(failed.is_some() && back > failed, "{log}");
    assert!(writable(tb));
    push(
        t,
        "gc-after",
        b"pushed after the collect\n",
        &format!("docker://{ip}:5000/regbake/after:v1"),
    );
    tb.sh(
        "rm -f /usr/local/bin/docker /run/regbake-test-collecting /run/regbake-test-release && \
         systemctl reset-failed regbake-gc.service",
    );

    // A collect killed outright (SIGKILL: no trap runs). Its container, a
    // stand-in that never ends, runs on in dockerd; ExecStopPost removes
    // it and brings the registry back writable.
    tb.write(
        "/usr/local/bin/docker",
        format!(
            "#!/bin/sh\ncase \" $* \" in\n  *\" garbage-collect \"*)\n    touch /run/regbake-test-collecting\n    \
             exec /usr/bin/docker run --rm --name registry-gc {image} ;;\nesac\n\
             exec /usr/bin/docker \"$@\"\n"
        )
        .as_bytes(),
        0o755,
    );
    start_collect(tb);
    wait_until("the collect to start", Duration::from_secs(120), || {
        tb.try_sh(
            "test -e /run/regbake-test-collecting && docker inspect registry-gc >/dev/null 2>&1",
        )
        .status
        .success()
    });
    assert!(
        !writable(tb),
        "the registry is not read-only during the collect"
    );
    tb.sh("systemctl kill -s KILL regbake-gc.service");
    let state = tb.wait_unit("regbake-gc.service", Duration::from_secs(120));
    let log = journal(tb, "regbake-gc");
    assert_eq!(state, "failed", "{log}");
    assert!(
        log.contains("regbake-gc: the collect was interrupted: restarting the registry writable"),
        "{log}"
    );
    tb.sh("! test -e /run/regbake/registry-maintenance.env");
    assert_eq!(
        tb.sh("docker ps -a --filter name=registry-gc --format '{{.Names}}'")
            .trim(),
        "",
        "the collect's container outlived its service"
    );
    wait_until("the registry writable", Duration::from_secs(60), || {
        writable(tb)
    });
    push(
        t,
        "gc-killed",
        b"pushed after a killed collect\n",
        &format!("docker://{ip}:5000/regbake/killed:v1"),
    );
    tb.sh("rm -f /run/regbake-test-collecting && systemctl reset-failed regbake-gc.service");

    // A collect stopped by hand (`systemctl stop`): its own cleanup restarts
    // the registry while the service's stop job is pending, which must not
    // wait for that job (the registry is ordered before the service).
    start_collect(tb);
    wait_until("the collect to start", Duration::from_secs(120), || {
        tb.try_sh(
            "test -e /run/regbake-test-collecting && docker inspect registry-gc >/dev/null 2>&1",
        )
        .status
        .success()
    });
    let stopping = Instant::now();
    tb.sh("systemctl stop regbake-gc.service");
    let took = stopping.elapsed();
    let log = journal(tb, "regbake-gc");
    assert!(
        took < Duration::from_secs(90),
        "systemctl stop regbake-gc took {took:?}:\n{log}"
    );
    assert!(!log.contains("timed out"), "{log}");
    tb.sh("! test -e /run/regbake/registry-maintenance.env");
    assert_eq!(
        tb.sh("docker ps -a --filter name=registry-gc --format '{{.Names}}'")
            .trim(),
        "",
        "the collect's container outlived its service"
    );
    wait_until("the registry writable", Duration::from_secs(60), || {
        writable(tb)
    });
    eprintln!("systemctl stop regbake-gc during a collect took {took:?}");
    tb.sh(
        "rm -f /usr/local/bin/docker /run/regbake-test-collecting && \
         systemctl reset-failed regbake-gc.service || true",
    );
    eprintln!("garbage collection steps took {:?}", t0.elapsed());
}
