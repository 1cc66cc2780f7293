//! The templates: embedded from `templates/`, parsed once, rendered by
//! directory.

use std::sync::OnceLock;

use anyhow::Result;
use handlebars::Handlebars;

use super::escape;

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

/// The templates under `dir/`, rendered, by their path below it; a template
/// that renders to nothing is not wanted by this appliance (the proxy
/// drop-ins without a proxy, sudoers without sudo).
pub(crate) fn render_dir(
    hb: &Handlebars<'_>,
    dir: &str,
    ctx: &handlebars::Context,
) -> Result<Vec<(String, String)>> {
    let prefix = format!("{dir}/");
    let mut names: Vec<&String> = hb
        .get_templates()
        .keys()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    let mut out = vec![];
    for name in names {
        let text = super::memo::render(hb, name, ctx)?;
        if !text.is_empty() {
            out.push((name[prefix.len()..].to_string(), text.to_string()));
        }
    }
    Ok(out)
}
