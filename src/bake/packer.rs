//! `regbake packer`: render, then `packer init` (1.7+), `packer validate`
//! and `packer build` as named steps, showing the build's phase from Packer's
//! machine-readable output; then the box goes into the catalog and, unless
//! `--no-import`, into `vagrant box add`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::bake::steps::Steps;
use crate::bake::tools::{self, Cmd};
use crate::config::{BadInput, Builder, Config, Problem, RequiredPlugins};
use crate::model::packer::Settings;
pub use crate::model::packer::{parse_version, Version};
use crate::model::Facts;
use crate::render::Scope;

/// Packer without its update check (a network call) on every command.
pub fn packer_cmd(program: impl Into<std::ffi::OsString>) -> Cmd {
    Cmd::new(program).env("CHECKPOINT_DISABLE", "1")
}

/// The version of the `packer` on PATH, asked once per run. `packer version`
/// takes ~200 ms, more than a whole render, so the answer is cached in
/// `~/.cache/regbake/packer-version` keyed by the binary's path, size and
/// mtime (a reinstalled packer is asked again).
pub fn installed_version() -> Option<Version> {
    static VERSION: OnceLock<Option<Version>> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let path = tools::find("packer")?;
        let key = binary_key(&path);
        let cache = cache_file();
        if let (Some(key), Some(cache)) = (&key, &cache) {
            if let Ok(text) = std::fs::read_to_string(cache) {
                if let Some(v) = text.strip_prefix(key.as_str()).and_then(parse_version) {
                    return Some(v);
                }
            }
        }
        let c = tools::capture(&packer_cmd(&path).arg("version")).ok()?;
        if !c.success {
            return None;
        }
        let v = parse_version(&c.stdout)?;
        if let (Some(key), Some(cache)) = (key, cache) {
            // Only a cache: a failure to write it changes nothing.
            let _ = cache
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| std::fs::write(&cache, format!("{key}v{v}\n")));
        }
        Some(v)
    })
}

/// `PATH SIZE MTIME_NS ` of the resolved binary.
fn binary_key(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = path.canonicalize().ok()?;
    let md = std::fs::metadata(&real).ok()?;
    Some(format!(
        "{} {} {}.{} ",
        real.display(),
        md.size(),
        md.mtime(),
        md.mtime_nsec()
    ))
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("regbake/packer-version"))
}

/// `regbake packer`
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Build with this builder only
    #[arg(long, value_name = "BUILDER")]
    pub only: Option<Builder>,
    /// Render out/packer/ and stop
    #[arg(long)]
    pub render_only: bool,
    /// Do not `vagrant box add` the built box
    #[arg(long)]
    pub no_import: bool,
}

/// A program a step needs and what to install for it.
fn need(program: &str, install: &str, missing: &mut Vec<String>) -> Option<PathBuf> {
    let found = tools::find(program);
    if found.is_none() {
        missing.push(format!("{program} ({install})"));
    }
    found
}

/// The facts of a render into `out` for `config`: the `packer` on PATH is
/// asked only for `required_plugins = "auto"` (`packer version` costs more
/// than a render, and a refused config runs nothing).
pub fn facts(out: &Path, config: &Config) -> Result<Facts> {
    let mut facts = Facts::new(out)?;
    if config.packer.required_plugins == RequiredPlugins::Auto {
        facts.packer = installed_version();
    }
    Ok(facts)
}

pub fn run(config: Option<&Path>, out: &Path, dry_run: bool, p: &Args) -> Result<()> {
    // out/ stays ours for the whole bake: a render meanwhile would change
    // what Packer uploads.
    let out_lock = crate::output::lock(out)?;
    let (valid, _) = crate::config::load(config)?;
    let facts = facts(out, &valid.config)?;
    let mut builders = vec![];
    let (app, _) =
        crate::output::render_to(&valid, &facts, Scope::All, out, &out_lock, |app, _| {
            builders = chosen_builders(&app.packer, p.only)?;
            Ok(())
        })?;
    let dir = out.join("packer");
    if p.render_only {
        println!("{}", dir.display());
        return Ok(());
    }
    let (packer, vagrant) = find_programs(&builders, p.no_import, dry_run)?;
    let settings = &app.packer;
    let box_meta = |b: &Builder| crate::boxes::BoxMeta {
        name: settings.box_name.clone(),
        version: settings.box_version.clone(),
        provider: b.provider(),
    };
    // A catalog of another box under this name would refuse the boxes only
    // after the whole build.
    for b in &builders {
        crate::boxes::check_box_name(&out.join("box"), &box_meta(b), "vagrant.box_name")?;
    }
    // Packer runs in the out dir so relative paths in the template
    // (packer.output_dir) land there; the template directory is `packer`.
    let mut steps = Steps::new(out, dry_run)?;
    let only = builders
        .iter()
        .map(|b| format!("{b}.{}", app.appliance.name))
        .collect::<Vec<_>>()
        .join(",");
    let box_lock = build(&mut steps, &packer, out, &only, settings.image(), dry_run)?;
    let Some(box_lock) = box_lock else {
        return Ok(());
    };
    for b in &builders {
        let catalog = move_into_catalog(out, &box_meta(b), &box_lock)?;
        if let Some(vagrant) = &vagrant {
            let provider = crate::boxes::provider_name(b.provider());
            steps.run(
                &format!("vagrant box add {provider}"),
                &Cmd::new(vagrant)
                    .args(["box", "add", "--force", "--provider", provider])
                    .arg(&catalog),
            )?;
        }
    }
    Ok(())
}

/// The builders to bake with: the configured ones, or `--only`'s, when
/// Packer can bake the appliance at all.
fn chosen_builders(settings: &Settings, only: Option<Builder>) -> Result<Vec<Builder>> {
    if !settings.problems.is_empty() {
        return Err(BadInput::Invalid(settings.problems.clone()).into());
    }
    let builders = &settings.section.builders;
    match only {
        Some(b) if builders.contains(&b) => Ok(vec![b]),
        Some(b) => Err(BadInput::Invalid(vec![Problem {
            at: None,
            path: "packer.builders".into(),
            value: format!(
                "{:?}",
                builders.iter().map(|b| b.name()).collect::<Vec<_>>()
            ),
            expected: format!("--only {b} needs \"{b}\" in packer.builders"),
        }])
        .into()),
        None => Ok(builders.clone()),
    }
}

/// `packer`, and `vagrant` unless `no_import`; all the programs the bake
/// needs must be there unless `dry_run`.
fn find_programs(
    builders: &[Builder],
    no_import: bool,
    dry_run: bool,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let mut missing = vec![];
    let packer = need(
        "packer",
        "apt-get install packer, or a release from developer.hashicorp.com/packer",
        &mut missing,
    );
    for b in builders {
        match b {
            Builder::Qemu => need(
                "qemu-system-x86_64",
                "apt-get install qemu-system-x86",
                &mut missing,
            ),
            Builder::VirtualboxIso => {
                need("VBoxManage", "VirtualBox from virtualbox.org", &mut missing)
            }
        };
    }
    let vagrant = if no_import {
        None
    } else {
        need(
            "vagrant",
            "apt-get install vagrant, or use --no-import",
            &mut missing,
        )
    };
    if !missing.is_empty() && !dry_run {
        bail!("missing programs: {}", missing.join(", "));
    }
    Ok((packer.unwrap_or_else(|| PathBuf::from("packer")), vagrant))
}

/// `packer init` (when the template requires plugins), `packer validate`
/// and `packer build` of the builders `only` (`image`: from a cloud image);
/// out/box's lock, held since before the build, unless `dry_run`.
fn build(
    steps: &mut Steps,
    packer: &Path,
    out: &Path,
    only: &str,
    image: bool,
    dry_run: bool,
) -> Result<Option<crate::boxes::BoxDirLock>> {
    let base = || packer_cmd(packer).dir(out);
    if out.join("packer/plugins.pkr.hcl").is_file()
        && installed_version().is_none_or(Version::needs_plugins_block)
    {
        steps.run("packer init", &base().args(["init", "packer"]))?;
    }
    steps.run(
        "packer validate",
        &base()
            .arg("validate")
            .arg(format!("-only={only}"))
            .arg("packer"),
    )?;
    // out/box's lock for the whole build: Packer writes the box there (under
    // a hidden .partial name), and a fresh lock would remove that file as
    // left over by a dead run.
    let box_lock = if dry_run {
        None
    } else {
        Some(crate::boxes::BoxDirLock::acquire(out)?)
    };
    let mut progress = Progress {
        image,
        ..Progress::default()
    };
    // -force: each builder's output directory is Packer's own, replaced per build.
    steps.run_with(
        "packer build",
        &base()
            .args(["build", "-machine-readable", "-force"])
            .arg(format!("-only={only}"))
            .arg("packer"),
        &mut |line| progress.line(line),
    )?;
    Ok(box_lock)
}

/// The box Packer built for `meta`, renamed into place and added to its
/// catalog (under out/box's `lock`, so concurrent runs keep each other's
/// entries); the catalog's path.
fn move_into_catalog(
    out: &Path,
    meta: &crate::boxes::BoxMeta,
    lock: &crate::boxes::BoxDirLock,
) -> Result<PathBuf> {
    let box_path = out.join("box").join(meta.box_file_name());
    let built = out
        .join("box")
        .join(crate::config::boxes::partial(&meta.box_file_name()));
    if !built.is_file() {
        bail!(
            "packer build finished but {} is missing (see out/logs/)",
            built.display()
        );
    }
    // It holds the appliance with its secrets: the owner's only.
    crate::util::fsx::set_mode(&built, 0o600)?;
    std::fs::rename(&built, &box_path)
        .with_context(|| format!("moving {} into place", built.display()))?;
    let catalog = crate::boxes::add_to_catalog(&box_path, meta, lock)
        .with_context(|| format!("adding {} to the catalog", box_path.display()))?;
    println!("{} (catalog {})", box_path.display(), catalog.display());
    Ok(catalog)
}

/// The build's phase, from Packer's `-machine-readable` lines
/// (`TIMESTAMP,TARGET,TYPE,DATA...`).
#[derive(Debug, Default)]
pub struct Progress {
    start: Option<u64>,
    last: Option<(String, &'static str)>,
    /// The build boots a cloud image: its phases are named so.
    pub image: bool,
    /// Files of the artifacts Packer reported.
    pub artifacts: Vec<String>,
}

/// Packer escapes commas in data fields.
fn unescape(s: &str) -> String {
    s.replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "")
}

/// Where a build that boots a cloud image (`packer.source = "image"`) names
/// its phases differently from [`PHASES`].
const IMAGE_PHASES: &[(&str, &str)] = &[
    ("Retrieving ISO", "downloading the image"),
    ("Copying hard drive", "copying the image"),
    ("Resizing hard drive", "growing the disk"),
    ("Starting HTTP server", "serving cloud-init's seed"),
    ("Starting VM", "booting the image"),
    (
        "Waiting for SSH to become available",
        "booting (waiting for SSH)",
    ),
];

/// The phase of the first entry of `table` whose needle `message` contains.
fn lookup(table: &[(&str, &'static str)], message: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|(_, phase)| *phase)
}

/// What `ui` messages say about the build's phase.
const PHASES: &[(&str, &str)] = &[
    ("Retrieving ISO", "downloading the ISO"),
    ("Starting HTTP server", "serving the kickstart"),
    ("Creating virtual machine", "creating the VM"),
    ("Starting VM", "booting the installer"),
    ("Starting the virtual machine", "booting the installer"),
    ("Typing the boot command", "typing the boot command"),
    (
        "Waiting for SSH to become available",
        "installing the system (waiting for SSH)",
    ),
    ("Connected to SSH", "connected over SSH"),
    ("overlay.tar.gz", "uploading the overlay"),
    ("scripts/install.sh", "provisioning: installing the overlay"),
    (
        "scripts/firstboot.sh",
        "provisioning: first boot (registry image)",
    ),
    ("scripts/cleanup.sh", "provisioning: cleaning and shrinking"),
    ("Gracefully halting", "shutting down"),
    ("Converting hard drive", "converting the disk"),
    ("Exporting virtual machine", "exporting the VM"),
    ("Running post-processor", "post-processing (vagrant box)"),
];

impl Progress {
    /// One output line; returns the status to show when the phase changed.
    pub fn line(&mut self, line: &str) -> Option<String> {
        let mut f = line.splitn(4, ',');
        let ts: u64 = f.next()?.parse().ok()?;
        let _target = f.next()?;
        let kind = f.next()?;
        let start = *self.start.get_or_insert(ts);
        let elapsed = ts.saturating_sub(start);
        let (builder, phase) = match kind {
            "ui" => {
                let (level, msg) = f.next()?.split_once(',')?;
                let msg = unescape(msg);
                if level == "error" && msg.starts_with("Build '") && msg.contains("errored") {
                    // "Build 'qemu.registry' errored after 3 minutes: …"
                    let builder = msg.split('\'').nth(1)?;
                    (builder.to_string(), "failed")
                } else if level == "say" {
                    // "==> qemu.registry: Waiting for SSH..."
                    let body = msg.strip_prefix("==> ")?;
                    let (builder, text) = body.split_once(": ")?;
                    // "qemu.registry (vagrant)" is the post-processor's.
                    let builder = builder.split(' ').next().unwrap_or(builder);
                    let image = if self.image { IMAGE_PHASES } else { &[] };
                    let phase = lookup(image, text).or_else(|| lookup(PHASES, text));
                    (builder.to_string(), phase?)
                } else {
                    // Guest output and details: not a phase.
                    return None;
                }
            }
            "artifact" => {
                // ARTIFACT_INDEX,file,FILE_INDEX,PATH
                let rest: Vec<&str> = f.next()?.splitn(4, ',').collect();
                if let [_, "file", _, path] = rest.as_slice() {
                    self.artifacts.push(unescape(path));
                }
                return None;
            }
            _ => return None,
        };
        let key = (builder, phase);
        if self.last.as_ref() == Some(&key) {
            return None;
        }
        let msg = format!(
            "{}: {} (+{}:{:02})",
            key.0,
            phase,
            elapsed / 60,
            elapsed % 60
        );
        self.last = Some(key);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("Packer v1.6.6\n"), Some(Version(1, 6, 6)));
        assert_eq!(
            parse_version("Packer v1.11.2\n\nYour version of Packer is out of date!"),
            Some(Version(1, 11, 2))
        );
        assert!(!Version(1, 6, 6).needs_plugins_block());
        assert!(Version(1, 7, 0).needs_plugins_block());
        assert!(Version(1, 10, 0).needs_plugins_block());
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn phases_change_once() {
        let mut p = Progress::default();
        assert_eq!(
            p.line("100,,ui,say,qemu.registry: output will be in this color."),
            None
        );
        assert_eq!(
            p.line("100,,ui,say,==> qemu.registry: Retrieving ISO")
                .as_deref(),
            Some("qemu.registry: downloading the ISO (+0:00)")
        );
        assert_eq!(
            p.line("101,,ui,say,==> qemu.registry: Trying https://x"),
            None
        );
        assert_eq!(
            p.line("190,,ui,say,==> qemu.registry: Waiting for SSH to become available...")
                .as_deref(),
            Some("qemu.registry: installing the system (waiting for SSH) (+1:30)")
        );
        assert_eq!(
            p.line("191,,ui,message,    qemu.registry: regbake: Retrieving ISO"),
            None
        );
        assert_eq!(
            p.line("200,qemu.registry,artifact,0,file,0,box/r-1-libvirt.box"),
            None
        );
        assert_eq!(p.artifacts, ["box/r-1-libvirt.box"]);
        assert_eq!(p.line("garbage"), None);
        let mut image = Progress {
            image: true,
            ..Progress::default()
        };
        assert_eq!(
            image
                .line("100,,ui,say,==> qemu.registry: Waiting for SSH to become available...")
                .as_deref(),
            Some("qemu.registry: booting (waiting for SSH) (+0:00)")
        );
        assert_eq!(
            image
                .line("160,,ui,say,==> qemu.registry: Connected to SSH!")
                .as_deref(),
            Some("qemu.registry: connected over SSH (+1:00)")
        );
        assert_eq!(
            p.line("300,,ui,error,Build 'qemu.registry' errored after 1 second: boom")
                .as_deref(),
            Some("qemu.registry: failed (+3:20)")
        );
    }
}
