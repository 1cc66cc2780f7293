//! The registry's TLS material: generated into the secret store, or read
//! from the configured files and checked against each other.

use anyhow::Result;

use super::{problem, ServerTls};
use crate::config::{Config, TlsMode};
use crate::model::secrets::{SecretStore, Slot};

/// `[registry.tls]` resolved: the server's certificate for `hostname` (and
/// `static_ip`), none with TLS off.
pub(super) fn resolve(
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
        TlsMode::Files => Ok(Some(files(c)?)),
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
fn files(c: &Config) -> Result<ServerTls> {
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

/// Whether the PEM private key `key` is the certificate's. PKCS#8 keys, and
/// the traditional PKCS#1 RSA (`openssl genrsa` before OpenSSL 3, as on
/// CentOS 7) and SEC1 EC (`openssl ecparam -genkey`) keys are read: Go's
/// crypto/tls, which serves the registry, takes all three.
fn key_matches(
    cert: &x509_parser::certificate::X509Certificate,
    key: &str,
) -> std::result::Result<bool, String> {
    use x509_parser::public_key::PublicKey;
    const CONVERT: &str = "convert it with `openssl pkcs8 -topk8 -nocrypt`";
    let pem = x509_parser::pem::Pem::iter_from_buffer(key.as_bytes())
        .filter_map(std::result::Result::ok)
        .find(|p| p.label.ends_with("PRIVATE KEY"))
        .ok_or(
            "expected a PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
        )?;
    let cert_key = cert.public_key();
    // Leading zero bytes of DER integers are sign padding, not value.
    let unpadded = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|&x| x == 0).collect() };
    match pem.label.as_str() {
        "PRIVATE KEY" => {
            let pair = rcgen::KeyPair::from_pem(key).map_err(|_| {
                format!("expected a PKCS#8 RSA, ECDSA P-256/P-384 or Ed25519 key the registry can serve; {CONVERT} if it is another format")
            })?;
            Ok(cert_key.subject_public_key.data.as_ref() == pair.public_key_raw())
        }
        "RSA PRIVATE KEY" => {
            use pkcs1::der::Decode;
            let k = pkcs1::RsaPrivateKey::from_der(&pem.contents)
                .map_err(|e| format!("expected a PKCS#1 RSA private key ({e})"))?;
            Ok(match cert_key.parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    unpadded(rsa.modulus) == unpadded(k.modulus.as_bytes())
                        && unpadded(rsa.exponent) == unpadded(k.public_exponent.as_bytes())
                }
                _ => false,
            })
        }
        "EC PRIVATE KEY" => {
            use sec1::der::Decode;
            let k = sec1::EcPrivateKey::from_der(&pem.contents)
                .map_err(|e| format!("expected a SEC1 EC private key ({e})"))?;
            let public = k
                .public_key
                .ok_or_else(|| format!("the EC key does not carry its public key; {CONVERT}"))?;
            Ok(cert_key.subject_public_key.data.as_ref() == public)
        }
        "ENCRYPTED PRIVATE KEY" => Err(format!(
            "the key is encrypted, and the registry starts unattended: {CONVERT}"
        )),
        other => Err(format!(
            "expected a private key, found a PEM {other:?}; {CONVERT}"
        )),
    }
}
