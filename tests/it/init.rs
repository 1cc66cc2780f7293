//! `regbake init` shows every setting: the file it writes has each key of the
//! resolved config, active with its default or as a commented example, and
//! each example block, uncommented on its own, is a config that passes
//! `regbake check` and sets what it says.
//!
//! The file's convention: `#key = value` (no space after `#`, and a lone
//! `#` inside a block) is an example line; `# …` is a note.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::{check_all, require_tool, Test};

/// What a block needs besides itself, as its note says: an active key of a
/// table set to another value. (A key of the block, table, key, value.)
const NEEDS: &[(&str, &str, &str, &str)] = &[
    ("network.address", "network", "mode", "\"static\""),
    ("registry.tls.cert", "registry.tls", "mode", "\"files\""),
    (
        "registry.auth.users",
        "registry.tls",
        "mode",
        "\"generate\"",
    ),
];

/// Where the TLS example's files are; the test puts its own there.
const PKI: &str = "/etc/pki/registry/";

/// The file `regbake init` writes.
fn init_file() -> String {
    let t = Test::new().args(&["init"]);
    t.success();
    t.read("regbake.toml")
}

/// An example line's TOML (`#x` → `x`, `#` → ``); `None` for other lines.
fn example(line: &str) -> Option<&str> {
    line.strip_prefix('#').filter(|rest| !rest.starts_with(' '))
}

/// One line as TOML sees it once uncommented: a table header, a key, or
/// neither.
enum Toml<'a> {
    Table(&'a str, bool),
    Key(&'a str),
    Other,
}

fn toml_line(code: &str) -> Toml<'_> {
    let code = code.trim();
    if let Some(name) = code.strip_prefix("[[").and_then(|r| r.split_once("]]")) {
        Toml::Table(name.0.trim(), true)
    } else if let Some(name) = code.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Toml::Table(name.0.trim(), false)
    } else if let Some((key, _)) = code.split_once('=') {
        Toml::Key(key.trim())
    } else {
        Toml::Other
    }
}

/// The dotted path of a key in a table.
fn dotted(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// A run of example lines: their indexes and the keys they set (an array
/// of tables counts as its key).
struct Block {
    lines: Vec<usize>,
    keys: Vec<String>,
}

/// The table of each line, every key the file names (active or example),
/// and the example blocks.
fn scan(text: &str) -> (Vec<String>, BTreeSet<String>, Vec<Block>) {
    let mut table = String::new();
    let mut tables = vec![];
    let mut keys = BTreeSet::new();
    let mut blocks: Vec<Block> = vec![];
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let ex = example(line);
        let code = match ex {
            Some(code) => Some(code),
            None if line.starts_with('#') => None,
            None => Some(line),
        };
        if let Some(code) = code {
            match toml_line(code) {
                Toml::Table(name, array) => {
                    table = name.to_string();
                    if array {
                        keys.insert(table.clone());
                    }
                }
                Toml::Key(key) => {
                    keys.insert(dotted(&table, key));
                }
                Toml::Other => {}
            }
        }
        tables.push(table.clone());
        match ex {
            Some(code) => {
                if !in_block {
                    blocks.push(Block {
                        lines: vec![],
                        keys: vec![],
                    });
                }
                let block = blocks.last_mut().expect("a block");
                block.lines.push(i);
                match toml_line(code) {
                    Toml::Table(name, true) => block.keys.push(name.to_string()),
                    Toml::Key(key) => block.keys.push(dotted(&table, key)),
                    _ => {}
                }
                in_block = true;
            }
            None => in_block = false,
        }
    }
    (tables, keys, blocks)
}

/// Leaf paths of a TOML value (an array of tables is a leaf and a table).
fn leaves(prefix: &str, v: &toml::Value, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                leaves(&dotted(prefix, k), v, out);
            }
        }
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
            out.insert(prefix.to_string());
            for item in items {
                leaves(prefix, item, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// The resolved config, as `regbake config` prints it.
fn resolved(t: &Test) -> toml::Value {
    let o = t.success();
    toml::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}\n{}", o.stdout))
}

/// A path's value in a TOML value (not into arrays).
fn lookup<'a>(v: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    path.split('.').try_fold(v, |v, part| v.get(part))
}

/// Whether `got` has everything `want` has (the resolved config fills in
/// the defaults the example leaves out).
fn within(want: &toml::Value, got: &toml::Value) -> bool {
    match (want, got) {
        (toml::Value::Table(w), toml::Value::Table(g)) => w
            .iter()
            .all(|(k, w)| g.get(k).is_some_and(|g| within(w, g))),
        (toml::Value::Array(w), toml::Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(w, g)| within(w, g))
        }
        (w, g) => w == g,
    }
}

/// A self-signed certificate and its key (and the certificate again as the
/// CA) where the TLS example's paths, moved into `dir`, point.
fn pki(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("mkdir pki");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=registry.local", "-keyout", "registry.key"])
        .args(["-out", "registry.crt"])
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(dir.join("registry.crt"), dir.join("ca.crt")).expect("copy ca");
}

/// The config with one block uncommented and what it needs, in a test dir
/// with the environment variables it names set; the block's keys and values.
fn variant(text: &str, tables: &[String], block: &Block) -> Option<Test> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let t = Test::new();
    let pki_dir = t.path().join("pki/");
    for &i in &block.lines {
        let mut code = example(&lines[i]).expect("example line").to_string();
        if code.contains(PKI) {
            code = code.replace(PKI, &pki_dir.to_string_lossy());
        }
        lines[i] = code;
    }
    for (needer, table, key, value) in NEEDS {
        if !block.keys.iter().any(|k| k == needer) {
            continue;
        }
        let i = (0..lines.len())
            .find(|&i| {
                tables[i] == *table
                    && !lines[i].starts_with('#')
                    && matches!(toml_line(&lines[i]), Toml::Key(k) if k == *key)
            })
            .unwrap_or_else(|| panic!("no active {table}.{key} for {needer}"));
        lines[i] = format!("{key} = {value}");
    }
    if block.keys.iter().any(|k| k == "registry.tls.cert") {
        if !require_tool("openssl") {
            return None;
        }
        pki(&pki_dir);
    }
    let mut t = t.config(&(lines.join("\n") + "\n"));
    // `*_env = "NAME"`: the variable holds a secret at render time.
    for &i in &block.lines {
        if let Some((key, value)) = lines[i].split_once('=') {
            if key.trim().ends_with("_env") {
                let name = value.split('"').nth(1).expect("a quoted name");
                t = t.env(name, &format!("test-value-of-{name}"));
            }
        }
    }
    Some(t)
}

#[test]
fn every_example_line_is_toml_or_a_note() {
    let text = init_file();
    for line in text.lines().filter(|l| l.starts_with('#')) {
        if let Some(code) = example(line) {
            assert!(
                code.is_empty() || !matches!(toml_line(code), Toml::Other),
                "neither a note (\"# …\") nor a setting (\"#key = value\"): {line}"
            );
        }
    }
}

/// Each example block, uncommented on its own with what its note says it
/// needs: `regbake check` passes (with `--require-all` in CI), and the
/// resolved config has the block's values.
#[test]
fn each_example_block_passes_check() {
    let text = init_file();
    let (tables, _, blocks) = scan(&text);
    assert!(blocks.len() >= 8, "{} example blocks", blocks.len());
    let run = |block: &Block| {
        let Some(t) = variant(&text, &tables, block) else {
            return;
        };
        let t = t.args(&["config"]);
        let config = resolved(&t);
        let uncommented: toml::Value =
            toml::from_str(&t.read("regbake.toml")).expect("the variant parses");
        // Each key, or array of tables, that is not inside another of the block.
        let roots = block
            .keys
            .iter()
            .filter(|k| !block.keys.iter().any(|o| k.starts_with(&format!("{o}."))));
        for key in roots {
            let want = lookup(&uncommented, key).expect("the example's key");
            let got = lookup(&config, key);
            assert!(
                got.is_some_and(|got| within(want, got)),
                "{key}: the example sets {want:?}, the resolved config has {got:?}"
            );
        }
        check_all(t);
    };
    // Two at a time: each check runs every validator.
    for pair in blocks.chunks(2) {
        std::thread::scope(|s| {
            for block in pair {
                s.spawn(|| run(block));
            }
        });
    }
}

/// Every key of the resolved config, with and without each example, is in
/// the file; so are the inventory's host vars.
#[test]
fn init_names_every_setting() {
    let text = init_file();
    let (tables, named, blocks) = scan(&text);
    let mut all = BTreeSet::new();
    leaves("", &resolved(&Test::new().args(&["config"])), &mut all);
    for block in &blocks {
        if let Some(t) = variant(&text, &tables, block) {
            leaves("", &resolved(&t.args(&["config"])), &mut all);
        }
    }
    let missing: Vec<&String> = all.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "regbake init shows no example of {missing:?}: add each, commented out, to examples/regbake.toml"
    );
    for var in regbake::config::inventory::vars::VARS {
        assert!(
            text.lines().any(|l| l
                .strip_prefix("#   ")
                .is_some_and(|r| r.split_whitespace().next() == Some(var.name))),
            "the inventory note does not name the host var {}",
            var.name
        );
    }
}

/// `regbake init` documents the distro choice: its note names every
/// distro, and the file with only its `distro` line changed passes `regbake
/// check` for each (the settings that depend on the distro are "" there).
#[test]
fn init_documents_each_distro_and_each_works() {
    use regbake::config::Distro;
    let text = init_file();
    let line = text
        .lines()
        .find(|l| l.starts_with("distro = "))
        .expect("an active distro line");
    assert_eq!(line, "distro = \"centos7\"");
    for d in Distro::ALL {
        assert!(
            text.lines()
                .any(|l| l.starts_with("# ") && l.contains(d.id())),
            "no note names {}",
            d.id()
        );
    }
    let run = |d: Distro| {
        let toml = text.replace(line, &format!("distro = \"{}\"", d.id()));
        let t = Test::new().config(&toml);
        let o = check_all(t);
        assert!(o.stdout.contains(" 0 failed"), "{}: {}", d.id(), o.stdout);
    };
    let new: Vec<Distro> = Distro::ALL
        .into_iter()
        .filter(|d| *d != Distro::Centos7)
        .collect();
    for pair in new.chunks(2) {
        std::thread::scope(|s| {
            for d in pair {
                s.spawn(|| run(*d));
            }
        });
    }
}

/// `init --force` replaces the file atomically (issue 18 §11): a write that
/// fails part-way (here a file size limit, RLIMIT_FSIZE, as a full disk
/// would) leaves the old config whole and no fragment of the new one;
/// a good one keeps the old file's mode, and writes through a symlink.
#[test]
fn init_force_is_all_or_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let t = Test::new().file("regbake.toml", "version = 1\n# mine\n");
    let config = t.path().join("regbake.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut cmd = Command::new(crate::common::BIN);
    cmd.args(["init", "--force"])
        .current_dir(t.path())
        .env("HOME", t.path().join("home"));
    // SAFETY: only setrlimit(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().expect("run regbake");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(t.read("regbake.toml"), "version = 1\n# mine\n");
    let mut names: Vec<String> = std::fs::read_dir(t.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bin", "home", "regbake.toml"]);

    let t = t.args(&["init", "--force"]);
    t.success();
    assert!(t.read("regbake.toml").contains("version = 1"));
    assert_ne!(t.read("regbake.toml"), "version = 1\n# mine\n");
    assert_eq!(t.mode("regbake.toml"), 0o640);

    let t = t.file("real.toml", "# mine\n");
    std::os::unix::fs::symlink("real.toml", t.path().join("link.toml")).expect("symlink");
    let t = t.args(&["-c", "link.toml", "init", "--force"]);
    t.success();
    assert!(t.path().join("link.toml").is_symlink());
    assert_eq!(t.read("real.toml"), t.read("regbake.toml"));
}
