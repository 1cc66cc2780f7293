//! Rendering: the appliance becomes an in-memory [`Tree`] of files, which is
//! then written into `out/` atomically.

pub mod escape;
pub mod kickstart;
mod memo;
pub mod oemdrv;
pub mod overlay;
pub mod packer;
mod templates;
pub mod vagrant;

use anyhow::{Context, Result};
use handlebars::Handlebars;

pub use templates::handlebars;
use templates::render_dir;

use crate::model::Appliance;
pub use crate::tree::{Entry, Tree};

/// Which families of output to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Kickstart,
}

/// Render everything the scope asks for.
pub fn render(app: &Appliance, scope: Scope) -> Result<Tree> {
    let hb = handlebars()?;
    // Serialized once for every template (a fleet renders thousands).
    let mut ctx = handlebars::Context::wraps(app).context("serializing the appliance")?;
    let mut overlay = overlay::render(hb, app, &ctx)?;
    owner_only_if_secret(app, &mut overlay);
    let tarball = overlay::pack(&overlay).context("packing the overlay")?;
    let mut tree = Tree::default();
    tree.add(
        "kickstart/ks.cfg",
        kickstart::render(hb, &mut ctx, &tarball)?,
        0o600,
    );
    if scope == Scope::All {
        tree.graft("overlay", &overlay);
        tree.add("overlay.tar.gz", tarball, 0o600);
        tree.add(vagrant::PATH, vagrant::render(hb, &ctx)?, 0o644);
        tree.graft("client", &client_files(hb, app, &ctx)?);
        let ks = tree
            .get("kickstart/ks.cfg")
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .unwrap_or_default();
        packer::render(hb, app, ctx.data().clone(), &ks, &mut tree)?;
    }
    owner_only_if_secret(app, &mut tree);
    Ok(tree)
}

/// Files that hold proxy or repository credentials (yum's config and
/// repos, docker's proxy drop-ins, the Vagrantfile, Packer's variables…)
/// lose their group and other permissions.
fn owner_only_if_secret(app: &Appliance, tree: &mut Tree) {
    if app.credentials.is_empty() {
        return;
    }
    for e in tree.files.values_mut() {
        let text = String::from_utf8_lossy(&e.data);
        if app.credentials.iter().any(|c| text.contains(c.as_str())) {
            e.mode &= 0o700;
        }
    }
}

/// What a docker client host needs to use the registry: its CA (if any) and
/// the `client/` templates.
fn client_files(hb: &Handlebars<'_>, app: &Appliance, ctx: &handlebars::Context) -> Result<Tree> {
    let mut t = Tree::default();
    if let Some(ca) = app.registry_files.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        let addr = &app.registry.address;
        t.add(format!("certs.d/{addr}/ca.crt"), ca.clone(), 0o644);
    }
    for (path, text) in render_dir(hb, "client", app, ctx)? {
        t.add(path, text, 0o644);
    }
    Ok(t)
}
