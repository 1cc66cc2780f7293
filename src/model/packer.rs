//! `[packer]` resolved: what the Packer templates need beyond the config,
//! and why a config cannot be baked with Packer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::boxes::{box_file_name, partial};
use crate::config::{
    Builder, Config, Disk, Distro, PackerAccelerator, PackerSection, PackerSource, Problem,
    RequiredPlugins, Sudo, Valid,
};

/// `packer version`'s version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Packer 1.7 introduced `required_plugins` (and `packer init`); 1.6
    /// rejects the block.
    pub fn needs_plugins_block(self) -> bool {
        self >= Version(1, 7, 0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first `vX.Y.Z` (or `X.Y.Z`) in `packer version`'s output.
pub fn parse_version(text: &str) -> Option<Version> {
    text.split_whitespace().find_map(|word| {
        let w = word.strip_prefix('v').unwrap_or(word);
        let mut parts = w.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        match (parts.next()?, parts.next()?, parts.next().flatten()) {
            (Some(a), Some(b), c) => Some(Version(a, b, c.unwrap_or(0))),
            _ => None,
        }
    })
}

/// The `[packer]` settings plus what the templates derive from other sections.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `[packer]` as configured; the templates see its keys at the top level.
    #[serde(flatten)]
    pub section: PackerSection,
    /// `.BOXNAME-VERSION-{{.Provider}}.box.partial` (`/` in the box name
    /// becomes `-`); the post-processor fills in the provider. A hidden temp
    /// name: regbake renames it into place under out/box's lock once the
    /// build succeeded, so a killed build leaves only a `.partial`, which
    /// the next run removes.
    pub box_file: String,
    pub box_name: String,
    pub box_version: String,
    /// QEMU's disk interface that makes the guest name the disk `storage.disk`.
    pub qemu_disk_interface: String,
    /// QEMU's `-cpu` model; "" = Packer's default (CentOS 7 runs on qemu64).
    pub qemu_cpu: String,
    /// Why Packer cannot bake this config (the template is then not rendered).
    #[serde(skip)]
    pub problems: Vec<Problem>,
    /// The private keys beside the `user.ssh_key_files` found at render time
    /// (`.pub` stripped, `~` kept for Vagrant to expand).
    #[serde(skip)]
    pub key_files: Vec<String>,
    /// The absolute out dir: the box Vagrantfile names a generated user key
    /// by its absolute path.
    #[serde(skip)]
    pub out_dir: PathBuf,
    /// Packer's per-build key (its public line), from the secret store.
    pub build_public_key: String,
    /// Render `plugins.pkr.hcl` (`required_plugins`): Packer 1.7 and later
    /// need it for `packer init`, 1.6 rejects it.
    #[serde(skip)]
    pub plugins_file: bool,
}

/// QEMU's CPU model for the distro: EL9's glibc needs x86-64-v2 (SSE4.2,
/// POPCNT) and EL10's x86-64-v3 (AVX2, BMI2, FMA, MOVBE), which Packer's
/// default qemu64 lacks ("Fatal glibc error: CPU does not support
/// x86-64-v2", packer #11839). `host` passes the host's CPU through, with
/// KVM or HVF; under software emulation `max` is every feature QEMU
/// emulates, which covers x86-64-v2. EL10 is refused there: only QEMU 7.2
/// and later emulate AVX2 at all, and an emulated install takes hours.
fn qemu_cpu(c: &Config, problems: &mut Vec<Problem>) -> &'static str {
    let d = c.appliance.distro;
    if d == Distro::Centos7 || !c.packer.builders.contains(&Builder::Qemu) {
        return "";
    }
    match c.packer.accelerator {
        PackerAccelerator::Kvm | PackerAccelerator::Hvf => "host",
        PackerAccelerator::Tcg if d.major() >= 10 => {
            problems.push(Problem::new(
                "packer.accelerator",
                "tcg",
                format!("{} needs an x86-64-v3 CPU (AVX2, BMI2, FMA, MOVBE), which QEMU's software emulation lacks before QEMU 7.2 and runs at a crawl after: use \"kvm\" (or \"hvf\" on macOS) on a machine with hardware virtualization, or install it with regbake kickstart or regbake vagrant", d.name()),
            ));
            "max"
        }
        _ => "max",
    }
}

impl Settings {
    /// `source = "image"`: a cloud image and cloud-init, no kickstart.
    pub fn image(&self) -> bool {
        self.section.source == PackerSource::Image
    }

    /// `out_dir` absolute; `packer` the one on PATH, if asked.
    pub fn from_config(v: &Valid, out_dir: &Path, packer: Option<Version>) -> Self {
        let c = &v.config;
        let p = &c.packer;
        let mut problems = vec![];
        if c.user.sudo != Sudo::Nopasswd {
            let value = match c.user.sudo {
                Sudo::Password => "password",
                _ => "none",
            };
            problems.push(Problem::new(
                "user.sudo",
                value,
                "regbake packer logs in as the user and provisions and shuts down with `sudo -n` (no password is ever stored): set sudo = \"nopasswd\", or install with regbake kickstart",
            ));
        }
        let qemu_disk_interface = match p.source {
            PackerSource::Iso => iso_checks(v, &mut problems),
            PackerSource::Image => image_checks(c, &mut problems),
        };
        let qemu_cpu = qemu_cpu(c, &mut problems);
        Self {
            section: p.clone(),
            box_file: partial(&box_file_name(
                &c.vagrant.box_name.replace('/', "-"),
                &c.vagrant.box_version,
                "{{.Provider}}",
            )),
            box_name: c.vagrant.box_name.clone(),
            box_version: c.vagrant.box_version.clone(),
            qemu_disk_interface: qemu_disk_interface.into(),
            qemu_cpu: qemu_cpu.into(),
            problems,
            key_files: c
                .user
                .ssh_key_files
                .iter()
                .filter(|f| crate::config::expand_home(f).is_file())
                .filter_map(|f| f.strip_suffix(".pub"))
                .map(str::to_string)
                .collect(),
            out_dir: out_dir.to_path_buf(),
            build_public_key: String::new(),
            plugins_file: match p.required_plugins {
                RequiredPlugins::Always => true,
                RequiredPlugins::Never => false,
                // Nothing to ask: render for the Packer one would install today.
                RequiredPlugins::Auto => packer.is_none_or(Version::needs_plugins_block),
            },
        }
    }
}

/// What the kickstart install needs of the VM; the QEMU disk interface
/// that makes the guest name its disk `storage.disk`.
fn iso_checks(v: &Valid, problems: &mut Vec<Problem>) -> &'static str {
    let c = &v.config;
    let p = &c.packer;
    // /boot (1 GiB) + root + data (at least 1 GiB when it grows) + 1 GiB
    // for LVM metadata and rounding.
    let min_disk_mb =
        1024 + c.storage.root_size_gb * 1024 + c.storage.data_size_gb.max(1) * 1024 + 1024;
    if p.disk_size_mb < min_disk_mb {
        problems.push(Problem::new(
            "packer.disk_size_mb",
            p.disk_size_mb,
            format!("the kickstart's /boot, storage.root_size_gb and storage.data_size_gb (plus 1 GiB spare) need at least {min_disk_mb} MiB"),
        ));
    }
    let vbox = p.builders.contains(&Builder::VirtualboxIso);
    match &v.parsed.disk {
        // The VM's only disk: "auto" finds it, as sda.
        Disk::Auto => "virtio-scsi",
        Disk::Named(d) if d == "sda" => "virtio-scsi",
        Disk::Named(d) if d == "vda" && !vbox => "virtio",
        Disk::Named(disk) => {
            problems.push(Problem::new(
                "storage.disk",
                disk,
                "regbake packer installs on the VM's only disk: expected \"auto\" or \"sda\" (QEMU virtio-scsi, VirtualBox SATA), or \"vda\" with packer.builders = [\"qemu\"]",
            ));
            "virtio-scsi"
        }
    }
}

/// A cloud image boots as it is: its own partitions (the data dir is a
/// directory on its root file system), found by label, on virtio; QEMU
/// only (VirtualBox cannot boot a qcow2).
fn image_checks(c: &Config, problems: &mut Vec<Problem>) -> &'static str {
    if c.packer.builders.contains(&Builder::VirtualboxIso) {
        problems.push(Problem::new(
            "packer.builders",
            "virtualbox-iso",
            "packer.source = \"image\" boots a qcow2 cloud image, which only QEMU can: set builders = [\"qemu\"], or source = \"iso\" for VirtualBox",
        ));
    }
    "virtio"
}
