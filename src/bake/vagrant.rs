//! `regbake vagrant`: bake the appliance on a base box with Vagrant, package
//! the VM as a box, catalog it and import it. A straight list of named steps
//! (see [`crate::bake::steps`]); any failure, Ctrl-C included, destroys the build VM
//! unless `--keep-vm`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::bake::steps::Steps;
use crate::bake::tools::{self, Cmd};
use crate::boxes::BoxMeta;
use crate::config::Provider;
use crate::model::Appliance;
use crate::render::{self, escape, Scope};

/// `regbake vagrant`
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Args {
    /// Only render out/vagrant/Vagrantfile (and the overlay it installs)
    #[arg(long)]
    pub render_only: bool,
    /// Do not `vagrant box add` the baked box
    #[arg(long)]
    pub no_import: bool,
    /// Keep the build VM (also after a failure)
    #[arg(long)]
    pub keep_vm: bool,
}

/// Vagrant's state for the build VM, outside `out/vagrant` (which a render
/// replaces) so a kept VM stays known across renders.
pub const DOTFILE_DIR: &str = ".vagrant";

/// vagrant-libvirt's default connection and storage pool.
const LIBVIRT_URI: &str = "qemu:///system";
const LIBVIRT_POOL: &str = "default";

pub fn run(config: Option<&Path>, out: &Path, dry_run: bool, v: &Args) -> Result<()> {
    // out/ stays ours for the whole bake: a render meanwhile would change
    // the overlay Vagrant uploads.
    let out_lock = crate::output::lock(out)?;
    let (valid, _) = crate::config::load(config)?;
    let facts = super::packer::facts(out, &valid.config)?;
    let (app, _) =
        crate::output::render_to(&valid, &facts, Scope::All, out, &out_lock, |_, _| Ok(()))?;
    let vagrantfile = out.join(render::vagrant::PATH);
    if v.render_only {
        println!("{}", vagrantfile.display());
        return Ok(());
    }
    let provider = app.vagrant.provider;
    let vagrant = match tools::find("vagrant") {
        Some(p) => p,
        None if dry_run => PathBuf::from("vagrant"),
        None => bail!("{}", missing_vagrant(provider)),
    };
    let out = facts.out_dir;
    let mut bake = Bake {
        steps: Steps::new(&out, dry_run)?,
        vagrant,
        dry_run,
        meta: BoxMeta {
            name: app.vagrant.box_name.clone(),
            version: app.vagrant.box_version.clone(),
            provider,
        },
        out,
        vm_may_exist: false,
    };
    // A catalog of another box under this name would refuse the box only
    // after the whole build.
    crate::boxes::check_box_name(&bake.out.join("box"), &bake.meta, "vagrant.box_name")?;
    let started = Instant::now();
    match bake.run(&app, *v) {
        Ok(()) => {
            if !dry_run {
                eprintln!(
                    "baked {} {} ({}) in {:.0}s",
                    bake.meta.name,
                    bake.meta.version,
                    crate::boxes::provider_name(provider),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Err(err) => {
            if bake.vm_may_exist {
                if v.keep_vm {
                    crate::util::log::note(&format!(
                        "kept the build VM (--keep-vm); remove it with: {}",
                        bake.vagrant(&["destroy", "-f"])
                    ));
                } else if let Err(e) = bake.destroy_after_failure() {
                    crate::util::log::note(&format!("could not destroy the build VM: {e:#}"));
                }
            }
            Err(err)
        }
    }
}

fn missing_vagrant(provider: Provider) -> String {
    let plugin = match provider {
        Provider::Libvirt => " and the vagrant-libvirt plugin (apt-get install vagrant-libvirt)",
        Provider::Virtualbox => " and VirtualBox",
    };
    format!(
        "vagrant not found on PATH: install Vagrant (Debian/Ubuntu: apt-get install vagrant; \
         others: https://developer.hashicorp.com/vagrant/install){plugin}"
    )
}

struct Bake {
    steps: Steps,
    vagrant: PathBuf,
    dry_run: bool,
    meta: BoxMeta,
    /// Absolute `out/`.
    out: PathBuf,
    /// Set once `vagrant up` starts: from then on a failure cleans up.
    vm_may_exist: bool,
}

impl Bake {
    fn vagrant_dir(&self) -> PathBuf {
        self.out.join("vagrant")
    }

    fn dotfile_dir(&self) -> PathBuf {
        self.out.join(DOTFILE_DIR)
    }

    /// `vagrant ARGS` in `out/vagrant`, with its state in `out/.vagrant`.
    fn vagrant(&self, args: &[&str]) -> Cmd {
        Cmd::new(&self.vagrant)
            .args(args)
            .env("VAGRANT_CWD", self.vagrant_dir())
            .env("VAGRANT_DOTFILE_PATH", self.dotfile_dir())
            .dir(self.vagrant_dir())
    }

    fn provider(&self) -> &'static str {
        crate::boxes::provider_name(self.meta.provider)
    }

    fn run(&mut self, app: &Appliance, v: Args) -> Result<()> {
        // A VM left by an earlier bake would be reused without provisioning.
        let id = self
            .dotfile_dir()
            .join("machines/default")
            .join(self.provider())
            .join("id");
        if id.is_file() {
            self.vm_may_exist = true;
            let cmd = self.vagrant(&["destroy", "-f"]);
            self.steps.run("destroy previous build VM", &cmd)?;
        }
        if self.meta.provider == Provider::Libvirt && !self.dry_run {
            refuse_foreign_domain(&app.vagrant.libvirt_domain, &app.appliance.name)?;
        }

        self.vm_may_exist = true;
        let cmd = self.vagrant(&["up", "--provider", self.provider()]);
        self.steps
            .run_with("vagrant up", &cmd, &mut vagrant_phase)?;

        let cmd = self.vagrant(&["ssh", "-c", &verify_script(app)]);
        self.steps.run("verify registry", &cmd)?;

        let cmd = self.vagrant(&["provision", "--provision-with", "regbake-clean"]);
        self.steps.run("clean guest", &cmd)?;

        // out/box is shared with other regbake runs: hold its lock from the
        // first temp file written there until the catalog is updated.
        let lock = if self.dry_run {
            None
        } else {
            Some(crate::boxes::BoxDirLock::acquire(&self.out)?)
        };
        let box_path = match self.meta.provider {
            Provider::Virtualbox => self.package_virtualbox()?,
            Provider::Libvirt => self.package_libvirt(app, lock.as_ref())?,
        };

        let catalog = if self.dry_run {
            println!(
                "[--] write catalog: {}",
                self.out
                    .join("box")
                    .join(self.meta.catalog_file_name())
                    .display()
            );
            self.out.join("box").join(self.meta.catalog_file_name())
        } else {
            let lock = lock.as_ref().context("out/box is not locked")?;
            let c = crate::boxes::add_to_catalog(&box_path, &self.meta, lock)
                .context("writing the box catalog")?;
            eprintln!("    catalog {}", c.display());
            c
        };
        drop(lock);

        if !v.no_import {
            let catalog = catalog.display().to_string();
            let cmd = self.vagrant(&[
                "box",
                "add",
                "--force",
                "--provider",
                self.provider(),
                "--box-version",
                &self.meta.version,
                &catalog,
            ]);
            self.steps.run("import box", &cmd)?;
        }

        if !v.keep_vm {
            let cmd = self.vagrant(&["destroy", "-f"]);
            self.steps.run("destroy build VM", &cmd)?;
            self.vm_may_exist = false;
        }
        Ok(())
    }

    /// `vagrant package` into a hidden name in `out/box`, renamed into place
    /// once complete.
    fn package_virtualbox(&mut self) -> Result<PathBuf> {
        let dir = self.out.join("box");
        let dest = dir.join(self.meta.box_file_name());
        let partial = dir.join(crate::config::boxes::partial(&self.meta.box_file_name()));
        if !self.dry_run {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // vagrant package refuses to overwrite its output.
            remove_if_exists(&partial)?;
        }
        let partial_s = partial.display().to_string();
        let cmd = self.vagrant(&["package", "--output", &partial_s]);
        let result = self.steps.run("package box", &cmd);
        if result.is_err() && !self.dry_run {
            let _ = std::fs::remove_file(&partial);
        }
        result?;
        if !self.dry_run {
            // It holds the appliance with its secrets: the owner's only.
            crate::util::fsx::set_mode(&partial, 0o600)?;
            std::fs::rename(&partial, &dest)
                .with_context(|| format!("moving {} into place", dest.display()))?;
        }
        Ok(dest)
    }

    /// Halt the VM, find its disk in the libvirt pool, flatten it (the
    /// domain disk is a qcow2 overlay on the base box) and pack it.
    fn package_libvirt(
        &mut self,
        app: &Appliance,
        lock: Option<&crate::boxes::BoxDirLock>,
    ) -> Result<PathBuf> {
        let cmd = self.vagrant(&["halt"]);
        self.steps.run("halt VM", &cmd)?;

        let virsh = tools::find("virsh").unwrap_or_else(|| PathBuf::from("virsh"));
        if !self.dry_run && tools::find("virsh").is_none() {
            bail!("virsh not found on PATH: install it (apt-get install libvirt-clients)");
        }
        let volume = format!("{}.img", app.vagrant.libvirt_domain);
        let cmd = Cmd::new(virsh)
            .args(["-c", LIBVIRT_URI, "vol-path", "--pool", LIBVIRT_POOL])
            .arg(&volume);
        let mut disk: Option<String> = None;
        self.steps.run_with("find VM disk", &cmd, &mut |line| {
            let l = line.trim();
            if l.starts_with('/') {
                disk = Some(l.to_string());
            }
            None
        })?;
        let disk = match (disk, self.dry_run) {
            (Some(d), _) => d,
            (None, true) => format!("<path of {volume}>"),
            (None, false) => bail!("virsh printed no path for the volume {volume}"),
        };

        let dir = self.out.join("box");
        // Named *.partial so the next run removes it if this one is killed.
        let flat = dir.join(crate::config::boxes::partial(&format!(
            "{}-disk.qcow2",
            self.meta.file_stem()
        )));
        if !self.dry_run {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            remove_if_exists(&flat)?;
            // Made 0600 first, so the copy of the appliance (and its
            // secrets) that qemu-img writes there, and the box packed from
            // it, are the owner's only: qemu-img keeps an existing file's mode.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&flat)
                .with_context(|| format!("creating {}", flat.display()))?;
        }
        let qemu_img = tools::find("qemu-img").unwrap_or_else(|| PathBuf::from("qemu-img"));
        let cmd = Cmd::new(qemu_img)
            .args(["convert", "-O", "qcow2"])
            .arg(&disk)
            .arg(&flat);
        let converted = self.steps.run("flatten disk", &cmd);
        if converted.is_err() && !self.dry_run {
            let _ = std::fs::remove_file(&flat);
        }
        converted?;

        if self.dry_run {
            println!(
                "[--] pack box: regbake box pack --provider libvirt --disk {}",
                flat.display()
            );
            return Ok(dir.join(self.meta.box_file_name()));
        }
        let started = Instant::now();
        eprintln!("==> pack box: {}", flat.display());
        let lock = lock.context("out/box is not locked")?;
        let packed = crate::boxes::pack_libvirt(&flat, &self.meta, lock).map(|p| p.path);
        let _ = std::fs::remove_file(&flat);
        let packed = packed.context("packing the libvirt box")?;
        eprintln!(
            "    pack box done in {:.1}s: {}",
            started.elapsed().as_secs_f64(),
            packed.display()
        );
        Ok(packed)
    }

    /// After a failure or Ctrl-C: destroy the VM. Not a [`Steps`] step, which
    /// refuses to start once interrupted; logged the same way.
    fn destroy_after_failure(&self) -> Result<()> {
        let cmd = self.vagrant(&["destroy", "-f"]);
        if self.dry_run {
            println!("[--] destroy build VM: {cmd}");
            return Ok(());
        }
        let log = self.out.join("logs").join(format!(
            "{:02}-destroy-build-vm-after-failure.log",
            self.steps.history.len() + 1
        ));
        eprintln!("==> destroying the build VM: {cmd}");
        // The bake stopped (on Ctrl-C too): the destroy itself must not be
        // killed by that same Ctrl-C, or the VM stays behind.
        crate::util::interrupt::acknowledge();
        tools::run(&cmd, Some(&log))?;
        Ok(())
    }
}

/// Refuses a bake whose libvirt domain exists already: it is not this out
/// dir's (whose VM was destroyed just before), so it is another bake of the
/// same `appliance.name` (running, or kept with `--keep-vm`), or a VM made
/// by hand under that name. vagrant-libvirt would fail only after the box
/// upload, or worse, act on that VM. Where virsh cannot tell (no libvirtd),
/// `vagrant up` reports the real problem.
fn refuse_foreign_domain(domain: &str, appliance: &str) -> Result<()> {
    let Some(virsh) = tools::find("virsh") else {
        return Ok(());
    };
    let out = std::process::Command::new(virsh)
        .args(["-c", LIBVIRT_URI, "list", "--all", "--name"])
        .stdin(std::process::Stdio::null())
        .output();
    let exists = out.is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == domain)
    });
    if exists {
        bail!(
            "refusing to bake: the libvirt domain {domain} exists and is not this out dir's \
             build VM: another bake of appliance.name = {appliance:?} (running, or kept with \
             --keep-vm) or a VM of that name. Wait for it, give this appliance another name, \
             or remove that VM: virsh -c {LIBVIRT_URI} destroy {domain}; \
             virsh -c {LIBVIRT_URI} undefine {domain} --remove-all-storage"
        );
    }
    Ok(())
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// The guest-side check that the registry answers `GET /v2/` (200, or 401
/// when it wants credentials), as `vagrant ssh -c` runs it.
pub fn verify_script(app: &Appliance) -> String {
    let mut curl = String::from("curl -sS --noproxy '*' -o /dev/null -w '%{http_code}'");
    for a in &app.registry.curl_args {
        curl.push(' ');
        curl.push_str(&escape::sh(a));
    }
    curl.push(' ');
    curl.push_str(&escape::sh(&app.registry.local_url));
    format!(
        "code=$({curl}); printf 'GET %s: %s\\n' {url} \"$code\"; \
         case \"$code\" in 200|401) exit 0;; *) exit 1;; esac",
        url = escape::sh(&app.registry.local_url)
    )
}

/// Vagrant's `==> default: …` lines as the spinner's message.
fn vagrant_phase(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("==> ")?;
    let msg = rest.split_once(": ").map_or(rest, |(_, m)| m);
    Some(msg.chars().take(70).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_from_vagrant_output() {
        assert_eq!(
            vagrant_phase("==> default: Running provisioner: regbake-install (shell)...")
                .as_deref(),
            Some("Running provisioner: regbake-install (shell)...")
        );
        assert_eq!(vagrant_phase("    default: noise"), None);
    }

    #[test]
    fn missing_vagrant_says_what_to_install() {
        let m = missing_vagrant(Provider::Libvirt);
        assert!(m.contains("apt-get install vagrant") && m.contains("vagrant-libvirt"));
    }
}
