//! The Vagrantfile that bakes the appliance from a base box: it uploads
//! `out/overlay.tar.gz`, installs it and runs the firstboot inside the VM.

use anyhow::{Context, Result};
use handlebars::Handlebars;

use crate::appliance::Appliance;

/// Where it lands under `out/`.
pub const PATH: &str = "vagrant/Vagrantfile";

pub fn render(hb: &Handlebars<'_>, app: &Appliance) -> Result<String> {
    hb.render("vagrant/Vagrantfile", app)
        .context("rendering vagrant/Vagrantfile")
}
