//! `registry.tls.mode = "files"` with the keys and certificates
//! sysadmins bring, made by the real openssl: served by a real registry and
//! pushed to by the probe, or refused as config errors.

use std::path::Path;
use std::process::Command;

use crate::common::{require_tool, Test};
use crate::registry::{probe, render, tools_present, Served, KEY};

/// Run openssl in `dir`, requiring success.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tls.mode = "files"` with the keys sysadmins bring: PKCS#8, PKCS#1 RSA
/// (`openssl genrsa` before OpenSSL 3, as on CentOS 7) and SEC1 EC
/// (`openssl ecparam -genkey`, parameters block included), each with a
/// self-signed certificate for 127.0.0.1 made by openssl. The registry serves
/// the rendered files and the probe pushes, trusting only that certificate.
/// A key from another pair and an encrypted key are config errors (exit 2).
#[test]
fn tls_files_accept_pkcs8_pkcs1_and_sec1_keys() {
    if !tools_present() || !require_tool("openssl") {
        return;
    }
    let pki = tempfile::tempdir().expect("tempdir");
    let dir = pki.path();
    // A site CA that signs each server certificate (for 127.0.0.1).
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=regbake test CA",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    let keys: [(&str, &[&str]); 3] = [
        (
            "pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "pkcs8.key",
            ],
        ),
        (
            "pkcs1",
            &["genrsa", "-traditional", "-out", "pkcs1.key", "2048"],
        ),
        (
            "sec1",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-out",
                "sec1.key",
            ],
        ),
    ];
    for (name, genkey) in keys {
        openssl(dir, genkey);
        let key = dir.join(format!("{name}.key"));
        let label = std::fs::read_to_string(&key).expect("key");
        let expected = match name {
            "pkcs8" => "-----BEGIN PRIVATE KEY-----",
            "pkcs1" => "-----BEGIN RSA PRIVATE KEY-----",
            _ => "-----BEGIN EC PRIVATE KEY-----",
        };
        assert!(label.contains(expected), "{name}: {label}");
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                "/CN=127.0.0.1",
                "-out",
                &csr,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                &crt,
            ],
        );
        let t = render(&format!(
            "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry.tls]\nmode = \"files\"\n\
             cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
            dir.join(&crt).display(),
            key.display(),
            dir.join("ca.crt").display()
        ));
        let out = t.path().join("out");
        // The client file is the site CA, as given.
        let client_ca = out.join("client/certs.d/registry.local:443/ca.crt");
        assert_eq!(
            std::fs::read(&client_ca).expect("client ca.crt"),
            std::fs::read(dir.join("ca.crt")).expect("ca.crt")
        );
        let reg = Served::start(&out, "etc/docker/registry/config.yml");
        let url = format!("https://127.0.0.1:{}", reg.port);
        let ca = client_ca.to_str().expect("utf-8");
        let (code, text) = probe(&[&url, "--ca", ca, "--push"], &[]);
        assert_eq!(
            code,
            0,
            "{name}: probe --push failed: {text}\n{}",
            reg.log_text()
        );
    }

    // The PKCS#1 key with the SEC1 pair's certificate: not its key.
    let t = Test::new()
        .config(&format!(
            "version = 1\n[registry.tls]\nmode = \"files\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.join("sec1.crt").display(),
            dir.join("pkcs1.key").display()
        ))
        .args(&["render"]);
    let t = t
        .status(2)
        .stderr_contains("registry.tls.key")
        .stderr_contains("does not belong");
    t.check();
    assert!(!t.path().join("out").exists());

    // An encrypted key cannot start unattended.
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "pkcs8.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:secret",
        ],
    );
    Test::new()
        .config(&format!(
            "version = 1\n[registry.tls]\nmode = \"files\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.join("pkcs8.crt").display(),
            dir.join("enc.key").display()
        ))
        .args(&["render"])
        .status(2)
        .stderr_contains("registry.tls.key")
        .stderr_contains("encrypted")
        .check();
}
