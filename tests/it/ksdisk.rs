//! `storage.disk = "auto"`: the kickstart's %pre, run under CentOS 7's bash
//! 4.2 against fake machines (a /sys, /proc/mounts and /dev tree under
//! REGBAKE_ROOT, `blkid` stubbed), picks the one eligible disk and writes a
//! partitioning that ksvalidator accepts once included, or stops naming the
//! candidates. Never the install medium, the OEMDRV volume or a USB disk.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::{bash42, ksvalidator, require_tool, Test};

/// The body of the first `%SECTION` … `%end` of a kickstart.
pub(crate) fn ks_section(ks: &str, section: &str) -> String {
    let mut lines = ks
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(section));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {section} in:\n{ks}"));
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "%end").collect();
    body.join("\n") + "\n"
}

/// The %pre that picks the disk (the other %pre reports to a kickstart
/// server: `report_scripts.rs`).
fn disk_pre(ks: &str) -> String {
    let at = ks
        .find("%pre --interpreter=/bin/bash --erroronfail --log=/tmp/regbake-disk.log\n")
        .unwrap_or_else(|| panic!("no disk %pre in:\n{ks}"));
    ks_section(&ks[at..], "%pre")
}

struct Disk {
    name: &'static str,
    bus: &'static str,
    removable: bool,
    gb: u64,
    by_id: Option<&'static str>,
}

const fn disk(name: &'static str, bus: &'static str) -> Disk {
    Disk {
        name,
        bus,
        removable: false,
        gb: 500,
        by_id: None,
    }
}

/// A fake machine: its disks in /sys, /dev and /dev/disk/by-id, what is
/// mounted, and which device `blkid -L OEMDRV` names.
fn machine(root: &Path, disks: &[Disk], mounts: &[&str], oemdrv: Option<&str>) {
    let w = |p: &Path, s: &str| {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, s).expect("write");
    };
    for d in disks {
        let dev = root.join(format!("sys/devices/{}/block/{}", d.bus, d.name));
        w(
            &dev.join("removable"),
            if d.removable { "1\n" } else { "0\n" },
        );
        w(&dev.join("ro"), "0\n");
        w(
            &dev.join("size"),
            &format!("{}\n", d.gb * 1_000_000_000 / 512),
        );
        let part = dev.join(format!("{}1", d.name));
        w(&part.join("partition"), "1\n");
        for (link, target) in [
            (format!("sys/block/{}", d.name), dev.clone()),
            (format!("sys/class/block/{}", d.name), dev.clone()),
            (format!("sys/class/block/{}1", d.name), part),
        ] {
            let l = root.join(link);
            std::fs::create_dir_all(l.parent().expect("parent")).expect("mkdir");
            symlink(target, l).expect("symlink");
        }
        w(&root.join("dev").join(d.name), "");
        w(&root.join("dev").join(format!("{}1", d.name)), "");
        if let Some(id) = d.by_id {
            let l = root.join("dev/disk/by-id").join(id);
            std::fs::create_dir_all(l.parent().expect("parent")).expect("mkdir");
            symlink(format!("../../{}", d.name), l).expect("symlink");
        }
    }
    let mut m = String::from("proc /proc proc rw 0 0\nrootfs / rootfs rw 0 0\n");
    for dev in mounts {
        m.push_str(&format!("{dev} /run/install/repo iso9660 ro 0 0\n"));
    }
    w(&root.join("proc/mounts"), &m);
    std::fs::create_dir_all(root.join("tmp")).expect("tmp");
    let blkid = root.join("stub/blkid");
    w(
        &blkid,
        &match oemdrv {
            Some(dev) => format!("#!/bin/sh\n[ \"$*\" = \"-L OEMDRV\" ] && echo {dev}\n"),
            None => "#!/bin/sh\nexit 2\n".into(),
        },
    );
    std::fs::set_permissions(&blkid, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // udevadm: records what it was asked (settle must come before the scan).
    let udevadm = root.join("stub/udevadm");
    w(
        &udevadm,
        &format!(
            "#!/bin/sh\necho \"udevadm $*\" >> '{}'\n",
            root.join("udevadm.log").display()
        ),
    );
    std::fs::set_permissions(&udevadm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A multipath LUN over `paths` (disks made by [`machine`]): a dm device
/// `dm` with uuid `mpath-WWID`, its paths as slaves, and its by-id link.
fn multipath(root: &Path, dm: &str, wwid: &str, paths: &[&str]) {
    let w = |p: &Path, s: &str| {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, s).expect("write");
    };
    let dev = root.join(format!("sys/devices/virtual/block/{dm}"));
    w(&dev.join("removable"), "0\n");
    w(&dev.join("ro"), "0\n");
    w(
        &dev.join("size"),
        &format!("{}\n", 2_000_000_000_000_u64 / 512),
    );
    w(&dev.join("dm/uuid"), &format!("mpath-{wwid}\n"));
    std::fs::create_dir_all(dev.join("slaves")).expect("mkdir");
    for p in paths {
        symlink(
            root.join("sys/class/block").join(p),
            dev.join("slaves").join(p),
        )
        .expect("symlink");
    }
    for link in [format!("sys/block/{dm}"), format!("sys/class/block/{dm}")] {
        symlink(&dev, root.join(link)).expect("symlink");
    }
    w(&root.join("dev").join(dm), "");
    let id = root.join(format!("dev/disk/by-id/dm-uuid-mpath-{wwid}"));
    std::fs::create_dir_all(id.parent().expect("parent")).expect("mkdir");
    symlink(format!("../../{dm}"), id).expect("symlink");
}

/// What anaconda then parses: `ks` with the partitioning %pre wrote
/// included, accepted by ksvalidator.
fn ksvalidate_with_partitioning(ks: &str, part: &str, dir: &Path) {
    if !require_tool("ksvalidator") {
        return;
    }
    let f = dir.join("full.ks");
    std::fs::write(&f, ks.replace("%include /tmp/regbake-disk.ks\n", part)).expect("write");
    let out = ksvalidator(dir)
        .args(["-v", "RHEL7"])
        .arg(&f)
        .output()
        .expect("ksvalidator");
    assert!(
        out.status.success(),
        "ksvalidator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Run {
    ok: bool,
    stderr: String,
    part: Option<String>,
}

fn run_pre(bash: &Path, ks: &str, root: &Path) -> Run {
    let pre = root.join("pre.sh");
    std::fs::write(&pre, disk_pre(ks)).expect("write %pre");
    let path = format!(
        "{}:{}",
        root.join("stub").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(bash)
        .arg(&pre)
        .env("REGBAKE_ROOT", root)
        .env("PATH", path)
        .output()
        .expect("run %pre");
    Run {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        part: std::fs::read_to_string(root.join("tmp/regbake-disk.ks")).ok(),
    }
}

#[test]
fn auto_disk_picks_the_one_local_disk_and_never_the_installer_s() {
    let Some(bash) = bash42() else { return };
    let t = Test::new().args(&["kickstart"]);
    t.success();
    let ks = t.read("out/kickstart/ks.cfg");
    assert!(ks.contains("%include /tmp/regbake-disk.ks"), "{ks}");

    // A server with its disk, the USB stick it boots the installer from
    // (mounted), an OEMDRV stick, a USB disk that claims to be fixed, a DVD.
    let m = tempfile::tempdir().expect("tempdir");
    let usb = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0";
    machine(
        m.path(),
        &[
            Disk {
                by_id: Some("wwn-0x5000c500a1b2c3d4"),
                ..disk(
                    "sda",
                    "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
                )
            },
            Disk {
                removable: true,
                gb: 16,
                ..disk("sdb", usb)
            },
            Disk {
                gb: 1,
                ..disk(
                    "sdc",
                    "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0",
                )
            },
            disk(
                "sdd",
                "pci0000:00/0000:00:14.0/usb3/3-2/3-2:1.0/host7/target7:0:0/7:0:0:0",
            ),
            Disk {
                removable: true,
                ..disk(
                    "sr0",
                    "pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0",
                )
            },
            disk("loop0", "virtual"),
        ],
        &["/dev/sdb1"],
        Some("/dev/sdc1"),
    );
    let r = run_pre(&bash, &ks, m.path());
    assert!(r.ok, "%pre failed:\n{}", r.stderr);
    assert!(
        r.stderr
            .contains("installing on sda (500 GB, /dev/disk/by-id/wwn-0x5000c500a1b2c3d4)"),
        "{}",
        r.stderr
    );
    // Slow controllers: the disks are looked at once udev has settled.
    assert_eq!(
        std::fs::read_to_string(m.path().join("udevadm.log")).unwrap_or_default(),
        "udevadm settle --timeout=120\n"
    );
    let part = r.part.expect("no /tmp/regbake-disk.ks");
    assert!(part.contains("ignoredisk --only-use=sda\n"), "{part}");
    assert!(part.contains("reqpart\n"), "{part}");
    assert!(!part.contains("sdb") && !part.contains("sdc") && !part.contains("sdd"));

    ksvalidate_with_partitioning(&ks, &part, m.path());

    // An NVMe server installed from a DVD: the NVMe disk.
    let m = tempfile::tempdir().expect("tempdir");
    machine(
        m.path(),
        &[
            disk("nvme0n1", "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"),
            Disk {
                removable: true,
                ..disk(
                    "sr0",
                    "pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0",
                )
            },
        ],
        &["/dev/sr0"],
        None,
    );
    let r = run_pre(&bash, &ks, m.path());
    assert!(r.ok, "%pre failed:\n{}", r.stderr);
    assert!(r
        .part
        .expect("partitioning")
        .contains("part pv.01 --size=1 --grow --ondisk=nvme0n1\n"));
}

#[test]
fn auto_disk_stops_rather_than_guess() {
    let Some(bash) = bash42() else { return };
    let t = Test::new().args(&["kickstart"]);
    t.success();
    let ks = t.read("out/kickstart/ks.cfg");
    let a1 = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
    let a2 = "pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0";

    // Two disks: which one holds the data that must not be erased?
    let m = tempfile::tempdir().expect("tempdir");
    machine(
        m.path(),
        &[
            Disk {
                by_id: Some("ata-ST500_A"),
                ..disk("sda", a1)
            },
            Disk {
                by_id: Some("ata-ST4000_B"),
                gb: 4000,
                ..disk("sdb", a2)
            },
        ],
        &[],
        None,
    );
    let r = run_pre(&bash, &ks, m.path());
    assert!(!r.ok, "%pre picked a disk out of two:\n{}", r.stderr);
    assert!(r.part.is_none());
    for want in [
        "found 2 disks that could be erased",
        "sda (500 GB, /dev/disk/by-id/ata-ST500_A)",
        "sdb (4000 GB, /dev/disk/by-id/ata-ST4000_B)",
        "Set storage.disk",
    ] {
        assert!(r.stderr.contains(want), "{want:?} not in:\n{}", r.stderr);
    }

    // Only the installer's own media: nothing to install on.
    let m = tempfile::tempdir().expect("tempdir");
    machine(
        m.path(),
        &[
            Disk {
                removable: true,
                ..disk(
                    "sda",
                    "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0",
                )
            },
            disk("vda", "pci0000:00/0000:00:05.0/virtio2"),
        ],
        &["/dev/sda"],
        Some("/dev/vda"),
    );
    let r = run_pre(&bash, &ks, m.path());
    assert!(!r.ok);
    assert!(r.part.is_none());
    assert!(
        r.stderr.contains("found no disk to install on"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_explicit_disk_needs_no_pre() {
    let t = Test::new()
        .config("version = 1\n[storage]\ndisk = \"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4\"\n")
        .args(&["kickstart"]);
    t.success();
    let ks = t.read("out/kickstart/ks.cfg");
    assert!(
        !ks.contains("--log=/tmp/regbake-disk.log") && !ks.contains("%include"),
        "{ks}"
    );
    if require_tool("ksvalidator") {
        let out = ksvalidator(t.path())
            .args(["-v", "RHEL7"])
            .arg(t.path().join("out/kickstart/ks.cfg"))
            .output()
            .expect("ksvalidator");
        assert!(out.status.success());
    }
}

/// A server with a local disk in use by the installer and a SAN LUN seen
/// over two paths: the LUN is one disk (not two, which would stop the
/// install), named by its WWID as anaconda takes multipath devices.
#[test]
fn auto_disk_counts_a_multipath_lun_once() {
    let Some(bash) = bash42() else { return };
    let t = Test::new().args(&["kickstart"]);
    t.success();
    let ks = t.read("out/kickstart/ks.cfg");
    let wwid = "3600508b400105e210000900000490000";
    let m = tempfile::tempdir().expect("tempdir");
    // Two fibre channel paths to LUN 1.
    let p1 = "pci0000:00/0000:00:03.0/host3/rport-3:0-0/target3:0:0/3:0:0:1";
    let p2 = "pci0000:00/0000:00:03.1/host4/rport-4:0-0/target4:0:0/4:0:0:1";
    machine(
        m.path(),
        &[
            Disk {
                removable: true,
                gb: 16,
                ..disk(
                    "sda",
                    "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0",
                )
            },
            disk("sdb", p1),
            disk("sdc", p2),
        ],
        &["/dev/sda1"],
        None,
    );
    multipath(m.path(), "dm-0", wwid, &["sdb", "sdc"]);
    let r = run_pre(&bash, &ks, m.path());
    assert!(r.ok, "%pre failed on one LUN seen twice:\n{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "installing on dm-0 (2000 GB, /dev/disk/by-id/dm-uuid-mpath-{wwid})"
        )),
        "{}",
        r.stderr
    );
    let part = r.part.expect("partitioning");
    let name = format!("disk/by-id/dm-uuid-mpath-{wwid}");
    assert!(
        part.contains(&format!("ignoredisk --only-use={name}\n")),
        "{part}"
    );
    assert!(part.contains(&format!("--ondisk={name}\n")), "{part}");
    assert!(!part.contains("sdb") && !part.contains("sdc"), "{part}");
    ksvalidate_with_partitioning(&ks, &part, m.path());

    // A path in use by the installer makes the whole LUN in use.
    let m = tempfile::tempdir().expect("tempdir");
    machine(
        m.path(),
        &[disk("sdb", p1), disk("sdc", p2)],
        &["/dev/sdc1"],
        None,
    );
    multipath(m.path(), "dm-0", wwid, &["sdb", "sdc"]);
    let r = run_pre(&bash, &ks, m.path());
    assert!(
        !r.ok,
        "%pre installed on a LUN the installer uses:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("found no disk to install on"),
        "{}",
        r.stderr
    );
}

/// `storage.disk` names a whole disk: partitions, file systems, optical,
/// loop and RAM devices and `..` are refused with the field named.
#[test]
fn an_explicit_disk_must_be_a_whole_disk() {
    for bad in [
        "sda1",
        "nvme0n1p2",
        "sr0",
        "loop0",
        "ram0",
        "/dev/disk/by-id/..",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1",
        "/dev/disk/by-uuid/0b6a7f5e-6f0e-4b0e-9b8a-2a6b7c2e1d11",
        "/dev/disk/by-label/data",
    ] {
        Test::new()
            .config(&format!("version = 1\n[storage]\ndisk = \"{bad}\"\n"))
            .args(&["kickstart"])
            .status(2)
            .stderr_contains(&format!("storage.disk = \"{bad}\""))
            .stderr_contains("not a partition")
            .check();
    }
}

/// The header of the single kickstart says which disk it erases.
#[test]
fn the_warning_names_the_disk_or_how_it_is_chosen() {
    let t = Test::new().args(&["kickstart"]);
    t.success();
    let ks = t.read("out/kickstart/ks.cfg");
    assert!(!ks.contains("on disk auto"), "{ks}");
    assert!(ks.contains("# WARNING: erases ALL data on the one local disk that %pre picks"));
    let t = Test::new()
        .config("version = 1\n[storage]\ndisk = \"vdb\"\n")
        .args(&["kickstart"]);
    t.success();
    assert!(t
        .read("out/kickstart/ks.cfg")
        .contains("# WARNING: erases ALL data on disk vdb.\n"));
}
