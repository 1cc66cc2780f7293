//! `[registry.storage] backend = "s3"`: the S3 keys and the http secret
//! come from the environment only, never reach a rendered file, and a
//! registry started from those files still reaches moto's bucket.

use std::io::Read;
use std::path::Path;

use crate::s3::{moto_present, render, s3_test, send, serve, Moto, CONFIG, HS};

/// Where a secret value occurs in `out/`: plain files by their path, and
/// inside the overlay as shipped (the tarball, and the kickstarts that embed
/// it as base64) as `FILE!ENTRY`; each with its mode.
fn holders(out: &Path, needles: &[&str]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let hit = |data: &[u8]| {
        needles
            .iter()
            .any(|n| data.windows(n.len()).any(|w| w == n.as_bytes()))
    };
    let in_tar = |gz: &[u8], rel: &str, found: &mut Vec<String>| {
        let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(gz));
        for e in tar.entries().expect("tar entries") {
            let mut e = e.expect("tar entry");
            let mut data = vec![];
            e.read_to_end(&mut data).expect("tar data");
            if hit(&data) {
                let path = e.path().expect("entry path").display().to_string();
                let path = path.trim_start_matches("./").to_string();
                found.push(format!(
                    "{rel}!{path} {:o}",
                    e.header().mode().expect("mode")
                ));
            }
        }
    };
    let mut found = vec![];
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let p = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            if meta.is_dir() {
                dirs.push(p);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let rel = p.strip_prefix(out).expect("rel").display().to_string();
            let mode = meta.permissions().mode() & 0o777;
            let data = std::fs::read(&p).expect("read");
            if hit(&data) {
                found.push(format!("{rel} {mode:o}"));
            }
            if rel.ends_with(".tar.gz") {
                found.push(format!("{rel} (archive) {mode:o}"));
                in_tar(&data, &rel, &mut found);
            }
            let text = String::from_utf8_lossy(&data);
            if let Some((_, rest)) = text.split_once("<<'REGBAKE_OVERLAY'\n") {
                use base64::Engine;
                let b64: String = rest
                    .lines()
                    .take_while(|l| *l != "REGBAKE_OVERLAY")
                    .collect();
                let gz = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("embedded overlay is base64");
                found.push(format!("{rel} (embeds the overlay) {mode:o}"));
                in_tar(&gz, &rel, &mut found);
            }
        }
    }
    found.sort();
    found
}

/// Credentials come only from the environment: the access and secret keys
/// (and the shared http secret) are in the 0600 config.yml and nowhere else
/// in out/ (the overlay tarball and the kickstarts carry that same file, as
/// 0600 entries of 0600 files), never on render's stdout/stderr. They are the
/// keys the registry signs with: moto, checking SigV4 against its IAM user,
/// accepts the registry rendered with them and rejects one rendered with a
/// wrong secret key.
///
/// moto 5.2's signature check rejects (SignatureDoesNotMatch) any request
/// whose query holds a '/', whoever signs it (checked with boto3 too:
/// ListObjectsV2 with Prefix "docker" passes, with "docker/registry/" fails).
/// Distribution lists with such prefixes on PATCH, so with auth on only the
/// upload start (signed PUTs and the multipart POST) is checked here; the
/// full flow runs in the tests above with auth off.
#[test]
fn s3_credentials_come_only_from_env() {
    if !moto_present() {
        return;
    }
    let moto = Moto::start(Some(4));
    let bucket = "regbake-auth";
    let (ak, sk) = moto.user_and_bucket(bucket);
    let secret = "env-http-secret-5d1f0b7c";
    let extra = format!("http_secret_env = \"{HS}\"");
    let (t, o) = render(
        s3_test("registry", &moto.url(), bucket, &extra),
        (&ak, &sk),
        Some(secret),
    );
    let needles = [ak.as_str(), sk.as_str(), secret];
    for n in needles {
        assert!(
            !o.stdout.contains(n) && !o.stderr.contains(n),
            "a secret was printed:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
    let cfg = t.read(&format!("out/overlay/{CONFIG}"));
    for n in needles {
        assert!(cfg.contains(n), "{n} not in config.yml");
    }
    let found = holders(&t.path().join("out"), &needles);
    let entry = format!("!{CONFIG}");
    // Every holder and every entry carrying a secret is 0600.
    let mut expected = vec![format!("overlay/{CONFIG} 600")];
    for f in ["kickstart/ks.cfg", "packer/http/ks.cfg"] {
        expected.push(format!("{f} (embeds the overlay) 600"));
        expected.push(format!("{f}{entry} 600"));
    }
    expected.push("overlay.tar.gz (archive) 600".into());
    expected.push(format!("overlay.tar.gz{entry} 600"));
    expected.sort();
    assert_eq!(found, expected, "where the secrets are in out/");

    let reg = serve(&t);
    let start = send(
        "POST",
        &format!(
            "http://127.0.0.1:{}/v2/regbake/auth/blobs/uploads/",
            reg.port
        ),
        b"",
    );
    assert_eq!(
        start.status,
        202,
        "upload start signed with the env keys: {}\n{}\n{}",
        start.text(),
        reg.log_text(),
        moto.log_text()
    );
    drop(reg);

    let (wrong, _) = render(
        s3_test("registry", &moto.url(), bucket, &extra),
        (&ak, "not-the-secret-key"),
        Some(secret),
    );
    let reg = serve(&wrong);
    let start = send(
        "POST",
        &format!(
            "http://127.0.0.1:{}/v2/regbake/auth/blobs/uploads/",
            reg.port
        ),
        b"",
    );
    assert_eq!(start.status, 500, "wrong key accepted: {}", start.text());
    assert!(
        reg.log_text().contains("SignatureDoesNotMatch"),
        "{}",
        reg.log_text()
    );
}
