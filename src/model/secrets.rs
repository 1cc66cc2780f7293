//! The one store of key material that must survive re-renders: the
//! registry's http secret, the TLS CA and server certificates, the SSH key
//! pairs and the htpasswd. They live in `out/secrets/` and `out/ssh/` (0600
//! files), are read back before each render and created on first use, so a
//! re-render never rotates them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::tree::Tree;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyPair {
    pub private_openssh: String,
    pub public_line: String,
}

/// A CA certificate and its key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPair {
    pub cert: String,
    pub key: String,
}

/// A server certificate, its key (PEM) and the names it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    pub cert: String,
    pub key: String,
    pub sans: Vec<String>,
}

/// Whose server certificate: the single appliance's, or an inventory host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    Single,
    Host(&'a str),
}

/// Every secret that must survive re-renders, read from `out/` and created
/// on first use: the http secret, the SSH key pairs (the user's fallback and
/// Packer's build key), the CA, server certificates (one, or one per
/// inventory host) and the htpasswd as last rendered. [`SecretStore::write_into`]
/// puts back all it holds, used by this render or not (turning TLS off and
/// on again must not rotate the CA).
#[derive(Debug, Default, Clone)]
pub struct SecretStore {
    http_secret: Option<String>,
    ssh: Option<SshKeyPair>,
    packer: Option<SshKeyPair>,
    ca: Option<CaPair>,
    server: Option<ServerCert>,
    /// Host certificates touched by this render (loaded or issued).
    hosts: BTreeMap<String, ServerCert>,
    /// Where host certificates are read from, and which exist there.
    out: Option<PathBuf>,
    hosts_on_disk: BTreeSet<String>,
    htpasswd: Option<String>,
}

fn read_opt(out: &Path, rel: &str) -> Result<Option<String>> {
    let p = out.join(rel);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn read_pair(out: &Path, key: &str, public: &str) -> Result<Option<SshKeyPair>> {
    Ok(match (read_opt(out, key)?, read_opt(out, public)?) {
        (Some(k), Some(p)) => Some(SshKeyPair {
            private_openssh: k,
            public_line: p.trim().to_string(),
        }),
        _ => None,
    })
}

/// A stored certificate, key and SAN list, if all three are there.
fn read_cert(out: &Path, paths: [&str; 3]) -> Result<Option<ServerCert>> {
    Ok(
        match (
            read_opt(out, paths[0])?,
            read_opt(out, paths[1])?,
            read_opt(out, paths[2])?,
        ) {
            (Some(cert), Some(key), Some(s)) => Some(ServerCert {
                cert,
                key,
                sans: s.lines().map(str::to_string).collect(),
            }),
            _ => None,
        },
    )
}

/// Where an inventory host's server certificate, key and SANs are kept.
pub fn host_paths(host: &str) -> [String; 3] {
    ["crt", "key", "sans"].map(|ext| format!("{HOSTS_DIR}/{host}.{ext}"))
}

/// The inventory hosts that have a stored certificate file.
fn hosts_with_certs(out: &Path) -> Result<BTreeSet<String>> {
    let dir = out.join(HOSTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut hosts = BTreeSet::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if let Some(host) = e.file_name().to_str().and_then(|n| n.strip_suffix(".crt")) {
            hosts.insert(host.to_string());
        }
    }
    Ok(hosts)
}

/// The CA: the one kept in `out/` whenever there is one, else a new one.
/// Never rotated: every client that trusts it keeps working.
fn keep_ca(kept: Option<CaPair>, make: impl FnOnce() -> Result<CaPair>) -> Result<CaPair> {
    match kept {
        Some(ca) => Ok(ca),
        None => make(),
    }
}

/// A kept server certificate stays while it names the same hosts and its CA
/// was kept too; otherwise a new one is issued.
fn reusable(kept: Option<&ServerCert>, ca_kept: bool, sans: &[String]) -> bool {
    ca_kept && kept.is_some_and(|c| c.sans == sans)
}

impl SecretStore {
    /// What earlier renders left in `out`.
    pub fn load(out: &Path) -> Result<Self> {
        let http_secret = read_opt(out, HTTP_SECRET)?
            .map(|s| s.trim().to_string())
            .filter(|s| is_http_secret(s));
        let ca = match (read_opt(out, CA_CERT)?, read_opt(out, CA_KEY)?) {
            (Some(cert), Some(key)) => Some(CaPair { cert, key }),
            _ => None,
        };
        Ok(Self {
            http_secret,
            ssh: read_pair(out, SSH_KEY, SSH_PUB)?,
            packer: read_pair(out, PACKER_KEY, PACKER_PUB)?,
            ca,
            server: read_cert(out, [SERVER_CERT, SERVER_KEY, SERVER_SANS])?,
            hosts: BTreeMap::new(),
            hosts_on_disk: BTreeSet::new(),
            out: Some(out.to_path_buf()),
            htpasswd: read_opt(out, HTPASSWD)?,
        })
    }

    /// Get ready to issue or reuse certificates of many inventory hosts: one
    /// directory listing instead of three lookups per host.
    pub fn index_hosts(&mut self) -> Result<()> {
        if let Some(out) = &self.out {
            self.hosts_on_disk =
                hosts_with_certs(out).context("listing stored host certificates")?;
        }
        Ok(())
    }

    /// The registry's http secret: kept, else 32 random bytes in hex.
    pub fn http_secret(&mut self) -> Result<String> {
        if let Some(s) = &self.http_secret {
            return Ok(s.clone());
        }
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
        let s = hex::encode(buf);
        self.http_secret = Some(s.clone());
        Ok(s)
    }

    /// The fallback SSH key pair of the admin user: kept, else a new one.
    pub fn ssh_key(&mut self, comment: &str) -> Result<SshKeyPair> {
        if self.ssh.is_none() {
            self.ssh = Some(generate_ssh_key(comment)?);
        }
        self.ssh.clone().context("the ssh key was just made")
    }

    /// Packer's build key pair: kept, else a new one.
    pub fn packer_key(&mut self, comment: &str) -> Result<SshKeyPair> {
        if self.packer.is_none() {
            self.packer = Some(generate_ssh_key(comment)?);
        }
        self.packer.clone().context("the packer key was just made")
    }

    /// The htpasswd as last rendered (its bcrypt hashes are reused while the
    /// passwords still match).
    pub fn htpasswd(&self) -> Option<&str> {
        self.htpasswd.as_deref()
    }

    pub fn set_htpasswd(&mut self, htpasswd: String) {
        self.htpasswd = Some(htpasswd);
    }

    /// The CA and a server certificate for `hostname` and `sans`, signed by
    /// it (see [`keep_ca`] and [`reusable`]).
    pub fn tls(
        &mut self,
        slot: Slot<'_>,
        hostname: &str,
        sans: &[String],
        days: u32,
    ) -> Result<(CaPair, ServerCert)> {
        let ca_kept = self.ca.is_some();
        let ca = keep_ca(self.ca.clone(), || generate_ca(hostname))?;
        self.ca = Some(ca.clone());
        let kept = match slot {
            Slot::Single => self.server.clone(),
            Slot::Host(h) => match self.hosts.get(h) {
                Some(c) => Some(c.clone()),
                None => match &self.out {
                    Some(out) if self.hosts_on_disk.contains(h) => {
                        let [c, k, s] = host_paths(h);
                        read_cert(out, [&c, &k, &s])?
                    }
                    _ => None,
                },
            },
        };
        let server = match kept {
            Some(c) if reusable(Some(&c), ca_kept, sans) => c,
            _ => issue_server_cert(&ca, hostname, sans, days)?,
        };
        match slot {
            Slot::Single => self.server = Some(server.clone()),
            Slot::Host(h) => {
                self.hosts.insert(h.to_string(), server.clone());
            }
        }
        Ok((ca, server))
    }

    /// Every secret held, as state files of `out/` (0600, public halves
    /// and certificates 0644).
    pub fn write_into(&self, tree: &mut Tree) {
        if let Some(s) = &self.http_secret {
            tree.add(HTTP_SECRET, format!("{s}\n"), 0o600);
        }
        for (pair, key, public) in [
            (&self.ssh, SSH_KEY, SSH_PUB),
            (&self.packer, PACKER_KEY, PACKER_PUB),
        ] {
            if let Some(k) = pair {
                tree.add(key, k.private_openssh.clone(), 0o600);
                tree.add(public, format!("{}\n", k.public_line), 0o644);
            }
        }
        if let Some(h) = &self.htpasswd {
            tree.add(HTPASSWD, h.clone(), 0o600);
        }
        if let Some(ca) = &self.ca {
            tree.add(CA_CERT, ca.cert.clone(), 0o644);
            tree.add(CA_KEY, ca.key.clone(), 0o600);
        }
        let server = self
            .server
            .iter()
            .map(|c| ([SERVER_CERT, SERVER_KEY, SERVER_SANS].map(String::from), c));
        let hosts = self.hosts.iter().map(|(h, c)| (host_paths(h), c));
        for ([crt, key, sans], c) in server.chain(hosts) {
            tree.add(crt, c.cert.clone(), 0o644);
            tree.add(key, c.key.clone(), 0o600);
            tree.add(sans, c.sans.join("\n") + "\n", 0o644);
        }
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

fn generate_ca(hostname: &str) -> Result<CaPair> {
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
    Ok(CaPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn issue_server_cert(
    ca: &CaPair,
    hostname: &str,
    sans: &[String],
    days: u32,
) -> Result<ServerCert> {
    let ca_key = KeyPair::from_pem(&ca.key).context("reading the stored CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("reading the stored CA certificate")?;
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
    Ok(ServerCert {
        cert: cert.pem(),
        key: key.serialize_pem(),
        sans: sans.to_vec(),
    })
}

/// From a day ago (clock skew between this host and the appliance) for `days`.
fn validity(days: u32) -> Result<(time::OffsetDateTime, time::OffsetDateTime)> {
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::days(1);
    Ok((start, now + time::Duration::days(i64::from(days))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: &str) -> CaPair {
        CaPair {
            cert: format!("cert {n}"),
            key: format!("key {n}"),
        }
    }

    #[test]
    fn the_ca_is_never_rotated() {
        let made = keep_ca(Some(pair("old")), || Ok(pair("new"))).unwrap();
        assert_eq!(made, pair("old"));
        assert_eq!(keep_ca(None, || Ok(pair("new"))).unwrap(), pair("new"));
    }

    #[test]
    fn server_certificates_follow_their_names_and_ca() {
        let c = ServerCert {
            cert: "c".into(),
            key: "k".into(),
            sans: vec!["a".into()],
        };
        assert!(reusable(Some(&c), true, &["a".into()]));
        assert!(!reusable(Some(&c), true, &["a".into(), "b".into()]));
        assert!(!reusable(Some(&c), false, &["a".into()]));
        assert!(!reusable(None, true, &["a".into()]));
    }

    #[test]
    fn tls_off_and_on_keeps_the_ca_and_the_store_writes_it_back() {
        let mut store = SecretStore::default();
        let (ca, _) = store
            .tls(Slot::Single, "r.example", &["r.example".into()], 30)
            .unwrap();
        let mut tree = Tree::default();
        store.write_into(&mut tree);
        assert_eq!(
            tree.get(CA_CERT).map(|e| e.data.clone()),
            Some(ca.cert.clone().into_bytes())
        );
        let (again, _) = store
            .tls(Slot::Host("h1"), "h1.example", &["h1.example".into()], 30)
            .unwrap();
        assert_eq!(again, ca);
        let mut tree = Tree::default();
        store.write_into(&mut tree);
        assert!(tree.get("secrets/tls/hosts/h1.crt").is_some());
        assert!(tree.get(SERVER_CERT).is_some());
    }
}
