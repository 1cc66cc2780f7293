//! `regbake check`: run the real consumers of each rendered file over the
//! output directory, one line per check.

mod auth;
mod kickstart;
mod outcome;
mod runner;
mod units;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bake::tools::{self, Cmd};
use crate::output::OutLock;
use crate::render::Scope;
use crate::tree::Kind;
use crate::util::Format;
pub use kickstart::{kickstart_scripts, shape};
pub use outcome::{Check, Outcome};
use runner::{tool, Runner};
use units::check_units;

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
pub fn command(config: Option<&Path>, out: &Path, args: &Args) -> Result<()> {
    // Ctrl-C, SIGTERM or SIGHUP stops the checks (and the running validator), and
    // the scratch copies of secrets are removed on the way out. Before the
    // lock, so they also end a wait for it.
    crate::util::interrupt::catch_interrupts();
    let lock = crate::output::lock(out)?;
    let (valid, _) = crate::config::load(config)?;
    let facts = crate::bake::packer::facts(out, &valid.config)?;
    let (app, _) = crate::output::render_to(&valid, &facts, Scope::All, out, &lock, |_, _| Ok(()))?;
    let supplied = auth::bcrypt_costs(
        &app.registry_files.supplied_hashes,
        &format!("overlay{}", app.registry.htpasswd_path),
        args.strict,
    );
    run(out, &lock, args, supplied)
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
                .arg(dir)
                .env("TMPDIR", r.tmp),
        )
    };
    let full = match validate(&[]) {
        Err(e) => Outcome::Failed(format!("{e:#}")),
        Ok(c) if c.success => Outcome::Passed,
        Ok(c) => {
            let text = format!("{}{}", c.stdout, c.stderr);
            if text.contains("Error downloading checksum file") {
                // packer.iso_checksum (image_checksum) = "file:URL" is
                // fetched by validate too: offline, the rest of the
                // template is still checked. A cloud-init seed in http/
                // says the template boots an image.
                let (var, what) = if dir.join("http/user-data").exists() {
                    ("image_checksum", "image")
                } else {
                    ("iso_checksum", "ISO")
                };
                match validate(&["-var", &format!("{var}=none")]) {
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                    Ok(s) if s.success => Outcome::Warning(format!(
                        "the {what}'s checksum file could not be fetched (no network?): validated with \
                         {var}=none; packer build fetches it"
                    )),
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

/// Run every check over `out` after the `first` ones; prints the results
/// and fails on any failure (and on any skip when `require_all`).
pub fn run(out: &Path, lock: &OutLock, opts: &Args, first: Vec<Check>) -> Result<()> {
    let mut checks = first;
    checks.extend(run_checks(out, lock, opts.strict)?);
    if opts.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).context("printing checks")?
        );
    } else {
        for c in &checks {
            match &c.outcome {
                Outcome::Passed => match &c.like {
                    Some(like) => println!("passed   {:<16} {} (like {like})", c.check, c.file),
                    None => println!("passed   {:<16} {}", c.check, c.file),
                },
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
        if let Some(line) = hosts_summary(&checks) {
            println!("{line}");
        }
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

/// What the per-host kickstarts got, when there are any: how many were
/// validated in full (one per shape) and how many checked for structure.
fn hosts_summary(checks: &[Check]) -> Option<String> {
    let hosts: Vec<&Check> = checks
        .iter()
        .filter(|c| c.check == kickstart::STRUCTURE)
        .collect();
    if hosts.is_empty() {
        return None;
    }
    let like = hosts.iter().filter(|c| c.like.is_some()).count();
    let full = hosts
        .iter()
        .filter(|c| c.like.is_none() && c.outcome == Outcome::Passed)
        .count();
    Some(format!(
        "{} per-host kickstarts: {full} validated in full (one per shape: ksvalidator, \
         bash -n, shellcheck), {like} checked for structure and found of the same shape \
         as one of those",
        hosts.len()
    ))
}

/// Every check over `out`, whose lock the caller holds: copies of
/// rendered files the validators need (scripts cut out of kickstarts,
/// units next to stubs, which may hold secrets) go to a private scratch
/// dir inside `out`, removed at the end, on an error or interrupt, and by
/// the next run if this one is killed.
pub fn run_checks(out: &Path, lock: &OutLock, strict: bool) -> Result<Vec<Check>> {
    let out = &out
        .canonicalize()
        .with_context(|| format!("finding {}", out.display()))?;
    let overlay = out.join("overlay");
    let scratch = lock.scratch_dir()?;
    let mut r = Runner {
        out,
        strict,
        checks: vec![],
        tmp: scratch.path(),
    };

    // What regbake rendered, by kind (see `tree::Kind`).
    let files = rendered_files(out)?;
    let of = |kind: Kind| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(rel, _)| out.join(rel))
            .collect()
    };
    check_kickstarts(&mut r, out, of(Kind::Kickstart), scratch.path())?;

    for f in of(Kind::Sudoers) {
        let f2 = f.clone();
        r.run("visudo", &f, "visudo", false, |t| {
            Cmd::new(t).args(["-c", "-f"]).arg(f2)
        });
    }

    check_sshd_configs(&mut r, of(Kind::SshdConfig), scratch.path())?;

    let scripts = of(Kind::Script);
    let (overlay_scripts, other_scripts): (Vec<_>, Vec<_>) =
        scripts.into_iter().partition(|p| p.starts_with(&overlay));
    for script in overlay_scripts {
        r.shell(&script, &script);
    }

    // systemd units (and docker's drop-ins, on a stub docker.service).
    check_units(
        &mut r,
        &of(Kind::Unit),
        &of(Kind::DropIn),
        scratch.path(),
        &overlay,
    )?;

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
    // An interrupted run reports nothing: what it skipped did not fail.
    crate::util::interrupt::check()?;
    Ok(r.checks)
}

/// The kickstarts: each in full, but the per-host ones (HOST.ks) by shape;
/// in kickstart/ only those regbake recorded (a user's own files may sit
/// beside them).
fn check_kickstarts(
    r: &mut Runner<'_>,
    out: &Path,
    kickstarts: Vec<PathBuf>,
    scratch: &Path,
) -> Result<()> {
    let recorded = crate::output::ksdir::recorded(&out.join("kickstart"))?;
    let mut hosts = vec![];
    for ks in kickstarts {
        crate::util::interrupt::check()?;
        let name = ks
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let in_ksdir = ks.parent() == Some(&out.join("kickstart"));
        if in_ksdir && recorded.as_ref().is_some_and(|r| !r.contains(&name)) {
            continue;
        }
        if in_ksdir && name.ends_with(".ks") {
            hosts.push(ks);
        } else {
            kickstart::check_kickstart(r, &ks, scratch)?;
        }
    }
    kickstart::check_hosts(r, &hosts, scratch)?;
    Ok(())
}

/// sshd_config: `sshd -t` needs a host key and the privilege separation
/// directory.
fn check_sshd_configs(r: &mut Runner<'_>, configs: Vec<PathBuf>, scratch: &Path) -> Result<()> {
    for sshd_config in configs {
        let key = scratch.join("ssh_host_ed25519_key");
        let pair = crate::model::secrets::generate_ssh_key("regbake-check")?;
        crate::util::fsx::write_private(&key, pair.private_openssh.as_bytes())?;
        // sshd -t refuses to run without it; harmless to create.
        let _ = std::fs::create_dir_all("/run/sshd");
        let cfg = sshd_config.clone();
        r.run("sshd -t", &sshd_config, "sshd", true, |t| {
            Cmd::new(t).arg("-t").arg("-f").arg(cfg).arg("-h").arg(key)
        });
    }
    Ok(())
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
    crate::util::fsx::create_dir(&home, 0o700)?;
    let text = std::fs::read_to_string(&vagrantfile)
        .with_context(|| format!("reading {}", vagrantfile.display()))?;
    if text.contains("config.vm.provider 'libvirt'") {
        if let Some(v) = tools::find("vagrant") {
            let plugins = tools::capture(
                &Cmd::new(v)
                    .args(["plugin", "list"])
                    .env("VAGRANT_HOME", &home)
                    .env("TMPDIR", r.tmp)
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
    crate::util::fsx::create_dir(&project, 0o700)?;
    crate::util::fsx::write_private(
        &project.join("Vagrantfile"),
        format!("Vagrant.configure('2') {{ |config| config.vm.box = 'regbake-check' }}\n{text}")
            .as_bytes(),
    )?;
    let home = scratch.join("vagrant-home");
    crate::util::fsx::create_dir(&home, 0o700)?;
    r.run("vagrant validate", &vagrantfile, "vagrant", false, |t| {
        Cmd::new(t)
            .arg("validate")
            .env("VAGRANT_HOME", &home)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .dir(&project)
    });
    Ok(())
}
