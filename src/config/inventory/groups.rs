//! Groups: `[group:children]` nesting and the var precedence it gives.
//!
//! Without recursion, and linear in the inventory for the shapes
//! inventories have: each group and child link is looked at a bounded
//! number of times, and the ancestors of a host's groups are walked once
//! per distinct set of groups hosts are listed in (not once per host, nor
//! by scanning every group per host), so one group per host and a nesting
//! 50,000 deep cost about their lines. (Hosts listed at every level of a
//! deep nesting still cost their ancestors each.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use super::lex::Var;

#[derive(Default)]
pub(super) struct Group {
    /// Its hosts (a set: a group may list thousands).
    pub(super) hosts: HashSet<String>,
    pub(super) children: Vec<String>,
    pub(super) vars: Vec<(String, Var)>,
}

// Work done, counted in tests to show it grows with the inventory, not
// with hosts times groups.
#[cfg(test)]
thread_local!(pub(super) static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });

fn step() {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + 1));
}

pub(super) fn parent_map(groups: &BTreeMap<String, Group>) -> HashMap<&str, Vec<&str>> {
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, g) in groups {
        for c in &g.children {
            step();
            parents.entry(c.as_str()).or_default().push(name.as_str());
        }
    }
    parents
}

/// Each group's depth below `all` (the longest parent chain), for var
/// precedence; a cycle is an error that names one.
pub(super) fn group_depths(
    groups: &BTreeMap<String, Group>,
) -> Result<HashMap<&str, usize>, String> {
    let parents = parent_map(groups);
    // Kahn's order: a group's depth is known once all its parents' are.
    let mut waiting: HashMap<&str, usize> = groups
        .keys()
        .map(|g| (g.as_str(), parents.get(g.as_str()).map_or(0, Vec::len)))
        .collect();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut ready: Vec<&str> = vec![];
    for g in groups.keys() {
        step();
        if waiting[g.as_str()] == 0 {
            depth.insert(g, usize::from(g != "all"));
            ready.push(g);
        }
    }
    let mut done = 0;
    while let Some(g) = ready.pop() {
        done += 1;
        let d = depth[g];
        for c in groups.get(g).map(|g| &g.children).into_iter().flatten() {
            step();
            let c = c.as_str();
            let cd = depth.entry(c).or_insert(0);
            *cd = (*cd).max(d + 1);
            if let Some(w) = waiting.get_mut(c) {
                *w -= 1;
                if *w == 0 {
                    ready.push(c);
                }
            }
        }
    }
    if done == groups.len() {
        return Ok(depth);
    }
    Err(cycle(groups, &parents, &waiting))
}

/// A cycle among the groups Kahn's order could not reach (each of them has
/// a parent among them), as "a > b > a" from child to parent.
fn cycle(
    groups: &BTreeMap<String, Group>,
    parents: &HashMap<&str, Vec<&str>>,
    waiting: &HashMap<&str, usize>,
) -> String {
    let stuck = |g: &str| waiting.get(g).is_some_and(|w| *w > 0);
    let mut path: Vec<&str> = vec![];
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut g = groups.keys().map(String::as_str).find(|g| stuck(g));
    while let Some(cur) = g {
        if let Some(&i) = at.get(cur) {
            let mut names: Vec<&str> = path[i..].to_vec();
            names.push(cur);
            let n = names.len() - 1;
            // Thousands of names help no one.
            if n > 8 {
                let mut short = names[..4].join(" > ");
                short.push_str(&format!(
                    " > … > {} ({n} groups)",
                    names[n - 1..].join(" > ")
                ));
                return format!("group cycle in [..:children]: {short}");
            }
            return format!("group cycle in [..:children]: {}", names.join(" > "));
        }
        at.insert(cur, path.len());
        path.push(cur);
        g = parents
            .get(cur)
            .and_then(|ps| ps.iter().copied().filter(|p| stuck(p)).min());
    }
    "group cycle in [..:children]".to_string()
}

/// Each host's groups as listed (not their parents), in name order: one
/// pass over the groups.
pub(super) fn host_groups(groups: &BTreeMap<String, Group>) -> HashMap<&str, Vec<&str>> {
    let mut of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, g) in groups {
        for h in &g.hosts {
            step();
            of.entry(h.as_str()).or_default().push(name.as_str());
        }
    }
    of
}

/// The group vars of hosts listed in some groups: `all`'s, then each group's
/// from parents to children (ties by name), later ones winning. Hosts
/// listed in the same groups share one merge.
pub(super) struct Merged<'a> {
    groups: &'a BTreeMap<String, Group>,
    parents: HashMap<&'a str, Vec<&'a str>>,
    depth: &'a HashMap<&'a str, usize>,
    done: HashMap<Vec<&'a str>, Rc<BTreeMap<String, Var>>>,
}

impl<'a> Merged<'a> {
    pub(super) fn new(
        groups: &'a BTreeMap<String, Group>,
        depth: &'a HashMap<&'a str, usize>,
    ) -> Self {
        Merged {
            groups,
            parents: parent_map(groups),
            depth,
            done: HashMap::new(),
        }
    }

    /// The merged vars for a host listed in `listed`.
    pub(super) fn vars(&mut self, listed: &[&'a str]) -> Rc<BTreeMap<String, Var>> {
        step();
        if let Some(v) = self.done.get(listed) {
            return v.clone();
        }
        let mut member: HashSet<&str> = HashSet::from(["all"]);
        let mut stack: Vec<&str> = listed.to_vec();
        while let Some(g) = stack.pop() {
            step();
            if member.insert(g) {
                if let Some(ps) = self.parents.get(g) {
                    stack.extend(ps.iter().copied());
                }
            }
        }
        let mut ordered: Vec<&str> = member.into_iter().collect();
        ordered.sort_by_key(|g| (self.depth.get(*g).copied().unwrap_or(0), *g));
        let mut vars = BTreeMap::new();
        for g in ordered {
            for (k, v) in self.groups.get(g).map(|g| &g.vars).into_iter().flatten() {
                step();
                vars.insert(k.clone(), v.clone());
            }
        }
        let vars = Rc::new(vars);
        self.done.insert(listed.to_vec(), vars.clone());
        vars
    }
}
