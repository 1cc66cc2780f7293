//! The read phase: lines into groups (their hosts, children and vars) and
//! host declarations with their own vars, every syntax problem by line.

use std::collections::{BTreeMap, HashMap};

use super::groups::Group;
use super::lex::{
    check_host_name, is_group_name, is_var_name, parse_header, split_words, strip_port, unquote,
    Section, Var,
};
use super::problems::Problems;

pub(super) struct HostDecl {
    pub(super) name: String,
    pub(super) line: usize,
    /// The line that gave the host vars, if any did.
    pub(super) vars_line: Option<usize>,
    pub(super) vars: Vec<(String, Var)>,
}

/// What the lines of an inventory say, before any var is typed.
pub(super) struct Read {
    pub(super) groups: BTreeMap<String, Group>,
    /// In the order they first appear.
    pub(super) hosts: Vec<HostDecl>,
}

/// Read every line of `text`; problems go to `p`.
pub(super) fn read(text: &str, p: &mut Problems) -> Read {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    groups.insert("all".into(), Group::default());
    groups.insert("ungrouped".into(), Group::default());
    let mut r = Reader {
        p,
        read: Read {
            groups,
            hosts: vec![],
        },
        index: HashMap::new(),
        section: Section::Hosts("ungrouped".into()),
    };
    for (i, raw) in text.lines().enumerate() {
        r.line(i + 1, raw.trim());
    }
    r.read
}

struct Reader<'p, 'f> {
    p: &'p mut Problems<'f>,
    read: Read,
    /// Each host's place in `read.hosts`.
    index: HashMap<String, usize>,
    section: Section,
}

impl Reader<'_, '_> {
    fn line(&mut self, line: usize, trimmed: &str) {
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            return;
        }
        if trimmed.starts_with('[') {
            self.header(line, trimmed);
            return;
        }
        // Taken for the line and put back: no line in a section changes it.
        let section = std::mem::replace(&mut self.section, Section::Vars(String::new()));
        match &section {
            Section::Vars(g) if g.is_empty() => {}
            Section::Hosts(g) => self.host_line(g, line, trimmed),
            Section::Vars(g) => self.vars_line(g, line, trimmed),
            Section::Children(g) => self.child_line(g, line, trimmed),
        }
        self.section = section;
    }

    fn header(&mut self, line: usize, trimmed: &str) {
        match parse_header(trimmed) {
            Ok(s) => {
                let name = match &s {
                    Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => g.clone(),
                };
                self.read.groups.entry(name).or_default();
                self.section = s;
            }
            Err(msg) => {
                self.p.add(line, msg);
                // Skip what follows until the next good header.
                self.section = Section::Vars(String::new());
            }
        }
    }

    /// `host key=value …` in `[g]`.
    fn host_line(&mut self, g: &str, line: usize, trimmed: &str) {
        let Some((name, vars)) = self.host_words(line, trimmed) else {
            return;
        };
        let group = self.read.groups.entry(g.to_string()).or_default();
        if group.hosts.contains(&name) {
            let first = self
                .index
                .get(&name)
                .map_or(line, |&i| self.read.hosts[i].line);
            self.p.add(
                line,
                format!("duplicate host {name} in group [{g}] (first listed on line {first})"),
            );
            return;
        }
        group.hosts.insert(name.clone());
        self.declare(name, line, vars);
    }

    /// A host line's name and vars, or `None` after saying what is wrong.
    fn host_words(&mut self, line: usize, trimmed: &str) -> Option<(String, Vec<(String, Var)>)> {
        let tokens = split_words(trimmed)
            .map_err(|msg| self.p.add(line, msg))
            .ok()?;
        let (first, rest) = tokens.split_first()?;
        let name = strip_port(first);
        if let Err(msg) = check_host_name(name) {
            self.p.add(line, msg);
            return None;
        }
        if name.contains('[') {
            self.p.add(
                line,
                format!(
                    "host {name}: host ranges are not supported; list each host on its own line"
                ),
            );
            return None;
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
                _ => self.p.add(
                    line,
                    format!("host {name}: expected key=value after the host name, found {t:?}"),
                ),
            }
        }
        Some((name.to_string(), vars))
    }

    /// A host's first listing, or its vars given on a later one.
    fn declare(&mut self, name: String, line: usize, vars: Vec<(String, Var)>) {
        let Some(&i) = self.index.get(&name) else {
            self.index.insert(name.clone(), self.read.hosts.len());
            self.read.hosts.push(HostDecl {
                name,
                line,
                vars_line: (!vars.is_empty()).then_some(line),
                vars,
            });
            return;
        };
        let decl = &mut self.read.hosts[i];
        if vars.is_empty() {
            return;
        }
        if let Some(prev) = decl.vars_line {
            self.p.add(
                line,
                format!("duplicate host {name}: its vars are already given on line {prev}; give them on one line"),
            );
            return;
        }
        decl.vars_line = Some(line);
        decl.vars = vars;
    }

    /// `key=value` in `[g:vars]`.
    fn vars_line(&mut self, g: &str, line: usize, trimmed: &str) {
        match trimmed.split_once('=') {
            Some((k, v)) if is_var_name(k.trim()) => {
                let value = unquote(v.trim());
                self.read
                    .groups
                    .entry(g.to_string())
                    .or_default()
                    .vars
                    .push((k.trim().to_string(), Var { value, line }));
            }
            _ => self.p.add(
                line,
                format!("[{g}:vars]: expected key=value, found {trimmed:?}"),
            ),
        }
    }

    /// A child group in `[g:children]`.
    fn child_line(&mut self, g: &str, line: usize, trimmed: &str) {
        let child = trimmed.split_whitespace().next().unwrap_or_default();
        if !is_group_name(child) || trimmed.split_whitespace().count() > 1 {
            self.p.add(
                line,
                format!("[{g}:children]: expected one group name, found {trimmed:?}"),
            );
        } else if child == g || child == "all" {
            self.p.add(
                line,
                format!("[{g}:children]: group {child} cannot be a child of {g}"),
            );
        } else {
            self.read.groups.entry(child.to_string()).or_default();
            self.read
                .groups
                .entry(g.to_string())
                .or_default()
                .children
                .push(child.to_string());
        }
    }
}
