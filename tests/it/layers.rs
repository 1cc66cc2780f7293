//! The source tree's layering: each layer uses only the layers below it,
//! and no two source files import each other, directly or around a loop.
//! A scan of `crate::`, `super::` and child-module paths in `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::repo;

/// Top-level modules, bottom first. Equal ranks may not use each other.
const LAYERS: &[(&str, u32)] = &[
    ("util", 0),
    ("tree", 0),
    ("config", 1),
    ("model", 2),
    ("render", 3),
    ("output", 4),
    ("boxes", 5),
    ("probe", 5),
    ("fleet", 5),
    ("bake", 6),
    ("check", 7),
    ("commands", 8),
    ("cli", 9),
];

/// Each source file (but lib.rs and main.rs) as its module path and text
/// without comments.
fn sources() -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<Vec<String>, String>) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
                continue;
            }
            let rel = p
                .strip_prefix(base)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let Some(rel) = rel.strip_suffix(".rs") else {
                continue;
            };
            if rel == "lib" || rel == "main" {
                continue;
            }
            let mut module: Vec<String> = rel.split('/').map(str::to_string).collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&p).expect("read source");
            // Unit tests at the end see their own module through `super`.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(module, code);
        }
    }
    let mut out = BTreeMap::new();
    let src = repo().join("src");
    walk(&src, &src, &mut out);
    out
}

/// The module paths a file names: `crate::a::b`, `super::x`, and
/// `use child::…` of its own child modules.
fn references(
    module: &[String],
    code: &str,
    known: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty())
            .collect()
    };
    let mut found = BTreeSet::new();
    let mut resolve = |path: Vec<String>| {
        // The longest prefix that is a source file.
        for n in (1..=path.len()).rev() {
            if known.contains(&path[..n]) {
                found.insert(path[..n].to_vec());
                return;
            }
        }
    };
    for (i, _) in code.match_indices("crate::") {
        resolve(ident(&code[i + "crate::".len()..]));
    }
    for (i, _) in code.match_indices("super::") {
        let mut path = module[..module.len().saturating_sub(1)].to_vec();
        path.extend(ident(&code[i + "super::".len()..]));
        resolve(path);
    }
    // Paths that start at a child module: `child::…`.
    let children = known
        .iter()
        .filter(|k| k.len() == module.len() + 1 && k.starts_with(module));
    for child in children {
        let name = format!("{}::", child[module.len()]);
        for (i, _) in code.match_indices(&name) {
            let before = code[..i].chars().next_back();
            if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                let mut path = module.to_vec();
                path.extend(ident(&code[i..]));
                resolve(path);
            }
        }
    }
    found.remove(module);
    found
}

#[test]
fn each_layer_uses_only_the_layers_below() {
    let rank: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let files = sources();
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut wrong = vec![];
    for (module, code) in &files {
        let top = module[0].as_str();
        let Some(&mine) = rank.get(top) else {
            wrong.push(format!(
                "src/{}: a top-level module without a layer",
                module.join("/")
            ));
            continue;
        };
        for r in references(module, code, &known) {
            if r[0] == top {
                continue;
            }
            match rank.get(r[0].as_str()) {
                Some(&theirs) if theirs < mine => {}
                _ => wrong.push(format!("{} uses {}", module.join("::"), r.join("::"))),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports across the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_loops_between_files() {
    let files = sources();
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let edges: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = files
        .iter()
        .map(|(m, code)| (m, references(m, code, &known)))
        .collect();
    // Depth-first search; a back edge closes a loop.
    fn visit<'a>(
        m: &'a Vec<String>,
        edges: &'a BTreeMap<&Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<&'a Vec<String>, u8>,
        stack: &mut Vec<&'a Vec<String>>,
        loops: &mut Vec<String>,
    ) {
        state.insert(m, 1);
        stack.push(m);
        for next in edges.get(m).into_iter().flatten() {
            let Some((key, _)) = edges.get_key_value(next) else {
                continue;
            };
            match state.get(key).copied().unwrap_or(0) {
                0 => visit(key, edges, state, stack, loops),
                1 => {
                    let at = stack.iter().position(|s| s == key).unwrap_or(0);
                    let cycle: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
                    loops.push(format!("{} -> {}", cycle.join(" -> "), key.join("::")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m, 2);
    }
    let mut state = BTreeMap::new();
    let mut loops = vec![];
    for m in edges.keys() {
        if !state.contains_key(m) {
            visit(m, &edges, &mut state, &mut vec![], &mut loops);
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

/// No source file, and no integration test file, grows past 600 lines:
/// split it along what it does (tests by topic).
#[test]
fn no_source_or_test_file_over_600_lines() {
    fn walk(dir: &Path, long: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, long);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let n = std::fs::read_to_string(&p).expect("read").lines().count();
                if n > 600 {
                    long.push(format!("{} ({n} lines)", p.display()));
                }
            }
        }
    }
    let mut long = vec![];
    walk(&repo().join("src"), &mut long);
    walk(&repo().join("tests/it"), &mut long);
    assert!(long.is_empty(), "over 600 lines: {long:?}");
}
