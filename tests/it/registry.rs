//! The rendered registry config, certificates and htpasswd, served by a real
//! registry (Debian's `docker-registry`, distribution 2.8) and used by a real
//! client (`skopeo`).
//!
//! The registry runs in a private mount namespace (`unshare --mount`, root)
//! with a tmpfs over /opt holding the overlay's /opt/docker, so the config is
//! served exactly as rendered: only the listen address and the storage
//! directory are overridden, with REGISTRY_* environment variables.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::{log_output, on_a_free_port, require_tool, wait_listening, Test};

pub(crate) fn tools_present() -> bool {
    ["docker-registry", "skopeo", "unshare"]
        .iter()
        .all(|t| require_tool(t))
}

/// A running `docker-registry serve`; killed on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) port: u16,
    _data: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub(crate) fn start(out: &Path, config_rel: &str) -> Self {
        Self::start_with(out, config_rel, true)
    }

    /// `filesystem`: override the storage dir (not for S3 configs, where a
    /// second driver would be an error).
    pub(crate) fn start_with(out: &Path, config_rel: &str, filesystem: bool) -> Self {
        let data = tempfile::tempdir().expect("data dir");
        let store = filesystem.then(|| data.path().join("store"));
        Self::spawn(out, config_rel, data, store.as_deref(), &[])
    }

    /// Serving the storage dir `store`, which outlives it, with more
    /// environment (REGISTRY_* overrides).
    pub(crate) fn start_on(
        out: &Path,
        config_rel: &str,
        store: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let data = tempfile::tempdir().expect("data dir");
        Self::spawn(out, config_rel, data, Some(store), env)
    }

    fn spawn(
        out: &Path,
        config_rel: &str,
        data: tempfile::TempDir,
        store: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Self {
        let log = data.path().join("registry.log");
        let overlay = out.join("overlay");
        let script = format!(
            "set -e; mount -t tmpfs regbake-test /opt; mkdir -p /opt/docker; \
             if [ -d '{o}/opt/docker' ]; then cp -a '{o}/opt/docker/.' /opt/docker/; fi; \
             exec docker-registry serve '{o}/{config_rel}'",
            o = overlay.display()
        );
        let mut data = Some(data);
        on_a_free_port("docker-registry", |port| {
            let mut cmd = Command::new("unshare");
            cmd.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            // A CA bundle set for the sandbox makes 2.8's S3 driver refuse to start.
            .env_remove("AWS_CA_BUNDLE");
            if let Some(store) = store {
                cmd.env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", store);
            }
            cmd.envs(env.iter().copied());
            let mut child = log_output(&mut cmd, &log)
                .spawn()
                .expect("start docker-registry");
            let listens = wait_listening(
                "docker-registry",
                &mut child,
                port,
                &log,
                Duration::from_secs(20),
            );
            listens.then(|| Self {
                child,
                port,
                _data: data.take().expect("started once"),
                log: log.clone(),
            })
        })
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn docker_ref(&self, name: &str) -> String {
        format!("docker://127.0.0.1:{}/{name}", self.port)
    }
}

/// A plain-HTTP `GET /v2/`: status code.
pub(crate) fn get_v2_plain(port: u16) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A one-layer OCI image layout on disk, made here so no network is needed.
pub(crate) fn oci_layout(dir: &Path) -> String {
    oci_image(dir, b"hello from regbake's registry test\n").src
}

/// An image of [`oci_image`]: its skopeo source and digests.
pub(crate) struct OciImage {
    pub(crate) src: String,
    pub(crate) manifest: String,
    pub(crate) config: String,
    pub(crate) layer: String,
}

/// A one-layer OCI image layout whose layer holds `hello.txt` = `body`: two
/// bodies make two images that share no blob.
pub(crate) fn oci_image(dir: &Path, body: &[u8]) -> OciImage {
    let mut layer = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut layer, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        tar.append_data(&mut h, "hello.txt", body).expect("tar");
        tar.into_inner().expect("tar").finish().expect("gz");
    }
    let diff_id = {
        let mut d = flate2::read::GzDecoder::new(&layer[..]);
        let mut raw = vec![];
        d.read_to_end(&mut raw).expect("gunzip");
        sha(&raw)
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&layer), "size": layer.len()}]
    }))
    .expect("json");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    for b in [&layer, &config, &manifest] {
        let d = sha(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).expect("blob");
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    OciImage {
        src: format!("oci:{}:v1", dir.display()),
        manifest: sha(&manifest),
        config: sha(&config),
        layer: sha(&layer),
    }
}

pub(crate) fn skopeo(args: &[&str]) -> (bool, String) {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `regbake probe ARGS` against the served registry; returns (exit code, stdout+stderr).
pub(crate) fn probe(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(crate::common::BIN);
    cmd.arg("probe").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("regbake probe");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(crate) fn render(toml: &str) -> Test {
    let t = Test::new()
        .config(toml)
        .env("REGBAKE_TEST_PW", "second-secret");
    let t = t.args(&["render"]);
    t.success();
    t
}

pub(crate) const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtYOuLBG5flHVya7vWCk101CMrByUTqJB3xXQmJd8eW fixture@regbake";

#[test]
fn plain_http_registry_serves_and_stores() {
    if !tools_present() {
        return;
    }
    let t = render(&format!("version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n"));
    let out = t.path().join("out");
    let reg = Served::start(&out, "etc/docker/registry/config.yml");
    assert_eq!(get_v2_plain(reg.port), 200);
    let src = oci_layout(&t.path().join("image"));
    let dest = reg.docker_ref("regbake/hello:v1");
    let (ok, text) = skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(ok, "push failed: {text}\n{}", reg.log_text());
    let (ok, text) = skopeo(&["inspect", "--tls-verify=false", &dest]);
    assert!(ok && text.contains("\"Digest\""), "inspect failed: {text}");
    let url = format!("http://127.0.0.1:{}", reg.port);
    let (code, text) = probe(&[&url, "--push"], &[]);
    assert_eq!(code, 0, "probe --push failed: {text}");
    // The client file for a plain-HTTP registry names it as insecure.
    let daemon: serde_json::Value =
        serde_json::from_str(&t.read("out/client/daemon.json")).expect("daemon.json");
    assert_eq!(daemon["insecure-registries"][0], "registry.local:5000");
}

fn tls_config(extra: &str) -> String {
    format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry.tls]\nmode = \"generate\"\nsans = [\"127.0.0.1\"]\n{extra}"
    )
}

#[test]
fn tls_registry_trusts_only_the_generated_ca() {
    if !tools_present() {
        return;
    }
    let t = render(&tls_config(""));
    let out = t.path().join("out");
    let reg = Served::start(&out, "etc/docker/registry/config.yml");
    let certs = out.join("client/certs.d/registry.local:443");
    let certs = certs.to_str().expect("utf-8");
    let src = oci_layout(&t.path().join("image"));
    let dest = reg.docker_ref("regbake/hello:v1");
    let (ok, text) = skopeo(&["copy", "--dest-cert-dir", certs, &src, &dest]);
    assert!(ok, "push with the CA failed: {text}\n{}", reg.log_text());
    let (ok, text) = skopeo(&["inspect", "--cert-dir", certs, &dest]);
    assert!(ok, "inspect with the CA failed: {text}");
    // A client that does not trust the generated CA is refused.
    let empty = tempfile::tempdir().expect("tempdir");
    let (ok, text) = skopeo(&[
        "inspect",
        "--cert-dir",
        empty.path().to_str().expect("utf-8"),
        &dest,
    ]);
    assert!(!ok, "an untrusting client got in: {text}");
    assert!(text.contains("certificate"), "{text}");
    // Plain HTTP on the TLS port gets nothing useful.
    assert_ne!(get_v2_plain(reg.port), 200);
    let ca = format!("{certs}/ca.crt");
    let url = format!("https://127.0.0.1:{}", reg.port);
    let (code, text) = probe(&[&url, "--ca", &ca, "--push"], &[]);
    assert_eq!(code, 0, "probe --push with the CA failed: {text}");
    let (code, text) = probe(&[&format!("http://127.0.0.1:{}", reg.port)], &[]);
    assert_eq!(code, 1, "probe over http on the TLS port: {text}");
    assert!(text.contains("https"), "{text}");
}

#[test]
fn htpasswd_users_and_unauthenticated_push() {
    if !tools_present() {
        return;
    }
    let hash = bcrypt::hash("first-secret", 5).expect("bcrypt");
    let t = render(&tls_config(&format!(
        "[[registry.auth.users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n\
         [[registry.auth.users]]\nname = \"bob\"\npassword_env = \"REGBAKE_TEST_PW\"\n"
    )));
    assert_eq!(t.mode("out/overlay/opt/docker/auth/htpasswd"), 0o600);
    let htpasswd = t.read("out/overlay/opt/docker/auth/htpasswd");
    assert!(!htpasswd.contains("second-secret"), "plain password stored");
    let out = t.path().join("out");
    let reg = Served::start(&out, "etc/docker/registry/config.yml");
    let certs = out.join("client/certs.d/registry.local:443");
    let certs = certs.to_str().expect("utf-8");
    let src = oci_layout(&t.path().join("image"));
    let dest = reg.docker_ref("regbake/hello:v1");

    let (ok, text) = skopeo(&["copy", "--dest-cert-dir", certs, &src, &dest]);
    assert!(!ok, "unauthenticated push accepted: {text}");
    let (ok, _) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        "alice:wrong",
        &src,
        &dest,
    ]);
    assert!(!ok, "wrong password accepted");
    for creds in ["alice:first-secret", "bob:second-secret"] {
        let (ok, text) = skopeo(&[
            "copy",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            creds,
            &src,
            &dest,
        ]);
        assert!(ok, "push as {creds} failed: {text}\n{}", reg.log_text());
        let (ok, text) = skopeo(&["inspect", "--cert-dir", certs, "--creds", creds, &dest]);
        assert!(ok, "inspect as {creds} failed: {text}");
    }
    let ca = format!("{certs}/ca.crt");
    let url = format!("https://127.0.0.1:{}", reg.port);
    let (code, text) = probe(
        &[
            &url,
            "--ca",
            &ca,
            "--username",
            "bob",
            "--password-env",
            "PW",
            "--push",
        ],
        &[("PW", "second-secret")],
    );
    assert_eq!(code, 0, "probe --push as bob failed: {text}");
    let (code, text) = probe(
        &[
            &url,
            "--ca",
            &ca,
            "--username",
            "bob",
            "--password-env",
            "PW",
            "--push",
        ],
        &[("PW", "wrong")],
    );
    assert_eq!(code, 1, "probe with a wrong password: {text}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wrong"), "the password was printed: {text}");
    drop(reg);

    // Re-rendering keeps bob's bcrypt hash (no new salt each time).
    let t = t.args(&["render"]);
    t.success();
    assert_eq!(t.read("out/overlay/opt/docker/auth/htpasswd"), htpasswd);
}

#[test]
fn auth_without_tls_is_refused() {
    let t = Test::new()
        .config("version = 1\n[[registry.auth.users]]\nname = \"a\"\npassword_env = \"X\"\n")
        .args(&["render"]);
    t.status(2)
        .stderr_contains("registry.auth.users")
        .stderr_contains("TLS")
        .check();
}

#[test]
fn missing_password_env_is_a_config_error() {
    let t = Test::new()
        .config(&tls_config(
            "[[registry.auth.users]]\nname = \"a\"\npassword_env = \"REGBAKE_UNSET_VAR\"\n",
        ))
        .args(&["render"]);
    let t = t
        .status(2)
        .stderr_contains("registry.auth.users[0].password_env");
    t.check();
    assert!(!t.path().join("out").exists());
}

/// A secret variable that is set but not UTF-8 is named as such, not as
/// "not set" (issue 18 §21).
#[test]
fn a_non_utf8_secret_env_is_not_called_unset() {
    use std::os::unix::ffi::OsStrExt;
    let t = Test::new().config(&format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry]\nhttp_secret_env = \"REGBAKE_HS\"\n"
    ));
    let out = Command::new(crate::common::BIN)
        .arg("render")
        .current_dir(t.path())
        .env("HOME", t.path().join("home"))
        .env(
            "REGBAKE_HS",
            std::ffi::OsStr::from_bytes(b"secret-\xff-bytes"),
        )
        .output()
        .expect("run regbake");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("registry.http_secret_env")
            && stderr.contains("REGBAKE_HS is set but not valid UTF-8")
            && !stderr.contains("not set"),
        "{stderr}"
    );
    assert!(!t.path().join("out").exists());
}

/// registry:3 reads /etc/distribution/config.yml; the unit mounts that path.
/// With filesystem storage every key regbake writes for 3.x is one that 2.8
/// also accepts (no forcepathstyle, which only appears with an S3 endpoint),
/// so the rendered file is served here by 2.8.
#[test]
fn registry_3_config_is_rendered_at_its_path_and_serves() {
    if !tools_present() {
        return;
    }
    let t = render(&format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry]\nimage = \"registry:3\"\n"
    ));
    assert!(t
        .path()
        .join("out/overlay/etc/distribution/config.yml")
        .is_file());
    assert!(!t.path().join("out/overlay/etc/docker/registry").exists());
    let unit = t.read("out/overlay/etc/systemd/system/regbake-registry.service");
    assert!(
        unit.contains("-v /etc/distribution:/etc/distribution:ro \\\n"),
        "{unit}"
    );
    let out = t.path().join("out");
    let reg = Served::start(&out, "etc/distribution/config.yml");
    let src = oci_layout(&t.path().join("image"));
    let dest = reg.docker_ref("regbake/hello:v1");
    let (ok, text) = skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(ok, "push failed: {text}");
    let (code, text) = probe(&[&format!("http://127.0.0.1:{}", reg.port), "--push"], &[]);
    assert_eq!(code, 0, "probe --push failed: {text}");
}

/// A stand-in upstream on 127.0.0.1 that answers every request like an
/// empty registry (`GET /v2/` → 200); serves until the test process ends.
fn fake_upstream() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\
                  Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    port
}

/// A pull-through cache with no real upstream reachable starts and answers
/// /v2/. Distribution 2.8 asks the remote for its auth challenges at
/// startup and exits when it cannot connect (checked: it panics with
/// "connection refused"), so the remote here is a local stand-in that answers
/// /v2/ only; on the appliance systemd's Restart=always retries until the
/// upstream is reachable.
#[test]
fn mirror_config_serves_without_upstream() {
    if !tools_present() {
        return;
    }
    let upstream = fake_upstream();
    let t = render(&format!(
        "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry.mirror]\nremote_url = \"http://127.0.0.1:{upstream}\"\n"
    ));
    let cfg = t.read("out/overlay/etc/docker/registry/config.yml");
    assert!(
        cfg.contains(&format!("remoteurl: \"http://127.0.0.1:{upstream}\"")),
        "{cfg}"
    );
    let reg = Served::start(&t.path().join("out"), "etc/docker/registry/config.yml");
    assert_eq!(get_v2_plain(reg.port), 200, "{}", reg.log_text());
    // A pull-through cache takes no pushes: probe checks /v2/ only.
    let (code, text) = probe(&[&format!("http://127.0.0.1:{}", reg.port)], &[]);
    assert_eq!(code, 0, "probe failed: {text}");
}

/// S3 storage pointed at an unreachable S3-compatible endpoint: the config
/// is accepted by 2.8 (the registry starts and answers /v2/); credentials come
/// from the environment and land only in the 0600 config.
#[test]
fn s3_config_is_accepted() {
    if !tools_present() {
        return;
    }
    let t = Test::new()
        .config(&format!(
            "version = 1\n[user]\nssh_keys = [\"{KEY}\"]\n[registry.storage]\nbackend = \"s3\"\nbucket = \"registry\"\n\
             region = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_env = \"RB_AK\"\nsecret_key_env = \"RB_SK\"\n"
        ))
        .env("RB_AK", "AKIDEXAMPLE")
        .env("RB_SK", "s3cr3t-key")
        .args(&["render"]);
    t.success();
    let cfg = t.read("out/overlay/etc/docker/registry/config.yml");
    assert!(cfg.contains("redirect:\n    disable: true"), "{cfg}");
    assert!(
        !cfg.contains("forcepathstyle"),
        "2.x must not get forcepathstyle"
    );
    assert_eq!(t.mode("out/overlay/etc/docker/registry/config.yml"), 0o600);
    let reg = Served::start_with(
        &t.path().join("out"),
        "etc/docker/registry/config.yml",
        false,
    );
    let code = get_v2_plain(reg.port);
    assert!(
        code == 200 || code == 503,
        "unexpected /v2/ status {code}:\n{}",
        reg.log_text()
    );
}
