//! `regbake box pack`: real qcow2/vmdk disks from `qemu-img`, boxes and
//! catalogs imported by the real `vagrant box add` (vagrant-libvirt installed;
//! no hypervisor needed) into a throwaway VAGRANT_HOME.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{names_in, require_tool, tool, tool_ok, Output, Test, BIN};

const CATALOG: &str = "out/box/regbake-registry.json";

fn tools() -> bool {
    require_tool("vagrant") && require_tool("qemu-img")
}

/// An empty qcow2 disk `name` of `size` in the test dir.
fn qcow2(t: &Test, name: &str, size: &str) {
    tool_ok(t, "qemu-img", &["create", "-f", "qcow2", name, size]);
}

/// `regbake box pack ARGS` in the test dir, which must succeed.
fn pack(t: &Test, args: &[&str]) -> Output {
    let mut all = vec!["box", "pack"];
    all.extend_from_slice(args);
    tool_ok(t, BIN, &all)
}

fn catalog(t: &Test) -> serde_json::Value {
    serde_json::from_str(&t.read(CATALOG)).expect("catalog is JSON")
}

fn versions(cat: &serde_json::Value) -> Vec<(String, Vec<String>)> {
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
fn ovf(disk: &str) -> String {
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

/// A small box packed and in the catalog, then a pack of a big disk started
/// and caught once compressed data has reached its temp file.
struct Interrupted {
    t: Test,
    child: std::process::Child,
    catalog_before: String,
    boxes_before: Vec<String>,
}

fn start_big_pack() -> Interrupted {
    let t = Test::new();
    qcow2(&t, "small.qcow2", "1G");
    pack(&t, &["--provider", "libvirt", "--disk", "small.qcow2"]);
    let catalog_before = t.read(CATALOG);
    let boxes_before = names_in(&t.path().join("out/box"));
    // Metadata preallocation: a real qcow2 whose file spans the whole 16 GiB
    // (sparse on disk), so packing takes far longer than the test waits.
    tool_ok(
        &t,
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-o",
            "preallocation=metadata",
            "big.qcow2",
            "16G",
        ],
    );
    let mut child = Command::new(BIN)
        .args([
            "box",
            "pack",
            "--provider",
            "libvirt",
            "--disk",
            "big.qcow2",
            "--version",
            "9.0.0",
        ])
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    let deadline = Instant::now() + Duration::from_secs(60);
    let box_dir = t.path().join("out/box");
    loop {
        let partial = std::fs::read_dir(&box_dir)
            .expect("read out/box")
            .filter_map(std::result::Result::ok)
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".partial")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            });
        if partial {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the pack ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no partial box appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    Interrupted {
        t,
        child,
        catalog_before,
        boxes_before,
    }
}

/// No new box, no new visible file, the catalog byte for byte as before,
/// and vagrant still imports it.
fn assert_nothing_changed(t: &Test, catalog_before: &str, boxes_before: &[String]) {
    assert_eq!(t.read(CATALOG), catalog_before, "catalog changed");
    let box_dir = t.path().join("out/box");
    let after = names_in(&box_dir);
    let visible = |v: &[String]| -> Vec<String> {
        v.iter().filter(|n| !n.starts_with('.')).cloned().collect()
    };
    assert_eq!(
        visible(&after),
        visible(boxes_before),
        "a new file appeared in out/box"
    );
    assert!(
        after
            .iter()
            .all(|n| !n.ends_with(".box") || boxes_before.contains(n)),
        "{after:?}"
    );
    assert!(!box_dir.join("regbake-registry-9.0.0-libvirt.box").exists());
    tool_ok(t, "vagrant", &["box", "add", CATALOG]);
}

#[test]
fn killed_pack_leaves_no_box_and_the_catalog_unchanged() {
    if !tools() {
        return;
    }
    let mut run = start_big_pack();
    // SIGKILL: no handler runs, the worst case for atomicity. The temp file
    // stays behind, hidden and not named *.box.
    run.child.kill().expect("kill");
    let status = run.child.wait().expect("wait");
    assert!(!status.success(), "the pack finished before the kill");
    assert_nothing_changed(&run.t, &run.catalog_before, &run.boxes_before);
}

#[test]
fn ctrl_c_stops_the_pack_and_removes_its_temp_file() {
    if !tools() {
        return;
    }
    let run = start_big_pack();
    let pid = i32::try_from(run.child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let Interrupted {
        t,
        child,
        catalog_before,
        boxes_before,
    } = run;
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let leftovers: Vec<String> = names_in(&t.path().join("out/box"))
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    assert_nothing_changed(&t, &catalog_before, &boxes_before);
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
        .stderr_contains("nope.qcow2 is not a file");
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

/// `out/box/.lock` held from the test with the same flock(2) regbake uses;
/// released on drop (closing the file).
pub(crate) struct HeldLock {
    _file: std::fs::File,
}

pub(crate) fn hold_lock(t: &Test) -> HeldLock {
    use std::os::fd::AsRawFd;
    let dir = t.path().join("out/box");
    std::fs::create_dir_all(&dir).expect("mkdir out/box");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".lock"))
        .expect("open lock");
    // SAFETY: flock(2) on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0, "lock already held");
    HeldLock { _file: f }
}

/// A `regbake box pack` running in the background, its stderr collected.
struct Bg {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn_pack(t: &Test, args: &[&str]) -> Bg {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(["box", "pack"])
        .args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn regbake");
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("stderr buffer")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Bg {
        child,
        stderr,
        reader,
    }
}

impl Bg {
    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Wait until stderr contains `text` (the process must still run).
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(text) {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "regbake ended ({status}) before saying {text:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "regbake did not say {text:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the end: exit code and all of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait");
        self.reader.join().expect("stderr reader");
        let stderr = self.stderr.lock().expect("stderr buffer").clone();
        (status.code(), stderr)
    }
}

pub(crate) const WAITING: &str = "waiting for another regbake in";

#[test]
fn concurrent_packs_of_two_versions_both_reach_the_catalog() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    // Line both runs up behind a held lock so they really run at the same
    // time, then let them race for it.
    let held = hold_lock(&t);
    let mut runs: Vec<Bg> = ["3.0.0", "3.1.0"]
        .iter()
        .map(|v| {
            spawn_pack(
                &t,
                &[
                    "--provider",
                    "libvirt",
                    "--disk",
                    "disk.qcow2",
                    "--version",
                    v,
                ],
            )
        })
        .collect();
    for r in &mut runs {
        r.wait_for(WAITING);
    }
    drop(held);
    for r in runs {
        let (code, stderr) = r.finish();
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    }
    assert_eq!(
        versions(&catalog(&t)),
        [
            ("3.0.0".to_string(), vec!["libvirt".to_string()]),
            ("3.1.0".to_string(), vec!["libvirt".to_string()])
        ]
    );
    for v in ["3.0.0", "3.1.0"] {
        tool_ok(&t, "vagrant", &["box", "add", "--box-version", v, CATALOG]);
    }
    let list = tool_ok(&t, "vagrant", &["box", "list"]).stdout;
    assert!(list.contains("regbake/registry (libvirt, 3.0.0)"), "{list}");
    assert!(list.contains("regbake/registry (libvirt, 3.1.0)"), "{list}");

    // And without a lock to line them up: a virtualbox and a libvirt box of
    // one version, started together, share one version entry.
    let t = Test::new().file("box.ovf", &ovf("disk.vmdk"));
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "disk.raw", "16M"]);
    tool_ok(
        &t,
        "qemu-img",
        &["convert", "-O", "vmdk", "disk.raw", "disk.vmdk"],
    );
    qcow2(&t, "disk.qcow2", "1G");
    let a = spawn_pack(&t, &["--provider", "virtualbox", "--ovf", "box.ovf"]);
    let b = spawn_pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    for r in [a, b] {
        let (code, stderr) = r.finish();
        assert_eq!(code, Some(0), "{stderr}");
    }
    let mut providers = versions(&catalog(&t));
    providers[0].1.sort();
    assert_eq!(
        providers,
        [(
            "1.0.0".to_string(),
            vec!["libvirt".to_string(), "virtualbox".to_string()]
        )]
    );
    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--provider", "libvirt", CATALOG],
    );
}

#[test]
fn a_pack_waits_for_the_lock_then_succeeds_and_cleans_up() {
    if !tools() {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    let held = hold_lock(&t);
    // As if the lock holder were writing it: it must survive the wait.
    let partial = t
        .path()
        .join("out/box/.regbake-registry-4.0.0-libvirt.box.AbCd12.partial");
    std::fs::write(&partial, vec![7u8; 3 << 20]).expect("plant partial");
    let mut run = spawn_pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "disk.qcow2",
            "--version",
            "5.0.0",
        ],
    );
    // WAITING is printed once the lock was found taken, before anything in
    // out/box/ is touched; that a waiter never gets the lock while it is
    // held is util::lock's unit test, so no sleep is needed to prove it here.
    run.wait_for(WAITING);
    assert!(
        run.child.try_wait().expect("wait").is_none(),
        "did not wait"
    );
    assert!(
        partial.exists(),
        "removed a temp file while the lock was held"
    );
    assert!(!t.path().join(CATALOG).exists());
    drop(held);
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(WAITING).count(), 1, "said once: {stderr}");
    assert!(!partial.exists(), "stale partial kept");
    assert!(
        stderr.contains(".regbake-registry-4.0.0-libvirt.box.AbCd12.partial")
            && stderr.contains("MiB freed"),
        "{stderr}"
    );
    assert_eq!(
        versions(&catalog(&t)),
        [("5.0.0".to_string(), vec!["libvirt".to_string()])]
    );
    tool_ok(&t, "vagrant", &["box", "add", CATALOG]);
    // The lock file stays (deleting it could let two runs lock two files).
    assert!(t.path().join("out/box/.lock").is_file());
}

#[test]
fn ctrl_c_ends_a_wait_for_the_lock() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    qcow2(&t, "disk.qcow2", "1G");
    let _held = hold_lock(&t);
    let mut run = spawn_pack(&t, &["--provider", "libvirt", "--disk", "disk.qcow2"]);
    run.wait_for(WAITING);
    let pid = i32::try_from(run.child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(names_in(&t.path().join("out/box")), [".lock"]);
}

#[test]
fn the_next_pack_removes_what_a_killed_pack_left() {
    if !tools() {
        return;
    }
    let mut run = start_big_pack();
    run.child.kill().expect("kill");
    run.child.wait().expect("wait");
    let t = run.t;
    let box_dir = t.path().join("out/box");
    let left: Vec<String> = names_in(&box_dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let o = pack(
        &t,
        &[
            "--provider",
            "libvirt",
            "--disk",
            "small.qcow2",
            "--version",
            "1.2.0",
        ],
    );
    assert!(o.stderr.contains(&left[0]), "{}", o.stderr);
    assert!(o.stderr.contains("freed"), "{}", o.stderr);
    assert!(
        names_in(&box_dir).iter().all(|n| !n.ends_with(".partial")),
        "{:?}",
        names_in(&box_dir)
    );
    assert_eq!(
        versions(&catalog(&t)),
        [
            ("1.0.0".to_string(), vec!["libvirt".to_string()]),
            ("1.2.0".to_string(), vec!["libvirt".to_string()])
        ]
    );
    tool_ok(
        &t,
        "vagrant",
        &["box", "add", "--box-version", "1.2.0", CATALOG],
    );
}
