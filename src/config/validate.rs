//! The validation pass: every problem in the config, each with its dotted
//! path, the bad value and what would be accepted. Values checked here are the
//! ones that end up in shell scripts, kickstart lines, sudoers, YAML and unit
//! files, so the accepted sets are deliberately narrow.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Backend, Config, NetworkMode, Sudo, TlsMode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: {}", self.path, self.value, self.expected)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, value: impl std::fmt::Debug, expected: &str) {
        let mut value = format!("{value:?}");
        // Keep messages readable even for a huge bad value.
        if value.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|i| value.is_char_boundary(*i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push_str("...");
        }
        self.0.push(Problem {
            path: path.into(),
            value,
            expected: expected.to_string(),
        });
    }

    /// A number that must lie in `allowed`.
    fn range<T>(
        &mut self,
        path: &str,
        value: T,
        allowed: std::ops::RangeInclusive<T>,
        expected: &str,
    ) where
        T: PartialOrd + std::fmt::Display,
    {
        if !allowed.contains(&value) {
            self.push(path, value.to_string(), expected);
        }
    }

    fn check(&mut self, ok: bool, path: impl Into<String>, value: &str, expected: &str) {
        if !ok {
            self.push(path, value, expected);
        }
    }
}

const NAME_HELP: &str = "expected a name of lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters";
const USER_HELP: &str =
    "expected a POSIX user name ([a-z_][a-z0-9_-]*, at most 32 characters) other than root";
const HOST_HELP: &str = "expected an RFC 1123 host name: dot-separated labels of letters, digits and '-', each 1-63 characters not starting or ending with '-', 253 characters at most";
const PORT_HELP: &str = "expected a port number from 1 to 65535";
const URL_HELP: &str = "expected an absolute http:// or https:// URL of ASCII characters (percent-encode others) without spaces, quotes or shell metacharacters";
const HASH_HELP: &str = "expected a crypt(3) SHA-512 hash like $6$SALT$HASH (salt up to 16 of [./A-Za-z0-9], 86-character hash; make one with `openssl passwd -6`), or \"\" for none; never a plain password";
const PATH_HELP: &str = "expected an absolute path of [A-Za-z0-9._-] components, without '.', '..' or a trailing '/', outside the system directories";

pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Problems::default();

    p.check(
        c.version == 1,
        "version",
        &c.version.to_string(),
        "expected 1 (the only config version)",
    );

    // [appliance]
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
    p.check(
        is_timezone(&c.appliance.timezone),
        "appliance.timezone",
        &c.appliance.timezone,
        "expected a tz database name like UTC or Europe/Paris",
    );

    // [user]
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

    // [network]
    if c.network.mode == NetworkMode::Static {
        match c.network.address.parse::<Ipv4Net>() {
            Ok(net) => {
                if net.prefix_len() == 0 || net.prefix_len() > 32 {
                    p.push(
                        "network.address",
                        &c.network.address,
                        "expected an IPv4 address with a prefix length from 1 to 32",
                    );
                }
                match c.network.gateway.parse::<Ipv4Addr>() {
                    Ok(gw) if net.contains(&gw) && gw != net.addr() => {}
                    Ok(_) => p.push(
                        "network.gateway",
                        &c.network.gateway,
                        "expected an IPv4 address inside network.address's subnet, other than the address itself",
                    ),
                    Err(_) => p.push(
                        "network.gateway",
                        &c.network.gateway,
                        "expected an IPv4 address such as 192.0.2.1",
                    ),
                }
            }
            Err(_) => p.push(
                "network.address",
                &c.network.address,
                "expected an IPv4 address in CIDR form such as 192.0.2.10/24 (required with mode = \"static\")",
            ),
        }
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
    }
    for (i, d) in c.network.dns.iter().enumerate() {
        p.check(
            d.parse::<Ipv4Addr>().is_ok(),
            format!("network.dns[{i}]"),
            d,
            "expected an IPv4 address of a name server",
        );
    }
    p.check(
        c.network.device == "link" || is_ifname(&c.network.device) || is_mac(&c.network.device),
        "network.device",
        &c.network.device,
        "expected \"link\" (the first interface with a link), an interface name such as eth0, or a MAC address",
    );

    // [proxy]
    if let Some(proxy) = &c.proxy {
        if proxy.http.is_empty() && proxy.https.is_empty() {
            p.push(
                "proxy",
                "{}",
                "expected proxy.http and/or proxy.https; remove the [proxy] section for no proxy",
            );
        }
        for (field, v) in [("proxy.http", &proxy.http), ("proxy.https", &proxy.https)] {
            p.check(v.is_empty() || is_url(v), field, v, URL_HELP);
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

    // [repos]
    p.check(
        is_url(&c.repos.mirror),
        "repos.mirror",
        &c.repos.mirror,
        URL_HELP,
    );
    p.check(
        is_url(&c.repos.docker_ce),
        "repos.docker_ce",
        &c.repos.docker_ce,
        URL_HELP,
    );

    // [packages]
    for (i, pkg) in c.packages.extra.iter().enumerate() {
        p.check(
            is_package(pkg),
            format!("packages.extra[{i}]"),
            pkg,
            "expected a package name ([A-Za-z0-9][A-Za-z0-9._+-]*) or a group (@name)",
        );
    }

    // [storage]
    p.check(
        is_data_dir(&c.storage.data_dir),
        "storage.data_dir",
        &c.storage.data_dir,
        PATH_HELP,
    );
    p.check(
        c.storage.data_size_gb <= 1 << 20,
        "storage.data_size_gb",
        &c.storage.data_size_gb.to_string(),
        "expected a size in GiB up to 1048576, or 0 to grow the data volume to fill the disk",
    );
    p.range(
        "storage.root_size_gb",
        c.storage.root_size_gb,
        4..=1 << 20,
        "expected a size in GiB from 4 (CentOS 7 minimal plus docker) to 1048576",
    );
    p.check(
        is_disk(&c.storage.disk),
        "storage.disk",
        &c.storage.disk,
        "expected \"auto\" (the kickstart finds the one local, non-removable disk), a /dev/disk/by-id/… (by-path, by-uuid) path, or a disk name such as sda, vda or nvme0n1",
    );

    // [registry]
    p.check(
        is_image_ref(&c.registry.image),
        "registry.image",
        &c.registry.image,
        "expected an image reference such as registry:2 or host:5000/library/registry:2.8.3",
    );
    p.check(
        c.registry.port <= 65535,
        "registry.port",
        &c.registry.port.to_string(),
        "expected a port number from 1 to 65535, or 0 for the default (5000, or 443 with TLS)",
    );
    p.check(
        is_name(&c.registry.container_name),
        "registry.container_name",
        &c.registry.container_name,
        NAME_HELP,
    );
    validate_registry(c, &mut p);
    for (i, san) in c.registry.tls.sans.iter().enumerate() {
        p.check(
            is_hostname(san) || san.parse::<std::net::IpAddr>().is_ok(),
            format!("registry.tls.sans[{i}]"),
            san,
            "expected a DNS name or an IP address",
        );
    }
    p.range(
        "registry.tls.days",
        c.registry.tls.days,
        1..=3650,
        "expected a number of days from 1 to 3650",
    );

    // [vagrant]
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
        &c.vagrant.host_port.to_string(),
        PORT_HELP,
    );

    // [packer]
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
        "expected sha256:<64 hex digits> (or sha512:<128 hex digits>)",
    );
    if c.packer.builders.is_empty() {
        p.push("packer.builders", "[]", "expected at least one builder");
    }
    for (i, b) in c.packer.builders.iter().enumerate() {
        p.check(
            b == "qemu" || b == "virtualbox-iso",
            format!("packer.builders[{i}]"),
            b,
            "expected \"qemu\" or \"virtualbox-iso\"",
        );
    }
    // Whether the kickstart's volumes fit is checked for `regbake packer`
    // only (render/packer.rs): it does not concern a bare-metal install.
    p.range(
        "packer.disk_size_mb",
        c.packer.disk_size_mb,
        1..=1 << 24,
        "expected a size in MiB from 1 to 16777216",
    );
    p.range(
        "packer.memory",
        c.packer.memory,
        1024..=1 << 20,
        "expected memory in MiB from 1024 (the CentOS 7 installer's minimum) to 1048576",
    );
    p.range("packer.cpus", c.packer.cpus, 1..=256, "expected 1 to 256");
    p.check(
        ["kvm", "tcg", "hvf", "whpx", "none"].contains(&c.packer.accelerator.as_str()),
        "packer.accelerator",
        &c.packer.accelerator,
        "expected kvm, tcg (software emulation, works without /dev/kvm), hvf, whpx or none",
    );
    p.check(
        is_rel_or_abs_path(&c.packer.output_dir),
        "packer.output_dir",
        &c.packer.output_dir,
        "expected a relative (to the out dir) or absolute path of [A-Za-z0-9._-] components, without '.', '..' or a trailing '/'",
    );
    p.check(
        c.packer.compression_level <= 9,
        "packer.compression_level",
        &c.packer.compression_level.to_string(),
        "expected a gzip level from 0 (none) to 9 (smallest)",
    );
    p.check(
        is_go_duration(&c.packer.ssh_timeout),
        "packer.ssh_timeout",
        &c.packer.ssh_timeout,
        "expected a duration such as 60m, 1h30m or 900s",
    );

    p.0
}

fn is_rel_or_abs_path(s: &str) -> bool {
    let rest = s.strip_prefix('/').unwrap_or(s);
    !rest.is_empty()
        && s.len() <= 200
        && rest.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// A Go `time.ParseDuration` value limited to hours, minutes and seconds.
fn is_go_duration(s: &str) -> bool {
    let mut digits = 0;
    let mut units = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if "hms".contains(c) && digits > 0 && digits <= 6 {
            digits = 0;
            units += 1;
        } else {
            return false;
        }
    }
    digits == 0 && units > 0 && s.len() <= 20
}

fn validate_registry(c: &Config, p: &mut Problems) {
    let r = &c.registry;
    p.check(
        [0, 2, 3].contains(&r.major),
        "registry.major",
        &r.major.to_string(),
        "expected 2 or 3 (the distribution major version), or 0 to take it from the image tag",
    );
    p.check(
        r.http_secret_env.is_empty() || is_env_name(&r.http_secret_env),
        "registry.http_secret_env",
        &r.http_secret_env,
        ENV_HELP,
    );
    p.check(
        r.upload_purge_age.is_empty() || is_duration(&r.upload_purge_age),
        "registry.upload_purge_age",
        &r.upload_purge_age,
        "expected a duration such as 168h or 30m, or \"\" to keep abandoned uploads",
    );
    p.check(
        (1..=65535).contains(&r.metrics_port) && r.metrics_port != u32::from(r.effective_port()),
        "registry.metrics_port",
        &r.metrics_port.to_string(),
        "expected a port number from 1 to 65535 other than the registry port",
    );

    // TLS files: the paths only; their content is checked when read.
    match r.tls.mode {
        TlsMode::Files => {
            for (field, v, required) in [
                ("registry.tls.cert", &r.tls.cert, true),
                ("registry.tls.key", &r.tls.key, true),
                ("registry.tls.ca", &r.tls.ca, false),
            ] {
                p.check(
                    (!required && v.is_empty()) || (!v.is_empty() && !v.chars().any(char::is_control)),
                    field,
                    v,
                    "expected the path of a PEM file (required with tls.mode = \"files\", except ca)",
                );
            }
        }
        _ => {
            for (field, v) in [
                ("registry.tls.cert", &r.tls.cert),
                ("registry.tls.key", &r.tls.key),
                ("registry.tls.ca", &r.tls.ca),
            ] {
                p.check(
                    v.is_empty(),
                    field,
                    v,
                    "only used with tls.mode = \"files\"",
                );
            }
        }
    }

    // Basic auth.
    if !r.auth.users.is_empty() && r.tls.mode == TlsMode::Off {
        p.push(
            "registry.auth.users",
            format!("{} user(s)", r.auth.users.len()),
            "basic auth needs TLS (the registry sends credentials only over HTTPS): set registry.tls.mode = \"generate\" or \"files\"",
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, u) in r.auth.users.iter().enumerate() {
        let base = format!("registry.auth.users[{i}]");
        p.check(
            !u.name.is_empty()
                && u.name.len() <= 64
                && u.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)),
            format!("{base}.name"),
            &u.name,
            "expected a user name of letters, digits and . _ - @",
        );
        if !seen.insert(u.name.clone()) {
            p.push(
                format!("{base}.name"),
                &u.name,
                "expected each user name once",
            );
        }
        match (u.password_hash.is_empty(), u.password_env.is_empty()) {
            (false, true) => p.check(
                is_bcrypt(&u.password_hash),
                format!("{base}.password_hash"),
                &u.password_hash,
                "expected a bcrypt hash ($2y$, $2a$ or $2b$; the registry accepts bcrypt only), e.g. from `htpasswd -nbB`",
            ),
            (true, false) => p.check(
                is_env_name(&u.password_env),
                format!("{base}.password_env"),
                &u.password_env,
                ENV_HELP,
            ),
            _ => p.push(
                base.clone(),
                &u.name,
                "expected exactly one of password_hash (bcrypt) and password_env",
            ),
        }
    }

    // Storage backend.
    let s = &r.storage;
    if s.backend == Backend::S3 {
        p.check(
            is_bucket(&s.bucket),
            "registry.storage.bucket",
            &s.bucket,
            "expected an S3 bucket name (3-63 of lowercase letters, digits, '.' and '-')",
        );
        p.check(
            !s.region.is_empty()
                && s.region.len() <= 32
                && s.region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "registry.storage.region",
            &s.region,
            "expected a region such as us-east-1 (any value the endpoint accepts for MinIO/Ceph)",
        );
        p.check(
            s.endpoint.is_empty() || is_url(&s.endpoint),
            "registry.storage.endpoint",
            &s.endpoint,
            URL_HELP,
        );
        for (field, v) in [
            ("registry.storage.access_key_env", &s.access_key_env),
            ("registry.storage.secret_key_env", &s.secret_key_env),
        ] {
            p.check(v.is_empty() || is_env_name(v), field, v, ENV_HELP);
        }
        if s.access_key_env.is_empty() != s.secret_key_env.is_empty() {
            p.push(
                "registry.storage.secret_key_env",
                &s.secret_key_env,
                "expected both access_key_env and secret_key_env, or neither (instance credentials)",
            );
        }
        p.check(
            s.root_directory.is_empty() || is_key_prefix(&s.root_directory),
            "registry.storage.root_directory",
            &s.root_directory,
            "expected an absolute key prefix such as /registry",
        );
    } else {
        for (field, v) in [
            ("registry.storage.bucket", &s.bucket),
            ("registry.storage.region", &s.region),
            ("registry.storage.endpoint", &s.endpoint),
            ("registry.storage.access_key_env", &s.access_key_env),
            ("registry.storage.secret_key_env", &s.secret_key_env),
            ("registry.storage.root_directory", &s.root_directory),
        ] {
            p.check(
                v.is_empty(),
                field,
                v,
                "only used with registry.storage.backend = \"s3\"",
            );
        }
    }

    // Pull-through cache.
    if let Some(m) = &r.mirror {
        p.check(
            is_url(&m.remote_url),
            "registry.mirror.remote_url",
            &m.remote_url,
            URL_HELP,
        );
        for (field, v) in [
            ("registry.mirror.username_env", &m.username_env),
            ("registry.mirror.password_env", &m.password_env),
        ] {
            p.check(v.is_empty() || is_env_name(v), field, v, ENV_HELP);
        }
        if m.username_env.is_empty() != m.password_env.is_empty() {
            p.push(
                "registry.mirror.password_env",
                &m.password_env,
                "expected both username_env and password_env, or neither (anonymous pulls)",
            );
        }
    }
}

const ENV_HELP: &str = "expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*) that holds the secret at render time";

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_duration(s: &str) -> bool {
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    ["h", "m", "s"].contains(&unit)
        && !num.is_empty()
        && num.len() <= 6
        && num.chars().all(|c| c.is_ascii_digit())
}

/// An absolute object key prefix like `/registry/prod`.
fn is_key_prefix(s: &str) -> bool {
    s.strip_prefix('/').is_some_and(|rest| {
        s.len() <= 200
            && rest.split('/').all(|x| {
                !x.is_empty()
                    && x != ".."
                    && x != "."
                    && x.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            })
    })
}

fn is_bucket(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// `$2a$`, `$2b$` or `$2y$`, a two-digit cost, then 53 characters of bcrypt base64.
pub(crate) fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 60
        && (s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$"))
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && s[7..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
}

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(crate) fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

fn is_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    s != "root"
        && !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Each part starts with a letter, as every tz database name does: the
/// kickstart's `timezone NAME --isUtc` would take `-x` or `--` for options.
fn is_timezone(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        })
}

/// A MAC address as `aa:bb:…` or `aa-bb-…`, normalised to lowercase with colons.
pub fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| parts.join(":").to_ascii_lowercase())
}

/// Anaconda's `network --device` takes a MAC in the colon form only.
fn is_mac(s: &str) -> bool {
    !s.contains('-') && parse_mac(s).is_some()
}

/// Starting with a letter or digit: pykickstart's argparse drops the value of
/// `--device=--`.
fn is_ifname(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Characters we never let into a URL: they would need quoting in one of the
/// target languages (shell, kickstart, Ruby, HCL, systemd) and no real
/// repository or proxy address needs them. ASCII only: HCL reads strings
/// normalised to NFC and systemd refuses Unicode noncharacters, so a URL
/// beyond ASCII would not reach Packer or docker as written.
fn is_url(s: &str) -> bool {
    if s.is_empty()
        || !s.is_ascii()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'\"`$\\;<>{}|^".contains(c))
    {
        return false;
    }
    match url::Url::parse(s) {
        Ok(u) => (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some(),
        Err(_) => false,
    }
}

fn is_no_proxy_entry(s: &str) -> bool {
    let bare = s.strip_prefix('.').unwrap_or(s);
    s == "*"
        || is_hostname(bare)
        || s.parse::<std::net::IpAddr>().is_ok()
        || s.parse::<ipnet::IpNet>().is_ok()
}

fn is_package(s: &str) -> bool {
    let name = s.strip_prefix('@').unwrap_or(s);
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(c))
}

fn is_data_dir(s: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/var/lib",
        "/var/lib/docker",
        "/var/lib/registry",
        "/var/log",
        "/var/tmp",
    ];
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    !SYSTEM.contains(&s)
        && s.len() <= 200
        && !s.starts_with("/proc/")
        && !s.starts_with("/sys/")
        && !s.starts_with("/dev/")
        && !s.starts_with("/boot/")
        && rest.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

fn is_disk(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("/dev/disk/") {
        let Some((kind, name)) = rest.split_once('/') else {
            return false;
        };
        ["by-id", "by-path", "by-uuid"].contains(&kind)
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c))
    } else {
        !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.as_bytes()[0].is_ascii_lowercase()
    }
}

/// `[host[:port]/]path[:tag][@sha256:digest]` with the conservative character
/// set of the distribution reference grammar.
fn is_image_ref(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return false;
        }
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        if b.is_empty()
            || b.len() > 128
            || !(b[0].is_ascii_alphanumeric() || b[0] == b'_')
            || !b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
        {
            return false;
        }
    }
    let mut parts = name.split('/').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        let host_like = first
            && parts.peek().is_some()
            && (part.contains('.') || part.contains(':') || part == "localhost");
        first = false;
        let ok = if host_like {
            let (h, port) = part.split_once(':').unwrap_or((part, ""));
            is_hostname(h) && (port.is_empty() || port.parse::<u16>().is_ok())
        } else {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
                && part.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !ok {
            return false;
        }
    }
    true
}

pub(crate) fn is_box_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.as_bytes()[0].is_ascii_alphanumeric()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

pub(crate) fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.split('.')
            .all(|p| !p.is_empty() && p.len() <= 9 && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_checksum(s: &str) -> bool {
    let hexlen = |h: &str, n: usize| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit());
    match s.split_once(':') {
        Some(("sha256", h)) => hexlen(h, 64),
        Some(("sha512", h)) => hexlen(h, 128),
        _ => false,
    }
}

/// `$6$[rounds=N$]salt$hash`: salt 1-16 of `./0-9A-Za-z`, hash 86 of the same.
pub(crate) fn is_sha512_crypt(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("$6$") else {
        return false;
    };
    let mut fields: Vec<&str> = rest.split('$').collect();
    if fields.len() == 3 {
        let Some(rounds) = fields[0].strip_prefix("rounds=") else {
            return false;
        };
        if !rounds
            .parse::<u32>()
            .is_ok_and(|r| (1000..=999_999_999).contains(&r))
        {
            return false;
        }
        fields.remove(0);
    }
    let crypt64 = |f: &str| {
        f.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
    };
    fields.len() == 2
        && (1..=16).contains(&fields[0].len())
        && crypt64(fields[0])
        && fields[1].len() == 86
        && crypt64(fields[1])
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key line: `TYPE BASE64 [COMMENT]`, no options, no
/// control characters (a newline would add a second authorized key). The
/// comment may hold anything else: the line reaches authorized_keys only,
/// written as it is.
pub(crate) fn check_ssh_public_key(line: &str) -> Result<(), String> {
    const WHAT: &str = "expected an OpenSSH public key line 'TYPE BASE64 [COMMENT]' with TYPE one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 (or sk-…)";
    if line.chars().any(char::is_control) {
        return Err(format!(
            "{WHAT}; control characters such as newlines are not allowed"
        ));
    }
    let mut parts = line.split(' ');
    let kind = parts.next().unwrap_or_default();
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(WHAT.to_string());
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| format!("{WHAT}; the key body does not decode ({e})"))?;
    if key.algorithm().as_str() != kind {
        return Err(format!("{WHAT}; the body holds a {} key", key.algorithm()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        ] {
            assert!(!is_image_ref(bad), "{bad}");
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
        assert!(
            !is_rel_or_abs_path("../x") && !is_rel_or_abs_path("/") && !is_rel_or_abs_path("a b")
        );
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
        let body =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW";
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
}
