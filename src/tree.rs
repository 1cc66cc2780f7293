//! Files by relative path: what rendering makes and `out` writes.

use std::collections::BTreeMap;

/// One file to write: content and Unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Files by relative path (`/`-separated), in a stable order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn add(&mut self, path: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(
            path.into(),
            Entry {
                data: data.into(),
                mode,
            },
        );
    }

    /// Put another tree under `prefix/`.
    pub fn graft(&mut self, prefix: &str, other: &Tree) {
        for (p, e) in &other.files {
            self.files.insert(format!("{prefix}/{p}"), e.clone());
        }
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.files.get(path)
    }

    /// The distinct first path components.
    pub fn top_level(&self) -> Vec<&str> {
        let mut tops: Vec<&str> = self
            .files
            .keys()
            .map(|k| k.split('/').next().unwrap_or(k))
            .collect();
        tops.dedup();
        tops
    }
}

/// What a file of `out/` is, by its path: which program reads it (and so
/// checks it), and the mode it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A kickstart (`ksvalidator`, and its %pre/%post scripts).
    Kickstart,
    /// A bash script (`bash -n`, shellcheck).
    Script,
    /// A sudoers file (`visudo -c`).
    Sudoers,
    /// sshd's config, or a drop-in of it (`sshd -t`).
    SshdConfig,
    /// A systemd unit, service or timer (`systemd-analyze verify`).
    Unit,
    /// A drop-in of a unit (checked with its unit).
    DropIn,
    /// The registry's `config.yml`.
    RegistryConfig,
    /// The Vagrantfile that bakes the box (`vagrant validate`).
    Vagrantfile,
    /// The Vagrantfile inside a Packer-built box (`vagrant validate`).
    BoxVagrantfile,
    /// A Packer HCL2 template (`packer validate` of its directory).
    PackerTemplate,
    /// Anything else.
    Data,
}

impl Kind {
    /// The kind of the file at `path` (relative to `out/`).
    pub fn of(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        if path.starts_with("kickstart/") && (name.ends_with(".ks") || name == "ks.cfg")
            || path == "packer/http/ks.cfg"
        {
            Kind::Kickstart
        } else if path.starts_with("overlay/usr/local/sbin/")
            || path.starts_with("packer/scripts/") && name.ends_with(".sh")
        {
            Kind::Script
        } else if path.starts_with("overlay/etc/sudoers.d/") {
            Kind::Sudoers
        } else if path == "overlay/etc/ssh/sshd_config"
            || path.starts_with("overlay/etc/ssh/sshd_config.d/") && name.ends_with(".conf")
        {
            Kind::SshdConfig
        } else if path.starts_with("overlay/etc/systemd/system/") && path.contains(".service.d/") {
            Kind::DropIn
        } else if path.starts_with("overlay/etc/systemd/system/")
            && (name.ends_with(".service") || name.ends_with(".timer"))
        {
            Kind::Unit
        } else if path.starts_with("overlay/") && name == "config.yml" {
            Kind::RegistryConfig
        } else if path == "vagrant/Vagrantfile" {
            Kind::Vagrantfile
        } else if path == "packer/box/Vagrantfile" {
            Kind::BoxVagrantfile
        } else if path.starts_with("packer/") && name.ends_with(".pkr.hcl") {
            Kind::PackerTemplate
        } else {
            Kind::Data
        }
    }
}
