//! Ansible INI inventories (the `inventories/*.ini` the manual procedure
//! keeps): groups, `host key=value …` lines, `[group:vars]` (including
//! `[all:vars]`) and `[group:children]`. Each host gets its merged vars and the
//! typed regbake overrides among them; everything else (`ansible_host`,
//! `ansible_port`, role vars) is ignored.
//!
//! Which vars are regbake's: [`KNOWN`], also spelled with a `regbake_` prefix
//! (for inventories shared with playbooks that use `ip` for something else).
//! A var is an error, not ignored, when it looks like a regbake var gone
//! wrong: any other `regbake_…` name, a known name in other case or with `-`,
//! a plural, a near miss (edit distance 1 for `gateway`, 2 for `hostname` and
//! `data_size_gb`), or a usual alias of one (`address`, `netmask`, `gw`,
//! `nameservers`, `mac_address`, `data_size`, …).
//!
//! Precedence follows Ansible: `all` vars, then group vars from parents to
//! children (ties by group name), then host vars.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::config::ConfigError;

/// The host vars regbake reads.
pub const KNOWN: &[&str] = &[
    "hostname",
    "ip",
    "gateway",
    "dns",
    "disk",
    "mac",
    "data_size_gb",
];

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

/// How a host gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip {
    Dhcp,
    Static(Ipv4Net),
}

/// A value and the inventory line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub line: usize,
}

/// The typed regbake settings of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub hostname: Option<At<String>>,
    pub ip: Option<At<Ip>>,
    pub gateway: Option<At<String>>,
    pub dns: Option<At<Vec<String>>>,
    pub disk: Option<At<String>>,
    /// Lowercase, colon-separated.
    pub mac: Option<At<String>>,
    pub data_size_gb: Option<At<u64>>,
}

impl Overrides {
    /// The line a known var was set on.
    pub fn line_of(&self, var: &str) -> Option<usize> {
        match var {
            "hostname" => self.hostname.as_ref().map(|a| a.line),
            "ip" => self.ip.as_ref().map(|a| a.line),
            "gateway" => self.gateway.as_ref().map(|a| a.line),
            "dns" => self.dns.as_ref().map(|a| a.line),
            "disk" => self.disk.as_ref().map(|a| a.line),
            "mac" => self.mac.as_ref().map(|a| a.line),
            "data_size_gb" => self.data_size_gb.as_ref().map(|a| a.line),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// The line that first lists the host.
    pub line: usize,
    /// Every var after merging groups and host vars, regbake's and Ansible's.
    pub vars: BTreeMap<String, Var>,
    pub overrides: Overrides,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file as given, for messages.
    pub file: String,
    /// In the order they first appear.
    pub hosts: Vec<Host>,
}

impl Inventory {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading inventory {}", path.display()))?;
        Ok(parse(&path.display().to_string(), &text)?)
    }
}

#[derive(Default)]
struct Group {
    hosts: Vec<String>,
    children: Vec<String>,
    vars: Vec<(String, Var)>,
}

struct HostDecl {
    name: String,
    line: usize,
    /// The line that gave the host vars, if any did.
    vars_line: Option<usize>,
    vars: Vec<(String, Var)>,
}

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Problems by line, reported together.
struct Problems<'a> {
    file: &'a str,
    list: Vec<(usize, String)>,
}

impl Problems<'_> {
    fn add(&mut self, line: usize, msg: impl Into<String>) {
        self.list.push((line, msg.into()));
    }

    fn into_result(mut self) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            return Ok(());
        }
        self.list.sort_by_key(|(l, _)| *l);
        if let [(line, msg)] = &self.list[..] {
            return Err(ConfigError::Inventory {
                at: format!("{}:{line}", self.file),
                message: msg.clone(),
            });
        }
        let mut message = format!("{} problems:", self.list.len());
        for (line, msg) in &self.list {
            let _ = write!(message, "\n  {}:{line}: {msg}", self.file);
        }
        Err(ConfigError::Inventory {
            at: self.file.to_string(),
            message,
        })
    }
}

/// Parse an inventory; `file` names it in messages. Every problem is
/// reported, each with its line.
pub fn parse(file: &str, text: &str) -> Result<Inventory, ConfigError> {
    let mut p = Problems { file, list: vec![] };
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    groups.insert("all".into(), Group::default());
    groups.insert("ungrouped".into(), Group::default());
    let mut hosts: Vec<HostDecl> = vec![];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut section = Section::Hosts("ungrouped".into());

    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.starts_with('[') {
            match parse_header(trimmed) {
                Ok(s) => {
                    let name = match &s {
                        Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => g.clone(),
                    };
                    groups.entry(name).or_default();
                    section = s;
                }
                Err(msg) => {
                    p.add(line, msg);
                    // Skip what follows until the next good header.
                    section = Section::Vars(String::new());
                }
            }
            continue;
        }
        match &section {
            Section::Vars(g) if g.is_empty() => {}
            Section::Hosts(g) => {
                let tokens = match split_words(trimmed) {
                    Ok(t) => t,
                    Err(msg) => {
                        p.add(line, msg);
                        continue;
                    }
                };
                let Some((first, rest)) = tokens.split_first() else {
                    continue;
                };
                let name = strip_port(first);
                if let Err(msg) = check_host_name(name) {
                    p.add(line, msg);
                    continue;
                }
                if name.contains('[') {
                    p.add(line, format!("host {name}: host ranges are not supported; list each host on its own line"));
                    continue;
                }
                let mut vars = vec![];
                for t in rest {
                    match t.split_once('=') {
                        Some((k, v)) if is_var_name(k) => vars.push((
                            k.to_string(),
                            Var {
                                value: v.to_string(),
                                line,
                            },
                        )),
                        _ => p.add(
                            line,
                            format!(
                                "host {name}: expected key=value after the host name, found {t:?}"
                            ),
                        ),
                    }
                }
                let group = groups.entry(g.clone()).or_default();
                if group.hosts.iter().any(|h| h == name) {
                    let first = index.get(name).map_or(line, |&i| hosts[i].line);
                    p.add(
                        line,
                        format!(
                            "duplicate host {name} in group [{g}] (first listed on line {first})"
                        ),
                    );
                    continue;
                }
                group.hosts.push(name.to_string());
                match index.get(name) {
                    Some(&i) => {
                        let decl = &mut hosts[i];
                        if !vars.is_empty() {
                            if let Some(prev) = decl.vars_line {
                                p.add(
                                    line,
                                    format!("duplicate host {name}: its vars are already given on line {prev}; give them on one line"),
                                );
                                continue;
                            }
                            decl.vars_line = Some(line);
                            decl.vars = vars;
                        }
                    }
                    None => {
                        index.insert(name.to_string(), hosts.len());
                        hosts.push(HostDecl {
                            name: name.to_string(),
                            line,
                            vars_line: (!vars.is_empty()).then_some(line),
                            vars,
                        });
                    }
                }
            }
            Section::Vars(g) => match trimmed.split_once('=') {
                Some((k, v)) if is_var_name(k.trim()) => {
                    let value = unquote(v.trim());
                    groups
                        .entry(g.clone())
                        .or_default()
                        .vars
                        .push((k.trim().to_string(), Var { value, line }));
                }
                _ => p.add(
                    line,
                    format!("[{g}:vars]: expected key=value, found {trimmed:?}"),
                ),
            },
            Section::Children(g) => {
                let child = trimmed.split_whitespace().next().unwrap_or_default();
                if !is_group_name(child) || trimmed.split_whitespace().count() > 1 {
                    p.add(
                        line,
                        format!("[{g}:children]: expected one group name, found {trimmed:?}"),
                    );
                } else if child == g || child == "all" {
                    p.add(
                        line,
                        format!("[{g}:children]: group {child} cannot be a child of {g}"),
                    );
                } else {
                    groups.entry(child.to_string()).or_default();
                    groups
                        .entry(g.clone())
                        .or_default()
                        .children
                        .push(child.to_string());
                }
            }
        }
    }

    // Every regbake var is checked where it is written, once.
    let mut typed: HashMap<(usize, String), Override> = HashMap::new();
    let all_vars = hosts
        .iter()
        .flat_map(|h| h.vars.iter().map(move |v| (format!("host {}", h.name), v)))
        .chain(
            groups
                .iter()
                .flat_map(|(g, grp)| grp.vars.iter().map(move |v| (format!("[{g}:vars]"), v))),
        );
    for (owner, (key, var)) in all_vars {
        match classify(key) {
            Class::Ignored => {}
            Class::Known(k) => match typed_value(k, &var.value) {
                Ok(o) => {
                    typed.insert((var.line, key.clone()), o);
                }
                Err(msg) => p.add(var.line, format!("{owner}: {msg}")),
            },
            Class::Unknown(hint) => {
                let mut msg = format!("{owner}: unknown regbake var {key}");
                if let Some(h) = hint {
                    let _ = write!(msg, " (did you mean {h}?)");
                }
                let _ = write!(msg, "; regbake reads {}", KNOWN.join(", "));
                p.add(var.line, msg);
            }
        }
    }

    let depth = match group_depths(&groups) {
        Ok(d) => d,
        Err(msg) => {
            p.add(0, msg);
            BTreeMap::new()
        }
    };
    // A failed parse stops here: merging half-read vars only adds noise.
    p.into_result()?;
    let mut p = Problems { file, list: vec![] };

    let parents = parent_map(&groups);
    let mut out = Vec::with_capacity(hosts.len());
    for decl in &hosts {
        let mut member: BTreeSet<&str> = BTreeSet::new();
        member.insert("all");
        let mut stack: Vec<&str> = groups
            .iter()
            .filter(|(_, g)| g.hosts.contains(&decl.name))
            .map(|(n, _)| n.as_str())
            .collect();
        while let Some(g) = stack.pop() {
            if member.insert(g) {
                if let Some(ps) = parents.get(g) {
                    stack.extend(ps.iter().copied());
                }
            }
        }
        let mut ordered: Vec<&str> = member.into_iter().collect();
        ordered.sort_by_key(|g| (depth.get(*g).copied().unwrap_or(0), *g));
        let mut vars: BTreeMap<String, Var> = BTreeMap::new();
        for g in ordered {
            if let Some(grp) = groups.get(g) {
                for (k, v) in &grp.vars {
                    vars.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &decl.vars {
            vars.insert(k.clone(), v.clone());
        }
        let mut o = Overrides::default();
        for (k, v) in &vars {
            let Some(t) = typed.get(&(v.line, k.clone())) else {
                continue;
            };
            let line = v.line;
            match t.clone() {
                Override::Hostname(s) => o.hostname = Some(At { value: s, line }),
                Override::Ip(ip) => o.ip = Some(At { value: ip, line }),
                Override::Gateway(s) => o.gateway = Some(At { value: s, line }),
                Override::Dns(d) => o.dns = Some(At { value: d, line }),
                Override::Disk(s) => o.disk = Some(At { value: s, line }),
                Override::Mac(m) => o.mac = Some(At { value: m, line }),
                Override::DataSize(n) => o.data_size_gb = Some(At { value: n, line }),
            }
        }
        out.push(Host {
            name: decl.name.clone(),
            line: decl.line,
            vars,
            overrides: o,
        });
    }

    // Two machines with one MAC or one static address cannot both be right.
    let mut macs: HashMap<&str, &Host> = HashMap::new();
    let mut ips: HashMap<std::net::Ipv4Addr, &Host> = HashMap::new();
    for h in &out {
        if let Some(m) = &h.overrides.mac {
            if let Some(prev) = macs.insert(&m.value, h) {
                p.add(
                    m.line,
                    format!(
                        "host {}: mac {} is also host {}'s (line {})",
                        h.name, m.value, prev.name, prev.line
                    ),
                );
            }
        }
        if let Some(At {
            value: Ip::Static(net),
            line,
        }) = &h.overrides.ip
        {
            if let Some(prev) = ips.insert(net.addr(), h) {
                p.add(
                    *line,
                    format!(
                        "host {}: ip {} is also host {}'s (line {})",
                        h.name,
                        net.addr(),
                        prev.name,
                        prev.line
                    ),
                );
            }
        }
    }
    p.into_result()?;
    if out.is_empty() {
        return Err(ConfigError::Inventory {
            at: file.to_string(),
            message: "the inventory lists no hosts".into(),
        });
    }
    Ok(Inventory {
        file: file.to_string(),
        hosts: out,
    })
}

fn parse_header(s: &str) -> Result<Section, String> {
    // A trailing comment is allowed after the closing bracket.
    let Some(close) = s.find(']') else {
        return Err(format!(
            "unterminated section header {s:?}: expected [group], [group:vars] or [group:children]"
        ));
    };
    let after = s[close + 1..].trim();
    if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
        return Err(format!("unexpected text {after:?} after section header"));
    }
    let inner = &s[1..close];
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if !is_group_name(name) {
        return Err(format!(
            "bad group name {name:?} in section header: expected letters, digits, '_', '-' and '.'"
        ));
    }
    match kind {
        None => Ok(Section::Hosts(name.into())),
        Some("vars") => Ok(Section::Vars(name.into())),
        Some("children") => Ok(Section::Children(name.into())),
        Some(k) => Err(format!(
            "unknown section type [{name}:{k}]: expected :vars or :children"
        )),
    }
}

fn is_group_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn is_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// `host:2222` names `host` (Ansible's port shorthand).
fn strip_port(s: &str) -> &str {
    match s.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => s,
    }
}

/// Host names become file names (`out/kickstart/HOST.ks`) and URL paths.
fn check_host_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c));
    if ok || s.contains('[') {
        Ok(())
    } else {
        Err(format!(
            "host name {s:?} is not a safe file name: expected letters, digits, '.', '_' and '-', starting with a letter or digit"
        ))
    }
}

/// Split a host line like a POSIX shell would (Ansible uses `shlex`):
/// whitespace separates words, quotes group, `#` at a word start comments.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `[group:vars]` values: the rest of the line, without matching outer quotes.
fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

enum Class {
    Known(&'static str),
    Ignored,
    Unknown(Option<&'static str>),
}

fn classify(key: &str) -> Class {
    if let Some(k) = KNOWN.iter().find(|k| **k == key) {
        return Class::Known(k);
    }
    if key.starts_with("ansible_") {
        return Class::Ignored;
    }
    if let Some(rest) = key.strip_prefix("regbake_") {
        return match KNOWN.iter().find(|k| **k == rest) {
            Some(k) => Class::Known(k),
            None => Class::Unknown(closest(rest)),
        };
    }
    match closest(key) {
        Some(k) => Class::Unknown(Some(k)),
        None => Class::Ignored,
    }
}

/// The known var `key` is a slip of, if it is one.
fn closest(key: &str) -> Option<&'static str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    for k in KNOWN {
        if norm == *k || norm == format!("{k}s") {
            return Some(k);
        }
    }
    if let Some((_, k)) = ALIASES.iter().find(|(a, _)| *a == norm) {
        return Some(k);
    }
    KNOWN.iter().copied().find(|k| {
        let max = match k.len() {
            0..=6 => 0,
            7 => 1,
            _ => 2,
        };
        max > 0 && edit_distance(&norm, k) <= max
    })
}

/// Levenshtein distance with adjacent transpositions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[derive(Debug, Clone)]
enum Override {
    Hostname(String),
    Ip(Ip),
    Gateway(String),
    Dns(Vec<String>),
    Disk(String),
    Mac(String),
    DataSize(u64),
}

/// Type-check one known var. Strings that end up in the kickstart (host
/// name, gateway, DNS, disk) are checked later by the config validation, with
/// the same rules as in regbake.toml.
fn typed_value(key: &str, v: &str) -> Result<Override, String> {
    Ok(match key {
        "hostname" => Override::Hostname(v.to_string()),
        "ip" => {
            if v.eq_ignore_ascii_case("dhcp") {
                Override::Ip(Ip::Dhcp)
            } else {
                let net: Ipv4Net = v
                    .contains('/')
                    .then(|| v.parse().ok())
                    .flatten()
                    .ok_or_else(|| {
                        format!("ip={v}: bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp")
                    })?;
                Override::Ip(Ip::Static(net))
            }
        }
        "gateway" => Override::Gateway(v.to_string()),
        "dns" => Override::Dns(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        "disk" => Override::Disk(v.to_string()),
        "mac" => Override::Mac(parse_mac(v).ok_or_else(|| {
            format!("mac={v}: bad MAC address, expected six hex pairs such as 52:54:00:12:34:56")
        })?),
        "data_size_gb" => Override::DataSize(v.parse().map_err(|_| {
            format!("data_size_gb={v}: expected a whole number of GiB (0 = fill the disk)")
        })?),
        _ => return Err(format!("{key}: not a regbake var")),
    })
}

/// Shared with the config's `network.device` check.
pub use crate::config::parse_mac;

fn parent_map(groups: &BTreeMap<String, Group>) -> HashMap<&str, Vec<&str>> {
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, g) in groups {
        for c in &g.children {
            parents.entry(c.as_str()).or_default().push(name.as_str());
        }
    }
    parents
}

/// Each group's depth below `all` (the longest parent chain), for var
/// precedence; a cycle is an error.
fn group_depths(groups: &BTreeMap<String, Group>) -> Result<BTreeMap<String, usize>, String> {
    fn visit(
        g: &str,
        parents: &HashMap<&str, Vec<&str>>,
        memo: &mut BTreeMap<String, usize>,
        path: &mut Vec<String>,
    ) -> Result<usize, String> {
        if let Some(d) = memo.get(g) {
            return Ok(*d);
        }
        if path.iter().any(|p| p == g) {
            path.push(g.to_string());
            return Err(format!(
                "group cycle in [..:children]: {}",
                path.join(" > ")
            ));
        }
        path.push(g.to_string());
        let mut depth = usize::from(g != "all");
        for p in parents.get(g).into_iter().flatten() {
            depth = depth.max(visit(p, parents, memo, path)? + 1);
        }
        path.pop();
        memo.insert(g.to_string(), depth);
        Ok(depth)
    }
    let parents = parent_map(groups);
    let mut memo = BTreeMap::new();
    for g in groups.keys() {
        visit(g, &parents, &mut memo, &mut vec![])?;
    }
    Ok(memo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("inv.ini", text).unwrap_err().to_string()
    }

    #[test]
    fn groups_vars_children_and_precedence() {
        let inv = parse(
            "inv.ini",
            "# fleet\n\
             [all:vars]\n\
             dns = 10.0.0.2,10.0.0.3\n\
             gateway=10.0.0.1\n\
             [site]\n\
             [site:children]\n\
             web\n\
             [site:vars]\n\
             disk=vda\n\
             [web]\n\
             web1 ansible_host=10.0.0.11 ip=10.0.0.11/24 mac=52-54-00-AA-BB-01 # comment\n\
             web2:2222 ip=dhcp hostname=\"web2.example.com\" disk='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'\n\
             [web:vars]\n\
             data_size_gb=100\n\
             ansible_user=ansible\n\
             role_thing=anything\n",
        )
        .unwrap();
        assert_eq!(inv.hosts.len(), 2);
        let w1 = &inv.hosts[0];
        assert_eq!(w1.name, "web1");
        assert_eq!(w1.line, 11);
        let o = &w1.overrides;
        assert_eq!(
            o.ip.as_ref().map(|a| &a.value),
            Some(&Ip::Static("10.0.0.11/24".parse().unwrap()))
        );
        assert_eq!(o.mac.as_ref().unwrap().value, "52:54:00:aa:bb:01");
        assert_eq!(o.disk.as_ref().unwrap().value, "vda");
        assert_eq!(o.disk.as_ref().unwrap().line, 9);
        assert_eq!(o.dns.as_ref().unwrap().value, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(o.data_size_gb.as_ref().unwrap().value, 100);
        assert_eq!(w1.vars["ansible_host"].value, "10.0.0.11");
        let w2 = &inv.hosts[1].overrides;
        assert_eq!(inv.hosts[1].name, "web2");
        assert_eq!(w2.ip.as_ref().unwrap().value, Ip::Dhcp);
        assert_eq!(w2.hostname.as_ref().unwrap().value, "web2.example.com");
        assert_eq!(
            w2.disk.as_ref().unwrap().value,
            "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
        );
    }

    #[test]
    fn host_in_two_groups_is_one_host() {
        let inv = parse("inv.ini", "[a]\nh1 ip=10.0.0.5/24\n[b]\nh1\n").unwrap();
        assert_eq!(inv.hosts.len(), 1);
    }

    #[test]
    fn errors_name_line_and_problem() {
        assert_eq!(
            err("[web]\nh1 ip=10.0.0.300/24\n"),
            "inv.ini:2: host h1: ip=10.0.0.300/24: bad CIDR, expected an IPv4 address with its prefix length such as 192.0.2.10/24, or dhcp"
        );
        assert!(
            err("[web]\nh1 ip=10.0.0.3\n").starts_with("inv.ini:2: host h1: ip=10.0.0.3: bad CIDR")
        );
        assert!(err("[web]\nh1\nh1\n").starts_with("inv.ini:3: duplicate host h1"));
        assert!(
            err("[a]\nh1 ip=dhcp\n[b]\nh1 disk=sdb\n").starts_with("inv.ini:4: duplicate host h1")
        );
        assert!(err("[web\nh1\n").starts_with("inv.ini:1: unterminated section header"));
        assert!(err("[web:vas]\n").contains("unknown section type"));
        let e = err("[web]\nh1 gatway=10.0.0.1\n");
        assert!(
            e.starts_with("inv.ini:2: host h1: unknown regbake var gatway (did you mean gateway?)"),
            "{e}"
        );
        assert!(err("[web:vars]\nregbake_disks=sda\n").contains(
            "inv.ini:2: [web:vars]: unknown regbake var regbake_disks (did you mean disk?)"
        ));
        assert!(err("[w]\nh1 IP=10.0.0.1/24\n").contains("did you mean ip?"));
        assert!(err("[w]\nh1 mac_address=52:54:00:00:00:01\n").contains("did you mean mac?"));
        assert!(err("[w]\nh1 mac=52:54:00:00:00\n")
            .contains("inv.ini:2: host h1: mac=52:54:00:00:00: bad MAC"));
        assert!(err("[w]\nh1 data_size_gb=ten\n").contains("whole number"));
        assert!(err("[w]\nh1 a b\n").contains("expected key=value"));
        assert!(err("[w]\nh1 x=\"open\n").contains("unterminated \" quote"));
        assert!(err("[w]\n../x\n").contains("not a safe file name"));
        assert!(err("[a:children]\nb\n[b:children]\na\n").contains("group cycle"));
        let two = err("[w]\nh1 mac=52:54:00:00:00:01\nh2 mac=52:54:00:00:00:01 ip=1.2.3.4/8\nh3 ip=1.2.3.4/8\n");
        assert!(two.starts_with("inv.ini: 2 problems:"), "{two}");
        assert!(
            two.contains("inv.ini:3: host h2: mac 52:54:00:00:00:01 is also host h1's (line 2)"),
            "{two}"
        );
        assert!(
            two.contains("inv.ini:4: host h3: ip 1.2.3.4 is also host h2's (line 3)"),
            "{two}"
        );
        assert_eq!(err("# nothing\n"), "inv.ini: the inventory lists no hosts");
    }

    #[test]
    fn plain_ansible_vars_are_ignored() {
        let inv = parse(
            "inv.ini",
            "[w]\nh1 ansible_host=1.2.3.4 ansible_port=2222 ansible_user=a ansible_become=true http_port=80 disk_count=2 ipv6=::1 macro=1\n",
        )
        .unwrap();
        assert_eq!(inv.hosts[0].overrides, Overrides::default());
    }

    #[test]
    fn regbake_prefix_is_an_alias() {
        let inv = parse("inv.ini", "[w]\nh1 regbake_ip=10.1.0.4/16\n").unwrap();
        assert!(inv.hosts[0].overrides.ip.is_some());
    }
}
