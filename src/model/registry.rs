//! The registry part of the appliance: which config file and paths the
//! chosen distribution version uses, TLS material (generated or read from
//! files), htpasswd users, the storage backend and the pull-through cache.

mod keys;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{Backend, BadInput, Config, LogFormat, LogLevel, Problem, TlsMode};
use crate::model::secrets::{SecretStore, Slot};
use keys::key_matches;

pub const CERTS_DIR: &str = "/opt/docker/certs";
pub const AUTH_DIR: &str = "/opt/docker/auth";
pub const CA_ANCHOR: &str = "/etc/pki/ca-trust/source/anchors/regbake-ca.crt";
/// Written by regbake-gc for the length of a collect, read by the registry
/// unit: while it exists the registry runs read-only.
pub const GC_MAINTENANCE_ENV: &str = "/run/regbake/registry-maintenance.env";

#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    pub image: String,
    pub major: u8,
    pub port: u16,
    pub delete: bool,
    pub preload: bool,
    pub container_name: String,
    pub listen: String,
    pub log_level: &'static str,
    pub log_format: &'static str,
    pub http_secret: String,
    pub upload_purge: bool,
    pub upload_purge_age: String,
    pub metrics: bool,
    pub metrics_port: u32,
    pub tls: bool,
    pub tls_cert: String,
    pub tls_key: String,
    /// A CA certificate is known (generated, or given with tls.mode = "files").
    pub tls_ca: bool,
    /// Where the registry reads its config: /etc/docker/registry (2.x) or
    /// /etc/distribution (3.x).
    pub config_dir: &'static str,
    pub certs_dir: &'static str,
    pub auth: bool,
    pub auth_dir: &'static str,
    pub htpasswd_path: String,
    pub s3: Option<S3>,
    pub mirror: Option<Mirror>,
    /// The container's `-v` mounts (`HOST:CONTAINER[:ro]`): the registry's
    /// and the garbage collection's.
    pub mounts: Vec<String>,
    /// Garbage collection on a timer; `None` when disabled.
    pub gc: Option<Gc>,
    /// While this file exists the registry starts read-only (regbake-gc).
    pub maintenance_env: &'static str,
    /// The one SELinux MCS level (`s0:cN,cM`) of every container that
    /// touches the data, the registry's and the collect's: docker would give
    /// each new container a random one, and the next could not read what
    /// the last one wrote (container_t is MCS-constrained).
    pub selinux_level: String,
    /// `HOST:PORT` as docker clients name it (certs.d directory name).
    pub address: String,
    /// What the appliance itself curls to see the registry is up.
    pub local_url: String,
    pub curl_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct S3 {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    /// Written only for 3.x, which needs it for S3-compatible endpoints
    /// (2.x forces path style itself when an endpoint is set).
    pub force_path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    pub root_directory: String,
    /// Clients cannot follow redirects to a private endpoint.
    pub redirect_disable: bool,
}

/// `[registry.gc]` resolved: what regbake-gc and its timer run.
#[derive(Debug, Clone, Serialize)]
pub struct Gc {
    /// The timer's `OnCalendar` value.
    pub schedule: String,
    /// The arguments of `registry` in the collect's container.
    pub args: Vec<String>,
    pub container_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mirror {
    pub remote_url: String,
    pub username: String,
    pub password: String,
}

/// The server's TLS files as installed on the appliance.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: String,
    pub key: String,
    pub ca: Option<String>,
}

/// What of the registry becomes overlay files besides its config.
#[derive(Debug, Clone, Default)]
pub struct RegistryFiles {
    pub tls: Option<ServerTls>,
    pub htpasswd: Option<String>,
    /// The `password_hash`es given in the config, for `check` to weigh.
    pub supplied_hashes: Vec<SuppliedHash>,
}

/// A bcrypt hash as the config gave it: its field, user and cost.
#[derive(Debug, Clone)]
pub struct SuppliedHash {
    pub path: String,
    pub user: String,
    pub cost: u32,
}

/// The cost of a bcrypt hash, if it is one.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.parse::<bcrypt::HashParts>().ok().map(|p| p.get_cost())
}

fn problem(path: impl Into<String>, value: &str, expected: impl Into<String>) -> anyhow::Error {
    BadInput::Invalid(vec![Problem::new(path, value, expected)]).into()
}

/// A secret from the environment variable named by a config field.
fn env_secret(field: &str, var: &str) -> Result<String> {
    let why = match std::env::var(var) {
        Ok(v) if !v.is_empty() && !v.chars().any(char::is_control) => return Ok(v),
        Ok(v) if v.is_empty() => format!("environment variable {var} is empty"),
        Ok(_) => format!("environment variable {var} holds control characters"),
        Err(std::env::VarError::NotUnicode(_)) => format!(
            "environment variable {var} is set but not valid UTF-8 (it must hold the secret as text)"
        ),
        Err(std::env::VarError::NotPresent) => {
            format!("environment variable {var} is not set (it must hold the secret at render time)")
        }
    };
    Err(problem(field, var, why))
}

/// `[registry.tls]` resolved: the server's certificate for `hostname` (and
/// `static_ip`), none with TLS off.
fn resolve_tls(
    c: &Config,
    hostname: &str,
    static_ip: Option<&str>,
    store: &mut SecretStore,
    slot: Slot<'_>,
) -> Result<Option<ServerTls>> {
    let t = &c.registry.tls;
    match t.mode {
        TlsMode::Off => Ok(None),
        TlsMode::Generate => {
            let mut sans = vec![hostname.to_string()];
            if let Some(ip) = static_ip {
                sans.push(ip.to_string());
            }
            for s in &t.sans {
                if !sans.contains(s) {
                    sans.push(s.clone());
                }
            }
            let (ca, server) = store.tls(slot, hostname, &sans, t.days)?;
            Ok(Some(ServerTls {
                cert: server.cert,
                key: server.key,
                ca: Some(ca.cert),
            }))
        }
        TlsMode::Files => Ok(Some(tls_files(c)?)),
    }
}

fn read_pem(field: &str, path: &str) -> Result<String> {
    let p = crate::config::expand_home(path);
    // A certificate chain or a key: 1 MiB is plenty.
    let text = crate::util::fsx::read_text(&p, 1 << 20)
        .map_err(|e| problem(field, path, format!("cannot read {}: {e}", p.display())))?;
    if !text.contains("-----BEGIN ") {
        return Err(problem(field, path, "expected a PEM file"));
    }
    Ok(text)
}

/// `tls.mode = "files"`: the certificate must parse and match the key.
fn tls_files(c: &Config) -> Result<ServerTls> {
    let t = &c.registry.tls;
    let cert = read_pem("registry.tls.cert", &t.cert)?;
    let key = read_pem("registry.tls.key", &t.key)?;
    let ca = if t.ca.is_empty() {
        None
    } else {
        let ca = read_pem("registry.tls.ca", &t.ca)?;
        x509_parser::pem::parse_x509_pem(ca.as_bytes())
            .ok()
            .and_then(|(_, pem)| pem.parse_x509().ok().map(|_| ()))
            .ok_or_else(|| problem("registry.tls.ca", &t.ca, "expected a PEM CA certificate"))?;
        Some(ca)
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes())
        .map_err(|_| problem("registry.tls.cert", &t.cert, "expected a PEM certificate"))?;
    let x509 = pem
        .parse_x509()
        .map_err(|_| problem("registry.tls.cert", &t.cert, "expected a PEM certificate"))?;
    let matches = key_matches(&x509, &key).map_err(|e| problem("registry.tls.key", &t.key, e))?;
    if !matches {
        return Err(problem(
            "registry.tls.key",
            &t.key,
            format!("the key does not belong to the certificate {}", t.cert),
        ));
    }
    Ok(ServerTls { cert, key, ca })
}

/// The longest password bcrypt reads whole, in bytes.
const BCRYPT_MAX: usize = 72;

/// htpasswd lines; users given by env var reuse their stored hash while it
/// still matches and has the configured cost, so re-renders are stable, a
/// changed cost takes effect, and the plain text is never kept.
fn htpasswd(c: &Config, store: &SecretStore) -> Result<Option<String>> {
    let users = &c.registry.auth.users;
    if users.is_empty() {
        return Ok(None);
    }
    let cost = c.registry.auth.bcrypt_cost;
    let previous: Vec<(&str, &str)> = store
        .htpasswd()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .collect();
    let mut out = String::new();
    for (i, u) in users.iter().enumerate() {
        let hash = if u.password_hash.is_empty() {
            let field = format!("registry.auth.users[{i}].password_env");
            let password = env_secret(&field, &u.password_env)?;
            // bcrypt reads 72 bytes and ignores the rest (Go's, which the
            // registry uses, refuses to hash more): a new password that
            // differs only after byte 72 would silently be the old one.
            if password.len() > BCRYPT_MAX {
                return Err(problem(
                    &field,
                    &u.password_env,
                    format!(
                        "environment variable {} holds {} bytes; bcrypt (the only hash the registry accepts) reads the first {BCRYPT_MAX} and ignores the rest, so a password changed after byte {BCRYPT_MAX} would not change: use at most {BCRYPT_MAX} bytes",
                        u.password_env,
                        password.len()
                    ),
                ));
            }
            match previous.iter().find(|(n, _)| *n == u.name) {
                // The cheap test first: a hash of another cost is not verified.
                Some((_, h))
                    if bcrypt_cost(h) == Some(cost)
                        && bcrypt::verify(&password, h).unwrap_or(false) =>
                {
                    h.to_string()
                }
                _ => bcrypt::hash(&password, cost)
                    .with_context(|| format!("hashing the password of {}", u.name))?,
            }
        } else {
            u.password_hash.clone()
        };
        out.push_str(&format!("{}:{hash}\n", u.name));
    }
    Ok(Some(out))
}

/// The fixed MCS level of the appliance `name`: two categories of the 1024
/// docker picks from, derived from the name so that every render of the
/// appliance keeps it (a change is harmless: regbake-install relabels the
/// data once whenever the level it last applied differs).
fn mcs_level(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("regbake selinux level {name}").as_bytes());
    let a = u16::from_be_bytes([h[0], h[1]]) % 1024;
    let mut b = u16::from_be_bytes([h[2], h[3]]) % 1024;
    if a == b {
        b = (b + 1) % 1024;
    }
    format!("s0:c{},c{}", a.min(b), a.max(b))
}

/// The registry of the appliance `hostname` (with `static_ip`), its data
/// in `registry_dir`, its secrets from (or made into) `store`; `slot` says
/// whose server certificate it is.
pub fn resolve(
    c: &Config,
    hostname: &str,
    static_ip: Option<&str>,
    registry_dir: &str,
    store: &mut SecretStore,
    slot: Slot<'_>,
) -> Result<(Registry, RegistryFiles)> {
    let r = &c.registry;
    let port = r.effective_port();
    let major = r.effective_major();
    let tls_on = r.tls.mode != TlsMode::Off;

    let http_secret = if r.http_secret_env.is_empty() {
        store.http_secret()?
    } else {
        env_secret("registry.http_secret_env", &r.http_secret_env)?
    };
    let tls = resolve_tls(c, hostname, static_ip, store, slot)?;
    let tls_ca = tls.as_ref().is_some_and(|t| t.ca.is_some());
    let s3 = resolve_s3(c, major)?;
    let mirror = resolve_mirror(c)?;
    let config_dir = if major >= 3 {
        "/etc/distribution"
    } else {
        "/etc/docker/registry"
    };
    let (address, local_url, curl_args) = local_check(hostname, port, tls_on, tls_ca);

    let mut registry = Registry {
        image: r.image.clone(),
        major,
        port,
        delete: r.delete,
        preload: r.preload,
        container_name: r.container_name.clone(),
        listen: format!(":{port}"),
        log_level: match r.log_level {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        },
        log_format: match r.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
            LogFormat::Logstash => "logstash",
        },
        http_secret,
        upload_purge: !r.upload_purge_age.is_empty(),
        upload_purge_age: r.upload_purge_age.clone(),
        metrics: r.metrics,
        metrics_port: r.metrics_port,
        tls: tls_on,
        tls_cert: format!("{CERTS_DIR}/registry.crt"),
        tls_key: format!("{CERTS_DIR}/registry.key"),
        tls_ca,
        config_dir,
        certs_dir: CERTS_DIR,
        auth: !r.auth.users.is_empty(),
        auth_dir: AUTH_DIR,
        htpasswd_path: format!("{AUTH_DIR}/htpasswd"),
        s3,
        mirror,
        mounts: vec![],
        gc: resolve_gc(c, config_dir),
        maintenance_env: GC_MAINTENANCE_ENV,
        selinux_level: mcs_level(&c.appliance.name),
        address,
        local_url,
        curl_args,
    };
    registry.mounts = registry.container_mounts(registry_dir);
    let files = resolve_files(c, store, tls)?;
    Ok((registry, files))
}

/// `[registry.storage]` resolved: S3's settings and its keys from the
/// environment; `None` for the filesystem.
fn resolve_s3(c: &Config, major: u8) -> Result<Option<S3>> {
    let s = &c.registry.storage;
    if s.backend != Backend::S3 {
        return Ok(None);
    }
    let (access_key, secret_key) = if s.access_key_env.is_empty() {
        (String::new(), String::new())
    } else {
        (
            env_secret("registry.storage.access_key_env", &s.access_key_env)?,
            env_secret("registry.storage.secret_key_env", &s.secret_key_env)?,
        )
    };
    Ok(Some(S3 {
        bucket: s.bucket.clone(),
        region: s.region.clone(),
        endpoint: s.endpoint.clone(),
        force_path_style: major >= 3 && s.force_path_style && !s.endpoint.is_empty(),
        access_key,
        secret_key,
        root_directory: s.root_directory.clone(),
        redirect_disable: !s.endpoint.is_empty(),
    }))
}

/// `[registry.mirror]` resolved, its credentials from the environment.
fn resolve_mirror(c: &Config) -> Result<Option<Mirror>> {
    let Some(m) = &c.registry.mirror else {
        return Ok(None);
    };
    let (username, password) = if m.username_env.is_empty() {
        (String::new(), String::new())
    } else {
        (
            env_secret("registry.mirror.username_env", &m.username_env)?,
            env_secret("registry.mirror.password_env", &m.password_env)?,
        )
    };
    Ok(Some(Mirror {
        remote_url: m.remote_url.clone(),
        username,
        password,
    }))
}

/// `[registry.gc]` resolved; the collect reads the config in `config_dir`.
fn resolve_gc(c: &Config, config_dir: &str) -> Option<Gc> {
    let r = &c.registry;
    r.gc.enabled.then(|| {
        let mut args = vec!["garbage-collect".to_string()];
        if r.gc.delete_untagged {
            args.push("--delete-untagged".into());
        }
        args.push(format!("{config_dir}/config.yml"));
        Gc {
            schedule: r.gc.schedule.clone(),
            args,
            container_name: format!("{}-gc", r.container_name),
        }
    })
}

/// How the appliance itself sees its registry is up: the `HOST:PORT`
/// address, the URL it curls and curl's arguments (with TLS, the name
/// resolved to the loopback and the CA when one is known).
fn local_check(
    hostname: &str,
    port: u16,
    tls_on: bool,
    tls_ca: bool,
) -> (String, String, Vec<String>) {
    let address = format!("{hostname}:{port}");
    if !tls_on {
        return (address, format!("http://127.0.0.1:{port}/v2/"), vec![]);
    }
    let mut args = vec![];
    if tls_ca {
        args.extend(["--cacert".to_string(), format!("{CERTS_DIR}/ca.crt")]);
    }
    args.extend(["--resolve".to_string(), format!("{address}:127.0.0.1")]);
    let url = format!("https://{address}/v2/");
    (address, url, args)
}

/// The registry's overlay files besides its config: `tls`, the htpasswd
/// (kept in `store` for the next render) and the supplied hashes.
fn resolve_files(
    c: &Config,
    store: &mut SecretStore,
    tls: Option<ServerTls>,
) -> Result<RegistryFiles> {
    let htpasswd = htpasswd(c, store)?;
    if let Some(h) = &htpasswd {
        store.set_htpasswd(h.clone());
    }
    let supplied_hashes = c
        .registry
        .auth
        .users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            Some(SuppliedHash {
                path: format!("registry.auth.users[{i}].password_hash"),
                user: u.name.clone(),
                cost: bcrypt_cost(&u.password_hash)?,
            })
        })
        .collect();
    Ok(RegistryFiles {
        tls,
        htpasswd,
        supplied_hashes,
    })
}

impl Registry {
    /// Overlay files that hold secrets (installed 0600).
    pub fn secret_files(&self) -> Vec<String> {
        let mut v = vec![format!("{}/config.yml", self.config_dir)];
        if self.tls {
            v.push(self.tls_key.clone());
        }
        if self.auth {
            v.push(self.htpasswd_path.clone());
        }
        v
    }

    /// The host directories the container mounts besides its data.
    pub fn mounted_dirs(&self) -> impl Iterator<Item = &'static str> {
        [
            Some(self.config_dir),
            self.tls.then_some(self.certs_dir),
            self.auth.then_some(self.auth_dir),
        ]
        .into_iter()
        .flatten()
    }

    /// The container's `-v` mounts: the data in `registry_dir` (on the host)
    /// at `/var/lib/registry`, the other directories read-only at their
    /// own paths.
    fn container_mounts(&self, registry_dir: &str) -> Vec<String> {
        let mut v = vec![format!("{registry_dir}:/var/lib/registry")];
        v.extend(self.mounted_dirs().map(|d| format!("{d}:{d}:ro")));
        v
    }

    /// Files `regbake-uninstall` removes besides the units and firstboot.
    pub fn uninstall_files(&self) -> Vec<String> {
        let mut v = vec![
            format!("{}/config.yml", self.config_dir),
            "/etc/firewalld/zones/public.xml".to_string(),
        ];
        if self.tls {
            v.extend([self.tls_key.clone(), self.tls_cert.clone()]);
        }
        if self.tls_ca {
            v.extend([
                format!("{CERTS_DIR}/ca.crt"),
                CA_ANCHOR.to_string(),
                format!("/etc/docker/certs.d/{}/ca.crt", self.address),
            ]);
        }
        if self.auth {
            v.push(self.htpasswd_path.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::mcs_level;

    #[test]
    fn mcs_level_is_two_sorted_distinct_categories_kept_per_name() {
        for name in ["registry", "reg1", "a", "x-y-z"] {
            let level = mcs_level(name);
            assert_eq!(level, mcs_level(name), "the level of {name} changed");
            let (a, b) = level
                .strip_prefix("s0:c")
                .and_then(|r| r.split_once(",c"))
                .expect("s0:cN,cM");
            let (a, b): (u16, u16) = (a.parse().expect("N"), b.parse().expect("M"));
            assert!(a < b && b < 1024, "{level}");
        }
        assert_ne!(mcs_level("registry"), mcs_level("registry2"));
    }
}
