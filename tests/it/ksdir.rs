//! `out/kickstart/` is shared: `regbake render`/`kickstart` write `ks.cfg`
//! (and `oemdrv.img`), `regbake kickstart --inventory` one `HOST.ks` (and
//! `HOST-oemdrv.img`) per host. Neither run deletes the other's files, a run
//! drops only its own stale files, and a failed run changes nothing. Every
//! kickstart left behind is checked by ksvalidator (through `regbake check`
//! and directly), images by mtools.

use std::process::Command;

use crate::common::{check_all, require_tool, Test};
use crate::golden::snapshot;

const THREE: &str = "\
[registries]
reg1 ip=192.0.2.11/24 gateway=192.0.2.1
reg2 ip=dhcp
reg3 ip=198.51.100.7/25 gateway=198.51.100.1
";

const TWO: &str = "\
[registries]
reg1 ip=192.0.2.11/24 gateway=192.0.2.1
reg2 ip=dhcp
";

fn ksvalidator(t: &Test, rel: &str) {
    let o = crate::common::ksvalidator(t.path())
        .args(["-v", "RHEL7", rel])
        .current_dir(t.path())
        .output()
        .expect("run ksvalidator");
    assert!(
        o.status.success(),
        "ksvalidator {rel}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The names in `out/kickstart/`, sorted.
fn names(t: &Test) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.path().join("out/kickstart"))
        .expect("read out/kickstart")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn render_and_inventory_keep_each_others_kickstarts() {
    let t = Test::new().file("hosts.ini", THREE).args(&["render"]);
    t.success();
    let single = t.read("out/kickstart/ks.cfg");

    let t = t.args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    assert_eq!(t.read("out/kickstart/ks.cfg"), single, "ks.cfg left alone");
    let hosts: Vec<String> = ["reg1", "reg2", "reg3"]
        .iter()
        .map(|h| t.read(&format!("out/kickstart/{h}.ks")))
        .collect();

    // Inventory then render (and the single kickstart command).
    let mut t = t;
    for args in [&["render"][..], &["kickstart"]] {
        t = t.args(args);
        t.success();
        for (h, ks) in ["reg1", "reg2", "reg3"].iter().zip(&hosts) {
            assert_eq!(&t.read(&format!("out/kickstart/{h}.ks")), ks, "{args:?}");
        }
    }
    assert_eq!(
        names(&t),
        [
            ".regbake.manifest",
            "ks.cfg",
            "reg1.ks",
            "reg2.ks",
            "reg3.ks"
        ]
    );
    for f in ["ks.cfg", "reg1.ks", "reg2.ks", "reg3.ks"] {
        assert_eq!(t.mode(&format!("out/kickstart/{f}")), 0o600, "{f}");
    }

    // `regbake check` renders once more and validates every kickstart there
    // (reg3 by its shape, which is reg1's: both static with a gateway).
    let o = check_all(t.args(&[]));
    for f in ["ks.cfg", "reg1.ks", "reg2.ks", "reg3.ks"] {
        assert!(
            !require_tool("ksvalidator") || validated(&o.stdout, f),
            "no passed ksvalidator line for {f}:\n{}",
            o.stdout
        );
    }
    assert!(
        o.stdout
            .contains("passed   ks structure     kickstart/reg3.ks (like kickstart/reg1.ks)"),
        "{}",
        o.stdout
    );
}

/// Whether `stdout` of `regbake check` says that kickstart `f` passed
/// ksvalidator, or is of the same shape as one that did.
fn validated(stdout: &str, f: &str) -> bool {
    let file = format!(" kickstart/{f}");
    stdout.lines().any(|l| {
        (l.starts_with("passed   ksvalidator") && l.ends_with(&file))
            || (l.starts_with("passed   ks structure") && l.contains(&format!("{file} (like ")))
    })
}

#[test]
fn kickstarts_pass_ksvalidator_after_both_orders() {
    if !require_tool("ksvalidator") {
        return;
    }
    // Inventory first, then render.
    let t = Test::new()
        .file("hosts.ini", TWO)
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    let t = t.args(&["render"]);
    t.success();
    for f in ["ks.cfg", "reg1.ks", "reg2.ks"] {
        ksvalidator(&t, &format!("out/kickstart/{f}"));
    }
}

#[test]
fn a_dropped_host_loses_its_files_and_user_files_survive() {
    let t = Test::new().file("hosts.ini", THREE).args(&[
        "kickstart",
        "--inventory",
        "hosts.ini",
        "--oemdrv",
    ]);
    t.success();
    let t = t.args(&["kickstart"]);
    t.success();
    // A user's own files, one named like a host kickstart.
    let t = t
        .file("out/kickstart/notes.txt", "mine\n")
        .file("out/kickstart/lab.ks", "# my lab kickstart\n");
    let t = t
        .file("hosts.ini", TWO)
        .args(&["kickstart", "--inventory", "hosts.ini", "--oemdrv"]);
    t.success();
    assert_eq!(
        names(&t),
        [
            ".regbake.manifest",
            "ks.cfg",
            "lab.ks",
            "notes.txt",
            "reg1-oemdrv.img",
            "reg1.ks",
            "reg2-oemdrv.img",
            "reg2.ks",
        ]
    );
    assert_eq!(t.read("out/kickstart/notes.txt"), "mine\n");
    assert_eq!(t.read("out/kickstart/lab.ks"), "# my lab kickstart\n");
    // `regbake check` validates regbake's kickstarts, not the user's.
    let o = check_all(t.args(&[]));
    for f in ["ks.cfg", "reg1.ks", "reg2.ks"] {
        assert!(
            !require_tool("ksvalidator") || validated(&o.stdout, f),
            "no passed ksvalidator line for {f}:\n{}",
            o.stdout
        );
    }
    assert!(!o.stdout.contains("lab.ks"), "{}", o.stdout);
}

/// What `mcopy` reads back as the image's `ks.cfg`.
fn image_ks(t: &Test, img: &str) -> Vec<u8> {
    let o = Command::new("mcopy")
        .args(["-i", img, "::ks.cfg", "-"])
        .current_dir(t.path())
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("run mcopy");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn an_oemdrv_image_follows_its_kickstart() {
    if !require_tool("mcopy") {
        return;
    }
    let t = Test::new()
        .file("hosts.ini", TWO)
        .args(&["kickstart", "--oemdrv"]);
    t.success();
    let t = t.args(&["kickstart", "--inventory", "hosts.ini", "--oemdrv"]);
    t.success();
    // A changed config and runs without --oemdrv: the images are rebuilt,
    // never left holding the old kickstart.
    let t = t.config("version = 1\n[appliance]\ntimezone = \"Europe/Berlin\"\n");
    let old = image_ks(&t, "out/kickstart/oemdrv.img");
    let t = t.args(&["render"]);
    t.success();
    let ks = std::fs::read(t.path().join("out/kickstart/ks.cfg")).expect("ks.cfg");
    assert_ne!(ks, old, "the config change reached ks.cfg");
    assert_eq!(image_ks(&t, "out/kickstart/oemdrv.img"), ks);
    let t = t.args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    for h in ["reg1", "reg2"] {
        let ks = std::fs::read(t.path().join(format!("out/kickstart/{h}.ks"))).expect("ks");
        assert_eq!(image_ks(&t, &format!("out/kickstart/{h}-oemdrv.img")), ks);
    }
    // An image the user removed stays removed.
    std::fs::remove_file(t.path().join("out/kickstart/oemdrv.img")).expect("rm");
    let t = t.args(&["render"]);
    t.success();
    assert!(!t.path().join("out/kickstart/oemdrv.img").exists());
}

#[test]
fn a_failed_run_leaves_kickstart_byte_identical() {
    let t = Test::new().file("hosts.ini", THREE).args(&["render"]);
    t.success();
    let t = t.args(&["kickstart", "--inventory", "hosts.ini", "--oemdrv"]);
    t.success();
    let before = snapshot(&t.path().join("out/kickstart"), &[]);
    assert!(before.contains_key(".regbake.manifest"));

    // An invalid inventory.
    let t = t.file("bad.ini", "[web]\nreg1 ip=10.0.0.300/24\n").args(&[
        "kickstart",
        "--inventory",
        "bad.ini",
    ]);
    let t = t.status(2);
    t.check();
    assert_eq!(snapshot(&t.path().join("out/kickstart"), &[]), before);

    // An invalid config, for every command that writes kickstart/.
    let mut t = t.config("version = 1\n[registry]\nport = 70000\n");
    for args in [
        &["render"][..],
        &["kickstart"],
        &["kickstart", "--oemdrv"],
        &["kickstart", "--inventory", "hosts.ini"],
        &["check"],
    ] {
        t = t.args(args).status(2).stderr_contains("registry.port");
        t.check();
        assert_eq!(
            snapshot(&t.path().join("out/kickstart"), &[]),
            before,
            "{args:?} changed out/kickstart"
        );
    }
}

/// `regbake check` over a fleet (issue 18 §24): per-host kickstarts are
/// grouped by shape (the kickstart less host values: names, addresses,
/// MACs, disks, and the embedded overlay); the first of each shape gets
/// ksvalidator, bash -n and shellcheck, the others a structural check
/// that puts them in its shape; the output says which and how many. A
/// kickstart whose script differs is a shape of its own; a cut one fails.
#[test]
fn check_validates_one_kickstart_per_shape() {
    for tool in ["ksvalidator", "shellcheck"] {
        if !require_tool(tool) {
            return;
        }
    }
    let mut inv = String::from("[statics]\n");
    for i in 1..=8 {
        inv.push_str(&format!(
            "s{i} ip=192.0.2.{i}/24 gateway=192.0.2.254 mac=52:54:00:00:00:0{i}\n"
        ));
    }
    inv.push_str("[dhcp]\nd1 ip=dhcp\nd2 ip=dhcp\nd3 ip=dhcp\n[disk]\nx1 ip=dhcp disk=sda\n");
    let t = Test::new()
        .config(
            "version = 1\n[user]\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t\"]\n\
             [registry.tls]\nmode = \"generate\"\n",
        )
        .file("hosts.ini", &inv)
        .args(&["kickstart", "--inventory", "hosts.ini"]);
    t.success();
    let t = t.args(&["check"]);
    let o = t.success();
    let host_lines = |check: &str| -> Vec<String> {
        o.stdout
            .lines()
            .filter(|l| l.starts_with(&format!("passed   {check:<16} kickstart/")))
            .filter(|l| !l.contains("ks.cfg"))
            .map(str::to_string)
            .collect()
    };
    // One full validation per shape: s1, d1, x1.
    let full: Vec<String> = host_lines("ksvalidator")
        .iter()
        .map(|l| l.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(full, ["d1.ks", "s1.ks", "x1.ks"], "{}", o.stdout);
    let like = host_lines("ks structure");
    assert_eq!(like.len(), 12, "{}", o.stdout);
    for h in ["s2", "s8"] {
        let line = format!("kickstart/{h}.ks (like kickstart/s1.ks)");
        assert!(like.iter().any(|l| l.ends_with(&line)), "{h}: {like:?}");
    }
    assert!(
        like.iter()
            .any(|l| l.ends_with("kickstart/d3.ks (like kickstart/d1.ks)")),
        "{like:?}"
    );
    assert!(
        o.stdout
            .contains("12 per-host kickstarts: 3 validated in full (one per shape"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("9 checked for structure"), "{}", o.stdout);

    // A script line changed: its own shape, validated in full; a kickstart
    // cut in its overlay: a failed structure check naming why.
    let ks = |h: &str| t.path().join(format!("out/kickstart/{h}.ks"));
    let text = std::fs::read_to_string(ks("s5")).expect("s5.ks");
    let changed = text.replacen("%post", "%post\necho changed by hand", 1);
    assert_ne!(changed, text);
    std::fs::write(ks("s5"), changed).expect("write");
    let text = std::fs::read_to_string(ks("d2")).expect("d2.ks");
    std::fs::write(ks("d2"), &text[..text.len() / 2]).expect("write");
    let o = t.args(&["check", "--format", "json"]).status(1).check();
    let checks: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    let checks = checks.as_array().expect("array");
    let of = |file: &str, check: &str| {
        checks
            .iter()
            .find(|c| c["file"] == file && c["check"] == check)
            .unwrap_or_else(|| panic!("no {check} of {file}: {checks:?}"))
    };
    assert_eq!(of("kickstart/s5.ks", "ksvalidator")["status"], "passed");
    assert!(of("kickstart/s5.ks", "ks structure").get("like").is_none());
    assert_eq!(
        of("kickstart/s6.ks", "ks structure")["like"],
        "kickstart/s1.ks"
    );
    let cut = of("kickstart/d2.ks", "ks structure");
    assert_eq!(cut["status"], "failed", "{cut}");
    assert!(
        cut["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not closed")),
        "{cut}"
    );
}
