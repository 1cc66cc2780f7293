//! Rendering a template again only when what it reads changed. A template's
//! output is a function of the context values its expressions name (every
//! helper is pure), so a fleet's hosts, which differ in a few values (host
//! name, address, disk), share the output of most overlay templates: each
//! is rendered once and reused while the values it reads are equal.
//!
//! What a template reads is found once, from its parsed form: the paths of
//! its expressions and helper parameters, absolute from the root. Inside an
//! `#each` block, a relative path names part of the item, which the block's
//! own list covers; a partial (`{{> NAME}}`, no parameters) reads what its
//! template reads. A template whose reads cannot be told this way (`this`
//! of the root, block parameters, partials with parameters or not
//! registered, decorators, helpers other than `if`/`unless`/`each`/`with`)
//! is always rendered.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Handlebars, JsonValue, Path};

/// The absolute context paths a template reads; `None`: it must always be
/// rendered.
type Reads = Option<Vec<Vec<String>>>;

/// Outputs kept per template: the fleet's shared one and a few others.
const PER_TEMPLATE: usize = 4;

/// `name` rendered with `ctx`, or its output for an earlier context whose
/// values at the paths it reads were the same.
pub(super) fn render(
    hb: &Handlebars<'_>,
    name: &str,
    ctx: &handlebars::Context,
) -> Result<Rc<str>> {
    type Outputs = HashMap<String, Vec<(Vec<JsonValue>, Rc<str>)>>;
    thread_local! {
        static OUTPUTS: RefCell<Outputs> = RefCell::new(HashMap::new());
    }
    let direct = || -> Result<Rc<str>> {
        let text = hb
            .render_with_context(name, ctx)
            .with_context(|| format!("rendering {name}"))?;
        Ok(Rc::from(text))
    };
    let Some(Some(paths)) = reads_of(hb).get(name) else {
        return direct();
    };
    // Compared where they stand; copied only when kept.
    let values: Vec<&JsonValue> = paths.iter().map(|p| value_at(ctx.data(), p)).collect();
    let found = OUTPUTS.with(|o| {
        o.borrow()
            .get(name)
            .and_then(|kept| {
                kept.iter()
                    .find(|(v, _)| v.iter().zip(&values).all(|(a, b)| a == *b))
            })
            .map(|(_, text)| Rc::clone(text))
    });
    if let Some(text) = found {
        return Ok(text);
    }
    let text = direct()?;
    let values: Vec<JsonValue> = values.into_iter().cloned().collect();
    OUTPUTS.with(|o| {
        let mut o = o.borrow_mut();
        let kept = o.entry(name.to_string()).or_default();
        if kept.len() >= PER_TEMPLATE {
            // The first stays: it is the one most hosts share.
            kept.remove(1);
        }
        kept.push((values, Rc::clone(&text)));
    });
    Ok(text)
}

/// The value at `path` (object keys; list indexes), null where there is none.
fn value_at<'a>(root: &'a JsonValue, path: &[String]) -> &'a JsonValue {
    static NULL: JsonValue = JsonValue::Null;
    let mut v = root;
    for seg in path {
        let next = match v {
            JsonValue::Object(m) => m.get(seg),
            JsonValue::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => return &NULL,
        }
    }
    v
}

/// What each template of `hb` reads, worked out once per run (the
/// templates are parsed once per run too).
fn reads_of(hb: &Handlebars<'_>) -> &'static HashMap<String, Reads> {
    static READS: OnceLock<HashMap<String, Reads>> = OnceLock::new();
    READS.get_or_init(|| {
        hb.get_templates()
            .iter()
            .map(|(name, t)| (name.clone(), reads(t, hb.get_templates())))
            .collect()
    })
}

/// The templates a partial may name, by name.
type Partials = HashMap<String, Template>;

/// How deep partials may include partials: past it, a loop is assumed
/// (handlebars refuses only a template that includes itself).
const PARTIAL_NESTING: usize = 8;

/// The paths `t` reads from the root, or `None` when that cannot be told.
pub(super) fn reads(t: &Template, partials: &Partials) -> Reads {
    let mut paths = BTreeSet::new();
    walk(t, 0, partials, 0, &mut paths)?;
    Some(paths.into_iter().collect())
}

/// `depth`: how many `#each`/`#with` blocks enclose `t`; `nested`: how many
/// partials.
fn walk(
    t: &Template,
    depth: usize,
    partials: &Partials,
    nested: usize,
    out: &mut BTreeSet<Vec<String>>,
) -> Option<()> {
    for e in &t.elements {
        match e {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                helper(h, depth, out)?;
            }
            TemplateElement::HelperBlock(h) => {
                helper(h, depth, out)?;
                if h.block_param.is_some() {
                    return None;
                }
                let inner = match name_of(&h.name)? {
                    "if" | "unless" => depth,
                    "each" | "with" => depth + 1,
                    _ => return None,
                };
                if let Some(t) = &h.template {
                    walk(t, inner, partials, nested, out)?;
                }
                // `{{else}}` renders in the block's own context.
                if let Some(t) = &h.inverse {
                    walk(t, depth, partials, nested, out)?;
                }
            }
            // A partial renders in the context where it stands.
            TemplateElement::PartialExpression(d)
                if d.params.is_empty() && d.hash.is_empty() && nested < PARTIAL_NESTING =>
            {
                let t = partials.get(name_of(&d.name)?)?;
                walk(t, depth, partials, nested + 1, out)?;
            }
            _ => return None,
        }
    }
    Some(())
}

fn name_of(p: &Parameter) -> Option<&str> {
    match p {
        Parameter::Name(n) => Some(n),
        Parameter::Path(Path::Relative((_, raw))) => Some(raw),
        _ => None,
    }
}

/// An expression or helper call: `{{NAME PARAMS… KEY=VALUE…}}`. A bare
/// name with nothing after it may be a value, not a helper: read as both.
fn helper(h: &HelperTemplate, depth: usize, out: &mut BTreeSet<Vec<String>>) -> Option<()> {
    match &h.name {
        Parameter::Name(n) if h.params.is_empty() && h.hash.is_empty() => path(n, depth, out)?,
        Parameter::Name(_) => {}
        p => param(p, depth, out)?,
    }
    for p in h.params.iter().chain(h.hash.values()) {
        param(p, depth, out)?;
    }
    Some(())
}

fn param(p: &Parameter, depth: usize, out: &mut BTreeSet<Vec<String>>) -> Option<()> {
    match p {
        Parameter::Literal(_) => Some(()),
        Parameter::Name(n) => path(n, depth, out),
        // `@index`, `@last`, `../@key`: they follow from the block's list.
        Parameter::Path(Path::Local(_)) => Some(()),
        Parameter::Path(Path::Relative((_, raw))) => path(raw, depth, out),
        Parameter::Subexpression(s) => match s.element.as_ref() {
            TemplateElement::Expression(h) => helper(h, depth, out),
            _ => None,
        },
        _ => None,
    }
}

/// A path as written at `depth`: `a.b`, `../a`, `@root.a.b`, `this`.
fn path(raw: &str, depth: usize, out: &mut BTreeSet<Vec<String>>) -> Option<()> {
    let (rest, up) = if let Some(rest) = raw.strip_prefix("@root.") {
        (rest, depth)
    } else {
        let mut rest = raw;
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("../") {
            rest = r;
            up += 1;
        }
        (rest, up)
    };
    if up > depth {
        return None;
    }
    if up < depth {
        // Inside a block's item: read through the block's list.
        return Some(());
    }
    let segs: Vec<String> = rest.split(['.', '/']).map(str::to_string).collect();
    let plain = |s: &String| {
        !s.is_empty()
            && s != "this"
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if segs.iter().all(plain) {
        out.insert(segs);
        Some(())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_of_text(text: &str) -> Reads {
        let t = Template::compile(text).expect("a template");
        reads(&t, &HashMap::new())
    }

    fn paths(list: &[&str]) -> Reads {
        Some(
            list.iter()
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect(),
        )
    }

    #[test]
    fn reads_are_the_absolute_paths_of_expressions_and_parameters() {
        assert_eq!(
            reads_of_text(
                "{{generator}} {{sh registry.image}}\n{{#if proxy}}{{ks proxy.http}}{{/if}}\n\
                 {{#each repos.list}}{{ks name}}{{#if ../proxy}}{{../proxy.installer}}{{/if}}\
                 {{#unless @last}} {{/unless}}{{/each}}\n{{#if a}}x{{else}}{{b.c}}{{/if}}"
            ),
            paths(&[
                "a",
                "b.c",
                "generator",
                "proxy",
                "proxy.http",
                "proxy.installer",
                "registry.image",
                "repos.list",
            ])
        );
    }

    #[test]
    fn a_partial_reads_what_its_template_reads() {
        let mut partials = HashMap::new();
        let part = Template::compile("{{sh a.b}}{{#if c}}{{d}}{{/if}}").expect("a partial");
        partials.insert("p/q.sh".to_string(), part);
        let looped = Template::compile("{{> loop}}").expect("a partial");
        partials.insert("loop".to_string(), looped);
        let reads_with = |text: &str| {
            let t = Template::compile(text).expect("a template");
            reads(&t, &partials)
        };
        assert_eq!(
            reads_with("{{e}}\n{{> p/q.sh}}\n"),
            paths(&["a.b", "c", "d", "e"])
        );
        // Inside an item, the item's paths are read through the list.
        assert_eq!(
            reads_with("{{#each l}}{{> p/q.sh}}{{/each}}"),
            paths(&["l"])
        );
        for text in [
            "{{> missing}}",
            "{{> p/q.sh x}}",
            "{{> p/q.sh x=1}}",
            "{{> loop}}",
        ] {
            assert_eq!(reads_with(text), None, "{text}");
        }
    }

    #[test]
    fn what_cannot_be_told_is_always_rendered() {
        for text in [
            "{{this}}",
            "{{#each a as |x|}}{{x}}{{/each}}",
            "{{> partial}}",
            "{{#custom a}}{{b}}{{/custom}}",
            "{{#each a}}{{../../b}}{{/each}}",
            "{{a.[0]}}",
        ] {
            assert_eq!(reads_of_text(text), None, "{text}");
        }
    }

    /// Every embedded template, for appliances that differ the way a
    /// fleet's hosts do and in the ways configs do, each rendered after the
    /// others: the memo gives exactly what a render gives.
    #[test]
    fn the_memo_gives_what_a_render_gives() {
        use crate::config;
        use crate::model::{secrets::SecretStore, secrets::Slot, Appliance, Facts};
        let hb = crate::render::handlebars().expect("templates");
        let uncacheable: Vec<&String> = reads_of(hb)
            .iter()
            .filter(|(n, r)| (n.starts_with("overlay/") || *n == "kickstart/ks.cfg") && r.is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(uncacheable.is_empty(), "always rendered: {uncacheable:?}");
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW t@t";
        let variants = [
            "",
            "[appliance]\nhostname = \"b.example\"\n",
            "[appliance]\nhostname = \"c.example\"\n[network]\nmode = \"static\"\naddress = \"192.0.2.7/24\"\ngateway = \"192.0.2.1\"\n",
            "[registry]\nport = 5001\nmetrics = true\nmetrics_port = 5002\n",
            "[registry.tls]\nmode = \"generate\"\n",
            "[appliance]\nhostname = \"d.example\"\n[registry.tls]\nmode = \"generate\"\n",
            "[registry]\nimage = \"registry:3\"\n[registry.gc]\nenabled = false\n",
            "[proxy]\nhttp = \"http://p.example:3128\"\nhttps = \"http://p.example:3128\"\n",
            "[user]\nsudo = \"none\"\nname = \"ops\"\n",
            "",
        ];
        let mut store = SecretStore::default();
        for (i, extra) in variants.iter().enumerate() {
            let mut c = config::parse(&format!("version = 1\n{extra}")).expect("config");
            c.user.ssh_keys = vec![key.into()];
            c.user.ssh_key_files = vec![];
            let v = config::Valid::check(c).expect("valid");
            let app = Appliance::resolve(&v, &mut store, &Facts::default(), Slot::Single)
                .expect("appliance");
            let mut ctx = handlebars::Context::wraps(&app).expect("context");
            if let Some(m) = ctx.data_mut().as_object_mut() {
                m.insert("overlay_base64".into(), "T1ZFUkxBWQ==".into());
            }
            // What is rendered from the appliance alone (and the kickstart,
            // given its overlay), of the templates this appliance gets.
            let mut names: Vec<&String> = hb
                .get_templates()
                .keys()
                .filter(|n| {
                    (n.starts_with("overlay/") || n.starts_with("client/"))
                        && super::super::templates::wanted(n, &app)
                        || *n == "kickstart/ks.cfg"
                })
                .collect();
            names.sort();
            for name in names {
                let want = hb.render_with_context(name, &ctx).expect("render");
                let got = render(hb, name, &ctx).expect("memo");
                assert_eq!(&*got, want.as_str(), "{name} for variant {i}: {extra}");
            }
        }
    }
}
