//! Golden outputs: fixtures render byte for byte to `expected/`, and the
//! committed `kickstart/` matches what `regbake render` makes of
//! examples/regbake.toml. `REGBAKE_BLESS=1` regenerates them (and a missing
//! fixture `state/` of key material), never by hand.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{check_all, repo, Test};

pub(crate) fn bless() -> bool {
    std::env::var("REGBAKE_BLESS").as_deref() == Ok("1")
}

/// Files under `dir` (relative path → bytes, mode), skipping `skip` tops.
pub(crate) fn snapshot(dir: &Path, skip: &[&str]) -> BTreeMap<String, (Vec<u8>, u32)> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read dir")
            .flatten()
            .collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).expect("prefix").display().to_string();
            if skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).expect("stat");
            if md.is_dir() {
                walk(base, &p, skip, out);
            } else {
                let data = std::fs::read(&p).expect("read");
                out.insert(rel, (data, md.permissions().mode() & 0o7777));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.is_dir() {
        walk(dir, dir, skip, &mut out);
    }
    out
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for (rel, (data, mode)) in snapshot(from, &[]) {
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, data).expect("write");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

pub(crate) fn fixture(case: &str) -> PathBuf {
    repo().join("tests/fixtures").join(case)
}

/// Render a fixture with its stored key material; returns the test dir.
pub(crate) fn render_fixture(case: &str) -> Test {
    let dir = fixture(case);
    let toml = std::fs::read_to_string(dir.join("regbake.toml")).expect("fixture config");
    let t = Test::new().config(&toml);
    let state = dir.join("state");
    if state.is_dir() {
        copy_tree(&state, &t.path().join("out"));
    } else if !bless() {
        panic!(
            "{} is missing: run the tests with REGBAKE_BLESS=1",
            state.display()
        );
    }
    let t = t.args(&["render"]);
    t.success();
    if !state.is_dir() {
        for top in ["secrets", "ssh"] {
            let from = t.path().join("out").join(top);
            if from.is_dir() {
                copy_tree(&from, &state.join(top));
            }
        }
    }
    t
}

/// Compare `actual` files with `expected_dir` byte for byte (plus a MODES
/// listing); rewrite `expected_dir` when blessing.
pub(crate) fn assert_golden(actual: &BTreeMap<String, (Vec<u8>, u32)>, expected_dir: &Path) {
    let modes: String = actual
        .iter()
        .map(|(p, (_, m))| format!("{m:04o} {p}\n"))
        .collect();
    if bless() {
        let _ = std::fs::remove_dir_all(expected_dir);
        std::fs::create_dir_all(expected_dir).expect("mkdir expected");
        for (rel, (data, _)) in actual {
            let dest = expected_dir.join(rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::write(dest, data).expect("write expected");
        }
        std::fs::write(expected_dir.join("MODES"), &modes).expect("write MODES");
        return;
    }
    let expected = snapshot(expected_dir, &["MODES"]);
    let a: Vec<&String> = actual.keys().collect();
    let e: Vec<&String> = expected.keys().collect();
    assert_eq!(
        a,
        e,
        "file lists differ from {} (REGBAKE_BLESS=1 regenerates)",
        expected_dir.display()
    );
    for (rel, (data, _)) in actual {
        let want = &expected[rel].0;
        assert!(
            data == want,
            "{rel} differs from {} (REGBAKE_BLESS=1 regenerates):\n{}",
            expected_dir.display(),
            diff(rel, want, data)
        );
    }
    let want_modes = std::fs::read_to_string(expected_dir.join("MODES")).expect("MODES");
    assert!(
        modes == want_modes,
        "file modes differ (REGBAKE_BLESS=1 regenerates):\n{}",
        diff("MODES", want_modes.as_bytes(), modes.as_bytes())
    );
}

/// A unified diff from `want` to `got`, or their sizes when either is binary.
fn diff(rel: &str, want: &[u8], got: &[u8]) -> String {
    match (std::str::from_utf8(want), std::str::from_utf8(got)) {
        (Ok(want), Ok(got)) => similar::TextDiff::from_lines(want, got)
            .unified_diff()
            .context_radius(3)
            .header(&format!("expected/{rel}"), &format!("rendered/{rel}"))
            .to_string(),
        _ => format!(
            "binary: expected {} bytes, rendered {} bytes",
            want.len(),
            got.len()
        ),
    }
}

fn golden_case(case: &str) {
    let t = render_fixture(case);
    // The state, and out/'s lock file (empty, kept), are not rendered output.
    let actual = snapshot(&t.path().join("out"), &["secrets", "ssh", ".lock"]);
    assert_golden(&actual, &fixture(case).join("expected"));
    // And every file passes its real validator.
    let o = check_all(t);
    assert!(o.stdout.contains(" 0 failed"), "{}", o.stdout);
}

#[test]
fn golden_tls_proxy_static() {
    golden_case("tls-proxy-static");
}

#[test]
fn golden_data_size() {
    golden_case("data-size");
}

#[test]
fn golden_extra_packages() {
    golden_case("extra-packages");
}

#[test]
fn golden_rocky9() {
    golden_case("rocky9");
}

#[test]
fn golden_alma9() {
    golden_case("alma9");
}

#[test]
fn golden_rocky10() {
    golden_case("rocky10");
}

#[test]
fn golden_alma10() {
    golden_case("alma10");
}

/// kickstart/ks.cfg in the repository is what `regbake render` makes of
/// examples/regbake.toml (with the fixture key material in
/// tests/fixtures/example-secrets/).
#[test]
fn committed_kickstart_matches_render() {
    let t = Test::new();
    let state = fixture("example-secrets");
    if state.is_dir() {
        copy_tree(&state, &t.path().join("out"));
    } else if !bless() {
        panic!("{} is missing: run with REGBAKE_BLESS=1", state.display());
    }
    let example = repo().join("examples/regbake.toml");
    let t = t.args(&["-c", example.to_str().expect("utf-8 path"), "render"]);
    t.success();
    if !state.is_dir() {
        for top in ["secrets", "ssh"] {
            copy_tree(&t.path().join("out").join(top), &state.join(top));
        }
    }
    let actual = snapshot(&t.path().join("out/kickstart"), &[]);
    assert_golden(&actual, &repo().join("kickstart"));
}
