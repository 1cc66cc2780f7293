//! The overlay: every file the appliance needs, at its target path. It is the
//! single source of truth that all three deliveries install.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use handlebars::Handlebars;

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
    for (path, text) in super::templates::render_dir(hb, "overlay", app, ctx)? {
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

/// One file's tar entry, gzipped; made once per content. Found by its path
/// and mode, then its content compared byte for byte (a fleet's hosts share
/// most files; comparing is far cheaper than hashing every file of every
/// host, and cannot mistake one content for another).
fn member(path: &str, e: &Entry) -> Result<Arc<Vec<u8>>> {
    /// The contents last packed at a path, newest last.
    type Members = HashMap<(String, u32), Vec<(Arc<Vec<u8>>, Arc<Vec<u8>>)>>;
    /// Contents kept per path: the fleet's shared one and a few per-host ones.
    const PER_PATH: usize = 4;
    static CACHE: Mutex<Option<Members>> = Mutex::new(None);
    let key = (path.to_string(), e.mode);
    if let Some(m) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|c| c.get(&key))
        .and_then(|v| v.iter().find(|(data, _)| data[..] == e.data[..]))
    {
        return Ok(Arc::clone(&m.1));
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
    // Bounded: a path's shared content is found first and stays; per-host
    // ones come and go.
    if cache.len() > 4096 {
        cache.clear();
    }
    let kept = cache.entry(key).or_default();
    if kept.len() >= PER_PATH {
        kept.remove(1);
    }
    kept.push((Arc::new(e.data.clone()), Arc::clone(&m)));
    Ok(m)
}

/// One gzip member (RFC 1952) without a timestamp, as flate2's `GzBuilder`
/// writes it at the fast level; the deflate state is reused per thread (a
/// new one costs more than compressing a small file).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    thread_local! {
        // Fast: a fleet render packs one overlay per host; the level barely
        // changes the size of these small text files.
        static DEFLATE: std::cell::RefCell<Compress> =
            std::cell::RefCell::new(Compress::new(Compression::fast(), false));
    }
    // Magic, deflate, no flags, mtime 0, XFL 4 (fastest), OS unknown.
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    DEFLATE.with(|d| -> Result<()> {
        let mut d = d.borrow_mut();
        d.reset();
        // As GzEncoder feeds it: the input first, then the end (zlib may
        // pick other blocks for input that comes with the end at once).
        while usize::try_from(d.total_in()).context("compressing the overlay")? < data.len() {
            out.reserve(data.len() / 2 + 64);
            let read = usize::try_from(d.total_in()).context("compressing the overlay")?;
            d.compress_vec(&data[read..], &mut out, FlushCompress::None)
                .context("compressing the overlay")?;
        }
        loop {
            out.reserve(data.len() / 2 + 64);
            let read = usize::try_from(d.total_in()).context("compressing the overlay")?;
            match d
                .compress_vec(&data[read..], &mut out, FlushCompress::Finish)
                .context("compressing the overlay")?
            {
                Status::StreamEnd => return Ok(()),
                Status::Ok | Status::BufError => {}
            }
        }
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}
