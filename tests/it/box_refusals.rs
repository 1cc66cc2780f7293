//! `regbake box pack` refusals: what it will not pack, and what it will
//! not overwrite. Each refusal happens before anything is written, so the
//! boxes and catalog already there stay as they were and still import.

use std::path::Path;

use crate::common::{require_tool, tool, tool_ok, Output, Test, BIN};

/// `regbake box pack --provider libvirt ARGS` in the test dir.
fn pack(t: &Test, args: &[&str]) -> Output {
    let mut all = vec!["box", "pack", "--provider", "libvirt"];
    all.extend_from_slice(args);
    tool(t, BIN, &all)
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
    let first = pack(
        &t,
        &[
            "--disk",
            "a.qcow2",
            "--name",
            "org/reg",
            "--version",
            "1.0.0",
        ],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = snapshot(&t.path().join("out/box"));
    assert_eq!(
        names(&before),
        [".lock", "org-reg-1.0.0-libvirt.box", "org-reg.json"]
    );

    let second = pack(
        &t,
        &[
            "--disk",
            "b.qcow2",
            "--name",
            "org-reg",
            "--version",
            "1.0.0",
        ],
    );
    assert_eq!(second.code, 2, "{}{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("--name")
            && second.stderr.contains("is the catalog of box \"org/reg\"")
            && second.stderr.contains("--name org/reg"),
        "{}",
        second.stderr
    );
    assert!(second.stdout.is_empty(), "{}", second.stdout);
    assert_eq!(snapshot(&t.path().join("out/box")), before);
    // The first box still imports: its checksum still matches.
    tool_ok(&t, "vagrant", &["box", "add", "out/box/org-reg.json"]);

    // The same with the names the other way round.
    let t = Test::new();
    tool_ok(&t, "qemu-img", &["create", "-f", "qcow2", "a.qcow2", "1G"]);
    let first = pack(
        &t,
        &[
            "--disk",
            "a.qcow2",
            "--name",
            "org-reg",
            "--version",
            "1.0.0",
        ],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = snapshot(&t.path().join("out/box"));
    let second = pack(
        &t,
        &[
            "--disk",
            "a.qcow2",
            "--name",
            "org/reg",
            "--version",
            "1.0.0",
        ],
    );
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("--name org-reg"),
        "{}",
        second.stderr
    );
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
    let o = pack(&t, &args);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("reading") && o.stderr.contains("org-reg.json"),
        "{}",
        o.stderr
    );
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
    let o = pack(&t, &args);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("is not a box catalog") && o.stderr.contains("move it away"),
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&t.path().join("out/box")), before);

    // --dry-run says the same.
    let o = tool(
        &t,
        BIN,
        &[
            "--dry-run",
            "box",
            "pack",
            "--provider",
            "libvirt",
            "--disk",
            "a.qcow2",
            "--name",
            "org/reg",
            "--version",
            "2.0.0",
        ],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("is not a box catalog"), "{}", o.stderr);
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
    let o = pack(&t, &["--disk", "over.qcow2"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("backing file")
            && o.stderr.contains("base.raw")
            && o.stderr
                .contains("qemu-img convert -O qcow2 over.qcow2 over-flat.qcow2"),
        "{}",
        o.stderr
    );
    assert!(!t.path().join("out/box").exists());

    // The command it gives makes a disk that packs.
    tool_ok(
        &t,
        "qemu-img",
        &["convert", "-O", "qcow2", "over.qcow2", "over-flat.qcow2"],
    );
    let o = pack(&t, &["--disk", "over-flat.qcow2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
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
    let o = pack(&t, &["--disk", "cut.qcow2"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("truncated"), "{}", o.stderr);

    let mut huge = whole.clone();
    huge[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    std::fs::write(t.path().join("huge.qcow2"), &huge).expect("write");
    let o = pack(&t, &["--disk", "huge.qcow2"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("virtual size"), "{}", o.stderr);
    assert!(!t.path().join("out/box").exists());
}
