//! Rendering: the appliance becomes an in-memory [`Tree`] of files, which is
//! then written into `out/` atomically.

pub mod escape;
pub mod kickstart;
pub mod oemdrv;
pub mod overlay;
pub mod packer;
pub mod vagrant;

use std::sync::OnceLock;

use anyhow::{Context, Result};
use handlebars::Handlebars;

use crate::model::Appliance;
pub use crate::tree::{Entry, Tree};

/// Every template, by its path under `templates/` without `.hbs`.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name, ".hbs")))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "overlay/etc/sudoers.d/USER",
    "overlay/home/USER/.ssh/authorized_keys",
    "overlay/etc/ssh/sshd_config",
    "overlay/etc/yum.repos.d/CentOS-Base.repo",
    "overlay/etc/yum.repos.d/docker-ce.repo",
    "overlay/etc/yum.conf",
    "overlay/etc/docker/daemon.json",
    "overlay/etc/systemd/system/docker.service.d/http-proxy.conf",
    "overlay/etc/systemd/system/docker.service.d/https-proxy.conf",
    "overlay/etc/docker/registry/config.yml",
    "overlay/etc/systemd/system/regbake-registry.service",
    "overlay/etc/systemd/system/regbake-firstboot.service",
    "overlay/usr/local/sbin/regbake-install",
    "overlay/usr/local/sbin/regbake-firstboot",
    "overlay/usr/local/sbin/regbake-uninstall",
    "overlay/etc/firewalld/zones/public.xml",
    "kickstart/ks.cfg",
    "vagrant/Vagrantfile",
    "packer/variables.pkr.hcl",
    "packer/sources.pkr.hcl",
    "packer/build.pkr.hcl",
    "packer/box/Vagrantfile",
    "packer/plugins.pkr.hcl",
    "packer/scripts/install.sh",
    "packer/scripts/firstboot.sh",
    "packer/scripts/cleanup.sh",
    "packer/http/ks.cfg",
];

/// Handlebars in strict mode, HTML escaping off: quoting is done per target
/// language by the helpers in [`escape`]. Parsed once per run (a fleet
/// renders thousands of appliances).
pub fn handlebars() -> Result<&'static Handlebars<'static>> {
    static HB: OnceLock<Result<Handlebars<'static>, String>> = OnceLock::new();
    let made = HB.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        escape::register(&mut hb);
        for (name, text) in TEMPLATES {
            hb.register_template_string(name, *text)
                .map_err(|e| format!("parsing template {name}.hbs: {e}"))?;
        }
        Ok(hb)
    });
    made.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Which families of output to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Kickstart,
}

/// Render everything the scope asks for.
pub fn render(app: &Appliance, scope: Scope) -> Result<Tree> {
    let hb = handlebars()?;
    let overlay = overlay::render(hb, app)?;
    let tarball = overlay::pack(&overlay).context("packing the overlay")?;
    let mut tree = Tree::default();
    tree.add(
        "kickstart/ks.cfg",
        kickstart::render(hb, app, &tarball)?,
        0o600,
    );
    if scope == Scope::All {
        tree.graft("overlay", &overlay);
        tree.add("overlay.tar.gz", tarball, 0o600);
        tree.add(vagrant::PATH, vagrant::render(hb, app)?, 0o644);
        for (p, e) in client_files(app).files {
            tree.files.insert(format!("client/{p}"), e);
        }
        let ks = tree
            .get("kickstart/ks.cfg")
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .unwrap_or_default();
        packer::render(hb, app, &ks, &mut tree)?;
    }
    Ok(tree)
}

/// What a docker client host needs to use the registry.
fn client_files(app: &Appliance) -> Tree {
    let mut t = Tree::default();
    let addr = &app.registry.address;
    match app.registry_files.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        Some(ca) => {
            t.add(format!("certs.d/{addr}/ca.crt"), ca.clone(), 0o644);
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     Copy `certs.d/{addr}/ca.crt` to `/etc/docker/certs.d/{addr}/ca.crt`\n\
                     on every docker host (no daemon restart needed), then\n\
                     `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
        None if app.registry.tls => {
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     It uses the TLS certificate given in the config; clients that trust\n\
                     its issuer need nothing else: `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
        None => {
            let snippet = serde_json::json!({ "insecure-registries": [addr] });
            t.add("daemon.json", format!("{:#}\n", snippet), 0o644);
            t.add(
                "README.md",
                format!(
                    "# Using the registry {addr}\n\n\
                     It speaks plain HTTP. Merge `daemon.json` into `/etc/docker/daemon.json`\n\
                     on every docker host and restart docker, then `docker pull {addr}/IMAGE`.\n"
                ),
                0o644,
            );
        }
    }
    t
}
