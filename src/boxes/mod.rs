//! Vagrant `.box` packing and the box catalog (`out/box/NAME.json`).
//!
//! A box is a tar.gz holding `metadata.json`, the disk (`box.img` for
//! libvirt; `box.ovf` + the disks it references for VirtualBox) and a
//! `Vagrantfile` with the provider defaults. It is streamed through a
//! parallel gzip writer into a hidden temp file in `out/box/`, hashed on the
//! way out, and renamed into place only when complete; the catalog is
//! rewritten the same way. An interrupted pack leaves no `.box` and the
//! previous catalog. Both happen under the box directory's lock
//! ([`BoxDirLock`]), so concurrent runs never lose a catalog entry and a
//! temp file left by a killed run is removed by the next one.

mod catalog;
mod formats;
mod gz;
mod lock;
mod pack;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

pub use catalog::{
    add_to_catalog, add_to_catalog_with_checksum, check_catalog, read_catalog, sha256_file,
    Catalog, OtherBox,
};
pub use formats::{ovf_disks, qcow2_info, Qcow2Info};
pub use gz::ParGzWriter;
pub use lock::BoxDirLock;
pub use pack::{pack_libvirt, pack_virtualbox, Packed};

pub use crate::config::boxes::{provider_name, BoxMeta};
use crate::config::{BadInput, Problem, Provider};

/// What to pack, from the command line.
#[derive(Debug, Clone)]
pub enum PackSource {
    Libvirt { disk: PathBuf },
    Virtualbox { ovf: PathBuf },
}

/// `regbake box`: Vagrant box files.
#[derive(Debug, clap::Subcommand)]
pub enum BoxCommand {
    /// Pack a VM disk into out/box/NAME-VERSION-PROVIDER.box and add it to out/box/NAME.json
    Pack(PackArgs),
}

/// `regbake box pack`: name and version default to the config's `[vagrant]`.
#[derive(Debug, Clone, clap::Args)]
pub struct PackArgs {
    /// Box provider
    #[arg(long, value_enum)]
    pub provider: Provider,
    /// qcow2 disk image (libvirt)
    #[arg(
        long,
        value_name = "IMAGE",
        required_if_eq("provider", "libvirt"),
        conflicts_with = "ovf"
    )]
    pub disk: Option<PathBuf>,
    /// OVF descriptor; the disks it references are packed too (virtualbox)
    #[arg(long, value_name = "OVF", required_if_eq("provider", "virtualbox"))]
    pub ovf: Option<PathBuf>,
    /// Box name [default: vagrant.box_name]
    #[arg(long)]
    pub name: Option<String>,
    /// Box version [default: vagrant.box_version]
    #[arg(long)]
    pub version: Option<String>,
}

impl PackArgs {
    fn source(&self) -> Result<PackSource> {
        match (self.provider, &self.disk, &self.ovf) {
            (Provider::Libvirt, Some(disk), _) => Ok(PackSource::Libvirt { disk: disk.clone() }),
            (Provider::Virtualbox, _, Some(ovf)) => Ok(PackSource::Virtualbox { ovf: ovf.clone() }),
            // clap requires the matching flag for each provider.
            _ => {
                anyhow::bail!("--provider libvirt needs --disk, --provider virtualbox needs --ovf")
            }
        }
    }
}

/// `regbake box …`
pub fn run(config: Option<&Path>, out: &Path, dry_run: bool, cmd: &BoxCommand) -> Result<()> {
    match cmd {
        BoxCommand::Pack(args) => run_pack(config, out, dry_run, args),
    }
}

fn usage(flag: &str, message: String) -> anyhow::Error {
    BadInput::Usage {
        flag: flag.into(),
        message,
    }
    .into()
}

/// [`check_catalog`] as a usage error against `name_path` when the catalog
/// belongs to another box: bakes and `box pack` call it before any work, so
/// a name clash stops a run at once, not after a build.
pub fn check_box_name(box_dir: &Path, meta: &BoxMeta, name_path: &str) -> Result<()> {
    check_catalog(box_dir, meta).map_err(|e| other_box_usage(e, name_path))
}

/// An [`OtherBox`] error as a usage error against `name_path`, saying what
/// to set it to; other errors as they are.
fn other_box_usage(e: anyhow::Error, name_path: &str) -> anyhow::Error {
    match e.downcast::<OtherBox>() {
        Ok(other) => {
            let fix = if name_path.starts_with("--") {
                format!("{name_path} {}", other.owner)
            } else {
                format!("{name_path} = {:?}", other.owner)
            };
            usage(name_path, format!("{other} ({fix})"))
        }
        Err(e) => e,
    }
}

/// Run `regbake box pack`: bad arguments (missing or non-qcow2 disk, bad
/// name) exit 2 like config errors; I/O failures exit 1.
pub fn run_pack(config: Option<&Path>, out: &Path, dry_run: bool, args: &PackArgs) -> Result<()> {
    let (crate::config::Valid { config, .. }, _) = crate::config::load(config)?;
    let source = args.source()?;
    let provider = args.provider;
    let meta = BoxMeta {
        name: args.name.clone().unwrap_or(config.vagrant.box_name),
        version: args.version.clone().unwrap_or(config.vagrant.box_version),
        provider,
    };
    let problems = meta.problems("--name", "--version");
    if !problems.is_empty() {
        return Err(BadInput::Invalid(problems).into());
    }
    let (flag, input) = match &source {
        PackSource::Libvirt { disk } => ("--disk", disk),
        PackSource::Virtualbox { ovf } => ("--ovf", ovf),
    };
    if !input.is_file() {
        return Err(BadInput::Arg(Problem::new(flag, input.as_path(), "not a file")).into());
    }
    match &source {
        PackSource::Libvirt { disk } => {
            qcow2_info(disk).map_err(|e| usage(flag, format!("{e:#}")))?;
        }
        PackSource::Virtualbox { ovf } => {
            ovf_disks(ovf).map_err(|e| usage(flag, format!("{e:#}")))?;
        }
    }
    // The catalog decides whose files these are; checked before anything is
    // written, and again under the lock.
    let box_dir = out.join("box");
    let name_flag = if args.name.is_some() {
        "--name"
    } else {
        "vagrant.box_name"
    };
    check_box_name(&box_dir, &meta, name_flag)?;
    let dest = box_dir.join(meta.box_file_name());
    if dry_run {
        println!("would pack {} into {}", input.display(), dest.display());
        println!(
            "would add it to {}",
            out.join("box").join(meta.catalog_file_name()).display()
        );
        return Ok(());
    }
    // Before the lock, so Ctrl-C also ends a wait for it.
    crate::util::interrupt::catch_interrupts();
    // One lock over the pack and its catalog entry.
    let lock = BoxDirLock::acquire(out)?;
    let started = Instant::now();
    let packed = match &source {
        PackSource::Libvirt { disk } => pack_libvirt(disk, &meta, &lock),
        PackSource::Virtualbox { ovf } => pack_virtualbox(ovf, &meta, &lock),
    }
    .map_err(|e| other_box_usage(e, name_flag))?;
    let catalog = add_to_catalog_with_checksum(&packed.path, &packed.sha256, &meta, &lock)?;
    println!(
        "packed {} ({:.1} MiB from {:.1} MiB) in {:.1}s",
        packed.path.display(),
        packed.size as f64 / (1u64 << 20) as f64,
        packed.input as f64 / (1u64 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    println!(
        "catalog {} (vagrant box add {})",
        catalog.display(),
        catalog.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Read;
    use std::path::Path;

    use super::*;
    use flate2::read::MultiGzDecoder;

    fn meta(provider: Provider, version: &str) -> BoxMeta {
        BoxMeta {
            name: "regbake/registry".into(),
            version: version.into(),
            provider,
        }
    }

    /// A qcow2 v3 header and tables followed by some data.
    fn fake_qcow2(path: &Path, virtual_size: u64) {
        let mut h = formats::tests::qcow2_bytes(virtual_size);
        h.extend(std::iter::repeat_n(b'x', 100_000));
        std::fs::write(path, h).unwrap();
    }

    fn entries(box_path: &Path) -> Vec<(String, Vec<u8>)> {
        let f = File::open(box_path).unwrap();
        let mut ar = tar::Archive::new(MultiGzDecoder::new(f));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = vec![];
                e.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn libvirt_box_and_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 3 * (1 << 30) + 1);
        let out = dir.path().join("out");
        let m = meta(Provider::Libvirt, "1.0.0");
        let lock = BoxDirLock::acquire(&out).unwrap();
        let path = pack_libvirt(&disk, &m, &lock).unwrap().path;
        assert_eq!(path, out.join("box/regbake-registry-1.0.0-libvirt.box"));
        let files = entries(&path);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["metadata.json", "Vagrantfile", "box.img"]);
        let md: serde_json::Value = serde_json::from_slice(&files[0].1).unwrap();
        assert_eq!(
            md,
            serde_json::json!({"provider": "libvirt", "format": "qcow2", "virtual_size": 4})
        );
        assert_eq!(files[2].1, std::fs::read(&disk).unwrap());

        let cat_path = add_to_catalog(&path, &m, &lock).unwrap();
        assert_eq!(cat_path, out.join("box/regbake-registry.json"));
        let v2 = meta(Provider::Libvirt, "1.10.0");
        let path2 = pack_libvirt(&disk, &v2, &lock).unwrap().path;
        add_to_catalog(&path2, &v2, &lock).unwrap();
        // Re-adding 1.0.0 replaces its entry instead of duplicating it.
        add_to_catalog(&path, &m, &lock).unwrap();
        let cat: Catalog =
            serde_json::from_str(&std::fs::read_to_string(&cat_path).unwrap()).unwrap();
        let versions: Vec<&str> = cat.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(versions, ["1.0.0", "1.10.0"]);
        let p = &cat.versions[0].providers;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "libvirt");
        assert_eq!(p[0].checksum_type, "sha256");
        assert_eq!(p[0].checksum, sha256_file(&path).unwrap());
        assert!(p[0].url.starts_with("file:///"), "{}", p[0].url);
        let leftovers: Vec<_> = std::fs::read_dir(out.join("box"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != crate::util::lock::LOCK_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn packed_checksum_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 1 << 30);
        let lock = BoxDirLock::acquire(dir.path()).unwrap();
        let packed = pack_libvirt(&disk, &meta(Provider::Libvirt, "1"), &lock).unwrap();
        assert_eq!(packed.sha256, sha256_file(&packed.path).unwrap());
        assert_eq!(packed.size, std::fs::metadata(&packed.path).unwrap().len());
    }

    #[test]
    fn not_qcow2_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        std::fs::write(&disk, vec![0u8; 4096]).unwrap();
        let lock = BoxDirLock::acquire(dir.path()).unwrap();
        let err = pack_libvirt(&disk, &meta(Provider::Libvirt, "1"), &lock).unwrap_err();
        assert!(format!("{err:#}").contains("not a qcow2 image"), "{err:#}");
        assert!(!dir
            .path()
            .join("box/regbake-registry-1-libvirt.box")
            .exists());
    }

    /// Also for callers that pack under the lock without `box pack`'s
    /// early check (`regbake vagrant` for libvirt).
    #[test]
    fn another_boxs_catalog_stops_the_pack_before_the_box() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 1 << 30);
        let lock = BoxDirLock::acquire(dir.path()).unwrap();
        let mut m = meta(Provider::Libvirt, "1.0.0");
        m.name = "org/reg".into();
        let first = pack_libvirt(&disk, &m, &lock).unwrap().path;
        add_to_catalog(&first, &m, &lock).unwrap();
        let before = std::fs::read(&first).unwrap();
        m.name = "org-reg".into();
        let err = pack_libvirt(&disk, &m, &lock).unwrap_err();
        let other = err.downcast_ref::<OtherBox>().expect("OtherBox");
        assert_eq!(
            (other.owner.as_str(), other.name.as_str()),
            ("org/reg", "org-reg")
        );
        assert_eq!(std::fs::read(&first).unwrap(), before);
    }

    #[test]
    fn bad_names_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 1 << 30);
        let mut m = meta(Provider::Libvirt, "1.0.0");
        m.name = "../evil".into();
        let lock = BoxDirLock::acquire(dir.path()).unwrap();
        assert!(pack_libvirt(&disk, &m, &lock).is_err());
        let written: Vec<_> = std::fs::read_dir(dir.path().join("box")).unwrap().collect();
        assert_eq!(written.len(), 1, "only the lock file: {written:?}");
    }
}
