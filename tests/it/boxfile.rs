//! `regbake box pack`: real qcow2/vmdk disks from `qemu-img`, boxes and
//! catalogs imported by the real `vagrant box add` (vagrant-libvirt installed;
//! no hypervisor needed) into a throwaway VAGRANT_HOME.

use std::process::Command;

use crate::common::{require_tool, tool, tool_ok, Output, Test, BIN};

pub(crate) const CATALOG: &str = "out/box/regbake-registry.json";

pub(crate) fn tools() -> bool {
    require_tool("vagrant") && require_tool("qemu-img")
}

/// An empty qcow2 disk `name` of `size` in the test dir.
pub(crate) fn qcow2(t: &Test, name: &str, size: &str) {
    tool_ok(t, "qemu-img", &["create", "-f", "qcow2", name, size]);
}

/// `regbake box pack ARGS` in the test dir, which must succeed.
pub(crate) fn pack(t: &Test, args: &[&str]) -> Output {
    let mut all = vec!["box", "pack"];
    all.extend_from_slice(args);
    tool_ok(t, BIN, &all)
}

pub(crate) fn catalog(t: &Test) -> serde_json::Value {
    serde_json::from_str(&t.read(CATALOG)).expect("catalog is JSON")
}

pub(crate) fn versions(cat: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    cat["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            let providers = v["providers"]
                .as_array()
                .expect("providers")
                .iter()
                .map(|p| p["name"].as_str().expect("name").to_string())
                .collect();
            (
                v["version"].as_str().expect("version").to_string(),
                providers,
            )
        })
        .collect()
}

/// A project Vagrantfile using the imported box: `vagrant validate` then
/// loads the box's own Vagrantfile and checks its provider settings.
/// For virtualbox the test puts a `VBoxManage` stub (it only reports a
/// version) in `bin/` so Vagrant deems the provider usable; the settings are
/// still checked by Vagrant's real VirtualBox provider code.
fn validate_with_box(t: &Test, provider: &str, version: &str) {
    let dir = t.path().join(format!("project-{provider}-{version}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("Vagrantfile"),
        format!(
            "Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"regbake/registry\"\n  config.vm.box_version = \"{version}\"\nend\n"
        ),
    )
    .expect("write Vagrantfile");
    let path = format!(
        "{}:{}",
        t.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("vagrant")
        .arg("validate")
        .current_dir(&dir)
        .env("PATH", path)
        .env("HOME", t.path().join("home"))
        .env("VAGRANT_HOME", t.path().join("vagrant.d"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_DEFAULT_PROVIDER", provider)
        .output()
        .expect("vagrant validate");
    assert!(
        o.status.success(),
        "vagrant validate with the {provider} box failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn libvirt_box_imports_at_its_version_and_versions_accumulate() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "3G");
    // Name and version come from the config's [vagrant] section.
    let o = pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    assert!(
        o.stdout.contains("regbake-registry-1.0.0-libvirt.box"),
        "{}",
        o.stdout
    );
    assert!(t
        .path()
        .join("out/box/regbake-registry-1.0.0-libvirt.box")
        .is_file());

    tool_ok(&t, "vagrant", &["box", "add", CATALOG]);
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(list.contains("regbake/registry (libvirt, 1.0.0)"), "{list}");
    validate_with_box(&t, "libvirt", "1.0.0");

    // metadata.json as vagrant unpacked it.
    let md: serde_json::Value = serde_json::from_str(
        &t.read("vagrant.d/boxes/regbake-VAGRANTSLASH-registry/1.0.0/libvirt/metadata.json"),
    )
    .expect("metadata.json");
    assert_eq!(
        md,
        serde_json::json!({"provider": "libvirt", "format": "qcow2", "virtual_size": 3})
    );

    let before = catalog(&t);
    pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "disk.qcow2",
            "--version",
            "1.1.0",
        ],
    );
    let after = catalog(&t);
    assert_eq!(
        versions(&after),
        [
            ("1.0.0".to_string(), vec!["libvirt".to_string()]),
            ("1.1.0".to_string(), vec!["libvirt".to_string()])
        ]
    );
    // The earlier version's entry is untouched.
    assert_eq!(before["versions"][0], after["versions"][0]);
    let entry = &after["versions"][1]["providers"][0];
    assert_eq!(entry["checksum_type"], "sha256");
    let url = entry["url"].as_str().expect("url");
    let abs = t.path().join("out/box/regbake-registry-1.1.0-libvirt.box");
    assert_eq!(url, format!("file://{}", abs.display()));

    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--box-version", "1.1.0", CATALOG],
    );
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(list.contains("regbake/registry (libvirt, 1.0.0)"), "{list}");
    assert!(list.contains("regbake/registry (libvirt, 1.1.0)"), "{list}");

    // Packing the same version again replaces its entry.
    pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "disk.qcow2",
            "--version",
            "1.1.0",
        ],
    );
    assert_eq!(versions(&catalog(&t)).len(), 2);
}

#[test]
fn corrupted_box_fails_the_checksum() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    let path = t.path().join("out/box/regbake-registry-1.0.0-libvirt.box");
    let mut bytes = std::fs::read(&path).expect("read box");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt box");
    let o = tool(&t, "vagrant", &["box", "add", CATALOG]);
    assert_ne!(o.code, 0, "vagrant box add accepted a corrupted box");
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(
        all.contains("checksum of the downloaded box did not match"),
        "{all}"
    );
    let list = tool(&t, "vagrant", &["box", "list"]).stdout;
    assert!(!list.contains("regbake/registry"), "{list}");
}

/// A minimal OVF 1.0 descriptor referencing one disk file.
pub(crate) fn ovf(disk: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{disk}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:capacity="1073741824" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="registry">
    <Info>regbake test machine</Info>
    <OperatingSystemSection ovf:id="80">
      <Info>Guest OS</Info>
    </OperatingSystemSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

#[test]
fn virtualbox_box_from_ovf_and_vmdk_imports() {
    if !tools() {
        return;
    }
    let t = Test::new()
        .file("vm/box.ovf", &ovf("registry-disk001.vmdk"))
        .stub("VBoxManage", "#!/bin/sh\necho 6.1.38r153438\n");
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "disk.raw", "64M"]);
    tool_ok(
        &t,
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "disk.raw",
            "vm/registry-disk001.vmdk",
        ],
    );
    pack(
        &t,
        &[
            "--provider",
            "virtualbox",
            "--ovf",
            "vm/box.ovf",
            "--version",
            "2.0.0",
        ],
    );
    assert_eq!(
        versions(&catalog(&t)),
        [("2.0.0".to_string(), vec!["virtualbox".to_string()])]
    );
    tool_ok(&t, "vagrant", &["box", "add", CATALOG]);
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(
        list.contains("regbake/registry (virtualbox, 2.0.0)"),
        "{list}"
    );
    validate_with_box(&t, "virtualbox", "2.0.0");
    let dir = t
        .path()
        .join("vagrant.d/boxes/regbake-VAGRANTSLASH-registry/2.0.0/virtualbox");
    for f in [
        "metadata.json",
        "Vagrantfile",
        "box.ovf",
        "registry-disk001.vmdk",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from the imported box");
    }
    assert_eq!(
        std::fs::read(dir.join("registry-disk001.vmdk")).expect("vmdk"),
        std::fs::read(t.path().join("vm/registry-disk001.vmdk")).expect("vmdk")
    );

    // A libvirt box of another version joins the same catalog.
    qcow2(&t, "disk.qcow2", "1G");
    pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "disk.qcow2",
            "--version",
            "2.0.0",
        ],
    );
    assert_eq!(
        versions(&catalog(&t)),
        [(
            "2.0.0".to_string(),
            vec!["virtualbox".to_string(), "libvirt".to_string()]
        )]
    );
    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--provider", "libvirt", CATALOG],
    );
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(list.contains("regbake/registry (libvirt, 2.0.0)"), "{list}");
}

#[test]
fn corrupted_virtualbox_box_fails_the_checksum() {
    if !tools() {
        return;
    }
    let t = Test::new().file("box.ovf", &ovf("disk.vmdk"));
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "disk.raw", "16M"]);
    tool_ok(
        &t,
        "qemu-img",
        &["convert", "-O", "vmdk", "disk.raw", "disk.vmdk"],
    );
    pack(&t, &["--provider", "virtualbox", "--ovf", "box.ovf"]);
    let path = t
        .path()
        .join("out/box/regbake-registry-1.0.0-virtualbox.box");
    let mut bytes = std::fs::read(&path).expect("read box");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).expect("corrupt box");
    let o = tool(&t, "vagrant", &["box", "add", CATALOG]);
    assert_ne!(o.code, 0);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(
        all.contains("checksum of the downloaded box did not match"),
        "{all}"
    );
}

/// A box holds what its disks hold (a baked appliance: its TLS key, http
/// secret, htpasswd): it is readable by whom the disks are, so an
/// owner-only disk gives an owner-only box, inside the tar too (issue 18 §8).
#[test]
fn a_box_is_as_private_as_its_disk() {
    use std::os::unix::fs::PermissionsExt;
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    for (disk, mode, version, want) in [
        ("private.qcow2", 0o600, "1.0.0", 0o600),
        ("group.qcow2", 0o640, "1.0.1", 0o640),
        ("public.qcow2", 0o644, "1.0.2", 0o644),
    ] {
        qcow2(&t, disk, "1M");
        std::fs::set_permissions(t.path().join(disk), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
        pack(
            &t,
            &[
                "--provider",
                "libvirt",
                "--disk",
                disk,
                "--version",
                version,
            ],
        );
        let name = format!("out/box/regbake-registry-{version}-libvirt.box");
        assert_eq!(t.mode(&name), want, "{disk}");
        let listing = tool_ok(&t, "tar", &["tvzf", &name]).stdout;
        let perms = if want == 0o644 {
            "-rw-r--r--"
        } else if want == 0o640 {
            "-rw-r-----"
        } else {
            "-rw-------"
        };
        for line in listing.lines() {
            assert!(line.starts_with(perms), "{disk}: {line}");
        }
    }
    // The catalog holds no secret.
    assert_eq!(t.mode(CATALOG), 0o644);
}

#[test]
fn missing_disk_is_a_usage_error() {
    let t = Test::new().args(&[
        "box",
        "pack",
        "--provider",
        "libvirt",
        "--disk",
        "nope.qcow2",
    ]);
    let t = t
        .status(2)
        .stderr_contains("--disk")
        .stderr_contains("nope.qcow2\": not a file");
    t.check();
    assert!(!t.path().join("out/box").exists());
}

#[test]
fn raw_disk_is_refused_as_not_qcow2() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new().args(&["box", "pack", "--provider", "libvirt", "--disk", "disk.raw"]);
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "disk.raw", "1M"]);
    let t = t.status(2).stderr_contains("is not a qcow2 image");
    t.check();
    assert!(!t.path().join("out/box").exists());
}

#[test]
fn ovf_with_a_path_in_href_is_refused() {
    let t = Test::new().file("box.ovf", &ovf("../secret.vmdk")).args(&[
        "box",
        "pack",
        "--provider",
        "virtualbox",
        "--ovf",
        "box.ovf",
    ]);
    t.status(2)
        .stderr_contains("box.ovf:4")
        .stderr_contains("no path separators")
        .check();
}

#[test]
fn bad_version_names_the_flag() {
    let t = Test::new().args(&[
        "box",
        "pack",
        "--provider",
        "libvirt",
        "--disk",
        "x",
        "--version",
        "1.0-beta",
    ]);
    t.status(2).stderr_contains("--version").check();
}
