//! `systemd-analyze verify` needs every unit a unit names, and every
//! `Exec*` program, to exist: test copies whose docker path points at a stub
//! script, beside a stub `docker.service` that carries the overlay's
//! drop-ins.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::runner::Runner;
use crate::bake::tools::Cmd;

/// `systemd-analyze verify` needs every referenced unit to exist and every
/// `Exec*` path to be executable. The appliance's `/usr/bin/docker` is absent
/// here, so the units are verified as copies whose docker path alone points at
/// a stub script, next to a stub `docker.service`; paths of overlay programs
/// point at the rendered overlay.
pub(super) struct UnitStubs {
    pub(super) dir: PathBuf,
    pub(super) docker: PathBuf,
    pub(super) overlay: PathBuf,
}

impl UnitStubs {
    pub(super) fn rewrite(&self, unit: &str) -> String {
        unit.replace(crate::model::DOCKER, &self.docker.display().to_string())
            .replace(
                "/usr/local/sbin/",
                &format!("{}/usr/local/sbin/", self.overlay.display()),
            )
    }
}

fn prepare_unit_stubs(scratch: &Path, overlay: &Path) -> Result<UnitStubs> {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch.join("units");
    crate::util::fsx::create_dir(&dir, 0o700)?;
    let docker = scratch.join("docker-stub");
    crate::util::fsx::write_private(&docker, b"#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o700))
        .context("chmod the docker stub")?;
    crate::util::fsx::write_private(
        &dir.join("docker.service"),
        format!(
            "[Unit]\nDescription=stub docker.service for regbake check\n\n[Service]\nExecStart={}\n",
            docker.display()
        )
        .as_bytes(),
    )?;
    let dropins = overlay.join("etc/systemd/system/docker.service.d");
    if dropins.is_dir() {
        let dest = dir.join("docker.service.d");
        crate::util::fsx::create_dir(&dest, 0o700)?;
        for f in files_under(&dropins)? {
            // Drop-ins may carry proxy credentials: owner-only copies.
            let data = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            crate::util::fsx::write_private(
                &dest.join(f.file_name().context("drop-in name")?),
                &data,
            )?;
        }
    }
    Ok(UnitStubs {
        dir,
        docker,
        overlay: overlay.to_path_buf(),
    })
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// `systemd-analyze verify` of each unit (`units`) as a copy beside the
/// stubs, and of each directory of `dropins` with the unit it extends.
pub(super) fn check_units(
    r: &mut Runner<'_>,
    units: &[PathBuf],
    dropins: &[PathBuf],
    scratch: &Path,
    overlay: &Path,
) -> Result<()> {
    if units.is_empty() {
        return Ok(());
    }
    let stub = prepare_unit_stubs(scratch, overlay)?;
    // All copies first: a timer is verified with the service it starts.
    let mut copies = vec![];
    for unit in units {
        let copy = stub.dir.join(unit.file_name().context("unit file name")?);
        let text =
            std::fs::read_to_string(unit).with_context(|| format!("reading {}", unit.display()))?;
        crate::util::fsx::write_private(&copy, stub.rewrite(&text).as_bytes())?;
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
    let mut dirs: Vec<PathBuf> = dropins
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
    Ok(())
}
