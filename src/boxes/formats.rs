//! What a box is packed from: a qcow2 disk (libvirt) or an OVF and the
//! disks it references (VirtualBox), checked before anything is written.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
