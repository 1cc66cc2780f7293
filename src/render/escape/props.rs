//! Properties of the quoting helpers, each checked against the real reader of
//! its language: for arbitrary text (quotes, `$`, backquotes, backslashes,
//! `%`, `{{`, `${`, `#{`, line breaks of every kind, control characters, any
//! Unicode but NUL), that reader gives back exactly the value that was quoted.
//! Each case is a batch of values read by one process of the reader, so many
//! values cost few processes. What a language cannot carry is said at its
//! property, and left to the validation (see tests/it/props.rs).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use super::*;

/// Pieces that mean something to one of the target languages.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "\n", "\r", "\r\n", "\t", " ", "'", "\"", "`", "\\", "\\\\", "$", "$$", "%", "%%",
    "#", ";", "|", "&", "!", "~", "*", "?", "[", "]", "(", ")", "<", ">", "=", "-", "--",
    "{{", "}}", "${", "$${", "%{", "%%{", "#{", "'\\''", "%end", "\n__END__\n", "\n=begin\n",
    "é", "e\u{301}", "\u{7f}", "\u{8}", "\u{b}", "\u{c}", "\u{1b}", "\u{1c}", "\u{85}",
    "\u{9f}", "\u{a0}", "\u{2028}", "\u{2029}", "\u{feff}", "\u{fffe}", "\u{ffff}", "😀",
];

/// Arbitrary NUL-free text, biased towards [`PIECES`].
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(PIECES).prop_map(str::to_string),
        3 => "[ -~]{1,6}",
        2 => any::<char>()
            .prop_filter("NUL ends a C string", |c| *c != '\0')
            .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// Values read back by one process.
fn batch(values: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(values, 1..32)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // A failure is kept as a regression unit test, not in a file.
        failure_persistence: None,
        ..Config::default()
    }
}

/// As tests/it/common.rs's `require_tool`: a missing tool fails the test
/// under `REGBAKE_REQUIRE_TOOLS=1` (CI) and skips it otherwise.
fn require(what: &str, found: bool) -> bool {
    if found {
        return true;
    }
    assert!(
        std::env::var("REGBAKE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{what} is required (REGBAKE_REQUIRE_TOOLS=1) but not installed"
    );
    eprintln!("SKIPPED: {what} is not installed");
    false
}

fn tool(name: &str) -> bool {
    require(name, which::which(name).is_ok())
}

fn python_module(module: &str) -> bool {
    let found = tool("python3")
        && Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    require(&format!("the python3 module {module}"), found)
}

/// Runs `cmd` with `input` on its stdin: its stdout, or a failed case that
/// shows the command and its stderr.
fn run(cmd: &mut Command, input: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestCaseError::fail(format!("{cmd:?}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| TestCaseError::fail(format!("{cmd:?}: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(TestCaseError::fail(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// A JSON array of strings printed by a reader.
fn strings(stdout: &[u8]) -> Result<Vec<String>, TestCaseError> {
    serde_json::from_slice(stdout).map_err(|e| {
        TestCaseError::fail(format!(
            "not a JSON array of strings ({e}): {}",
            String::from_utf8_lossy(stdout)
        ))
    })
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("regbake-props-")
        .tempdir()
        .expect("temp dir")
}

/// One python3 process for a whole property: it reads a JSON request per
/// line, answers `{"ok": ...}` or `{"error": traceback}` per line, and so
/// imports its modules once rather than once a case.
struct Python {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

const PYTHON_LOOP: &str = r#"
import json, sys, traceback
for line in sys.stdin:
    try:
        out = {"ok": answer(json.loads(line))}
    except Exception:
        out = {"error": traceback.format_exc()}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"#;

impl Python {
    /// `answer(request)`, defined by `script`, called for each request.
    fn start(script: &str) -> Python {
        let mut child = Command::new("python3")
            .args(["-c", &format!("{script}\n{PYTHON_LOOP}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Python { child, out }
    }

    fn ask(&mut self, request: &serde_json::Value) -> Result<serde_json::Value, TestCaseError> {
        use std::io::BufRead;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .map_err(|e| TestCaseError::fail(format!("python3: {e}")))?;
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .map_err(|e| TestCaseError::fail(format!("python3: {e}")))?;
        let mut answer: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| TestCaseError::fail(format!("python3 answered {line:?}: {e}")))?;
        match answer.get_mut("ok") {
            Some(ok) => Ok(ok.take()),
            None => Err(TestCaseError::fail(format!(
                "python3: {}",
                answer["error"].as_str().unwrap_or(&line)
            ))),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn json_strings(v: serde_json::Value) -> Result<Vec<String>, TestCaseError> {
    serde_json::from_value(v).map_err(|e| TestCaseError::fail(format!("not strings: {e}")))
}

/// `sh(s)` as the argument of `printf '%s'`, evaluated by `sh -c` (dash on
/// Debian) and by bash, prints `s`.
#[test]
fn sh_words_read_back_in_sh_and_bash() {
    let shells: Vec<&str> = ["sh", "bash"].into_iter().filter(|s| tool(s)).collect();
    proptest!(config(256), |(values in batch(text()))| {
        let words: Vec<String> = values.iter().map(|v| sh(v)).collect();
        let script = format!("printf '%s\\0' {}", words.join(" "));
        for shell in &shells {
            let out = run(Command::new(shell).arg("-c").arg(&script), b"")?;
            let out = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<&str> = out.split_terminator('\0').collect();
            prop_assert_eq!(got, values.iter().map(String::as_str).collect::<Vec<_>>(), "{}", shell);
        }
    });
}

/// Where Python's `str.splitlines` ends a line; pykickstart splits the file
/// there before it splits each line into words.
fn python_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

const KICKSTART_USERS: &str = r"
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion, RHEL7
def answer(ks):
    handler = makeVersion(RHEL7)
    KickstartParser(handler).readKickstartFromString(ks)
    return [u.name for u in handler.user.userList]
";

/// `user --name=` + `ks(s)` read by pykickstart itself (it splits the file
/// with `str.splitlines`, then each line with `shlex.split(line,
/// comments=True)`) gives a user named `s`.
///
/// Not carried: a line break of any kind (as `str.splitlines` has them: LF,
/// CR, VT, FF, FS, GS, RS, NEL, LS, PS). A kickstart command is one line and
/// no quoting continues it, so these values are left out here and the
/// validation must refuse them in every field that reaches a kickstart.
/// Nor the value `--` alone: the argparse of this pykickstart drops it from
/// `--name=--` (CentOS 7's anaconda parses options with optparse, which
/// keeps it), so no field that reaches a kickstart may be `--`.
#[test]
fn ks_values_read_back_by_pykickstart() {
    if !python_module("pykickstart") {
        return;
    }
    let one_line = text()
        .prop_map(|s| s.replace(python_line_break, ""))
        .prop_filter("argparse drops a lone --", |s| s != "--");
    let python = std::cell::RefCell::new(Python::start(KICKSTART_USERS));
    proptest!(config(128), |(values in batch(one_line))| {
        let ks: String = values.iter().map(|v| format!("user --name={}\n", ks(v))).collect();
        let got = json_strings(python.borrow_mut().ask(&serde_json::json!(ks))?)?;
        prop_assert_eq!(got, values, "{}", ks);
    });
}

const YAML_AND_JSON: &str = r#"
import json, yaml
def answer(doc):
    return {
        "yaml": yaml.safe_load(doc["yaml"].encode("utf-8")),
        "json": [json.loads(j) for j in doc["json"]],
    }
"#;

/// A YAML list of `yaml(s)` read by PyYAML (a YAML 1.1 reader, as the
/// registry's Go yaml.v2 is) gives back every `s`, and each `json(s)` read by
/// Python's json module gives `s`.
#[test]
fn yaml_and_json_values_read_back_by_python() {
    if !python_module("yaml") {
        return;
    }
    let python = std::cell::RefCell::new(Python::start(YAML_AND_JSON));
    proptest!(config(256), |(values in batch(text()))| {
        let doc: String = values.iter().map(|v| format!("- {}\n", yaml(v))).collect();
        let input = serde_json::json!({
            "yaml": doc,
            "json": values.iter().map(|v| json(v)).collect::<Vec<_>>(),
        });
        let got = python.borrow_mut().ask(&input)?;
        prop_assert_eq!(&got["yaml"], &serde_json::json!(values), "{}", doc);
        prop_assert_eq!(&got["json"], &serde_json::json!(values));
    });
}

/// A Ruby file holding `ruby(s)` literals, loaded by ruby as Vagrant loads a
/// Vagrantfile, gives back every `s`; so does the same literal after
/// `split_go_delimiters` (the box Vagrantfile, which Packer reads as a Go
/// template first), which leaves no `{{` in it.
#[test]
fn ruby_literals_read_back_by_ruby() {
    if !tool("ruby") {
        return;
    }
    let dir = scratch();
    let file = dir.path().join("values.rb");
    proptest!(config(48), |(values in batch(text()))| {
        let split: Vec<String> = values
            .iter()
            .map(|v| crate::render::packer::split_go_delimiters(&ruby(v)))
            .collect();
        let mut src = String::from("# -*- mode: ruby -*-\nVALS = [\n");
        for v in &values {
            src.push_str(&format!("  {},\n", ruby(v)));
        }
        src.push_str("]\nSPLIT = [\n");
        for s in &split {
            prop_assert!(!s.contains("{{"), "{}", s);
            src.push_str(&format!("  {s},\n"));
        }
        src.push_str("]\n");
        std::fs::write(&file, &src).expect("write values.rb");
        let out = run(
            Command::new("ruby")
                .args(["-rjson", "-e", "load ARGV[0]; STDOUT.write(JSON.generate([VALS, SPLIT]))"])
                .arg(&file),
            b"",
        )?;
        let got: [Vec<String>; 2] = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got[0], &values, "{}", src);
        prop_assert_eq!(&got[1], &values, "{}", src);
    });
}

const NFC: &str = r#"
import unicodedata
def answer(values):
    return [unicodedata.normalize("NFC", s) for s in values]
"#;

/// Packer (its HCL2 reader) reads variables whose defaults are `hcl(s)`, and
/// `packer console` prints them back with `jsonencode`: every `s` comes back.
///
/// Not carried: HCL normalises every string literal to Unicode NFC (escapes
/// included), so a value comes back as its NFC form (computed by Python's
/// unicodedata; for NFC text, that is the value itself). The validation keeps
/// the values that reach HCL to ASCII.
#[test]
fn hcl_values_read_back_by_packer() {
    if !(tool("packer") && tool("python3")) {
        return;
    }
    let dir = scratch();
    let python = std::cell::RefCell::new(Python::start(NFC));
    proptest!(config(32), |(values in batch(text()))| {
        let mut hcl_text = String::new();
        for (i, v) in values.iter().enumerate() {
            hcl_text.push_str(&format!(
                "variable \"v{i}\" {{\n  type    = string\n  default = {}\n}}\n",
                hcl(v)
            ));
        }
        hcl_text.push_str(
            "source \"null\" \"x\" {\n  communicator = \"none\"\n}\nbuild {\n  sources = [\"source.null.x\"]\n}\n",
        );
        std::fs::write(dir.path().join("values.pkr.hcl"), &hcl_text).expect("write values.pkr.hcl");
        let vars: Vec<String> = (0..values.len()).map(|i| format!("var.v{i}")).collect();
        let expr = format!("jsonencode([{}])\n", vars.join(", "));
        let out = run(
            Command::new("packer")
                .arg("console")
                .arg(dir.path())
                .env("CHECKPOINT_DISABLE", "1"),
            expr.as_bytes(),
        )?;
        let got = strings(&out)?;
        let nfc = json_strings(python.borrow_mut().ask(&serde_json::json!(values))?)?;
        prop_assert_eq!(got, nfc, "{}", hcl_text);
    });
}

/// What systemd's UTF-8 check refuses in valid UTF-8.
fn noncharacter(c: char) -> bool {
    let n = u32::from(c);
    (0xfdd0..=0xfdef).contains(&n) || n & 0xfffe == 0xfffe
}

/// The systemd manager binary: `systemd --test` loads units as PID 1 would
/// and dumps what it parsed.
fn systemd_binary() -> Option<&'static Path> {
    ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
}

/// `Environment=` + `systemd(NAME=s)` lines in a service: `systemd-analyze
/// verify` has nothing to say about the unit, and systemd itself (`systemd
/// --test`, which loads the unit with the manager's own parser and dumps the
/// result) holds `NAME=s`, specifiers, quotes, backslashes and line breaks
/// included.
///
/// Not carried: Unicode noncharacters (U+FDD0 to U+FDEF, and the last two
/// code points of every plane, U+FFFE, U+FFFF, U+1FFFE, ...). systemd counts
/// them as invalid UTF-8, raw or as `\u` escapes, and drops the assignment;
/// they are left out here, and the validation keeps them out of the values
/// that reach `Environment=`.
///
/// This is systemd 252 (Debian 12). CentOS 7's systemd 219 quotes and
/// unescapes the same way (specifiers first, then C escapes) but refuses an
/// environment value with control characters other than tab: the validation
/// keeps them out of the values that reach `Environment=` (proxy URLs).
#[test]
fn systemd_environment_read_back_by_systemd() {
    let manager = systemd_binary();
    if !(tool("systemd-analyze") && require("systemd (the manager binary)", manager.is_some())) {
        return;
    }
    let manager = manager.expect("found");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !tool("setpriv") {
        return;
    }
    let dir = scratch();
    // systemd --test refuses to run as root: it runs as nobody, who must
    // read the unit.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let unit = dir.path().join("regbake-props.service");
    let valid = text().prop_map(|s| s.replace(noncharacter, ""));
    proptest!(config(32), |(values in batch(valid))| {
        let mut text = String::from(
            "[Unit]\nDescription=regbake escape properties\nDefaultDependencies=no\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
        );
        let mut want = String::new();
        for (i, v) in values.iter().enumerate() {
            text.push_str(&format!("Environment={}\n", systemd(&format!("V{i}={v}"))));
            want.push_str(&format!("\t\tEnvironment: V{i}={v}\n"));
        }
        std::fs::write(&unit, &text).expect("write unit");
        std::fs::set_permissions(&unit, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");

        let verify = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
            .output()
            .expect("systemd-analyze runs");
        let said = String::from_utf8_lossy(&verify.stderr);
        prop_assert!(verify.status.success() && said.trim().is_empty(), "verify: {}\n{}", said, text);

        let mut test = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(manager);
            c
        } else {
            Command::new(manager)
        };
        test.args(["--test", "--system", "--unit=regbake-props.service", "--log-target=console"])
            .env("SYSTEMD_UNIT_PATH", dir.path());
        let dump = test.output().expect("systemd --test runs");
        let dump_err = String::from_utf8_lossy(&dump.stderr);
        prop_assert!(dump.status.success(), "systemd --test: {}", dump_err);
        let name = unit.display().to_string();
        prop_assert!(!dump_err.contains(&name), "systemd --test: {}\n{}", dump_err, text);
        let dump = String::from_utf8_lossy(&dump.stdout);
        prop_assert!(dump.contains(&want), "wanted\n{}in\n{}\nfrom\n{}", want, dump, text);
    });
}

/// The user names of a `cvtsudoers -f json` dump: those the `Defaults:`
/// lines are bound to, and those of the user specifications.
fn sudoers_users(spec: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let names = |section: &str, list: &str| -> Vec<String> {
        spec[section]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|entry| entry[list].as_array().into_iter().flatten())
            .map(|u| {
                u["username"]
                    .as_str()
                    .unwrap_or("(not a user name)")
                    .to_string()
            })
            .collect()
    };
    (
        names("Defaults", "Binding"),
        names("User_Specs", "User_List"),
    )
}

/// Names close to a POSIX user name, and arbitrary text.
fn user_names() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_][a-z0-9_-]{0,33}",
        2 => ("[a-z_][a-z0-9_-]{0,8}", text(), "[a-z0-9_-]{0,8}").prop_map(|(a, b, c)| a + &b + &c),
        1 => text(),
    ]
}

/// A user name either fails the validation as `user.name`, or the sudoers
/// file rendered for it passes `visudo -c` and `cvtsudoers` (sudo's own
/// parser) reads that same user back from both its lines.
#[test]
fn sudoers_user_names_are_refused_or_read_back_by_sudo() {
    if !(tool("visudo") && tool("cvtsudoers")) {
        return;
    }
    let hb = crate::render::handlebars().expect("templates");
    let base = crate::config::parse(crate::config::DEFAULT_TOML).expect("defaults");
    let dir = scratch();
    let file = dir.path().join("sudoers");
    proptest!(config(128), |(names in batch(user_names()), nopasswd in any::<bool>())| {
        let mut text = String::new();
        let mut accepted = vec![];
        for name in &names {
            let mut c = base.clone();
            c.user.name = name.clone();
            if crate::config::validate(&c).is_err_and(|ps| ps.iter().any(|p| p.path == "user.name")) {
                continue;
            }
            let ctx = serde_json::json!({
                "generator": "regbake properties",
                "user": { "name": name, "sudo": true, "sudo_nopasswd": nopasswd },
            });
            text.push_str(&hb.render("overlay/etc/sudoers.d/USER", &ctx).expect("render sudoers"));
            accepted.push(name.clone());
        }
        if accepted.is_empty() {
            return Ok(());
        }
        std::fs::write(&file, &text).expect("write sudoers");
        run(Command::new("visudo").args(["-c", "-q", "-f"]).arg(&file), b"")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let spec = run(Command::new("cvtsudoers").args(["-f", "json"]).arg(&file), b"")?;
        let spec: serde_json::Value =
            serde_json::from_slice(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (defaults, users) = sudoers_users(&spec);
        prop_assert_eq!(&defaults, &accepted, "{}", text);
        prop_assert_eq!(&users, &accepted, "{}", text);
    });
}
