//! The INI lines of an inventory: section headers, host lines split like a
//! shell would, names.

/// A `key=value` as written, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub value: String,
    pub line: usize,
}

pub(super) enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

pub(super) fn parse_header(s: &str) -> Result<Section, String> {
    // A trailing comment is allowed after the closing bracket.
    let Some(close) = s.find(']') else {
        return Err(format!(
            "unterminated section header {s:?}: expected [group], [group:vars] or [group:children]"
        ));
    };
    let after = s[close + 1..].trim();
    if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
        return Err(format!("unexpected text {after:?} after section header"));
    }
    let inner = &s[1..close];
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if !is_group_name(name) {
        return Err(format!(
            "bad group name {name:?} in section header: expected letters, digits, '_', '-' and '.'"
        ));
    }
    match kind {
        None => Ok(Section::Hosts(name.into())),
        Some("vars") => Ok(Section::Vars(name.into())),
        Some("children") => Ok(Section::Children(name.into())),
        Some(k) => Err(format!(
            "unknown section type [{name}:{k}]: expected :vars or :children"
        )),
    }
}

pub(super) fn is_group_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

pub(super) fn is_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// `host:2222` names `host` (Ansible's port shorthand).
pub(super) fn strip_port(s: &str) -> &str {
    match s.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => s,
    }
}

/// Host names become file names (`out/kickstart/HOST.ks`) and URL paths.
pub(super) fn check_host_name(s: &str) -> Result<(), String> {
    // Dot-separated labels: `reg..1.ks` or `reg2..ks` would be names the
    // kickstart server refuses to serve.
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"_-".contains(c))
        });
    if ok || s.contains('[') {
        Ok(())
    } else {
        Err(format!(
            "host name {s:?} is not a safe file name: expected dot-separated labels of letters, digits, '_' and '-', each starting with a letter or digit"
        ))
    }
}

/// Split a host line like a POSIX shell would (Ansible uses `shlex`):
/// whitespace separates words, quotes group, `#` at a word start comments.
pub(super) fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `[group:vars]` values: the rest of the line, without matching outer quotes.
pub(super) fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}
