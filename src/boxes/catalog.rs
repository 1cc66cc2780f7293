//! The box catalog (`out/box/NAME.json`) that `vagrant box add` reads:
//! versions, providers, sha256 checksums.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lock::BoxDirLock;
use crate::config::boxes::{provider_name, BoxMeta};
use crate::util::fsx::Staged;

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
        let v = if let Some(i) = self.versions.iter_mut().position(|v| v.version == version) {
            &mut self.versions[i]
        } else {
            self.versions.push(CatalogVersion {
                version: version.into(),
                providers: vec![],
                extra: Default::default(),
            });
            let last = self.versions.len() - 1;
            &mut self.versions[last]
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

/// A catalog that belongs to another box whose name maps to the same files
/// (`org/reg` and `org-reg` both use `org-reg.json`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is the catalog of box {owner:?}, whose files box {name:?} would replace \
     ({stem}-VERSION-PROVIDER.box, {stem}.json): name it {owner:?}, or move \
     {} and its boxes away to start box {name:?}",
    .path.display(), .path.display()
)]
pub struct OtherBox {
    pub path: PathBuf,
    pub owner: String,
    pub name: String,
    pub stem: String,
}

/// Read the catalog at `path`, or a new empty one for `name`. A catalog
/// that cannot be read, is not a catalog, or is another box's is an error
/// ([`OtherBox`] for the last): the catalog's `name` decides whose files
/// these are.
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
                return Err(OtherBox {
                    path: path.to_path_buf(),
                    owner: cat.name,
                    name: name.into(),
                    stem: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }
                .into());
            }
            Ok(cat)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog {
            name: name.into(),
            description: "Docker registry appliance baked by regbake".into(),
            versions: vec![],
            extra: Default::default(),
        }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Check, before a box is written, that `box_dir/NAME.json` can take it:
/// readable, a catalog, and this box's ([`read_catalog`]). A box written
/// first would replace one the catalog vouches for, which then fails its
/// checksum.
pub fn check_catalog(box_dir: &Path, meta: &BoxMeta) -> Result<()> {
    let path = box_dir.join(meta.catalog_file_name());
    read_catalog(&path, &meta.name).map(drop)
}

/// Add (or replace, same version + provider) the box in
/// `out_dir/box/NAME.json`, with a `file://` URL, `checksum_type` sha256 and
/// the checksum. Atomic. Returns the catalog path.
pub fn add_to_catalog(box_path: &Path, meta: &BoxMeta, lock: &BoxDirLock) -> Result<PathBuf> {
    let sha = sha256_file(box_path)?;
    add_to_catalog_with_checksum(box_path, &sha, meta, lock)
}

/// [`add_to_catalog`] with a checksum already known (from [`Packed`]).
pub fn add_to_catalog_with_checksum(
    box_path: &Path,
    sha256: &str,
    meta: &BoxMeta,
    lock: &BoxDirLock,
) -> Result<PathBuf> {
    meta.check()?;
    // Read, change, write under the lock: two unlocked runs would each drop
    // the other's entry.
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
    let tmp = Staged::beside(&path)?;
    tmp.file()
        .write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.commit(0o644, true)?;
    Ok(path)
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}
