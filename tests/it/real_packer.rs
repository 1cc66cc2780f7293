//! Real VMs (README "Real VMs"): `regbake packer` with `packer.source =
//! "image"` driving real Packer (its QEMU builder) on the base image of
//! `real_vm` (Debian 12 with the CentOS stubs and bash 4.2, with cloud-init
//! that only a NoCloud seed wakes). What it proves: cloud-init takes the
//! rendered seed from Packer's HTTP server through the SMBIOS serial number
//! and lets Packer in with its build key; the provisioners install the
//! overlay, run the first boot and clean the guest; Packer shuts it down
//! and packs a libvirt box that regbake catalogs and imports; the box boots
//! under Vagrant and serves a push; nothing of the VMs is left behind. What
//! it stands in for: a vendor's GenericCloud image (CentOS 7, Rocky,
//! Alma), which is not downloaded here. Skips and failures as `real_vm`.

use std::process::Command;
use std::time::Instant;

use crate::common::{free_port, Test};
use crate::real_vm::{
    assert_box_imported, assert_nothing_left, remove_box, run, up_and_push, vm_env, vm_lock, VmEnv,
};
use crate::testbed::text;

pub(crate) const BOX: &str = "regbake-test/packer";

/// The base image's virtual size in MiB: Packer grows the copy to
/// `disk_size` and cannot shrink it; more would only be zeroed in cleanup.
fn disk_mib(env: &VmEnv) -> u64 {
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&env.qcow2));
    assert!(info.status.success(), "qemu-img info: {}", text(&info));
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("qemu-img json");
    let bytes = v["virtual-size"].as_u64().expect("virtual-size");
    bytes.div_ceil(1 << 20)
}

fn sha256(env: &VmEnv) -> String {
    let o = run(Command::new("sha256sum").arg(&env.qcow2));
    assert!(o.status.success(), "sha256sum: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("a sum")
        .to_string()
}

pub(crate) fn config(env: &VmEnv) -> String {
    format!(
        "version = 1\n\
         [appliance]\nname = \"vmpkr\"\n\
         [user]\nssh_key_files = []\n\
         [vagrant]\nbox_name = \"{BOX}\"\n\
         [packer]\nsource = \"image\"\nbuilders = [\"qemu\"]\n\
         image_url = \"file://{image}\"\nimage_checksum = \"sha256:{sum}\"\n\
         accelerator = \"{accel}\"\ndisk_size_mb = {disk}\nmemory = 1024\n\
         ssh_timeout = \"20m\"\ncompression_level = 1\n",
        image = env.qcow2.display(),
        sum = sha256(env),
        accel = env.accelerator,
        disk = disk_mib(env),
    )
}

#[test]
fn packer_image_bake_on_a_real_vm() {
    let Some(env) = vm_env() else { return };
    let _one = vm_lock();
    remove_box(env, BOX);

    let home = env.vagrant_home.to_string_lossy().into_owned();
    let t = Test::new()
        .config(&config(env))
        .env("VAGRANT_HOME", &home)
        .args(&["packer"]);
    let t0 = Instant::now();
    let o = t.success();
    eprintln!(
        "real VMs: regbake packer, source = \"image\" ({}) in {:.0}s",
        env.accelerator,
        t0.elapsed().as_secs_f64()
    );
    // The steps and the build's phases, as the user sees them.
    for shown in [
        "packer validate",
        "packer build",
        "serving cloud-init's seed",
        "booting (waiting for SSH)",
        "connected over SSH",
        "provisioning: installing the overlay",
        "provisioning: first boot (registry image)",
        "provisioning: cleaning and shrinking",
        "post-processing (vagrant box)",
        "vagrant box add libvirt",
    ] {
        assert!(
            o.stderr.contains(shown),
            "not shown: {shown:?}:\n{}",
            o.stderr
        );
    }
    let log = std::fs::read_dir(t.path().join("out/logs"))
        .expect("out/logs")
        .map(|e| e.expect("log").path())
        .find(|p| p.to_string_lossy().ends_with("-packer-build.log"))
        .expect("a packer build log");
    let log = std::fs::read_to_string(log).expect("build log");
    // cloud-init made the login; cleanup took it away again.
    for line in [
        "regbake-install: done",
        "regbake: cleaning the guest",
        "regbake: removing the build key",
    ] {
        assert!(log.contains(line), "the build log lacks {line:?}:\n{log}");
    }
    assert_box_imported(env, t.path(), BOX);
    assert_nothing_left("after the packer bake");

    let (_up, guard) = up_and_push(env, BOX, "vmtest-pkr-", free_port(), t.path());
    drop(guard);
    assert_nothing_left("after vagrant destroy");
    remove_box(env, BOX);
}
