//! The grammar of each kind of value the config holds (names, host names,
//! URLs, paths, image references, keys…), shared by the validation pass,
//! the inventory and the probe, so each is written down once.

pub(crate) const NAME_HELP: &str = "expected a name of lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters";
pub(crate) const USER_HELP: &str =
    "expected a POSIX user name ([a-z_][a-z0-9_-]*, at most 32 characters) other than root";
pub(crate) const HOST_HELP: &str = "expected an RFC 1123 host name: dot-separated labels of letters, digits and '-', each 1-63 characters not starting or ending with '-', 253 characters at most";
pub(crate) const PORT_HELP: &str = "expected a port number from 1 to 65535";
/// sshd on the appliance.
pub(crate) const SSH_PORT: u32 = 22;
/// Vagrant's first forwarded port for the guest's ssh.
pub(crate) const VAGRANT_SSH_PORT: u32 = 2222;

pub(crate) const URL_HELP: &str = "expected an absolute http:// or https:// URL of ASCII characters (percent-encode others) without spaces, quotes or shell metacharacters";
pub(crate) const BASE_URL_HELP: &str = "expected an absolute http:// or https:// URL of ASCII characters (percent-encode others) without a query or fragment (paths are appended to it), spaces, quotes or shell metacharacters";
pub(crate) const HASH_HELP: &str = "expected a crypt(3) SHA-512 hash like $6$SALT$HASH (salt up to 16 of [./A-Za-z0-9], 86-character hash; make one with `openssl passwd -6`), or \"\" for none; never a plain password";
pub(crate) const PATH_HELP: &str = "expected an absolute path of [A-Za-z0-9._-] components, without '.', '..' or a trailing '/', outside the system directories";

pub(crate) fn is_rel_or_abs_path(s: &str) -> bool {
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
pub(crate) fn is_go_duration(s: &str) -> bool {
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

pub(crate) const ENV_HELP: &str = "expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*) that holds the secret at render time";

pub(crate) fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub(crate) fn is_duration(s: &str) -> bool {
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    ["h", "m", "s"].contains(&unit)
        && !num.is_empty()
        && num.len() <= 6
        && num.chars().all(|c| c.is_ascii_digit())
}

/// An absolute object key prefix like `/registry/prod`.
pub(crate) fn is_key_prefix(s: &str) -> bool {
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

pub(crate) fn is_bucket(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// `$2a$`, `$2b$` or `$2y$`, a two-digit cost from 04 to 31 (what the
/// registry's Go bcrypt verifies), then 53 characters of bcrypt base64.
pub(crate) fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 60
        && (s.starts_with("$2a$") || s.starts_with("$2b$") || s.starts_with("$2y$"))
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && (4..=31).contains(&((b[4] - b'0') * 10 + (b[5] - b'0')))
        && b[6] == b'$'
        && s[7..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
}

pub(crate) fn is_name(s: &str) -> bool {
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

pub(crate) fn is_user_name(s: &str) -> bool {
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
pub(crate) fn is_timezone(s: &str) -> bool {
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
pub(crate) fn is_mac(s: &str) -> bool {
    !s.contains('-') && parse_mac(s).is_some()
}

/// Starting with a letter or digit: pykickstart's argparse drops the value of
/// `--device=--`.
pub(crate) fn is_ifname(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A URL that paths are appended to (repositories) or that names a proxy:
/// no query or fragment, which would end up in the middle.
pub(crate) fn is_base_url(s: &str) -> bool {
    is_url(s) && !s.contains(['?', '#'])
}

/// Characters we never let into a URL: they would need quoting in one of the
/// target languages (shell, kickstart, Ruby, HCL, systemd) and no real
/// repository or proxy address needs them. ASCII only: HCL reads strings
/// normalised to NFC and systemd refuses Unicode noncharacters, so a URL
/// beyond ASCII would not reach Packer or docker as written.
pub(crate) fn is_url(s: &str) -> bool {
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

/// A URL Packer can fetch a disk image from: http(s), or `file://` with an
/// absolute path (a local image), under [`is_url`]'s character rules.
pub(crate) fn is_image_url(s: &str) -> bool {
    if is_url(s) {
        return true;
    }
    let Some(path) = s.strip_prefix("file:///") else {
        return false;
    };
    !path.is_empty()
        && is_url(&format!("http://localhost/{path}"))
        && !path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
}

pub(crate) fn is_no_proxy_entry(s: &str) -> bool {
    let bare = s.strip_prefix('.').unwrap_or(s);
    s == "*"
        || is_hostname(bare)
        || s.parse::<std::net::IpAddr>().is_ok()
        || s.parse::<ipnet::IpNet>().is_ok()
}

pub(crate) fn is_package(s: &str) -> bool {
    let name = s.strip_prefix('@').unwrap_or(s);
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(c))
}

pub(crate) fn is_data_dir(s: &str) -> bool {
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

/// `storage.disk`: a whole disk, by a stable `/dev/disk/by-id/` or
/// `by-path/` name or by its kernel name. Never a partition (the install
/// partitions the disk itself), a file system (`by-uuid`, `by-label` name
/// those), an optical drive, loop or RAM device.
pub(crate) fn is_disk(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("/dev/disk/") {
        let Some((kind, name)) = rest.split_once('/') else {
            return false;
        };
        ["by-id", "by-path"].contains(&kind)
            && !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c))
            && !is_partition_link(name)
    } else {
        !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.as_bytes()[0].is_ascii_lowercase()
            && !["sr", "loop", "ram", "zram", "fd", "nbd"].iter().any(|p| {
                s.strip_prefix(p)
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            && !is_partition_name(s)
    }
}

/// udev names a partition's by-id and by-path links after its disk's, with
/// `-partN` appended; device-mapper's partitions, logical volumes and
/// encrypted volumes, and LVM's physical volumes, have their own prefixes.
fn is_partition_link(name: &str) -> bool {
    name.rsplit_once("-part")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || [
            "dm-uuid-part",
            "dm-uuid-LVM-",
            "dm-uuid-CRYPT-",
            "lvm-pv-uuid-",
        ]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The kernel names a partition after its disk: `sda` → `sda1`, and with a
/// `p` when the disk's name ends in a digit: `nvme0n1` → `nvme0n1p1`.
fn is_partition_name(s: &str) -> bool {
    let base = s.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == s.len() {
        return false;
    }
    let lettered = ["sd", "vd", "xvd", "hd", "dasd", "emcpower"]
        .iter()
        .any(|family| {
            base.strip_prefix(family)
                .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase()))
        });
    let numbered = base
        .strip_suffix('p')
        .is_some_and(|d| d.ends_with(|c: char| c.is_ascii_digit()));
    lettered || numbered
}

/// A path component of a repository name (the Distribution reference
/// grammar): `[a-z0-9]+` runs joined by one `.`, one `_`, `__` or a run of
/// `-`.
pub(super) fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// A repository name without a registry host: path components joined by
/// `/`, 255 characters at most.
pub fn is_repository(s: &str) -> bool {
    s.len() <= 255 && s.split('/').all(is_path_component)
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `[host[:port]/]path[:tag][@sha256:digest]`: the Distribution reference
/// grammar, with the repository and tag rules above (the probe's too).
pub(super) fn is_image_ref(s: &str) -> bool {
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
    if tag.is_some_and(|t| !is_tag(t)) {
        return false;
    }
    // A first component with a '.' or ':', or `localhost`, is a registry host.
    let path = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let (h, port) = host.split_once(':').unwrap_or((host, ""));
            if !(is_hostname(h) && (port.is_empty() || port.parse::<u16>().is_ok())) {
                return false;
            }
            rest
        }
        _ => name,
    };
    is_repository(path)
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

pub(crate) fn is_checksum(s: &str) -> bool {
    let hexlen = |h: &str, n: usize| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit());
    match s.split_once(':') {
        Some(("sha256", h)) => hexlen(h, 64),
        Some(("sha512", h)) => hexlen(h, 128),
        // Packer reads the ISO's sum from a checksum file at this URL.
        Some(("file", url)) => is_url(url),
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

pub(crate) const SSH_KEY_TYPES: &[&str] = &[
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
mod tests;
