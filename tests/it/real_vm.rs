//! Real VMs (README "Real VMs"): `regbake vagrant` driving real Vagrant,
//! vagrant-libvirt, libvirtd and QEMU, on a base box built here from the
//! appliance testbed's root (`tests/vm/build-box`: Debian 12 with the CentOS
//! stubs and bash 4.2, made bootable). What it proves: the Vagrantfile's
//! provisioners run in order on a booted machine, the registry answers in
//! it, the guest is cleaned, halted, flattened, packed, cataloged and
//! imported, the imported box boots and serves a push through the forwarded
//! port, and nothing of the VMs is left behind. What it stands in for: the
//! guest is Debian with stubs, not CentOS/EL.
//!
//! Without /dev/kvm the test skips (also under `REGBAKE_REQUIRE_TOOLS=1`:
//! no VM can be expected there). With /dev/kvm, a missing tool fails under
//! `REGBAKE_REQUIRE_TOOLS=1`. Where /dev/kvm exists but cannot boot a Linux
//! kernel (seen on nested machines whose KVM runs a guest's first
//! instructions, then stalls), the VMs run under QEMU's software emulation
//! (`vagrant.accelerator = "tcg"`), and the test says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{free_port, regbake_cmd, repo, require_tool, Test};
use crate::testbed::text;

const LIBVIRT: &str = "qemu:///system";
/// The appliance's name: its build domain is `vmtest-bake-default`.
const APPLIANCE: &str = "vmtest";
pub(crate) const DOMAIN: &str = "vmtest-bake-default";
pub(crate) const BOX: &str = "regbake-test/registry";

/// The base box, imported, and how the VMs run.
pub(crate) struct VmEnv {
    /// The bootable base image (the box's disk; Packer's cloud image).
    pub(crate) qcow2: PathBuf,
    base_box: String,
    /// `kvm` or `tcg`.
    pub(crate) accelerator: &'static str,
    pub(crate) vagrant_home: PathBuf,
}

/// One VM test at a time: two VMs under software emulation on a 2-core
/// machine would only slow each other past their timeouts.
pub(crate) fn vm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn run(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub(crate) fn virsh(args: &[&str]) -> std::process::Output {
    run(Command::new("virsh").arg("-c").arg(LIBVIRT).args(args))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("REGBAKE_TEST_CACHE").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/regbake-test"),
        PathBuf::from,
    )
}

/// Builds and imports the base box once per test run; `None` is a skip.
pub(crate) fn vm_env() -> Option<&'static VmEnv> {
    static ENV: OnceLock<Result<VmEnv, String>> = OnceLock::new();
    let found = ENV.get_or_init(|| {
        if !Path::new("/dev/kvm").exists() {
            return Err("no /dev/kvm: no VM can run here".into());
        }
        prepare().map_err(|e| format!("/dev/kvm exists, but {e}"))
    });
    match found {
        Ok(e) => Some(e),
        Err(why) if why.starts_with("no /dev/kvm") => {
            eprintln!("SKIPPED: real VMs: {why}");
            None
        }
        Err(why) if std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("real VMs: {why} (REGBAKE_REQUIRE_TOOLS=1)")
        }
        Err(why) => {
            eprintln!("SKIPPED: real VMs: {why}");
            None
        }
    }
}

fn prepare() -> Result<VmEnv, String> {
    for tool in [
        "vagrant",
        "virsh",
        "qemu-system-x86_64",
        "qemu-img",
        "syslinux",
        "mkfs.vfat",
        "sfdisk",
    ] {
        if !require_tool(tool) {
            return Err(format!("{tool} is not installed"));
        }
    }
    let plugins = run(Command::new("vagrant").args(["plugin", "list"]));
    if !text(&plugins).contains("vagrant-libvirt") {
        return Err(format!(
            "Vagrant has no vagrant-libvirt plugin:\n{}",
            text(&plugins)
        ));
    }
    let v = virsh(&["version"]);
    if !v.status.success() {
        return Err(format!(
            "libvirtd does not answer on {LIBVIRT} (scripts/test starts it):\n{}",
            text(&v)
        ));
    }
    let tb = crate::testbed::env().ok_or("the testbed (the base box's root) is missing")?;
    let t0 = Instant::now();
    let built =
        run(Command::new(repo().join("tests/vm/build-box")).env("DOCKER_HOST", tb.docker_host()));
    if !built.status.success() {
        return Err(format!("tests/vm/build-box failed:\n{}", text(&built)));
    }
    let out = String::from_utf8_lossy(&built.stdout).into_owned();
    let qcow2 = out
        .lines()
        .find_map(|l| l.strip_prefix("VM_BASE_QCOW2="))
        .ok_or(format!("tests/vm/build-box printed {out:?}"))?
        .to_string();
    eprintln!(
        "real VMs: base image {qcow2} ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let (accelerator, why) = accelerator(Path::new(&qcow2));
    eprintln!("real VMs: accelerator {accelerator}: {why}");
    let vagrant_home = cache_dir().join("vagrant.d");
    let base_box = import_base(Path::new(&qcow2), &vagrant_home)?;
    Ok(VmEnv {
        qcow2: PathBuf::from(qcow2),
        base_box,
        accelerator,
        vagrant_home,
    })
}

/// `kvm` when a KVM guest booted from the base image prints the kernel's
/// banner within 40 s, else `tcg` with what KVM did.
fn accelerator(qcow2: &Path) -> (&'static str, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let console = dir.path().join("console.log");
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "kvm",
            "-m",
            "512",
            "-display",
            "none",
            "-snapshot",
        ])
        .args(["-net", "none", "-serial"])
        .arg(format!("file:{}", console.display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,readonly=off", qcow2.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let t0 = Instant::now();
    let booted = loop {
        let log = std::fs::read_to_string(&console).unwrap_or_default();
        if log.contains("Linux version") {
            break Ok(t0.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let last = err.lines().rev().find(|l| !l.trim().is_empty());
            break Err(format!(
                "QEMU with KVM exited ({status}) before the kernel started: {}",
                last.unwrap_or("no message")
            ));
        }
        if t0.elapsed() > Duration::from_secs(40) {
            break Err(
                "a KVM guest did not reach the kernel's banner in 40 s (it runs, but stalls)"
                    .into(),
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    match booted {
        Ok(t) => (
            "kvm",
            format!(
                "a KVM guest printed the kernel banner in {:.1}s",
                t.as_secs_f64()
            ),
        ),
        Err(why) => ("tcg", format!("{why}; using QEMU's software emulation")),
    }
}

/// `regbake box pack` of the base image and `vagrant box add` under a name
/// of its content (vagrant-libvirt reuses a pool volume by the box's name
/// and version without looking at its content); older ones are removed.
fn import_base(qcow2: &Path, vagrant_home: &Path) -> Result<String, String> {
    let key = qcow2
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("vm-base-"))
        .ok_or(format!("unexpected base image name {}", qcow2.display()))?;
    let name = format!("regbake-test/base-{key}");
    let vagrant = |args: &[&str]| {
        run(Command::new("vagrant")
            .args(args)
            .env("VAGRANT_HOME", vagrant_home))
    };
    let list = text(&vagrant(&["box", "list"]));
    for old in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if old.starts_with("regbake-test/base-") && old != name {
            vagrant(&["box", "remove", "--force", "--all", old]);
            delete_box_volumes(old);
        }
    }
    if list
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&name))
    {
        return Ok(name);
    }
    delete_box_volumes(&name);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let packed = run(regbake_cmd()
        .args(["box", "pack", "--provider", "libvirt", "--disk"])
        .arg(qcow2)
        .args(["--name", &name, "--version", "0.0.1", "-o"])
        .arg(work.path().join("out")));
    if !packed.status.success() {
        return Err(format!("regbake box pack failed:\n{}", text(&packed)));
    }
    let catalog = work
        .path()
        .join("out/box")
        .join(format!("{}.json", name.replace('/', "-")));
    let added = vagrant(&["box", "add", "--name", &name, &catalog.to_string_lossy()]);
    if !added.status.success() {
        return Err(format!("vagrant box add failed:\n{}", text(&added)));
    }
    eprintln!(
        "real VMs: packed and added {name} in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(name)
}

/// The libvirt pool's copies of box `name` (vagrant-libvirt's upload).
/// Remove the box `name` from Vagrant and its volumes from the pool.
pub(crate) fn remove_box(env: &VmEnv, name: &str) {
    run(Command::new("vagrant")
        .args(["box", "remove", "--force", "--all", name])
        .env("VAGRANT_HOME", &env.vagrant_home));
    delete_box_volumes(name);
}

pub(crate) fn delete_box_volumes(name: &str) {
    let prefix = format!("{}_vagrant_box_image_", name.replace('/', "-VAGRANTSLASH-"));
    for vol in pool_volumes() {
        if vol.starts_with(&prefix) {
            virsh(&["vol-delete", "--pool", "default", &vol]);
        }
    }
}

fn pool_volumes() -> Vec<String> {
    let o = virsh(&["vol-list", "--pool", "default"]);
    text(&o)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

pub(crate) fn config(env: &VmEnv, host_port: u16) -> String {
    format!(
        "version = 1\n\
         [appliance]\nname = \"{APPLIANCE}\"\n\
         [user]\nssh_key_files = []\n\
         [vagrant]\nbase_box = \"{base}\"\nprovider = \"libvirt\"\naccelerator = \"{accel}\"\n\
         box_name = \"{BOX}\"\nhost_port = {host_port}\n",
        base = env.base_box,
        accel = env.accelerator,
    )
}

/// Vagrant in `dir` with the test's Vagrant home.
pub(crate) fn vagrant_in(env: &VmEnv, dir: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new("vagrant")
        .args(args)
        .current_dir(dir)
        .env("VAGRANT_HOME", &env.vagrant_home))
}

/// What VMs of this test may leave: none of them may be left.
pub(crate) fn assert_nothing_left(what: &str) {
    let domains = text(&virsh(&["list", "--all", "--name"]));
    assert!(
        !domains.lines().any(|d| d.trim().starts_with("vmtest-")),
        "{what}: libvirt domains left:\n{domains}"
    );
    let vols = pool_volumes();
    assert!(
        !vols.iter().any(|v| v.starts_with("vmtest-")),
        "{what}: volumes left in the pool: {vols:?}"
    );
}

#[test]
fn vagrant_bake_on_a_real_vm() {
    let Some(env) = vm_env() else { return };
    let _one = vm_lock();
    clear_leftovers(env);

    let port = free_port();
    let home = env.vagrant_home.to_string_lossy().into_owned();
    let t = Test::new()
        .config(&config(env, port))
        .env("VAGRANT_HOME", &home)
        .args(&["vagrant"]);
    let t0 = Instant::now();
    let o = t.success();
    eprintln!(
        "real VMs: regbake vagrant ({}) in {:.0}s",
        env.accelerator,
        t0.elapsed().as_secs_f64()
    );
    for step in [
        "vagrant up",
        "verify registry",
        "clean guest",
        "halt VM",
        "flatten disk",
        "import box",
        "destroy build VM",
    ] {
        assert!(o.stderr.contains(step), "no step {step:?}:\n{}", o.stderr);
    }
    let logs: Vec<String> = std::fs::read_dir(t.path().join("out/logs"))
        .expect("out/logs")
        .map(|e| e.expect("log").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter().any(|l| l.ends_with("-vagrant-up.log")),
        "logs: {logs:?}"
    );
    let up_log = t.read(&format!(
        "out/logs/{}",
        logs.iter()
            .find(|l| l.ends_with("-vagrant-up.log"))
            .expect("up log")
    ));
    // The provisioners, in the Vagrantfile's order.
    let order: Vec<usize> = ["regbake-overlay", "regbake-install", "regbake-firstboot"]
        .iter()
        .map(|p| {
            up_log
                .find(&format!("Running provisioner: {p}"))
                .unwrap_or_else(|| panic!("{p} did not run:\n{up_log}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order: {order:?}");
    assert_box_imported(env, t.path(), BOX);
    assert_nothing_left("after the bake");

    // The imported box boots and serves, under the build domain's name.
    let (_up, guard) = up_and_push(env, BOX, "vmtest-bake-", port, t.path());

    // A second bake of the same appliance while its domain exists: refused
    // before anything starts.
    let again = Test::new()
        .config(&config(env, free_port()))
        .env("VAGRANT_HOME", &home)
        .args(&["vagrant"])
        .status(1)
        .stderr_contains("refusing to bake")
        .stderr_contains(DOMAIN);
    again.check();
    assert!(
        !again.path().join("out/logs").exists()
            || std::fs::read_dir(again.path().join("out/logs"))
                .expect("logs")
                .next()
                .is_none(),
        "the refused bake ran a step"
    );

    drop(guard);
    assert_nothing_left("after vagrant destroy");
    run(Command::new("vagrant")
        .args(["box", "remove", "--force", "--all", BOX])
        .env("VAGRANT_HOME", &env.vagrant_home));
    delete_box_volumes(BOX);
}

/// Leftovers of an interrupted earlier run: the bake's own domain and box.
pub(crate) fn clear_leftovers(env: &VmEnv) {
    virsh(&["destroy", DOMAIN]);
    virsh(&["undefine", DOMAIN, "--remove-all-storage"]);
    run(Command::new("vagrant")
        .args(["box", "remove", "--force", "--all", BOX])
        .env("VAGRANT_HOME", &env.vagrant_home));
    delete_box_volumes(BOX);
}

/// Box `name` 1.0.0 (libvirt) is in `dir`'s out/box and imported.
pub(crate) fn assert_box_imported(env: &VmEnv, dir: &Path, name: &str) {
    let file = format!("out/box/{}-1.0.0-libvirt.box", name.replace('/', "-"));
    assert!(dir.join(&file).is_file(), "no {file}");
    let boxes = text(&vagrant_in(env, dir, &["box", "list"]));
    assert!(
        boxes
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [name, "(libvirt,", "1.0.0)"]),
        "not imported:\n{boxes}"
    );
}

/// `vagrant up` of the imported box `name` (domains `PREFIX…`) with the
/// registry on 127.0.0.1:`port`, and `regbake probe --push` through it (in
/// `dir`, the appliance's). The VM is destroyed when the guard drops.
pub(crate) fn up_and_push<'a>(
    env: &'a VmEnv,
    name: &str,
    prefix: &str,
    port: u16,
    dir: &Path,
) -> (tempfile::TempDir, Destroy<'a>) {
    let up = tempfile::tempdir().expect("temp dir");
    let driver = if env.accelerator == "kvm" {
        "kvm"
    } else {
        "qemu"
    };
    std::fs::write(
        up.path().join("Vagrantfile"),
        format!(
            "Vagrant.configure('2') do |c|\n\
             \x20 c.vm.box = '{name}'\n\
             \x20 c.vm.network 'forwarded_port', guest: 5000, host: {port}, host_ip: '127.0.0.1'\n\
             \x20 c.vm.provider 'libvirt' do |lv|\n\
             \x20   lv.driver = '{driver}'\n\
             \x20   lv.default_prefix = '{prefix}'\n\
             \x20 end\n\
             end\n"
        ),
    )
    .expect("Vagrantfile");
    let t1 = Instant::now();
    let o = vagrant_in(env, up.path(), &["up", "--provider", "libvirt"]);
    let guard = Destroy(env, up.path().to_path_buf());
    assert!(o.status.success(), "vagrant up of the box:\n{}", text(&o));
    eprintln!(
        "real VMs: vagrant up of {name} in {:.0}s",
        t1.elapsed().as_secs_f64()
    );
    let url = format!("http://127.0.0.1:{port}");
    // `vagrant up` returns once SSH answers; under TCG the registry's
    // container may still be starting: up to 2 min for it to answer.
    let t2 = Instant::now();
    let probe = loop {
        let probe = run(regbake_cmd()
            .args(["probe", "--push", &url])
            .current_dir(dir));
        if probe.status.success() || t2.elapsed() > Duration::from_secs(120) {
            break probe;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    assert!(
        probe.status.success(),
        "probe --push {url}:\n{}",
        text(&probe)
    );
    (up, guard)
}

/// `vagrant destroy -f` of the test's own VM, also when the test fails.
pub(crate) struct Destroy<'a>(pub(crate) &'a VmEnv, pub(crate) PathBuf);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let o = vagrant_in(self.0, &self.1, &["destroy", "-f"]);
        if !o.status.success() {
            eprintln!("vagrant destroy -f: {}", text(&o));
        }
    }
}
