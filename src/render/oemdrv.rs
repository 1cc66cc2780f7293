//! OEMDRV media: a small FAT image labelled `OEMDRV` with `ks.cfg` at its
//! root. Anaconda loads `/ks.cfg` from such a volume when no `inst.ks=` is
//! given, so writing the image to a USB stick (or attaching it as a virtual
//! disk) is enough.

use std::io::{Cursor, Write};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

const LABEL: [u8; 11] = *b"OEMDRV     ";

/// The image bytes. Reproducible: no timestamps (FAT's 1980 epoch) and a
/// volume serial derived from the content.
pub fn image(ks: &[u8]) -> Result<Vec<u8>> {
    // Room for the file plus FAT metadata, in 64 KiB steps; 256 KiB minimum
    // keeps the FAT12 layout ordinary.
    let step = 64 * 1024;
    let size = (ks.len() + 128 * 1024).div_ceil(step) * step;
    let size = size.max(256 * 1024);
    let mut disk = Cursor::new(vec![0u8; size]);
    let digest = Sha256::digest(ks);
    let serial = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new()
            .volume_label(LABEL)
            .volume_id(serial),
    )
    .context("formatting the OEMDRV image")?;
    disk.set_position(0);
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())
            .context("opening the OEMDRV image")?;
        let mut f = fs
            .root_dir()
            .create_file("ks.cfg")
            .context("creating ks.cfg on the OEMDRV image")?;
        f.truncate().context("truncating ks.cfg")?;
        f.write_all(ks)
            .context("writing ks.cfg to the OEMDRV image")?;
        f.flush().context("flushing ks.cfg")?;
        drop(f);
        fs.unmount().context("closing the OEMDRV image")?;
    }
    Ok(disk.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn holds_ks_cfg_and_the_label() {
        let ks = b"#version=RHEL7\ntext\n".repeat(2000);
        let img = image(&ks).unwrap();
        assert_eq!(img.len() % 65536, 0);
        let fs = fatfs::FileSystem::new(Cursor::new(img.clone()), fatfs::FsOptions::new()).unwrap();
        assert_eq!(
            fs.read_volume_label_from_root_dir().unwrap().as_deref(),
            Some("OEMDRV")
        );
        let mut back = vec![];
        fs.root_dir()
            .open_file("ks.cfg")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, ks);
        assert_eq!(image(&ks).unwrap(), img, "reproducible");
    }
}
