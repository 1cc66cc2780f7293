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
/// STUB_SLOW_AT=SUBCOMMAND makes it wait 30 s (STUB_SLOW_SECONDS) for a SIGINT.
/// STUB_DESTROY_SECONDS=N makes `destroy` take N seconds, then log "stub destroy done".
const VAGRANT_STUB: &str = r#"#!/bin/bash
log="$STUB_DIR/calls.log"
echo "vagrant $*" >> "$log"
[ "$1" = up ] && echo "cwd=$PWD cwdvar=$VAGRANT_CWD dotfile=$VAGRANT_DOTFILE_PATH" > "$STUB_DIR/env.log"
echo "==> default: stub $1"
if [ "${STUB_SLOW_AT:-}" = "$1" ]; then
  trap 'kill "$sleeper" 2>/dev/null; echo "stub $1 interrupted" >> "$log"; exit 130' INT
  sleep "${STUB_SLOW_SECONDS:-30}" & sleeper=$!
  echo "stub $1 waiting" >> "$log"
  wait "$sleeper"
fi
# A destroy that takes a while: does regbake let it finish?
if [ "$1" = destroy ] && [ -n "${STUB_DESTROY_SECONDS:-}" ]; then
  sleep "$STUB_DESTROY_SECONDS"
  echo "stub destroy done" >> "$log"
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

pub(crate) fn stubbed(provider: &str) -> Test {
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
pub(crate) fn calls(t: &Test) -> Vec<String> {
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

pub(crate) const VIRTUALBOX_ORDER: &[&str] = &[
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
            // Is the build domain someone else's? (refused if so)
            "virsh -c qemu:///system list --all --name",
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
