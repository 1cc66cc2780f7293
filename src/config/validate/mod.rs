//! The validation pass: every problem in the config, each with its dotted
//! path, the bad value and what would be accepted, one function per section.
//! The value grammars are in [`super::grammar`]; values checked here are the
//! ones that end up in shell scripts, kickstart lines, sudoers, YAML and unit
//! files, so the accepted sets are deliberately narrow.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::error::{Problem, Problems};
use crate::config::grammar::{
    check_ssh_public_key, is_base_url, is_box_name, is_checksum, is_data_dir, is_go_duration,
    is_hostname, is_image_url, is_name, is_no_proxy_entry, is_package, is_rel_or_abs_path,
    is_sha512_crypt, is_timezone, is_url, is_user_name, is_version, BASE_URL_HELP, HASH_HELP,
    HOST_HELP, NAME_HELP, PATH_HELP, PORT_HELP, SSH_PORT, URL_HELP, USER_HELP, VAGRANT_SSH_PORT,
};
use crate::config::schema::{Config, Distro, NetworkMode, Provider, Sudo, VagrantAccelerator};
use crate::config::typed::{Addressing, Disk, NetDevice, Parsed};

mod registry;

use registry::registry;

/// A config that passed the validation pass, with what it parsed.
#[derive(Debug, Clone)]
pub struct Valid {
    pub config: Config,
    pub parsed: Parsed,
}

impl Valid {
    /// `config` validated: every problem it has, or it with its parsed values.
    pub fn check(config: Config) -> Result<Self, Vec<Problem>> {
        let parsed = validate(&config)?;
        Ok(Valid { config, parsed })
    }
}

/// Every problem of `c`; without any, the values the pass parsed.
pub fn validate(c: &Config) -> Result<Parsed, Vec<Problem>> {
    let mut p = Problems::default();

    p.check(
        c.version == 1,
        "version",
        c.version,
        "expected 1 (the only config version)",
    );
    appliance(c, &mut p);
    user(c, &mut p);
    let (addressing, device) = network(c, &mut p);
    proxy(c, &mut p);
    repos(c, &mut p);
    packages(c, &mut p);
    let disk = storage(c, &mut p);
    registry(c, &mut p);
    vagrant(c, &mut p);
    packer(c, &mut p);
    if p.0.is_empty() {
        Ok(Parsed {
            addressing,
            device,
            disk,
        })
    } else {
        Err(p.0)
    }
}

/// [appliance]
fn appliance(c: &Config, p: &mut Problems) {
    p.check(
        is_name(&c.appliance.name),
        "appliance.name",
        &c.appliance.name,
        NAME_HELP,
    );
    p.check(
        is_hostname(&c.appliance.hostname),
        "appliance.hostname",
        &c.appliance.hostname,
        HOST_HELP,
    );
    // The kernel keeps at most 64 characters of a host name (HOST_NAME_MAX).
    p.check(
        !is_hostname(&c.appliance.hostname) || c.appliance.hostname.len() <= 64,
        "appliance.hostname",
        &c.appliance.hostname,
        "expected at most 64 characters, the longest host name Linux keeps; put a longer name in registry.tls.sans",
    );
    p.check(
        is_timezone(&c.appliance.timezone),
        "appliance.timezone",
        &c.appliance.timezone,
        "expected a tz database name like UTC or Europe/Paris",
    );
}

/// [user]
fn user(c: &Config, p: &mut Problems) {
    p.check(
        is_user_name(&c.user.name),
        "user.name",
        &c.user.name,
        USER_HELP,
    );
    for (i, key) in c.user.ssh_keys.iter().enumerate() {
        if let Err(why) = check_ssh_public_key(key) {
            p.push(format!("user.ssh_keys[{i}]"), key, &why);
        }
    }
    for (i, f) in c.user.ssh_key_files.iter().enumerate() {
        p.check(
            !f.is_empty() && !f.chars().any(char::is_control),
            format!("user.ssh_key_files[{i}]"),
            f,
            "expected a path to an OpenSSH public key file",
        );
    }
    p.check(
        c.user.password_hash.is_empty() || is_sha512_crypt(&c.user.password_hash),
        "user.password_hash",
        &c.user.password_hash,
        HASH_HELP,
    );
    if c.user.sudo == Sudo::Password && c.user.password_hash.is_empty() {
        p.push(
            "user.sudo",
            "password",
            "sudo = \"password\" needs user.password_hash (the user would have no password to give); use \"nopasswd\" or set a hash",
        );
    }
}

/// [network]: the addressing and the device (placeholders where a
/// problem was found: the config is refused then).
fn network(c: &Config, p: &mut Problems) -> (Addressing, NetDevice) {
    let addressing = if c.network.mode == NetworkMode::Static {
        static_addressing(c, p)
    } else {
        for (field, v) in [
            ("network.address", &c.network.address),
            ("network.gateway", &c.network.gateway),
        ] {
            p.check(
                v.is_empty(),
                field,
                v,
                "only used with network.mode = \"static\"; remove it or set the mode",
            );
        }
        Addressing::Dhcp
    };
    for (i, d) in c.network.dns.iter().enumerate() {
        p.check(
            d.parse::<Ipv4Addr>().is_ok(),
            format!("network.dns[{i}]"),
            d,
            "expected an IPv4 address of a name server",
        );
    }
    let device = c.network.device.parse().unwrap_or_else(|why| {
        p.push("network.device", &c.network.device, why);
        NetDevice::Link
    });
    (addressing, device)
}

/// `network.address` and `network.gateway` with mode = "static".
fn static_addressing(c: &Config, p: &mut Problems) -> Addressing {
    let (address, gateway) = (&c.network.address, &c.network.gateway);
    let Ok(net) = address.parse::<Ipv4Net>() else {
        p.push(
            "network.address",
            address,
            "expected an IPv4 address in CIDR form such as 192.0.2.10/24 (required with mode = \"static\")",
        );
        return Addressing::Dhcp;
    };
    if let Err(why) = host_net(net) {
        p.push("network.address", address, &why);
    }
    match gateway_of(net, gateway) {
        Ok(gw) => Addressing::Static { net, gateway: gw },
        Err(why) => {
            p.push("network.gateway", gateway, &why);
            Addressing::Dhcp
        }
    }
}

/// Whether `net` is a host's address with its prefix length.
fn host_net(net: Ipv4Net) -> Result<(), String> {
    if net.prefix_len() == 0 || net.prefix_len() > 32 {
        return Err("expected an IPv4 address with a prefix length from 1 to 32".into());
    }
    host_address(net, net.addr())
}

/// `text` as the gateway of the host address `net`.
fn gateway_of(net: Ipv4Net, text: &str) -> Result<Ipv4Addr, String> {
    let gw: Ipv4Addr = text
        .parse()
        .map_err(|_| "expected an IPv4 address such as 192.0.2.1".to_string())?;
    if !net.contains(&gw) || gw == net.addr() {
        return Err("expected an IPv4 address inside network.address's subnet, other than the address itself".into());
    }
    host_address(net, gw)?;
    Ok(gw)
}

/// Whether `a` can be a host's address in `net`: unicast, and neither the
/// network's own address nor its broadcast address (subnets up to /30; a /31
/// has neither, RFC 3021).
fn host_address(net: Ipv4Net, a: Ipv4Addr) -> Result<(), String> {
    if a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] >= 240
    {
        return Err(format!(
            "{a} is not a unicast host address: expected an address such as 192.0.2.10"
        ));
    }
    if net.prefix_len() <= 30 && a == net.network() {
        return Err(format!(
            "{a} is the network address of {}: expected a host address inside it",
            net.trunc()
        ));
    }
    if net.prefix_len() <= 30 && a == net.broadcast() {
        return Err(format!(
            "{a} is the broadcast address of {}: expected a host address inside it",
            net.trunc()
        ));
    }
    Ok(())
}

/// [proxy]
fn proxy(c: &Config, p: &mut Problems) {
    if let Some(proxy) = &c.proxy {
        if proxy.http.is_empty() && proxy.https.is_empty() {
            p.push(
                "proxy",
                "{}",
                "expected proxy.http and/or proxy.https; remove the [proxy] section for no proxy",
            );
        }
        for (field, v) in [("proxy.http", &proxy.http), ("proxy.https", &proxy.https)] {
            p.check(v.is_empty() || is_base_url(v), field, v, BASE_URL_HELP);
        }
        for (i, n) in proxy.no_proxy.iter().enumerate() {
            p.check(
                is_no_proxy_entry(n),
                format!("proxy.no_proxy[{i}]"),
                n,
                "expected a host name, domain suffix (.example.com), IP address or CIDR",
            );
        }
    }
}

/// [repos]
fn repos(c: &Config, p: &mut Problems) {
    p.check(
        is_base_url(&c.repos.mirror),
        "repos.mirror",
        &c.repos.mirror,
        BASE_URL_HELP,
    );
    p.check(
        is_base_url(&c.repos.docker_ce),
        "repos.docker_ce",
        &c.repos.docker_ce,
        BASE_URL_HELP,
    );
}

/// Packages that cannot sit beside docker-ce: its runtime, containerd.io,
/// Provides, Obsoletes and Conflicts with runc and containerd
/// (docker/containerd-packaging, rpm/containerd.spec), which podman,
/// buildah and the container-tools sets require; podman-docker replaces
/// docker's own CLI.
const CONFLICTS_WITH_DOCKER: &[&str] = &[
    "runc",
    "containerd",
    "podman",
    "podman-docker",
    "buildah",
    "container-tools",
    "@container-tools",
    "@container-management",
];

/// [packages]
fn packages(c: &Config, p: &mut Problems) {
    for (i, pkg) in c.packages.extra.iter().enumerate() {
        p.check(
            is_package(pkg),
            format!("packages.extra[{i}]"),
            pkg,
            "expected a package name ([A-Za-z0-9][A-Za-z0-9._+-]*) or a group (@name)",
        );
        p.check(
            !CONFLICTS_WITH_DOCKER.contains(&pkg.as_str()),
            format!("packages.extra[{i}]"),
            pkg,
            "not installable beside docker-ce: its containerd.io conflicts with runc and containerd, which podman, buildah and the container-tools sets pull in (podman-docker replaces docker's CLI); the appliance runs its containers with docker, so leave it out",
        );
    }
}

/// [storage]: the disk (a placeholder where a problem was found).
fn storage(c: &Config, p: &mut Problems) -> Disk {
    p.check(
        is_data_dir(&c.storage.data_dir),
        "storage.data_dir",
        &c.storage.data_dir,
        PATH_HELP,
    );
    p.check(
        c.storage.data_size_gb <= 1 << 20,
        "storage.data_size_gb",
        c.storage.data_size_gb,
        "expected a size in GiB up to 1048576, or 0 to grow the data volume to fill the disk",
    );
    p.range(
        "storage.root_size_gb",
        c.storage.root_size_gb,
        4..=1 << 20,
        "expected a size in GiB from 4 (CentOS 7 minimal plus docker) to 1048576",
    );
    c.storage.disk.parse().unwrap_or_else(|why| {
        p.push("storage.disk", &c.storage.disk, why);
        Disk::Auto
    })
}

/// [vagrant]
fn vagrant(c: &Config, p: &mut Problems) {
    p.check(
        is_box_name(&c.vagrant.base_box),
        "vagrant.base_box",
        &c.vagrant.base_box,
        "expected a box name like centos/7",
    );
    p.check(
        is_box_name(&c.vagrant.box_name),
        "vagrant.box_name",
        &c.vagrant.box_name,
        "expected a box name like regbake/registry",
    );
    p.check(
        is_version(&c.vagrant.box_version),
        "vagrant.box_version",
        &c.vagrant.box_version,
        "expected a version of dot-separated numbers like 1.0.0",
    );
    p.range(
        "vagrant.memory",
        c.vagrant.memory,
        512..=1 << 20,
        "expected memory in MiB from 512 to 1048576",
    );
    p.range("vagrant.cpus", c.vagrant.cpus, 1..=256, "expected 1 to 256");
    p.check(
        c.vagrant.host_port <= 65535,
        "vagrant.host_port",
        c.vagrant.host_port,
        PORT_HELP,
    );
    // Vagrant forwards the guest's ssh to 127.0.0.1:2222 (and on).
    p.check(
        ![SSH_PORT, VAGRANT_SSH_PORT].contains(&c.vagrant.host_port),
        "vagrant.host_port",
        c.vagrant.host_port,
        "expected a port other than 22 and 2222 (ssh, and Vagrant's forward of the VM's ssh), or 0 for the registry port",
    );
    // Software emulation is libvirt's (QEMU TCG); VirtualBox has no such mode.
    p.check(
        c.vagrant.accelerator == VagrantAccelerator::Kvm || c.vagrant.provider == Provider::Libvirt,
        "vagrant.accelerator",
        "tcg",
        "expected \"kvm\" with provider = \"virtualbox\" (tcg is for libvirt)",
    );
}

/// [packer]
fn packer(c: &Config, p: &mut Problems) {
    p.check(
        is_url(&c.packer.iso_url),
        "packer.iso_url",
        &c.packer.iso_url,
        URL_HELP,
    );
    p.check(
        is_checksum(&c.packer.iso_checksum),
        "packer.iso_checksum",
        &c.packer.iso_checksum,
        "expected sha256:<64 hex digits>, sha512:<128 hex digits>, or file:<http(s) URL of a checksum file that lists the ISO>",
    );
    p.check(
        is_image_url(&c.packer.image_url),
        "packer.image_url",
        &c.packer.image_url,
        "expected an http(s) URL of a qcow2 cloud image, or file:///PATH of a local one (no spaces, quotes or shell characters)",
    );
    p.check(
        is_checksum(&c.packer.image_checksum),
        "packer.image_checksum",
        &c.packer.image_checksum,
        "expected sha256:<64 hex digits>, sha512:<128 hex digits>, or file:<http(s) URL of a checksum file that lists the image>",
    );
    if c.packer.builders.is_empty() {
        p.push("packer.builders", "[]", "expected at least one builder");
    }
    // Whether the kickstart's volumes fit is checked for `regbake packer`
    // only (render/packer.rs): it does not concern a bare-metal install.
    p.range(
        "packer.disk_size_mb",
        c.packer.disk_size_mb,
        1..=1 << 24,
        "expected a size in MiB from 1 to 16777216",
    );
    if c.appliance.distro == Distro::Centos7 {
        p.range(
            "packer.memory",
            c.packer.memory,
            1024..=1 << 20,
            "expected memory in MiB from 1024 (the CentOS 7 installer's minimum) to 1048576",
        );
    } else {
        p.range(
            "packer.memory",
            c.packer.memory,
            1536..=1 << 20,
            "expected memory in MiB from 1536 (the EL9 and EL10 installers' minimum) to 1048576",
        );
    }
    p.range("packer.cpus", c.packer.cpus, 1..=256, "expected 1 to 256");
    p.check(
        is_rel_or_abs_path(&c.packer.output_dir),
        "packer.output_dir",
        &c.packer.output_dir,
        "expected a relative (to the out dir) or absolute path of [A-Za-z0-9._-] components, without '.', '..' or a trailing '/'",
    );
    p.check(
        c.packer.compression_level <= 9,
        "packer.compression_level",
        c.packer.compression_level,
        "expected a gzip level from 0 (none) to 9 (smallest)",
    );
    p.check(
        is_go_duration(&c.packer.ssh_timeout),
        "packer.ssh_timeout",
        &c.packer.ssh_timeout,
        "expected a duration such as 60m, 1h30m or 900s",
    );
}
