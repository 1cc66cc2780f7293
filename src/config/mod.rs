//! The typed `regbake.toml` (version 1): serde types with defaults, loading,
//! and the separate validation pass in [`validate`].

pub mod boxes;
mod calendar;
mod distro;
mod error;
mod grammar;
pub mod inventory;
mod schema;
mod typed;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use error::{exit_code, show, BadInput, Problem, Shown};
pub(crate) use grammar::{check_ssh_public_key, is_box_name, is_version};
pub use grammar::{is_repository, is_tag, parse_mac};
pub use schema::*;
pub use typed::{Addressing, Disk, NetDevice, Parsed};
pub use validate::{validate, Valid};

/// The commented default config: what `regbake init` writes and what is used
/// when no config file exists.
pub const DEFAULT_TOML: &str = include_str!("../../examples/regbake.toml");

/// A config path with `~/` expanded (key files, TLS files).
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Where the config came from, for messages.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("embedded defaults"),
        }
    }
}

/// Parse TOML text into a [`Config`]; type errors name the dotted field path.
pub fn parse(text: &str) -> Result<Config, BadInput> {
    let de = toml::Deserializer::parse(text).map_err(|e| BadInput::Parse {
        path: "(toml)".into(),
        message: e.to_string().trim().to_string(),
    })?;
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        BadInput::Parse {
            path: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message,
        }
    })?;
    config.fill_distro_defaults();
    Ok(config)
}

/// The most a config may hold (one is a few KiB).
const MAX_CONFIG: u64 = 1 << 20;

/// The text of an input file given by `flag`: a FIFO, a device or a file
/// over `max` bytes is bad input (exit 2, saying what was `expected`), and
/// refused at once, before anything waits on it or reads it all; other
/// errors (missing, unreadable, not UTF-8) are "reading `what` PATH".
pub(crate) fn read_input(
    path: &Path,
    max: u64,
    flag: &str,
    expected: &str,
    what: &str,
) -> anyhow::Result<String> {
    match crate::util::fsx::read_text(path, max) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(BadInput::Arg(Problem::new(
            flag,
            path,
            format!("{e}; expected {expected}"),
        ))
        .into()),
        Err(e) => Err(e).with_context(|| format!("reading {what} {}", path.display())),
    }
}

/// Load the config and validate it: an explicit path must exist; without
/// one, `./regbake.toml` is used when present, else the embedded defaults.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Valid, Source)> {
    const CONFIG: &str = "a regbake.toml (a regular file of at most 1 MiB)";
    let (text, source) = match explicit {
        Some(p) => (
            read_input(p, MAX_CONFIG, "-c/--config", CONFIG, "config")?,
            Source::File(p.to_path_buf()),
        ),
        None if Path::new("regbake.toml").exists() => {
            let p = Path::new("regbake.toml");
            (
                read_input(p, MAX_CONFIG, "-c/--config", CONFIG, "config")?,
                Source::File(p.to_path_buf()),
            )
        }
        None => (DEFAULT_TOML.to_string(), Source::Embedded),
    };
    let valid = Valid::check(parse(&text)?).map_err(BadInput::Invalid)?;
    Ok((valid, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let c = parse(DEFAULT_TOML).expect("defaults parse");
        let v = Valid::check(c).expect("defaults validate");
        assert_eq!(v.config.registry.effective_port(), 5000);
        assert_eq!(v.parsed.disk, Disk::Auto);
    }

    #[test]
    fn unknown_key_names_its_section() {
        let err = parse("version = 1\n[registry]\nprot = 5000\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("registry"), "{msg}");
        assert!(msg.contains("prot"), "{msg}");
    }

    #[test]
    fn bad_enum_value_names_path_and_choices() {
        let err = parse("version = 1\n[registry.tls]\nmode = \"on\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("registry.tls.mode"), "{msg}");
        assert!(msg.contains("generate"), "{msg}");
    }
}
