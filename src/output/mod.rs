//! `out/`: the appliance rendered from the config and the kept secrets,
//! written as a [`Tree`]: staged families swapped in by rename, state files
//! replaced one by one, `kickstart/` shared file by file.

pub mod ksdir;
mod lock;
mod write;

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Valid;
use crate::model::secrets::{SecretStore, Slot};
use crate::model::{Appliance, Facts};
use crate::render::{self, Scope};
use crate::tree::Tree;
pub use lock::{lock, OutLock};
pub use write::{write, write_as, Writer};

/// The one render into `out`: the appliance `valid` describes, resolved in
/// `facts` with the secrets a previous render left in `out` (and any made
/// now), its `scope` rendered with every kept secret; `before_write` may
/// refuse the appliance or add files; then all is written. Nothing is
/// written unless the whole render succeeded.
pub fn render_to(
    valid: &Valid,
    facts: &Facts,
    scope: Scope,
    out: &Path,
    lock: &OutLock,
    before_write: impl FnOnce(&Appliance, &mut Tree) -> Result<()>,
) -> Result<(Appliance, Tree)> {
    let mut store = SecretStore::load(out).context("reading stored secrets")?;
    let app = Appliance::resolve(valid, &mut store, facts, Slot::Single)?;
    let mut tree = render::render(&app, scope)?;
    store.write_into(&mut tree);
    before_write(&app, &mut tree)?;
    write(&tree, out, lock).context("writing the output")?;
    Ok((app, tree))
}
