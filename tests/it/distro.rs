//! `appliance.distro`: Rocky Linux and AlmaLinux 9 and 10 beside CentOS 7
//! (issue 19). What each renders, what is refused, and the facts the
//! templates rely on, checked with the real programs where they run here
//! (ksvalidator, sshd). CentOS 7's output is pinned by the golden fixtures.

use std::process::Command;

use crate::common::{ksvalidator, require_tool, Test};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t";

const NEW: [&str; 4] = ["rocky9", "alma9", "rocky10", "alma10"];

fn config(distro: &str, extra: &str) -> String {
    format!(
        "version = 1\n[appliance]\ndistro = \"{distro}\"\n\
         [user]\nssh_keys = [\"{ED25519}\"]\nssh_key_files = []\n{extra}"
    )
}

fn rendered(distro: &str, extra: &str) -> Test {
    let t = Test::new().config(&config(distro, extra)).args(&["render"]);
    t.success();
    t
}

/// The settings a distro sets when the config leaves them out, as
/// `regbake config` resolves them; a value the config sets stays.
#[test]
fn each_distro_fills_its_own_defaults() {
    let cases = [
        (
            "centos7",
            [
                "mirror = \"https://vault.centos.org/7.9.2009\"",
                "docker_ce = \"https://download.docker.com/linux/centos\"",
                "image = \"registry:2\"",
                "base_box = \"centos/7\"",
                "iso_url = \"https://vault.centos.org/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso\"",
                "iso_checksum = \"sha256:07b94e6b1a0b0260b94c83d6bb76b26bf7a310dc78d7a9c7432809fb9bc6194a\"",
            ],
        ),
        (
            "rocky9",
            [
                "mirror = \"https://dl.rockylinux.org/pub/rocky/9\"",
                "docker_ce = \"https://download.docker.com/linux/rhel\"",
                "image = \"registry:3\"",
                "base_box = \"rockylinux/9\"",
                "iso_url = \"https://download.rockylinux.org/pub/rocky/9/isos/x86_64/Rocky-9-latest-x86_64-minimal.iso\"",
                "iso_checksum = \"file:https://download.rockylinux.org/pub/rocky/9/isos/x86_64/CHECKSUM\"",
            ],
        ),
        (
            "alma10",
            [
                "mirror = \"https://repo.almalinux.org/almalinux/10\"",
                "docker_ce = \"https://download.docker.com/linux/rhel\"",
                "image = \"registry:3\"",
                "base_box = \"almalinux/10\"",
                "iso_url = \"https://repo.almalinux.org/almalinux/10/isos/x86_64/AlmaLinux-10-latest-x86_64-minimal.iso\"",
                "iso_checksum = \"file:https://repo.almalinux.org/almalinux/10/isos/x86_64/CHECKSUM\"",
            ],
        ),
    ];
    for (distro, want) in cases {
        let o = Test::new()
            .config(&config(distro, ""))
            .args(&["config"])
            .success();
        for w in want {
            assert!(o.stdout.contains(w), "{distro}: {w} not in:\n{}", o.stdout);
        }
    }
    let o = Test::new()
        .config(&config(
            "rocky9",
            "[registry]\nimage = \"registry:2\"\n[vagrant]\nbase_box = \"generic/rocky9\"\n",
        ))
        .args(&["config"])
        .success();
    assert!(o.stdout.contains("image = \"registry:2\""), "{}", o.stdout);
    assert!(
        o.stdout.contains("base_box = \"generic/rocky9\""),
        "{}",
        o.stdout
    );
}

/// EL9/EL10 kickstart: its pykickstart version, `timezone --utc` (EL9
/// deprecates `--isUtc`, EL10 removed it), BaseOS as the tree with
/// AppStream (container-selinux) and Docker's RHEL tree at the major;
/// EL9's package names; no CentOS 7 repo file or sshd_config.
#[test]
fn el9_and_el10_render_their_own_dialect_packages_and_repos() {
    for (distro, major, vendor) in [
        ("rocky9", 9, "https://dl.rockylinux.org/pub/rocky/9"),
        ("alma10", 10, "https://repo.almalinux.org/almalinux/10"),
    ] {
        let t = rendered(distro, "");
        let ks = t.read("out/kickstart/ks.cfg");
        assert!(ks.starts_with(&format!("#version=RHEL{major}\n")), "{ks}");
        for want in [
            "\ntimezone UTC --utc\n".to_string(),
            format!("\nurl --url={vendor}/BaseOS/x86_64/os\n"),
            format!("\nrepo --name=AppStream --baseurl={vendor}/AppStream/x86_64/os\n"),
            format!("\nrepo --name=docker-ce-stable --baseurl=https://download.docker.com/linux/rhel/{major}/x86_64/stable\n"),
            "\npolicycoreutils-python-utils\n".into(),
            "\ncontainer-selinux\n".into(),
        ] {
            assert!(ks.contains(&want), "{distro}: {want:?} not in the kickstart");
        }
        for unwanted in ["--isUtc", "\ncurl\n", "\nlibcgroup\n", "vault.centos.org"] {
            assert!(
                !ks.contains(unwanted),
                "{distro}: {unwanted:?} in the kickstart"
            );
        }
        let repo = t.read("out/overlay/etc/yum.repos.d/docker-ce.repo");
        assert!(
            repo.contains(&format!(
                "\nbaseurl=https://download.docker.com/linux/rhel/{major}/$basearch/stable\n"
            )),
            "{repo}"
        );
        assert!(
            !repo
                .lines()
                .any(|l| l.starts_with("baseurl=") && l.contains("$releasever")),
            "{repo}"
        );
        for absent in [
            "out/overlay/etc/yum.repos.d/CentOS-Base.repo",
            "out/overlay/etc/ssh/sshd_config",
            "out/overlay/etc/yum.conf",
            "out/overlay/etc/dnf/dnf.conf",
            "out/overlay/etc/docker/registry/config.yml",
        ] {
            assert!(!t.path().join(absent).exists(), "{distro}: {absent}");
        }
        assert_eq!(
            t.mode("out/overlay/etc/ssh/sshd_config.d/00-regbake.conf"),
            0o600
        );
        assert!(t
            .path()
            .join("out/overlay/etc/distribution/config.yml")
            .is_file());
        let install = t.read("out/overlay/usr/local/sbin/regbake-install");
        assert!(install.contains("\n    dnf -y install "), "{install}");
        assert!(!install.contains("yum "), "{install}");
    }
}

/// With a proxy, EL9/EL10 get it in dnf.conf (on EL9 /etc/yum.conf is a
/// symlink to it, which a file in its place would cut off).
#[test]
fn el9_proxy_goes_to_dnf_conf() {
    let t = rendered("alma9", "[proxy]\nhttp = \"http://proxy.example:3128\"\n");
    let conf = t.read("out/overlay/etc/dnf/dnf.conf");
    assert!(conf.contains("\n[main]\ngpgcheck=1\n"), "{conf}");
    assert!(
        conf.ends_with("\nproxy=http://proxy.example:3128\n"),
        "{conf}"
    );
    assert!(!t.path().join("out/overlay/etc/yum.conf").exists());
}

/// `regbake check` runs ksvalidator with the version the distro's
/// kickstart names (a stub ksvalidator records what it is asked).
#[test]
fn check_validates_each_kickstart_with_its_distros_version() {
    for (distro, version) in [
        ("centos7", "RHEL7"),
        ("rocky9", "RHEL9"),
        ("rocky10", "RHEL10"),
    ] {
        let t = Test::new()
            .config(&config(distro, ""))
            .stub(
                "ksvalidator",
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$HOME/ksvalidator.log\"\n",
            )
            .args(&["check"]);
        t.success();
        let asked = t.read("home/ksvalidator.log");
        assert!(
            asked.lines().count() >= 2
                && asked
                    .lines()
                    .all(|l| l.starts_with(&format!("-v {version} "))),
            "{distro}: {asked}"
        );
    }
}

/// What the EL9 dialect is for: pykickstart's RHEL9 handler fails on
/// CentOS 7's `timezone --isUtc` (a deprecation warning, which ksvalidator
/// turns into exit 1), RHEL10 does not know it at all, and both pass the
/// rendered kickstart.
#[test]
fn ksvalidator_is_strict_about_the_el7_dialect() {
    if !require_tool("ksvalidator") {
        return;
    }
    let t = rendered("rocky9", "");
    let ks = t.read("out/kickstart/ks.cfg");
    let old = ks.replace("timezone UTC --utc", "timezone UTC --isUtc");
    assert_ne!(ks, old);
    std::fs::write(t.path().join("el7-dialect.ks"), old).expect("write");
    for version in ["RHEL9", "RHEL10"] {
        let run = |file: &str| {
            ksvalidator(t.path())
                .args(["-v", version, file])
                .current_dir(t.path())
                .output()
                .expect("ksvalidator")
        };
        let ok = run("out/kickstart/ks.cfg");
        assert!(
            ok.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let o = run("el7-dialect.ks");
        assert!(!o.status.success(), "{version} took --isUtc");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("isUtc"), "{version}: {text}");
    }
}

/// The drop-in wins over what EL9's sshd_config.d/50-redhat.conf (and a
/// cloud-init drop-in after it) set, because sshd keeps the first value
/// it reads: the real sshd, with EL9's layout (`Include` of the drop-in
/// directory first in sshd_config), prints the effective config.
#[test]
fn sshd_drop_in_sorts_first_and_wins() {
    if !require_tool("sshd") || !require_tool("ssh-keygen") {
        return;
    }
    let t = rendered("rocky9", "");
    let etc = t.path().join("etc-ssh");
    let d = etc.join("sshd_config.d");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::copy(
        t.path()
            .join("out/overlay/etc/ssh/sshd_config.d/00-regbake.conf"),
        d.join("00-regbake.conf"),
    )
    .expect("copy drop-in");
    // What EL9's 50-redhat.conf sets (the crypto policy include left out:
    // there is none here), and a later drop-in that allows passwords.
    std::fs::write(
        d.join("50-redhat.conf"),
        "SyslogFacility AUTHPRIV\nKbdInteractiveAuthentication yes\nGSSAPIAuthentication yes\n\
         GSSAPICleanupCredentials no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n",
    )
    .expect("write");
    std::fs::write(d.join("50-cloud-init.conf"), "PasswordAuthentication yes\n").expect("write");
    // EL9's sshd_config starts with the include; its own settings follow.
    std::fs::write(
        etc.join("sshd_config"),
        format!(
            "Include {}/*.conf\nPermitRootLogin yes\nAuthorizedKeysFile .ssh/authorized_keys\n",
            d.display()
        ),
    )
    .expect("write");
    let key = etc.join("ssh_host_ed25519_key");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success());
    let _ = std::fs::create_dir_all("/run/sshd");
    let o = Command::new("sshd")
        .arg("-T")
        .arg("-f")
        .arg(etc.join("sshd_config"))
        .arg("-h")
        .arg(&key)
        .output()
        .expect("sshd -T");
    let effective = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "sshd -T: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin no",
        "x11forwarding no",
        "pubkeyauthentication yes",
        // 50-redhat.conf's own settings still apply where the drop-in is silent.
        "syslogfacility AUTHPRIV",
        "printmotd no",
    ] {
        assert!(
            effective.lines().any(|l| l == want),
            "{want:?} not in sshd -T:\n{effective}"
        );
    }
}

/// An RSA-only key set gets a warning at render time on EL9/EL10 (their
/// DEFAULT crypto policy refuses ssh-rsa SHA-1 signatures); CentOS 7, or
/// any other key beside it, none.
#[test]
fn rsa_only_keys_warn_on_el9_and_el10() {
    let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3evXH01yRUimm7tvIIKLA1IUJevTCb4CpaLZfnxPl9Sv+xLQ94tV2vxx/ZDrvWszd0+TxBqm9a350TQgC6pxgCrb++SjKW6Nt77RfyVtc/BR8uawh3mRIAGBFQb9g0pNW1OUp9nPl+xyUyIvUuO4bF8TLASLcc/T4TMU4OtNNsMi+/5vSdC5OMua4PJuy/Rgp6798Oo/iVAKqK7G5YDRU3zt6EV3js3pNmlPvebYWS2mKBK/FVU0QcUnaR3aYEpUjVFu8RzQ+A8CTgxa8LMktX0wCULJDxmw5tSGB6+4b8hHCxmEnaTb93YhjiLoPqq/BkSkvta4N0Hy5kq6vT/Fb t@t";
    let keys = |ks: &[&str]| {
        format!(
            "ssh_keys = [{}]",
            ks.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let run = |distro: &str, ssh_keys: &str| {
        let toml = format!(
            "version = 1\n[appliance]\ndistro = \"{distro}\"\n[user]\n{ssh_keys}\nssh_key_files = []\n"
        );
        Test::new().config(&toml).args(&["render"]).success()
    };
    for distro in ["rocky9", "alma10"] {
        let o = run(distro, &keys(&[rsa]));
        assert!(
            o.stderr
                .contains("warning: every SSH key of user ansible is ssh-rsa"),
            "{distro}: {}",
            o.stderr
        );
        assert!(o.stderr.contains("DEFAULT crypto policy"), "{}", o.stderr);
        let o = run(distro, &keys(&[rsa, ED25519]));
        assert!(!o.stderr.contains("ssh-rsa"), "{distro}: {}", o.stderr);
    }
    let o = run("centos7", &keys(&[rsa]));
    assert!(!o.stderr.contains("ssh-rsa"), "{}", o.stderr);
}

/// Packer: QEMU's CPU model per distro and accelerator; EL10 under
/// software emulation is refused with the reason (exit 2, the field).
#[test]
fn packer_cpu_model_per_distro_and_no_tcg_for_el10() {
    let sources = |distro: &str, accel: &str| {
        let t = rendered(distro, &format!("[packer]\naccelerator = \"{accel}\"\n"));
        t.read("out/packer/sources.pkr.hcl")
    };
    assert!(!sources("centos7", "kvm").contains("qemuargs"));
    assert!(sources("rocky9", "kvm").contains("qemuargs         = [[\"-cpu\", \"host\"]]"));
    assert!(sources("alma10", "kvm").contains("qemuargs         = [[\"-cpu\", \"host\"]]"));
    assert!(sources("alma9", "tcg").contains("qemuargs         = [[\"-cpu\", \"max\"]]"));
    // EL9's ISO boots isolinux (as CentOS 7's), EL10's GRUB2 on BIOS too.
    assert!(sources("rocky9", "kvm").contains("boot_command      = [\"<up><tab> inst.text"));
    assert!(sources("rocky10", "kvm")
        .contains("boot_command      = [\"<up><wait>e<wait><down><down><end> inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<leftCtrlOn>x<leftCtrlOff>\"]"));

    for distro in ["rocky10", "alma10"] {
        let t = Test::new()
            .config(&config(distro, "[packer]\naccelerator = \"tcg\"\n"))
            .stub("packer", "#!/bin/sh\necho 'Packer v1.6.6'\n")
            .args(&["packer", "--render-only"])
            .status(2)
            .stderr_contains("packer.accelerator = \"tcg\"")
            .stderr_contains("x86-64-v3");
        t.check();
        // Without the qemu builder the accelerator does not matter.
        Test::new()
            .config(&config(
                distro,
                "[packer]\naccelerator = \"tcg\"\nbuilders = [\"virtualbox-iso\"]\n",
            ))
            .stub("packer", "#!/bin/sh\necho 'Packer v1.6.6'\n")
            .args(&["packer", "--render-only"])
            .success();
    }
}

/// Refused on every distro: what cannot be installed beside docker-ce
/// (containerd.io conflicts with runc); below the EL9/EL10 installers'
/// memory; a checksum that is neither a digest nor a `file:` URL.
#[test]
fn conflicting_packages_small_memory_and_bad_checksums_are_refused() {
    for (distro, body, path, value) in [
        (
            "rocky9",
            "[packages]\nextra = [\"vim\", \"podman\"]",
            "packages.extra[1]",
            "podman",
        ),
        (
            "alma10",
            "[packages]\nextra = [\"@container-tools\"]",
            "packages.extra[0]",
            "@container-tools",
        ),
        (
            "centos7",
            "[packages]\nextra = [\"runc\"]",
            "packages.extra[0]",
            "runc",
        ),
        ("rocky9", "[packer]\nmemory = 1024", "packer.memory", "1024"),
        (
            "rocky9",
            "[packer]\niso_checksum = \"file:ftp://x/CHECKSUM\"",
            "packer.iso_checksum",
            "file:ftp://x/CHECKSUM",
        ),
    ] {
        Test::new()
            .config(&config(distro, &format!("{body}\n")))
            .args(&["render"])
            .status(2)
            .stderr_contains(path)
            .stderr_contains(value)
            .check();
    }
    let o = Test::new()
        .config(&config("rocky9", "[packages]\nextra = [\"buildah\"]\n"))
        .args(&["render"])
        .status(2)
        .check();
    assert!(
        o.stderr.contains("containerd.io conflicts with runc"),
        "{}",
        o.stderr
    );
    // 1024 MiB stays enough for CentOS 7; file: checksums are accepted.
    rendered("centos7", "[packer]\nmemory = 1024\n");
    rendered(
        "centos7",
        "[packer]\niso_checksum = \"file:https://vault.centos.org/7.9.2009/isos/x86_64/sha256sum.txt\"\n",
    );
}

/// Each new distro's default render passes every validator (`ksvalidator
/// -v RHEL9|RHEL10`, `sshd -t` on the drop-in, systemd-analyze, bash -n,
/// shellcheck, vagrant and packer validate); `packer fmt` leaves it as is.
#[test]
fn each_new_distro_passes_check() {
    let run = |distro: &str| {
        let t = Test::new().config(&config(distro, ""));
        let o = crate::common::check_all(t);
        for line in [
            "sshd -t          overlay/etc/ssh/sshd_config.d/00-regbake.conf",
            "ksvalidator      kickstart/ks.cfg",
        ] {
            assert!(
                o.stdout.contains(&format!("passed   {line}")),
                "{distro}: {line}\n{}",
                o.stdout
            );
        }
    };
    for pair in NEW.chunks(2) {
        std::thread::scope(|s| {
            for distro in pair {
                s.spawn(|| run(distro));
            }
        });
    }
    if require_tool("packer") {
        for distro in NEW {
            let t = rendered(distro, "");
            let o = Command::new("packer")
                .args(["fmt", "-check", "out/packer"])
                .current_dir(t.path())
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .expect("packer fmt");
            assert!(
                o.status.success(),
                "{distro}: packer fmt -check: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
}

/// The fleet: each host's kickstart of an inventory is the distro's, and
/// `regbake check` validates it with the distro's ksvalidator version (the
/// two hosts have kickstarts of two shapes, static and DHCP, so check
/// validates both in full).
#[test]
fn fleet_kickstarts_follow_the_distro() {
    let t = Test::new()
        .config(&config("alma9", ""))
        .file(
            "hosts.ini",
            "[registries]\nreg1 ip=192.0.2.11/24 gateway=192.0.2.1\nreg2 ip=dhcp\n",
        )
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    for host in ["reg1", "reg2"] {
        let ks = t.read(&format!("out/kickstart/{host}.ks"));
        assert!(ks.starts_with("#version=RHEL9\n"), "{host}: {ks}");
        assert!(ks.contains("\ntimezone UTC --utc\n"), "{host}");
    }
    let t = t
        .stub(
            "ksvalidator",
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$HOME/ksvalidator.log\"\n",
        )
        .args(&["check"]);
    t.success();
    let asked = t.read("home/ksvalidator.log");
    for host in ["reg1.ks", "reg2.ks", "ks.cfg"] {
        assert!(
            asked
                .lines()
                .any(|l| l.starts_with("-v RHEL9 ") && l.ends_with(host)),
            "{host}: {asked}"
        );
    }
}
