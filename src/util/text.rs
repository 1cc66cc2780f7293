//! Text from elsewhere (the network, a log) as it may be shown on a
//! terminal or in a page.

use std::fmt::Write as _;

/// Text from the network as it may be printed: control characters (the
/// escape sequences a terminal would act on, carriage returns) and bidi
/// overrides escaped as `\u{1b}`, `\r`, `\t`; line breaks kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_is_printed_escaped() {
        assert_eq!(
            printable("a\u{1b}[31mb\u{7}\r\nc\rd\te \u{202e}f\u{9b}"),
            "a\\u{1b}[31mb\\u{7}\nc\\rd\\te \\u{202e}f\\u{9b}"
        );
        // Text, line breaks and other scripts stay as they are.
        assert_eq!(
            printable("déjà vu\n{\"errors\":[]}"),
            "déjà vu\n{\"errors\":[]}"
        );
    }
}
