//! Ansible INI inventories (the `inventories/*.ini` the manual procedure
//! keeps): groups, `host key=value …` lines, `[group:vars]` (including
//! `[all:vars]`) and `[group:children]`. Each host gets its merged vars and the
//! typed regbake overrides among them; everything else (`ansible_host`,
//! `ansible_port`, role vars) is ignored.
//!
//! Which vars are regbake's: [`vars::VARS`], also spelled with a `regbake_` prefix
//! (for inventories shared with playbooks that use `ip` for something else):
//! once a var is written with the prefix anywhere in an inventory, its bare
//! name there is the playbook's, never read nor checked.
//! A var is an error, not ignored, when it looks like a regbake var gone
//! wrong: any other `regbake_…` name, a known name in other case or with `-`,
//! a plural, a near miss (edit distance 1 for `gateway`, 2 for `hostname` and
//! `data_size_gb`), or a usual alias of one (`address`, `netmask`, `gw`,
//! `nameservers`, `mac_address`, `data_size`, …).
//!
//! Precedence follows Ansible: `all` vars, then group vars from parents to
//! children (ties by group name), then host vars.

mod groups;
mod lex;
pub mod vars;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::config::{Config, ConfigError};
use groups::{group_depths, host_groups, Group, Merged};
pub use lex::Var;
use lex::{
    check_host_name, is_group_name, is_var_name, parse_header, split_words, strip_port, unquote,
    Section,
};
use vars::{classify, Class, HostVar};
pub use vars::{Ip, Value};

/// A value and the inventory line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub line: usize,
}

/// The typed regbake settings of one host, by var name, each with the line
/// that set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<&'static str, At<Value>>);

impl Overrides {
    pub fn get(&self, var: &str) -> Option<&At<Value>> {
        self.0.get(var)
    }

    /// The line a var was set on.
    pub fn line_of(&self, var: &str) -> Option<usize> {
        self.get(var).map(|a| a.line)
    }

    /// A text var's value (`hostname`, `mac`, …).
    pub fn text(&self, var: &str) -> Option<&str> {
        match self.get(var).map(|a| &a.value) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// Apply every var to a host's config, in the table's order (`ip=dhcp`
    /// clears the gateway before `gateway` sets one).
    pub fn apply(&self, c: &mut Config) {
        for v in vars::VARS {
            if let Some(at) = self.get(v.name) {
                v.apply(c, &at.value);
            }
        }
    }

    fn set(&mut self, var: &HostVar, at: At<Value>) {
        self.0.insert(var.name, at);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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

/// The most an inventory may hold: 100,000 hosts take about 10 MiB.
const MAX_INVENTORY: u64 = 128 << 20;

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file as given, for messages.
    pub file: String,
    /// In the order they first appear.
    pub hosts: Vec<Host>,
}

impl Inventory {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = crate::config::read_input(
            path,
            MAX_INVENTORY,
            "--inventory",
            "an Ansible INI inventory (a regular file of at most 128 MiB)",
            "inventory",
        )?;
        Ok(parse(&path.display().to_string(), &text)?)
    }
}

struct HostDecl {
    name: String,
    line: usize,
    /// The line that gave the host vars, if any did.
    vars_line: Option<usize>,
    vars: Vec<(String, Var)>,
}

/// Where a var is written, for messages.
enum Owner<'a> {
    Host(&'a str),
    Group(&'a str),
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Host(h) => write!(f, "host {h}"),
            Owner::Group(g) => write!(f, "[{g}:vars]"),
        }
    }
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
#[allow(clippy::too_many_lines)] // issue 22: split on another branch
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
                if group.hosts.contains(name) {
                    let first = index.get(name).map_or(line, |&i| hosts[i].line);
                    p.add(
                        line,
                        format!(
                            "duplicate host {name} in group [{g}] (first listed on line {first})"
                        ),
                    );
                    continue;
                }
                group.hosts.insert(name.to_string());
                if let Some(&i) = index.get(name) {
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
                } else {
                    index.insert(name.to_string(), hosts.len());
                    hosts.push(HostDecl {
                        name: name.to_string(),
                        line,
                        vars_line: (!vars.is_empty()).then_some(line),
                        vars,
                    });
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
    let mut typed: HashMap<(usize, String), (&HostVar, Value)> = HashMap::new();
    let all_vars = || {
        hosts
            .iter()
            .flat_map(|h| h.vars.iter().map(move |v| (Owner::Host(&h.name), v)))
            .chain(
                groups
                    .iter()
                    .flat_map(|(g, grp)| grp.vars.iter().map(move |v| (Owner::Group(g), v))),
            )
    };
    // A var written `regbake_ip` anywhere leaves every bare `ip` to the
    // playbooks (README, "Bare metal").
    let prefixed = vars::Prefixed::of(all_vars().map(|(_, (k, _))| k.as_str()));
    for (owner, (key, var)) in all_vars() {
        match classify(key, &prefixed) {
            Class::Ignored => {}
            Class::Known(k) => match k.parse(&var.value) {
                Ok(o) => {
                    typed.insert((var.line, key.clone()), (k, o));
                }
                Err(msg) => p.add(var.line, format!("{owner}: {msg}")),
            },
            Class::Unknown(hint) => {
                let mut msg = format!("{owner}: unknown regbake var {key}");
                if let Some(h) = hint {
                    let _ = write!(msg, " (did you mean {h}?)");
                }
                let _ = write!(msg, "; regbake reads {}", vars::names());
                p.add(var.line, msg);
            }
        }
    }

    let depth = match group_depths(&groups) {
        Ok(d) => d,
        Err(msg) => {
            p.add(0, msg);
            HashMap::new()
        }
    };
    // A failed parse stops here: merging half-read vars only adds noise.
    p.into_result()?;
    let mut p = Problems { file, list: vec![] };

    let listed = host_groups(&groups);
    let mut merged = Merged::new(&groups, &depth);
    let mut out = Vec::with_capacity(hosts.len());
    for decl in &hosts {
        let in_groups = listed
            .get(decl.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut vars: BTreeMap<String, Var> = (*merged.vars(in_groups)).clone();
        for (k, v) in &decl.vars {
            vars.insert(k.clone(), v.clone());
        }
        let mut o = Overrides::default();
        for (k, v) in &vars {
            if let Some((var, value)) = typed.get(&(v.line, k.clone())) {
                o.set(
                    var,
                    At {
                        value: value.clone(),
                        line: v.line,
                    },
                );
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
        if let (Some(mac), Some(line)) = (h.overrides.text("mac"), h.overrides.line_of("mac")) {
            if let Some(prev) = macs.insert(mac, h) {
                p.add(
                    line,
                    format!(
                        "host {}: mac {mac} is also host {}'s (line {})",
                        h.name, prev.name, prev.line
                    ),
                );
            }
        }
        if let Some(At {
            value: Value::Ip(Ip::Static(net)),
            line,
        }) = h.overrides.get("ip")
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

#[cfg(test)]
mod tests;
