//! The box catalog (`out/box/NAME.json`) that `vagrant box add` reads:
//! versions, providers, sha256 checksums.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::lock::BoxDirLock;
use super::pack::sha256_file;
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog {
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
    let tmp = Staged::beside(&path, true)?;
    tmp.file()
        .write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.commit(0o644, true)?;
    Ok(path)
}
