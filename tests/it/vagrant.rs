//! `regbake vagrant`: the Vagrantfile checked by the real `vagrant validate`
//! (and its provisioner scripts by bash/shellcheck), and the orchestration
//! run against recorded-argument stubs of `vagrant`, `virsh` and `qemu-img`.
//! No VM boots here: the stub runs show the command order, logs and cleanup,
//! not a real bake.

use std::path::Path;
use std::process::Command;

use crate::common::{require_tool, Test};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW fixture@regbake";

fn default_config(provider: &str) -> String {
    format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\nssh_key_files = []\n\
         [vagrant]\nprovider = \"{provider}\"\n"
    )
}

/// TLS (generated CA) and a proxy, like the tls-proxy fixture.
fn tls_proxy_config(provider: &str) -> String {
    format!(
        r#"version = 1
[appliance]
name = "registry-secure"
hostname = "registry.example.internal"

[user]
name = "ops"
ssh_keys = ["{KEY}"]
ssh_key_files = []
sudo = "password"
password_hash = "$6$fixturesalt$Eatk3s07IPisDlH8LtPr1kV0tl7htd8sPUERSO0XC23BohQZQcwc00co132gKpJc7PIahEAYdMrEg3jRInUZf0"

[proxy]
http = "http://proxy.example.internal:3128"
https = "http://proxy.example.internal:3128"
no_proxy = [".example.internal", "192.0.2.0/24"]

[registry.tls]
mode = "generate"

[vagrant]
provider = "{provider}"
box_version = "2.1.0"
host_port = 8443
"#
    )
}

fn vagrant_validate(dir: &Path, home: &Path) -> std::process::Output {
    Command::new("vagrant")
        .arg("validate")
        .current_dir(dir)
        .env("VAGRANT_HOME", home)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run vagrant validate")
}

fn libvirt_plugin_installed(home: &Path) -> bool {
    let out = Command::new("vagrant")
        .args(["plugin", "list"])
        .env("VAGRANT_HOME", home)
        .output()
        .expect("run vagrant plugin list");
    let listed = String::from_utf8_lossy(&out.stdout).contains("vagrant-libvirt");
    assert!(
        listed || std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "vagrant-libvirt is required (REGBAKE_REQUIRE_TOOLS=1) but not installed"
    );
    if !listed {
        eprintln!("SKIPPED: vagrant-libvirt is not installed");
    }
    listed
}

#[test]
fn vagrantfile_passes_vagrant_validate_for_both_providers() {
    if !require_tool("vagrant") {
        return;
    }
    for provider in ["virtualbox", "libvirt"] {
        for (case, config) in [
            ("default", default_config(provider)),
            ("tls+proxy", tls_proxy_config(provider)),
        ] {
            let t = Test::new().config(&config).args(&["render"]);
            t.success();
            let home = t.path().join("vagrant-home");
            std::fs::create_dir_all(&home).expect("vagrant home");
            if provider == "libvirt" && !libvirt_plugin_installed(&home) {
                continue;
            }
            let vf = t.read("out/vagrant/Vagrantfile");
            assert!(
                vf.contains(&format!("config.vm.provider '{provider}'")),
                "{vf}"
            );
            let o = vagrant_validate(&t.path().join("out/vagrant"), &home);
            assert!(
                o.status.success(),
                "{provider}/{case}: vagrant validate failed\n{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            // The check command runs the same validator.
            let c = Test::new().config(&config).args(&["check"]);
            let out = c.success();
            assert!(
                out.stdout
                    .lines()
                    .any(|l| l.starts_with("passed") && l.contains("vagrant validate")),
                "{}",
                out.stdout
            );
        }
    }
}

#[test]
fn validate_catches_a_missing_overlay() {
    if !require_tool("vagrant") {
        return;
    }
    let t = Test::new()
        .config(&default_config("virtualbox"))
        .args(&["render"]);
    t.success();
    std::fs::remove_file(t.path().join("out/overlay.tar.gz")).expect("rm overlay");
    let home = t.path().join("vagrant-home");
    std::fs::create_dir_all(&home).expect("vagrant home");
    let o = vagrant_validate(&t.path().join("out/vagrant"), &home);
    assert!(!o.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("overlay.tar.gz"), "{text}");
}

/// What the Vagrantfile configures (see `common::vagrant_record`).
pub(crate) fn record(vagrantfile: &Path) -> serde_json::Value {
    crate::common::vagrant_record(vagrantfile, None)
}

#[test]
fn provisioner_scripts_pass_bash_and_shellcheck() {
    if !(require_tool("ruby") && require_tool("shellcheck")) {
        return;
    }
    let t = Test::new()
        .config(&tls_proxy_config("libvirt"))
        .args(&["render"]);
    t.success();
    let rec = record(&t.path().join("out/vagrant/Vagrantfile"));
    for name in ["install", "clean"] {
        let key = name.to_uppercase();
        let text = rec["constants"][key.as_str()]
            .as_str()
            .expect("script text");
        let script = format!("#!/bin/bash\n{text}");
        let p = t.path().join(format!("{name}.sh"));
        std::fs::write(&p, script).expect("write script");
        for (tool, args) in [
            ("bash", vec!["-n"]),
            ("shellcheck", vec!["--shell=bash", "--severity=warning"]),
        ] {
            let o = Command::new(tool).args(&args).arg(&p).output().expect(tool);
            assert!(
                o.status.success(),
                "{tool} {name}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let vals = &rec["vals"];
    assert_eq!(vals["vm.box"], "centos/7");
    assert_eq!(vals["vm.hostname"], "registry.example.internal");
    assert_eq!(vals["vm.provider.libvirt.memory"], 1024);
    assert_eq!(
        rec["constants"]["PROVISION_ENV"]["https_proxy"],
        "http://proxy.example.internal:3128"
    );
    let fwd = &rec["calls"]["vm.network"];
    assert_eq!(fwd["args"][0], "forwarded_port");
    assert_eq!(fwd["kw"]["guest"], 443);
    assert_eq!(fwd["kw"]["host"], 8443);
    assert_eq!(rec["calls"]["vm.synced_folder"]["kw"]["disabled"], true);
}

#[test]
fn hostile_values_are_rejected_before_the_vagrantfile() {
    for (section, key, value) in [
        (
            "vagrant",
            "base_box",
            "centos/7'; system('touch /tmp/regbake-pwned'); '",
        ),
        ("appliance", "hostname", "reg'#{`id`}"),
        ("proxy", "http", "http://p:3128/'+`id`+'"),
    ] {
        let config = format!(
            "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\nssh_key_files = []\n[{section}]\n{key} = {}\n",
            serde_json::to_string(value).expect("toml string")
        );
        let t = Test::new()
            .config(&config)
            .args(&["vagrant", "--render-only"]);
        let t = t.status(2).stderr_contains(&format!("{section}.{key}"));
        t.check();
        assert!(!t.path().join("out/vagrant").exists());
    }
}

// ---- orchestration against stubs ----

/// Records `vagrant ARGS` (one line each) in calls.log; `up` creates the
/// machine id and `package` the box file like the real ones;
/// STUB_FAIL_AT=SUBCOMMAND makes that subcommand fail with status 3.
const VAGRANT_STUB: &str = r#"#!/bin/bash
log="$STUB_DIR/calls.log"
echo "vagrant $*" >> "$log"
[ "$1" = up ] && echo "cwd=$PWD cwdvar=$VAGRANT_CWD dotfile=$VAGRANT_DOTFILE_PATH" > "$STUB_DIR/env.log"
echo "==> default: stub $1"
if [ "${STUB_SLOW_AT:-}" = "$1" ]; then
  trap 'kill "$sleeper" 2>/dev/null; echo "stub $1 interrupted" >> "$log"; exit 130' INT
  sleep 30 & sleeper=$!
  echo "stub $1 waiting" >> "$log"
  wait "$sleeper"
fi
if [ "${STUB_FAIL_AT:-}" = "$1" ]; then
  echo "stub failure in $1" >&2
  exit 3
fi
if [ "$1" = box ] && [ -n "${REAL_VAGRANT:-}" ]; then
  exec "$REAL_VAGRANT" "$@"
fi
case "$1" in
  up) mkdir -p "$VAGRANT_DOTFILE_PATH/machines/default/$3" && echo 1234 > "$VAGRANT_DOTFILE_PATH/machines/default/$3/id" ;;
  destroy) rm -rf "$VAGRANT_DOTFILE_PATH/machines" ;;
  package) printf 'not really a box\n' > "$3" ;;
esac
exit 0
"#;

const VIRSH_STUB: &str = r#"#!/bin/bash
echo "virsh $*" >> "$STUB_DIR/calls.log"
if [ "${STUB_FAIL_AT:-}" = "$3" ]; then echo "stub failure in $3" >&2; exit 3; fi
echo "/var/lib/libvirt/images/$6"
"#;

/// Records the call; `convert` makes a real (small) qcow2 at its last
/// argument with the real qemu-img.
const QEMU_IMG_STUB: &str = r#"#!/bin/bash
echo "qemu-img $*" >> "$STUB_DIR/calls.log"
if [ "${STUB_FAIL_AT:-}" = "$1" ]; then echo "stub failure in $1" >&2; exit 3; fi
if [ "$1" = convert ]; then
  exec "$REAL_QEMU_IMG" create -q -f qcow2 "${@: -1}" 64M
fi
exec "$REAL_QEMU_IMG" "$@"
"#;

fn stubbed(provider: &str) -> Test {
    let t = Test::new()
        .config(&default_config(provider))
        .stub("vagrant", VAGRANT_STUB)
        .stub("virsh", VIRSH_STUB)
        .stub("qemu-img", QEMU_IMG_STUB);
    let dir = t.path().display().to_string();
    let real = which::which("qemu-img")
        .map_or_else(|_| "/usr/bin/qemu-img".into(), |p| p.display().to_string());
    t.env("STUB_DIR", &dir).env("REAL_QEMU_IMG", &real)
}

/// calls.log with the temp dir written as TMP and the ssh script cut short.
fn calls(t: &Test) -> Vec<String> {
    let root = t.path().display().to_string();
    std::fs::read_to_string(t.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let l = l.replace(&root, "TMP");
            match l.strip_prefix("vagrant ssh -c ") {
                Some(script) => {
                    assert!(script.contains("curl"), "{script}");
                    "vagrant ssh -c CURL".to_string()
                }
                None => l,
            }
        })
        .collect()
}

const VIRTUALBOX_ORDER: &[&str] = &[
    "vagrant up --provider virtualbox",
    "vagrant ssh -c CURL",
    "vagrant provision --provision-with regbake-clean",
    "vagrant package --output TMP/out/box/.regbake-registry-1.0.0-virtualbox.box.partial",
    "vagrant box add --force --provider virtualbox --box-version 1.0.0 TMP/out/box/regbake-registry.json",
    "vagrant destroy -f",
];

#[test]
fn virtualbox_bake_runs_the_steps_in_order() {
    let t = stubbed("virtualbox").args(&["vagrant"]);
    t.success();
    assert_eq!(calls(&t), VIRTUALBOX_ORDER);
    let env = t.read("env.log");
    let root = t.path().display().to_string();
    assert_eq!(
        env.trim(),
        format!("cwd={root}/out/vagrant cwdvar={root}/out/vagrant dotfile={root}/out/.vagrant")
    );
    // One log per step, in out/logs, each starting with its command line.
    for (i, name) in [
        "vagrant-up",
        "verify-registry",
        "clean-guest",
        "package-box",
        "import-box",
        "destroy-build-vm",
    ]
    .iter()
    .enumerate()
    {
        let log = t.read(&format!("out/logs/{:02}-{name}.log", i + 1));
        assert!(log.starts_with("$ VAGRANT_CWD="), "{log}");
        assert!(log.contains("==> default: stub"), "{log}");
    }
    assert!(t
        .path()
        .join("out/box/regbake-registry-1.0.0-virtualbox.box")
        .is_file());
    // It holds the appliance with its secrets (issue 18 §8).
    assert_eq!(
        t.mode("out/box/regbake-registry-1.0.0-virtualbox.box"),
        0o600
    );
    assert!(!t
        .path()
        .join("out/box/.regbake-registry-1.0.0-virtualbox.box.partial")
        .exists());
    let catalog: serde_json::Value =
        serde_json::from_str(&t.read("out/box/regbake-registry.json")).expect("catalog JSON");
    assert_eq!(catalog["name"], "regbake/registry");
    let p = &catalog["versions"][0]["providers"][0];
    assert_eq!(catalog["versions"][0]["version"], "1.0.0");
    assert_eq!(p["name"], "virtualbox");
    assert_eq!(p["checksum_type"], "sha256");
}

#[test]
fn libvirt_bake_packs_the_flattened_disk() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = stubbed("libvirt").args(&["vagrant", "--no-import"]);
    t.success();
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider libvirt",
            "vagrant ssh -c CURL",
            "vagrant provision --provision-with regbake-clean",
            "vagrant halt",
            "virsh -c qemu:///system vol-path --pool default registry-bake-default.img",
            "qemu-img convert -O qcow2 /var/lib/libvirt/images/registry-bake-default.img TMP/out/box/.regbake-registry-disk.qcow2.partial",
            "vagrant destroy -f",
        ]
    );
    assert!(t
        .path()
        .join("out/box/regbake-registry-1.0.0-libvirt.box")
        .is_file());
    // It holds the appliance with its secrets (issue 18 §8).
    assert_eq!(t.mode("out/box/regbake-registry-1.0.0-libvirt.box"), 0o600);
    assert!(!t
        .path()
        .join("out/box/.regbake-registry-disk.qcow2.partial")
        .exists());
    let catalog = t.read("out/box/regbake-registry.json");
    assert!(catalog.contains("\"libvirt\""), "{catalog}");
    assert!(t.path().join("out/logs/05-find-vm-disk.log").is_file());
}

/// The import step with the real `vagrant box add` (throwaway VAGRANT_HOME)
/// on the box and catalog the libvirt path produced from a stub VM disk.
#[test]
fn libvirt_bake_imports_the_box_with_real_vagrant() {
    if !(require_tool("qemu-img") && require_tool("vagrant")) {
        return;
    }
    let t = stubbed("libvirt");
    let home = t.path().join("vagrant-home");
    std::fs::create_dir_all(&home).expect("vagrant home");
    if !libvirt_plugin_installed(&home) {
        return;
    }
    let real = which::which("vagrant")
        .expect("vagrant")
        .display()
        .to_string();
    let t = t
        .env("REAL_VAGRANT", &real)
        .env("VAGRANT_HOME", &home.display().to_string())
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .args(&["vagrant"]);
    t.success();
    let list = Command::new("vagrant")
        .args(["box", "list"])
        .env("VAGRANT_HOME", &home)
        .output()
        .expect("vagrant box list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("regbake/registry (libvirt, 1.0.0)"), "{list}");
}

#[test]
fn a_failure_at_each_step_destroys_the_vm_or_keeps_it() {
    for (fail_at, command) in [
        ("up", "vagrant up --provider virtualbox"),
        ("ssh", "vagrant ssh -c"),
        (
            "provision",
            "vagrant provision --provision-with regbake-clean",
        ),
        ("package", "vagrant package --output"),
        ("box", "vagrant box add --force"),
    ] {
        for keep in [false, true] {
            let args: &[&str] = if keep {
                &["vagrant", "--keep-vm"]
            } else {
                &["vagrant"]
            };
            let t = stubbed("virtualbox")
                .env("STUB_FAIL_AT", fail_at)
                .args(args);
            let t = t
                .status(1)
                .stderr_contains(command)
                .stderr_contains("exit status: 3")
                .stderr_contains(&format!("stub failure in {fail_at}"));
            let o = t.check();
            let calls = calls(&t);
            let n = VIRTUALBOX_ORDER
                .iter()
                .position(|c| c.starts_with(command))
                .expect("known step");
            // Everything up to the failing step ran, nothing after it...
            assert_eq!(calls[..=n], VIRTUALBOX_ORDER[..=n], "{fail_at}");
            // ...but the cleanup.
            if keep {
                assert_eq!(calls.len(), n + 1, "{fail_at}: {calls:?}");
                assert!(o.stderr.contains("kept the build VM"), "{}", o.stderr);
            } else {
                assert_eq!(calls[n + 1..], ["vagrant destroy -f"], "{fail_at}");
                let log = format!("out/logs/{:02}-destroy-build-vm-after-failure.log", n + 2);
                assert!(t.read(&log).contains("vagrant destroy -f"));
            }
            // No half-written box.
            assert!(!t
                .path()
                .join("out/box/.regbake-registry-1.0.0-virtualbox.box.partial")
                .exists());
        }
    }
}

#[test]
fn a_failure_in_the_libvirt_steps_destroys_the_vm() {
    if !require_tool("qemu-img") {
        return;
    }
    for (fail_at, command) in [
        ("halt", "vagrant halt"),
        ("vol-path", "virsh -c qemu:///system vol-path"),
        ("convert", "qemu-img convert -O qcow2"),
    ] {
        let t = stubbed("libvirt")
            .env("STUB_FAIL_AT", fail_at)
            .args(&["vagrant"]);
        let t = t.status(1).stderr_contains(command);
        t.check();
        assert_eq!(
            calls(&t).last().map(String::as_str),
            Some("vagrant destroy -f")
        );
        assert!(!t
            .path()
            .join("out/box/.regbake-registry-disk.qcow2.partial")
            .exists());
    }
}

#[test]
fn ctrl_c_stops_the_tool_and_destroys_the_vm() {
    let t = stubbed("virtualbox")
        .env("STUB_SLOW_AT", "up")
        .args(&["vagrant"]);
    let root = t.path().to_path_buf();
    let child = Command::new(crate::common::BIN)
        .arg("vagrant")
        .current_dir(&root)
        .env("HOME", root.join("home"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                root.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("STUB_DIR", &root)
        .env("STUB_SLOW_AT", "up")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    // Wait until the stub is inside `vagrant up` with its trap set.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(root.join("calls.log"))
        .unwrap_or_default()
        .contains("stub up waiting")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "vagrant up never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider virtualbox",
            "stub up waiting",
            "stub up interrupted",
            "vagrant destroy -f"
        ]
    );
}

#[test]
fn missing_vagrant_says_what_to_install() {
    let t = Test::new().config(&default_config("libvirt"));
    let bin = t.path().join("bin").display().to_string();
    let t = t.env("PATH", &bin).args(&["vagrant"]);
    t.status(1)
        .stderr_contains("apt-get install vagrant")
        .stderr_contains("vagrant-libvirt")
        .check();
}

#[test]
fn render_only_and_dry_run_run_nothing() {
    let t = stubbed("virtualbox").args(&["vagrant", "--render-only"]);
    let o = t.success();
    assert!(
        o.stdout.trim().ends_with("out/vagrant/Vagrantfile"),
        "{}",
        o.stdout
    );
    assert!(calls(&t).is_empty());

    let t = stubbed("virtualbox").args(&["vagrant", "--dry-run"]);
    let o = t.success();
    assert!(calls(&t).is_empty());
    assert!(!t.path().join("out/logs").exists());
    let printed: Vec<&str> = o.stdout.lines().filter(|l| l.starts_with("[0")).collect();
    assert_eq!(printed.len(), 6, "{}", o.stdout);
    assert!(printed[0].contains("vagrant up --provider virtualbox"));
    assert!(printed[5].contains("vagrant destroy -f"));
}

#[test]
fn a_kept_vm_is_destroyed_before_the_next_bake() {
    let t = stubbed("virtualbox").args(&["vagrant", "--keep-vm", "--no-import"]);
    t.success();
    assert!(t
        .path()
        .join("out/.vagrant/machines/default/virtualbox/id")
        .is_file());
    let t = t.args(&["vagrant", "--no-import"]);
    t.success();
    let calls = calls(&t);
    // First bake: up … package, no destroy; second: destroy the kept VM first.
    assert_eq!(calls[4], "vagrant destroy -f", "{calls:?}");
    assert_eq!(calls[5], "vagrant up --provider virtualbox", "{calls:?}");
    assert_eq!(calls.last().map(String::as_str), Some("vagrant destroy -f"));
    assert!(t
        .path()
        .join("out/logs/01-destroy-previous-build-vm.log")
        .is_file());
}

/// `regbake vagrant` with `out/box` locked by another run (the test): runs
/// up to packaging, waits there with one message, and goes on once the lock
/// is free, or cleans up on Ctrl-C.
fn bake_behind_a_held_lock(ctrl_c: bool) -> (Test, i32, String) {
    use crate::boxfile::{hold_lock, WAITING};
    let t = stubbed("virtualbox");
    let root = t.path().to_path_buf();
    let held = hold_lock(&t);
    let stderr_path = root.join("stderr.log");
    let mut child = Command::new(crate::common::BIN)
        .args(["vagrant", "--no-import"])
        .current_dir(&root)
        .env("HOME", root.join("home"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                root.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("STUB_DIR", &root)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr.log"))
        .spawn()
        .expect("spawn regbake");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&stderr_path)
        .unwrap_or_default()
        .contains(WAITING)
    {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "ended before waiting: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        assert!(std::time::Instant::now() < deadline, "never waited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Nothing written to out/box while another run holds it.
    assert_eq!(
        calls(&t).last().map(String::as_str),
        Some("vagrant provision --provision-with regbake-clean")
    );
    if ctrl_c {
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    } else {
        drop(held);
    }
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr.log");
    assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    (t, status.code().unwrap_or(-1), stderr)
}

#[test]
fn bake_waits_for_the_box_dir_lock() {
    let (t, code, stderr) = bake_behind_a_held_lock(false);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider virtualbox",
            "vagrant ssh -c CURL",
            "vagrant provision --provision-with regbake-clean",
            "vagrant package --output TMP/out/box/.regbake-registry-1.0.0-virtualbox.box.partial",
            "vagrant destroy -f",
        ]
    );
    let catalog = t.read("out/box/regbake-registry.json");
    assert!(catalog.contains("\"virtualbox\""), "{catalog}");
}

#[test]
fn ctrl_c_while_waiting_for_the_lock_destroys_the_vm() {
    let (t, code, stderr) = bake_behind_a_held_lock(true);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        calls(&t),
        [
            "vagrant up --provider virtualbox",
            "vagrant ssh -c CURL",
            "vagrant provision --provision-with regbake-clean",
            "vagrant destroy -f",
        ]
    );
    assert!(!t.path().join("out/box/regbake-registry.json").exists());
}

/// A catalog of another box under this box's file name stops the bake
/// before the build VM, not after it (the box would be refused at the end).
#[test]
fn another_boxs_catalog_stops_the_bake_before_it_starts() {
    let t = stubbed("virtualbox")
        .file(
            "out/box/regbake-registry.json",
            r#"{"name":"regbake-registry","versions":[]}"#,
        )
        .args(&["vagrant"]);
    let t = t
        .status(2)
        .stderr_contains("vagrant.box_name")
        .stderr_contains("is the catalog of box \"regbake-registry\"")
        .stderr_contains("vagrant.box_name = \"regbake-registry\"");
    t.check();
    assert!(calls(&t).is_empty(), "{:?}", calls(&t));
}
