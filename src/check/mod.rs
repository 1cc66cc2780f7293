//! `regbake check`: run the real consumers of each rendered file over the
//! output directory, one line per check.

mod auth;
mod outcome;
mod units;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bake::tools::{self, Cmd};
use crate::out::Global;
use crate::render::Scope;
use crate::tree::Kind;
use crate::util::Format;
pub use outcome::{Check, Outcome};
use units::prepare_unit_stubs;

/// `regbake check`
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Also fail on warnings (shellcheck style hints, sshd warnings)
    #[arg(long)]
    pub strict: bool,
    /// Fail when a validator is not installed instead of skipping it
    #[arg(long)]
    pub require_all: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `regbake check`: render, then check what the config supplied as is
/// and everything rendered.
pub fn command(g: &Global, args: &Args) -> Result<()> {
    let lock = crate::out::lock(&g.out)?;
    let (app, _) =
        crate::out::render_to(g, Scope::All, crate::bake::packer::installed_version, &lock)?;
    let supplied = auth::bcrypt_costs(
        &app.registry_files.supplied_hashes,
        &format!("overlay{}", app.registry.htpasswd_path),
        args.strict,
    );
    run(&g.out, args, supplied)
}

/// A validator program and the Debian/PyPI package that provides it.
fn tool(name: &str) -> std::result::Result<PathBuf, String> {
    let package = match name {
        "ksvalidator" => "pip install pykickstart",
        "visudo" => "apt-get install sudo",
        "sshd" => "apt-get install openssh-server",
        "shellcheck" => "apt-get install shellcheck",
        "systemd-analyze" => "apt-get install systemd",
        "bash" => "apt-get install bash",
        "vagrant" => "apt-get install vagrant",
        "packer" => "apt-get install packer",
        _ => "install it",
    };
    tools::find(name).ok_or_else(|| format!("{name} not installed ({package})"))
}

struct Runner<'a> {
    out: &'a Path,
    strict: bool,
    checks: Vec<Check>,
}

impl Runner<'_> {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.out).unwrap_or(p).display().to_string()
    }

    /// Run `cmd` built from the tool path; pass when it exits 0 (and, when
    /// strict and `quiet_when_ok`, prints nothing).
    fn run(
        &mut self,
        check: &str,
        file: &Path,
        program: &str,
        quiet_when_ok: bool,
        build: impl FnOnce(PathBuf) -> Cmd,
    ) {
        let outcome = match tool(program) {
            Err(why) => Outcome::Skipped(why),
            Ok(path) => match tools::capture(&build(path)) {
                Err(e) => Outcome::Failed(format!("{e:#}")),
                Ok(c) if !c.success => Outcome::Failed(format!("{}: {}", c.status, c.message())),
                Ok(c)
                    if self.strict
                        && quiet_when_ok
                        && !(c.stderr.trim().is_empty() && c.stdout.trim().is_empty()) =>
                {
                    Outcome::Failed(format!("warnings (strict): {}", c.message()))
                }
                Ok(_) => Outcome::Passed,
            },
        };
        self.push(check, file, outcome);
    }

    fn push(&mut self, check: &str, file: &Path, outcome: Outcome) {
        let file = self.rel(file);
        self.checks.push(Check {
            check: check.to_string(),
            file,
            outcome,
        });
    }
}

impl Runner<'_> {
    /// `bash -n` and `shellcheck` on `script`, reported as `shown`.
    fn shell(&mut self, shown: &Path, script: &Path) {
        let s = script.to_path_buf();
        self.run("bash -n", shown, "bash", false, |t| {
            Cmd::new(t).arg("-n").arg(s)
        });
        let (s, strict) = (script.to_path_buf(), self.strict);
        self.run("shellcheck", shown, "shellcheck", false, |t| {
            shellcheck(t, strict).arg(s)
        });
    }
}

/// `packer validate` of the template directory. Packer 1.7 and later refuse
/// a full validate until `packer init` has fetched the plugins the templates
/// require, which needs the network: then the syntax is validated, and the
/// full check is reported skipped with how to get it.
fn packer_validate(r: &mut Runner, dir: &Path) {
    let packer = match tool("packer") {
        Ok(p) => p,
        Err(why) => return r.push("packer validate", dir, Outcome::Skipped(why)),
    };
    let validate = |extra: &[&str]| {
        tools::capture(
            &crate::bake::packer::packer_cmd(&packer)
                .arg("validate")
                .args(extra)
                .arg(dir),
        )
    };
    let full = match validate(&[]) {
        Err(e) => Outcome::Failed(format!("{e:#}")),
        Ok(c) if c.success => Outcome::Passed,
        Ok(c) => {
            let text = format!("{}{}", c.stdout, c.stderr);
            if text.contains("Error downloading checksum file") {
                // packer.iso_checksum = "file:URL" is fetched by validate
                // too: offline, the rest of the template is still checked.
                match validate(&["-var", "iso_checksum=none"]) {
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                    Ok(s) if s.success => Outcome::Warning(
                        "the ISO's checksum file could not be fetched (no network?): validated with \
                         iso_checksum=none; packer build fetches it"
                            .into(),
                    ),
                    Ok(s) => Outcome::Failed(format!("{}: {}", s.status, s.message())),
                }
            } else if text.contains("Missing plugins") || text.contains("packer init") {
                let syntax = match validate(&["-syntax-only"]) {
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                    Ok(s) if s.success => Outcome::Passed,
                    Ok(s) => Outcome::Failed(format!("{}: {}", s.status, s.message())),
                };
                r.push("packer validate -syntax-only", dir, syntax);
                Outcome::Skipped(format!(
                    "the plugins the templates require are not installed; `packer init {}` \
                     fetches them (network), then check again",
                    dir.display()
                ))
            } else {
                Outcome::Failed(format!("{}: {}", c.status, c.message()))
            }
        }
    };
    r.push("packer validate", dir, full);
}

/// The files of `out/` regbake renders, by path relative to it, with their
/// kind; what a render does not own (boxes, logs, state, Packer's and
/// Vagrant's work dirs) is not walked.
fn rendered_files(out: &Path) -> Result<Vec<(String, Kind)>> {
    const RENDERED: &[&str] = &["kickstart", "overlay", "vagrant", "packer", "client"];
    let mut found = vec![];
    let mut dirs: Vec<PathBuf> = RENDERED.iter().map(|d| out.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for e in entries {
            let p = e
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(rel) = p.strip_prefix(out) {
                let rel = rel.to_string_lossy().into_owned();
                let kind = Kind::of(&rel);
                found.push((rel, kind));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The shell scripts inside the kickstart's `%pre`/`%post … %end`
/// sections, in order, each with a name for its scratch file
/// (`pre`, `post`, `post2`, …).
pub fn kickstart_scripts(ks: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    let mut lines = ks.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = ["%pre", "%post"]
            .into_iter()
            .find(|k| line.split_whitespace().next() == Some(*k))
        else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "%end").collect();
        let kind = &kind[1..];
        let n = out.iter().filter(|(k, _)| k.starts_with(kind)).count();
        let name = if n == 0 {
            kind.to_string()
        } else {
            format!("{kind}{}", n + 1)
        };
        out.push((name, format!("#!/bin/bash\n{}\n", body.join("\n"))));
    }
    out
}

/// Run every check over `out` after the `first` ones; prints the results
/// and fails on any failure (and on any skip when `require_all`).
pub fn run(out: &Path, opts: &Args, first: Vec<Check>) -> Result<()> {
    let mut checks = first;
    checks.extend(run_checks(out, opts.strict)?);
    if opts.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).context("printing checks")?
        );
    } else {
        for c in &checks {
            match &c.outcome {
                Outcome::Passed => println!("passed   {:<16} {}", c.check, c.file),
                Outcome::Warning(m) | Outcome::Failed(m) => {
                    let tag = if matches!(c.outcome, Outcome::Warning(_)) {
                        "warning"
                    } else {
                        "FAILED"
                    };
                    println!("{tag:<8} {:<16} {}", c.check, c.file);
                    for line in m.lines() {
                        println!("         | {line}");
                    }
                }
                Outcome::Skipped(m) => println!("skipped  {:<16} {} ({m})", c.check, c.file),
            }
        }
    }
    let failed = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .count();
    let skipped = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
        .count();
    let warned = checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Warning(_)))
        .count();
    let passed = checks.len() - failed - skipped - warned;
    if !(opts.format == Format::Json) {
        println!("{passed} passed, {warned} warned, {failed} failed, {skipped} skipped");
    }
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    if opts.require_all && skipped > 0 {
        bail!("{skipped} check(s) skipped and --require-all given");
    }
    Ok(())
}

pub fn run_checks(out: &Path, strict: bool) -> Result<Vec<Check>> {
    let out = &out
        .canonicalize()
        .with_context(|| format!("finding {}", out.display()))?;
    let overlay = out.join("overlay");
    let scratch = tempfile::Builder::new()
        .prefix("regbake-check-")
        .tempdir()
        .context("creating a scratch dir")?;
    let mut r = Runner {
        out,
        strict,
        checks: vec![],
    };

    // What regbake rendered, by kind (see `tree::Kind`). In kickstart/ only
    // the kickstarts regbake recorded: a user's own files may sit beside them.
    let files = rendered_files(out)?;
    let recorded = crate::out::ksdir::recorded(&out.join("kickstart"))?;
    let of = |kind: Kind| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(rel, _)| out.join(rel))
            .collect()
    };
    for ks in of(Kind::Kickstart) {
        let name = ks
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let in_ksdir = ks.parent() == Some(&out.join("kickstart"));
        if !in_ksdir || recorded.as_ref().is_none_or(|r| r.contains(&name)) {
            check_kickstart(&mut r, &ks, scratch.path())?;
        }
    }

    for f in of(Kind::Sudoers) {
        let f2 = f.clone();
        r.run("visudo", &f, "visudo", false, |t| {
            Cmd::new(t).args(["-c", "-f"]).arg(f2)
        });
    }

    // sshd_config: needs a host key and the privilege separation directory.
    for sshd_config in of(Kind::SshdConfig) {
        let key = scratch.path().join("ssh_host_ed25519_key");
        let pair = crate::model::secrets::generate_ssh_key("regbake-check")?;
        write_private(&key, pair.private_openssh.as_bytes())?;
        // sshd -t refuses to run without it; harmless to create.
        let _ = std::fs::create_dir_all("/run/sshd");
        let cfg = sshd_config.clone();
        r.run("sshd -t", &sshd_config, "sshd", true, |t| {
            Cmd::new(t).arg("-t").arg("-f").arg(cfg).arg("-h").arg(key)
        });
    }

    let scripts = of(Kind::Script);
    let (overlay_scripts, other_scripts): (Vec<_>, Vec<_>) =
        scripts.into_iter().partition(|p| p.starts_with(&overlay));
    for script in overlay_scripts {
        r.shell(&script, &script);
    }

    // systemd units (and docker's drop-ins, on a stub docker.service).
    let units = of(Kind::Unit);
    if !units.is_empty() {
        let stub = prepare_unit_stubs(scratch.path(), &overlay)?;
        // All copies first: a timer is verified with the service it starts.
        let mut copies = vec![];
        for unit in &units {
            let copy = stub.dir.join(unit.file_name().context("unit file name")?);
            let text = std::fs::read_to_string(unit)
                .with_context(|| format!("reading {}", unit.display()))?;
            std::fs::write(&copy, stub.rewrite(&text)).context("writing a unit copy")?;
            copies.push(copy);
        }
        for (unit, copy) in units.iter().zip(copies) {
            let unit_path = stub.dir.display().to_string();
            r.run("systemd-analyze", unit, "systemd-analyze", false, |t| {
                Cmd::new(t)
                    .args(["verify", "--man=no"])
                    .arg(&copy)
                    .env("SYSTEMD_UNIT_PATH", format!("{unit_path}:"))
            });
        }
        // Each directory of drop-ins, verified with the unit it extends.
        let mut dirs: Vec<PathBuf> = of(Kind::DropIn)
            .iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect();
        dirs.dedup();
        for dropins in dirs {
            let unit_path = stub.dir.display().to_string();
            let name = dropins
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unit = stub.dir.join(name.trim_end_matches(".d"));
            r.run("systemd-analyze", &dropins, "systemd-analyze", false, |t| {
                Cmd::new(t)
                    .args(["verify", "--man=no"])
                    .arg(unit)
                    .env("SYSTEMD_UNIT_PATH", format!("{unit_path}:"))
            });
        }
    }

    for v in of(Kind::Vagrantfile) {
        check_vagrantfile(&mut r, &v, scratch.path())?;
    }
    // Packer: the template directory (full `packer validate`: it works offline
    // and needs the build key and http dir, which the render wrote), the
    // kickstart it serves (above) and the provisioner scripts.
    let templates = of(Kind::PackerTemplate);
    if let Some(dir) = templates.first().and_then(|t| t.parent()) {
        packer_validate(&mut r, dir);
    }
    for v in of(Kind::BoxVagrantfile) {
        check_box_vagrantfile(&mut r, &v, scratch.path())?;
    }
    for script in other_scripts {
        r.shell(&script, &script);
    }

    Ok(r.checks)
}

/// `ksvalidator`, then `bash -n` and shellcheck on each of its %pre/%post
/// scripts (shown as `ks.cfg:%pre`, `ks.cfg:%post`, …).
fn check_kickstart(r: &mut Runner<'_>, ks: &Path, scratch: &Path) -> Result<()> {
    let text = std::fs::read_to_string(ks).with_context(|| format!("reading {}", ks.display()))?;
    let k = ks.to_path_buf();
    let version = ks_version(&text);
    r.run("ksvalidator", ks, "ksvalidator", false, |t| {
        Cmd::new(t).args(["-v", version]).arg(k)
    });
    let name = ks
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = ks
        .parent()
        .map(|p| p.to_string_lossy().replace('/', "_"))
        .unwrap_or_default();
    for (kind, script) in kickstart_scripts(&text) {
        // Two kickstarts may share a file name (kickstart/ and packer/http/).
        let p = scratch.join(format!("{dir}_{name}.{kind}.sh"));
        std::fs::write(&p, script).context("writing a kickstart script")?;
        r.shell(&ks.with_file_name(format!("{name}:%{kind}")), &p);
    }
    Ok(())
}

/// The pykickstart handler a kickstart names on its first line
/// (`#version=RHEL9`), as anaconda reads it; RHEL7 when it names none.
fn ks_version(text: &str) -> &str {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("#version="))
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("RHEL7")
}

/// `vagrant validate` in the Vagrantfile's own directory (it finds the
/// overlay relative to it), with a throwaway `VAGRANT_HOME`. Provider blocks
/// are only checked by an installed provider plugin: a libvirt Vagrantfile
/// without vagrant-libvirt is skipped rather than passed half-checked.
fn check_vagrantfile(r: &mut Runner<'_>, vagrantfile: &Path, scratch: &Path) -> Result<()> {
    let vagrantfile = vagrantfile.to_path_buf();
    let dir = vagrantfile
        .parent()
        .context("the Vagrantfile has a directory")?;
    let home = scratch.join("vagrant-home");
    std::fs::create_dir_all(&home).context("creating a VAGRANT_HOME")?;
    let text = std::fs::read_to_string(&vagrantfile)
        .with_context(|| format!("reading {}", vagrantfile.display()))?;
    if text.contains("config.vm.provider 'libvirt'") {
        if let Some(v) = tools::find("vagrant") {
            let plugins = tools::capture(
                &Cmd::new(v)
                    .args(["plugin", "list"])
                    .env("VAGRANT_HOME", &home)
                    .dir(dir),
            )?;
            if !plugins.stdout.contains("vagrant-libvirt") {
                r.push(
                    "vagrant validate",
                    &vagrantfile,
                    Outcome::Skipped(
                        "vagrant-libvirt not installed (apt-get install vagrant-libvirt)".into(),
                    ),
                );
                return Ok(());
            }
        }
    }
    r.run("vagrant validate", &vagrantfile, "vagrant", false, |t| {
        Cmd::new(t)
            .arg("validate")
            .env("VAGRANT_HOME", &home)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .dir(dir)
    });
    Ok(())
}

/// The Vagrantfile Packer ships in the box: Vagrant loads it before the
/// project's own, so it is validated as a copy below a project block that
/// names a box. Packer reads it as a Go template first, so `{{` must not occur.
fn check_box_vagrantfile(r: &mut Runner<'_>, vagrantfile: &Path, scratch: &Path) -> Result<()> {
    let vagrantfile = vagrantfile.to_path_buf();
    let text = std::fs::read_to_string(&vagrantfile)
        .with_context(|| format!("reading {}", vagrantfile.display()))?;
    if text.contains("{{") {
        r.push(
            "vagrant validate",
            &vagrantfile,
            Outcome::Failed(
                "holds `{{`, which Packer's vagrantfile_template would interpolate".into(),
            ),
        );
        return Ok(());
    }
    let project = scratch.join("box-project");
    std::fs::create_dir_all(&project).context("creating a Vagrant project dir")?;
    std::fs::write(
        project.join("Vagrantfile"),
        format!("Vagrant.configure('2') {{ |config| config.vm.box = 'regbake-check' }}\n{text}"),
    )
    .context("writing the box Vagrantfile copy")?;
    let home = scratch.join("vagrant-home");
    std::fs::create_dir_all(&home).context("creating a VAGRANT_HOME")?;
    r.run("vagrant validate", &vagrantfile, "vagrant", false, |t| {
        Cmd::new(t)
            .arg("validate")
            .env("VAGRANT_HOME", &home)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .dir(&project)
    });
    Ok(())
}

fn shellcheck(tool: PathBuf, strict: bool) -> Cmd {
    Cmd::new(tool).args([
        "--shell=bash",
        if strict {
            "--severity=style"
        } else {
            "--severity=warning"
        },
    ])
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_extracted_in_order() {
        let ks = "text\n%pre --erroronfail\necho a\n%end\n%packages\n@core\n%end\n\
                  %post --log=/x\necho hi\n%end\n%post\necho b\n%end\n%postfix\n";
        let got = kickstart_scripts(ks);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["pre", "post", "post2"]);
        assert_eq!(got[1].1, "#!/bin/bash\necho hi\n");
    }

    #[test]
    fn ksvalidator_gets_the_version_the_kickstart_names() {
        assert_eq!(ks_version("#version=RHEL9\ntext\n"), "RHEL9");
        assert_eq!(ks_version("#version=RHEL10\n"), "RHEL10");
        assert_eq!(ks_version("text\n#version=RHEL9\n"), "RHEL7");
        assert_eq!(ks_version("#version=RHEL9; rm -rf /\n"), "RHEL7");
    }
}
