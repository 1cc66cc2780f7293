//! `packer.source = "image"`: the template that boots a cloud image,
//! checked by the real `packer validate` and `packer fmt`, by `regbake
//! check` (shellcheck of the scripts), and refused where it cannot bake.
//! The seed's consumer, cloud-init, takes it in `real_packer`.

use crate::common::{check_all, require_tool, Test};

const IMAGE: &str = "version = 1\n[appliance]\ndistro = \"rocky9\"\n[packer]\nsource = \"image\"\nbuilders = [\"qemu\"]\n\
                     image_url = \"file:///var/lib/images/rocky9.qcow2\"\n\
                     image_checksum = \"sha256:e38bab0475cc6d004d2e17015969c659e5a308111851b0e2715e84646035bdd3\"\n";

#[test]
fn an_image_build_serves_a_seed_and_no_kickstart() {
    let t = Test::new().config(IMAGE).args(&["packer", "--render-only"]);
    t.success();
    // The seed is public (the build key's public half); the kickstart,
    // which holds the appliance's secrets, is not served at all.
    let http = crate::common::names_in(&t.path().join("out/packer/http"));
    assert_eq!(http, ["meta-data", "user-data"]);
    assert_eq!(t.mode("out/packer/http/user-data"), 0o644);
    // Read as YAML by PyYAML (cloud-init's own YAML reader).
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(t.path().join("out/packer/http/user-data"))
        .output()
        .expect("python3");
    assert!(o.status.success(), "user-data is not YAML: {o:?}");
    let seed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let key = t.read("out/secrets/packer/id_ed25519.pub");
    assert_eq!(
        seed["users"][0]["ssh_authorized_keys"][0].as_str(),
        Some(key.trim())
    );
    assert!(t
        .read("out/packer/http/user-data")
        .starts_with("#cloud-config\n"));
    if require_tool("packer") {
        for args in [
            &["validate", "out/packer"][..],
            &["fmt", "-check", "out/packer"],
        ] {
            let o = std::process::Command::new("packer")
                .args(args)
                .current_dir(t.path())
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .expect("packer");
            assert!(o.status.success(), "packer {args:?}: {o:?}");
        }
    }
    check_all(t);
}

#[test]
fn an_image_build_is_qemu_only() {
    let toml = IMAGE.replace("builders = [\"qemu\"]\n", "");
    Test::new()
        .config(&toml)
        .args(&["packer", "--render-only"])
        .status(2)
        .stderr_contains("packer.builders")
        .stderr_contains("only QEMU can")
        .check();
}
