//! `regbake probe`'s arguments and their value parsers.

use std::path::PathBuf;

use url::Url;

use crate::util::Format;

/// `regbake probe`: what to ask of which registry.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Registry URL: http://HOST:PORT or https://HOST:PORT
    #[arg(value_parser = UrlParser)]
    pub url: url::Url,
    /// Trust only this CA certificate (PEM) for https
    #[arg(long, value_name = "PEM", conflicts_with = "insecure", value_parser = parse_ca)]
    pub ca: Option<PathBuf>,
    /// Do not verify the TLS certificate (throwaway test registries only)
    #[arg(long)]
    pub insecure: bool,
    /// User name for Basic auth (the password comes from --password-env)
    #[arg(long, value_name = "USER", requires = "password_env")]
    pub username: Option<String>,
    /// Name of the environment variable holding the password
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,
    /// Repository for the probe image
    #[arg(long, value_name = "NAME", default_value = "regbake-probe", value_parser = parse_repo)]
    pub repo: String,
    /// Tag for the probe image
    #[arg(long, value_name = "TAG", default_value = "probe", value_parser = parse_tag)]
    pub tag: String,
    /// Push a tiny image, pull it back, verify every digest, delete it
    #[arg(long)]
    pub push: bool,
    /// Keep the pushed image (skip the delete step)
    #[arg(long, requires = "push")]
    pub keep: bool,
    /// Size of the probe layer's content in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4096, requires = "push",
          value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub layer_size: u64,
    /// Also write the probe image as an OCI layout into DIR (for the bench)
    #[arg(long, value_name = "DIR", hide = true, requires = "push")]
    pub save_oci: Option<PathBuf>,
    /// Give up on a request not done within this long, its body included
    /// (the layer's get a second more per MiB)
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// clap's parser for the URL: [`parse_url`], with errors that never repeat
/// the value (it may hold a password).
#[derive(Debug, Clone, Copy)]
struct UrlParser;

impl clap::builder::TypedValueParser for UrlParser {
    type Value = Url;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Url, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidUtf8,
                "the registry URL is not valid UTF-8\n",
            )
        })?;
        parse_url(text).map_err(|why| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid registry URL: {why}\n"),
            )
        })
    }
}

/// The registry URL: scheme, host and port only. Errors do not quote the
/// URL, which may carry a password.
pub fn parse_url(s: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(s)
        .map_err(|e| format!("{e} (expected http://HOST:PORT or https://HOST:PORT)"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // In a URL they show in process lists, shell history and the lines
        // probe prints.
        return Err(
            "credentials in the URL are not accepted: give the user with \
             --username and the name of an environment variable holding the \
             password with --password-env"
                .into(),
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} not supported (expected http://HOST:PORT or https://HOST:PORT)",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("no host in the URL".into());
    }
    if !matches!(url.path(), "" | "/" | "/v2" | "/v2/") {
        return Err(format!(
            "path {:?}: the registry API lives at /v2/ of the host, give only scheme, host and port",
            url.path()
        ));
    }
    Ok(url)
}

/// clap value parser for a repository name: the Distribution grammar, as
/// the config's `registry.image` ([`crate::config::is_repository`]).
pub fn parse_repo(s: &str) -> std::result::Result<String, String> {
    if crate::config::is_repository(s) {
        Ok(s.to_string())
    } else {
        Err("expected lowercase [a-z0-9] components joined by '.', '_', '__' or '-', separated by '/'".into())
    }
}

/// The most a `--ca` file may hold: a CA bundle, not a disk image.
const MAX_CA: u64 = 1 << 20;

/// clap value parser for `--ca`: a regular file of at most 1 MiB, looked at
/// without blocking (a FIFO is refused at once, `/dev/zero` never read). A
/// missing or unreadable file is said when it is read, as before.
fn parse_ca(s: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match crate::util::fsx::open_regular(&path, MAX_CA) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(format!(
            "{e}; expected a PEM CA certificate file of at most 1 MiB"
        )),
        _ => Ok(path),
    }
}

/// clap value parser for a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn parse_tag(s: &str) -> std::result::Result<String, String> {
    if crate::config::is_tag(s) {
        Ok(s.to_string())
    } else {
        Err("expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers() {
        assert!(parse_url("http://127.0.0.1:5000").is_ok());
        assert!(parse_url("https://reg.local/").is_ok());
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("127.0.0.1:5000").is_err());
        assert!(parse_url("http://h/some/path").is_err());
        for with_credentials in ["https://u:pw@h", "https://u@h:5000/", "http://:pw@h/v2/"] {
            let err = parse_url(with_credentials).unwrap_err();
            assert!(
                err.contains("--password-env") && !err.contains("pw"),
                "{err}"
            );
        }
        assert!(parse_repo("regbake-probe").is_ok());
        assert!(parse_repo("a/b.c/d__e").is_ok());
        assert!(parse_repo("Upper").is_err());
        assert!(parse_repo("a//b").is_err());
        assert!(parse_repo("-a").is_err());
        assert!(parse_repo("a-").is_err());
        assert!(parse_tag("v1.0_x-y").is_ok());
        assert!(parse_tag(".x").is_err());
    }
}
