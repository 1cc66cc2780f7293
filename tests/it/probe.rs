//! `regbake probe` against a real registry: Debian's `docker-registry serve`
//! (distribution 2.8) on 127.0.0.1, plain, TLS and TLS + htpasswd, with
//! `skopeo` as an independent client reading back what the probe pushed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{free_port, log_output, on_a_free_port, require_tool, wait_listening, Test};

/// A `docker-registry serve` child, killed when dropped (also on panic).
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

#[derive(Default)]
struct Setup {
    delete: bool,
    /// (certificate, key) PEM paths.
    tls: Option<(PathBuf, PathBuf)>,
    htpasswd: Option<PathBuf>,
}

impl Registry {
    fn start(setup: &Setup) -> Registry {
        on_a_free_port("docker-registry", |port| Self::try_start(setup, port))
    }

    /// None when another process took the port first.
    fn try_start(setup: &Setup, port: u16) -> Option<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("regbake-registry-")
            .tempdir()
            .expect("temp dir");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
            setup.delete
        );
        if let Some((cert, key)) = &setup.tls {
            yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        if let Some(htpasswd) = &setup.htpasswd {
            yaml += &format!(
                "auth:\n  htpasswd:\n    realm: regbake-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).expect("write config.yml");
        let log = dir.path().join("registry.log");
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config)
            // The documented env overrides: only address and storage change.
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("storage"),
            );
        let child = log_output(&mut cmd, &log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry {
            child,
            port,
            log,
            dir,
        };
        wait_listening(
            "docker-registry",
            &mut reg.child,
            port,
            &reg.log,
            Duration::from_secs(20),
        )
        .then_some(reg)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in
/// `dir`: (ca.pem, server.crt, server.key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "regbake test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).expect("issuer");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).expect("sign server cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write ca");
    std::fs::write(&paths.1, cert.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    (paths.0, paths.1, paths.2)
}

fn steps(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<Vec<serde_json::Value>>(stdout)
        .unwrap_or_else(|e| panic!("probe --format json printed no JSON array ({e}):\n{stdout}"))
}

fn step<'a>(steps: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {steps:?}"))
}

#[test]
fn plain_http_push_deletes_when_enabled_and_skips_when_disabled() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start(&Setup {
        delete: true,
        ..Setup::default()
    });
    let url = format!("http://{}", reg.addr());
    let out = Test::new()
        .args(&["probe", &url, "--push", "--format", "json"])
        .success();
    let s = steps(&out.stdout);
    for name in [
        "GET /v2/",
        "push layer",
        "push config",
        "push manifest",
        "pull manifest",
        "pull config",
        "pull layer",
        "delete manifest",
    ] {
        assert_eq!(step(&s, name)["status"], "passed", "{name}: {s:?}");
        assert!(step(&s, name)["ms"].is_u64());
    }
    assert!(step(&s, "delete manifest")["message"]
        .as_str()
        .unwrap()
        .contains("deleted"));

    // The text format: one line per step with its timing.
    let out = Test::new().args(&["probe", &url, "--push"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("passed") && lines[0].contains("GET /v2/"));
    assert!(lines[0].contains(" ms "), "{}", lines[0]);
    assert!(out.stdout.contains("passed: 8 steps"), "{}", out.stdout);
    drop(reg);

    let reg = Registry::start(&Setup::default());
    let url = format!("http://{}", reg.addr());
    let out = Test::new()
        .args(&["probe", &url, "--push", "--format", "json"])
        .success();
    let s = steps(&out.stdout);
    let del = step(&s, "delete manifest");
    assert_eq!(del["status"], "skipped", "{s:?}");
    assert!(del["message"]
        .as_str()
        .unwrap()
        .contains("delete disabled, skipped"));
}

/// A registry that hands back other bytes than it was given fails the
/// probe at the layer pull, naming the first differing byte. The registry
/// keeps a blob it already has when the same digest is uploaded again, so a
/// byte flipped in its storage is what the second probe pulls.
#[test]
fn corrupted_layer_fails_the_pull() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start(&Setup::default());
    let url = format!("http://{}", reg.addr());
    let probe = [
        "probe",
        &url,
        "--push",
        "--layer-size",
        "100000",
        "--format",
        "json",
    ];
    let out = Test::new().args(&probe).success();
    let s = steps(&out.stdout);
    let pulled = step(&s, "pull layer");
    assert_eq!(pulled["status"], "passed", "{s:?}");
    let message = pulled["message"].as_str().unwrap();
    assert!(message.contains("verified byte for byte"), "{message}");

    // The layer is the biggest blob the registry holds.
    let blobs = reg
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256");
    let layer = walkdir(&blobs)
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .expect("a layer in the registry's storage");
    let digest = format!(
        "sha256:{}",
        layer
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[4321] ^= 0x40;
    std::fs::write(&layer, &bytes).unwrap();

    let out = Test::new().args(&probe).status(1).check();
    let s = steps(&out.stdout);
    let pulled = step(&s, "pull layer");
    assert_eq!(pulled["status"], "failed", "{s:?}");
    let message = pulled["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "layer digest mismatch: the pulled bytes differ from the pushed {digest} at byte 4321"
        )),
        "{message}"
    );
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walkdir(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn skopeo_reads_back_what_probe_pushed() {
    if !require_tool("docker-registry") || !require_tool("skopeo") {
        return;
    }
    let reg = Registry::start(&Setup {
        delete: true,
        ..Setup::default()
    });
    let url = format!("http://{}", reg.addr());
    let t = Test::new().args(&[
        "probe",
        &url,
        "--push",
        "--keep",
        "--repo",
        "probe/kept",
        "--tag",
        "v1",
        "--layer-size",
        "100000",
        "--format",
        "json",
    ]);
    let out = t.success();
    let s = steps(&out.stdout);
    assert_eq!(step(&s, "delete manifest")["status"], "skipped");

    let image = format!("docker://{}/probe/kept:v1", reg.addr());
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &image])
        .output()
        .expect("run skopeo inspect");
    assert!(
        inspect.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("skopeo JSON");
    let manifest_msg = step(&s, "push manifest")["message"].as_str().unwrap();
    let digest = info["Digest"].as_str().expect("Digest");
    assert!(
        manifest_msg.contains(&digest[..19]),
        "{manifest_msg} vs {digest}"
    );
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(info["Os"], "linux");

    // A full pull by an independent client: skopeo fetches every blob and
    // checks every digest against the manifest.
    let dest = t.path().join("pulled");
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &image,
        ])
        .arg(format!("oci:{}:v1", dest.display()))
        .output()
        .expect("run skopeo copy");
    assert!(
        copy.status.success(),
        "skopeo copy {image}: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let layer = info["Layers"][0].as_str().unwrap();
    let hex = layer.trim_start_matches("sha256:");
    let blob = std::fs::metadata(dest.join("blobs/sha256").join(hex)).expect("pulled layer");
    assert!(blob.len() > 100_000);
}

#[test]
fn tls_registry_needs_the_ca_and_https() {
    if !require_tool("docker-registry") {
        return;
    }
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = tls_files(certs.path());
    let reg = Registry::start(&Setup {
        delete: true,
        tls: Some((cert, key)),
        ..Setup::default()
    });
    let https = format!("https://{}", reg.addr());
    let ca = ca.to_str().unwrap();

    let out = Test::new()
        .args(&["probe", &https, "--ca", ca, "--push"])
        .success();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);

    let out = Test::new()
        .args(&["probe", &https])
        .status(1)
        .stderr_contains("TLS verification")
        .stderr_contains("--ca")
        .check();
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);

    // Without --ca the system trust store decides: a CA installed there is
    // trusted (SSL_CERT_FILE stands in for the distribution's bundle).
    let out = Test::new()
        .args(&["probe", &https, "--push"])
        .env("SSL_CERT_FILE", ca)
        .env("SSL_CERT_DIR", "/nonexistent")
        .success();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);

    // --insecure is explicit and does what it says (self-signed tests only).
    Test::new().args(&["probe", &https, "--insecure"]).success();
    Test::new()
        .args(&["probe", &https, "--insecure", "--ca", ca])
        .status(2)
        .stderr_contains("cannot be used with")
        .check();

    let http = format!("http://{}", reg.addr());
    Test::new()
        .args(&["probe", &http])
        .status(1)
        .stderr_contains("speaks TLS")
        .stderr_contains(&format!("use {https}"))
        .stderr_contains("HTTP 400")
        .check();
}

#[test]
fn htpasswd_registry_wants_the_right_credentials() {
    if !require_tool("docker-registry") {
        return;
    }
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = tls_files(certs.path());
    let password = "s3cret-Probe-pw";
    // The registry accepts bcrypt only; the lowest cost keeps the test fast.
    let hash = bcrypt::hash(password, 4).expect("bcrypt");
    let htpasswd = certs.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("prober:{hash}\n")).expect("htpasswd");
    let reg = Registry::start(&Setup {
        delete: true,
        tls: Some((cert, key)),
        htpasswd: Some(htpasswd),
    });
    let url = format!("https://{}", reg.addr());
    let ca = ca.to_str().unwrap();

    // No credentials: /v2/ answering 401 with a challenge is a live registry.
    let out = Test::new().args(&["probe", &url, "--ca", ca]).success();
    assert!(out.stdout.contains("credentials needed"), "{}", out.stdout);
    assert!(out.stdout.contains("Basic realm="), "{}", out.stdout);

    Test::new()
        .args(&["probe", &url, "--ca", ca, "--push"])
        .status(1)
        .stderr_contains("401")
        .stderr_contains("UNAUTHORIZED")
        .stderr_contains("--password-env")
        .check();

    let args = [
        "probe",
        &url,
        "--ca",
        ca,
        "--push",
        "--username",
        "prober",
        "--password-env",
        "PROBE_PW",
    ];
    let out = Test::new().args(&args).env("PROBE_PW", password).success();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    assert!(!out.stdout.contains(password) && !out.stderr.contains(password));

    let out = Test::new()
        .args(&args)
        .env("PROBE_PW", "wrong-password")
        .status(1)
        .stderr_contains("credentials rejected")
        .stderr_contains("401")
        .check();
    assert!(!out.stdout.contains("wrong-password") && !out.stderr.contains("wrong-password"));

    Test::new()
        .args(&args)
        .status(1)
        .stderr_contains("PROBE_PW")
        .check();
}

#[test]
fn nothing_listening_is_a_clear_failure() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    Test::new()
        .args(&["probe", &url, "--push"])
        .status(1)
        .stderr_contains(&format!(
            "nothing is listening on 127.0.0.1:{port} (connection refused)"
        ))
        .check();
}

/// With `--ca`, a certificate from another CA is blamed on that file, not on
/// the system trust store.
#[test]
fn a_ca_that_did_not_sign_the_certificate_is_named() {
    if !require_tool("docker-registry") {
        return;
    }
    let certs = tempfile::tempdir().expect("temp dir");
    let (_, cert, key) = tls_files(certs.path());
    let other = tempfile::tempdir().expect("temp dir");
    let (other_ca, _, _) = tls_files(other.path());
    let reg = Registry::start(&Setup {
        tls: Some((cert, key)),
        ..Setup::default()
    });
    let https = format!("https://{}", reg.addr());
    let other_ca = other_ca.to_str().unwrap();
    let out = Test::new()
        .args(&["probe", &https, "--ca", other_ca])
        .status(1)
        .stderr_contains(&format!(
            "the CA in {other_ca} (--ca) does not vouch for it"
        ))
        .check();
    assert!(!out.stderr.contains("system trust store"), "{}", out.stderr);
}
