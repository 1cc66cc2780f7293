//! Generated key material that must survive re-renders: the registry's http
//! secret, the TLS CA and server certificate, and the fallback SSH key pair.
//! They live in `out/secrets/` and `out/ssh/` (0600 files) and are read back
//! before each render, so a re-render never rotates them.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

pub const HTTP_SECRET: &str = "secrets/http_secret";
pub const CA_CERT: &str = "secrets/tls/ca.crt";
pub const CA_KEY: &str = "secrets/tls/ca.key";
pub const SERVER_CERT: &str = "secrets/tls/server.crt";
pub const SERVER_KEY: &str = "secrets/tls/server.key";
/// The SAN list the stored server certificate was made for, one per line.
pub const SERVER_SANS: &str = "secrets/tls/server.sans";
/// htpasswd as last rendered, so env-var passwords keep their bcrypt salt.
pub const HTPASSWD: &str = "secrets/htpasswd";
/// Per-host server certificates of an inventory render, by host name.
pub const HOSTS_DIR: &str = "secrets/tls/hosts";
pub const SSH_KEY: &str = "ssh/id_ed25519";
pub const SSH_PUB: &str = "ssh/id_ed25519.pub";
/// The key Packer logs in with during a bake; removed from the box at the end.
pub const PACKER_KEY: &str = "secrets/packer/id_ed25519";
pub const PACKER_PUB: &str = "secrets/packer/id_ed25519.pub";

#[derive(Debug, Clone)]
pub struct SshKeyPair {
    pub private_openssh: String,
    pub public_line: String,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
    pub sans: Vec<String>,
}

/// What a previous render left in the output directory.
#[derive(Debug, Default, Clone)]
pub struct Stored {
    pub http_secret: Option<String>,
    pub ssh: Option<SshKeyPair>,
    pub ca: Option<(String, String)>,
    pub server: Option<(String, String, Vec<String>)>,
    pub packer_ssh: Option<SshKeyPair>,
    pub htpasswd: Option<String>,
}

fn read_opt(out: &Path, rel: &str) -> Result<Option<String>> {
    let p = out.join(rel);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// A stored certificate, key and SAN list, if all three are there.
fn read_cert(out: &Path, paths: [&str; 3]) -> Result<Option<(String, String, Vec<String>)>> {
    Ok(
        match (
            read_opt(out, paths[0])?,
            read_opt(out, paths[1])?,
            read_opt(out, paths[2])?,
        ) {
            (Some(c), Some(k), Some(s)) => Some((c, k, s.lines().map(str::to_string).collect())),
            _ => None,
        },
    )
}

/// Where an inventory host's server certificate, key and SANs are kept.
pub fn host_paths(host: &str) -> [String; 3] {
    ["crt", "key", "sans"].map(|ext| format!("{HOSTS_DIR}/{host}.{ext}"))
}

/// The stored server certificate of an inventory host, to hand to
/// [`Stored::tls`] in place of the single-host one.
pub fn load_host_cert(out: &Path, host: &str) -> Result<Option<(String, String, Vec<String>)>> {
    let [c, k, s] = host_paths(host);
    read_cert(out, [&c, &k, &s])
}

/// The inventory hosts that have a stored certificate file.
pub fn hosts_with_certs(out: &Path) -> Result<std::collections::BTreeSet<String>> {
    let dir = out.join(HOSTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut hosts = std::collections::BTreeSet::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if let Some(host) = e.file_name().to_str().and_then(|n| n.strip_suffix(".crt")) {
            hosts.insert(host.to_string());
        }
    }
    Ok(hosts)
}

impl Stored {
    pub fn load(out: &Path) -> Result<Self> {
        let http_secret = read_opt(out, HTTP_SECRET)?
            .map(|s| s.trim().to_string())
            .filter(|s| is_http_secret(s));
        let ssh = match (read_opt(out, SSH_KEY)?, read_opt(out, SSH_PUB)?) {
            (Some(k), Some(p)) => Some(SshKeyPair {
                private_openssh: k,
                public_line: p.trim().to_string(),
            }),
            _ => None,
        };
        let ca = match (read_opt(out, CA_CERT)?, read_opt(out, CA_KEY)?) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        let server = read_cert(out, [SERVER_CERT, SERVER_KEY, SERVER_SANS])?;
        let packer_ssh = match (read_opt(out, PACKER_KEY)?, read_opt(out, PACKER_PUB)?) {
            (Some(k), Some(p)) => Some(SshKeyPair {
                private_openssh: k,
                public_line: p.trim().to_string(),
            }),
            _ => None,
        };
        Ok(Self {
            http_secret,
            ssh,
            ca,
            server,
            packer_ssh,
            htpasswd: read_opt(out, HTPASSWD)?,
        })
    }

    pub fn http_secret(&self) -> Result<String> {
        match &self.http_secret {
            Some(s) => Ok(s.clone()),
            None => {
                let mut buf = [0u8; 32];
                getrandom::fill(&mut buf)
                    .map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
                Ok(hex::encode(buf))
            }
        }
    }

    pub fn ssh_key(&self, comment: &str) -> Result<SshKeyPair> {
        match &self.ssh {
            Some(k) => Ok(k.clone()),
            None => generate_ssh_key(comment),
        }
    }

    /// The CA is kept whenever one exists; the server certificate is kept while
    /// it was issued for the same names by that CA, and re-issued otherwise.
    pub fn tls(&self, hostname: &str, sans: &[String], days: u32) -> Result<Tls> {
        let (ca_cert, ca_key) = match &self.ca {
            Some(ca) => ca.clone(),
            None => generate_ca(hostname)?,
        };
        if let Some((cert, key, stored_sans)) = &self.server {
            if stored_sans == sans && self.ca.is_some() {
                return Ok(Tls {
                    ca_cert,
                    ca_key,
                    server_cert: cert.clone(),
                    server_key: key.clone(),
                    sans: sans.to_vec(),
                });
            }
        }
        let (server_cert, server_key) = issue_server_cert(&ca_cert, &ca_key, hostname, sans, days)?;
        Ok(Tls {
            ca_cert,
            ca_key,
            server_cert,
            server_key,
            sans: sans.to_vec(),
        })
    }
}

fn is_http_secret(s: &str) -> bool {
    s.len() >= 32 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

pub fn generate_ssh_key(comment: &str) -> Result<SshKeyPair> {
    let mut key = ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .context("generating an ed25519 key")?;
    key.set_comment(comment);
    let private_openssh = key
        .to_openssh(ssh_key::LineEnding::LF)
        .context("encoding the ssh private key")?
        .to_string();
    let public_line = key
        .public_key()
        .to_openssh()
        .context("encoding the ssh public key")?;
    Ok(SshKeyPair {
        private_openssh,
        public_line,
    })
}

fn generate_ca(hostname: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("regbake CA for {hostname}"));
    dn.push(DnType::OrganizationName, "regbake");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (start, end) = validity(3650)?;
    params.not_before = start;
    params.not_after = end;
    let cert = params.self_signed(&key).context("self-signing the CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_server_cert(
    ca_cert: &str,
    ca_key: &str,
    hostname: &str,
    sans: &[String],
    days: u32,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).context("reading the stored CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert, ca_key).context("reading the stored CA certificate")?;
    let key = KeyPair::generate().context("generating the server key")?;
    let mut params = CertificateParams::new(sans.to_vec()).context("server certificate names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hostname);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let (start, end) = validity(days)?;
    params.not_before = start;
    params.not_after = end;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// From a day ago (clock skew between this host and the appliance) for `days`.
fn validity(days: u32) -> Result<(time::OffsetDateTime, time::OffsetDateTime)> {
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::days(1);
    Ok((start, now + time::Duration::days(i64::from(days))))
}
