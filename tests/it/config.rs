//! Bad config: exit 2, the dotted path and the bad value in the message, no
//! panic, nothing written. Hostile strings in any field are rejected or inert.

use crate::common::{require_tool, Test};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW fixture@regbake";

fn rejects(toml: &str, path: &str, value: &str) {
    let t = Test::new().config(toml).args(&["render"]);
    let t = t.status(2).stderr_contains(path).stderr_contains(value);
    t.check();
    assert!(
        !t.path().join("out").exists(),
        "out/ was written for:\n{toml}"
    );
}

#[test]
fn invalid_values_name_their_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("[user]\nname = \"root\"", "user.name", "root"),
        ("[user]\nname = \"Bad User\"", "user.name", "Bad User"),
        ("[user]\nname = \"9lives\"", "user.name", "9lives"),
        ("[appliance]\nhostname = \"-bad-.example\"", "appliance.hostname", "-bad-.example"),
        ("[appliance]\nhostname = \"under_score.local\"", "appliance.hostname", "under_score"),
        ("[appliance]\nname = \"Registry\"", "appliance.name", "Registry"),
        ("[appliance]\ntimezone = \"../../etc/passwd\"", "appliance.timezone", "passwd"),
        ("[registry]\nport = 70000", "registry.port", "70000"),
        ("[registry]\nport = -1", "registry.port", "-1"),
        ("[vagrant]\nhost_port = 65536", "vagrant.host_port", "65536"),
        ("[storage]\ndata_dir = \"data/registry\"", "storage.data_dir", "data/registry"),
        ("[storage]\ndata_dir = \"/data/../etc\"", "storage.data_dir", "/data/../etc"),
        ("[storage]\ndata_dir = \"/\"", "storage.data_dir", "\"/\""),
        ("[storage]\ndisk = \"sda; rm -rf /\"", "storage.disk", "rm -rf"),
        ("[repos]\nmirror = \"vault.centos.org/7.9.2009\"", "repos.mirror", "vault.centos.org"),
        ("[repos]\ndocker_ce = \"ftp://example.com/x\"", "repos.docker_ce", "ftp://"),
        ("[proxy]\nhttp = \"proxy:3128\"", "proxy.http", "proxy:3128"),
        ("[proxy]\nhttps = \"http://proxy/$(id)\"", "proxy.https", "$(id)"),
        ("[proxy]\nhttp = \"http://p:3128\"\nno_proxy = [\"a b\"]", "proxy.no_proxy[0]", "a b"),
        ("[network]\nmode = \"static\"\naddress = \"192.0.2.300/24\"\ngateway = \"192.0.2.1\"", "network.address", "192.0.2.300/24"),
        ("[network]\nmode = \"static\"\naddress = \"192.0.2.10\"\ngateway = \"192.0.2.1\"", "network.address", "192.0.2.10"),
        ("[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"10.0.0.1\"", "network.gateway", "10.0.0.1"),
        ("[network]\ndns = [\"dns.example\"]", "network.dns[0]", "dns.example"),
        ("[network]\nmode = \"bridge\"", "network.mode", "bridge"),
        ("[user]\nssh_keys = [\"ssh-ed25519 not-base64!\"]", "user.ssh_keys[0]", "not-base64!"),
        ("[user]\nssh_keys = [\"ssh-dss AAAAB3NzaC1kc3MAAACBAP\"]", "user.ssh_keys[0]", "ssh-dss"),
        ("[user]\nssh_keys = [\"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW\"]", "user.ssh_keys[0]", "ssh-rsa"),
        ("[user]\npassword_hash = \"hunter2\"", "user.password_hash", "hunter2"),
        ("[user]\npassword_hash = \"$1$salt$abcdefgh\"", "user.password_hash", "$1$salt"),
        ("[user]\nsudo = \"always\"", "user.sudo", "always"),
        ("[user]\nsudo = \"password\"", "user.sudo", "password"),
        ("[registry.tls]\nmode = \"on\"", "registry.tls.mode", "on"),
        ("[vagrant]\nprovider = \"hyperv\"", "vagrant.provider", "hyperv"),
        ("[appliance]\ndistro = \"centos8\"", "appliance.distro", "centos8"),
        ("[registry]\nimage = \"Registry:2\"", "registry.image", "Registry:2"),
        ("[packages]\nextra = [\"vim; reboot\"]", "packages.extra[0]", "vim; reboot"),
        ("[packer]\nbuilders = [\"docker\"]", "packer.builders[0]", "docker"),
        ("[packer]\niso_checksum = \"md5:abc\"", "packer.iso_checksum", "md5:abc"),
        ("[registry]\nprot = 5000", "registry", "prot"),
    ];
    for (body, path, value) in cases {
        rejects(&format!("version = 1\n{body}\n"), path, value);
    }
    rejects("version = 2\n", "version", "2");
}

#[test]
fn all_problems_are_reported_at_once() {
    let t = Test::new()
        .config("version = 1\n[user]\nname = \"root\"\n[registry]\nport = 70000\n[storage]\ndata_dir = \"rel\"\n")
        .args(&["render"]);
    let o = t.status(2).check();
    for p in ["user.name", "registry.port", "storage.data_dir"] {
        assert!(o.stderr.contains(p), "{p} missing:\n{}", o.stderr);
    }
    assert!(o.stderr.contains("3 problems"), "{}", o.stderr);
}

#[test]
fn bad_key_file_is_a_config_error() {
    let t = Test::new()
        .file("home/.ssh/id_ed25519.pub", "this is not a key\n")
        .args(&["render"]);
    let t = t.status(2).stderr_contains("user.ssh_key_files[0]");
    t.check();
    assert!(!t.path().join("out").exists());
}

#[test]
fn failed_render_keeps_previous_output() {
    let t = Test::new().config(&format!("version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n"));
    let t = t.args(&["render"]);
    t.success();
    let before = t.read("out/kickstart/ks.cfg");
    let t = t
        .config("version = 1\n[user]\nname = \"root\"\n")
        .args(&["render"]);
    let t = t.status(2);
    t.check();
    assert_eq!(t.read("out/kickstart/ks.cfg"), before);
}

/// Every string field, set to hostile values: either exit 2 naming the field,
/// or a render whose outputs all still pass their validators.
#[test]
fn hostile_strings_are_rejected_or_inert() {
    let fields: &[(&str, &str, bool)] = &[
        // (section, key, is_array)
        ("appliance", "name", false),
        ("appliance", "hostname", false),
        ("appliance", "timezone", false),
        ("user", "name", false),
        ("user", "ssh_keys", true),
        ("user", "ssh_key_files", true),
        ("user", "password_hash", false),
        ("network", "device", false),
        ("network", "dns", true),
        ("proxy", "http", false),
        ("proxy", "https", false),
        ("proxy", "no_proxy", true),
        ("repos", "mirror", false),
        ("repos", "docker_ce", false),
        ("packages", "extra", true),
        ("storage", "data_dir", false),
        ("storage", "disk", false),
        ("registry", "image", false),
        ("registry", "container_name", false),
        ("registry.tls", "sans", true),
        ("vagrant", "base_box", false),
        ("vagrant", "box_name", false),
        ("vagrant", "box_version", false),
        ("packer", "iso_url", false),
        ("packer", "iso_checksum", false),
        ("packer", "builders", true),
        ("packer", "accelerator", false),
        ("packer", "output_dir", false),
        ("packer", "ssh_timeout", false),
        ("registry", "http_secret_env", false),
        ("registry", "upload_purge_age", false),
        ("registry.tls", "cert", false),
        ("registry.tls", "key", false),
        ("registry.tls", "ca", false),
        ("registry.storage", "bucket", false),
        ("registry.storage", "region", false),
        ("registry.storage", "endpoint", false),
        ("registry.storage", "access_key_env", false),
        ("registry.storage", "root_directory", false),
        ("registry.mirror", "remote_url", false),
        ("registry.mirror", "username_env", false),
        ("registry.auth.users", "name", false),
        ("registry.auth.users", "password_hash", false),
        ("registry.auth.users", "password_env", false),
    ];
    let payloads = [
        "x\ny",
        "x'y",
        "x\"y",
        "$(touch /tmp/regbake-pwned)",
        "`touch /tmp/regbake-pwned`",
        "x; touch /tmp/regbake-pwned",
        &format!("{KEY}\nssh-ed25519 AAAA injected"),
        &format!("{KEY} $(id)"),
        "https://example.com/$(id)",
        "https://example.com/x\"y",
    ];
    let mut accepted = vec![];
    for (section, key, array) in fields {
        for payload in payloads {
            let mut doc = toml::Table::new();
            doc.insert("version".into(), 1.into());
            let value = if *array {
                toml::Value::Array(vec![payload.into()])
            } else {
                toml::Value::String(payload.to_string())
            };
            let mut inner = toml::Table::new();
            inner.insert(key.to_string(), value);
            if *section == "user" && *key != "ssh_keys" {
                inner.insert("ssh_keys".into(), toml::Value::Array(vec![KEY.into()]));
            }
            // Sections that only apply in a mode get that mode, so the
            // hostile value is really used.
            let mut parts: Vec<&str> = section.split('.').collect();
            let mut node = if parts.last() == Some(&"users") {
                inner.entry("password_env").or_insert("REGBAKE_X".into());
                parts.pop();
                let mut users = toml::Table::new();
                users.insert(
                    "users".into(),
                    toml::Value::Array(vec![toml::Value::Table(inner)]),
                );
                users
            } else {
                inner
            };
            if *section == "registry.storage" {
                node.insert("backend".into(), "s3".into());
            }
            if *section == "registry.tls" {
                node.insert("mode".into(), "files".into());
                for k in ["cert", "key"] {
                    node.entry(k).or_insert("/nonexistent/regbake.pem".into());
                }
            }
            while let Some(last) = parts.pop() {
                let mut parent = toml::Table::new();
                parent.insert(last.to_string(), toml::Value::Table(node));
                node = parent;
            }
            for (k, v) in node {
                doc.insert(k, v);
            }
            let text = toml::to_string(&doc).expect("toml");
            let t = Test::new().config(&text).args(&["render"]);
            let o = t.run();
            assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
            match o.code {
                2 => {
                    // Fields that work together (tls files, auth users) may
                    // be reported by a sibling: the section must be named.
                    let field = if ["registry.tls", "registry.auth.users"].contains(section) {
                        section.to_string()
                    } else {
                        format!("{section}.{key}")
                    };
                    assert!(
                        o.stderr.contains(&field),
                        "{field} not named:\n{}",
                        o.stderr
                    );
                    assert!(!t.path().join("out").exists());
                }
                0 => accepted.push((t, format!("{section}.{key} = {payload:?}"))),
                c => panic!("exit {c} for {section}.{key} = {payload:?}:\n{}", o.stderr),
            }
        }
    }
    assert!(!std::path::Path::new("/tmp/regbake-pwned").exists());
    // What was accepted must be inert: the outputs still pass validation.
    let tools = [
        "ksvalidator",
        "visudo",
        "sshd",
        "shellcheck",
        "systemd-analyze",
    ];
    if tools.iter().all(|t| require_tool(t)) {
        for (t, what) in accepted {
            let o = t.args(&["check"]).run();
            assert_eq!(
                o.code, 0,
                "{what} renders outputs that fail check:\n{}",
                o.stdout
            );
        }
    }
}

/// Issue 12, item 17: a comment with quotes, `$`, a backquote and a
/// backslash is a legal authorized_keys line; it is written as it is, and
/// OpenSSH reads it as the key.
#[test]
fn ssh_key_comments_reach_authorized_keys_as_written() {
    let key = format!(
        r#"{} john's "laptop" $HOME `id` \ $(id)"#,
        &KEY[..KEY.rfind(' ').unwrap()]
    );
    let mut doc = toml::Table::new();
    doc.insert("version".into(), 1.into());
    let mut user = toml::Table::new();
    user.insert(
        "ssh_keys".into(),
        toml::Value::Array(vec![key.clone().into()]),
    );
    doc.insert("user".into(), toml::Value::Table(user));
    let t = Test::new()
        .config(&toml::to_string(&doc).expect("toml"))
        .args(&["render"]);
    t.success();
    let file = "out/overlay/home/ansible/.ssh/authorized_keys";
    assert_eq!(t.read(file), format!("{key}\n"));
    if require_tool("ssh-keygen") {
        let out = std::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(t.path().join(file))
            .output()
            .expect("ssh-keygen");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listed}");
        assert!(listed.contains(r#"john's "laptop" $HOME"#), "{listed}");
    }
}

/// A reader that goes away early (`regbake config | head`) ends regbake the
/// way it ends other Unix tools, by SIGPIPE, never with a panic.
#[test]
fn closed_stdout_ends_quietly() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::ExitStatusExt;

    let mut fds = [0; 2];
    // SAFETY: pipe() fills both descriptors; each is owned exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] and fds[1] are fresh descriptors from pipe().
    drop(unsafe { std::fs::File::from_raw_fd(fds[0]) });
    let write_end = unsafe { std::fs::File::from_raw_fd(fds[1]) };
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .arg("config")
        .current_dir(dir.path())
        .stdout(write_end)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run regbake config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

/// Issue 12, items 11, 12, 15 and 16: values that used to pass.
#[test]
fn addresses_ports_files_and_urls_that_cannot_work_are_refused() {
    let stat = |addr: &str, gw: &str| {
        format!("[network]\nmode = \"static\"\naddress = \"{addr}\"\ngateway = \"{gw}\"")
    };
    let long_host = format!("{}.{}.{}", "a".repeat(60), "b".repeat(60), "c".repeat(13));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            stat("192.0.2.0/24", "192.0.2.1"),
            "network.address",
            "network address",
        ),
        (
            stat("192.0.2.255/24", "192.0.2.1"),
            "network.address",
            "broadcast address",
        ),
        (
            stat("192.0.2.10/24", "192.0.2.255"),
            "network.gateway",
            "broadcast address",
        ),
        (
            stat("192.0.2.10/24", "198.51.100.1"),
            "network.gateway",
            "198.51.100.1",
        ),
        (
            stat("127.0.0.5/8", "127.0.0.1"),
            "network.address",
            "not a unicast",
        ),
        (
            stat("224.0.0.5/24", "224.0.0.1"),
            "network.address",
            "not a unicast",
        ),
        (
            stat("0.0.0.0/1", "0.0.0.1"),
            "network.address",
            "not a unicast",
        ),
        (
            format!("[appliance]\nhostname = \"{long_host}\""),
            "appliance.hostname",
            "at most 64",
        ),
        ("[registry]\nport = 22".into(), "registry.port", "sshd"),
        (
            "[registry]\nmetrics = true\nmetrics_port = 22".into(),
            "registry.metrics_port",
            "22",
        ),
        (
            "[vagrant]\nhost_port = 22".into(),
            "vagrant.host_port",
            "2222",
        ),
        (
            "[vagrant]\nhost_port = 2222".into(),
            "vagrant.host_port",
            "2222",
        ),
        (
            "[repos]\nmirror = \"https://vault.centos.org/7.9.2009?token=abc#frag\"".into(),
            "repos.mirror",
            "query or fragment",
        ),
        (
            "[proxy]\nhttp = \"http://proxy:3128/?x=1\"".into(),
            "proxy.http",
            "query or fragment",
        ),
        (
            "[user]\nssh_key_files = [\"/dev/zero\"]".into(),
            "user.ssh_key_files[0]",
            "a device, not a regular file",
        ),
    ];
    for (body, path, why) in &cases {
        let t = Test::new()
            .config(&format!("version = 1\n{body}\n"))
            .args(&["render"]);
        let t = t.status(2).stderr_contains(path).stderr_contains(why);
        t.check();
        assert!(!t.path().join("out").exists(), "out/ written for:\n{body}");
    }
    // A FIFO as a key file: refused at once instead of waiting for a writer.
    let t = Test::new();
    let fifo = t.path().join("key.fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c string");
    // SAFETY: mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = t
        .config(&format!(
            "version = 1\n[user]\nssh_key_files = [\"{}\"]\n",
            fifo.display()
        ))
        .args(&["render"]);
    t.status(2)
        .stderr_contains("a FIFO, not a regular file")
        .check();
    // The usual ones still pass: a /31 without network or broadcast address.
    Test::new()
        .config(&format!(
            "version = 1\n{}\n",
            stat("192.0.2.0/31", "192.0.2.1")
        ))
        .args(&["render"])
        .success();
}

/// A refused config runs nothing: not even `packer version`, which the
/// valid path asks (once, cached) for `required_plugins = "auto"`.
#[test]
fn a_refused_config_runs_no_program() {
    for cmd in ["render", "check", "vagrant", "packer"] {
        let t = Test::new()
            .config("version = 1\n[user]\nname = \"root\"\n")
            .stub(
                "packer",
                "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/../packer.log\"\necho 'Packer v1.6.6'\n",
            )
            .args(&[cmd]);
        let t = t.status(2).stderr_contains("user.name");
        t.check();
        assert!(
            !t.path().join("packer.log").exists(),
            "{cmd}: {}",
            t.read("packer.log")
        );
    }
}

/// Issue 18 §18: the metrics port is bound only with metrics on, so with
/// them off the registry may take the default metrics port (5001); on, the
/// two must differ.
#[test]
fn metrics_port_collides_only_with_metrics_on() {
    let t = Test::new()
        .config(&format!(
            "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry]\nport = 5001\n"
        ))
        .args(&["render"]);
    t.success();
    let unit = t.read("out/overlay/etc/systemd/system/regbake-registry.service");
    assert!(unit.contains("-p 5001:5001 "), "{unit}");
    assert!(!unit.contains("127.0.0.1:5001"), "{unit}");
    rejects(
        "version = 1\n[registry]\nport = 5001\nmetrics = true\n",
        "registry.metrics_port",
        "5001",
    );
}

/// A FIFO at `path`, and a guard that, after `after`, keeps opening its
/// write end (non-blocking, so only while a reader waits) and closing it:
/// a regbake that still waits on the FIFO then reads an empty file and fails
/// its test instead of hanging it.
struct Fifo {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fifo {
    fn new(path: &std::path::Path, after: std::time::Duration) -> Fifo {
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::Ordering;
        let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("c string");
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, path) = (stop.clone(), path.to_path_buf());
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if start.elapsed() >= after {
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&path);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        Fifo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 18 §16: `-c`, `--inventory` and `probe --ca` take regular files
/// of a bounded size, as key files do: a FIFO is refused at once (it
/// blocked, holding out/.lock for `kickstart`), a device is not read, a
/// large file is refused; exit 2 naming the option, the path and what is
/// accepted. A missing file is still an I/O error (exit 1).
#[test]
fn config_inventory_and_ca_must_be_small_regular_files() {
    let mut t = Test::new().config(&format!("version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n"));
    let _fifo = Fifo::new(&t.path().join("fifo"), std::time::Duration::from_secs(10));
    std::fs::write(t.path().join("big.toml"), "#".repeat((1 << 20) + 1)).expect("write");
    let started = std::time::Instant::now();
    for (args, said) in [
        (
            &["-c", "fifo", "render"][..],
            "-c/--config = \"fifo\": a FIFO, not a regular file; expected a regbake.toml (a regular file of at most 1 MiB)",
        ),
        (
            &["-c", "/dev/null", "render"],
            "-c/--config = \"/dev/null\": a device, not a regular file",
        ),
        (
            &["-c", "big.toml", "render"],
            "-c/--config = \"big.toml\": larger than 1 MiB; expected a regbake.toml",
        ),
        (
            &["kickstart", "--inventory", "fifo"],
            "--inventory = \"fifo\": a FIFO, not a regular file; expected an Ansible INI inventory (a regular file of at most 128 MiB)",
        ),
        (
            &["kickstart", "--inventory", "/dev/null"],
            "--inventory = \"/dev/null\": a device, not a regular file",
        ),
        (
            &["probe", "https://127.0.0.1:9/", "--ca", "fifo"],
            "'--ca <PEM>': a FIFO, not a regular file; expected a PEM CA certificate file of at most 1 MiB",
        ),
        (
            &["probe", "https://127.0.0.1:9/", "--ca", "big.toml"],
            "'--ca <PEM>': larger than 1 MiB",
        ),
    ] {
        t = t.args(args).status(2).stderr_contains(said);
        t.check();
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited on the FIFO"
    );
    assert!(!t.path().join("out/kickstart").exists());
    let t = t.args(&["-c", "missing.toml", "render"]);
    let t = t.status(1).stderr_contains("reading config missing.toml");
    t.check();
    t.args(&["probe", "https://127.0.0.1:9/", "--ca", "missing.pem"])
        .status(1)
        .stderr_contains("reading --ca missing.pem")
        .check();
}
