//! `regbake box pack` refusals: what it will not pack, and what it will
//! not overwrite. Each refusal happens before anything is written, so the
//! boxes and catalog already there stay as they were and still import.

use std::path::Path;

use crate::common::{require_tool, tool_ok, Test};

/// `box pack --provider libvirt ARGS`, for [`Test::args`].
fn pack<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["box", "pack", "--provider", "libvirt"];
    all.extend_from_slice(args);
    all
}

/// Every file of `dir` (name, bytes), sorted; empty when it is missing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

/// `box pack` of `disk` as box `name` 1.0.0, for [`Test::args`].
fn named<'a>(disk: &'a str, name: &'a str) -> Vec<&'a str> {
    pack(&["--disk", disk, "--name", name, "--version", "1.0.0"])
}

/// `org-reg` and `org/reg` name the same files; the catalog's name decides,
/// and the other is refused before its box replaces the first one's.
#[test]
fn two_names_for_the_same_files_are_refused_before_writing() {
    if !require_tool("qemu-img") || !require_tool("vagrant") {
        return;
    }
    let t = Test::new();
    tool_ok(&t, "qemu-img", &["create", "-f", "qcow2", "a.qcow2", "1G"]);
    tool_ok(&t, "qemu-img", &["create", "-f", "qcow2", "b.qcow2", "2G"]);
    let t = t.args(&named("a.qcow2", "org/reg"));
    t.success();
    let before = snapshot(&t.path().join("out/box"));
    assert_eq!(
        names(&before),
        [".lock", "org-reg-1.0.0-libvirt.box", "org-reg.json"]
    );

    let t = t
        .args(&named("b.qcow2", "org-reg"))
        .status(2)
        .stderr_contains("is the catalog of box \"org/reg\"")
        .stderr_contains("--name org/reg");
    let second = t.check();
    assert!(second.stdout.is_empty(), "{}", second.stdout);
    assert_eq!(snapshot(&t.path().join("out/box")), before);
    // The first box still imports: its checksum still matches.
    tool_ok(&t, "vagrant", &["box", "add", "out/box/org-reg.json"]);

    // The same with the names the other way round.
    let t = Test::new();
    tool_ok(&t, "qemu-img", &["create", "-f", "qcow2", "a.qcow2", "1G"]);
    let t = t.args(&named("a.qcow2", "org-reg"));
    t.success();
    let before = snapshot(&t.path().join("out/box"));
    let t = t
        .args(&named("a.qcow2", "org/reg"))
        .status(2)
        .stderr_contains("--name org-reg");
    t.check();
    assert_eq!(snapshot(&t.path().join("out/box")), before);
}

/// A catalog that cannot be read, or is not a catalog, stops the pack before
/// the box is written.
#[test]
fn an_unreadable_or_broken_catalog_is_refused_before_writing() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    tool_ok(&t, "qemu-img", &["create", "-f", "qcow2", "a.qcow2", "1G"]);
    let args = [
        "--disk",
        "a.qcow2",
        "--name",
        "org/reg",
        "--version",
        "2.0.0",
    ];

    // A directory where the catalog goes cannot be read (as root too).
    std::fs::create_dir_all(t.path().join("out/box/org-reg.json")).expect("mkdir");
    let t = t
        .args(&pack(&args))
        .status(1)
        .stderr_contains("reading")
        .stderr_contains("org-reg.json");
    t.check();
    assert!(!t.path().join("out/box/org-reg-2.0.0-libvirt.box").exists());
    std::fs::remove_dir(t.path().join("out/box/org-reg.json")).expect("rmdir");

    // Not JSON: the box already there is kept too.
    std::fs::write(
        t.path().join("out/box/org-reg-2.0.0-libvirt.box"),
        "an older box",
    )
    .expect("write");
    std::fs::write(t.path().join("out/box/org-reg.json"), "{ not json").expect("write");
    let before = snapshot(&t.path().join("out/box"));
    let t = t
        .args(&pack(&args))
        .status(1)
        .stderr_contains("is not a box catalog")
        .stderr_contains("move it away");
    t.check();
    assert_eq!(snapshot(&t.path().join("out/box")), before);

    // --dry-run says the same.
    let dry_run = [&["--dry-run"][..], &pack(&args)].concat();
    t.args(&dry_run)
        .status(1)
        .stderr_contains("is not a box catalog")
        .check();
}

/// A qcow2 disk on a backing file would make the box point at a path of
/// this machine: refused, with the command that flattens it.
#[test]
fn a_disk_with_a_backing_file_is_refused_with_the_flattening_command() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    tool_ok(&t, "qemu-img", &["create", "-f", "raw", "base.raw", "64M"]);
    tool_ok(
        &t,
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            "over.qcow2",
        ],
    );
    let t = t
        .args(&pack(&["--disk", "over.qcow2"]))
        .status(2)
        .stderr_contains("backing file")
        .stderr_contains("base.raw")
        .stderr_contains("qemu-img convert -O qcow2 over.qcow2 over-flat.qcow2");
    t.check();
    assert!(!t.path().join("out/box").exists());

    // The command it gives makes a disk that packs.
    tool_ok(
        &t,
        "qemu-img",
        &["convert", "-O", "qcow2", "over.qcow2", "over-flat.qcow2"],
    );
    t.args(&pack(&["--disk", "over-flat.qcow2"])).success();
}

/// A qcow2 file cut short, or with a header no qemu would open, is refused.
#[test]
fn a_truncated_or_absurd_qcow2_is_refused() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = Test::new();
    tool_ok(
        &t,
        "qemu-img",
        &["create", "-f", "qcow2", "whole.qcow2", "1G"],
    );
    let whole = std::fs::read(t.path().join("whole.qcow2")).expect("read");
    std::fs::write(t.path().join("cut.qcow2"), &whole[..80]).expect("write");
    let t = t
        .args(&pack(&["--disk", "cut.qcow2"]))
        .status(2)
        .stderr_contains("truncated");
    t.check();

    let mut huge = whole.clone();
    huge[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    std::fs::write(t.path().join("huge.qcow2"), &huge).expect("write");
    let t = t
        .args(&pack(&["--disk", "huge.qcow2"]))
        .status(2)
        .stderr_contains("virtual size");
    t.check();
    assert!(!t.path().join("out/box").exists());
}
