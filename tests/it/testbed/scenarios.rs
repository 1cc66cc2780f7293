//! The appliance, run: each delivery's rendered files driven as that
//! delivery drives them, in a testbed (see `mod.rs`), checked from the host
//! through the network the way a user would (`regbake probe`, skopeo, ssh).
//! Each scenario runs for CentOS 7 (the test's plain name), Rocky Linux 9
//! (`_rocky9`) and AlmaLinux 10 (`_alma10`).

use std::time::{Duration, Instant};

use super::{env, probe, render, Admin, Env, Os, Testbed};
use crate::common::{require_tool, Test};
use crate::registry::{oci_layout, skopeo};

pub(super) const DATA_DIR: &str = "/data/docker-registry";
pub(super) const IMAGE_TAR: &str = "/var/lib/regbake/registry-image.tar";

pub(super) fn config(admin: &Admin, extra: &str) -> String {
    config_of(Os::Centos7, admin, extra)
}

/// [`config`] for `os`.
pub(super) fn config_of(os: Os, admin: &Admin, extra: &str) -> String {
    format!(
        "version = 1\n[appliance]\nhostname = \"registry.test\"\ndistro = \"{}\"\n\
         [user]\nssh_keys = [\"{}\"]\nssh_key_files = []\n{extra}",
        os.id(),
        admin.public
    )
}

/// The header and body of each `%post` of a kickstart, in order.
pub(super) fn posts(ks: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut lines = ks.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().next() == Some("%post") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "%end").collect();
            out.push((line.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

/// A bare-metal install from `ks` (a kickstart under the test's out dir), as
/// anaconda does it, then the reboot into the installed system:
/// - the kickstart commands the appliance relies on before %post: the admin
///   user (`user --lock`), `rootpw --lock`, `services --enabled`;
/// - each %post in order, as anaconda runs it (anaconda 21.48
///   `AnacondaKSScript.run`): the body in `/tmp/ks-script-XXXXXX` of the
///   target, `/bin/sh` on it with the target as root, output to `--log`;
///   no init and no docker daemon there;
/// - then anaconda writes `/root/anaconda-ks.cfg` (after %post, with every
///   script's text) and its `99-copy-logs.ks` `/root/original-ks.cfg`;
/// - `preload`: the registry image's tar where firstboot loads it, standing
///   in for the pull (the testbed has no way out).
pub(super) fn kickstart_install(
    env: &'static Env,
    t: &Test,
    ks_rel: &str,
    image: Option<&str>,
) -> Testbed {
    kickstart_install_of(env, Os::Centos7, t, ks_rel, image)
}

/// [`kickstart_install`] on `os`'s testbed.
pub(super) fn kickstart_install_of(
    env: &'static Env,
    os: Os,
    t: &Test,
    ks_rel: &str,
    image: Option<&str>,
) -> Testbed {
    let mut tb = Testbed::installer_of(env, os, DATA_DIR);
    kickstart_into(&mut tb, env, t, ks_rel, image);
    tb
}

/// [`kickstart_install`] into a given installer.
pub(super) fn kickstart_into(
    tb: &mut Testbed,
    env: &'static Env,
    t: &Test,
    ks_rel: &str,
    image: Option<&str>,
) {
    let ks = t.read(ks_rel);
    if let Err(failed) = run_posts(tb, &ks) {
        panic!("{failed}");
    }
    finish_install(tb, env, &ks, image);
}

/// The installer's part of [`kickstart_install`] for the kickstart `ks`
/// (as a server served it): the commands the appliance relies on, then each
/// %post in order; the first that fails stops it, as `--erroronfail` stops
/// anaconda: `Err` with its header and log.
pub(super) fn run_posts(tb: &Testbed, ks: &str) -> Result<(), String> {
    let user = "ansible";
    tb.sh(&format!(
        "useradd -m {user} && passwd -l {user} >/dev/null && passwd -l root >/dev/null && \
         systemctl enable ssh.service docker.service firewalld.service 2>&1"
    ));
    for (i, (header, body)) in posts(ks).into_iter().enumerate() {
        let log = header
            .split_whitespace()
            .find_map(|w| w.strip_prefix("--log="))
            .unwrap_or("/dev/null")
            .to_string();
        let script = format!("/tmp/ks-script-rbk{i:03}");
        tb.write(&script, body.as_bytes(), 0o700);
        let o = tb.try_sh(&format!("cd / && /bin/sh {script} >{log} 2>&1"));
        if !o.status.success() {
            return Err(format!(
                "%post {i} ({header}) failed; {log}:\n{}",
                tb.sh(&format!("cat {log}"))
            ));
        }
    }
    Ok(())
}

/// After the %post: anaconda's copies of the kickstart, the registry
/// image standing in for the pull, the reboot into the installed system.
pub(super) fn finish_install(tb: &mut Testbed, env: &'static Env, ks: &str, image: Option<&str>) {
    tb.write("/root/anaconda-ks.cfg", ks.as_bytes(), 0o600);
    tb.write("/root/original-ks.cfg", ks.as_bytes(), 0o600);
    if let Some(image) = image {
        tb.sh("install -d -m 0755 /var/lib/regbake");
        tb.put(env.registry_tar(image), IMAGE_TAR, "root:root", 0o600);
    }
    tb.reboot_installed();
}

pub(super) fn journal(tb: &Testbed, unit: &str) -> String {
    tb.sh(&format!(
        "journalctl -b --no-pager -o cat -u {unit} || true"
    ))
}

/// Firstboot ran at boot and the registry answers.
pub(super) fn assert_first_boot_ok(tb: &Testbed, port: u16) {
    let state = tb.wait_unit("regbake-firstboot.service", Duration::from_secs(120));
    assert_eq!(
        state,
        "active",
        "regbake-firstboot:\n{}\nregistry:\n{}",
        journal(tb, "regbake-firstboot"),
        journal(tb, "regbake-registry")
    );
    tb.sh("test -s /var/lib/regbake/firstboot.done");
    assert!(tb.wait_registry(port, Duration::from_secs(30)));
}

pub(super) fn push_hello(t: &Test, url: &str, tls_verify: &[&str]) {
    let src = oci_layout(&t.path().join("hello-image"));
    let mut args = vec!["copy"];
    args.extend_from_slice(tls_verify);
    args.extend([src.as_str(), url]);
    let (ok, out) = skopeo(&args);
    assert!(ok, "skopeo copy {url}: {out}");
}

pub(super) fn hello_present(url: &str, tls_verify: &[&str]) -> (bool, String) {
    let mut args = vec!["inspect", "--raw"];
    args.extend_from_slice(tls_verify);
    args.push(url);
    skopeo(&args)
}

pub(super) fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: not within {timeout:?}");
}

/// Scenarios 1 (kickstart path) and 4 (restarts): install from `ks.cfg`,
/// reboot; firstboot brings the registry up at boot; `probe --push` from the
/// host; the admin logs in with the configured key and has `sudo -n`, while
/// passwords are refused; no copy of a secret is left outside its file.
/// Then: reboot keeps the pushed image, a killed registry container comes
/// back, and so does the registry after docker is stopped and started.
#[test]
fn kickstart_install_boots_into_a_working_registry() {
    kickstart_scenario(Os::Centos7);
}

#[test]
fn kickstart_install_boots_into_a_working_registry_rocky9() {
    kickstart_scenario(Os::Rocky9);
}

#[test]
fn kickstart_install_boots_into_a_working_registry_alma10() {
    kickstart_scenario(Os::Alma10);
}

fn kickstart_scenario(os: Os) {
    let Some(env) = env() else { return };
    if !require_tool("skopeo") {
        return;
    }
    let admin = Admin::new();
    let t = render(&config_of(os, &admin, ""), &[]);
    let tb = kickstart_install_of(env, os, &t, "out/kickstart/ks.cfg", Some(os.registry()));
    assert_first_boot_ok(&tb, 5000);
    // The scripts ran under the distro's bash.
    assert!(
        tb.sh("echo \"$BASH_VERSION\"").starts_with(os.bash()),
        "not bash {}",
        os.bash()
    );
    let log = journal(&tb, "regbake-firstboot");
    assert!(
        log.contains(&format!("loading {} from", os.registry())),
        "{log}"
    );
    // Garbage collection is scheduled once the registry runs.
    let timers = tb.sh("systemctl list-timers --all --no-pager");
    assert!(timers.contains("regbake-gc.timer"), "{timers}");
    // The %post ran under the live path, not only the file layout.
    let calls = tb.stub_calls();
    assert!(calls.contains("restorecon -R"), "{calls}");
    assert!(
        calls.contains(
            "semanage fcontext -a -t container_file_t /data/docker-registry/registry(/.*)?"
        ),
        "{calls}"
    );

    // Secrets: only in their 0600 files, nowhere anaconda left copies.
    let secret = t.read("out/secrets/http_secret");
    let secret = secret.trim();
    let holders = tb.sh(&format!(
        "grep -rlF -- '{secret}' /etc /root /tmp /var/tmp /var/log /var/lib/regbake /home /opt /usr/local 2>/dev/null || true"
    ));
    assert_eq!(
        holders.trim(),
        os.registry_config(),
        "the http secret is also in other files"
    );
    assert_eq!(
        tb.sh(&format!("stat -c %a {}", os.registry_config()))
            .trim(),
        "600"
    );
    if os != Os::Centos7 {
        // EL9/EL10: the vendor's sshd_config stays (it reads the drop-ins
        // first, and with them the crypto policy); the drop-in's values win.
        tb.sh("test -s /etc/ssh/sshd_config.d/00-regbake.conf && ! grep -q regbake /etc/ssh/sshd_config");
        let effective = tb.sh("sshd -T 2>/dev/null");
        for want in [
            "passwordauthentication no",
            "permitrootlogin no",
            "kbdinteractiveauthentication no",
            "x11forwarding no",
        ] {
            assert!(effective.lines().any(|l| l == want), "{want}:\n{effective}");
        }
    }
    assert!(
        tb.sh("grep -c '' /root/anaconda-ks.cfg")
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            > 10
    );
    assert!(journal(&tb, "regbake-firstboot")
        .contains("removed the overlay's secrets from /root/anaconda-ks.cfg"));
    assert_eq!(tb.sh("ls /tmp | grep -c ks-script || true").trim(), "0");

    // From the host, as a client would.
    let ip = tb.ip();
    let url = format!("http://{ip}:5000/");
    let (code, out) = probe(&[&url, "--push"], &[]);
    assert_eq!(code, 0, "probe --push: {out}");

    // The admin: key login, passwordless sudo; passwords are not offered.
    let (code, out) = Admin::ssh(&admin.key, "ansible", &ip, &[], "sudo -n true && id -un");
    assert_eq!(code, 0, "ssh as ansible: {out}");
    assert!(out.contains("ansible"), "{out}");
    let (code, out) = Admin::ssh(
        &admin.key,
        "ansible",
        &ip,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        "true",
    );
    assert_ne!(code, 0, "password login was possible: {out}");
    assert!(out.contains("Permission denied (publickey"), "{out}");
    assert!(!out.contains("password"), "sshd offers passwords: {out}");
    let (code, out) = Admin::ssh(&admin.key, "root", &ip, &[], "true");
    assert_ne!(code, 0, "root login: {out}");

    // Scenario 4: restarts.
    let no_tls = ["--dest-tls-verify=false"];
    let hello = format!("docker://{ip}:5000/regbake/hello:v1");
    push_hello(&t, &hello, &no_tls);
    tb.reboot();
    assert!(
        tb.wait_registry(5000, Duration::from_secs(60)),
        "{}",
        journal(&tb, "regbake-registry")
    );
    // Firstboot does not run again: its marker is there.
    assert_eq!(
        tb.sh("systemctl show -p ConditionResult --value regbake-firstboot")
            .trim(),
        "no"
    );
    let (ok, out) = hello_present(&hello, &["--tls-verify=false"]);
    assert!(ok, "image lost across a reboot: {out}");

    tb.sh("docker kill registry");
    let took = wait_until(
        "registry back after docker kill",
        Duration::from_secs(15),
        || tb.wait_registry(5000, Duration::from_millis(500)),
    );
    eprintln!("registry back {took:?} after docker kill");

    tb.sh("systemctl stop docker.service docker.socket");
    assert_eq!(
        tb.sh("systemctl is-active regbake-registry || true").trim(),
        "inactive",
        "{}",
        journal(&tb, "regbake-registry")
    );
    tb.sh("systemctl start docker.service");
    assert!(
        tb.wait_registry(5000, Duration::from_secs(60)),
        "registry not back after docker start:\n{}",
        journal(&tb, "regbake-registry")
    );
    let (ok, out) = hello_present(&hello, &["--tls-verify=false"]);
    assert!(ok, "{out}");
}

/// Scenario 3: TLS (a generated CA) and two htpasswd users. The testbed has
/// the static address the certificate names.
#[test]
fn tls_and_auth_serve_only_trusted_authenticated_clients() {
    tls_scenario(Os::Centos7, 20);
}

#[test]
fn tls_and_auth_serve_only_trusted_authenticated_clients_rocky9() {
    tls_scenario(Os::Rocky9, 41);
}

#[test]
fn tls_and_auth_serve_only_trusted_authenticated_clients_alma10() {
    tls_scenario(Os::Alma10, 42);
}

/// `n`: the testbed's fixed address on the network, one per test.
fn tls_scenario(os: Os, n: u8) {
    let Some(env) = env() else { return };
    if !require_tool("curl") {
        return;
    }
    let admin = Admin::new();
    let ip = super::static_ip(n);
    let t = render(
        &config_of(
            os,
            &admin,
            &format!(
                "[network]\nmode = \"static\"\naddress = \"{ip}/24\"\ngateway = \"{}\"\n\
                 [registry.tls]\nmode = \"generate\"\n\
                 [[registry.auth.users]]\nname = \"alice\"\npassword_env = \"ALICE_PW\"\n\
                 [[registry.auth.users]]\nname = \"bob\"\npassword_env = \"BOB_PW\"\n",
                super::static_ip(1)
            ),
        ),
        &[("ALICE_PW", "alice-secret-1"), ("BOB_PW", "bob-secret-2")],
    );
    let mut tb = Testbed::installer_at(env, os, DATA_DIR, &ip);
    kickstart_into(
        &mut tb,
        env,
        &t,
        "out/kickstart/ks.cfg",
        Some(os.registry()),
    );
    assert_first_boot_ok(&tb, 443);
    let ca = t.path().join("out/client/certs.d/registry.test:443/ca.crt");
    assert!(ca.is_file(), "no client CA at {}", ca.display());
    let ca_s = ca.display().to_string();
    let url = format!("https://{ip}/");
    for (user, pw) in [("alice", "alice-secret-1"), ("bob", "bob-secret-2")] {
        let (code, out) = probe(
            &[
                &url,
                "--ca",
                &ca_s,
                "--username",
                user,
                "--password-env",
                "PW",
                "--push",
            ],
            &[("PW", pw)],
        );
        assert_eq!(code, 0, "probe --push as {user}: {out}");
    }
    let curl = |args: &[&str]| -> String {
        let o = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(format!("{url}v2/_catalog"))
            .output()
            .expect("curl");
        format!(
            "{} {}",
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout)
        )
    };
    assert_eq!(curl(&["--cacert", &ca_s]), "0 401", "anonymous");
    assert_eq!(
        curl(&["--cacert", &ca_s, "-u", "alice:wrong"]),
        "0 401",
        "wrong password"
    );
    assert_eq!(
        curl(&["--cacert", &ca_s, "-u", "alice:alice-secret-1"]),
        "0 200"
    );
    // Not trusting the appliance's CA: the TLS handshake fails (curl 60).
    assert!(curl(&["-u", "alice:alice-secret-1"]).starts_with("60 "));
    let (code, out) = probe(&[&url], &[]);
    assert_ne!(code, 0, "an untrusted client was served: {out}");
    // The appliance trusts its own CA (the anchor, update-ca-trust asked).
    tb.sh("test -s /etc/pki/ca-trust/source/anchors/regbake-ca.crt");
    assert!(tb.stub_calls().contains("update-ca-trust extract"));
    for f in [
        "/opt/docker/certs/registry.key",
        "/opt/docker/auth/htpasswd",
    ] {
        assert_eq!(tb.sh(&format!("stat -c %a {f}")).trim(), "600", "{f}");
    }
}

/// Scenario 7: no image and no way to pull one. Firstboot fails, writes no
/// marker, says why in its journal, and the next boot tries again. (A
/// drop-in makes it try the pull once instead of five times, for time.)
#[test]
fn a_first_boot_that_cannot_get_the_image_fails_loudly_and_retries() {
    first_boot_failure_scenario(Os::Centos7);
}

#[test]
fn a_first_boot_that_cannot_get_the_image_fails_loudly_and_retries_rocky9() {
    first_boot_failure_scenario(Os::Rocky9);
}

#[test]
fn a_first_boot_that_cannot_get_the_image_fails_loudly_and_retries_alma10() {
    first_boot_failure_scenario(Os::Alma10);
}

fn first_boot_failure_scenario(os: Os) {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let t = render(&config_of(os, &admin, ""), &[]);
    let mut tb = Testbed::installer_of(env, os, DATA_DIR);
    tb.sh(
        "install -d /etc/systemd/system/regbake-firstboot.service.d && \
         printf '[Service]\\nEnvironment=REGBAKE_PULL_ATTEMPTS=1\\n' \
         > /etc/systemd/system/regbake-firstboot.service.d/test.conf",
    );
    kickstart_into(&mut tb, env, &t, "out/kickstart/ks.cfg", None);
    for boot in 1..=2 {
        let state = tb.wait_unit("regbake-firstboot.service", Duration::from_secs(120));
        assert_eq!(state, "failed", "boot {boot}");
        tb.sh("! test -e /var/lib/regbake/firstboot.done");
        let log = journal(&tb, "regbake-firstboot");
        assert!(
            log.contains(&format!("could not pull {}", os.registry())),
            "boot {boot}:\n{log}"
        );
        assert!(log.contains("The next boot tries again"), "{log}");
        if boot == 1 {
            tb.reboot();
        }
    }
}

/// Scenario 8: with `[proxy]`, docker's environment has the proxies, the
/// registry still comes up, and docker reaches 127.0.0.1 directly. Also the
/// `registry:3` config path.
#[test]
fn proxy_drop_ins_reach_docker_and_spare_localhost() {
    proxy_scenario(Os::Centos7);
}

#[test]
fn proxy_drop_ins_reach_docker_and_spare_localhost_rocky9() {
    proxy_scenario(Os::Rocky9);
}

#[test]
fn proxy_drop_ins_reach_docker_and_spare_localhost_alma10() {
    proxy_scenario(Os::Alma10);
}

fn proxy_scenario(os: Os) {
    let Some(env) = env() else { return };
    let admin = Admin::new();
    let proxy = "http://proxy.invalid:3128";
    let t = render(
        &config_of(
            os,
            &admin,
            &format!(
                "[proxy]\nhttp = \"{proxy}\"\nhttps = \"{proxy}\"\nno_proxy = [\"localhost\"]\n\
                 [registry]\nimage = \"registry:3\"\n"
            ),
        ),
        &[],
    );
    let tb = kickstart_install_of(env, os, &t, "out/kickstart/ks.cfg", Some("registry:3"));
    assert_first_boot_ok(&tb, 5000);
    tb.sh("test -s /etc/distribution/config.yml");
    // The package manager's proxy: yum.conf on CentOS 7, dnf.conf after.
    let pm_conf = if os == Os::Centos7 {
        "/etc/yum.conf"
    } else {
        "/etc/dnf/dnf.conf"
    };
    tb.sh(&format!("grep -qx 'proxy={proxy}' {pm_conf}"));
    let environment = tb.sh("systemctl show docker -p Environment");
    for want in [
        format!("HTTP_PROXY={proxy}"),
        format!("HTTPS_PROXY={proxy}"),
        "NO_PROXY=localhost,127.0.0.1,registry.test".to_string(),
    ] {
        assert!(environment.contains(&want), "{want} not in {environment}");
    }
    // Through 127.0.0.1 docker goes direct (a push through the dead proxy
    // would fail); anywhere else it goes to the proxy.
    tb.sh("docker tag registry:3 127.0.0.1:5000/local/registry:3 && docker push 127.0.0.1:5000/local/registry:3");
    let o = tb.try_sh("docker pull registry.example.org/some/image:1 2>&1");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(out.contains("proxy"), "pull did not go to the proxy: {out}");
}
