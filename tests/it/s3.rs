//! `[registry.storage] backend = "s3"` against a real S3-compatible server:
//! moto's standalone server (PyPI `moto[server]`) on 127.0.0.1, several
//! rendered appliances served by real registries (distribution 2.8) sharing
//! one bucket, and real clients (skopeo, `regbake probe`, raw HTTP).
//!
//! Nothing of the rendered S3 config is overridden: only the listen address.
//!
//! Path style: distribution 2.8 switches the AWS SDK to path-style addressing
//! whenever `regionendpoint` is set (it has no `forcepathstyle` key; 3.x
//! does). Checked here: moto sees `PUT /BUCKET/docker/registry/v2/…` with the
//! bucket in the path, and a virtual-hosted request (`BUCKET.127.0.0.1`)
//! could not even resolve. `secure: true` is harmless with an `http://`
//! endpoint: the SDK only adds a scheme when the endpoint has none.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{log_output, on_a_free_port, require_tool, wait_listening, Output, Test};
use crate::registry::{oci_layout, probe, skopeo, tools_present, Served, KEY};

pub(crate) const CONFIG: &str = "etc/docker/registry/config.yml";
const AK: &str = "RB_S3_ACCESS_KEY";
const SK: &str = "RB_S3_SECRET_KEY";
pub(crate) const HS: &str = "RB_HTTP_SECRET";

pub(crate) fn moto_present() -> bool {
    tools_present() && require_tool("moto_server")
}

/// A running `moto_server` on 127.0.0.1; killed on drop.
pub(crate) struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// `unauthenticated`: with `Some(n)`, moto checks SigV4 signatures and
    /// IAM policies after the first `n` requests (INITIAL_NO_AUTH_ACTION_COUNT).
    pub(crate) fn start(unauthenticated: Option<u32>) -> Self {
        on_a_free_port("moto_server", |port| Self::try_start(unauthenticated, port))
    }

    /// None when another process took the port first.
    fn try_start(unauthenticated: Option<u32>, port: u16) -> Option<Self> {
        let dir = tempfile::tempdir().expect("moto dir");
        let log = dir.path().join("moto.log");
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path());
        log_output(&mut cmd, &log);
        if let Some(n) = unauthenticated {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("start moto_server");
        let mut m = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        // Python imports take a few seconds on a busy machine.
        wait_listening(
            "moto_server",
            &mut m.child,
            port,
            &m.log,
            Duration::from_secs(60),
        )
        .then_some(m)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn create_bucket(&self, bucket: &str) {
        let r = send("PUT", &format!("{}/{bucket}", self.url()), b"");
        assert_eq!(r.status, 200, "creating bucket {bucket}: {}", r.text());
    }

    /// An IAM action while auth is still off. moto picks the service from
    /// the credential scope, so the (unchecked) header names IAM.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", "2010-05-08");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let mut resp = agent()
            .post(&format!("{}/", self.url()))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form.finish())
            .expect("iam request");
        let body = resp.body_mut().read_to_string().expect("iam body");
        assert_eq!(resp.status().as_u16(), 200, "iam {params:?}: {body}");
        body
    }

    /// An IAM user allowed s3:* with a fresh access key, then `bucket`:
    /// the four requests made before moto starts checking (start with
    /// `Some(4)`). Returns (access key id, secret access key).
    pub(crate) fn user_and_bucket(&self, bucket: &str) -> (String, String) {
        self.iam(&[("Action", "CreateUser"), ("UserName", "registry")]);
        let xml = self.iam(&[("Action", "CreateAccessKey"), ("UserName", "registry")]);
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "registry"),
            ("PolicyName", "s3"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ),
        ]);
        self.create_bucket(bucket);
        let doc = roxmltree::Document::parse(&xml).expect("CreateAccessKey xml");
        let text = |tag: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .unwrap_or_else(|| panic!("no {tag} in {xml}"))
                .to_string()
        };
        (text("AccessKeyId"), text("SecretAccessKey"))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        // Everything here is on 127.0.0.1: never via a proxy from the env.
        .proxy(None)
        .build()
        .into()
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) fn send(method: &str, url: &str, body: &[u8]) -> Reply {
    let a = agent();
    const OCTETS: &str = "application/octet-stream";
    let resp = match method {
        "POST" => a.post(url).send_empty(),
        "PATCH" => a.patch(url).header("Content-Type", OCTETS).send(body),
        "PUT" => a.put(url).header("Content-Type", OCTETS).send(body),
        "GET" => a.get(url).call(),
        "DELETE" => a.delete(url).call(),
        _ => panic!("unsupported method {method}"),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| {
            url::Url::parse(url)
                .and_then(|base| base.join(l))
                .expect("location")
                .to_string()
        });
    let body = resp.body_mut().read_to_vec().expect("read body");
    Reply {
        status: resp.status().as_u16(),
        location,
        body,
    }
}

/// `url` with its port replaced: the same request sent to another node, as
/// a load balancer would.
fn on_port(url: &str, port: u16) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_port(Some(port)).expect("port");
    u.to_string()
}

fn with_digest(url: &str, digest: &str) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.query_pairs_mut().append_pair("digest", digest);
    u.to_string()
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// One appliance whose registry stores in `bucket` at `endpoint`;
/// `registry_extra` goes under `[registry]` (e.g. `http_secret_env`).
pub(crate) fn s3_test(name: &str, endpoint: &str, bucket: &str, registry_extra: &str) -> Test {
    Test::new().config(&format!(
        "version = 1\n[appliance]\nname = \"{name}\"\nhostname = \"{name}.local\"\n\
         [user]\nssh_keys = [\"{KEY}\"]\n[registry]\n{registry_extra}\n\
         [registry.storage]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
         endpoint = \"{endpoint}\"\naccess_key_env = \"{AK}\"\nsecret_key_env = \"{SK}\"\n"
    ))
}

pub(crate) fn render(t: Test, keys: (&str, &str), http_secret: Option<&str>) -> (Test, Output) {
    let mut t = t.env(AK, keys.0).env(SK, keys.1);
    if let Some(s) = http_secret {
        t = t.env(HS, s);
    }
    let t = t.args(&["render", "-v"]);
    let o = t.success();
    (t, o)
}

/// The `http.secret` a rendered config carries.
fn http_secret_of(t: &Test) -> String {
    let cfg = t.read(&format!("out/overlay/{CONFIG}"));
    cfg.lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no http secret in\n{cfg}"))
        .to_string()
}

pub(crate) fn serve(t: &Test) -> Served {
    Served::start_with(&t.path().join("out"), CONFIG, false)
}

const TEST_KEYS: (&str, &str) = ("AKIAREGBAKETEST00001", "s3/secret+key=with-yaml:chars");

/// A moto server with `bucket`, and appliances A and B rendered for it
/// with `http_secret` as their shared `http_secret_env`.
fn two_appliances(bucket: &str, http_secret: &str) -> (Moto, Test, Test) {
    let moto = Moto::start(None);
    moto.create_bucket(bucket);
    let extra = format!("http_secret_env = \"{HS}\"");
    let [a, b] = ["registry-a", "registry-b"].map(|name| {
        render(
            s3_test(name, &moto.url(), bucket, &extra),
            TEST_KEYS,
            Some(http_secret),
        )
        .0
    });
    (moto, a, b)
}

/// Two appliances rendered with the same bucket, endpoint and http secret:
/// an image pushed through A is pulled in full through B, and the probe's
/// push/pull/delete passes on both.
#[test]
fn appliances_share_one_bucket() {
    if !moto_present() {
        return;
    }
    let (bucket, secret) = ("regbake-shared", "shared-http-secret-0123456789");
    let (moto, a, b) = two_appliances(bucket, secret);
    assert_eq!(http_secret_of(&a), format!("{secret:?}"));
    assert_eq!(http_secret_of(&a), http_secret_of(&b));
    let ra = serve(&a);
    let rb = serve(&b);

    let src = oci_layout(&a.path().join("image"));
    let (ok, text) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &ra.docker_ref("regbake/shared:v1"),
    ]);
    assert!(ok, "push through A failed: {text}\n{}", ra.log_text());
    // Every blob read back through B, digests verified by skopeo.
    let pulled = a.path().join("pulled");
    let (ok, text) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &rb.docker_ref("regbake/shared:v1"),
        &format!("oci:{}:v1", pulled.display()),
    ]);
    assert!(ok, "pull through B failed: {text}\n{}", rb.log_text());
    let digest = |r: &Served| {
        let (ok, text) = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &r.docker_ref("regbake/shared:v1"),
        ]);
        assert!(ok, "inspect failed: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("inspect json");
        v["Digest"].as_str().expect("Digest").to_string()
    };
    assert_eq!(digest(&ra), digest(&rb));

    // The probe's own push/pull/delete on each node, then one kept on A
    // and seen through B.
    for r in [&ra, &rb] {
        let url = format!("http://127.0.0.1:{}", r.port);
        let (code, text) = probe(&[&url, "--push"], &[]);
        assert_eq!(code, 0, "probe --push failed: {text}\n{}", r.log_text());
    }
    let (code, text) = probe(
        &[
            &format!("http://127.0.0.1:{}", ra.port),
            "--push",
            "--keep",
            "--repo",
            "regbake/kept",
        ],
        &[],
    );
    assert_eq!(code, 0, "probe --push --keep on A failed: {text}");
    let (ok, text) = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &rb.docker_ref("regbake/kept:probe"),
    ]);
    assert!(ok, "B does not see A's probe image: {text}");

    // Path-style addressing: the bucket is the first path segment.
    let log = moto.log_text();
    assert!(
        log.contains(&format!("\"PUT /{bucket}/docker/registry/v2/")),
        "no path-style PUT in moto's log:\n{log}"
    );
}

/// Why the secret must be shared: an upload started on A (POST) and
/// continued on B (PATCH, then PUT with the `_state` B returned, on A)
/// completes when both have the same http secret; with a generated secret
/// each, B rejects A's upload state (BLOB_UPLOAD_INVALID) while A itself
/// still takes it.
#[test]
fn blob_upload_moves_between_nodes_only_with_a_shared_secret() {
    if !moto_present() {
        return;
    }
    let bucket = "regbake-uploads";
    let (moto, a, b) = two_appliances(bucket, "shared-http-secret-abcdef");
    let (ra, rb) = (serve(&a), serve(&b));
    let (first, second) = (
        b"first chunk of the blob, ".as_slice(),
        b"and the rest".as_slice(),
    );
    let whole = [first, second].concat();
    let digest = sha(&whole);

    let start = send(
        "POST",
        &format!("http://127.0.0.1:{}/v2/regbake/up/blobs/uploads/", ra.port),
        b"",
    );
    assert_eq!(start.status, 202, "POST on A: {}", start.text());
    let loc = start.location.expect("Location");
    assert!(loc.contains("_state="), "{loc}");
    let patch = send("PATCH", &on_port(&loc, rb.port), first);
    assert_eq!(
        patch.status,
        202,
        "PATCH on B of A's upload: {}\n{}",
        patch.text(),
        rb.log_text()
    );
    let loc = patch.location.expect("Location");
    let put = send(
        "PUT",
        &with_digest(&on_port(&loc, ra.port), &digest),
        second,
    );
    assert_eq!(
        put.status,
        201,
        "PUT on A of B's upload: {}\n{}",
        put.text(),
        ra.log_text()
    );
    let got = send(
        "GET",
        &format!("http://127.0.0.1:{}/v2/regbake/up/blobs/{digest}", rb.port),
        b"",
    );
    assert_eq!(got.status, 200, "GET on B: {}", got.text());
    assert_eq!(got.body, whole);
    drop((ra, rb));

    // Each appliance with its own generated secret.
    let (c, _) = render(
        s3_test("registry-c", &moto.url(), bucket, ""),
        TEST_KEYS,
        None,
    );
    let (d, _) = render(
        s3_test("registry-d", &moto.url(), bucket, ""),
        TEST_KEYS,
        None,
    );
    assert_ne!(http_secret_of(&c), http_secret_of(&d));
    let (rc, rd) = (serve(&c), serve(&d));
    let start = send(
        "POST",
        &format!("http://127.0.0.1:{}/v2/regbake/up/blobs/uploads/", rc.port),
        b"",
    );
    assert_eq!(start.status, 202, "POST on C: {}", start.text());
    let loc = start.location.expect("Location");
    for method in ["PATCH", "PUT"] {
        let url = match method {
            "PUT" => with_digest(&on_port(&loc, rd.port), &sha(first)),
            _ => on_port(&loc, rd.port),
        };
        let r = send(method, &url, first);
        assert_eq!(r.status, 404, "{method} on D of C's upload: {}", r.text());
        assert!(
            r.text().contains("BLOB_UPLOAD_INVALID"),
            "{method} on D: {}",
            r.text()
        );
    }
    // The upload itself is fine: its own node continues it.
    let own = send("PATCH", &loc, first);
    assert_eq!(own.status, 202, "PATCH on C: {}", own.text());
}

/// A blob deleted through A is gone through B too. Distribution's
/// `inmemory` blob descriptor cache is per process: with it, B went on
/// answering 200 (HEAD and GET) for a blob A had deleted, and after a
/// garbage collection a client told "exists" would skip the upload and push
/// a manifest pointing at nothing. So S3 configs render no such cache.
#[test]
fn a_delete_on_one_node_is_seen_by_the_others() {
    if !moto_present() {
        return;
    }
    let (_moto, a, b) = two_appliances("regbake-delete", "shared-http-secret-delete");
    let cfg = a.read(&format!("out/overlay/{CONFIG}"));
    assert!(!cfg.contains("blobdescriptor"), "{cfg}");
    let (ra, rb) = (serve(&a), serve(&b));
    let body = b"a blob that A deletes";
    let digest = sha(body);
    let start = send(
        "POST",
        &format!("http://127.0.0.1:{}/v2/regbake/del/blobs/uploads/", ra.port),
        b"",
    );
    assert_eq!(start.status, 202, "POST on A: {}", start.text());
    let put = send(
        "PUT",
        &with_digest(&start.location.expect("Location"), &digest),
        body,
    );
    assert_eq!(put.status, 201, "PUT on A: {}", put.text());
    let blob = |port: u16| format!("http://127.0.0.1:{port}/v2/regbake/del/blobs/{digest}");
    // B reads it first (what would fill a cache).
    let got = send("GET", &blob(rb.port), b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &body[..]));
    let del = send("DELETE", &blob(ra.port), b"");
    assert_eq!(del.status, 202, "DELETE on A: {}", del.text());
    let got = send("GET", &blob(rb.port), b"");
    assert_eq!(
        got.status,
        404,
        "B still serves the deleted blob: {}",
        got.text()
    );
}
