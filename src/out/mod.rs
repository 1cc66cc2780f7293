//! `out/`: the appliance rendered from the config and the kept secrets,
//! written as a [`Tree`]: staged families swapped in by rename, state files
//! replaced one by one, `kickstart/` shared file by file.

pub mod ksdir;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config;
use crate::model::packer::Version;
use crate::model::secrets::{SecretStore, Slot};
use crate::model::{Appliance, Facts};
use crate::render::{self, Scope};
use crate::tree::{Entry, Tree};
use crate::util::fsx;

/// What every command is given: which config, which out dir, how chatty,
/// and whether external commands only are printed.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Config file [default: ./regbake.toml, else the embedded defaults]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Output directory
    #[arg(short, long, global = true, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,

    /// Show every external command and more detail
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print external commands instead of running them
    #[arg(long, global = true)]
    pub dry_run: bool,
}

/// Load and validate the config and resolve the appliance, with the secrets
/// a previous render left in `out` (and any made now, in the store).
/// `packer`: the `packer` on PATH, for `required_plugins = "auto"`.
pub fn prepare(g: &Global, packer: Option<Version>) -> Result<(Appliance, SecretStore)> {
    let (config, _) = config::load(g.config.as_deref())?;
    let mut store = SecretStore::load(&g.out).context("reading stored secrets")?;
    let facts = Facts {
        out_dir: std::path::absolute(&g.out).context("resolving the out dir")?,
        packer,
    };
    let app = Appliance::resolve(&config, &mut store, &facts, Slot::Single)?;
    Ok((app, store))
}

/// Render and write into `g.out`: the appliance's files and every kept
/// secret. Nothing is written unless the whole render succeeded.
pub fn render_to(g: &Global, scope: Scope, packer: Option<Version>) -> Result<(Appliance, Tree)> {
    let (app, store) = prepare(g, packer)?;
    let mut tree = render::render(&app, scope)?;
    store.write_into(&mut tree);
    write(&tree, &g.out).context("writing the output")?;
    Ok((app, tree))
}

/// Directories of `out/` that hold state kept across renders; they are
/// written file by file and never swapped out.
const STATE_DIRS: &[&str] = &["secrets", "ssh"];

/// Write a file into the staging dir, which is private until it is renamed
/// into place: no temp file needed.
fn write_staged(path: &Path, e: &Entry) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("file path has a parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(e.mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode given to open.
    f.set_permissions(std::fs::Permissions::from_mode(e.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(&e.data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Write the tree into `out` as the single-appliance render (see [`write_as`]).
pub fn write(tree: &Tree, out: &Path) -> Result<()> {
    write_as(tree, out, ksdir::Owner::Single)
}

/// Write the tree into `out`: rendered families are staged in a temp dir
/// beside `out` and each moved into place with a rename, so a failed run
/// leaves the previous output; state files are replaced one by one and never
/// deleted; `kickstart/`, which two commands share, is written file by file
/// as `owner`'s set (see [`ksdir`]); anything else in `out` (boxes, logs) is
/// left alone.
pub fn write_as(tree: &Tree, out: &Path, owner: ksdir::Owner) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".regbake-staging-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging dir in {}", parent.display()))?;
    for (rel, e) in &tree.files {
        let top = rel.split('/').next().unwrap_or(rel);
        if STATE_DIRS.contains(&top) || top == ksdir::DIR {
            continue;
        }
        write_staged(&staging.path().join(rel), e)?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for dir in STATE_DIRS {
        if tree.files.keys().any(|k| k.starts_with(&format!("{dir}/"))) {
            let d = out.join(dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .with_context(|| format!("creating {}", d.display()))?;
        }
    }
    for (rel, e) in &tree.files {
        let top = rel.split('/').next().unwrap_or(rel);
        if !STATE_DIRS.contains(&top) {
            continue;
        }
        let path = out.join(rel);
        let same_mode =
            std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == e.mode);
        if !same_mode || std::fs::read(&path).ok().as_deref() != Some(&e.data[..]) {
            // State directories hold private keys: 0700 all the way down.
            // Per-host certificates are cheap to issue again from the kept
            // CA (and a fleet has thousands): synced are the CA, keys and
            // secrets that clients and appliances already trust.
            let durable = !rel.starts_with("secrets/tls/hosts/");
            fsx::write_file(&path, &e.data, e.mode, 0o700, durable)?;
        }
    }
    let prefix = format!("{}/", ksdir::DIR);
    let shared: BTreeMap<String, Entry> = tree
        .files
        .iter()
        .filter_map(|(rel, e)| Some((rel.strip_prefix(&prefix)?.to_string(), e.clone())))
        .collect();
    if !shared.is_empty() {
        ksdir::write(&out.join(ksdir::DIR), &shared, owner)
            .with_context(|| format!("writing {}", out.join(ksdir::DIR).display()))?;
    }
    let trash = tempfile::Builder::new()
        .prefix(".regbake-old-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    for top in tree.top_level() {
        if STATE_DIRS.contains(&top) || top == ksdir::DIR {
            continue;
        }
        let dest = out.join(top);
        if dest.symlink_metadata().is_ok() {
            std::fs::rename(&dest, trash.path().join(top))
                .with_context(|| format!("moving the old {} aside", dest.display()))?;
        }
        std::fs::rename(staging.path().join(top), &dest)
            .with_context(|| format!("moving {} into place", dest.display()))?;
    }
    Ok(())
}
