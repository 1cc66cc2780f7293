//! The kickstart: an unattended install of `appliance.distro` whose `%post`
//! unpacks the overlay (embedded as base64) and runs `regbake-install`
//! offline.

use anyhow::{Context, Result};
use base64::Engine;
use handlebars::Handlebars;

/// Base64 wrapped at 76 columns, as `base64 -d` reads it.
fn wrapped_base64(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 + 1);
    for (i, chunk) in b64.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Base64 output is ASCII, so each chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

/// The kickstart of the appliance in `ctx`, with the overlay (added to
/// `ctx` as `overlay_base64`).
pub fn render(
    hb: &Handlebars<'_>,
    ctx: &mut handlebars::Context,
    overlay_tar_gz: &[u8],
) -> Result<String> {
    if let Some(map) = ctx.data_mut().as_object_mut() {
        map.insert(
            "overlay_base64".into(),
            wrapped_base64(overlay_tar_gz).into(),
        );
    }
    hb.render_with_context("kickstart/ks.cfg", ctx)
        .context("rendering kickstart/ks.cfg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lines_are_76_columns() {
        let s = wrapped_base64(&[7u8; 200]);
        assert!(s.lines().all(|l| l.len() <= 76));
        assert_eq!(s.lines().next().map(str::len), Some(76));
    }
}
