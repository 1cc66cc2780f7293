//! The typed `regbake.toml` (version 1): serde types with their defaults.
//! Unknown keys are errors; [`super::validate`] checks the values.

use serde::{Deserialize, Serialize};

pub use super::distro::Distro;
use super::typed::Disk;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub appliance: ApplianceSection,
    #[serde(default)]
    pub user: UserSection,
    #[serde(default)]
    pub ssh: SshSection,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub proxy: Option<ProxySection>,
    #[serde(default)]
    pub repos: ReposSection,
    #[serde(default)]
    pub packages: PackagesSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub registry: RegistrySection,
    #[serde(default)]
    pub vagrant: VagrantSection,
    #[serde(default)]
    pub packer: PackerSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplianceSection {
    pub name: String,
    pub hostname: String,
    pub distro: Distro,
    pub timezone: String,
}

impl Default for ApplianceSection {
    fn default() -> Self {
        Self {
            name: "registry".into(),
            hostname: "registry.local".into(),
            distro: Distro::Centos7,
            timezone: "UTC".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserSection {
    pub name: String,
    pub ssh_keys: Vec<String>,
    pub ssh_key_files: Vec<String>,
    pub password_hash: String,
    pub sudo: Sudo,
}

impl Default for UserSection {
    fn default() -> Self {
        Self {
            name: "ansible".into(),
            ssh_keys: vec![],
            ssh_key_files: vec!["~/.ssh/id_ed25519.pub".into()],
            password_hash: String::new(),
            sudo: Sudo::Nopasswd,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sudo {
    Nopasswd,
    Password,
    None,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSection {
    pub password_authentication: bool,
    pub permit_root_login: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    pub mode: NetworkMode,
    /// Static IPv4 address in CIDR form, e.g. `192.0.2.10/24`.
    pub address: String,
    pub gateway: String,
    pub dns: Vec<String>,
    /// Interface for the kickstart `network` line; `link` = the first with a link.
    pub device: String,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            mode: NetworkMode::Dhcp,
            address: String::new(),
            gateway: String::new(),
            dns: vec![],
            device: "link".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Dhcp,
    Static,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    pub http: String,
    pub https: String,
    pub no_proxy: Vec<String>,
}

/// Both "" = the distro's (see [`Config::fill_distro_defaults`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReposSection {
    pub mirror: String,
    pub docker_ce: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesSection {
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub data_dir: String,
    /// 0 = the data volume grows to fill the disk.
    pub data_size_gb: u64,
    /// Size of the root logical volume.
    pub root_size_gb: u64,
    /// Install target disk for the kickstart: `sda`, `vda`, `nvme0n1` or `/dev/disk/by-…/…`.
    pub disk: String,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            data_dir: "/data/docker-registry".into(),
            data_size_gb: 0,
            root_size_gb: 10,
            disk: Disk::AUTO.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    pub image: String,
    /// Distribution major version: 0 = from the image tag (registry:3 → 3), else 2 or 3.
    pub major: u8,
    /// 0 = the default: 5000 without TLS, 443 with TLS.
    pub port: u32,
    pub delete: bool,
    pub preload: bool,
    pub container_name: String,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// Environment variable holding a shared http secret (several registries
    /// behind one load balancer); empty = generated once and kept.
    pub http_secret_env: String,
    /// Purge abandoned uploads older than this (e.g. "168h"); "" = never.
    pub upload_purge_age: String,
    /// Prometheus metrics on 127.0.0.1:metrics_port of the appliance.
    pub metrics: bool,
    pub metrics_port: u32,
    pub tls: TlsSection,
    pub auth: AuthSection,
    pub storage: BackendSection,
    pub mirror: Option<MirrorSection>,
    pub gc: GcSection,
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self {
            // The distro's.
            image: String::new(),
            major: 0,
            port: 0,
            delete: true,
            preload: true,
            container_name: "registry".into(),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            http_secret_env: String::new(),
            upload_purge_age: "168h".into(),
            metrics: false,
            metrics_port: 5001,
            tls: TlsSection::default(),
            auth: AuthSection::default(),
            storage: BackendSection::default(),
            mirror: None,
            gc: GcSection::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
    Logstash,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub users: Vec<AuthUser>,
    /// bcrypt cost of the hashes regbake makes from `password_env`: the
    /// registry pays it on every authenticated request.
    pub bcrypt_cost: u32,
}

/// `htpasswd -B`'s cost, the one the registry's docs use.
pub const DEFAULT_BCRYPT_COST: u32 = 5;

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            users: vec![],
            bcrypt_cost: DEFAULT_BCRYPT_COST,
        }
    }
}

/// One htpasswd user: a bcrypt hash, or the name of an environment variable
/// whose value regbake hashes (the plain text is never written).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthUser {
    pub name: String,
    pub password_hash: String,
    pub password_env: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendSection {
    pub backend: Backend,
    pub bucket: String,
    pub region: String,
    /// S3-compatible endpoint (MinIO, Ceph RGW); empty = AWS.
    pub endpoint: String,
    pub force_path_style: bool,
    /// Environment variables holding the credentials; empty = instance role.
    pub access_key_env: String,
    pub secret_key_env: String,
    pub root_directory: String,
}

impl Default for BackendSection {
    fn default() -> Self {
        Self {
            backend: Backend::Filesystem,
            bucket: String::new(),
            region: String::new(),
            endpoint: String::new(),
            force_path_style: true,
            access_key_env: String::new(),
            secret_key_env: String::new(),
            root_directory: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Filesystem,
    S3,
}

/// Garbage collection on a systemd timer: `registry garbage-collect`, with
/// the registry read-only meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcSection {
    pub enabled: bool,
    /// A systemd `OnCalendar` value, in the form CentOS 7's systemd 219 reads.
    pub schedule: String,
    /// Also delete manifests that no tag points at (`--delete-untagged`).
    pub delete_untagged: bool,
}

impl Default for GcSection {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule: "weekly".into(),
            delete_untagged: false,
        }
    }
}

/// Pull-through cache of another registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSection {
    pub remote_url: String,
    pub username_env: String,
    pub password_env: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub mode: TlsMode,
    /// Extra subject alternative names (DNS names or IP addresses) for `generate`.
    pub sans: Vec<String>,
    /// Days the generated server certificate is valid.
    pub days: u32,
    /// `files`: PEM certificate (chain), unencrypted key (PKCS#8, PKCS#1 RSA
    /// or SEC1 EC) and optional CA, read at render time.
    pub cert: String,
    pub key: String,
    pub ca: String,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            sans: vec![],
            days: 825,
            cert: String::new(),
            key: String::new(),
            ca: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Off,
    Generate,
    Files,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VagrantSection {
    pub base_box: String,
    pub provider: Provider,
    pub box_name: String,
    pub box_version: String,
    pub memory: u32,
    pub cpus: u32,
    /// Host port forwarded to the registry port; 0 = the registry port, or
    /// 8000 plus it when it is below 1024 (no root needed: 443 → 8443).
    pub host_port: u32,
    /// How libvirt runs the VM: kvm, or tcg (QEMU's software emulation,
    /// for hosts without a usable /dev/kvm; much slower).
    pub accelerator: VagrantAccelerator,
}

impl Default for VagrantSection {
    fn default() -> Self {
        Self {
            // The distro's.
            base_box: String::new(),
            provider: Provider::Virtualbox,
            box_name: "regbake/registry".into(),
            box_version: "1.0.0".into(),
            memory: 1024,
            cpus: 2,
            host_port: 0,
            accelerator: VagrantAccelerator::Kvm,
        }
    }
}

/// `vagrant.accelerator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VagrantAccelerator {
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Virtualbox,
    Libvirt,
}

/// `packer.source`: what the Packer build starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackerSource {
    /// The distro's installer ISO, driven by the appliance's kickstart.
    #[default]
    Iso,
    /// A cloud image (qcow2) booted as it is, configured by cloud-init.
    Image,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackerSection {
    pub source: PackerSource,
    pub iso_url: String,
    pub iso_checksum: String,
    /// The cloud image of `source = "image"`: http(s) or `file://` URL.
    pub image_url: String,
    pub image_checksum: String,
    pub builders: Vec<Builder>,
    /// Size of the VM's disk (the kickstart's /boot + root + data must fit).
    pub disk_size_mb: u64,
    pub memory: u32,
    pub cpus: u32,
    pub headless: bool,
    pub accelerator: PackerAccelerator,
    /// Packer's VM output directory; relative paths are relative to the out dir.
    pub output_dir: String,
    /// gzip level of the `.box` (0-9).
    pub compression_level: u32,
    pub required_plugins: RequiredPlugins,
    /// How long Packer waits for SSH (the whole unattended install): Go duration.
    pub ssh_timeout: String,
}

/// `packer.accelerator`: how QEMU runs the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackerAccelerator {
    Kvm,
    /// Software emulation: slow, but works without /dev/kvm.
    Tcg,
    /// macOS's Hypervisor.framework.
    Hvf,
    /// Windows' Hypervisor Platform.
    Whpx,
    None,
}

/// A Packer builder regbake can bake with; its name is Packer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Builder {
    Qemu,
    VirtualboxIso,
}

impl Builder {
    /// Packer's name of the builder (`source.NAME.…`, `-only=NAME.…`).
    pub fn name(self) -> &'static str {
        match self {
            Builder::Qemu => "qemu",
            Builder::VirtualboxIso => "virtualbox-iso",
        }
    }

    /// The Vagrant provider of the box it makes.
    pub fn provider(self) -> Provider {
        match self {
            Builder::Qemu => Provider::Libvirt,
            Builder::VirtualboxIso => Provider::Virtualbox,
        }
    }
}

impl std::fmt::Display for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `plugins.pkr.hcl` (`packer { required_plugins … }`) is rendered:
/// Packer >= 1.7 needs it for `packer init`, 1.6 rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequiredPlugins {
    /// Decided by the version of the `packer` on PATH.
    Auto,
    Always,
    Never,
}

impl Default for PackerSection {
    fn default() -> Self {
        Self {
            source: PackerSource::Iso,
            // The distro's.
            iso_url: String::new(),
            iso_checksum: String::new(),
            image_url: String::new(),
            image_checksum: String::new(),
            builders: vec![Builder::Qemu, Builder::VirtualboxIso],
            disk_size_mb: 20480,
            memory: 2048,
            cpus: 2,
            headless: true,
            accelerator: PackerAccelerator::Kvm,
            output_dir: "packer-build".into(),
            compression_level: 6,
            required_plugins: RequiredPlugins::Auto,
            ssh_timeout: "60m".into(),
        }
    }
}

impl Config {
    /// Fill the settings whose default depends on `appliance.distro` and
    /// that the config left out or set to "" (the repositories, the
    /// registry image, the base box, the ISO and its checksum).
    pub fn fill_distro_defaults(&mut self) {
        let d = self.appliance.distro;
        let fill = |v: &mut String, default: String| {
            if v.is_empty() {
                *v = default;
            }
        };
        fill(&mut self.repos.mirror, d.mirror());
        fill(&mut self.repos.docker_ce, d.docker_ce().into());
        fill(&mut self.registry.image, d.registry_image().into());
        fill(&mut self.vagrant.base_box, d.base_box().into());
        fill(&mut self.packer.iso_url, d.iso_url());
        fill(&mut self.packer.iso_checksum, d.iso_checksum());
        fill(&mut self.packer.image_url, d.image_url());
        fill(&mut self.packer.image_checksum, d.image_checksum());
    }
}

impl RegistrySection {
    /// The distribution major version the config is written for.
    pub fn effective_major(&self) -> u8 {
        if self.major != 0 {
            return self.major;
        }
        let tag = self
            .image
            .split('@')
            .next()
            .unwrap_or_default()
            .rsplit_once(':')
            .filter(|(name, _)| !name.is_empty())
            .map_or("", |(_, t)| t);
        if tag == "3" || tag.starts_with("3.") {
            3
        } else {
            2
        }
    }

    pub fn effective_port(&self) -> u16 {
        match self.port {
            0 if self.tls.mode == TlsMode::Off => 5000,
            0 => 443,
            p => u16::try_from(p).unwrap_or(5000),
        }
    }
}
