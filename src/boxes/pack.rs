//! Packing: the box's files streamed through tar and a parallel gzip into a
//! hidden temp file of `out/box`, hashed on the way, renamed into place
//! only when complete.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::catalog::check_catalog;
use super::formats::{ovf_disks, qcow2_info};
use super::gz::{self, ParGzWriter};
use super::lock::BoxDirLock;
use crate::config::boxes::{provider_name, BoxMeta};
use crate::config::Provider;
use crate::util::fsx::Staged;
use crate::util::io::{Exact, HashWriter};

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
/// `out/box/NAME-VERSION-PROVIDER.box`, atomically, under the box
/// directory's lock.
pub fn pack_libvirt(disk: &Path, meta: &BoxMeta, lock: &BoxDirLock) -> Result<Packed> {
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
    write_box(entries, meta, lock)
}

/// Pack a VirtualBox box from an OVF and the disks it references.
pub fn pack_virtualbox(ovf: &Path, meta: &BoxMeta, lock: &BoxDirLock) -> Result<Packed> {
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
    write_box(entries, meta, lock)
}

fn json_entry(v: &serde_json::Value) -> Result<Entry> {
    let mut bytes = serde_json::to_vec(v).context("encoding metadata.json")?;
    bytes.push(b'\n');
    Ok(Entry {
        name: "metadata.json".into(),
        content: Content::Bytes(bytes),
    })
}

/// The mode of a box: whom its disks let read them may read it (a baked
/// appliance's disk holds its secrets), and its owner may replace it.
/// 0644 for disks anyone reads, 0600 for owner-only ones.
fn box_mode(entries: &[Entry]) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mut read = 0o444;
    for e in entries {
        if let Content::File(path, _) = &e.content {
            let md =
                std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
            read &= md.permissions().mode();
        }
    }
    Ok(read | 0o200)
}

fn write_box(entries: Vec<Entry>, meta: &BoxMeta, lock: &BoxDirLock) -> Result<Packed> {
    meta.check()?;
    let box_dir = lock.dir().to_path_buf();
    // Before the box: one the catalog vouches for must not be replaced by a
    // box the catalog then refuses.
    check_catalog(&box_dir, meta)?;
    let dest = box_dir.join(meta.box_file_name());
    let mode = box_mode(&entries)?;
    // Hidden, and not named *.box, so a killed pack leaves nothing that looks
    // like a box (and 0600 until it is one).
    let tmp = Staged::beside(&dest)?;

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

    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let started = Instant::now();
    let hashed = HashWriter::new(tmp.file());
    let mut tar = tar::Builder::new(ParGzWriter::new(hashed, threads, LEVEL, gz::CHUNK));
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for e in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode);
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
    tmp.commit(mode, true)
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
