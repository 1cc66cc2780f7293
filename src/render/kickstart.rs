//! The kickstart: an unattended install of `appliance.distro` whose `%post`
//! unpacks the overlay (embedded as base64) and runs `regbake-install`
//! offline.

use anyhow::{Context, Result};
use base64::Engine;
use handlebars::Handlebars;

/// Base64 wrapped at 76 columns, as `base64 -d` reads it, appended to `out`.
fn push_wrapped_base64(out: &mut String, data: &[u8]) {
    // 57 bytes make one 76-column line.
    out.reserve(data.len().div_ceil(57) * 77);
    for (i, chunk) in data.chunks(57).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        base64::engine::general_purpose::STANDARD.encode_string(chunk, out);
    }
}

/// Stands for the overlay while the rest of the kickstart is rendered: a
/// NUL, which no rendered value can hold (the config refuses control
/// characters), so it is found only where `{{overlay_base64}}` stood.
const OVERLAY: &str = "\0regbake-overlay\0";

/// The kickstart of the appliance in `ctx`, with the overlay embedded as
/// base64. The rest of it is rendered once for the hosts of a fleet that
/// share it (see `memo`); the overlay, different for each, is put in after.
pub fn render(
    hb: &Handlebars<'_>,
    ctx: &mut handlebars::Context,
    overlay_tar_gz: &[u8],
) -> Result<String> {
    if let Some(map) = ctx.data_mut().as_object_mut() {
        map.insert("overlay_base64".into(), OVERLAY.into());
    }
    let text = super::memo::render(hb, "kickstart/ks.cfg", ctx)?;
    let (before, after) = text
        .split_once(OVERLAY)
        .context("kickstart/ks.cfg embeds the overlay")?;
    let mut out = String::with_capacity(text.len() + overlay_tar_gz.len() * 4 / 3 + 4096);
    out.push_str(before);
    push_wrapped_base64(&mut out, overlay_tar_gz);
    out.push_str(after);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lines_are_76_columns() {
        for len in [0_u32, 1, 56, 57, 58, 200, 4096] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut s = String::new();
            push_wrapped_base64(&mut s, &data);
            assert!(s.lines().all(|l| l.len() <= 76), "{len}");
            if len >= 57 {
                assert_eq!(s.lines().next().map(str::len), Some(76));
            }
            let joined: String = s.lines().collect();
            let back = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .expect("base64");
            assert_eq!(back, data, "{len}");
        }
    }
}
