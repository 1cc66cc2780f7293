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
    let o = Command::new("ksvalidator")
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

    // `regbake check` renders once more and validates every kickstart there.
    let o = check_all(t.args(&[]));
    for f in ["ks.cfg", "reg1.ks", "reg2.ks", "reg3.ks"] {
        assert!(
            !require_tool("ksvalidator")
                || o.stdout
                    .lines()
                    .any(|l| l.starts_with("passed   ksvalidator")
                        && l.ends_with(&format!("kickstart/{f}"))),
            "no passed ksvalidator line for {f}:\n{}",
            o.stdout
        );
    }
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
            !require_tool("ksvalidator")
                || o.stdout
                    .lines()
                    .any(|l| l.starts_with("passed   ksvalidator")
                        && l.ends_with(&format!("kickstart/{f}"))),
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
    t.failure(2);
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
        t = t.args(args);
        let o = t.failure(2);
        assert!(o.stderr.contains("registry.port"), "{}", o.stderr);
        assert_eq!(
            snapshot(&t.path().join("out/kickstart"), &[]),
            before,
            "{args:?} changed out/kickstart"
        );
    }
}
