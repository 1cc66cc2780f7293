//! The templates: embedded from `templates/`, parsed once, rendered by
//! directory.

use std::sync::OnceLock;

use anyhow::Result;
use handlebars::Handlebars;

use super::escape;
use crate::model::Appliance;

/// Every template, embedded: `templates/PATH.hbs` is the template `PATH`,
/// which (with the placeholders of [`overlay::target`]) renders `PATH`.
#[derive(rust_embed::RustEmbed)]
#[folder = "templates/"]
#[include = "*.hbs"]
struct Templates;

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
        hb.register_embed_templates_with_extension::<Templates>(".hbs")
            .map_err(|e| format!("parsing the templates: {e}"))?;
        Ok(hb)
    });
    made.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Whether an appliance gets a file.
type Condition = fn(&Appliance) -> bool;

/// The templates an appliance gets only sometimes, with when: this list,
/// not the templates, decides which files exist. Every other template under
/// a rendered directory is always rendered.
const WHEN: &[(&str, Condition)] = &[
    ("overlay/etc/ssh/sshd_config", |a| a.distro.el7),
    ("overlay/etc/ssh/sshd_config.d/00-regbake.conf", |a| {
        !a.distro.el7
    }),
    (
        "overlay/etc/systemd/system/docker.service.d/http-proxy.conf",
        |a| a.proxy.as_ref().is_some_and(|p| !p.http.is_empty()),
    ),
    (
        "overlay/etc/systemd/system/docker.service.d/https-proxy.conf",
        |a| a.proxy.as_ref().is_some_and(|p| !p.https.is_empty()),
    ),
    ("overlay/etc/systemd/system/regbake-gc.service", |a| {
        a.registry.gc.is_some()
    }),
    ("overlay/etc/systemd/system/regbake-gc.timer", |a| {
        a.registry.gc.is_some()
    }),
    ("overlay/usr/local/sbin/regbake-gc", |a| {
        a.registry.gc.is_some()
    }),
    ("overlay/etc/yum.repos.d/CentOS-Base.repo", |a| a.distro.el7),
    ("overlay/etc/yum.conf", |a| {
        a.distro.el7 && a.proxy.is_some()
    }),
    ("overlay/etc/dnf/dnf.conf", |a| {
        !a.distro.el7 && a.proxy.is_some()
    }),
    ("overlay/etc/sudoers.d/USER", |a| a.user.sudo),
    ("client/daemon.json", |a| !a.registry.tls),
];

/// Whether `app` gets the file of template `name`.
pub(super) fn wanted(name: &str, app: &Appliance) -> bool {
    WHEN.iter()
        .find(|(n, _)| *n == name)
        .is_none_or(|(_, when)| when(app))
}

/// The templates under `dir/` that `app` gets ([`WHEN`]), rendered, by
/// their path below it.
pub(crate) fn render_dir(
    hb: &Handlebars<'_>,
    dir: &str,
    app: &Appliance,
    ctx: &handlebars::Context,
) -> Result<Vec<(String, String)>> {
    let prefix = format!("{dir}/");
    let mut names: Vec<&String> = hb
        .get_templates()
        .keys()
        .filter(|n| n.starts_with(&prefix) && wanted(n, app))
        .collect();
    names.sort();
    let mut out = vec![];
    for name in names {
        let text = super::memo::render(hb, name, ctx)?;
        // An empty file would be a condition missing from the list.
        anyhow::ensure!(!text.is_empty(), "{name} rendered nothing: list it in WHEN");
        out.push((name[prefix.len()..].to_string(), text.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each entry of [`WHEN`] names a template there is.
    #[test]
    fn every_conditional_template_exists() {
        let hb = handlebars().expect("templates");
        for (name, _) in WHEN {
            assert!(hb.get_template(name).is_some(), "no template {name}");
        }
    }
}
