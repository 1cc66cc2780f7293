//! The Vagrantfile `regbake packer` ships inside its box
//! (`out/packer/box/Vagrantfile`): checked by the real `vagrant validate`
//! and read back by real Ruby. No box is built here: Vagrant loads a box's
//! Vagrantfile before the project's own and merges the two, which the
//! validation reproduces with the rendered file copied below a
//! `config.vm.box` block in a throwaway project (the same as `regbake check`).

use std::path::Path;
use std::process::Command;

use crate::common::{require_tool, Test};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@regbake";

/// `vagrant validate` of the box Vagrantfile in a throwaway project.
fn vagrant_validate_box(t: &Test, out: &str) {
    let text = t.read(&format!("{out}/packer/box/Vagrantfile"));
    let project = t.path().join("box-project");
    std::fs::create_dir_all(&project).expect("project dir");
    std::fs::write(
        project.join("Vagrantfile"),
        format!("Vagrant.configure('2') {{ |config| config.vm.box = 'x' }}\n{text}"),
    )
    .expect("write project Vagrantfile");
    let home = t.path().join("vagrant-home");
    std::fs::create_dir_all(&home).expect("vagrant home");
    let o = Command::new("vagrant")
        .arg("validate")
        .current_dir(&project)
        .env("HOME", t.path().join("home"))
        .env("VAGRANT_HOME", &home)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run vagrant validate");
    assert!(
        o.status.success(),
        "vagrant validate failed\n{}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// What the box Vagrantfile configures, loaded in the test's dir with its
/// HOME (for `~` keys): its values and calls, merged into one map.
fn ruby_record(t: &Test, vagrantfile: &Path) -> serde_json::Value {
    let rec = crate::common::vagrant_record(vagrantfile, Some(t.path()));
    let mut v = rec["calls"].clone();
    if let (Some(v), Some(vals)) = (v.as_object_mut(), rec["vals"].as_object()) {
        v.extend(vals.clone());
    }
    v
}

fn tools() -> bool {
    require_tool("vagrant") && require_tool("ruby")
}

/// The generated user key is named by its absolute path; the box logs in as
/// the admin user, keeps its keys, and forwards the registry port.
#[test]
fn box_vagrantfile_uses_the_generated_key() {
    if !tools() {
        return;
    }
    let t = Test::new()
        .config("version = 1\n[user]\nname = \"ops\"\nssh_key_files = []\n")
        .args(&["render"]);
    t.success();
    let build = t.read("out/packer/build.pkr.hcl");
    assert!(
        build.contains("vagrantfile_template = \"${path.root}/box/Vagrantfile\""),
        "{build}"
    );
    vagrant_validate_box(&t, "out");
    let key = std::fs::canonicalize(t.path().join("out/ssh/id_ed25519")).expect("generated key");
    let v = ruby_record(&t, &t.path().join("out/packer/box/Vagrantfile"));
    assert_eq!(v["ssh.username"], "ops");
    assert_eq!(v["ssh.insert_key"], false);
    assert_eq!(v["ssh.keys_only"], false);
    // The test dir may sit behind a symlink (/tmp): compare canonical paths.
    let named = v["ssh.private_key_path"][0].as_str().expect("a key path");
    assert_eq!(std::fs::canonicalize(named).expect("named key exists"), key);
    assert_eq!(v["vm.synced_folder"]["kw"]["disabled"], true);
    let fwd = &v["vm.network"];
    assert_eq!(fwd["args"][0], "forwarded_port");
    assert_eq!(fwd["kw"]["guest"], 5000);
    assert_eq!(fwd["kw"]["host"], 5000);
    assert_eq!(fwd["kw"]["host_ip"], "127.0.0.1");

    // `regbake check` runs the same validation.
    let o = t.args(&["check"]).run();
    assert!(
        o.stdout.lines().any(|l| l.starts_with("passed")
            && l.contains("vagrant validate")
            && l.contains("packer/box/Vagrantfile")),
        "{}{}",
        o.stdout,
        o.stderr
    );
}

/// Configured key files: the private keys beside them (`~` kept), only those
/// present when Vagrant runs; TLS forwards 443 to vagrant.host_port.
#[test]
fn box_vagrantfile_uses_the_keys_beside_the_key_files() {
    if !tools() {
        return;
    }
    let toml = r#"version = 1
[user]
ssh_key_files = ["~/.ssh/id_ed25519.pub", "~/.ssh/work.pub", "~/.ssh/absent.pub"]
[registry.tls]
mode = "generate"
[vagrant]
host_port = 8443
"#;
    let t = Test::new()
        .config(toml)
        .file("home/.ssh/id_ed25519.pub", &format!("{KEY}\n"))
        .file("home/.ssh/work.pub", &format!("{KEY}\n"))
        .file("home/.ssh/work", "not checked by the recorder\n")
        .args(&["render"]);
    t.success();
    let vf = t.read("out/packer/box/Vagrantfile");
    // A key file not found at render time authorizes nothing: not offered.
    assert!(!vf.contains("absent"), "{vf}");
    vagrant_validate_box(&t, "out");
    let v = ruby_record(&t, &t.path().join("out/packer/box/Vagrantfile"));
    // ~/.ssh/id_ed25519 does not exist here, so only the work key is named.
    assert_eq!(
        v["ssh.private_key_path"],
        serde_json::json!(["~/.ssh/work"])
    );
    assert_eq!(v["vm.network"]["kw"]["guest"], 443);
    assert_eq!(v["vm.network"]["kw"]["host"], 8443);

    // No private key present at all: Vagrant's default is kept (the agent
    // is still asked), and validation still passes.
    std::fs::remove_file(t.path().join("home/.ssh/work")).expect("rm key");
    vagrant_validate_box(&t, "out");
    let v = ruby_record(&t, &t.path().join("out/packer/box/Vagrantfile"));
    assert!(v.get("ssh.private_key_path").is_none(), "{v}");
    assert_eq!(v["ssh.keys_only"], false);
}

/// Literal `user.ssh_keys` only: OpenSSH's default identities are offered.
#[test]
fn box_vagrantfile_offers_default_identities_for_literal_keys() {
    if !tools() {
        return;
    }
    let toml = format!("version = 1\n[user]\nssh_keys = [\"{KEY}\"]\nssh_key_files = []\n");
    let t = Test::new()
        .config(&toml)
        .file("home/.ssh/id_rsa", "x\n")
        .args(&["render"]);
    t.success();
    vagrant_validate_box(&t, "out");
    let v = ruby_record(&t, &t.path().join("out/packer/box/Vagrantfile"));
    assert_eq!(
        v["ssh.private_key_path"],
        serde_json::json!(["~/.ssh/id_rsa"])
    );
}

/// Key file paths and an out dir that try Ruby and Go template injection end
/// up as plain strings: nothing is evaluated, and no `{{` reaches Packer's
/// template interpolation of the file.
#[test]
fn hostile_key_paths_and_out_dir_stay_inert() {
    if !tools() {
        return;
    }
    let payloads = [
        "x'; File.write('pwned', '1'); '",
        "x\\'; File.write('pwned', '1'); #",
        "#{File.write('pwned', '1')}\"{{ .Provider }}{{{",
        "{{ build_name }}",
    ];
    for p in payloads {
        let files: Vec<String> = vec![format!("~/{p}.pub")];
        let toml = format!(
            "version = 1\n[user]\nssh_key_files = {}\n",
            serde_json::to_string(&files).expect("toml array")
        );
        let t = Test::new()
            .config(&toml)
            .file(&format!("home/{p}.pub"), &format!("{KEY}\n"))
            .file(&format!("home/{p}"), "private\n")
            .args(&["render"]);
        t.success();
        let vf = t.read("out/packer/box/Vagrantfile");
        assert!(!vf.contains("{{"), "{p:?}: {vf}");
        let v = ruby_record(&t, &t.path().join("out/packer/box/Vagrantfile"));
        assert_eq!(
            v["ssh.private_key_path"],
            serde_json::json!([format!("~/{p}")]),
            "{p:?}"
        );
        assert!(!t.path().join("pwned").exists(), "{p:?} was evaluated");
        vagrant_validate_box(&t, "out");

        // The same payload in the out dir, which names the generated key.
        let out = format!("out-{p}");
        let t = Test::new()
            .config("version = 1\n[user]\nssh_key_files = []\n")
            .args(&["-o", &out, "render"]);
        t.success();
        let vf = t.read(&format!("{out}/packer/box/Vagrantfile"));
        assert!(!vf.contains("{{"), "{p:?}: {vf}");
        let v = ruby_record(&t, &t.path().join(&out).join("packer/box/Vagrantfile"));
        let named = v["ssh.private_key_path"][0].as_str().expect("a key path");
        assert!(
            named.ends_with(&format!("/{out}/ssh/id_ed25519")),
            "{p:?}: {named}"
        );
        assert!(!t.path().join("pwned").exists(), "{p:?} was evaluated");
    }
}
