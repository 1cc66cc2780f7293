//! The value grammars, case by case.

use super::*;

#[test]
fn hostnames() {
    assert!(is_hostname("registry.local"));
    assert!(is_hostname("a-b.c1"));
    assert!(!is_hostname("-a.b"));
    assert!(!is_hostname("a..b"));
    assert!(!is_hostname("a_b"));
    assert!(!is_hostname(&"a".repeat(64)));
}

#[test]
fn image_refs() {
    for ok in [
        "registry:2",
        "registry",
        "library/registry:2.8.3",
        "docker.io/library/registry:2",
        "localhost:5000/registry:2",
        "mirror.example:5000/registry@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(is_image_ref(ok), "{ok}");
    }
    for bad in [
        "",
        "Registry:2",
        "registry:",
        "reg;istry",
        "registry:2 x",
        "a//b",
        "a-",
        "a..b",
        "a._b",
    ] {
        assert!(!is_image_ref(bad), "{bad}");
    }
    // One grammar with the probe's repository names.
    for name in ["a", "a-b", "a--b", "a__b", "a.b/c_d"] {
        assert!(is_repository(name) && is_image_ref(name), "{name}");
    }
}

#[test]
fn sha512_crypt() {
    let h = format!("$6$saltsalt${}", "a".repeat(86));
    assert!(is_sha512_crypt(&h));
    assert!(is_sha512_crypt(&format!(
        "$6$rounds=5000$salt${}",
        "b".repeat(86)
    )));
    assert!(!is_sha512_crypt("$1$salt$abc"));
    assert!(!is_sha512_crypt("hunter2"));
    assert!(!is_sha512_crypt(&format!("$6$salt${}x", "a".repeat(86))));
}

#[test]
fn data_dirs() {
    assert!(is_data_dir("/data/docker-registry"));
    assert!(is_data_dir("/srv/registry"));
    for bad in [
        "data",
        "/",
        "/etc",
        "/data/../etc",
        "/data/",
        "/data//x",
        "/data/a b",
        "/var",
    ] {
        assert!(!is_data_dir(bad), "{bad}");
    }
}

#[test]
fn packer_values() {
    assert!(is_go_duration("60m") && is_go_duration("1h30m") && is_go_duration("900s"));
    assert!(!is_go_duration("") && !is_go_duration("m") && !is_go_duration("5"));
    assert!(!is_go_duration("5d") && !is_go_duration("1.5h"));
    assert!(is_rel_or_abs_path("packer-build") && is_rel_or_abs_path("/srv/build/x"));
    assert!(!is_rel_or_abs_path("../x") && !is_rel_or_abs_path("/") && !is_rel_or_abs_path("a b"));
}

/// Found by the config property test: `timezone = "-+"` rendered
/// `timezone -+ --isUtc`, which pykickstart refuses ("unrecognized
/// arguments: -+"); `network.device = "--"` rendered `--device=--`,
/// whose value argparse drops.
#[test]
fn kickstart_values_never_look_like_options() {
    for ok in [
        "UTC",
        "Europe/Paris",
        "Etc/GMT-14",
        "America/Port-au-Prince",
        "EST5EDT",
    ] {
        assert!(is_timezone(ok), "{ok}");
    }
    for bad in ["-+", "--", "-u", "Etc/-x", "_x", "../x", "Europe/.."] {
        assert!(!is_timezone(bad), "{bad}");
    }
    assert!(is_ifname("eth0") && is_ifname("enp0s3") && is_ifname("br-lan.10"));
    assert!(!is_ifname("--") && !is_ifname("-x") && !is_ifname("_x") && !is_ifname(""));
}

/// Issue 12, item 17: legal authorized_keys lines, refused before.
#[test]
fn ssh_key_comments_are_free_text() {
    let body = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW";
    for comment in [
        r#"john's "laptop" $HOME"#,
        "`id` \\ $(id) #{x} {{y}}",
        "é 😀",
    ] {
        let line = format!("{body} {comment}");
        assert_eq!(check_ssh_public_key(&line), Ok(()), "{line}");
    }
    assert!(check_ssh_public_key(&format!("{body} a\nssh-ed25519 {body}")).is_err());
    assert!(check_ssh_public_key(&format!("{body} a\tb")).is_err());
}

#[test]
fn urls() {
    assert!(is_url("https://vault.centos.org/7.9.2009"));
    assert!(is_url("http://user:pw@proxy.example:3128"));
    for bad in [
        "ftp://x",
        "https://x/$(id)",
        "https://x/`id`",
        "https://x/a b",
        "vault.centos.org",
        "https://x/;id",
    ] {
        assert!(!is_url(bad), "{bad}");
    }
    // Found by the config property test: Packer read packer.iso_url =
    // "http://x/\u{f900}" as "http://x/\u{8c48}" (HCL's NFC), and
    // systemd dropped HTTP_PROXY for "http://x/\u{fffe}".
    for bad in [
        "http://x/\u{f900}",
        "http://x/\u{fffe}",
        "http://x/e\u{301}",
        "http://x/é",
    ] {
        assert!(!is_url(bad), "{bad}");
    }
    assert!(is_url("http://x/%C3%A9"));
}

#[test]
fn disks_are_whole_disks() {
    for good in [
        "sda",
        "sdp",
        "vda",
        "xvdb",
        "nvme0n1",
        "mmcblk0",
        "md126",
        "dasda",
        "emcpowera",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
        "/dev/disk/by-id/dm-uuid-mpath-3600508b400105e210000900000490000",
        "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
    ] {
        assert!(is_disk(good), "{good}");
    }
    for bad in [
        "sda1",
        "vda2",
        "xvdb1",
        "sdp1",
        "nvme0n1p1",
        "mmcblk0p2",
        "sr0",
        "loop0",
        "ram1",
        "zram0",
        "fd0",
        "nbd3",
        "/dev/disk/by-id/..",
        "/dev/disk/by-id/.",
        "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1",
        "/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part2",
        "/dev/disk/by-uuid/0b6a7f5e-6f0e-4b0e-9b8a-2a6b7c2e1d11",
        "/dev/disk/by-label/data",
        "/dev/disk/by-id/../../sda",
        "/dev/sda",
        "dasda1",
        "emcpowera1",
        "/dev/disk/by-id/dm-uuid-part1-mpath-3600508b400105e210000900000490000",
        "/dev/disk/by-id/dm-uuid-LVM-abc",
        "/dev/disk/by-id/dm-uuid-CRYPT-LUKS2-abc",
        "/dev/disk/by-id/lvm-pv-uuid-abc",
    ] {
        assert!(!is_disk(bad), "{bad}");
    }
}

#[test]
fn image_urls_are_http_or_absolute_files() {
    for ok in [
        "https://dl.rockylinux.org/pub/rocky/9/images/x86_64/Rocky-9-GenericCloud-Base.latest.x86_64.qcow2",
        "file:///var/lib/images/el9.qcow2",
    ] {
        assert!(is_image_url(ok), "{ok}");
    }
    for bad in [
        "file:///",
        "file://host/x.qcow2",
        "file:relative.qcow2",
        "/var/lib/images/el9.qcow2",
        "file:///a/../etc/shadow",
        "file:///a//b.qcow2",
        "file:///a b.qcow2",
        "file:///a;reboot",
        "ftp://x/y.qcow2",
    ] {
        assert!(!is_image_url(bad), "{bad}");
    }
}
