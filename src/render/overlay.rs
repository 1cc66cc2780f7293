//! The overlay: every file the appliance needs, at its target path. It is the
//! single source of truth that all three deliveries install.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use handlebars::Handlebars;
use sha2::{Digest, Sha256};

use crate::model::{Appliance, CA_ANCHOR, CERTS_DIR};
use crate::tree::{Entry, Kind, Tree};

/// Where the overlay template `path` (below `overlay/`) renders: `USER` is
/// the admin user's name, and the registry's config goes where its major
/// version reads it (`/etc/docker/registry` or `/etc/distribution`).
pub fn target(path: &str, app: &Appliance) -> String {
    let path = match path.strip_prefix("etc/docker/registry/") {
        Some(rest) => format!("{}/{rest}", app.registry.config_dir.trim_start_matches('/')),
        None => path.to_string(),
    };
    path.split('/')
        .map(|part| {
            if part == "USER" {
                app.user.name.as_str()
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The mode of an overlay file: scripts are executable, sudoers read-only,
/// and what holds secrets or guards access (sshd_config, authorized_keys,
/// the registry's config) is root's alone.
fn mode(path: &str) -> u32 {
    match Kind::of(&format!("overlay/{path}")) {
        Kind::Script => 0o755,
        Kind::Sudoers => 0o440,
        Kind::SshdConfig | Kind::RegistryConfig => 0o600,
        _ if path.ends_with("/.ssh/authorized_keys") => 0o600,
        _ => 0o644,
    }
}

pub fn render(hb: &Handlebars<'_>, app: &Appliance, ctx: &handlebars::Context) -> Result<Tree> {
    let mut t = Tree::default();
    for (path, text) in super::templates::render_dir(hb, "overlay", ctx)? {
        let target = target(&path, app);
        let mode = mode(&target);
        t.add(target, text, mode);
    }
    t.add(
        "etc/hostname",
        format!("{}\n", app.appliance.hostname),
        0o644,
    );
    if let Some(tls) = &app.registry_files.tls {
        let certs = CERTS_DIR.trim_start_matches('/');
        t.add(format!("{certs}/registry.crt"), tls.cert.clone(), 0o644);
        t.add(format!("{certs}/registry.key"), tls.key.clone(), 0o600);
        if let Some(ca) = &tls.ca {
            t.add(format!("{certs}/ca.crt"), ca.clone(), 0o644);
            t.add(CA_ANCHOR.trim_start_matches('/'), ca.clone(), 0o644);
            t.add(
                format!("etc/docker/certs.d/{}/ca.crt", app.registry.address),
                ca.clone(),
                0o644,
            );
        }
    }
    if let Some(h) = &app.registry_files.htpasswd {
        t.add(
            app.registry.htpasswd_path.trim_start_matches('/'),
            h.clone(),
            0o600,
        );
    }
    Ok(t)
}

/// A reproducible `overlay.tar.gz`: files only (extracting over `/` must not
/// touch the modes or times of existing directories), sorted, owned by root,
/// mtime 0, no gzip timestamp. Each file is its own gzip member (gzip and
/// `tar -z` read concatenated members as one stream), so a file every
/// appliance of a fleet shares is compressed once, not once per host.
pub fn pack(t: &Tree) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (path, e) in &t.files {
        out.extend_from_slice(&member(path, e)?);
    }
    // The end of the archive: two zero blocks.
    out.extend_from_slice(&gzip(&[0u8; 1024])?);
    Ok(out)
}

/// One file's tar entry, gzipped; made once per content.
fn member(path: &str, e: &Entry) -> Result<Arc<Vec<u8>>> {
    type Members = HashMap<[u8; 32], Arc<Vec<u8>>>;
    static CACHE: Mutex<Option<Members>> = Mutex::new(None);
    let mut key = Sha256::new();
    key.update(path.as_bytes());
    key.update([0]);
    key.update(e.mode.to_be_bytes());
    key.update(&e.data);
    let key: [u8; 32] = key.finalize().into();
    if let Some(m) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|c| c.get(&key))
    {
        return Ok(Arc::clone(m));
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut h = tar::Header::new_gnu();
    h.set_size(e.data.len() as u64);
    h.set_mode(e.mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, &e.data[..])
        .with_context(|| format!("adding {path}"))?;
    let mut entry = tar.into_inner().context("finishing the tar entry")?;
    // into_inner ends the archive; the end comes once, after every file.
    entry.truncate(entry.len().saturating_sub(1024));
    let m = Arc::new(gzip(&entry)?);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    // Bounded: a fleet's shared files stay, per-host ones come and go.
    if cache.len() > 4096 {
        cache.clear();
    }
    cache.insert(key, Arc::clone(&m));
    Ok(m)
}

/// One gzip member, without a timestamp.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        // Fast: a fleet render packs one overlay per host; the level barely
        // changes the size of these small text files.
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).context("compressing the overlay")?;
    gz.finish().context("finishing gzip")
}
