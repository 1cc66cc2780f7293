//! `regbake packer`: the rendered template directory checked by the real
//! `packer validate` / `packer fmt` and `ksvalidator`, the committed
//! `packer/` drift test, and the orchestration driven by stub `packer`,
//! hypervisor and `vagrant` programs (no VM boots here: the build itself is
//! a replayed machine-readable log, not an end-to-end test).

use std::path::Path;
use std::process::Command;

use crate::common::{ksvalidator, repo, require_tool, Test};
use crate::golden::{assert_golden, bless, copy_tree, fixture, snapshot};

/// Run the real packer with `args`, requiring success.
fn packer(args: &[&str], dir: &Path) {
    let out = Command::new("packer")
        .args(args)
        .current_dir(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run packer");
    assert!(
        out.status.success(),
        "packer {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn installed_packer_is_1_6() -> bool {
    let out = Command::new("packer")
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("packer version");
    String::from_utf8_lossy(&out.stdout).starts_with("Packer v1.6.")
}

/// Render `toml` with the real packer on PATH; `packer validate` and
/// `packer fmt -check` must pass. Returns the test dir.
fn render_and_validate(toml: &str) -> Option<Test> {
    if !require_tool("packer") {
        return None;
    }
    let t = Test::new().config(toml).args(&["render"]);
    t.success();
    packer(&["validate", "out/packer"], t.path());
    packer(&["fmt", "-check", "out/packer"], t.path());
    Some(t)
}

#[test]
fn default_config_validates_and_auto_omits_plugins_for_1_6() {
    let Some(t) = render_and_validate("version = 1\n") else {
        return;
    };
    let sources = t.read("out/packer/sources.pkr.hcl");
    assert!(
        sources.contains("source \"qemu\" \"registry\""),
        "{sources}"
    );
    assert!(sources.contains("source \"virtualbox-iso\" \"registry\""));
    assert!(sources.contains("disk_interface   = \"virtio-scsi\""));
    if installed_packer_is_1_6() {
        assert!(
            !t.path().join("out/packer/plugins.pkr.hcl").exists(),
            "auto must not render plugins.pkr.hcl for packer 1.6"
        );
    }
    // The build key: generated, 0600, not a configured key of the user.
    assert_eq!(t.mode("out/secrets/packer/id_ed25519"), 0o600);
    let key = t.read("out/secrets/packer/id_ed25519.pub");
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    let authorized = t.read("out/overlay/home/ansible/.ssh/authorized_keys");
    assert!(!authorized.contains(key.trim()));
    assert!(t.read("out/packer/http/ks.cfg").contains(key.trim()));
    assert!(t
        .read("out/packer/scripts/cleanup.sh")
        .contains("removing the build key"));
    // A second render keeps the key.
    t.success();
    assert_eq!(t.read("out/secrets/packer/id_ed25519.pub"), key);
}

#[test]
fn single_builders_validate() {
    for (builder, absent) in [("qemu", "virtualbox-iso"), ("virtualbox-iso", "qemu")] {
        let toml = format!("version = 1\n[packer]\nbuilders = [\"{builder}\"]\n");
        let Some(t) = render_and_validate(&toml) else {
            return;
        };
        let sources = t.read("out/packer/sources.pkr.hcl");
        assert!(
            !sources.contains(&format!("source \"{absent}\"")),
            "{sources}"
        );
        let build = t.read("out/packer/build.pkr.hcl");
        assert!(
            build.contains(&format!("\"source.{builder}.registry\"")),
            "{build}"
        );
    }
}

#[test]
fn tls_and_proxy_config_validates() {
    let toml = r#"version = 1
[appliance]
name = "secure"
hostname = "registry.example.internal"
[user]
ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW fixture@regbake"]
ssh_key_files = []
[proxy]
http = "http://proxy.example.internal:3128"
https = "http://proxy.example.internal:3128"
no_proxy = [".example.internal"]
[registry.tls]
mode = "generate"
[packer]
accelerator = "tcg"
headless = false
compression_level = 9
"#;
    let Some(t) = render_and_validate(toml) else {
        return;
    };
    let vars = t.read("out/packer/variables.pkr.hcl");
    assert!(
        vars.contains("\"http://proxy.example.internal:3128\""),
        "{vars}"
    );
    assert!(vars.contains("default     = \"tcg\""), "{vars}");
    assert!(t.read("out/packer/build.pkr.hcl").contains(
        "output               = \"${path.root}/../box/.regbake-registry-1.0.0-{{.Provider}}.box.partial\""
    ));
    if require_tool("ksvalidator") {
        let out = ksvalidator(t.path())
            .args(["-v", "RHEL7", "out/packer/http/ks.cfg"])
            .current_dir(t.path())
            .output()
            .expect("ksvalidator");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn required_plugins_always_renders_a_parsable_plugins_file() {
    let Some(t) = render_and_validate_plugins() else {
        return;
    };
    let plugins = t.read("out/packer/plugins.pkr.hcl");
    assert!(plugins.contains("required_plugins"), "{plugins}");
    assert!(plugins.contains("github.com/hashicorp/qemu"));
    assert!(plugins.contains("github.com/hashicorp/vagrant"));
}

/// `always`: packer 1.6.6 cannot validate the directory (it rejects the
/// block, as expected), so the file is parsed with `packer fmt -check`.
fn render_and_validate_plugins() -> Option<Test> {
    if !require_tool("packer") {
        return None;
    }
    let t = Test::new()
        .config("version = 1\n[packer]\nrequired_plugins = \"always\"\n")
        .args(&["render"]);
    t.success();
    packer(&["fmt", "-check", "out/packer/plugins.pkr.hcl"], t.path());
    Some(t)
}

#[test]
fn required_plugins_never_and_auto_with_a_new_packer() {
    let t = Test::new()
        .config("version = 1\n[packer]\nrequired_plugins = \"never\"\n")
        .stub("packer", "#!/bin/sh\necho 'Packer v1.11.2'\n")
        .args(&["render"]);
    t.success();
    assert!(!t.path().join("out/packer/plugins.pkr.hcl").exists());
    let t = Test::new()
        .stub("packer", "#!/bin/sh\necho 'Packer v1.11.2'\n")
        .args(&["render"]);
    t.success();
    assert!(t.path().join("out/packer/plugins.pkr.hcl").exists());
}

/// A Packer 1.7+ that has not fetched its plugins (`packer init`, network):
/// it refuses a full validate with "Missing plugins", passes `-syntax-only`
/// (recorded in calls.log); any other failure is a real one.
const NEW_PACKER_WITHOUT_PLUGINS: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
case "$1" in
  version) echo 'Packer v1.11.2'; exit 0 ;;
  validate)
    if [ "$2" = "-syntax-only" ]; then echo 'The configuration is valid.'; exit 0; fi
    if [ -n "$BROKEN" ]; then echo 'Error: Unsupported argument' >&2; exit 1; fi
    printf 'Error: Missing plugins\n\nThe following plugins are required, but not installed:\n\n* github.com/hashicorp/qemu ~> 1\n\nDid you run packer init for this project ?\n' >&2
    exit 1 ;;
esac
exit 0
"#;

fn check_entries(stdout: &str, name: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("check JSON ({e}): {stdout}"));
    all.into_iter().filter(|c| c["check"] == name).collect()
}

#[test]
fn check_without_packer_plugins_validates_the_syntax_and_says_so() {
    let t = Test::new()
        .stub("packer", NEW_PACKER_WITHOUT_PLUGINS)
        .args(&["check", "--format", "json"]);
    let out = t.run();
    let full = check_entries(&out.stdout, "packer validate");
    assert_eq!(full.len(), 1, "{}", out.stdout);
    assert_eq!(full[0]["status"], "skipped", "{:?}", full[0]);
    let why = full[0]["message"].as_str().unwrap();
    assert!(
        why.contains("`packer init ") && why.contains("out/packer` fetches them"),
        "{why}"
    );
    let syntax = check_entries(&out.stdout, "packer validate -syntax-only");
    assert_eq!(syntax.len(), 1, "{}", out.stdout);
    assert_eq!(syntax[0]["status"], "passed", "{:?}", syntax[0]);
    let calls = t.read("calls.log");
    assert!(calls.contains("validate -syntax-only /"), "{calls}");

    // Any other validate failure is a failure, with Packer's message.
    let t = Test::new()
        .stub("packer", NEW_PACKER_WITHOUT_PLUGINS)
        .env("BROKEN", "1")
        .args(&["check", "--format", "json"]);
    let out = t.run();
    assert_ne!(out.code, 0);
    let full = check_entries(&out.stdout, "packer validate");
    assert_eq!(full[0]["status"], "failed", "{:?}", full[0]);
    assert!(full[0]["message"]
        .as_str()
        .unwrap()
        .contains("Unsupported argument"));
    assert!(check_entries(&out.stdout, "packer validate -syntax-only").is_empty());
}

#[test]
fn served_kickstart_passes_ksvalidator() {
    if !require_tool("ksvalidator") {
        return;
    }
    let t = Test::new().args(&["render"]);
    t.success();
    let out = ksvalidator(t.path())
        .args(["-v", "RHEL7", "out/packer/http/ks.cfg"])
        .current_dir(t.path())
        .output()
        .expect("ksvalidator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // It is the bare-metal kickstart plus one %post for the build key.
    let served = t.read("out/packer/http/ks.cfg");
    let bare = t.read("out/kickstart/ks.cfg");
    assert!(served.starts_with(bare.trim_end()));
    assert_eq!(
        served.matches("%post").count(),
        bare.matches("%post").count() + 1
    );
}

#[test]
fn sudo_with_password_is_a_config_error_for_packer() {
    let toml = "version = 1\n[user]\npassword_hash = \"$6$fixturesalt$Eatk3s07IPisDlH8LtPr1kV0tl7htd8sPUERSO0XC23BohQZQcwc00co132gKpJc7PIahEAYdMrEg3jRInUZf0\"\nsudo = \"password\"\n";
    let t = Test::new().config(toml).args(&["packer"]);
    let t = t
        .status(2)
        .stderr_contains("user.sudo")
        .stderr_contains("regbake packer");
    t.check();
    assert!(!t.path().join("out/packer").exists());
    // `regbake render` still renders everything else, and says why not packer.
    let t = t.args(&["render"]);
    let o = t.success();
    assert!(
        o.stderr.contains("packer template not rendered"),
        "{}",
        o.stderr
    );
    assert!(t.path().join("out/kickstart/ks.cfg").exists());
    assert!(t.read("out/packer/NOT-RENDERED").contains("user.sudo"));
}

#[test]
fn a_config_packer_cannot_bake_replaces_the_old_template() {
    let t = Test::new().args(&["render"]);
    t.success();
    assert!(t.path().join("out/packer/build.pkr.hcl").exists());
    let t = t.config("version = 1\n[user]\nsudo = \"none\"\n");
    t.success();
    assert!(!t.path().join("out/packer/build.pkr.hcl").exists());
    assert!(t.read("out/packer/NOT-RENDERED").contains("user.sudo"));
    // The build key is state: kept for the next bake.
    assert!(t.path().join("out/secrets/packer/id_ed25519").exists());
}

#[test]
fn vda_disk_needs_qemu_only() {
    let t = Test::new()
        .config("version = 1\n[storage]\ndisk = \"vda\"\n")
        .args(&["packer", "--render-only"]);
    let t = t.status(2).stderr_contains("storage.disk");
    t.check();
    let t = Test::new()
        .config("version = 1\n[storage]\ndisk = \"vda\"\n[packer]\nbuilders = [\"qemu\"]\n")
        .args(&["packer", "--render-only"]);
    t.success();
    assert!(t
        .read("out/packer/sources.pkr.hcl")
        .contains("disk_interface   = \"virtio\""));
}

/// `packer/` in the repository is what `regbake render` makes of
/// examples/regbake.toml, with the fixture key material of
/// tests/fixtures/example-secrets/ and a `packer` 1.6.6 on PATH (so `auto`
/// leaves plugins.pkr.hcl out, as for Debian's packer). Its public key is
/// also the user's `~/.ssh/id_ed25519.pub`, as the example expects, so the
/// box Vagrantfile names `~/.ssh/id_ed25519` rather than a temp dir's
/// generated key.
#[test]
fn committed_packer_dir_matches_render() {
    let state = fixture("example-secrets");
    assert!(
        state.join("secrets/packer/id_ed25519").is_file(),
        "{} needs the packer build key",
        state.display()
    );
    let public = std::fs::read_to_string(state.join("ssh/id_ed25519.pub")).expect("fixture key");
    let t = Test::new()
        .stub("packer", "#!/bin/sh\necho 'Packer v1.6.6'\n")
        .file("home/.ssh/id_ed25519.pub", &public);
    copy_tree(&state, &t.path().join("out"));
    let example = repo().join("examples/regbake.toml");
    let t = t.args(&["-c", example.to_str().expect("utf-8 path"), "render"]);
    t.success();
    let actual = snapshot(&t.path().join("out/packer"), &[]);
    assert_golden(&actual, &repo().join("packer"));
    if bless() {
        eprintln!("blessed packer/");
    }
}

/// Stub `packer`: `version` prints $PACKER_VERSION, every call is recorded in
/// calls.log, `build` replays the recorded machine-readable log and writes the
/// box; $FAIL_AT (init, validate, build) makes that command fail.
const PACKER_STUB: &str = r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/../calls.log"
case "$1" in
  version) echo "Packer v${PACKER_VERSION:-1.6.6}"; exit 0 ;;
esac
if [ "$1" = "$FAIL_AT" ]; then
  echo "1732700000,,ui,error,Error: stub failure in $1" 
  echo "stub: $1 failed" >&2
  exit 1
fi
case "$1" in
  build)
    cat "$here/../build.log"
    mkdir -p box
    printf 'not really a box\n' > box/.regbake-registry-1.0.0-libvirt.box.partial
    ;;
esac
exit 0
"#;

fn packer_test() -> Test {
    let log = std::fs::read_to_string(repo().join("tests/fixtures/packer/build-qemu.log"))
        .expect("recorded log");
    Test::new()
        .file("build.log", &log)
        .stub("packer", PACKER_STUB)
        .stub("qemu-system-x86_64", "#!/bin/sh\nexit 0\n")
        .stub(
            "vagrant",
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/../vagrant.log\"\n",
        )
}

#[test]
fn build_shows_phases_catalogs_and_imports_the_box() {
    let t = packer_test().args(&["packer", "--only", "qemu"]);
    let o = t.success();
    let phases: Vec<&str> = o
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("qemu.registry: "))
        .map(|l| l.rsplit_once(" (+").map_or(l, |(p, _)| p))
        .collect();
    assert_eq!(
        phases,
        [
            "downloading the ISO",
            "serving the kickstart",
            "booting the installer",
            "typing the boot command",
            "installing the system (waiting for SSH)",
            "connected over SSH",
            "uploading the overlay",
            "provisioning: installing the overlay",
            "provisioning: first boot (registry image)",
            "provisioning: cleaning and shrinking",
            "shutting down",
            "converting the disk",
            "post-processing (vagrant box)",
        ],
        "{}",
        o.stderr
    );
    // Elapsed time comes from Packer's own timestamps.
    assert!(
        o.stderr
            .contains("qemu.registry: installing the system (waiting for SSH) (+3:51)"),
        "{}",
        o.stderr
    );
    let calls = t.read("calls.log");
    assert!(!calls.contains("init"), "packer 1.6 needs no init: {calls}");
    assert!(
        calls.contains("validate -only=qemu.registry packer"),
        "{calls}"
    );
    assert!(
        calls.contains("build -machine-readable -force -only=qemu.registry packer"),
        "{calls}"
    );
    // Full log in out/logs/.
    let logs: Vec<String> = std::fs::read_dir(t.path().join("out/logs"))
        .expect("logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let build_log = logs
        .iter()
        .find(|n| n.ends_with("packer-build.log"))
        .unwrap_or_else(|| panic!("no build log in {logs:?}"));
    assert!(t
        .read(&format!("out/logs/{build_log}"))
        .contains("Waiting for SSH to become available"));
    // Packer wrote the box under a hidden temp name; it was moved into place.
    let boxes = t.path().join("out/box");
    assert!(boxes.join("regbake-registry-1.0.0-libvirt.box").is_file());
    // It holds the appliance with its secrets (issue 18 §8).
    assert_eq!(t.mode("out/box/regbake-registry-1.0.0-libvirt.box"), 0o600);
    assert!(!boxes
        .join(".regbake-registry-1.0.0-libvirt.box.partial")
        .exists());
    // The catalog holds the box with its sha256.
    let catalog: serde_json::Value =
        serde_json::from_str(&t.read("out/box/regbake-registry.json")).expect("catalog json");
    let provider = &catalog["versions"][0]["providers"][0];
    assert_eq!(catalog["name"], "regbake/registry");
    assert_eq!(provider["name"], "libvirt");
    assert_eq!(provider["checksum_type"], "sha256");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"not really a box\n"))
    };
    assert_eq!(provider["checksum"], sha.as_str());
    let vagrant = t.read("vagrant.log");
    assert!(
        vagrant.starts_with("box add --force --provider libvirt ")
            && vagrant
                .trim_end()
                .ends_with("out/box/regbake-registry.json"),
        "{vagrant}"
    );
}

#[test]
fn no_import_skips_vagrant() {
    let t = packer_test().args(&["packer", "--only", "qemu", "--no-import"]);
    t.success();
    assert!(!t.path().join("vagrant.log").exists());
    assert!(t.path().join("out/box/regbake-registry.json").exists());
}

#[test]
fn a_failing_step_is_named_and_exits_1() {
    for (step, version) in [
        ("init", "1.11.2"),
        ("validate", "1.6.6"),
        ("build", "1.6.6"),
    ] {
        let t = packer_test()
            .env("FAIL_AT", step)
            .env("PACKER_VERSION", version)
            .args(&["packer", "--only", "qemu", "--no-import"]);
        let t = t
            .status(1)
            .stderr_contains(&format!("step packer {step} failed"));
        t.check();
        assert!(!t.path().join("out/box/regbake-registry.json").exists());
    }
}

#[test]
fn dry_run_prints_the_steps() {
    let t = packer_test().args(&["--dry-run", "packer", "--only", "qemu"]);
    let o = t.success();
    assert!(o.stdout.contains("[01] packer validate: "), "{}", o.stdout);
    assert!(
        o.stdout.contains("[02] packer build: ") && o.stdout.contains("-only=qemu.registry"),
        "{}",
        o.stdout
    );
    let calls = std::fs::read_to_string(t.path().join("calls.log")).unwrap_or_default();
    assert!(!calls.contains("build"), "{calls}");
}

#[test]
fn only_must_be_a_configured_builder() {
    let t = packer_test()
        .config("version = 1\n[packer]\nbuilders = [\"qemu\"]\n")
        .args(&["packer", "--only", "virtualbox-iso"]);
    t.status(2).stderr_contains("packer.builders").check();
}

#[test]
fn missing_hypervisor_says_what_to_install() {
    if which::which("VBoxManage").is_ok() {
        eprintln!("SKIPPED: VBoxManage is installed here");
        return;
    }
    let t = packer_test().args(&["packer", "--only", "virtualbox-iso", "--no-import"]);
    t.status(1)
        .stderr_contains("VBoxManage (VirtualBox")
        .check();
}

/// A catalog of another box under this box's file name stops the bake
/// before Packer runs, not after the build.
#[test]
fn another_boxs_catalog_stops_the_bake_before_packer_runs() {
    let t = packer_test()
        .file(
            "out/box/regbake-registry.json",
            r#"{"name":"regbake-registry","versions":[]}"#,
        )
        .args(&["packer", "--only", "qemu"]);
    let t = t
        .status(2)
        .stderr_contains("is the catalog of box \"regbake-registry\"")
        .stderr_contains("vagrant.box_name = \"regbake-registry\"");
    t.check();
    let calls = std::fs::read_to_string(t.path().join("calls.log")).unwrap_or_default();
    assert!(!calls.contains("build"), "{calls}");
}
