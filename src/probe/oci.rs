//! The probe image: a config, a manifest and one deterministic,
//! incompressible layer that is generated as it is sent, never held.

use std::io::{Chain, Cursor, Read, Repeat, Take, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::util::io::HashReader;

pub(super) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed layer: its content is pseudo-random, so compressing would
/// only cost time; the OCI spec allows plain tar layers.
pub(super) const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

pub(super) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ---------------------------------------------------------------------------
// The probe image

/// A small in-memory blob (config, manifest).
pub(super) struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub(super) fn new(media_type: &'static str, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: sha256_digest(&data),
            data,
        }
    }

    pub(super) fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// What the layer pass found out: the layer is streamed, never held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layer {
    /// sha256 of the tar blob (also the config's `rootfs.diff_ids`, as the
    /// layer is not compressed).
    pub digest: String,
    pub diff_id: String,
    /// Size of the tar blob.
    pub size: u64,
}

pub(super) fn descriptor(media_type: &str, digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// The size of the layer tar for `content_size` bytes: one header block, the
/// content padded to 512-byte blocks, and the two zero blocks that end a tar.
pub(super) fn layer_tar_size(content_size: u64) -> u64 {
    512 + content_size.div_ceil(512) * 512 + 1024
}

pub(super) type LayerBytes = Chain<Chain<Cursor<[u8; 512]>, Pattern>, Take<Repeat>>;

/// The probe layer's bytes: a tar header, the content, the padding and the
/// two end blocks.
pub(super) fn layer_bytes(content_size: u64) -> Result<LayerBytes> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path("regbake-probe/data")
        .context("the layer's tar header")?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content_size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    let content = Pattern {
        pos: 0,
        size: content_size,
    };
    let padding = layer_tar_size(content_size) - 512 - content_size;
    Ok(Cursor::new(*header.as_bytes())
        .chain(content)
        .chain(std::io::repeat(0).take(padding)))
}

/// The probe layer as a byte stream: one file of `content_size`
/// deterministic bytes in a tar (header, content, padding, end blocks),
/// generated as it is read and hashed on the way. The layer is never held,
/// and the upload needs no second thread: on a small machine the registry
/// keeps a core to itself. Same size in, same bytes out.
pub(super) struct LayerStream {
    bytes: HashReader<LayerBytes>,
    size: u64,
}

impl LayerStream {
    pub(super) fn new(content_size: u64) -> Result<Self> {
        Ok(Self {
            bytes: HashReader::new(layer_bytes(content_size)?),
            size: layer_tar_size(content_size),
        })
    }

    /// The layer's digest and size, once it has been read to the end.
    pub(super) fn finish(self) -> Result<Layer> {
        let (hash, len) = self.bytes.finish();
        if len != self.size {
            bail!(
                "the layer stream stopped after {len} of {} bytes",
                self.size
            );
        }
        let digest = format!("sha256:{hash}");
        Ok(Layer {
            diff_id: digest.clone(),
            digest,
            size: len,
        })
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.bytes.read(buf)
    }
}

/// Write the probe layer to `sink` in one pass.
pub(super) fn write_layer<W: Write>(content_size: u64, mut sink: W) -> Result<(Layer, W)> {
    let mut layer = LayerStream::new(content_size)?;
    std::io::copy(&mut layer, &mut sink).context("writing the layer")?;
    Ok((layer.finish()?, sink))
}

/// The probe image: the streamed layer's facts, its OCI config and manifest.
pub(super) struct Image {
    pub layer: Layer,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    pub(super) fn new(layer: Layer) -> Result<Image> {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.diff_id] },
            "history": [{ "created_by": "regbake probe" }],
        });
        let config = Blob::new(
            CONFIG_TYPE,
            serde_json::to_vec(&config).context("image config")?,
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(CONFIG_TYPE, &config.digest, config.size()),
            "layers": [descriptor(LAYER_TYPE, &layer.digest, layer.size)],
        });
        let manifest = Blob::new(
            MANIFEST_TYPE,
            serde_json::to_vec(&manifest).context("image manifest")?,
        );
        Ok(Image {
            layer,
            config,
            manifest,
        })
    }

    /// Write the image as an OCI image layout (for `skopeo copy oci:DIR:TAG`),
    /// generating the layer again straight into its file.
    pub(super) fn save_oci(&self, dir: &Path, tag: &str, content_size: u64) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        let blob_path = |digest: &str| blobs.join(digest.trim_start_matches("sha256:"));
        let path = blob_path(&self.layer.digest);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let (layer, file) = write_layer(content_size, std::io::BufWriter::new(file))?;
        file.into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .with_context(|| format!("writing {}", path.display()))?;
        if layer != self.layer {
            bail!(
                "the layer is not deterministic: {layer:?} != {:?}",
                self.layer
            );
        }
        for blob in [&self.config, &self.manifest] {
            let path = blob_path(&blob.digest);
            std::fs::write(&path, &blob.data)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let mut manifest = descriptor(MANIFEST_TYPE, &self.manifest.digest, self.manifest.size());
        manifest["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest] });
        let files = [
            (
                "oci-layout",
                r#"{"imageLayoutVersion":"1.0.0"}"#.to_string(),
            ),
            ("index.json", index.to_string()),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Deterministic incompressible bytes, the same however the reader is
/// called. Word `i` is `table[i % TABLE_WORDS] ^ key(i / TABLE_WORDS)`:
/// a 1 MiB table of splitmix64 values, each copy of it masked with its own
/// splitmix64 key, so no 8-byte word repeats within the layer. Generating
/// it is an xor per word, which keeps it off the probe's critical path.
pub(super) struct Pattern {
    pos: u64,
    size: u64,
}

pub(super) const TABLE_WORDS: usize = 1 << 17;

pub(super) fn table() -> &'static [u64] {
    static TABLE: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..TABLE_WORDS as u64).map(splitmix64).collect())
}

/// The mask of table copy `block`; drawn from indexes the table never uses.
pub(super) fn block_key(block: u64) -> u64 {
    splitmix64((1 << 40) + block)
}

pub(super) fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pattern {
    pub(super) fn word(index: u64) -> [u8; 8] {
        let slot = (index % TABLE_WORDS as u64) as usize;
        (table()[slot] ^ block_key(index / TABLE_WORDS as u64)).to_le_bytes()
    }

    /// Whole words from word `index` on, one table copy (one key) at a time.
    pub(super) fn fill_words(mut index: u64, mut out: &mut [u8]) {
        let table = table();
        while !out.is_empty() {
            let slot = (index % TABLE_WORDS as u64) as usize;
            let key = block_key(index / TABLE_WORDS as u64);
            let words = (out.len() / 8).min(TABLE_WORDS - slot);
            let (run, rest) = out.split_at_mut(words * 8);
            for (w, t) in run.chunks_exact_mut(8).zip(&table[slot..slot + words]) {
                w.copy_from_slice(&(t ^ key).to_le_bytes());
            }
            index += words as u64;
            out = rest;
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let mut out = &mut buf[..n];
        let mut pos = self.pos;
        // A partial word first, then whole words, then a partial word.
        while !out.is_empty() {
            let off = (pos % 8) as usize;
            if off == 0 && out.len() >= 8 {
                let (whole, rest) = out.split_at_mut(out.len() / 8 * 8);
                Self::fill_words(pos / 8, whole);
                pos += whole.len() as u64;
                out = rest;
                continue;
            }
            let take = (8 - off).min(out.len());
            let (part, rest) = out.split_at_mut(take);
            part.copy_from_slice(&Self::word(pos / 8)[off..off + take]);
            pos += take as u64;
            out = rest;
        }
        self.pos = pos;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// The HTTP side
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn layer(size: u64) -> (Layer, Vec<u8>) {
        write_layer(size, Vec::new()).unwrap()
    }

    #[test]
    pub(super) fn layer_is_deterministic_and_sized() {
        let (a, bytes_a) = layer(10_000);
        let (b, bytes_b) = layer(10_000);
        assert_eq!(a, b);
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(a.size, bytes_a.len() as u64);
        for n in [0, 1, 511, 512, 513, 10_000] {
            assert_eq!(layer(n).0.size, layer_tar_size(n), "content size {n}");
        }
        assert_eq!(a.digest, sha256_digest(&bytes_a));
        assert!(a.size > 10_000 && a.size < 13_000, "{}", a.size);
        assert_ne!(layer(10_001).0.digest, a.digest);
        let image = Image::new(a.clone()).unwrap();
        assert_eq!(Image::new(b).unwrap().manifest.data, image.manifest.data);
    }

    #[test]
    pub(super) fn layer_is_a_tar_with_the_config_diff_id() {
        let (layer, bytes) = layer(3000);
        let tar_bytes = bytes.clone();
        let image = Image::new(layer.clone()).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0].as_str().unwrap(),
            sha256_digest(&tar_bytes)
        );
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("regbake-probe/data"));
        let mut content = vec![];
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len(), 3000);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], layer.digest.as_str());
        assert_eq!(manifest["layers"][0]["size"], layer.size);
        assert_eq!(manifest["config"]["size"], image.config.data.len());
    }

    #[test]
    pub(super) fn layer_stream_reports_a_short_read() {
        let mut stream = LayerStream::new(10_000).unwrap();
        let mut buf = [0u8; 4096];
        stream.read_exact(&mut buf).unwrap();
        let err = stream.finish().unwrap_err().to_string();
        assert!(err.contains("after 4096 of 11776 bytes"), "{err}");
    }

    #[test]
    pub(super) fn pattern_crosses_table_copies() {
        let edge = TABLE_WORDS as u64 * 8;
        let mut whole = vec![];
        Pattern {
            pos: edge - 13,
            size: edge + 29,
        }
        .read_to_end(&mut whole)
        .unwrap();
        let mut pieces = vec![];
        let mut p = Pattern {
            pos: edge - 13,
            size: edge + 29,
        };
        let mut buf = [0u8; 5];
        loop {
            let n = p.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.len(), 42);
        // Word TABLE_WORDS starts the second copy, under the second key.
        assert_eq!(whole[13..21], (splitmix64(0) ^ block_key(1)).to_le_bytes());
        assert_ne!(whole[13..21], (splitmix64(0) ^ block_key(0)).to_le_bytes());
    }

    #[test]
    pub(super) fn pattern_does_not_depend_on_read_sizes() {
        let mut one = vec![];
        Pattern { pos: 0, size: 1000 }
            .read_to_end(&mut one)
            .unwrap();
        assert_eq!(one[..8], (splitmix64(0) ^ block_key(0)).to_le_bytes());
        assert_eq!(one[992..], (splitmix64(124) ^ block_key(0)).to_le_bytes());
        for piece in [1, 3, 8, 13, 64, 999] {
            let mut p = Pattern { pos: 0, size: 1000 };
            let mut two = vec![];
            let mut buf = vec![0u8; piece];
            loop {
                let n = p.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                two.extend_from_slice(&buf[..n]);
            }
            assert_eq!(one, two, "reads of {piece} bytes");
        }
    }
}
