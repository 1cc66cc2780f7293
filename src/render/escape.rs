//! Quoting for each target language. Validation keeps most values inert
//! already; these helpers make sure that whatever reaches a file is read back
//! by its consumer as one literal value.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::Value;

/// POSIX shell word: bare when safe, else single-quoted.
pub fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A kickstart option value: pykickstart splits lines like a POSIX shell.
pub fn ks(s: &str) -> String {
    sh(s)
}

/// A double-quoted JSON string.
pub fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A double-quoted YAML scalar. JSON's escapes are not enough: inside double
/// quotes YAML still folds its other line breaks (NEL; LS and PS in YAML 1.1)
/// and refuses DEL, the C1 controls and U+FFFE/U+FFFF, so those are escaped
/// too (and the BOM, which readers disagree on).
pub fn yaml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            ' '..='~' => out.push(c),
            '\u{2028}' | '\u{2029}' | '\u{feff}' => push_u(&mut out, c),
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'.. => out.push(c),
            c => push_u(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// `\uXXXX` (or `\UXXXXXXXX` past the BMP), an escape YAML and HCL share.
fn push_u(out: &mut String, c: char) {
    let n = u32::from(c);
    if n > 0xffff {
        out.push_str(&format!("\\U{n:08X}"));
    } else {
        out.push_str(&format!("\\u{n:04X}"));
    }
}

/// A systemd unit value in double quotes, for settings that unquote and
/// C-unescape it (`Environment=`): `%` specifiers doubled, `\` and `"`
/// escaped, and control characters as C escapes, since a raw line feed or
/// carriage return would end the line.
pub fn systemd(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Ruby single-quoted string literal (no interpolation). Ruby drops a
/// carriage return that comes before a line feed in its source, even inside
/// a literal, so each one is written as an adjacent `"\r"` literal (Ruby
/// joins adjacent literals: `'a' "\r" 'b'` is `"a\rb"`).
pub fn ruby(s: &str) -> String {
    let quoted = s.replace('\\', r"\\").replace('\'', r"\'");
    format!("'{}'", quoted.replace('\r', r#"' "\r" '"#))
}

/// An HCL quoted string. HCL's escapes are `\n`, `\r`, `\t`, `\"`, `\\` and
/// `\uXXXX`/`\UXXXXXXXX` (not JSON's `\b` or `\f`); `${` and `%{` start
/// template sequences and are doubled.
pub fn hcl(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => push_u(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// XML text or attribute content.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// POSIX shell words, each quoted by [`sh`], joined by spaces: a bash
/// array's items. With a `flag`, each word follows it (`-v A -v B`); the
/// flag is a template literal, written as is.
pub fn sh_words<'a>(words: impl IntoIterator<Item = &'a str>, flag: Option<&str>) -> String {
    let mut out = String::new();
    for w in words {
        if !out.is_empty() {
            out.push(' ');
        }
        if let Some(f) = flag {
            out.push_str(f);
            out.push(' ');
        }
        out.push_str(&sh(w));
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Register `{{sh x}}`, `{{ks x}}`, `{{json x}}`, `{{yaml x}}`, `{{systemd x}}`,
/// `{{ruby x}}`, `{{hcl x}}`, `{{xml x}}`, `{{sh_words list [flag="-v"]}}`
/// and `{{concat a b …}}`.
pub fn register(hb: &mut Handlebars<'_>) {
    fn one(
        name: &'static str,
        f: fn(&str) -> String,
    ) -> impl Fn(
        &Helper<'_>,
        &Handlebars<'_>,
        &Context,
        &mut RenderContext<'_, '_>,
        &mut dyn Output,
    ) -> HelperResult
           + Send
           + Sync {
        move |h, _, _, _, out| {
            let v = h
                .param(0)
                .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
            out.write(&f(&value_text(v.value())))?;
            Ok(())
        }
    }
    hb.register_helper("sh", Box::new(one("sh", sh)));
    hb.register_helper("ks", Box::new(one("ks", ks)));
    hb.register_helper("json", Box::new(one("json", json)));
    hb.register_helper("yaml", Box::new(one("yaml", yaml)));
    hb.register_helper("systemd", Box::new(one("systemd", systemd)));
    hb.register_helper("ruby", Box::new(one("ruby", ruby)));
    hb.register_helper("hcl", Box::new(one("hcl", hcl)));
    hb.register_helper("xml", Box::new(one("xml", xml)));
    // A list only (a lone string is refused, not split into no words); the
    // flag defaults to none.
    handlebars::handlebars_helper!(words: |list: array, {flag: str = ""}| {
        let texts: Vec<String> = list.iter().map(value_text).collect();
        sh_words(texts.iter().map(String::as_str), Some(flag).filter(|f| !f.is_empty()))
    });
    hb.register_helper("sh_words", Box::new(words));
    hb.register_helper(
        "concat",
        Box::new(
            |h: &Helper<'_>,
             _: &Handlebars<'_>,
             _: &Context,
             _: &mut RenderContext<'_, '_>,
             out: &mut dyn Output|
             -> HelperResult {
                let s: String = h.params().iter().map(|p| value_text(p.value())).collect();
                out.write(&s)?;
                Ok(())
            },
        ),
    );
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_is_inert() {
        assert_eq!(sh("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's $(id)`x`;\n"), "'it'\\''s $(id)`x`;\n'");
        assert_eq!(sh("$6$salt$hash"), "'$6$salt$hash'");
    }

    #[test]
    fn shell_quoting_round_trips_through_sh() {
        for s in [
            "a b",
            "it's",
            "$(touch /tmp/x)",
            "`id`",
            "a;b",
            "x\ny",
            "\\",
            "\"q\"",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn shell_words_join_quoted_items() {
        assert_eq!(sh_words([], None), "");
        assert_eq!(sh_words(["a"], None), "a");
        assert_eq!(sh_words(["a b", "c", ""], None), "'a b' c ''");
        assert_eq!(
            sh_words(["/x:/y", "a'b"], Some("-v")),
            "-v /x:/y -v 'a'\\''b'"
        );
    }

    #[test]
    fn shell_words_helper_matches_each_join() {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        register(&mut hb);
        let data = serde_json::json!({"l": ["a b", "c", "it's"], "e": []});
        for (helper, each) in [
            (
                "({{sh_words l}})",
                "({{#each l}}{{sh this}}{{#unless @last}} {{/unless}}{{/each}})",
            ),
            (
                "({{sh_words e}})",
                "({{#each e}}{{sh this}}{{#unless @last}} {{/unless}}{{/each}})",
            ),
            (
                "({{sh_words l flag=\"-v\"}})",
                "({{#each l}}-v {{sh this}}{{#unless @last}} {{/unless}}{{/each}})",
            ),
        ] {
            let a = hb.render_template(helper, &data).expect("helper renders");
            let b = hb.render_template(each, &data).expect("each renders");
            assert_eq!(a, b, "{helper}");
        }
        assert!(hb.render_template("{{sh_words l.0}}", &data).is_err());
    }

    #[test]
    fn other_languages() {
        assert_eq!(systemd("a%b\"c\\"), r#""a%%b\"c\\""#);
        assert_eq!(ruby(r"it's \"), r"'it\'s \\'");
        assert_eq!(hcl("${x} %{y}\n"), r#""$${x} %%{y}\n""#);
        assert_eq!(yaml("a: b\n"), r#""a: b\n""#);
        assert_eq!(json("\u{7f}\u{2028}"), "\"\u{7f}\u{2028}\"");
        assert_eq!(xml("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
    }

    /// Found by the YAML property: PyYAML refuses a raw DEL (and U+FFFE)
    /// even in double quotes ("special characters are not allowed") and folds
    /// a raw NEL into a space, as it does a line feed; YAML 1.1 counts LS and
    /// PS as line breaks too.
    #[test]
    fn yaml_escapes_what_json_leaves_raw() {
        assert_eq!(yaml("\u{7f}"), r#""\u007F""#);
        assert_eq!(
            yaml("a\u{85}b\u{2028}\u{2029}"),
            r#""a\u0085b\u2028\u2029""#
        );
        assert_eq!(
            yaml("\u{9f}\u{feff}\u{fffe}\r\u{1}"),
            r#""\u009F\uFEFF\uFFFE\u000D\u0001""#
        );
        assert_eq!(yaml("é😀\t\"\\"), r#""é😀\t\"\\""#);
    }

    /// Found by the HCL property: `json()` writes a backspace as `\b`, which
    /// Packer refuses ("The symbol "b" is not a valid escape sequence
    /// selector"); so is `\f`.
    #[test]
    fn hcl_has_no_json_only_escapes() {
        assert_eq!(hcl("\u{8}"), r#""\u0008""#);
        assert_eq!(
            hcl("\u{c}\u{1b}\u{7f}\u{85}"),
            r#""\u000C\u001B\u007F\u0085""#
        );
        assert_eq!(hcl("$${x} %%{y} $ % {"), r#""$$${x} %%%{y} $ % {""#);
    }

    /// Found by the systemd property: a raw line feed in the value ended the
    /// `Environment=` line ("Invalid syntax, ignoring"), and the rest of the
    /// value became a line of its own.
    #[test]
    fn systemd_values_stay_on_one_line() {
        assert_eq!(systemd("a\nb\r\tc\u{1b}\u{7f}"), r#""a\nb\r\tc\x1b\x7f""#);
    }

    /// Found by the Ruby property: `'a<CR><LF>b'` is `"a\nb"` to Ruby.
    #[test]
    fn ruby_keeps_carriage_returns() {
        assert_eq!(
            ruby("\r\n"),
            r#"'' "\r" '
'"#
        );
        assert_eq!(ruby("a\r'\\"), r#"'a' "\r" '\'\\'"#);
    }
}
