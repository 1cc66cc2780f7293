//! `out/`: the appliance rendered from the config and the kept secrets,
//! written as a [`Tree`]: staged families swapped in by rename, state files
//! replaced one by one, `kickstart/` shared file by file.

pub mod ksdir;
mod lock;
mod write;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::{self, RequiredPlugins};
use crate::model::packer::Version;
use crate::model::secrets::{SecretStore, Slot};
use crate::model::{Appliance, Facts};
use crate::render::{self, Scope};
use crate::tree::Tree;
pub use lock::{lock, OutLock};
pub use write::{write, write_as, Writer};

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
/// `packer` asks for the `packer` on PATH; it runs only for a valid config
/// with `required_plugins = "auto"` (`packer version` costs more than a
/// render, and a refused config runs nothing).
pub fn prepare(
    g: &Global,
    packer: fn() -> Option<Version>,
    _lock: &OutLock,
) -> Result<(Appliance, SecretStore)> {
    let (valid, _) = config::load(g.config.as_deref())?;
    let mut store = SecretStore::load(&g.out).context("reading stored secrets")?;
    let facts = Facts {
        out_dir: std::path::absolute(&g.out).context("resolving the out dir")?,
        packer: if valid.config.packer.required_plugins == RequiredPlugins::Auto {
            packer()
        } else {
            None
        },
    };
    let app = Appliance::resolve(&valid, &mut store, &facts, Slot::Single)?;
    Ok((app, store))
}

/// Render and write into `g.out`: the appliance's files and every kept
/// secret. Nothing is written unless the whole render succeeded.
pub fn render_to(
    g: &Global,
    scope: Scope,
    packer: fn() -> Option<Version>,
    lock: &OutLock,
) -> Result<(Appliance, Tree)> {
    let (app, store) = prepare(g, packer, lock)?;
    let mut tree = render::render(&app, scope)?;
    store.write_into(&mut tree);
    write(&tree, &g.out, lock).context("writing the output")?;
    Ok((app, tree))
}
