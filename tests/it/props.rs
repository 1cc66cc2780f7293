//! Generated config values through the real binary: every string field that
//! reaches a shell script, kickstart, sudoers, unit file, Vagrantfile or
//! Packer template is either refused (exit 2, the message naming the field)
//! or rendered into files that pass their validators and give the value back
//! when read by the real reader of each language.
//!
//! A case sets all the fields at once. Refused fields are dropped and the
//! rest rendered again, until the render succeeds; then every field still
//! set is read back from each file it reaches.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use crate::common::{require_tool, Test};

const KEY_BODY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW";

/// `ssh-keygen -l` of [`KEY_BODY`].
const KEY_SHA256: &str = "SHA256:WfQUu7/qoU5mcLhd/GYju5oMRhOaXALmdMSLCgj8pzo";

/// Pieces that mean something to one of the target languages.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "\n", "\r", "\t", " ", "'", "\"", "`", "\\", "$", "$(id)", "%", "%n", "%%", "#", ";",
    "|", "&", "!", "~", "*", "?", "[", "]", "(", ")", "<", ">", "=", "-", "--", "{{", "}}",
    "${", "%{", "#{", "@", ":", "/", ".", ",", "+", "é", "e\u{301}", "\u{7f}", "\u{85}",
    "\u{a0}", "\u{2028}", "\u{feff}", "\u{fffe}", "😀",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(PIECES).prop_map(str::to_string),
        1 => any::<char>()
            .prop_filter("NUL cannot be passed", |c| *c != '\0')
            .prop_map(String::from),
    ]
}

/// A value of the shape `valid` matches, most of the time with something
/// hostile put inside it.
fn spoiled(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => valid.prop_map(|s| s),
        3 => (valid, piece(), 0..64usize).prop_map(|(mut s, p, at)| {
            let at = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).nth(at % (s.len() + 1)).unwrap_or(0);
            s.insert_str(at, &p);
            s
        }),
    ]
}

/// Beyond ASCII, some of them changed by a reader: HCL normalises to NFC
/// (combining marks, the Angstrom sign, compatibility ideographs) and
/// systemd refuses noncharacters.
#[rustfmt::skip]
const NON_ASCII: &[&str] = &[
    "é", "e\u{301}", "\u{212b}", "\u{f900}", "\u{fffe}", "\u{fdd0}", "\u{feff}", "😀", "\u{10ffff}",
];

/// An http(s) URL with the characters URLs may hold, and some they may not.
fn url() -> impl Strategy<Value = String> {
    let path = prop::collection::vec(
        prop_oneof![
            6 => "[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]{1,6}",
            1 => piece(),
            1 => prop::sample::select(NON_ASCII).prop_map(str::to_string),
        ],
        0..5,
    );
    (
        "https?",
        "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,4}){0,2}",
        "(:[0-9]{1,5})?",
        path,
    )
        .prop_map(|(scheme, host, port, path)| format!("{scheme}://{host}{port}/{}", path.concat()))
}

/// The fields under test: dotted path, value.
fn fields() -> impl Strategy<Value = BTreeMap<&'static str, String>> {
    (
        (
            spoiled("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,2}"),
            spoiled("[a-z_][a-z0-9_-]{0,12}"),
            spoiled("[A-Za-z_+-][A-Za-z0-9_+-]{0,8}(/[A-Za-z_+-][A-Za-z0-9_+-]{0,8})?"),
            spoiled("[a-z0-9._-]{1,8}"),
            spoiled("[A-Za-z0-9@.:'\" _$`\\\\-]{0,16}"),
        ),
        (url(), url(), url(), url()),
        (
            spoiled("([a-z0-9.-]{1,8}(:[0-9]{1,4})?/)?[a-z0-9][a-z0-9._-]{0,8}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,6})?"),
            spoiled("[a-z0-9][a-z0-9._-]{0,8}(/[a-z0-9][a-z0-9._-]{0,8})?"),
        ),
    )
        .prop_map(|((host, user, tz, dev, comment), (http, https, mirror, iso), (image, boxname))| {
            BTreeMap::from([
                ("appliance.hostname", host),
                ("user.name", user),
                ("appliance.timezone", tz),
                ("network.device", dev),
                ("user.ssh_keys[0]", format!("{KEY_BODY} {comment}")),
                ("proxy.http", http),
                ("proxy.https", https),
                ("repos.mirror", mirror),
                ("packer.iso_url", iso),
                ("registry.image", image),
                ("vagrant.base_box", boxname),
            ])
        })
}

/// The config for the fields still set; the others keep their defaults.
fn config_toml(fields: &BTreeMap<&str, String>) -> String {
    let mut doc = toml::Table::new();
    doc.insert("version".into(), 1.into());
    for (path, value) in fields {
        let (path, value) = match path.strip_suffix("[0]") {
            Some(p) => (p, toml::Value::Array(vec![value.as_str().into()])),
            None => (*path, toml::Value::String(value.clone())),
        };
        let (section, key) = path.split_once('.').expect("section.key");
        doc.entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a table")
            .insert(key.into(), value);
    }
    if let Some(proxy) = doc.get_mut("proxy").and_then(|p| p.as_table_mut()) {
        proxy.insert("no_proxy".into(), toml::Value::Array(vec![]));
    }
    let user = doc
        .entry("user")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a table");
    user.insert("ssh_key_files".into(), toml::Value::Array(vec![]));
    user.entry("ssh_keys")
        .or_insert_with(|| toml::Value::Array(vec![KEY_BODY.into()]));
    toml::to_string(&doc).expect("toml")
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// Runs `cmd`: its stdout, or a failed case with its stderr.
fn run(cmd: &mut Command) -> Result<String, TestCaseError> {
    let out = cmd.output().map_err(|e| fail(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// pykickstart, started once: reads a kickstart path per line and answers
/// what it parsed, as JSON.
struct Kickstart {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

const KICKSTART: &str = r#"
import json, sys, traceback
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion, RHEL7
for path in sys.stdin:
    try:
        h = makeVersion(RHEL7)
        KickstartParser(h, followIncludes=False).readKickstart(path.rstrip("\n"))
        out = {"ok": {
            "hostname": h.network.network[0].hostname,
            "device": h.network.network[0].device,
            "timezone": h.timezone.timezone,
            "users": [u.name for u in h.user.userList],
            "url": h.url.url,
            "proxy": h.url.proxy,
        }}
    except Exception:
        out = {"error": traceback.format_exc()}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"#;

impl Kickstart {
    fn start() -> Kickstart {
        let mut child = Command::new("python3")
            .args(["-c", KICKSTART])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Kickstart { child, out }
    }

    fn read(&mut self, path: &Path) -> Result<serde_json::Value, TestCaseError> {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{}", path.display())
            .and_then(|()| stdin.flush())
            .map_err(fail)?;
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(fail)?;
        let mut answer: serde_json::Value = serde_json::from_str(&line).map_err(fail)?;
        match answer.get_mut("ok") {
            Some(ok) => Ok(ok.take()),
            None => Err(fail(format!(
                "pykickstart, {}: {}",
                path.display(),
                answer["error"]
            ))),
        }
    }
}

impl Drop for Kickstart {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The variables a script sets before its first function, as bash reads
/// them (`names` printed NUL-separated).
fn shell_vars(script: &str, names: &[&str]) -> Result<Vec<String>, TestCaseError> {
    let start = script
        .find("\nROOT=")
        .ok_or_else(|| fail("no ROOT= in the script"))?;
    let end = script
        .find("\nlog() {")
        .ok_or_else(|| fail("no log() in the script"))?;
    let print: Vec<String> = names.iter().map(|n| format!("\"${n}\"")).collect();
    let prog = format!(
        "set -eu\n{}\nprintf '%s\\0' {}",
        &script[start..end],
        print.join(" ")
    );
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(prog)
        .env_remove("REGBAKE_ROOT"))?;
    Ok(out.split_terminator('\0').map(str::to_string).collect())
}

/// `systemd --test` (the manager's own parser; it refuses to run as root,
/// so as nobody) loading the docker drop-ins over a stub docker.service:
/// its dump of what it parsed.
fn systemd_dump(dropins: &Path, scratch: &Path) -> Result<String, TestCaseError> {
    use std::os::unix::fs::PermissionsExt;
    let units = scratch.join("units");
    let dir = units.join("docker.service.d");
    std::fs::create_dir_all(&dir).map_err(fail)?;
    for f in std::fs::read_dir(dropins).map_err(fail)? {
        let f = f.map_err(fail)?;
        std::fs::copy(f.path(), dir.join(f.file_name())).map_err(fail)?;
    }
    std::fs::write(
        units.join("docker.service"),
        "[Unit]\nDescription=stub\nDefaultDependencies=no\n\n[Service]\nExecStart=/bin/true\n",
    )
    .map_err(fail)?;
    for p in [scratch, &units, &dir] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("docker.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .output()
        .map_err(fail)?;
    let said = String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !said.trim().is_empty() {
        return Err(fail(format!("systemd-analyze verify: {said}")));
    }
    let manager = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| fail("no systemd manager binary"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", manager]);
        c
    } else {
        Command::new(manager)
    };
    let out = cmd
        .args([
            "--test",
            "--system",
            "--unit=docker.service",
            "--log-target=console",
        ])
        .env("SYSTEMD_UNIT_PATH", &units)
        .output()
        .map_err(fail)?;
    let said = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || said.contains("docker.service.d") {
        return Err(fail(format!("systemd --test: {said}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Render until regbake accepts what is left: each exit 2 must name some
/// of the fields, which are then dropped.
fn render_what_is_accepted(
    mut fields: BTreeMap<&'static str, String>,
) -> Result<(Test, BTreeMap<&'static str, String>), TestCaseError> {
    loop {
        let toml = config_toml(&fields);
        let t = Test::new().config(&toml).args(&["render"]);
        let o = t.run();
        prop_assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
        match o.code {
            0 => return Ok((t, fields)),
            2 => {
                let named: Vec<&str> = fields
                    .keys()
                    .copied()
                    .filter(|f| o.stderr.contains(&format!("- {f} = ")))
                    .collect();
                prop_assert!(
                    !named.is_empty(),
                    "exit 2 naming none of the fields:\n{}\n{}",
                    toml,
                    o.stderr
                );
                prop_assert!(!t.path().join("out").exists(), "out/ written on exit 2");
                for f in named {
                    fields.remove(f);
                }
            }
            c => prop_assert!(false, "exit {c}:\n{toml}\n{}", o.stderr),
        }
    }
}

/// Each field either refused by name, or read back from every file it
/// reaches by that file's reader: pykickstart (both kickstarts), bash (the
/// appliance scripts), visudo and cvtsudoers (sudoers), ssh-keygen
/// (authorized_keys), systemd (docker's proxy drop-ins), ruby (the
/// Vagrantfile, recorded as tests/it/vagrant.rs does) and Packer (`packer
/// console` printing the template's variables).
#[test]
fn config_values_are_refused_or_read_back() {
    let tools = [
        "python3",
        "bash",
        "visudo",
        "cvtsudoers",
        "ssh-keygen",
        "systemd-analyze",
        "setpriv",
        "ruby",
        "packer",
    ];
    if !tools.iter().all(|t| require_tool(t)) {
        return;
    }
    let ks = RefCell::new(Kickstart::start());
    proptest!(config(32), |(fields in fields())| {
        let (t, kept) = render_what_is_accepted(fields)?;
        let out = t.path().join("out");
        let get = |f: &str, default: &str| kept.get(f).cloned().unwrap_or_else(|| default.into());
        let hostname = get("appliance.hostname", "registry.local");
        let user = get("user.name", "ansible");
        let key = get("user.ssh_keys[0]", KEY_BODY);
        let proxy = kept.contains_key("proxy.http") || kept.contains_key("proxy.https");
        let http = get("proxy.http", "");
        let https = get("proxy.https", "");
        let mirror = get("repos.mirror", "https://vault.centos.org/7.9.2009");

        // Kickstarts: pykickstart reads them, and the values.
        for file in ["kickstart/ks.cfg", "packer/http/ks.cfg"] {
            let got = ks.borrow_mut().read(&out.join(file))?;
            prop_assert_eq!(&got["hostname"], &serde_json::json!(hostname), "{}", file);
            prop_assert_eq!(&got["device"], &serde_json::json!(get("network.device", "link")), "{}", file);
            prop_assert_eq!(&got["timezone"], &serde_json::json!(get("appliance.timezone", "UTC")), "{}", file);
            prop_assert_eq!(&got["users"], &serde_json::json!([user]), "{}", file);
            let os_url = format!("{}/os/x86_64/", mirror.trim_end_matches('/'));
            prop_assert_eq!(&got["url"], &serde_json::json!(os_url), "{}", file);
            let installer = if https.is_empty() { &http } else { &https };
            let want_proxy = if proxy { serde_json::json!(installer) } else { serde_json::json!("") };
            prop_assert_eq!(&got["proxy"], &want_proxy, "{}", file);
        }

        // Appliance scripts: bash reads the assignments back.
        let firstboot = t.read("out/overlay/usr/local/sbin/regbake-firstboot");
        prop_assert_eq!(shell_vars(&firstboot, &["IMAGE"])?, vec![get("registry.image", "registry:2")]);
        let install = t.read("out/overlay/usr/local/sbin/regbake-install");
        prop_assert_eq!(shell_vars(&install, &["USER_NAME"])?, vec![user.clone()]);

        // sudoers: visudo accepts it, sudo's parser reads the user back.
        let sudoers = out.join(format!("overlay/etc/sudoers.d/{user}"));
        run(Command::new("visudo").args(["-c", "-q", "-f"]).arg(&sudoers))?;
        let spec: serde_json::Value = serde_json::from_str(&run(
            Command::new("cvtsudoers").args(["-f", "json"]).arg(&sudoers),
        )?)
        .map_err(fail)?;
        prop_assert_eq!(&spec["User_Specs"][0]["User_List"][0]["username"], &serde_json::json!(user));
        prop_assert_eq!(&spec["Defaults"][0]["Binding"][0]["username"], &serde_json::json!(user));

        // authorized_keys: the key line as configured, and a key to OpenSSH.
        let authorized = t.read(&format!("out/overlay/home/{user}/.ssh/authorized_keys"));
        prop_assert_eq!(authorized.lines().collect::<Vec<_>>(), vec![key.as_str()]);
        let listed = run(Command::new("ssh-keygen").arg("-l").arg("-f").arg(out.join(format!("overlay/home/{user}/.ssh/authorized_keys"))))?;
        prop_assert_eq!(listed.lines().count(), 1, "{}", listed);
        // OpenSSH reads each line as the configured key. (The comment is
        // compared in the file: ssh-keygen shows it escaped, or not at all
        // when it starts with '#', and sshd ignores it.)
        prop_assert!(listed.starts_with(&format!("256 {KEY_SHA256} ")), "{}", listed);

        // docker's proxy drop-ins: systemd holds the values.
        if proxy {
            let scratch = tempfile::tempdir().map_err(fail)?;
            let dump = systemd_dump(&out.join("overlay/etc/systemd/system/docker.service.d"), scratch.path())?;
            let no_proxy = ["localhost", "127.0.0.1", &hostname].join(",");
            let mut want = vec![format!("NO_PROXY={no_proxy}")];
            if !http.is_empty() {
                want.push(format!("HTTP_PROXY={http}"));
            }
            if !https.is_empty() {
                want.push(format!("HTTPS_PROXY={https}"));
            }
            for w in want {
                prop_assert!(dump.contains(&format!("\t\tEnvironment: {w}\n")), "{} not in\n{}", w, dump);
            }
        }

        // Vagrantfile: ruby loads it, the recorder gives the values back.
        let rec = crate::vagrant::record(&out.join("vagrant/Vagrantfile"));
        prop_assert_eq!(&rec["vals"]["vm.box"], &serde_json::json!(get("vagrant.base_box", "centos/7")));
        prop_assert_eq!(&rec["vals"]["vm.hostname"], &serde_json::json!(hostname));
        if proxy {
            prop_assert_eq!(&rec["constants"]["PROVISION_ENV"]["http_proxy"], &serde_json::json!(http));
            prop_assert_eq!(&rec["constants"]["PROVISION_ENV"]["HTTPS_PROXY"], &serde_json::json!(https));
        }

        // Packer: its HCL reader gives the variables back.
        let vars = packer_console(&out.join("packer"), "jsonencode([var.iso_url, var.http_proxy, var.https_proxy])")?;
        let vars: Vec<String> = serde_json::from_str(vars.trim()).map_err(|e| fail(format!("{e}: {vars}")))?;
        let iso = get("packer.iso_url", "https://vault.centos.org/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso");
        prop_assert_eq!(vars, vec![iso, http.clone(), https.clone()]);
    });
}

/// `packer console DIR` evaluating `expr`: Packer parses every file of the
/// template and prints the value.
fn packer_console(dir: &Path, expr: &str) -> Result<String, TestCaseError> {
    let mut child = Command::new("packer")
        .arg("console")
        .arg(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{expr}").map_err(fail)?;
    drop(stdin);
    let out = child.wait_with_output().map_err(fail)?;
    if !out.status.success() {
        return Err(fail(format!(
            "packer console: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
