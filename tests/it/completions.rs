//! `regbake completions SHELL` and `regbake man`, read by their consumers:
//! bash, zsh and fish load the scripts and complete a command; man-db
//! renders the page without a warning.

use std::io::Write;
use std::process::{Command, Stdio};

use clap::CommandFactory;

use crate::common::{require_tool, Test, BIN};

/// The commands as the clap definitions have them.
fn command_names() -> Vec<String> {
    regbake::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// Run `program args…` in the test dir with HOME there; (status, stdout, stderr).
fn run(t: &Test, program: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("writing stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("waiting");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bash_completion_registers_and_completes_commands() {
    let t = Test::new();
    let script = format!(
        "source <({BIN:?} completions bash) && complete -p regbake && \
         COMP_WORDS=(regbake co); COMP_CWORD=1; COMP_LINE='regbake co'; COMP_POINT=10; \
         _regbake regbake co regbake; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let (ok, out, err) = run(&t, "bash", &["-c", &script], None);
    assert!(ok, "{out}{err}");
    let mut lines = out.lines();
    let registration = lines.next().unwrap_or_default();
    assert!(
        registration.starts_with("complete ") && registration.ends_with(" regbake"),
        "{out}"
    );
    let mut offered: Vec<&str> = lines.collect();
    offered.sort_unstable();
    assert_eq!(offered, ["completions", "config"], "{out}");
}

#[test]
fn zsh_completion_is_found_by_compinit() {
    if !require_tool("zsh") {
        return;
    }
    let t = Test::new().args(&["completions", "zsh"]);
    let script = t.success().stdout;
    let t = t.file("functions/_regbake", &script);
    // compinit reads the #compdef line of each function on fpath.
    let (ok, out, err) = run(
        &t,
        "zsh",
        &[
            "-f",
            "-c",
            "fpath=(functions $fpath); autoload -Uz compinit; compinit -u -D; \
             print -r -- ${_comps[regbake]}",
        ],
        None,
    );
    assert!(ok && err.is_empty(), "{out}{err}");
    assert_eq!(out.trim(), "_regbake");
}

#[test]
fn fish_completion_completes_commands() {
    if !require_tool("fish") {
        return;
    }
    let t = Test::new();
    let (ok, out, err) = run(
        &t,
        "fish",
        &[
            "--no-config",
            "-c",
            &format!("{BIN:?} completions fish | source; complete -C'regbake co'"),
        ],
        None,
    );
    assert!(ok && err.is_empty(), "{out}{err}");
    let offered: Vec<&str> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default())
        .collect();
    assert_eq!(offered, ["completions", "config"], "{out}");
}

/// Shells not installed here: a script that names every command.
#[test]
fn elvish_and_powershell_scripts_name_every_command() {
    for shell in ["elvish", "powershell"] {
        let script = Test::new().args(&["completions", shell]).success().stdout;
        for name in command_names() {
            assert!(script.contains(&name), "{shell}: {name} missing");
        }
    }
    Test::new()
        .args(&["completions", "tcsh"])
        .status(2)
        .stderr_contains("possible values")
        .check();
}

/// `man -l` renders the page without a warning at 80 columns, and the page
/// has a section for every command with its options.
#[test]
fn man_page_renders_without_warnings() {
    if !require_tool("man") {
        return;
    }
    let t = Test::new().args(&["man"]);
    let page = t.success().stdout;
    assert!(page.contains(".TH REGBAKE 1 "), "{page}");
    let (ok, text, warnings) = run(
        &t,
        "sh",
        &["-c", "MANWIDTH=80 man -l -"],
        Some(page.as_bytes()),
    );
    assert!(ok, "{warnings}");
    assert_eq!(warnings, "", "man -l warned");
    let plain: String = text.replace('\u{2010}', "-");
    for name in command_names() {
        assert!(
            plain.contains(&format!("   regbake {name}\n")),
            "no section for {name}:\n{plain}"
        );
    }
    for needle in [
        "regbake box pack",
        "--require-all",
        "--password-env",
        "EXIT STATUS",
    ] {
        assert!(plain.contains(needle), "{needle} missing:\n{plain}");
    }
    // groff with every warning on: the roff itself is clean.
    if which::which("groff").is_ok() {
        let (ok, _, warnings) = run(&t, "groff", &["-man", "-ww", "-z"], Some(page.as_bytes()));
        assert!(ok && warnings.is_empty(), "{warnings}");
    }
}
