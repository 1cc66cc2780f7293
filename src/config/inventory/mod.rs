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
mod problems;
mod read;
pub mod vars;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::config::{BadInput, Config, Problem};
use groups::{group_depths, host_groups, Group, Merged};
pub use lex::Var;
use problems::Problems;
use read::{HostDecl, Read};
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

/// Parse an inventory; `file` names it in messages. Every problem is
/// reported, each with its line: read → type → merge → check.
pub fn parse(file: &str, text: &str) -> Result<Inventory, BadInput> {
    let mut p = Problems { file, list: vec![] };
    let Read { groups, hosts } = read::read(text, &mut p);
    let typed = type_vars(&hosts, &groups, &mut p);
    let depth = match group_depths(&groups) {
        Ok(d) => d,
        Err(msg) => {
            p.add(0, msg);
            HashMap::new()
        }
    };
    // A failed parse stops here: merging half-read vars only adds noise.
    p.into_result()?;
    let out = merge(&hosts, &groups, &depth, &typed);
    let mut p = Problems { file, list: vec![] };
    check_unique(&out, &mut p);
    p.into_result()?;
    if out.is_empty() {
        return Err(BadInput::Inventory {
            at: file.to_string(),
            message: "the inventory lists no hosts".into(),
        });
    }
    Ok(Inventory {
        file: file.to_string(),
        hosts: out,
    })
}

/// Each regbake var typed by where it is written (line and name), checked
/// there once however many hosts it reaches.
type Typed = HashMap<(usize, String), (&'static HostVar, Value)>;

/// The type phase: classify every var of hosts and groups, type regbake's.
fn type_vars(hosts: &[HostDecl], groups: &BTreeMap<String, Group>, p: &mut Problems) -> Typed {
    let mut typed = Typed::new();
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
                Err(why) => p.problem(
                    var.line,
                    Problem::new(format!("{owner}: {key}"), &var.value, why),
                ),
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
    typed
}

/// The merge phase: each host's vars after its groups' (Ansible's
/// precedence), and the typed overrides among them.
fn merge(
    hosts: &[HostDecl],
    groups: &BTreeMap<String, Group>,
    depth: &HashMap<&str, usize>,
    typed: &Typed,
) -> Vec<Host> {
    let listed = host_groups(groups);
    let mut merged = Merged::new(groups, depth);
    let mut out = Vec::with_capacity(hosts.len());
    for decl in hosts {
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
    out
}

/// The check phase: two machines with one MAC or one static address
/// cannot both be right.
fn check_unique(out: &[Host], p: &mut Problems) {
    let mut macs: HashMap<&str, &Host> = HashMap::new();
    let mut ips: HashMap<std::net::Ipv4Addr, &Host> = HashMap::new();
    for h in out {
        if let (Some(mac), Some(line)) = (h.overrides.text("mac"), h.overrides.line_of("mac")) {
            if let Some(prev) = macs.insert(mac, h) {
                p.problem(line, also(h, "mac", mac, prev));
            }
        }
        if let Some(At {
            value: Value::Ip(Ip::Static(net)),
            line,
        }) = h.overrides.get("ip")
        {
            if let Some(prev) = ips.insert(net.addr(), h) {
                p.problem(*line, also(h, "ip", &net.addr().to_string(), prev));
            }
        }
    }
}

/// `host`'s `var` is `value`, as `prev`'s already is.
fn also(host: &Host, var: &str, value: &str, prev: &Host) -> Problem {
    Problem::new(
        format!("host {}: {var}", host.name),
        value,
        format!("also host {}'s (line {})", prev.name, prev.line),
    )
}

#[cfg(test)]
mod tests;
