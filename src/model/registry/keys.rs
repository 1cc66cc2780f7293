//! Whether a private key, in any PEM form the registry serves, is a
//! certificate's.

/// Whether the PEM private key `key` is the certificate's. PKCS#8 keys, and
/// the traditional PKCS#1 RSA (`openssl genrsa` before OpenSSL 3, as on
/// CentOS 7) and SEC1 EC (`openssl ecparam -genkey`) keys are read: Go's
/// crypto/tls, which serves the registry, takes all three.
pub(super) fn key_matches(
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
