//! The fully resolved appliance: the validated config plus everything derived
//! from it (paths, URLs, package list, SSH keys, secrets). Templates see only
//! this, serialized; they never compute anything themselves.

pub mod distro;
pub mod packer;
pub mod registry;
pub mod secrets;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{
    expand_home, Addressing, BadInput, Config, Disk, NetDevice, Parsed, Problem, Provider, Sudo,
    Valid,
};
use crate::util::log;
pub use distro::{DistroFacts, Repo, Repos};
use registry::RegistryFiles;
pub use registry::{Registry, CA_ANCHOR, CERTS_DIR};
use secrets::{SecretStore, Slot};

pub const DOCKER: &str = "/usr/bin/docker";
pub const FIRSTBOOT_MARKER: &str = "/var/lib/regbake/firstboot.done";

/// Where the appliance is rendered: what it depends on besides the config
/// and the secrets.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The absolute out dir (the box Vagrantfile names a generated key by it).
    pub out_dir: PathBuf,
    /// The `packer` on PATH, for `packer.required_plugins = "auto"`.
    pub packer: Option<packer::Version>,
}

impl Facts {
    /// A render into `out`, with no `packer` known.
    pub fn new(out: &Path) -> Result<Self> {
        Ok(Facts {
            out_dir: std::path::absolute(out).context("resolving the out dir")?,
            packer: None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Appliance {
    pub generator: String,
    pub appliance: Meta,
    /// What differs per `appliance.distro`.
    pub distro: DistroFacts,
    pub user: User,
    pub ssh: Ssh,
    pub network: Network,
    pub proxy: Option<Proxy>,
    pub repos: Repos,
    pub packages: Vec<String>,
    pub rpm_packages: Vec<String>,
    pub package_groups: Vec<String>,
    pub storage: Storage,
    pub registry: Registry,
    pub docker: &'static str,
    pub firstboot_marker: &'static str,
    /// Overlay files that hold secrets: installed 0600.
    pub secret_files: Vec<String>,
    /// Files `regbake-uninstall` removes besides the units and firstboot.
    pub uninstall_files: Vec<String>,
    /// Host directories the registry container mounts: SELinux type
    /// container_file_t, so the confined container (container_t) may use them.
    pub selinux_container_dirs: Vec<String>,
    pub vagrant: Vagrant,
    /// `[packer]` and what the Packer templates derive from the rest.
    pub packer: packer::Settings,
    /// The registry's TLS files and htpasswd, for the overlay.
    #[serde(skip)]
    pub registry_files: RegistryFiles,
    /// The `user:password@` of proxy and repository URLs: a rendered file
    /// that holds one is readable by its owner only.
    #[serde(skip)]
    pub credentials: Vec<String>,
}

/// The `user[:password]@` of URLs that carry credentials.
fn credentials(urls: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = urls
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| !u.username().is_empty() || u.password().is_some())
        .map(|u| match u.password() {
            Some(p) => format!("{}:{p}@", u.username()),
            None => format!("{}@", u.username()),
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub name: String,
    pub hostname: String,
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub home: String,
    /// A sudoers file is installed at all.
    pub sudo: bool,
    /// Its key pair is regbake's (`out/ssh/`), not a configured one.
    #[serde(skip)]
    pub generated_key: bool,
    pub sudo_nopasswd: bool,
    pub password_hash: String,
    pub authorized_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ssh {
    pub password_authentication: bool,
    pub permit_root_login: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    #[serde(rename = "static")]
    pub is_static: bool,
    pub device: NetDevice,
    pub ip: String,
    pub netmask: String,
    pub prefix: u8,
    pub gateway: String,
    pub dns: Vec<String>,
    pub dns_csv: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Proxy {
    pub http: String,
    pub https: String,
    pub no_proxy: String,
    /// yum takes one proxy for every repository.
    pub yum: String,
    /// The installer fetches the https vault through this one.
    pub installer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub data_dir: String,
    pub registry_dir: String,
    pub docker_dir: String,
    pub disk: Disk,
    /// For the templates: `disk` is [`Disk::Auto`], the kickstart's %pre picks it.
    pub auto_disk: bool,
    pub root_size_mb: u64,
    pub data_grow: bool,
    pub data_size_mb: u64,
}

/// The Vagrant bake: `[vagrant]` resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Vagrant {
    pub base_box: String,
    /// `virtualbox` or `libvirt`, as `vagrant up --provider` takes it.
    pub provider: Provider,
    /// For the templates: `provider` is [`Provider::Libvirt`].
    pub libvirt: bool,
    pub box_name: String,
    pub box_version: String,
    pub memory: u32,
    pub cpus: u32,
    /// The host side of the registry port forward (0 resolved).
    pub host_port: u16,
    /// vagrant-libvirt names the build domain `PREFIX` + `default`, and its
    /// disk volume `DOMAIN.img`.
    pub libvirt_prefix: String,
    pub libvirt_domain: String,
    /// vagrant-libvirt's `driver`: `kvm`, or `qemu` for software emulation.
    pub libvirt_driver: &'static str,
}

/// The most a key file may hold: many keys, not a disk image.
const MAX_KEY_FILE: u64 = 1 << 20;

/// Public keys from `user.ssh_keys` and the readable `user.ssh_key_files`.
fn collect_keys(c: &Config) -> Result<Vec<String>> {
    let mut keys: Vec<String> = c.user.ssh_keys.clone();
    let mut problems = vec![];
    for (i, f) in c.user.ssh_key_files.iter().enumerate() {
        let path = expand_home(f);
        let text = match crate::util::fsx::read_text(&path, MAX_KEY_FILE) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::note(&format!(
                    "user.ssh_key_files[{i}]: {} not found, skipped",
                    path.display()
                ));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                problems.push(Problem::new(
                    format!("user.ssh_key_files[{i}]"),
                    path.as_path(),
                    format!("{e}: expected an OpenSSH public key file"),
                ));
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading ssh key file {}", path.display()))
            }
        };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match crate::config::check_ssh_public_key(line) {
                Ok(()) => keys.push(line.to_string()),
                Err(why) => problems.push(Problem::new(
                    format!("user.ssh_key_files[{i}]"),
                    path.as_path(),
                    format!("the file holds a line that is not a public key: {why}"),
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(BadInput::Invalid(problems).into());
    }
    keys.dedup();
    Ok(keys)
}

impl Appliance {
    /// The appliance `v` describes, with its secrets from (or made into)
    /// `store`; `slot` says whose server certificate it gets.
    pub fn resolve(
        v: &Valid,
        store: &mut SecretStore,
        facts: &Facts,
        slot: Slot<'_>,
    ) -> Result<Self> {
        let c = &v.config;
        let user = resolve_user(c, store)?;
        let network = resolve_network(c, &v.parsed);
        let proxy = c
            .proxy
            .as_ref()
            .map(|p| resolve_proxy(p, &c.appliance.hostname));
        let d = c.appliance.distro;
        let repos = distro::repos(
            d,
            c.repos.mirror.trim_end_matches('/'),
            c.repos.docker_ce.trim_end_matches('/'),
        );
        warn_rsa_only(c, &user.authorized_keys);
        let (packages, package_groups, rpm_packages) = resolve_packages(c);
        let storage = resolve_storage(c, &v.parsed.disk);

        let (registry, registry_files) = registry::resolve(
            c,
            &c.appliance.hostname,
            network.is_static.then_some(network.ip.as_str()),
            &storage.registry_dir,
            store,
            slot,
        )?;
        let secret_files = registry.secret_files();
        let uninstall_files = registry.uninstall_files();
        let mut selinux_container_dirs = vec![storage.registry_dir.clone()];
        selinux_container_dirs.extend(registry.mounted_dirs().map(str::to_string));

        Ok(Self {
            generator: format!("generated by regbake {}", env!("CARGO_PKG_VERSION")),
            appliance: Meta {
                name: c.appliance.name.clone(),
                hostname: c.appliance.hostname.clone(),
                timezone: c.appliance.timezone.clone(),
            },
            user,
            ssh: Ssh {
                password_authentication: c.ssh.password_authentication,
                permit_root_login: c.ssh.permit_root_login,
            },
            network,
            proxy,
            distro: DistroFacts::of(d),
            repos,
            packages,
            rpm_packages,
            package_groups,
            storage,
            registry,
            docker: DOCKER,
            firstboot_marker: FIRSTBOOT_MARKER,
            secret_files,
            uninstall_files,
            selinux_container_dirs,
            vagrant: resolve_vagrant(c, c.registry.effective_port()),
            packer: packer_settings(v, store, facts)?,
            registry_files,
            credentials: credentials(&[
                c.proxy.as_ref().map_or("", |p| p.http.as_str()),
                c.proxy.as_ref().map_or("", |p| p.https.as_str()),
                &c.repos.mirror,
                &c.repos.docker_ce,
            ]),
        })
    }
}

/// `[user]` resolved; with no key configured or found, regbake's own
/// (generated once into `store`) logs in.
fn resolve_user(c: &Config, store: &mut SecretStore) -> Result<User> {
    let mut keys = collect_keys(c)?;
    let generated_key = keys.is_empty();
    if generated_key {
        let pair = store.ssh_key(&format!("regbake@{}", c.appliance.name))?;
        log::note(&format!(
            "no SSH public key configured or found: using the generated key out/{} for user {}",
            crate::model::secrets::SSH_KEY,
            c.user.name
        ));
        keys.push(pair.public_line);
    }
    let name = c.user.name.clone();
    Ok(User {
        home: format!("/home/{name}"),
        name,
        sudo: c.user.sudo != Sudo::None,
        generated_key,
        sudo_nopasswd: c.user.sudo == Sudo::Nopasswd,
        password_hash: c.user.password_hash.clone(),
        authorized_keys: keys,
    })
}

/// Past CentOS 7, the DEFAULT crypto policy refuses ssh-rsa (SHA-1)
/// signatures: say so when no other key type can log in.
fn warn_rsa_only(c: &Config, keys: &[String]) {
    let d = c.appliance.distro;
    if d != crate::config::Distro::Centos7 && distro::rsa_only(keys) {
        log::note(&format!(
            "warning: every SSH key of user {} is ssh-rsa: {}'s DEFAULT crypto policy refuses \
             ssh-rsa (SHA-1) signatures, so clients that sign with them (OpenSSH before 7.2, \
             old libraries) cannot log in; add an ed25519 key to user.ssh_keys",
            c.user.name,
            d.name()
        ));
    }
}

/// `[network]` resolved: a static address split into its parts.
fn resolve_network(c: &Config, parsed: &Parsed) -> Network {
    let n = &c.network;
    let dynamic = Network {
        is_static: false,
        device: parsed.device.clone(),
        ip: String::new(),
        netmask: String::new(),
        prefix: 0,
        gateway: String::new(),
        dns: n.dns.clone(),
        dns_csv: n.dns.join(","),
    };
    match parsed.addressing {
        Addressing::Dhcp => dynamic,
        Addressing::Static { net, gateway } => Network {
            is_static: true,
            ip: net.addr().to_string(),
            netmask: net.netmask().to_string(),
            prefix: net.prefix_len(),
            gateway: gateway.to_string(),
            ..dynamic
        },
    }
}

/// `[proxy]` resolved: the appliance itself is never proxied, and yum and
/// the installer each get the one proxy they take.
fn resolve_proxy(p: &crate::config::ProxySection, hostname: &str) -> Proxy {
    let mut no_proxy: Vec<String> = p.no_proxy.clone();
    for must in ["localhost", "127.0.0.1", hostname] {
        if !no_proxy.iter().any(|n| n == must) {
            no_proxy.push(must.to_string());
        }
    }
    let either = |a: &str, b: &str| if a.is_empty() { b } else { a }.to_string();
    Proxy {
        http: p.http.clone(),
        https: p.https.clone(),
        no_proxy: no_proxy.join(","),
        yum: either(&p.http, &p.https),
        installer: either(&p.https, &p.http),
    }
}

/// `[packages]` resolved: the distro's base packages, then the extra ones
/// not among them; returned whole, then as (`@`groups, rpm packages).
fn resolve_packages(c: &Config) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut packages: Vec<String> = distro::base_packages(c.appliance.distro)
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    for p in &c.packages.extra {
        if !packages.contains(p) {
            packages.push(p.clone());
        }
    }
    let (groups, rpms): (Vec<String>, Vec<String>) =
        packages.iter().cloned().partition(|p| p.starts_with('@'));
    (packages, groups, rpms)
}

/// `[storage]` resolved: the data directory's parts and sizes in MiB.
fn resolve_storage(c: &Config, disk: &Disk) -> Storage {
    let s = &c.storage;
    let data_dir = s.data_dir.clone();
    Storage {
        registry_dir: format!("{data_dir}/registry"),
        docker_dir: format!("{data_dir}/docker"),
        data_dir,
        auto_disk: *disk == Disk::Auto,
        disk: disk.clone(),
        root_size_mb: s.root_size_gb * 1024,
        data_grow: s.data_size_gb == 0,
        data_size_mb: s.data_size_gb * 1024,
    }
}

/// `[packer]` resolved, with Packer's build key when Packer can bake this.
fn packer_settings(v: &Valid, store: &mut SecretStore, facts: &Facts) -> Result<packer::Settings> {
    let mut s = packer::Settings::from_config(v, &facts.out_dir, facts.packer);
    if s.problems.is_empty() {
        let key = store.packer_key(&format!("regbake-packer@{}", v.config.appliance.name))?;
        s.build_public_key = key.public_line;
    }
    Ok(s)
}

fn resolve_vagrant(c: &Config, registry_port: u16) -> Vagrant {
    let v = &c.vagrant;
    let libvirt_prefix = format!("{}-bake-", c.appliance.name);
    Vagrant {
        base_box: v.base_box.clone(),
        provider: v.provider,
        libvirt: v.provider == Provider::Libvirt,
        box_name: v.box_name.clone(),
        box_version: v.box_version.clone(),
        memory: v.memory,
        cpus: v.cpus,
        host_port: match u16::try_from(v.host_port) {
            // Binding a port below 1024 on the host needs root, which
            // neither VirtualBox nor vagrant-libvirt has: 443 → 8443.
            Ok(0) | Err(_) if registry_port < 1024 => registry_port + 8000,
            Ok(0) | Err(_) => registry_port,
            Ok(p) => p,
        },
        libvirt_domain: format!("{libvirt_prefix}default"),
        libvirt_prefix,
        libvirt_driver: match v.accelerator {
            crate::config::VagrantAccelerator::Kvm => "kvm",
            crate::config::VagrantAccelerator::Tcg => "qemu",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_port(toml: &str, registry_port: u16) -> u16 {
        let c = crate::config::parse(&format!("version = 1\n{toml}")).expect("config");
        resolve_vagrant(&c, registry_port).host_port
    }

    #[test]
    fn forwarded_host_port_needs_no_root_by_default() {
        assert_eq!(host_port("", 5000), 5000);
        assert_eq!(host_port("", 443), 8443);
        assert_eq!(host_port("", 80), 8080);
        // Asked for by name: the user may well run Vagrant as root.
        assert_eq!(host_port("[vagrant]\nhost_port = 443\n", 443), 443);
        assert_eq!(host_port("[vagrant]\nhost_port = 9000\n", 443), 9000);
    }
}
