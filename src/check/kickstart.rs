//! Kickstarts: `ksvalidator`, then `bash -n` and shellcheck on each of the
//! `%pre`/`%post` scripts. The per-host kickstarts of `kickstart
//! --inventory` come by the thousand and differ mostly in host values, so
//! they are grouped by shape ([`shape`]): the first of each shape is
//! validated in full, every other one checked for structure, and its shape
//! equal to that one's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;

use super::outcome::Outcome;
use super::runner::Runner;
use crate::bake::tools::Cmd;

/// The check each per-host kickstart gets, the first of a shape too.
pub(super) const STRUCTURE: &str = "ks structure";

/// `ksvalidator`, then `bash -n` and shellcheck on each of its %pre/%post
/// scripts (shown as `ks.cfg:%pre`, `ks.cfg:%post`, …), whose copies are
/// written to the private `scratch` dir.
pub(super) fn check_kickstart(r: &mut Runner<'_>, ks: &Path, scratch: &Path) -> Result<()> {
    let text = std::fs::read_to_string(ks).with_context(|| format!("reading {}", ks.display()))?;
    let k = ks.to_path_buf();
    let version = ks_version(&text);
    r.run("ksvalidator", ks, "ksvalidator", false, |t| {
        Cmd::new(t).args(["-v", version]).arg(k)
    });
    let name = ks
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = ks
        .parent()
        .map(|p| p.to_string_lossy().replace('/', "_"))
        .unwrap_or_default();
    for (kind, script) in kickstart_scripts(&text) {
        crate::util::interrupt::check()?;
        // Two kickstarts may share a file name (kickstart/ and packer/http/).
        let p = scratch.join(format!("{dir}_{name}.{kind}.sh"));
        crate::util::fsx::write_private(&p, script.as_bytes())?;
        r.shell(&ks.with_file_name(format!("{name}:%{kind}")), &p);
    }
    Ok(())
}

/// The pykickstart handler a kickstart names on its first line
/// (`#version=RHEL9`), as anaconda reads it; RHEL7 when it names none.
fn ks_version(text: &str) -> &str {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("#version="))
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("RHEL7")
}

/// The per-host kickstarts `hosts`: each checked for structure; the first
/// of each shape validated in full ([`check_kickstart`]), the others
/// reported as like it. Shapes are worked out on every core, a batch at a
/// time (100,000 kickstarts are some GB to read).
pub(super) fn check_hosts(r: &mut Runner<'_>, hosts: &[PathBuf], scratch: &Path) -> Result<()> {
    const BATCH: usize = 1024;
    let mut shapes: HashMap<String, PathBuf> = HashMap::new();
    for batch in hosts.chunks(BATCH) {
        crate::util::interrupt::check()?;
        for (ks, key) in batch.iter().zip(shapes_of(batch)?) {
            match key {
                Err(why) => r.push(STRUCTURE, ks, Outcome::Failed(why)),
                Ok(key) => {
                    if let Some(first) = shapes.get(&key) {
                        let like = r.rel(first);
                        r.push_like(STRUCTURE, ks, Outcome::Passed, like);
                    } else {
                        r.push(STRUCTURE, ks, Outcome::Passed);
                        check_kickstart(r, ks, scratch)?;
                        shapes.insert(key, ks.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The [`shape`] of each file, in order, read and worked out on every core.
fn shapes_of(files: &[PathBuf]) -> Result<Vec<Result<String, String>>> {
    let one = |ks: &PathBuf| {
        let text = match std::fs::read(ks) {
            Ok(b) => String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()),
            Err(e) => Err(format!("reading it: {e}")),
        };
        text.and_then(|t| shape(&t))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut all = Vec::with_capacity(files.len());
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a kickstart check thread panicked"))?,
            );
        }
        Ok(all)
    })
}

/// The sections a kickstart may hold, each closed by `%end`.
const SECTIONS: &[&str] = &[
    "%pre",
    "%pre-install",
    "%post",
    "%onerror",
    "%traceback",
    "%packages",
    "%addon",
    "%anaconda",
];

/// The sections that hold a script.
const SCRIPTS: &[&str] = &["%pre", "%pre-install", "%post", "%onerror", "%traceback"];

/// The shape of a kickstart: the text as `ksvalidator`, `bash -n` and
/// shellcheck see it, less what varies from host to host and none of them
/// judges. Dropped are comments and blank lines outside the sections, the
/// values of `--option=value` in commands (host name, addresses, MAC,
/// disk; validated by regbake's own config checks), and the bodies of
/// quoted here-documents in scripts (data, not code: the overlay). The
/// scripts are kept verbatim otherwise, so two kickstarts of one shape get
/// the same results from the three validators, as far as they look.
///
/// An error says what makes the file malformed: a section not closed by
/// `%end` or opened inside another, an `%end` outside one, a here-document
/// not closed inside its section, an overlay that is not base64.
pub fn shape(ks: &str) -> Result<String, String> {
    let mut key = String::with_capacity(ks.len() / 2);
    let mut section: Option<(&str, usize)> = None;
    // Word, opening line, whether the body is base64, its text so far.
    let mut heredoc: Option<(&str, usize, bool, String)> = None;
    for (i, line) in ks.lines().enumerate() {
        let n = i + 1;
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((word, start, b64, body)) = heredoc.as_mut() {
            if first == "%end" {
                return Err(format!(
                    "line {n}: %end inside the here-document {word} of line {start} \
                     (anaconda would end the section there)"
                ));
            }
            if line != *word {
                if *b64 {
                    body.push_str(line.trim());
                }
                continue;
            }
            if *b64 {
                base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|e| {
                        format!("lines {start}-{n}: the here-document {word} is not base64: {e}")
                    })?;
            }
            key.push_str("<here-document>\n");
            key.push_str(line);
            key.push('\n');
            heredoc = None;
            continue;
        }
        match section {
            Some((name, start)) => {
                if first == "%end" {
                    section = None;
                } else if SECTIONS.contains(&first) {
                    return Err(format!(
                        "line {n}: {first} inside {name} of line {start}, which has no %end"
                    ));
                } else if SCRIPTS.contains(&name) {
                    if let Some(word) = quoted_heredoc(line) {
                        let b64 = line.contains("base64 -d") || line.contains("base64 --decode");
                        heredoc = Some((word, n, b64, String::new()));
                    }
                }
                key.push_str(line);
            }
            None if first == "%end" => return Err(format!("line {n}: %end outside a section")),
            None if SECTIONS.contains(&first) => {
                section = Some((first, n));
                key.push_str(line);
            }
            None if first.is_empty() || first.starts_with('#') => continue,
            None => {
                // A command, or %include and the like: options without values.
                for (j, token) in line.split_whitespace().enumerate() {
                    if j > 0 {
                        key.push(' ');
                    }
                    match token.split_once('=') {
                        Some((opt, _)) if opt.starts_with("--") => {
                            key.push_str(opt);
                            key.push('=');
                        }
                        _ => key.push_str(token),
                    }
                }
            }
        }
        key.push('\n');
    }
    if let Some((word, start, ..)) = heredoc {
        return Err(format!(
            "the here-document {word} of line {start} is not closed"
        ));
    }
    if let Some((name, start)) = section {
        return Err(format!("{name} of line {start} has no %end"));
    }
    Ok(key)
}

/// The word of a quoted here-document (`<<'WORD'`, `<<"WORD"`) that `line`
/// opens: its body is not expanded, so it is data to the shell.
fn quoted_heredoc(line: &str) -> Option<&str> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    let word = &rest[..rest.find(quote)?];
    (!word.is_empty()).then_some(word)
}

/// The shell scripts inside the kickstart's `%pre`/`%post … %end`
/// sections, in order, each with a name for its scratch file
/// (`pre`, `post`, `post2`, …).
pub fn kickstart_scripts(ks: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    let mut lines = ks.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = ["%pre", "%post"]
            .into_iter()
            .find(|k| line.split_whitespace().next() == Some(*k))
        else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "%end").collect();
        let kind = &kind[1..];
        let n = out.iter().filter(|(k, _)| k.starts_with(kind)).count();
        let name = if n == 0 {
            kind.to_string()
        } else {
            format!("{kind}{}", n + 1)
        };
        out.push((name, format!("#!/bin/bash\n{}\n", body.join("\n"))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_extracted_in_order() {
        let ks = "text\n%pre --erroronfail\necho a\n%end\n%packages\n@core\n%end\n\
                  %post --log=/x\necho hi\n%end\n%post\necho b\n%end\n%postfix\n";
        let got = kickstart_scripts(ks);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["pre", "post", "post2"]);
        assert_eq!(got[1].1, "#!/bin/bash\necho hi\n");
    }

    #[test]
    fn ksvalidator_gets_the_version_the_kickstart_names() {
        assert_eq!(ks_version("#version=RHEL9\ntext\n"), "RHEL9");
        assert_eq!(ks_version("#version=RHEL10\n"), "RHEL10");
        assert_eq!(ks_version("text\n#version=RHEL9\n"), "RHEL7");
        assert_eq!(ks_version("#version=RHEL9; rm -rf /\n"), "RHEL7");
    }

    fn host(name: &str, ip: &str, blob: &str) -> String {
        format!(
            "# {name}\nnetwork --bootproto=static --ip={ip} --hostname={name}\n\
             %packages\n@core\n%end\n%post --log=/root/x.log\nset -e\n\
             (base64 -d > /tmp/o) <<'DATA'\n{blob}\nDATA\necho done\n%end\n"
        )
    }

    #[test]
    fn hosts_differ_in_values_and_data_only() {
        let a = shape(&host("reg1", "192.0.2.1", "aGVsbG8=")).unwrap();
        let b = shape(&host("reg2.example.com", "10.0.0.7", "d29ybGQhIQ==")).unwrap();
        assert_eq!(a, b);
        assert!(!a.contains("reg1") && !a.contains("aGVsbG8="), "{a}");
        // A changed script line, or another set of options, is another shape.
        let script = host("reg1", "192.0.2.1", "aGVsbG8=").replace("echo done", "echo Done");
        assert_ne!(shape(&script).unwrap(), a);
        let dhcp = host("reg1", "192.0.2.1", "aGVsbG8=")
            .replace("--bootproto=static --ip=192.0.2.1", "--bootproto=dhcp");
        assert_ne!(shape(&dhcp).unwrap(), a);
    }

    #[test]
    fn malformed_kickstarts_are_named() {
        let ok = host("reg1", "192.0.2.1", "aGVsbG8=");
        let cut = &ok[..ok.find("DATA\necho").unwrap()];
        assert!(shape(cut)
            .unwrap_err()
            .contains("DATA of line 8 is not closed"));
        let no_end = ok.trim_end().trim_end_matches("%end");
        assert!(shape(no_end)
            .unwrap_err()
            .contains("%post of line 6 has no %end"));
        let bad = host("reg1", "192.0.2.1", "not*base64");
        assert!(shape(&bad).unwrap_err().contains("is not base64"));
        let early = ok.replace("aGVsbG8=", "aGVsbG8=\n%end");
        assert!(shape(&early)
            .unwrap_err()
            .contains("%end inside the here-document"));
        assert!(shape("%end\n")
            .unwrap_err()
            .contains("line 1: %end outside"));
        let nested = ok.replace("set -e", "%packages");
        assert!(shape(&nested)
            .unwrap_err()
            .contains("%packages inside %post of line 6"));
    }
}
