//! What a box is packed from: a qcow2 disk (libvirt) or an OVF and the
//! disks it references (VirtualBox), checked before anything is written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Format and virtual size of a qcow2 image, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qcow2Info {
    pub version: u32,
    pub virtual_size: u64,
}

/// The largest virtual size packed: 1 PiB, far beyond any real box, and far
/// below where sizes overflow (vagrant-libvirt takes whole GB).
pub(super) const MAX_VIRTUAL_SIZE: u64 = 1 << 50;

/// qemu's limits (block/qcow2.h): cluster sizes 512 B to 2 MiB, a backing
/// file name of at most 1023 bytes, an L1 table of at most 32 MiB.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;
const MAX_BACKING_NAME: u32 = 1023;
const MAX_L1_BYTES: u64 = 32 << 20;
/// Incompatible feature bits (v3). Known to qemu: dirty (bit 0, repaired by
/// qemu on open), corrupt, external data file, compression type, extended
/// L2 entries.
const CORRUPT: u64 = 1 << 1;
const EXTERNAL_DATA: u64 = 1 << 2;
const EXTENDED_L2: u64 = 1 << 4;
const KNOWN_INCOMPATIBLE: u64 = (1 << 5) - 1;

/// Big-endian fields of a qcow2 header, by offset.
struct Header(Vec<u8>);

impl Header {
    fn u32(&self, at: usize) -> u32 {
        let b = &self.0[at..at + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn u64(&self, at: usize) -> u64 {
        (u64::from(self.u32(at)) << 32) | u64::from(self.u32(at + 4))
    }
}

/// Up to `len` bytes from `offset` (fewer at the end of the file).
fn read_at(f: &mut File, offset: u64, len: u64, disk: &Path) -> Result<Vec<u8>> {
    let mut buf = vec![];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.take(len).read_to_end(&mut buf))
        .with_context(|| format!("reading {}", disk.display()))?;
    Ok(buf)
}

/// A path as one shell word.
fn shell_word(p: &Path) -> String {
    let text = p.to_string_lossy().into_owned();
    shlex::try_quote(&text).map_or(text.clone(), std::borrow::Cow::into_owned)
}

/// `qemu-img convert -O qcow2 DISK DISK-flat.qcow2`, quoted for a shell.
fn flatten_command(disk: &Path) -> String {
    let stem = disk
        .file_stem()
        .map_or_else(|| "disk".into(), |s| s.to_string_lossy().into_owned());
    let flat = disk.with_file_name(format!("{stem}-flat.qcow2"));
    format!(
        "qemu-img convert -O qcow2 {} {}",
        shell_word(disk),
        shell_word(&flat)
    )
}

/// Read and check the whole qcow2 header (version 2 or 3) as qemu would,
/// and what a box needs beyond that. Refused: a header cut short, values
/// qemu would not open, a virtual size of 0 or over [`MAX_VIRTUAL_SIZE`], an
/// L1 or refcount table too small or past the end of the file, encryption,
/// and data kept elsewhere (a backing file or an external data file, which
/// the box would reference by a path of this machine), each saying what to
/// do.
pub fn qcow2_info(disk: &Path) -> Result<Qcow2Info> {
    let d = disk.display();
    let mut f = File::open(disk).with_context(|| format!("opening {d}"))?;
    let file_len = f.metadata().with_context(|| format!("reading {d}"))?.len();
    let h = Header(read_at(&mut f, 0, 104, disk)?);
    let layout = header_layout(&h, disk, file_len)?;
    let size = virtual_size(&h, disk, file_len, &layout)?;
    self_contained(&mut f, &h, disk, &layout)?;
    Ok(Qcow2Info {
        version: layout.version,
        virtual_size: size,
    })
}

/// What the rest of a qcow2 header is read by.
struct Layout {
    version: u32,
    /// The cluster size in bytes.
    cluster: u64,
    /// The incompatible feature bits (0 in version 2).
    incompatible: u64,
}

/// The magic, version and the header's own lengths, as qemu checks them.
fn header_layout(h: &Header, disk: &Path, file_len: u64) -> Result<Layout> {
    let d = disk.display();
    if h.0.len() < 8 || h.0[..4] != *b"QFI\xfb" {
        bail!("{d} is not a qcow2 image (no qcow2 header); convert it with `qemu-img convert -O qcow2`");
    }
    let version = h.u32(4);
    let fixed = match version {
        2 => 72,
        3 => 104,
        _ => bail!("{d}: unsupported qcow2 version {version} (expected 2 or 3)"),
    };
    if h.0.len() < fixed {
        bail!(
            "{d}: truncated qcow2 header ({} of {fixed} bytes): the file was cut short; copy or convert it again",
            h.0.len()
        );
    }
    let cluster_bits = h.u32(20);
    if !CLUSTER_BITS.contains(&cluster_bits) {
        bail!("{d}: qcow2 cluster_bits {cluster_bits} is out of range (qemu accepts 9 to 21): the header is damaged");
    }
    let cluster = 1u64 << cluster_bits;
    let (incompatible, header_len) = if version == 3 {
        (h.u64(72), u64::from(h.u32(100)))
    } else {
        (0, 72)
    };
    if header_len < fixed as u64 || header_len > cluster {
        bail!("{d}: qcow2 header length {header_len} is invalid (at least {fixed}, at most the cluster size {cluster}): the header is damaged");
    }
    if header_len > file_len {
        bail!("{d}: truncated qcow2 header ({file_len} of {header_len} bytes): the file was cut short; copy or convert it again");
    }
    if version == 3 && h.u32(96) > 6 {
        bail!(
            "{d}: qcow2 refcount_order {} is out of range (0 to 6): the header is damaged",
            h.u32(96)
        );
    }
    Ok(Layout {
        version,
        cluster,
        incompatible,
    })
}

/// The virtual size, with the L1 and refcount tables that must cover it
/// inside the file.
fn virtual_size(h: &Header, disk: &Path, file_len: u64, layout: &Layout) -> Result<u64> {
    let d = disk.display();
    let Layout {
        cluster,
        incompatible,
        ..
    } = *layout;
    let size = h.u64(24);
    if size == 0 {
        bail!("{d}: qcow2 virtual size of 0 bytes: an empty disk holds no system to box");
    }
    if size > MAX_VIRTUAL_SIZE {
        bail!(
            "{d}: qcow2 virtual size of {size} bytes is absurd: a box's disk may claim at most \
             1 PiB (the header is damaged, or the disk is not one to ship as a box)"
        );
    }
    // The L1 table must cover the virtual size, within qemu's limit, inside
    // the file; so must the refcount table.
    let l2_entry = if incompatible & EXTENDED_L2 == 0 {
        8
    } else {
        16
    };
    let per_l1_entry = u128::from(cluster) * u128::from(cluster / l2_entry);
    let l1_size = u64::from(h.u32(36));
    if u128::from(l1_size) * per_l1_entry < u128::from(size) || l1_size * 8 > MAX_L1_BYTES {
        bail!("{d}: a qcow2 L1 table of {l1_size} entries does not fit the virtual size of {size} bytes: the header is damaged");
    }
    let tables = [
        ("L1", h.u64(40), u128::from(l1_size) * 8),
        (
            "refcount",
            h.u64(48),
            u128::from(h.u32(56)) * u128::from(cluster),
        ),
    ];
    for (name, offset, len) in tables {
        if offset % cluster != 0 || u128::from(offset) + len > u128::from(file_len) {
            bail!("{d}: the qcow2 {name} table at offset {offset} lies outside the {file_len}-byte file: it was cut short or is damaged; copy or convert it again");
        }
    }
    Ok(size)
}

/// Refused: data kept elsewhere (backing file, external data file), a
/// corrupt mark, features qemu does not know, encryption.
fn self_contained(f: &mut File, h: &Header, disk: &Path, layout: &Layout) -> Result<()> {
    let d = disk.display();
    let Layout {
        cluster,
        incompatible,
        ..
    } = *layout;
    let flatten = flatten_command(disk);
    let backing_offset = h.u64(8);
    if backing_offset != 0 {
        let name_len = h.u32(16);
        if name_len > MAX_BACKING_NAME || backing_offset + u64::from(name_len) > cluster {
            bail!("{d}: the qcow2 backing file name at offset {backing_offset} ({name_len} bytes) is invalid: the header is damaged");
        }
        let name = read_at(f, backing_offset, u64::from(name_len), disk)?;
        bail!(
            "{d} is a qcow2 overlay on the backing file {:?}: a box must hold the whole disk \
             (the box would point the importing machine at that path). Flatten it into a \
             standalone disk first: {flatten}",
            String::from_utf8_lossy(&name)
        );
    }
    if incompatible & EXTERNAL_DATA != 0 {
        bail!("{d} keeps its data in an external data file, which a box cannot hold: flatten it first: {flatten}");
    }
    if incompatible & CORRUPT != 0 {
        bail!(
            "{d} is marked corrupt by qemu: repair it with `qemu-img check -r all {}`, \
             or copy what is readable with {flatten}",
            shell_word(disk)
        );
    }
    if incompatible & !KNOWN_INCOMPATIBLE != 0 {
        bail!(
            "{d} uses qcow2 features qemu does not know ({:#x}): write a plain image with {flatten}",
            incompatible & !KNOWN_INCOMPATIBLE
        );
    }
    match h.u32(32) {
        0 => {}
        method => bail!(
            "{d} is encrypted (qcow2 crypt_method {method}): a box cannot carry its key; \
             write a decrypted copy with qemu-img convert first"
        ),
    }
    Ok(())
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A qcow2 v3 header as `qemu-img create` writes it (64 KiB clusters;
    /// refcount table, refcount block and L1 table in clusters 1 to 3),
    /// followed by those clusters.
    pub(crate) fn qcow2_bytes(virtual_size: u64) -> Vec<u8> {
        let cluster = 1u64 << 16;
        let mut h = vec![0u8; 4 * cluster as usize];
        let mut put = |at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
        put(0, b"QFI\xfb");
        put(4, &3u32.to_be_bytes());
        put(20, &16u32.to_be_bytes());
        put(24, &virtual_size.to_be_bytes());
        // One L1 entry covers 64 KiB * 8192 = 512 MiB.
        let l1 = virtual_size.div_ceil(512 << 20).max(1) as u32;
        put(36, &l1.to_be_bytes());
        put(40, &(3 * cluster).to_be_bytes());
        put(48, &cluster.to_be_bytes());
        put(56, &1u32.to_be_bytes());
        put(96, &4u32.to_be_bytes());
        put(100, &104u32.to_be_bytes());
        h
    }

    fn check(bytes: &[u8]) -> Result<Qcow2Info> {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d.qcow2");
        std::fs::write(&disk, bytes).unwrap();
        qcow2_info(&disk)
    }

    fn refused(bytes: &[u8], says: &str) {
        let err = format!("{:#}", check(bytes).unwrap_err());
        assert!(err.contains(says), "expected {says:?} in: {err}");
    }

    fn set(mut bytes: Vec<u8>, at: usize, v: &[u8]) -> Vec<u8> {
        bytes[at..at + v.len()].copy_from_slice(v);
        bytes
    }

    #[test]
    fn qcow2_headers_are_read_whole() {
        let good = qcow2_bytes(3 << 30);
        assert_eq!(
            check(&good).unwrap(),
            Qcow2Info {
                version: 3,
                virtual_size: 3 << 30
            }
        );
        // Version 2: a 72-byte header.
        let v2 = set(good.clone(), 4, &2u32.to_be_bytes());
        assert_eq!(check(&v2).unwrap().version, 2);

        refused(&good[..50], "truncated qcow2 header (50 of 104 bytes)");
        refused(&v2[..71], "truncated qcow2 header (71 of 72 bytes)");
        refused(&good[..3 << 16], "L1 table at offset 196608 lies outside");
        refused(
            &set(good.clone(), 56, &100u32.to_be_bytes()),
            "refcount table at offset 65536 lies outside",
        );
        refused(
            &set(good.clone(), 100, &200_000u32.to_be_bytes()),
            "header length 200000",
        );
        refused(
            &set(good.clone(), 100, &72u32.to_be_bytes()),
            "header length 72",
        );
        refused(
            &set(good.clone(), 20, &8u32.to_be_bytes()),
            "cluster_bits 8",
        );
        refused(
            &set(good.clone(), 20, &40u32.to_be_bytes()),
            "cluster_bits 40",
        );
        refused(
            &set(good.clone(), 24, &u64::MAX.to_be_bytes()),
            "virtual size of 18446744073709551615 bytes is absurd",
        );
        refused(
            &set(good.clone(), 24, &(1u64 << 51).to_be_bytes()),
            "absurd",
        );
        refused(&set(good.clone(), 24, &0u64.to_be_bytes()), "of 0 bytes");
        // 3 GiB claimed with the L1 table of a 1 GiB disk.
        refused(
            &set(good.clone(), 36, &2u32.to_be_bytes()),
            "L1 table of 2 entries",
        );
        refused(
            &set(good.clone(), 32, &2u32.to_be_bytes()),
            "encrypted (qcow2 crypt_method 2)",
        );
        refused(&set(good.clone(), 79, &[CORRUPT as u8]), "marked corrupt");
        refused(
            &set(good.clone(), 79, &[EXTERNAL_DATA as u8]),
            "external data file",
        );
        refused(
            &set(good.clone(), 72, &[0x80]),
            "features qemu does not know",
        );
        refused(
            &set(good.clone(), 96, &7u32.to_be_bytes()),
            "refcount_order 7",
        );
        assert!(
            check(&set(good.clone(), 79, &[1])).is_ok(),
            "dirty: qemu repairs it"
        );
    }

    #[test]
    fn a_backing_file_is_refused_with_the_command_that_flattens() {
        let with_backing = {
            let b = set(qcow2_bytes(1 << 30), 8, &200u64.to_be_bytes());
            let b = set(b, 16, &17u32.to_be_bytes());
            set(b, 200, b"/tmp/att/base.raw")
        };
        let err = format!("{:#}", check(&with_backing).unwrap_err());
        assert!(err.contains("backing file \"/tmp/att/base.raw\""), "{err}");
        assert!(err.contains("qemu-img convert -O qcow2 "), "{err}");
        assert!(
            err.ends_with("/d.qcow2 ") || err.contains("d-flat.qcow2"),
            "{err}"
        );
        refused(
            &set(with_backing.clone(), 16, &2000u32.to_be_bytes()),
            "backing file name at offset 200 (2000 bytes) is invalid",
        );
        assert_eq!(
            flatten_command(Path::new("my disk.qcow2")),
            "qemu-img convert -O qcow2 'my disk.qcow2' 'my disk-flat.qcow2'"
        );
        assert_eq!(
            flatten_command(Path::new("/var/lib/x/over.img")),
            "qemu-img convert -O qcow2 /var/lib/x/over.img /var/lib/x/over-flat.qcow2"
        );
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
}
