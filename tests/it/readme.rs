//! The README stays true: its example commands run as written, and its two
//! headline commands exist.

use crate::common::{repo, Test};

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// Lines of the README's ```sh blocks.
fn sh_lines(text: &str) -> Vec<String> {
    let mut lines = vec![];
    let mut inside = false;
    for l in text.lines() {
        if l.trim_start().starts_with("```") {
            inside = l.trim() == "```sh" && !inside;
            continue;
        }
        if inside && !l.trim().is_empty() {
            lines.push(l.trim().to_string());
        }
    }
    lines
}

#[test]
fn readme_examples_run() {
    let text = readme();
    let lines = sh_lines(&text);
    assert!(lines.len() >= 3, "no examples found");
    let mut t = Test::new();
    for line in lines {
        let words = shlex::split(&line).expect("shell words");
        assert_eq!(
            words[0], "regbake",
            "README example is not a regbake command: {line}"
        );
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        t = t.args(&args);
        t.success();
    }
}

#[test]
fn readme_names_the_render_and_test_commands() {
    let text = readme();
    assert!(text.contains("    cargo run --release -- render\n"));
    assert!(text.contains("    scripts/test\n"));
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.contains("exec scripts/test"),
        ".ci/run must run the README's test command"
    );
    // The render command is `regbake render` with the embedded defaults.
    let t = Test::new().args(&["render"]);
    t.success();
    assert!(t.path().join("out/kickstart/ks.cfg").is_file());
}

#[test]
fn readme_error_example_matches_the_real_message() {
    let text = readme();
    let t = Test::new()
        .config("version = 1\n[registry]\nport = 70000\n")
        .args(&["render"]);
    let o = t.status(2).check();
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("registry.port"))
        .expect("a registry.port line")
        .trim()
        .to_string();
    assert!(
        text.contains(&line),
        "README shows a different message than:\n{line}"
    );
}

/// The README's table of inventory vars is the one in the code:
/// each var, in order, with the config field it sets and its example.
#[test]
fn readme_lists_the_inventory_vars() {
    let text = readme();
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("| var | sets | example |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let vars = regbake::config::inventory::vars::VARS;
    assert_eq!(rows.len(), vars.len(), "{rows:#?}");
    for (row, v) in rows.iter().zip(vars) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells[0], format!("`{}`", v.name), "{row}");
        assert!(
            cells[1].contains(&format!("`{}`", v.field)),
            "{row}: {}",
            v.field
        );
        let example = if v.example.starts_with('`') {
            v.example.to_string()
        } else {
            format!("`{}`", v.example)
        };
        assert_eq!(cells[2], example, "{row}");
    }
}

/// The README's table of distributions is the code's: each distro, in
/// order, with its kickstart version, default ISO, box, Docker repository
/// (at the major) and registry image.
#[test]
fn readme_lists_the_distros() {
    use regbake::config::Distro;
    let text = readme();
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("| distro | kickstart |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), Distro::ALL.len(), "{rows:#?}");
    for (row, d) in rows.iter().zip(Distro::ALL) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells[0], format!("`{}`", d.id()), "{row}");
        assert_eq!(cells[1], format!("`RHEL{}`", d.major()), "{row}");
        assert!(cells[2].starts_with(&format!("`{}`", d.iso_url())), "{row}");
        assert_eq!(cells[3], format!("`{}`", d.base_box()), "{row}");
        assert_eq!(
            cells[4],
            format!("`{}/{}`", d.docker_ce(), d.major()),
            "{row}"
        );
        assert_eq!(cells[5], format!("`{}`", d.registry_image()), "{row}");
        // The mirrors are listed below the table, N for the major.
        let mirror = match d {
            Distro::Centos7 => d.mirror(),
            _ => format!(
                "{}/N",
                d.mirror().trim_end_matches(&format!("/{}", d.major()))
            ),
        };
        assert!(text.contains(&format!("`{mirror}`")), "{mirror}");
    }
}

/// The README's sections: its headings, and its bold run-in paragraphs
/// (`**Fuzzing.** …`), without the closing full stop.
fn sections(text: &str) -> Vec<String> {
    let mut out = vec![];
    for l in text.lines() {
        if l.starts_with('#') {
            out.push(l.trim_start_matches('#').trim().to_string());
        } else if let Some(rest) = l.strip_prefix("**") {
            if let Some((name, _)) = rest.split_once("**") {
                out.push(name.trim_end_matches('.').to_string());
            }
        }
    }
    out
}

/// Every text file under `dir` but the fixtures, by its path.
fn test_files(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.ends_with("tests/fixtures") {
            continue;
        }
        if p.is_dir() {
            test_files(&p, out);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            out.push((p, text));
        }
    }
}

/// A file of the repository (a path out of it, even to a file that is
/// there on this machine, is no doc of the project).
fn in_repo(p: &std::path::Path) -> bool {
    let root = repo().canonicalize().expect("repo");
    p.canonicalize()
        .is_ok_and(|c| c.starts_with(&root) && c.is_file())
}

/// The docs that tests and testbed scripts point to exist: each Markdown
/// file they name (from the repository root, or beside the file), and each
/// README section they name as `README.md,` then the section in double
/// quotes (a comment may wrap it).
#[test]
fn docs_named_by_tests_exist() {
    let known = sections(&readme());
    let mut files = vec![];
    test_files(&repo().join("tests"), &mut files);
    let mut missing = vec![];
    for (path, text) in &files {
        let rel = path.strip_prefix(repo()).unwrap_or(path).display();
        // Comment markers of a wrapped line dropped, so a name may wrap.
        let joined = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                ["//! ", "/// ", "// ", "# "]
                    .iter()
                    .find_map(|m| t.strip_prefix(m))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join(" ");
        let name_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
        for (at, _) in joined.match_indices(".md") {
            if joined[at + 3..].starts_with(name_char) {
                continue;
            }
            let start = joined[..at]
                .rfind(|c: char| !name_char(c))
                .map_or(0, |i| i + 1);
            let name = &joined[start..at + 3];
            if name == ".md" {
                continue;
            }
            let beside = path.parent().map(|d| d.join(name));
            if !in_repo(&repo().join(name)) && !beside.is_some_and(|b| in_repo(&b)) {
                missing.push(format!("{rel}: {name}"));
            }
        }
        // Spelled in parts, so this file does not name a section itself.
        let opening = concat!("README.md", ", ", '"');
        for (at, _) in joined.match_indices(opening) {
            let rest = &joined[at + opening.len()..];
            let section = rest.split('"').next().unwrap_or_default();
            if !known.iter().any(|k| k == section) {
                missing.push(format!("{rel}: README section {section:?}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs named but not there:\n{}",
        missing.join("\n")
    );
}
