//! The appliance scripts (regbake-install, regbake-firstboot,
//! regbake-uninstall) run for real, twice, against a temporary root
//! (REGBAKE_ROOT) with recording stubs for the system commands they call
//! (systemctl, docker, curl, useradd, …). The second run must change nothing,
//! and registry data survives anything but `--purge`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::golden::render_fixture;

const STUBS: &[(&str, &str)] = &[
    ("getent", r#"[ -e "$STUB_STATE/user" ]"#),
    ("useradd", r#"touch "$STUB_STATE/user""#),
    (
        "docker",
        r#"case "$1 ${2:-}" in
  "image inspect") [ -e "$STUB_STATE/image" ] ;;
  "pull "*|"load "*) touch "$STUB_STATE/image" ;;
  "container inspect") [ -e "$STUB_STATE/container" ] ;;
  "rm "*) rm -f "$STUB_STATE/container" ;;
  *) exit 0 ;;
esac"#,
    ),
    ("curl", "printf 200"),
    ("sleep", "exit 0"),
];
const NOOPS: &[&str] = &[
    "systemctl",
    "usermod",
    "chown",
    "restorecon",
    "semanage",
    "update-ca-trust",
    "hostnamectl",
    "firewall-cmd",
    "sshd",
    "rpm",
    "yum",
];

struct Appliance {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    state: PathBuf,
    log: PathBuf,
}

impl Appliance {
    fn new(out: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let bin = dir.path().join("bin");
        let state = dir.path().join("state");
        for d in [&root, &bin, &state] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let log = dir.path().join("calls.log");
        let write_stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(
                &p,
                format!("#!/bin/bash\necho \"{name} $*\" >> \"$STUB_LOG\"\n{body}\n"),
            )
            .expect("stub");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        for (name, body) in STUBS {
            write_stub(name, body);
        }
        for name in NOOPS {
            write_stub(name, "exit 0");
        }
        // Unpack the overlay exactly as the kickstart %post does.
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(out.join("overlay.tar.gz"))
            .arg("-C")
            .arg(&root)
            .args(["--no-overwrite-dir", "-m"])
            .status()
            .expect("tar");
        assert!(st.success());
        Self {
            _dir: dir,
            root,
            bin,
            state,
            log,
        }
    }

    fn run(&self, script: &str, args: &[&str]) -> String {
        std::fs::write(&self.log, "").expect("reset log");
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .arg(self.root.join("usr/local/sbin").join(script))
            .args(args)
            .env("REGBAKE_ROOT", &self.root)
            .env("PATH", path)
            .env("STUB_LOG", &self.log)
            .env("STUB_STATE", &self.state)
            .env("REGBAKE_WAIT_SECONDS", "3")
            .output()
            .expect("run script");
        assert!(
            out.status.success(),
            "{script} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&self.log).expect("calls")
    }

    /// Every path under the root: kind, mode, content or link target.
    fn snapshot(&self) -> BTreeMap<String, String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("read dir")
                .flatten()
                .collect();
            entries.sort_by_key(std::fs::DirEntry::path);
            for e in entries {
                let p = e.path();
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                let md = std::fs::symlink_metadata(&p).expect("stat");
                let mode = md.permissions().mode() & 0o7777;
                if md.file_type().is_symlink() {
                    let target = std::fs::read_link(&p).expect("readlink");
                    out.insert(rel, format!("link -> {}", target.display()));
                } else if md.is_dir() {
                    out.insert(rel.clone(), format!("dir {mode:o}"));
                    walk(base, &p, out);
                } else {
                    let data = std::fs::read(&p).expect("read");
                    out.insert(
                        rel,
                        format!("file {mode:o} {}", String::from_utf8_lossy(&data)),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, &mut out);
        out
    }
}

#[test]
fn install_firstboot_uninstall_are_idempotent_and_keep_data() {
    let t = render_fixture("tls-proxy-static");
    let a = Appliance::new(&t.path().join("out"));
    let data_file = "data/docker-registry/registry/docker/registry/v2/blobs/sha256/ab/data";

    // install
    let calls = a.run("regbake-install", &[]);
    assert!(
        calls.contains("useradd -m -d /home/ops -s /bin/bash ops"),
        "{calls}"
    );
    let first = a.snapshot();
    assert_eq!(
        first["etc/localtime"],
        "link -> ../usr/share/zoneinfo/Europe/Paris"
    );
    assert_eq!(
        first["var/lib/registry"],
        "link -> /data/docker-registry/registry"
    );
    assert!(first["home/ops/.ssh"].starts_with("dir 700"));
    assert!(first["home/ops"].starts_with("dir 700"));
    assert!(
        calls.contains("chown -R ops: "),
        "home not given to the user:\n{calls}"
    );
    assert!(first["etc/docker/registry/config.yml"].starts_with("file 600"));
    assert!(first["opt/docker/certs/registry.key"].starts_with("file 600"));
    assert!(first["etc/sudoers.d/ops"].starts_with("file 440"));
    let calls = a.run("regbake-install", &[]);
    assert!(
        !calls.contains("useradd"),
        "second install created the user again:\n{calls}"
    );
    assert_eq!(
        a.snapshot(),
        first,
        "a second regbake-install changed the root"
    );

    // firstboot
    let calls = a.run("regbake-firstboot", &[]);
    assert!(calls.contains("docker pull registry:2"), "{calls}");
    assert!(
        calls.contains("systemctl start regbake-registry.service"),
        "{calls}"
    );
    assert!(
        calls.contains("--cacert /opt/docker/certs/ca.crt"),
        "{calls}"
    );
    // Garbage collection on its schedule once the registry runs.
    let started = calls.find("systemctl start regbake-registry.service");
    let timer = calls.find("systemctl enable regbake-gc.timer");
    assert!(started < timer && timer.is_some(), "{calls}");
    assert!(
        calls.contains("systemctl start regbake-gc.timer"),
        "{calls}"
    );
    let first = a.snapshot();
    assert!(first.contains_key("var/lib/regbake/firstboot.done"));
    let calls = a.run("regbake-firstboot", &[]);
    assert!(
        !calls.contains("docker pull"),
        "image pulled twice:\n{calls}"
    );
    assert_eq!(
        a.snapshot(),
        first,
        "a second regbake-firstboot changed the root"
    );

    // registry data written by the running registry
    let df = a.root.join(data_file);
    std::fs::create_dir_all(df.parent().expect("parent")).expect("mkdir");
    std::fs::write(&df, "layer").expect("data");
    std::fs::write(a.state.join("container"), "").expect("container");

    // uninstall keeps the data
    let calls = a.run("regbake-uninstall", &[]);
    assert!(calls.contains("docker rm -f registry"), "{calls}");
    let after = a.snapshot();
    assert_eq!(
        after[data_file], "file 644 layer",
        "uninstall lost registry data"
    );
    // stop and disable, not `disable --now` (systemd 220).
    assert!(
        calls.contains("systemctl stop regbake-gc.timer\nsystemctl disable regbake-gc.timer"),
        "{calls}"
    );
    assert!(!calls.contains("--now"), "{calls}");
    for gone in [
        "etc/systemd/system/regbake-registry.service",
        "etc/systemd/system/regbake-gc.service",
        "etc/systemd/system/regbake-gc.timer",
        "usr/local/sbin/regbake-gc",
        "etc/docker/registry/config.yml",
        "opt/docker/certs/registry.key",
        "var/lib/regbake/firstboot.done",
        "var/lib/registry",
    ] {
        assert!(!after.contains_key(gone), "{gone} still there");
    }
    a.run("regbake-uninstall", &[]);
    assert_eq!(
        a.snapshot(),
        after,
        "a second regbake-uninstall changed the root"
    );

    // only --purge deletes it, and only the registry's own directory
    a.run("regbake-uninstall", &["--purge"]);
    let purged = a.snapshot();
    assert!(!purged.contains_key(data_file));
    assert!(!purged.contains_key("data/docker-registry/registry"));
    assert!(purged.contains_key("data/docker-registry"));
    assert!(purged.contains_key("data/docker-registry/docker"));
    a.run("regbake-uninstall", &["--purge"]);
    assert_eq!(a.snapshot(), purged);
}

#[test]
fn uninstall_rejects_unknown_arguments() {
    let t = render_fixture("data-size");
    let a = Appliance::new(&t.path().join("out"));
    let path = format!(
        "{}:{}",
        a.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(a.root.join("usr/local/sbin/regbake-uninstall"))
        .arg("--purg")
        .env("REGBAKE_ROOT", &a.root)
        .env("PATH", path)
        .env("STUB_LOG", &a.log)
        .env("STUB_STATE", &a.state)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
