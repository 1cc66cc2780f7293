//! Groups: `[group:children]` nesting and the var precedence it gives.

use std::collections::{BTreeMap, HashMap};

use super::lex::Var;

#[derive(Default)]
pub(super) struct Group {
    /// Its hosts (a set: a group may list thousands).
    pub(super) hosts: std::collections::HashSet<String>,
    pub(super) children: Vec<String>,
    pub(super) vars: Vec<(String, Var)>,
}

pub(super) fn parent_map(groups: &BTreeMap<String, Group>) -> HashMap<&str, Vec<&str>> {
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
pub(super) fn group_depths(
    groups: &BTreeMap<String, Group>,
) -> Result<BTreeMap<String, usize>, String> {
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
