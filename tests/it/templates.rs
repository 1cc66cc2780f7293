//! What the handlebars sources in `templates/` may hold: list joins go
//! through `sh_words`, not `#each … @last`.

use std::path::Path;

use crate::common::repo;

/// Every file under `templates/`, by its path from the repository root,
/// with its text.
pub(crate) fn templates() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("read templates").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                let rel = p.strip_prefix(repo()).expect("under the repo");
                out.push((rel.to_string_lossy().into_owned(), text));
            }
        }
    }
    let mut out = vec![];
    walk(&repo().join("templates"), &mut out);
    out.sort();
    out
}

/// A word list is joined by `{{sh_words list}}` (each item quoted for the
/// shell), not by hand with `{{#unless @last}} {{/unless}}`.
#[test]
fn no_template_joins_a_list_by_hand() {
    let mut found = vec![];
    for (path, text) in templates() {
        for (i, line) in text.lines().enumerate() {
            if line.contains("@last") || line.contains("@first") {
                found.push(format!("{path}:{}: {line}", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use {{{{sh_words …}}}} instead:\n{}",
        found.join("\n")
    );
}
