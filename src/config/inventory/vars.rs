//! The host vars regbake reads: one table says each var's name, the config
//! field it sets, how its value is typed and applied, and an example (the
//! README's table is checked against it). Everything else about a var
//! (which line set it, messages, "did you mean") derives from this table.

use std::collections::HashSet;

use ipnet::Ipv4Net;

use crate::config::{parse_mac, Config, NetDevice, NetworkMode};

/// How a host gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip {
    Dhcp,
    Static(Ipv4Net),
}

/// A host var's value, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Ip(Ip),
    List(Vec<String>),
    Number(u64),
}

/// One regbake host var.
pub struct HostVar {
    pub name: &'static str,
    /// The config field it sets, as validation names it.
    pub field: &'static str,
    /// A value as an inventory would write it.
    pub example: &'static str,
    parse: fn(&str) -> Result<Value, String>,
    apply: fn(&mut Config, &Value),
}

impl HostVar {
    /// Type-check a value as written; an error says what was expected.
    /// Strings that end up in the kickstart
    /// (host name, gateway, DNS, disk) are checked later by the config
    /// validation, with the same rules as in regbake.toml.
    pub fn parse(&self, v: &str) -> Result<Value, String> {
        (self.parse)(v)
    }

    pub fn apply(&self, c: &mut Config, v: &Value) {
        (self.apply)(c, v);
    }
}

fn text(v: &str) -> Result<Value, String> {
    Ok(Value::Text(v.to_string()))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        _ => String::new(),
    }
}

/// The host vars, in the README's order.
pub const VARS: &[HostVar] = &[
    HostVar {
        name: "hostname",
        field: "appliance.hostname",
        example: "reg1.example.com",
        parse: text,
        apply: |c, v| c.appliance.hostname = as_text(v),
    },
    HostVar {
        name: "ip",
        field: "network.address",
        example: "192.0.2.11/24",
        parse: |v| {
            if v.eq_ignore_ascii_case("dhcp") {
                return Ok(Value::Ip(Ip::Dhcp));
            }
            let net: Ipv4Net = v
                .contains('/')
                .then(|| v.parse().ok())
                .flatten()
                .ok_or_else(|| {
                    "bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp".to_string()
                })?;
            Ok(Value::Ip(Ip::Static(net)))
        },
        apply: |c, v| {
            if let Value::Ip(Ip::Static(net)) = v {
                c.network.mode = NetworkMode::Static;
                c.network.address = net.to_string();
            } else {
                c.network.mode = NetworkMode::Dhcp;
                c.network.address.clear();
                c.network.gateway.clear();
            }
        },
    },
    HostVar {
        name: "gateway",
        field: "network.gateway",
        example: "192.0.2.1",
        parse: text,
        apply: |c, v| c.network.gateway = as_text(v),
    },
    HostVar {
        name: "dns",
        field: "network.dns",
        example: "192.0.2.53,192.0.2.54",
        parse: |v| {
            Ok(Value::List(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ))
        },
        apply: |c, v| {
            if let Value::List(l) = v {
                c.network.dns = l.clone();
            }
        },
    },
    HostVar {
        name: "disk",
        field: "storage.disk",
        example: "`auto`, `/dev/disk/by-id/…`, `sda`",
        parse: text,
        apply: |c, v| c.storage.disk = as_text(v),
    },
    HostVar {
        name: "mac",
        field: "network.device",
        example: "52:54:00:12:34:01",
        parse: |v| {
            parse_mac(v).map(Value::Text).ok_or_else(|| {
                "bad MAC address, expected six hex pairs such as 52:54:00:12:34:56".to_string()
            })
        },
        // The machine's MAC names its NIC for anaconda (`network
        // --device=MAC`): with several NICs up, "link" takes whichever has a
        // link first.
        apply: |c, v| {
            if c.network.device == NetDevice::LINK {
                c.network.device = as_text(v);
            }
        },
    },
    HostVar {
        name: "data_size_gb",
        field: "storage.data_size_gb",
        example: "200",
        parse: |v| {
            v.parse()
                .map(Value::Number)
                .map_err(|_| "expected a whole number of GiB (0 = fill the disk)".to_string())
        },
        apply: |c, v| {
            if let Value::Number(n) = v {
                c.storage.data_size_gb = *n;
            }
        },
    },
];

/// The var named `name`.
pub fn var(name: &str) -> Option<&'static HostVar> {
    VARS.iter().find(|v| v.name == name)
}

/// The var that sets config field `path` (`network.dns[0]` → `dns`).
pub fn var_of_field(path: &str) -> Option<&'static HostVar> {
    let field = path.split('[').next().unwrap_or(path);
    VARS.iter().find(|v| v.field == field)
}

/// Names people reach for instead of a known var.
const ALIASES: &[(&str, &str)] = &[
    ("address", "ip"),
    ("ipaddr", "ip"),
    ("ip_address", "ip"),
    ("ipv4", "ip"),
    ("netmask", "ip"),
    ("prefix", "ip"),
    ("gw", "gateway"),
    ("nameserver", "dns"),
    ("nameservers", "dns"),
    ("dns_servers", "dns"),
    ("macaddr", "mac"),
    ("macaddress", "mac"),
    ("mac_address", "mac"),
    ("hwaddr", "mac"),
    ("install_disk", "disk"),
    ("data_size", "data_size_gb"),
    ("data_size_mb", "data_size_gb"),
    ("fqdn", "hostname"),
];

/// What a var name is to regbake.
pub enum Class {
    Known(&'static HostVar),
    Ignored,
    /// Looks like a regbake var gone wrong; maybe the one it meant.
    Unknown(Option<&'static str>),
}

/// The vars an inventory writes with the `regbake_` prefix somewhere (see
/// [`classify`]).
pub struct Prefixed(HashSet<&'static str>);

impl Prefixed {
    pub fn of<'a>(keys: impl Iterator<Item = &'a str>) -> Self {
        Prefixed(
            keys.filter_map(|k| k.strip_prefix("regbake_").and_then(var))
                .map(|v| v.name)
                .collect(),
        )
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// What `key` is to regbake in an inventory that writes the vars in
/// `prefixed` with the `regbake_` prefix: for those, the bare name (and
/// any slip of it) is the playbook's, neither read nor checked, on every
/// host, since a playbook's `ip` may mean anything.
pub fn classify(key: &str, prefixed: &Prefixed) -> Class {
    if let Some(v) = var(key) {
        return if prefixed.contains(v.name) {
            Class::Ignored
        } else {
            Class::Known(v)
        };
    }
    if key.starts_with("ansible_") {
        return Class::Ignored;
    }
    if let Some(rest) = key.strip_prefix("regbake_") {
        return match var(rest) {
            Some(v) => Class::Known(v),
            None => Class::Unknown(closest(rest)),
        };
    }
    match closest(key) {
        Some(k) if prefixed.contains(k) => Class::Ignored,
        Some(k) => Class::Unknown(Some(k)),
        None => Class::Ignored,
    }
}

/// The known var `key` is a slip of, if it is one: another case or `-`, a
/// plural, a usual alias, or a near miss (edit distance 1 for 7-letter
/// names, 2 for longer ones).
fn closest(key: &str) -> Option<&'static str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    if let Some(v) = VARS
        .iter()
        .find(|v| norm == v.name || norm == format!("{}s", v.name))
    {
        return Some(v.name);
    }
    if let Some((_, k)) = ALIASES.iter().find(|(a, _)| *a == norm) {
        return Some(k);
    }
    VARS.iter().map(|v| v.name).find(|k| {
        let max = match k.len() {
            0..=6 => 0,
            7 => 1,
            _ => 2,
        };
        max > 0 && strsim::osa_distance(&norm, k) <= max
    })
}

/// The names regbake reads, for messages.
pub fn names() -> String {
    VARS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}
