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

mod gz;
mod lock;

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::config::boxes::{provider_name, BoxMeta};
use crate::config::{ConfigError, Provider};
use crate::out::Global;
use crate::util::fsx::Staged;
use crate::util::io::{Exact, HashWriter};

pub use gz::ParGzWriter;
pub use lock::BoxDirLock;

/// A packed box: where it is and its sha256 (computed while writing).
#[derive(Debug, Clone)]
pub struct Packed {
    pub path: PathBuf,
    pub sha256: String,
    /// Size of the `.box` in bytes.
    pub size: u64,
    /// Bytes of input packed (before compression).
    pub input: u64,
}

/// gzip level, as `gzip`'s default, so boxes are as small as `tar -czf` ones.
const LEVEL: u32 = 6;

const VAGRANTFILE_LIBVIRT: &str = include_str!("../../templates/box/libvirt/Vagrantfile");
const VAGRANTFILE_VIRTUALBOX: &str = include_str!("../../templates/box/virtualbox/Vagrantfile");

/// Format and virtual size of a qcow2 image, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qcow2Info {
    pub version: u32,
    pub virtual_size: u64,
}

/// Read the qcow2 header: magic `QFI\xfb`, version (2 or 3), virtual size
/// (big-endian u64 at offset 24).
pub fn qcow2_info(disk: &Path) -> Result<Qcow2Info> {
    let mut f = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    let mut header = [0u8; 32];
    let mut got = 0;
    while got < header.len() {
        let n = f
            .read(&mut header[got..])
            .with_context(|| format!("reading {}", disk.display()))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got < header.len() || &header[..4] != b"QFI\xfb" {
        bail!(
            "{} is not a qcow2 image (no qcow2 header); convert it with `qemu-img convert -O qcow2`",
            disk.display()
        );
    }
    let version = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !(2..=3).contains(&version) {
        bail!(
            "{}: unsupported qcow2 version {version} (expected 2 or 3)",
            disk.display()
        );
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[24..32]);
    Ok(Qcow2Info {
        version,
        virtual_size: u64::from_be_bytes(size),
    })
}

/// The disk files an OVF references (`<File ovf:href=…>`), checked to be
/// plain file names next to the OVF.
pub fn ovf_disks(ovf: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(ovf).with_context(|| format!("reading {}", ovf.display()))?;
    let doc = roxmltree::Document::parse(&text)
        .with_context(|| format!("{} is not valid XML", ovf.display()))?;
    let mut disks: Vec<String> = vec![];
    for node in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "File")
    {
        let href = node
            .attributes()
            .find(|a| a.name() == "href")
            .map(|a| a.value())
            .with_context(|| {
                format!(
                    "{}:{}: File element without an href",
                    ovf.display(),
                    doc.text_pos_at(node.range().start).row
                )
            })?;
        let line = doc.text_pos_at(node.range().start).row;
        if href.is_empty()
            || href.contains('/')
            || href.contains('\\')
            || href.contains("..")
            || href.starts_with('.')
        {
            bail!(
                "{}:{line}: File href {href:?} must be a plain file name next to the OVF (no path separators, no '..')",
                ovf.display()
            );
        }
        if ["box.ovf", "metadata.json", "Vagrantfile"].contains(&href) {
            bail!(
                "{}:{line}: File href {href:?} clashes with a file the box itself holds",
                ovf.display()
            );
        }
        if !disks.iter().any(|d| d == href) {
            disks.push(href.to_string());
        }
    }
    if disks.is_empty() {
        bail!(
            "{} references no disk (no <File ovf:href=…> element)",
            ovf.display()
        );
    }
    Ok(disks)
}

/// What goes into the tar, in order.
enum Content {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

struct Entry {
    name: String,
    content: Content,
}

fn file_entry(name: &str, path: &Path) -> Result<Entry> {
    let md = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !md.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(Entry {
        name: name.into(),
        content: Content::File(path.to_path_buf(), md.len()),
    })
}

/// Pack a libvirt box from a qcow2 disk into
/// `out_dir/box/NAME-VERSION-PROVIDER.box`, atomically. Returns the path.
pub fn pack_libvirt(disk: &Path, meta: &BoxMeta, out_dir: &Path) -> Result<PathBuf> {
    pack_libvirt_box(disk, meta, out_dir).map(|p| p.path)
}

/// Pack a VirtualBox box from an OVF and the disks it references.
pub fn pack_virtualbox(ovf: &Path, meta: &BoxMeta, out_dir: &Path) -> Result<PathBuf> {
    pack_virtualbox_box(ovf, meta, out_dir).map(|p| p.path)
}

/// [`pack_libvirt`], also returning the checksum computed while writing.
pub fn pack_libvirt_box(disk: &Path, meta: &BoxMeta, out_dir: &Path) -> Result<Packed> {
    if meta.provider != Provider::Libvirt {
        bail!(
            "pack_libvirt needs a libvirt box, not {}",
            provider_name(meta.provider)
        );
    }
    let info = qcow2_info(disk)?;
    const GIB: u64 = 1 << 30;
    // vagrant-libvirt takes whole GB; round up so the disk never shrinks.
    let gb = info.virtual_size.div_ceil(GIB).max(1);
    let metadata = serde_json::json!({
        "provider": "libvirt",
        "format": "qcow2",
        "virtual_size": gb,
    });
    let entries = vec![
        json_entry(&metadata)?,
        Entry {
            name: "Vagrantfile".into(),
            content: Content::Bytes(VAGRANTFILE_LIBVIRT.as_bytes().to_vec()),
        },
        file_entry("box.img", disk)?,
    ];
    write_box(entries, meta, out_dir)
}

/// [`pack_virtualbox`], also returning the checksum computed while writing.
pub fn pack_virtualbox_box(ovf: &Path, meta: &BoxMeta, out_dir: &Path) -> Result<Packed> {
    if meta.provider != Provider::Virtualbox {
        bail!(
            "pack_virtualbox needs a virtualbox box, not {}",
            provider_name(meta.provider)
        );
    }
    let disks = ovf_disks(ovf)?;
    let dir = ovf.parent().unwrap_or(Path::new("."));
    let mut entries = vec![
        json_entry(&serde_json::json!({ "provider": "virtualbox" }))?,
        Entry {
            name: "Vagrantfile".into(),
            content: Content::Bytes(VAGRANTFILE_VIRTUALBOX.as_bytes().to_vec()),
        },
        file_entry("box.ovf", ovf)?,
    ];
    for d in &disks {
        entries.push(
            file_entry(d, &dir.join(d))
                .with_context(|| format!("disk {d} referenced by {}", ovf.display()))?,
        );
    }
    write_box(entries, meta, out_dir)
}

fn json_entry(v: &serde_json::Value) -> Result<Entry> {
    let mut bytes = serde_json::to_vec(v).context("encoding metadata.json")?;
    bytes.push(b'\n');
    Ok(Entry {
        name: "metadata.json".into(),
        content: Content::Bytes(bytes),
    })
}

fn write_box(entries: Vec<Entry>, meta: &BoxMeta, out_dir: &Path) -> Result<Packed> {
    meta.check()?;
    // Re-entrant: callers packing and cataloguing hold it already.
    let lock = BoxDirLock::acquire(out_dir)?;
    let box_dir = lock.dir().to_path_buf();
    let dest = box_dir.join(meta.box_file_name());
    // Hidden, and not named *.box, so a killed pack leaves nothing that looks
    // like a box.
    let tmp = Staged::beside(&dest, true)?;

    let total: u64 = entries
        .iter()
        .map(|e| match &e.content {
            Content::Bytes(b) => b.len() as u64,
            Content::File(_, len) => *len,
        })
        .sum();
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} packing {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(meta.box_file_name());

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let hashed = HashWriter::new(tmp.file());
    let mut tar = tar::Builder::new(ParGzWriter::new(hashed, threads, LEVEL, gz::CHUNK));
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for e in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        match &e.content {
            Content::Bytes(b) => {
                header.set_size(b.len() as u64);
                tar.append_data(&mut header, &e.name, &b[..])
            }
            Content::File(path, len) => {
                header.set_size(*len);
                let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let reader = Exact::new(BufReader::with_capacity(1 << 20, f), *len, path.clone());
                tar.append_data(&mut header, &e.name, bar.wrap_read(reader))
            }
        }
        .with_context(|| format!("packing {}", e.name))?;
        if let Content::Bytes(b) = &e.content {
            bar.inc(b.len() as u64);
        }
    }
    let gz = tar.into_inner().context("finishing the tar stream")?;
    let hashed = gz.finish().context("finishing the gzip stream")?;
    bar.finish_and_clear();
    let (sha256, size) = hashed.finish();

    let compressed = started.elapsed();
    tmp.commit(0o644, true)
        .with_context(|| format!("moving the box into place at {}", dest.display()))?;
    crate::util::log::debug(&format!(
        "packed {} ({} bytes in, {size} out, {threads} threads): compressed in {:.1}s, on disk in {:.1}s",
        dest.display(),
        total,
        compressed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Packed {
        path: dest,
        sha256,
        size,
        input: total,
    })
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The catalog JSON `vagrant box add NAME.json` reads. Fields regbake does not
/// know are kept as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub versions: Vec<CatalogVersion>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogVersion {
    pub version: String,
    #[serde(default)]
    pub providers: Vec<CatalogProvider>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogProvider {
    pub name: String,
    pub url: String,
    pub checksum_type: String,
    pub checksum: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Catalog {
    /// Add or replace (same version + provider) one provider entry; versions
    /// stay sorted oldest first.
    pub fn upsert(&mut self, version: &str, provider: CatalogProvider) {
        let v = match self.versions.iter_mut().position(|v| v.version == version) {
            Some(i) => &mut self.versions[i],
            None => {
                self.versions.push(CatalogVersion {
                    version: version.into(),
                    providers: vec![],
                    extra: Default::default(),
                });
                let last = self.versions.len() - 1;
                &mut self.versions[last]
            }
        };
        match v.providers.iter_mut().find(|p| p.name == provider.name) {
            Some(p) => *p = provider,
            None => v.providers.push(provider),
        }
        self.versions.sort_by_key(|a| version_key(&a.version));
    }
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

/// Read the catalog at `path`, or a new empty one for `name`.
pub fn read_catalog(path: &Path, name: &str) -> Result<Catalog> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let cat: Catalog = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a box catalog; move it away to start a new one",
                    path.display()
                )
            })?;
            if cat.name != name {
                bail!(
                    "{} is the catalog of box {:?}, not {name:?}",
                    path.display(),
                    cat.name
                );
            }
            Ok(cat)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Catalog {
            name: name.into(),
            description: "Docker registry appliance baked by regbake".into(),
            versions: vec![],
            extra: Default::default(),
        }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Add (or replace, same version + provider) the box in
/// `out_dir/box/NAME.json`, with a `file://` URL, `checksum_type` sha256 and
/// the checksum. Atomic. Returns the catalog path.
pub fn add_to_catalog(box_path: &Path, meta: &BoxMeta, out_dir: &Path) -> Result<PathBuf> {
    let sha = sha256_file(box_path)?;
    add_to_catalog_with_checksum(box_path, &sha, meta, out_dir)
}

/// [`add_to_catalog`] with a checksum already known (from [`Packed`]).
pub fn add_to_catalog_with_checksum(
    box_path: &Path,
    sha256: &str,
    meta: &BoxMeta,
    out_dir: &Path,
) -> Result<PathBuf> {
    meta.check()?;
    // Read, change, write: two unlocked runs would each drop the other's entry.
    let lock = BoxDirLock::acquire(out_dir)?;
    let box_dir = lock.dir().to_path_buf();
    let abs = std::path::absolute(box_path)
        .with_context(|| format!("resolving {}", box_path.display()))?;
    if !abs.is_file() {
        bail!("{} does not exist", abs.display());
    }
    let url = url::Url::from_file_path(&abs)
        .map_err(|()| anyhow::anyhow!("{} cannot be a file:// URL", abs.display()))?;
    let path = box_dir.join(meta.catalog_file_name());
    let mut cat = read_catalog(&path, &meta.name)?;
    cat.upsert(
        &meta.version,
        CatalogProvider {
            name: provider_name(meta.provider).into(),
            url: url.to_string(),
            checksum_type: "sha256".into(),
            checksum: sha256.into(),
            extra: Default::default(),
        },
    );
    let mut text = serde_json::to_string_pretty(&cat).context("encoding the catalog")?;
    text.push('\n');
    // A *.partial temp name, like the box's: a run killed here leaves
    // nothing the next lock holder does not remove.
    let tmp = Staged::beside(&path, true)?;
    tmp.file()
        .write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.commit(0o644, true)?;
    Ok(path)
}

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
pub fn run(opts: &Global, cmd: &BoxCommand) -> Result<()> {
    match cmd {
        BoxCommand::Pack(args) => run_pack(opts, args),
    }
}

fn usage(flag: &str, message: String) -> anyhow::Error {
    ConfigError::Usage {
        flag: flag.into(),
        message,
    }
    .into()
}

/// Run `regbake box pack`: bad arguments (missing or non-qcow2 disk, bad
/// name) exit 2 like config errors; I/O failures exit 1.
pub fn run_pack(opts: &Global, args: &PackArgs) -> Result<()> {
    let (config, _) = crate::config::load(opts.config.as_deref())?;
    let source = args.source()?;
    let provider = args.provider;
    let meta = BoxMeta {
        name: args.name.clone().unwrap_or(config.vagrant.box_name),
        version: args.version.clone().unwrap_or(config.vagrant.box_version),
        provider,
    };
    let problems = meta.problems("--name", "--version");
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems).into());
    }
    let (flag, input) = match &source {
        PackSource::Libvirt { disk } => ("--disk", disk),
        PackSource::Virtualbox { ovf } => ("--ovf", ovf),
    };
    if !input.is_file() {
        return Err(usage(flag, format!("{} is not a file", input.display())));
    }
    match &source {
        PackSource::Libvirt { disk } => {
            qcow2_info(disk).map_err(|e| usage(flag, format!("{e:#}")))?;
        }
        PackSource::Virtualbox { ovf } => {
            ovf_disks(ovf).map_err(|e| usage(flag, format!("{e:#}")))?;
        }
    }
    let dest = opts.out.join("box").join(meta.box_file_name());
    if opts.dry_run {
        println!("would pack {} into {}", input.display(), dest.display());
        println!(
            "would add it to {}",
            opts.out
                .join("box")
                .join(meta.catalog_file_name())
                .display()
        );
        return Ok(());
    }
    // Before the lock, so Ctrl-C also ends a wait for it.
    crate::util::interrupt::catch_interrupts();
    // One lock over the pack and its catalog entry.
    let _lock = BoxDirLock::acquire(&opts.out)?;
    let started = Instant::now();
    let packed = match &source {
        PackSource::Libvirt { disk } => pack_libvirt_box(disk, &meta, &opts.out)?,
        PackSource::Virtualbox { ovf } => pack_virtualbox_box(ovf, &meta, &opts.out)?,
    };
    let catalog = add_to_catalog_with_checksum(&packed.path, &packed.sha256, &meta, &opts.out)?;
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
    use super::*;
    use flate2::read::MultiGzDecoder;

    fn meta(provider: Provider, version: &str) -> BoxMeta {
        BoxMeta {
            name: "regbake/registry".into(),
            version: version.into(),
            provider,
        }
    }

    /// A qcow2 v3 header (enough for the reader) followed by some data.
    fn fake_qcow2(path: &Path, virtual_size: u64) {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[24..32].copy_from_slice(&virtual_size.to_be_bytes());
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
        let path = pack_libvirt(&disk, &m, &out).unwrap();
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

        let cat_path = add_to_catalog(&path, &m, &out).unwrap();
        assert_eq!(cat_path, out.join("box/regbake-registry.json"));
        let v2 = meta(Provider::Libvirt, "1.10.0");
        let path2 = pack_libvirt(&disk, &v2, &out).unwrap();
        add_to_catalog(&path2, &v2, &out).unwrap();
        // Re-adding 1.0.0 replaces its entry instead of duplicating it.
        add_to_catalog(&path, &m, &out).unwrap();
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
            .filter(|n| n.starts_with('.') && n != lock::LOCK_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn packed_checksum_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 1 << 30);
        let packed = pack_libvirt_box(&disk, &meta(Provider::Libvirt, "1"), dir.path()).unwrap();
        assert_eq!(packed.sha256, sha256_file(&packed.path).unwrap());
        assert_eq!(packed.size, std::fs::metadata(&packed.path).unwrap().len());
    }

    #[test]
    fn not_qcow2_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.raw");
        std::fs::write(&disk, vec![0u8; 4096]).unwrap();
        let err = pack_libvirt(&disk, &meta(Provider::Libvirt, "1"), dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("not a qcow2 image"), "{err:#}");
        assert!(!dir
            .path()
            .join("box/regbake-registry-1-libvirt.box")
            .exists());
    }

    #[test]
    fn ovf_hrefs_must_be_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let ovf = dir.path().join("x.ovf");
        let doc = |href: &str| {
            format!(
                r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:id="file1" ovf:href="{href}"/>
  </References>
</Envelope>
"#
            )
        };
        std::fs::write(&ovf, doc("disk-001.vmdk")).unwrap();
        assert_eq!(ovf_disks(&ovf).unwrap(), ["disk-001.vmdk"]);
        for bad in [
            "../etc/passwd",
            "sub/disk.vmdk",
            "..",
            "/abs.vmdk",
            "box.ovf",
        ] {
            std::fs::write(&ovf, doc(bad)).unwrap();
            let err = ovf_disks(&ovf).unwrap_err().to_string();
            assert!(err.contains(":4:"), "line number in {err}");
        }
    }

    #[test]
    fn bad_names_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.qcow2");
        fake_qcow2(&disk, 1 << 30);
        let mut m = meta(Provider::Libvirt, "1.0.0");
        m.name = "../evil".into();
        assert!(pack_libvirt(&disk, &m, dir.path()).is_err());
        assert!(!dir.path().join("box").exists());
    }
}
