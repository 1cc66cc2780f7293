//! The Vagrant and Packer deliveries, run: their provisioners in order in
//! a testbed (see `mod.rs`), as Vagrant and Packer run them, then the
//! registry checked from the host. Each for CentOS 7, Rocky Linux 9
//! (`_rocky9`) and AlmaLinux 10 (`_alma10`).

use std::time::Duration;

use super::scenarios::{
    config_of, hello_present, journal, kickstart_install_of, push_hello, DATA_DIR, IMAGE_TAR,
};
use super::{env, render, Admin, Os, Testbed};
use crate::common::require_tool;

/// What Vagrant's shell provisioner does with an `inline:` script: upload it
/// as /tmp/vagrant-shell and run it as root (`privileged: true`) from a
/// login bash, with the provisioner's `env:` exported.
fn vagrant_shell(tb: &Testbed, inline: &str, env: &serde_json::Value) {
    tb.write("/tmp/vagrant-shell", inline.as_bytes(), 0o755);
    let vars: Vec<(String, String)> = env
        .as_object()
        .expect("env is a hash")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("env value").to_string()))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let o = tb.exec_env(&["bash", "-l", "-c", "/tmp/vagrant-shell"], &vars);
    assert!(
        o.status.success(),
        "provisioner failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Scenarios 2 (Vagrant provisioner path), 5 (idempotency) and 6
/// (uninstall): a booted base box (its `vagrant` user with passwordless
/// sudo, no docker running) gets the Vagrantfile's provisioners in order,
/// with the preload tar in place and no network; then `regbake-install` and
/// `regbake-firstboot` again change nothing; `regbake-uninstall` removes the
/// registry and keeps its data, a reinstall serves the old image, `--purge`
/// deletes it.
#[test]
fn vagrant_provisioners_bake_a_working_registry() {
    vagrant_scenario(Os::Centos7);
}

#[test]
fn vagrant_provisioners_bake_a_working_registry_rocky9() {
    vagrant_scenario(Os::Rocky9);
}

#[test]
fn vagrant_provisioners_bake_a_working_registry_alma10() {
    vagrant_scenario(Os::Alma10);
}

fn vagrant_scenario(os: Os) {
    let Some(env) = env() else { return };
    if !(require_tool("ruby") && require_tool("skopeo")) {
        return;
    }
    let admin = Admin::new();
    let t = render(
        &config_of(
            os,
            &admin,
            "[packages]\nextra = [\"@development\", \"vim-enhanced\"]\n",
        ),
        &[],
    );
    let rec = crate::vagrant::record(&t.path().join("out/vagrant/Vagrantfile"));
    let provs = rec["provisioners"].as_array().expect("provisioners");
    let names: Vec<&str> = provs.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "regbake-overlay",
            "regbake-install",
            "regbake-firstboot",
            "regbake-clean"
        ]
    );

    let tb = Testbed::boot(env, os, DATA_DIR);
    // The base box (centos/7, rockylinux/9, …): the vagrant user, its key,
    // passwordless sudo.
    tb.sh(
        "useradd -m vagrant && install -d -m 700 -o vagrant -g vagrant ~vagrant/.ssh && \
         echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant' > ~vagrant/.ssh/authorized_keys && \
         chown vagrant: ~vagrant/.ssh/authorized_keys && chmod 600 ~vagrant/.ssh/authorized_keys && \
         echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vagrant && chmod 440 /etc/sudoers.d/vagrant && \
         install -d -m 0755 /var/lib/regbake",
    );
    tb.put(
        env.registry_tar(os.registry()),
        IMAGE_TAR,
        "root:root",
        0o600,
    );
    for p in provs {
        match p["name"].as_str() {
            Some("regbake-overlay") => {
                assert_eq!(p["type"], "file");
                let dest = p["destination"].as_str().expect("destination");
                tb.put(
                    &t.path().join("out/overlay.tar.gz"),
                    dest,
                    "vagrant:vagrant",
                    0o644,
                );
            }
            // regbake vagrant runs the cleaning itself, right before packaging.
            Some("regbake-clean") => assert_eq!(p["run"], "never"),
            _ => vagrant_shell(&tb, p["inline"].as_str().expect("inline"), &p["env"]),
        }
    }
    tb.sh("test -s /var/lib/regbake/firstboot.done");
    assert!(tb.wait_registry(5000, Duration::from_secs(30)));
    assert_eq!(
        tb.sh("systemctl is-enabled regbake-registry").trim(),
        "enabled"
    );
    let calls = tb.stub_calls();
    for want in [
        os.install_call(" vim-enhanced"),
        os.group_call("development"),
        "hostnamectl set-hostname registry.test".into(),
    ] {
        assert!(calls.contains(&want), "{want:?} not asked:\n{calls}");
    }
    // The base box's user keeps its key and its sudo.
    tb.sh("grep -q ' vagrant$' ~vagrant/.ssh/authorized_keys && sudo -n -u vagrant sudo -n true");
    let ip = tb.ip();
    let (code, out) = Admin::ssh(&admin.key, "ansible", &ip, &[], "sudo -n true");
    assert_eq!(code, 0, "{out}");

    // Scenario 5: a second install and first boot change nothing.
    let hello = format!("docker://{ip}:5000/regbake/hello:v1");
    push_hello(&t, &hello, &["--dest-tls-verify=false"]);
    let before = tb.state();
    let calls_before = tb.stub_calls();
    tb.sh("/usr/local/sbin/regbake-install && /usr/local/sbin/regbake-firstboot");
    assert_eq!(
        tb.state(),
        before,
        "a second install/firstboot changed the appliance"
    );
    assert!(tb
        .sh("docker ps --format '{{.Names}}'")
        .contains("registry"));
    let (ok, out) = hello_present(&hello, &["--tls-verify=false"]);
    assert!(ok, "{out}");
    let new_calls = tb.stub_calls()[calls_before.len()..].to_string();
    // Groups are asked again (yum's groupinstall is a no-op then), packages not.
    assert!(
        !new_calls.contains(&format!("{} -y install", os.pm())),
        "packages installed again: {new_calls}"
    );

    // Garbage collection: the timer's service, run.
    super::gc::collect_on_the_appliance(&tb, &t, &ip, os.registry(), os.registry_config());

    // Scenario 6: uninstall keeps the data, asks for trust and firewall.
    let calls_before = tb.stub_calls();
    tb.sh("/usr/local/sbin/regbake-uninstall");
    assert!(!tb
        .sh("docker ps -a --format '{{.Names}}'")
        .contains("registry"));
    for gone in [
        "/etc/systemd/system/regbake-registry.service",
        "/etc/systemd/system/multi-user.target.wants/regbake-registry.service",
        "/etc/systemd/system/docker.service.wants/regbake-registry.service",
        os.registry_config(),
        "/var/lib/regbake/firstboot.done",
        "/etc/systemd/system/regbake-gc.timer",
        "/etc/systemd/system/timers.target.wants/regbake-gc.timer",
        "/etc/systemd/system/regbake-gc.service",
        "/usr/local/sbin/regbake-gc",
    ] {
        tb.sh(&format!("! test -e {gone}"));
    }
    let timers = tb.sh("systemctl list-timers --all --no-pager");
    assert!(!timers.contains("regbake-gc"), "{timers}");
    let blobs = "/data/docker-registry/registry/docker/registry/v2/repositories/regbake/hello";
    tb.sh(&format!("test -d {blobs}"));
    let new_calls = tb.stub_calls()[calls_before.len()..].to_string();
    assert!(new_calls.contains("update-ca-trust extract"), "{new_calls}");
    assert!(new_calls.contains("firewall-cmd --reload"), "{new_calls}");
    let after = tb.state();
    tb.sh("/usr/local/sbin/regbake-uninstall");
    assert_eq!(
        tb.state(),
        after,
        "a second uninstall changed the appliance"
    );

    // Reinstall: the old image is served again.
    tb.put(
        &t.path().join("out/overlay.tar.gz"),
        "/tmp/regbake-overlay.tar.gz",
        "root:root",
        0o600,
    );
    tb.sh(
        "tar -xzf /tmp/regbake-overlay.tar.gz -C / --no-overwrite-dir -m && \
         /usr/local/sbin/regbake-install && /usr/local/sbin/regbake-firstboot",
    );
    assert!(tb.wait_registry(5000, Duration::from_secs(30)));
    let (ok, out) = hello_present(&hello, &["--tls-verify=false"]);
    assert!(ok, "reinstall lost the image: {out}");

    tb.sh("/usr/local/sbin/regbake-uninstall --purge");
    tb.sh("! test -e /data/docker-registry/registry && test -d /data/docker-registry/docker");
}

/// Scenario 2, Packer's path: the installer runs `packer/http/ks.cfg`
/// (both %post), the machine boots, and Packer logs in as the admin with its
/// per-build key, uploads the overlay and runs `scripts/*.sh` in order with
/// the template's `execute_command` (`sudo -n env VARS bash SCRIPT`). The
/// registry image comes from the preload tar: the testbed has no network.
/// cleanup.sh's zero-fill would fill this machine's disk, so only there `dd`
/// is a shell function (BASH_ENV) that records its call. Then the box's
/// first boot: the registry comes up from the image inside it.
#[test]
fn packer_provisioners_bake_a_working_registry() {
    packer_scenario(Os::Centos7);
}

#[test]
fn packer_provisioners_bake_a_working_registry_rocky9() {
    packer_scenario(Os::Rocky9);
}

#[test]
fn packer_provisioners_bake_a_working_registry_alma10() {
    packer_scenario(Os::Alma10);
}

fn packer_scenario(os: Os) {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let t = render(&config_of(os, &admin, ""), &[]);
    let tb = kickstart_install_of(env, os, &t, "out/packer/http/ks.cfg", Some(os.registry()));
    let ip = tb.ip();
    let build_key = t.path().join("out/secrets/packer/id_ed25519");
    let build = |script: &str, vars: &str| {
        let (code, out) = Admin::ssh(
            &build_key,
            "ansible",
            &ip,
            &[],
            &format!("sudo -n env {vars} bash {script}"),
        );
        assert_eq!(code, 0, "{script}: {out}");
        out
    };
    // The file provisioner uploads as the SSH user.
    tb.put(
        &t.path().join("out/overlay.tar.gz"),
        "/tmp/regbake-overlay.tar.gz",
        "ansible:ansible",
        0o644,
    );
    tb.write(
        "/tmp/regbake-nodd",
        b"dd() { echo \"dd $*\" >> /var/log/regbake-stubs.log; }\n",
        0o644,
    );
    let vars = "http_proxy= https_proxy= no_proxy=";
    for (i, name) in ["install.sh", "firstboot.sh", "cleanup.sh"]
        .iter()
        .enumerate()
    {
        let script = format!("/tmp/script_{i}.sh");
        tb.put(
            &t.path().join("out/packer/scripts").join(name),
            &script,
            "ansible:ansible",
            0o755,
        );
        if *name == "cleanup.sh" {
            build(&script, &format!("{vars} BASH_ENV=/tmp/regbake-nodd"));
        } else {
            build(&script, vars);
        }
    }
    tb.sh("test -s /var/lib/regbake/firstboot.done");
    assert!(tb.wait_registry(5000, Duration::from_secs(30)));
    let keys = tb.sh("cat /home/ansible/.ssh/authorized_keys");
    assert!(keys.contains(&admin.public), "{keys}");
    let build_pub = t.read("out/secrets/packer/id_ed25519.pub");
    assert!(
        !keys.contains(build_pub.trim()),
        "build key left in the box:\n{keys}"
    );
    tb.sh("! test -e /root/anaconda-ks.cfg && ! ls /etc/ssh/ssh_host_* 2>/dev/null");
    // (cleanup.sh empties /var/log, the stubs' log too, before the dd.)
    let calls = tb.stub_calls();
    assert!(calls.contains("dd if=/dev/zero"), "{calls}");

    // The box's first boot, offline: the registry from the image inside it.
    tb.reboot();
    assert!(
        tb.wait_registry(5000, Duration::from_secs(60)),
        "{}",
        journal(&tb, "regbake-registry")
    );
}
