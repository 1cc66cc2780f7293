//! The appliance testbed (README.md, "The appliance testbed"): a Debian 12
//! root booted with systemd as PID 1 in a container, with its own dockerd,
//! bash 4.2 as `/bin/bash` and recording stubs for what only CentOS has
//! (rpm, yum, semanage, restorecon, firewall-cmd, update-ca-trust,
//! hostnamectl). `tests/testbed/build` builds it (content-cached) and the
//! stand-in `registry:2`/`registry:3` images; `tests/testbed/dockerd` finds
//! or starts the engine.
//!
//! Every testbed sits on an `--internal` Docker network: nothing outside it
//! is reachable from inside (no image can be pulled), and the host reaches
//! it by its address, so no ports are published.
//!
//! What it does not prove: it is Debian's systemd 252 and docker 20.10, not
//! CentOS 7's systemd 219 and docker-ce 26; anaconda, yum and SELinux are
//! stubbed.
//!
//! The scenarios run for CentOS 7, Rocky Linux 9 and AlmaLinux 10 ([`Os`]):
//! the same root, with the distro's bash as `/bin/bash` (4.2; EL9's 5.1.8;
//! Debian's 5.2.15 for EL10's 5.2.26) and a `dnf` stub beside `yum`.
//! systemd 252 is EL9's own major; EL10 has 257.

mod bakes;
mod client;
mod gc;
mod hardening;
mod install_status;
mod net;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{bash42, repo, require_tool};
pub(crate) use client::{probe, render, Admin};

/// The testbeds' network; docker's gateway is `.1`.
const SUBNET: &str = "172.30.213";

/// A fixed address on the testbeds' network (`n` from 2 to 127).
pub(crate) fn static_ip(n: u8) -> String {
    format!("{SUBNET}.{n}")
}

/// A distro the scenarios run for, and what differs for it in the testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Centos7,
    Rocky9,
    Alma10,
}

impl Os {
    /// `appliance.distro`.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Os::Centos7 => "centos7",
            Os::Rocky9 => "rocky9",
            Os::Alma10 => "alma10",
        }
    }

    /// The distro's default registry image.
    pub(crate) fn registry(self) -> &'static str {
        match self {
            Os::Centos7 => "registry:2",
            _ => "registry:3",
        }
    }

    /// Where that registry reads its config.
    pub(crate) fn registry_config(self) -> &'static str {
        match self {
            Os::Centos7 => "/etc/docker/registry/config.yml",
            _ => "/etc/distribution/config.yml",
        }
    }

    /// The package manager the appliance's scripts call.
    pub(crate) fn pm(self) -> &'static str {
        match self {
            Os::Centos7 => "yum",
            _ => "dnf",
        }
    }

    /// `PM -y install` of the base packages, as regbake-install asks it.
    pub(crate) fn install_call(self, extra: &str) -> String {
        let base = match self {
            Os::Centos7 => "yum -y install lvm2 device-mapper-persistent-data container-selinux libcgroup docker-ce curl firewalld policycoreutils-python",
            _ => "dnf -y install lvm2 device-mapper-persistent-data container-selinux docker-ce firewalld policycoreutils-python-utils",
        };
        format!("{base}{extra}")
    }

    /// `PM … group install` of `group`, as regbake-install asks it.
    pub(crate) fn group_call(self, group: &str) -> String {
        match self {
            Os::Centos7 => format!("yum -y groupinstall {group}"),
            _ => format!("dnf -y group install {group}"),
        }
    }

    /// The bash its testbed has as /bin/bash.
    pub(crate) fn bash(self) -> &'static str {
        match self {
            Os::Centos7 => "4.2.45",
            Os::Rocky9 => "5.1.8",
            Os::Alma10 => "5.2.15",
        }
    }
}

/// The images and the engine every testbed uses.
pub(crate) struct Env {
    docker_host: String,
    image: String,
    el9_image: String,
    el10_image: String,
    network: String,
    registry2_tar: PathBuf,
    registry3_tar: PathBuf,
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds (or finds cached) the testbed once per test run. `None`: a skip
/// (tools missing, not under `REGBAKE_REQUIRE_TOOLS=1`).
pub(crate) fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    let found = ENV.get_or_init(|| {
        for tool in [
            "docker",
            "debootstrap",
            "docker-registry",
            "ssh",
            "ssh-keygen",
        ] {
            if !require_tool(tool) {
                return Err(format!("{tool} is not installed"));
            }
        }
        bash42().ok_or("bash 4.2 cannot be built")?;
        let dockerd = Command::new(repo().join("tests/testbed/dockerd"))
            .output()
            .map_err(|e| format!("tests/testbed/dockerd: {e}"))?;
        if !dockerd.status.success() {
            return Err(format!("tests/testbed/dockerd failed:\n{}", text(&dockerd)));
        }
        let out = String::from_utf8_lossy(&dockerd.stdout);
        let docker_host = out
            .split(';')
            .next()
            .and_then(|s| s.trim().strip_prefix("DOCKER_HOST="))
            .ok_or(format!("tests/testbed/dockerd printed {out:?}"))?
            .trim_matches('\'')
            .to_string();
        let t0 = Instant::now();
        let build = Command::new(repo().join("tests/testbed/build"))
            .env("DOCKER_HOST", &docker_host)
            .output()
            .map_err(|e| format!("tests/testbed/build: {e}"))?;
        if !build.status.success() {
            return Err(format!("tests/testbed/build failed:\n{}", text(&build)));
        }
        eprintln!("testbed images ready in {:.1}s", t0.elapsed().as_secs_f64());
        let vars = String::from_utf8_lossy(&build.stdout).into_owned();
        let var = |name: &str| {
            vars.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or(format!("tests/testbed/build printed no {name}:\n{vars}"))
        };
        let env = Env {
            docker_host,
            image: var("TESTBED_IMAGE")?,
            el9_image: var("TESTBED_EL9_IMAGE")?,
            el10_image: var("TESTBED_EL10_IMAGE")?,
            network: "regbake-testbed".into(),
            registry2_tar: var("REGISTRY2_TAR")?.into(),
            registry3_tar: var("REGISTRY3_TAR")?.into(),
        };
        net::ensure(&env)?;
        Ok(env)
    });
    match found {
        Ok(e) => Some(e),
        Err(why) if std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("testbed: {why} (REGBAKE_REQUIRE_TOOLS=1)")
        }
        Err(why) => {
            eprintln!("SKIPPED: testbed: {why}");
            None
        }
    }
}

impl Env {
    /// The engine the testbed's images are in.
    pub(crate) fn docker_host(&self) -> &str {
        &self.docker_host
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("running docker")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The testbed image of `os`.
    fn image(&self, os: Os) -> &str {
        match os {
            Os::Centos7 => &self.image,
            Os::Rocky9 => &self.el9_image,
            Os::Alma10 => &self.el10_image,
        }
    }

    /// The `docker save` of the stand-in for `image` (registry:2 or :3).
    pub(crate) fn registry_tar(&self, image: &str) -> &Path {
        if image.ends_with(":3") {
            &self.registry3_tar
        } else {
            &self.registry2_tar
        }
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "regbake-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A container of the testbed image: the installer (no init, like anaconda's
/// chroot) or a booted machine (systemd as PID 1). The appliance's data dir
/// is a bind mount (overlay on overlay does not work for the inner docker),
/// kept across reboots like a disk.
pub(crate) struct Testbed {
    env: &'static Env,
    pub name: String,
    data: tempfile::TempDir,
    data_dir: String,
    /// Images committed from an installer, removed on drop.
    committed: Vec<String>,
    /// A fixed address on the network ([`static_ip`]).
    ip: Option<String>,
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::env::var_os("REGBAKE_KEEP_TESTBED").is_some() {
            eprintln!("kept testbed {} (REGBAKE_KEEP_TESTBED)", self.name);
            return;
        }
        let _ = self.env.docker(&["rm", "-f", "-v", &self.name]);
        for image in &self.committed {
            let _ = self.env.docker(&["rmi", "-f", image]);
        }
    }
}

impl Testbed {
    fn run_args(&self, init: bool) -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "-d",
            "--name",
            &self.name,
            "--hostname",
            "testbed",
            "--network",
            &self.env.network,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "label=disable",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
        ]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
        a.push("-v".into());
        a.push(format!("{}:{}", self.data.path().display(), self.data_dir));
        if let Some(ip) = &self.ip {
            a.extend(["--ip".into(), ip.clone()]);
        }
        if init {
            a.extend(["--entrypoint".into(), "/sbin/init".into()]);
        } else {
            a.extend(["--entrypoint".into(), "/bin/sleep".into()]);
        }
        a
    }

    fn start(&self, image: &str, init: bool) {
        let mut args = self.run_args(init);
        args.push(image.to_string());
        if !init {
            args.push("infinity".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.docker_ok(&args);
        // Docker bind-mounts its own /etc/hostname, which the overlay
        // replaces (tar cannot replace a mount point): the machine's own file.
        let _ = self.try_sh("umount /etc/hostname");
    }

    fn new(env: &'static Env, prefix: &str, data_dir: &str) -> Self {
        Self {
            env,
            name: unique(prefix),
            data: tempfile::Builder::new()
                .prefix("regbake-testbed-data-")
                .tempdir()
                .expect("data dir"),
            data_dir: data_dir.to_string(),
            committed: vec![],
            ip: None,
        }
    }

    /// The machine during its installation: the testbed root with no init
    /// and no docker daemon, as anaconda's %post sees the target.
    pub(crate) fn installer(env: &'static Env, data_dir: &str) -> Self {
        Self::installer_of(env, Os::Centos7, data_dir)
    }

    /// [`Testbed::installer`] of `os`.
    pub(crate) fn installer_of(env: &'static Env, os: Os, data_dir: &str) -> Self {
        let t = Self::new(env, "install", data_dir);
        t.start(env.image(os), false);
        t
    }

    /// [`Testbed::installer_of`] a machine with a fixed address.
    pub(crate) fn installer_at(env: &'static Env, os: Os, data_dir: &str, ip: &str) -> Self {
        let mut t = Self::new(env, "install", data_dir);
        t.ip = Some(ip.to_string());
        t.start(env.image(os), false);
        t
    }

    /// A machine of `os` that booted the testbed image as it is (a base box).
    pub(crate) fn boot(env: &'static Env, os: Os, data_dir: &str) -> Self {
        let t = Self::new(env, "boot", data_dir);
        t.start(env.image(os), true);
        t.wait_booted();
        t
    }

    /// The installer's "reboot": what it wrote becomes the machine's disk,
    /// booted with systemd (the data dir stays the same bind mount).
    pub(crate) fn reboot_installed(&mut self) {
        let image = format!("{}:installed", self.name);
        self.env.docker_ok(&["commit", &self.name, &image]);
        self.committed.push(image.clone());
        self.env.docker_ok(&["rm", "-f", &self.name]);
        self.start(&image, true);
        self.wait_booted();
    }

    /// A reboot: systemd stops everything (SIGRTMIN+3) and boots again.
    pub(crate) fn reboot(&self) {
        self.env.docker_ok(&["restart", "-t", "60", &self.name]);
        self.wait_booted();
    }

    fn wait_booted(&self) {
        // Generous: CI boots several of these at once on two cores.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let o = self.exec_raw(&["systemctl", "is-system-running"], &[]);
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            match state.as_str() {
                "running" => return,
                "degraded" => {
                    // A unit of the appliance may have failed on purpose;
                    // the scenario says which must be up.
                    let failed = self.sh("systemctl --failed --no-legend || true");
                    eprintln!("{}: booted degraded:\n{failed}", self.name);
                    return;
                }
                _ if Instant::now() > deadline => panic!(
                    "{} did not boot (state {state:?}; systemctl: {})\n{}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr).trim(),
                    self.post_mortem()
                ),
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// What the engine knows of a machine that did not boot: its state and
    /// the console (systemd's own messages), then what a shell inside sees.
    fn post_mortem(&self) -> String {
        let inspect = self.env.docker(&[
            "inspect",
            "-f",
            "status={{.State.Status}} exit={{.State.ExitCode}} oom={{.State.OOMKilled}} \
             error={{.State.Error}} started={{.State.StartedAt}} finished={{.State.FinishedAt}}",
            &self.name,
        ]);
        let logs = self.env.docker(&["logs", "--tail", "60", &self.name]);
        let inside = self.try_sh(
            "ps -eo pid,stat,etime,args 2>&1 | head -40; \
             systemctl list-jobs --no-pager 2>&1 | head -20",
        );
        format!(
            "docker inspect: {}\nconsole:\n{}\ninside:\n{}",
            text(&inspect).trim(),
            text(&logs),
            text(&inside)
        )
    }

    fn exec_raw(&self, cmd: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args: Vec<String> = vec!["exec".into()];
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(self.name.clone());
        args.extend(cmd.iter().map(std::string::ToString::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.docker(&args)
    }

    /// A shell command as root inside (bash 4.2); its output, or a panic
    /// with everything it printed.
    pub(crate) fn sh(&self, script: &str) -> String {
        let o = self.try_sh(script);
        assert!(
            o.status.success(),
            "{}: `{script}` failed ({}):\n{}",
            self.name,
            o.status,
            text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub(crate) fn try_sh(&self, script: &str) -> Output {
        self.exec_raw(&["/bin/bash", "-c", script], &[])
    }

    pub(crate) fn exec_env(&self, cmd: &[&str], env: &[(&str, &str)]) -> Output {
        self.exec_raw(cmd, env)
    }

    /// Copy a host file in, with the given owner and mode.
    pub(crate) fn put(&self, host: &Path, dest: &str, owner: &str, mode: u32) {
        self.env.docker_ok(&[
            "cp",
            &host.display().to_string(),
            &format!("{}:{dest}", self.name),
        ]);
        self.sh(&format!(
            "chown {owner} '{dest}' && chmod {mode:o} '{dest}'"
        ));
    }

    pub(crate) fn write(&self, dest: &str, data: &[u8], mode: u32) {
        let tmp = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(tmp.path(), data).expect("write temp file");
        self.put(tmp.path(), dest, "root:root", mode);
    }

    /// The testbed's address on the internal network.
    pub(crate) fn ip(&self) -> String {
        self.env.docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &self.name,
        ])
    }

    /// What the CentOS-only stubs were asked, one call a line.
    pub(crate) fn stub_calls(&self) -> String {
        self.sh("cat /var/log/regbake-stubs.log 2>/dev/null || true")
    }

    /// Wait until `unit` has finished starting: its ActiveState.
    pub(crate) fn wait_unit(&self, unit: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self
                .sh(&format!("systemctl show -p ActiveState --value {unit}"))
                .trim()
                .to_string();
            if !["activating", "deactivating", "reloading"].contains(&state.as_str())
                || Instant::now() > deadline
            {
                return state;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Wait until the registry answers GET /v2/ on `url` from inside.
    pub(crate) fn wait_registry(&self, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let code = self.sh(&format!(
                "curl -sk --noproxy '*' -o /dev/null -w '%{{http_code}}' \
                 https://127.0.0.1:{port}/v2/ 2>/dev/null | grep -qE '200|401' && echo up; \
                 curl -s --noproxy '*' -o /dev/null -w '%{{http_code}}' \
                 http://127.0.0.1:{port}/v2/ 2>/dev/null | grep -qE '200|401' && echo up; true"
            ));
            if code.contains("up") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// Files, modes, owners and contents under the appliance's paths: what a
    /// second run of a script must leave as it was.
    pub(crate) fn state(&self) -> String {
        self.sh(
            "cd / && find etc/ssh etc/sudoers.d etc/systemd/system etc/docker etc/yum.repos.d \
             etc/firewalld etc/pki/ca-trust opt/docker home usr/local/sbin var/lib/regbake \
             var/lib/registry etc/localtime etc/hostname etc/passwd etc/group etc/shadow \
             -maxdepth 0 -o -print 2>/dev/null | sort | while read -r f; do \
             if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
             elif [ -d \"$f\" ]; then stat -c '%n %a %U:%G' \"$f\"; \
             else echo \"$(stat -c '%n %a %U:%G' \"$f\") $(md5sum < \"$f\" | cut -c1-32)\"; fi; done",
        )
    }
}
