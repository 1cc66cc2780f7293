//! `regbake probe URL`: smoke-test a running registry through the
//! Distribution HTTP API. `GET /v2/` always; with `push`, a tiny deterministic
//! OCI image is pushed, pulled back with every digest verified, and deleted
//! again when the registry allows it. One line per step with its timing.

use std::fmt::Write as _;
use std::io::{Chain, Cursor, Read, Repeat, Take, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use ureq::http::{Response, StatusCode};
use ureq::{Agent, Body, RequestBuilder};
use url::Url;

use crate::util::Format;

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed layer: its content is pseudo-random, so compressing would
/// only cost time; the OCI spec allows plain tar layers.
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const API_HEADER: &str = "docker-distribution-api-version";
const DIGEST_HEADER: &str = "docker-content-digest";

/// `regbake probe`: what to ask of which registry.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Registry URL: http://HOST:PORT or https://HOST:PORT
    #[arg(value_parser = parse_url)]
    pub url: url::Url,
    /// Trust only this CA certificate (PEM) for https
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the TLS certificate (throwaway test registries only)
    #[arg(long)]
    pub insecure: bool,
    /// User name for Basic auth (the password comes from --password-env)
    #[arg(long, value_name = "USER", requires = "password_env")]
    pub username: Option<String>,
    /// Name of the environment variable holding the password
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,
    /// Repository for the probe image
    #[arg(long, value_name = "NAME", default_value = "regbake-probe", value_parser = parse_repo)]
    pub repo: String,
    /// Tag for the probe image
    #[arg(long, value_name = "TAG", default_value = "probe", value_parser = parse_tag)]
    pub tag: String,
    /// Push a tiny image, pull it back, verify every digest, delete it
    #[arg(long)]
    pub push: bool,
    /// Keep the pushed image (skip the delete step)
    #[arg(long, requires = "push")]
    pub keep: bool,
    /// Size of the probe layer's content in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4096, requires = "push",
          value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub layer_size: u64,
    /// Also write the probe image as an OCI layout into DIR (for the bench)
    #[arg(long, value_name = "DIR", hide = true, requires = "push")]
    pub save_oci: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One probe step as printed (text) or serialised (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub status: Status,
    pub ms: u64,
    pub message: String,
}

/// How a step ended when it did not fail.
enum Done {
    Passed(String),
    Skipped(String),
}

struct Report {
    json: bool,
    steps: Vec<Step>,
}

impl Report {
    /// Run one named step, time it and print its line (text mode) at once so
    /// a slow push shows progress step by step.
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, Done)>) -> Result<T> {
        let (ms, result) = timed(f);
        self.record(name, ms, result)
    }

    /// Record a step that was timed elsewhere (on another thread).
    fn record<T>(&mut self, name: &str, ms: u64, result: Result<(T, Done)>) -> Result<T> {
        let (status, message, ret) = match result {
            Ok((v, Done::Passed(m))) => (Status::Passed, m, Ok(v)),
            Ok((v, Done::Skipped(m))) => (Status::Skipped, m, Ok(v)),
            Err(e) => (
                Status::Failed,
                format!("{e:#}"),
                Err(e.context(format!("{name} failed"))),
            ),
        };
        let step = Step {
            step: name.to_string(),
            status,
            ms,
            message,
        };
        if !self.json {
            print_step(&step);
        }
        self.steps.push(step);
        ret
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let started = Instant::now();
    let v = f();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (ms, v)
}

fn print_step(s: &Step) {
    let label = match s.status {
        Status::Passed => "passed",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    };
    let mut lines = s.message.lines();
    println!(
        "{label:<8} {:<24} {:>6} ms  {}",
        s.step,
        s.ms,
        lines.next().unwrap_or("")
    );
    for line in lines {
        println!("{:>42}| {line}", "");
    }
}

/// Run the probe; prints the steps and fails (exit 1) on the first failed step.
pub fn run(opts: &Args) -> Result<()> {
    let mut report = Report {
        json: opts.format == Format::Json,
        steps: vec![],
    };
    let started = Instant::now();
    let result = probe(opts, &mut report);
    if opts.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.steps).context("printing steps")?
        );
    } else if result.is_ok() {
        println!(
            "probe of {} passed: {} steps in {} ms",
            opts.url,
            report.steps.len(),
            started.elapsed().as_millis()
        );
    }
    result
}

fn probe(opts: &Args, report: &mut Report) -> Result<()> {
    let client = Client::new(opts)?;
    if client.auth.is_some() && client.base.scheme() == "http" {
        eprintln!("warning: sending credentials over plain http");
    }

    let needs_auth = report.step("GET /v2/", || client.check_v2(false))?;
    if client.auth.is_some() {
        report.step("GET /v2/ (credentials)", || client.check_v2(true))?;
    }
    if !opts.push {
        return Ok(());
    }
    // Without credentials a push to a registry that asked for them fails
    // below with the registry's own 401 answer; say why up front.
    let hint = if needs_auth && client.auth.is_none() {
        " (the registry wants credentials: --username and --password-env)"
    } else {
        ""
    };
    let with_hint = |e: anyhow::Error| anyhow!("{e:#}{hint}");

    let repo = &opts.repo;
    // The layer first: the config names its digests. It is generated while
    // it uploads, so the registry works in parallel with the generator.
    let layer = report.step("push layer", || {
        client
            .push_layer(repo, opts.layer_size)
            .map(|(layer, m)| (layer, Done::Passed(m)))
            .map_err(with_hint)
    })?;
    let image = Image::new(layer)?;
    if let Some(dir) = &opts.save_oci {
        report.step("save OCI layout", || {
            image.save_oci(dir, &opts.tag, opts.layer_size)?;
            Ok(((), Done::Passed(dir.display().to_string())))
        })?;
    }
    // The big download runs beside the small steps instead of after them.
    // The manifest delete is among them: a blob stays fetchable by digest
    // when the manifest naming it goes, and its line still prints last.
    std::thread::scope(|scope| -> Result<()> {
        let pull_layer = scope.spawn(|| {
            timed(|| {
                let m = client.pull_layer(repo, &image.layer, opts.layer_size)?;
                Ok(((), Done::Passed(m)))
            })
        });
        let small = small_steps(&client, report, opts, &image, &with_hint);
        let deleted = small.as_ref().ok().map(|()| {
            timed(|| {
                if opts.keep {
                    return Ok(((), Done::Skipped(format!("kept {repo}:{}", opts.tag))));
                }
                Ok(((), client.delete_manifest(repo, &image.manifest)?))
            })
        });
        let (ms, pulled) = pull_layer
            .join()
            .map_err(|_| anyhow!("the layer download panicked"))?;
        small?;
        report.record("pull layer", ms, pulled)?;
        if let Some((ms, deleted)) = deleted {
            report.record("delete manifest", ms, deleted)?;
        }
        Ok(())
    })
}

fn small_steps(
    client: &Client,
    report: &mut Report,
    opts: &Args,
    image: &Image,
    with_hint: &dyn Fn(anyhow::Error) -> anyhow::Error,
) -> Result<()> {
    let repo = &opts.repo;
    report.step("push config", || {
        client
            .push_blob(repo, &image.config)
            .map(|m| ((), Done::Passed(m)))
            .map_err(with_hint)
    })?;
    report.step("push manifest", || {
        client
            .push_manifest(repo, &opts.tag, &image.manifest)
            .map(|m| ((), Done::Passed(m)))
            .map_err(with_hint)
    })?;
    report.step("pull manifest", || {
        let m = client.pull_manifest(repo, &opts.tag, &image.manifest)?;
        Ok(((), Done::Passed(m)))
    })?;
    report.step("pull config", || {
        let m = client.pull_blob(repo, "config", &image.config.digest, image.config.size())?;
        Ok(((), Done::Passed(m)))
    })?;
    Ok(())
}

/// "sha256:0123456789ab" for step lines.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{bytes} bytes")
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ---------------------------------------------------------------------------
// The probe image

/// A small in-memory blob (config, manifest).
pub struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: sha256_digest(&data),
            data,
        }
    }

    fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// What the layer pass found out: the layer is streamed, never held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// sha256 of the tar blob (also the config's `rootfs.diff_ids`, as the
    /// layer is not compressed).
    pub digest: String,
    pub diff_id: String,
    /// Size of the tar blob.
    pub size: u64,
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// The size of the layer tar for `content_size` bytes: one header block, the
/// content padded to 512-byte blocks, and the two zero blocks that end a tar.
fn layer_tar_size(content_size: u64) -> u64 {
    512 + content_size.div_ceil(512) * 512 + 1024
}

type LayerBytes = Chain<Chain<Cursor<[u8; 512]>, Pattern>, Take<Repeat>>;

/// The probe layer's bytes: a tar header, the content, the padding and the
/// two end blocks.
fn layer_bytes(content_size: u64) -> Result<LayerBytes> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path("regbake-probe/data")
        .context("the layer's tar header")?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content_size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    let content = Pattern {
        pos: 0,
        size: content_size,
    };
    let padding = layer_tar_size(content_size) - 512 - content_size;
    Ok(Cursor::new(*header.as_bytes())
        .chain(content)
        .chain(std::io::repeat(0).take(padding)))
}

/// The probe layer as a byte stream: one file of `content_size`
/// deterministic bytes in a tar (header, content, padding, end blocks),
/// generated as it is read and hashed on the way. The layer is never held,
/// and the upload needs no second thread: on a small machine the registry
/// keeps a core to itself. Same size in, same bytes out.
struct LayerStream {
    bytes: LayerBytes,
    hasher: Sha256,
    len: u64,
    size: u64,
}

impl LayerStream {
    pub fn new(content_size: u64) -> Result<Self> {
        Ok(Self {
            bytes: layer_bytes(content_size)?,
            hasher: Sha256::new(),
            len: 0,
            size: layer_tar_size(content_size),
        })
    }

    /// The layer's digest and size, once it has been read to the end.
    pub fn finish(self) -> Result<Layer> {
        if self.len != self.size {
            bail!(
                "the layer stream stopped after {} of {} bytes",
                self.len,
                self.size
            );
        }
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok(Layer {
            diff_id: digest.clone(),
            digest,
            size: self.len,
        })
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Write the probe layer to `sink` in one pass.
fn write_layer<W: Write>(content_size: u64, mut sink: W) -> Result<(Layer, W)> {
    let mut layer = LayerStream::new(content_size)?;
    std::io::copy(&mut layer, &mut sink).context("writing the layer")?;
    Ok((layer.finish()?, sink))
}

/// The probe image: the streamed layer's facts, its OCI config and manifest.
pub struct Image {
    pub layer: Layer,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    pub fn new(layer: Layer) -> Result<Image> {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.diff_id] },
            "history": [{ "created_by": "regbake probe" }],
        });
        let config = Blob::new(
            CONFIG_TYPE,
            serde_json::to_vec(&config).context("image config")?,
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(CONFIG_TYPE, &config.digest, config.size()),
            "layers": [descriptor(LAYER_TYPE, &layer.digest, layer.size)],
        });
        let manifest = Blob::new(
            MANIFEST_TYPE,
            serde_json::to_vec(&manifest).context("image manifest")?,
        );
        Ok(Image {
            layer,
            config,
            manifest,
        })
    }

    /// Write the image as an OCI image layout (for `skopeo copy oci:DIR:TAG`),
    /// generating the layer again straight into its file.
    pub fn save_oci(&self, dir: &Path, tag: &str, content_size: u64) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        let blob_path = |digest: &str| blobs.join(digest.trim_start_matches("sha256:"));
        let path = blob_path(&self.layer.digest);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let (layer, file) = write_layer(content_size, std::io::BufWriter::new(file))?;
        file.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        if layer != self.layer {
            bail!(
                "the layer is not deterministic: {layer:?} != {:?}",
                self.layer
            );
        }
        for blob in [&self.config, &self.manifest] {
            let path = blob_path(&blob.digest);
            std::fs::write(&path, &blob.data)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let mut manifest = descriptor(MANIFEST_TYPE, &self.manifest.digest, self.manifest.size());
        manifest["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest] });
        let files = [
            (
                "oci-layout",
                r#"{"imageLayoutVersion":"1.0.0"}"#.to_string(),
            ),
            ("index.json", index.to_string()),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Deterministic incompressible bytes, the same however the reader is
/// called. Word `i` is `table[i % TABLE_WORDS] ^ key(i / TABLE_WORDS)`:
/// a 1 MiB table of splitmix64 values, each copy of it masked with its own
/// splitmix64 key, so no 8-byte word repeats within the layer. Generating
/// it is an xor per word, which keeps it off the probe's critical path.
struct Pattern {
    pos: u64,
    size: u64,
}

const TABLE_WORDS: usize = 1 << 17;

fn table() -> &'static [u64] {
    static TABLE: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..TABLE_WORDS as u64).map(splitmix64).collect())
}

/// The mask of table copy `block`; drawn from indexes the table never uses.
fn block_key(block: u64) -> u64 {
    splitmix64((1 << 40) + block)
}

fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pattern {
    fn word(index: u64) -> [u8; 8] {
        let slot = (index % TABLE_WORDS as u64) as usize;
        (table()[slot] ^ block_key(index / TABLE_WORDS as u64)).to_le_bytes()
    }

    /// Whole words from word `index` on, one table copy (one key) at a time.
    fn fill_words(mut index: u64, mut out: &mut [u8]) {
        let table = table();
        while !out.is_empty() {
            let slot = (index % TABLE_WORDS as u64) as usize;
            let key = block_key(index / TABLE_WORDS as u64);
            let words = (out.len() / 8).min(TABLE_WORDS - slot);
            let (run, rest) = out.split_at_mut(words * 8);
            for (w, t) in run.chunks_exact_mut(8).zip(&table[slot..slot + words]) {
                w.copy_from_slice(&(t ^ key).to_le_bytes());
            }
            index += words as u64;
            out = rest;
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let mut out = &mut buf[..n];
        let mut pos = self.pos;
        // A partial word first, then whole words, then a partial word.
        while !out.is_empty() {
            let off = (pos % 8) as usize;
            if off == 0 && out.len() >= 8 {
                let (whole, rest) = out.split_at_mut(out.len() / 8 * 8);
                Self::fill_words(pos / 8, whole);
                pos += whole.len() as u64;
                out = rest;
                continue;
            }
            let take = (8 - off).min(out.len());
            let (part, rest) = out.split_at_mut(take);
            part.copy_from_slice(&Self::word(pos / 8)[off..off + take]);
            pos += take as u64;
            out = rest;
        }
        self.pos = pos;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// The HTTP side

struct Client {
    agent: Agent,
    base: Url,
    /// `Basic …` header value; never printed.
    auth: Option<String>,
    username: Option<String>,
}

impl Client {
    fn new(opts: &Args) -> Result<Self> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &opts.ca {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading --ca {}", ca.display()))?;
            let mut certs = vec![];
            for item in ureq::tls::parse_pem(&pem) {
                if let ureq::tls::PemItem::Certificate(c) =
                    item.with_context(|| format!("parsing --ca {}", ca.display()))?
                {
                    certs.push(c);
                }
            }
            if certs.is_empty() {
                bail!("--ca {}: no PEM certificate in the file", ca.display());
            }
            // Trust only this CA, as a docker client with certs.d/ca.crt does.
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        } else {
            // The machine's trust store (where an internal CA is installed),
            // as curl and docker use; SSL_CERT_FILE and SSL_CERT_DIR apply.
            tls = tls.root_certs(ureq::tls::RootCerts::PlatformVerifier);
        }
        if opts.insecure {
            tls = tls.disable_verification(true);
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .user_agent(concat!("regbake-probe/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let auth = match (&opts.username, &opts.password_env) {
            (Some(user), Some(var)) => {
                let password = std::env::var(var).map_err(|e| match e {
                    std::env::VarError::NotPresent => {
                        anyhow!("--password-env {var}: the environment variable is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        anyhow!("--password-env {var}: the value is not valid UTF-8")
                    }
                })?;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            (None, None) => None,
            _ => bail!("--username and --password-env go together"),
        };
        Ok(Self {
            agent,
            base: opts.url.clone(),
            auth,
            username: opts.username.clone(),
        })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("building the URL for {path}"))
    }

    fn authed<B>(&self, rb: RequestBuilder<B>) -> RequestBuilder<B> {
        match &self.auth {
            Some(a) => rb.header("Authorization", a),
            None => rb,
        }
    }

    /// `GET /v2/`: returns whether the registry asked for credentials.
    fn check_v2(&self, with_auth: bool) -> Result<(bool, Done)> {
        let url = self.url("/v2/")?;
        let rb = self.agent.get(url.as_str());
        let rb = if with_auth { self.authed(rb) } else { rb };
        let mut resp = rb.call().map_err(|e| transport(e, &url))?;
        let status = resp.status();
        let api = header(&resp, API_HEADER);
        let check_api = |what: &str| -> Result<()> {
            match api.as_deref() {
                Some("registry/2.0") => Ok(()),
                Some(other) => bail!("{what}, but Docker-Distribution-Api-Version is {other:?}, expected \"registry/2.0\""),
                None => bail!("{what}, but no Docker-Distribution-Api-Version header: not a Docker registry (v2 API)?"),
            }
        };
        match status.as_u16() {
            200 => {
                drain(&mut resp);
                check_api("200 OK")?;
                Ok((false, Done::Passed("200 OK, registry/2.0".into())))
            }
            401 if with_auth => {
                let body = error_body(&mut resp);
                bail!(
                    "credentials rejected for user {:?}: HTTP 401 Unauthorized{body}",
                    self.username.as_deref().unwrap_or_default()
                )
            }
            401 => {
                let Some(challenge) = header(&resp, "www-authenticate") else {
                    bail!("HTTP 401 Unauthorized without a WWW-Authenticate header");
                };
                drain(&mut resp);
                check_api("401 Unauthorized")?;
                if self.auth.is_some() && !challenge.to_ascii_lowercase().starts_with("basic") {
                    bail!("the registry wants {challenge}; probe supports Basic auth only");
                }
                Ok((
                    true,
                    Done::Passed(format!(
                        "401 credentials needed (WWW-Authenticate: {challenge}), registry/2.0"
                    )),
                ))
            }
            _ => Err(unexpected(&mut resp, &url)),
        }
    }

    /// POST /v2/<repo>/blobs/uploads/ → the upload URL from Location.
    fn start_upload(&self, repo: &str) -> Result<Url> {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let mut resp = self
            .authed(self.agent.post(start.as_str()))
            .send_empty()
            .map_err(|e| transport(e, &start))?;
        if resp.status().as_u16() != 202 {
            return Err(unexpected(&mut resp, &start).context("starting the upload (POST)"));
        }
        let location = upload_location(&resp, &start)?;
        drain(&mut resp);
        Ok(location)
    }

    /// PUT <upload>?digest=… with the rest of the blob (maybe empty), then
    /// HEAD the blob: it must now be there with its size.
    fn finish_upload(
        &self,
        repo: &str,
        upload: &Url,
        digest: &str,
        size: u64,
        body: &[u8],
    ) -> Result<()> {
        let put = with_digest(upload, digest);
        let mut resp = self
            .authed(self.agent.put(put.as_str()))
            .header("Content-Type", "application/octet-stream")
            .send(body)
            .map_err(|e| transport(e, &put))?;
        if resp.status().as_u16() != 201 {
            return Err(unexpected(&mut resp, &put).context("finishing the upload (PUT)"));
        }
        let echoed = header(&resp, DIGEST_HEADER);
        drain(&mut resp);
        same_digest(echoed.as_deref(), digest)?;

        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let mut resp = self
            .authed(self.agent.head(url.as_str()))
            .call()
            .map_err(|e| transport(e, &url))?;
        if resp.status().as_u16() != 200 {
            return Err(unexpected(&mut resp, &url).context("HEAD after the upload"));
        }
        let length = header(&resp, "content-length").and_then(|l| l.parse::<u64>().ok());
        drain(&mut resp);
        if length != Some(size) {
            bail!("HEAD after the upload: Content-Length {length:?}, expected {size}");
        }
        Ok(())
    }

    /// A small blob in one request after the POST. Uploaded even when the
    /// registry has it (a repeated probe leaves blobs behind): a smoke test
    /// must exercise the upload path every time.
    fn push_blob(&self, repo: &str, blob: &Blob) -> Result<String> {
        let upload = self.start_upload(repo)?;
        self.finish_upload(repo, &upload, &blob.digest, blob.size(), &blob.data)?;
        Ok(format!(
            "{} ({}) uploaded, 201 Created, HEAD 200",
            short(&blob.digest),
            human(blob.size())
        ))
    }

    /// The layer, generated while it streams in one PATCH; the digest is
    /// known at the end, so the closing PUT carries it with an empty body.
    fn push_layer(&self, repo: &str, content_size: u64) -> Result<(Layer, String)> {
        let upload = self.start_upload(repo)?;
        let mut body = LayerStream::new(content_size)?;
        let mut resp = self
            .authed(self.agent.patch(upload.as_str()))
            .header("Content-Type", "application/octet-stream")
            // Known up front: a plain body instead of chunked encoding.
            .header("Content-Length", layer_tar_size(content_size).to_string())
            .send(ureq::SendBody::from_reader(&mut body))
            .map_err(|e| transport(e, &upload))?;
        if resp.status().as_u16() != 202 {
            return Err(unexpected(&mut resp, &upload).context("streaming the layer (PATCH)"));
        }
        let layer = body.finish()?;
        let upload = upload_location(&resp, &upload)?;
        drain(&mut resp);
        self.finish_upload(repo, &upload, &layer.digest, layer.size, &[])?;
        let msg = format!(
            "{} ({}) streamed, 201 Created, HEAD 200",
            short(&layer.digest),
            human(layer.size)
        );
        Ok((layer, msg))
    }

    fn push_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"))?;
        let mut resp = self
            .authed(self.agent.put(url.as_str()))
            .header("Content-Type", manifest.media_type)
            .send(&manifest.data[..])
            .map_err(|e| transport(e, &url))?;
        if resp.status().as_u16() != 201 {
            return Err(unexpected(&mut resp, &url));
        }
        let echoed = header(&resp, DIGEST_HEADER);
        drain(&mut resp);
        same_digest(echoed.as_deref(), &manifest.digest)?;
        Ok(format!(
            "{repo}:{tag} = {}, 201 Created",
            short(&manifest.digest)
        ))
    }

    fn pull_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"))?;
        let mut resp = self
            .authed(self.agent.get(url.as_str()))
            .header("Accept", manifest.media_type)
            .call()
            .map_err(|e| transport(e, &url))?;
        if resp.status().as_u16() != 200 {
            return Err(unexpected(&mut resp, &url));
        }
        let content_type = header(&resp, "content-type").unwrap_or_default();
        let echoed = header(&resp, DIGEST_HEADER);
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| transport(e, &url))?;
        let got = sha256_digest(&body);
        if got != manifest.digest {
            bail!(
                "manifest digest mismatch: pushed {}, got {got}",
                manifest.digest
            );
        }
        same_digest(echoed.as_deref(), &manifest.digest)?;
        if content_type != manifest.media_type {
            bail!(
                "manifest Content-Type is {content_type:?}, expected {:?}",
                manifest.media_type
            );
        }
        Ok(format!("{} verified", short(&got)))
    }

    /// GET /v2/<repo>/blobs/<digest>, which must answer 200.
    fn get_blob(&self, repo: &str, digest: &str) -> Result<(Url, Response<Body>)> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let mut resp = self
            .authed(self.agent.get(url.as_str()))
            .call()
            .map_err(|e| transport(e, &url))?;
        if resp.status().as_u16() != 200 {
            return Err(unexpected(&mut resp, &url));
        }
        Ok((url, resp))
    }

    /// Stream the blob through sha256: nothing is kept.
    fn pull_blob(&self, repo: &str, name: &str, digest: &str, size: u64) -> Result<String> {
        let (url, mut resp) = self.get_blob(repo, digest)?;
        let mut reader = resp.body_mut().as_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got_size = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("reading GET {url}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            got_size += n as u64;
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != digest || got_size != size {
            bail!("{name} digest mismatch: pushed {digest} ({size} bytes), got {got} ({got_size} bytes)");
        }
        Ok(format!("{} ({}) verified", short(&got), human(size)))
    }

    /// Pull the layer back and compare it byte for byte with the layer
    /// generated again. The pushed bytes were hashed to `layer.digest` on
    /// the way up, so equal bytes carry exactly that digest: the same proof
    /// as hashing the download, for a fraction of the CPU on the probe's
    /// critical path (hashing 64 MiB costs more than receiving it).
    fn pull_layer(&self, repo: &str, layer: &Layer, content_size: u64) -> Result<String> {
        let digest = &layer.digest;
        let (url, mut resp) = self.get_blob(repo, digest)?;
        let echoed = header(&resp, DIGEST_HEADER);
        let mut reader = resp.body_mut().as_reader();
        let mut pushed = layer_bytes(content_size)?;
        let mut got = vec![0u8; 256 * 1024];
        let mut want = vec![0u8; got.len()];
        let mut offset = 0u64;
        loop {
            let n = reader
                .read(&mut got)
                .with_context(|| format!("reading GET {url}"))?;
            if n == 0 {
                break;
            }
            if offset + n as u64 > layer.size {
                bail!(
                    "layer digest mismatch: the registry sent more than the {} bytes of {digest}",
                    layer.size
                );
            }
            pushed
                .read_exact(&mut want[..n])
                .context("generating the layer again")?;
            if got[..n] != want[..n] {
                let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                bail!(
                    "layer digest mismatch: the pulled bytes differ from the pushed {digest} at byte {}",
                    offset + i as u64
                );
            }
            offset += n as u64;
        }
        if offset != layer.size {
            bail!(
                "layer digest mismatch: the registry sent {offset} of the {} bytes of {digest}",
                layer.size
            );
        }
        same_digest(echoed.as_deref(), digest)?;
        Ok(format!(
            "{} ({}) verified byte for byte",
            short(digest),
            human(layer.size)
        ))
    }

    fn delete_manifest(&self, repo: &str, manifest: &Blob) -> Result<Done> {
        let url = self.url(&format!("/v2/{repo}/manifests/{}", manifest.digest))?;
        let mut resp = self
            .authed(self.agent.delete(url.as_str()))
            .call()
            .map_err(|e| transport(e, &url))?;
        match resp.status().as_u16() {
            202 => drain(&mut resp),
            405 => {
                drain(&mut resp);
                return Ok(Done::Skipped(
                    "delete disabled, skipped (405 Method Not Allowed)".into(),
                ));
            }
            _ => return Err(unexpected(&mut resp, &url)),
        }
        // The delete only counts when the manifest is really gone.
        let mut resp = self
            .authed(self.agent.get(url.as_str()))
            .header("Accept", manifest.media_type)
            .call()
            .map_err(|e| transport(e, &url))?;
        let status = resp.status();
        drain(&mut resp);
        if status.as_u16() != 404 {
            bail!(
                "202 Accepted, but GET after delete answered {}",
                status_text(status)
            );
        }
        Ok(Done::Passed(format!(
            "{} deleted (202, then 404)",
            short(&manifest.digest)
        )))
    }
}

/// The Location of an upload answer, resolved against the request URL:
/// registries send it absolute or relative.
fn upload_location(resp: &Response<Body>, request: &Url) -> Result<Url> {
    let location = header(resp, "location")
        .ok_or_else(|| anyhow!("{request}: {} without a Location header", resp.status()))?;
    resolve_location(request, &location)
}

fn resolve_location(request: &Url, location: &str) -> Result<Url> {
    request
        .join(location)
        .with_context(|| format!("upload Location {location:?} is not a URL"))
}

/// The upload URL with `digest=` added to whatever query (upload state) it
/// already carries.
fn with_digest(upload: &Url, digest: &str) -> Url {
    let mut url = upload.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Read and drop a small body so the connection can be reused.
fn drain(resp: &mut Response<Body>) {
    let _ = resp.body_mut().with_config().limit(1 << 20).read_to_vec();
}

fn same_digest(echoed: Option<&str>, ours: &str) -> Result<()> {
    match echoed {
        Some(d) if d != ours => {
            bail!("registry answered Docker-Content-Digest {d}, expected {ours}")
        }
        _ => Ok(()),
    }
}

fn status_text(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

/// ": <body>" of an error answer (the registry's JSON errors), trimmed.
fn error_body(resp: &mut Response<Body>) -> String {
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// An unexpected HTTP status, with the registry's error body.
fn unexpected(resp: &mut Response<Body>, url: &Url) -> anyhow::Error {
    let status = resp.status();
    let body = error_body(resp);
    let mut msg = format!("HTTP {}{body}", status_text(status));
    // What a Go TLS server answers to plain HTTP on its port.
    if url.scheme() == "http" && body.contains("HTTP request to an HTTPS server") {
        let _ = write!(
            msg,
            "\n{} speaks TLS: use https://{}",
            host_port(url),
            host_port(url)
        );
    }
    anyhow!(msg)
}

fn host_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// A transport error (no HTTP answer) as advice.
fn transport(err: ureq::Error, url: &Url) -> anyhow::Error {
    let at = host_port(url);
    let text = err.to_string();
    if let ureq::Error::Io(io) = &err {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return anyhow!("nothing is listening on {at} (connection refused)")
            }
            std::io::ErrorKind::TimedOut => return anyhow!("{at}: connection timed out"),
            _ => {}
        }
    }
    if matches!(err, ureq::Error::HostNotFound) {
        return anyhow!("cannot resolve {}", url.host_str().unwrap_or(""));
    }
    if url.scheme() == "https" {
        // rustls errors surface either directly or wrapped in an io::Error.
        if text.contains("certificate") || text.contains("Certificate") {
            return anyhow!(
                "TLS verification of {at} failed ({text}): the system trust store does not \
                 vouch for it; pass --ca with the registry's CA certificate (or --insecure for \
                 a throwaway test registry)"
            );
        }
        if text.contains("corrupt message") || text.contains("InvalidContentType") {
            return anyhow!(
                "TLS handshake with {at} failed ({text}): the server does not speak TLS there; \
                 for a plain-HTTP registry use http://{at}"
            );
        }
        if matches!(err, ureq::Error::Rustls(_) | ureq::Error::Tls(_)) {
            return anyhow!("TLS handshake with {at} failed: {text}");
        }
    }
    anyhow!("request to {url} failed: {text}")
}

/// clap value parser for the registry URL.
pub fn parse_url(s: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(s)
        .map_err(|e| format!("{e} (expected http://HOST:PORT or https://HOST:PORT)"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} not supported (expected http://HOST:PORT or https://HOST:PORT)",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("no host in the URL".into());
    }
    if !matches!(url.path(), "" | "/" | "/v2" | "/v2/") {
        return Err(format!(
            "path {:?}: the registry API lives at /v2/ of the host, give only scheme, host and port",
            url.path()
        ));
    }
    Ok(url)
}

/// clap value parser for a repository name (the Distribution grammar:
/// lowercase components of [a-z0-9] joined by `.`, `_`, `__` or dashes).
pub fn parse_repo(s: &str) -> std::result::Result<String, String> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
            && !c.contains("..")
            && !c.contains("___")
    };
    if s.len() <= 255 && s.split('/').all(component_ok) {
        Ok(s.to_string())
    } else {
        Err(
            "expected lowercase [a-z0-9] components joined by '.', '_', '-', separated by '/'"
                .into(),
        )
    }
}

/// clap value parser for a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn parse_tag(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x));
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(size: u64) -> (Layer, Vec<u8>) {
        write_layer(size, Vec::new()).unwrap()
    }

    #[test]
    fn layer_is_deterministic_and_sized() {
        let (a, bytes_a) = layer(10_000);
        let (b, bytes_b) = layer(10_000);
        assert_eq!(a, b);
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(a.size, bytes_a.len() as u64);
        for n in [0, 1, 511, 512, 513, 10_000] {
            assert_eq!(layer(n).0.size, layer_tar_size(n), "content size {n}");
        }
        assert_eq!(a.digest, sha256_digest(&bytes_a));
        assert!(a.size > 10_000 && a.size < 13_000, "{}", a.size);
        assert_ne!(layer(10_001).0.digest, a.digest);
        let image = Image::new(a.clone()).unwrap();
        assert_eq!(Image::new(b).unwrap().manifest.data, image.manifest.data);
    }

    #[test]
    fn layer_is_a_tar_with_the_config_diff_id() {
        let (layer, bytes) = layer(3000);
        let tar_bytes = bytes.clone();
        let image = Image::new(layer.clone()).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0].as_str().unwrap(),
            sha256_digest(&tar_bytes)
        );
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("regbake-probe/data"));
        let mut content = vec![];
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len(), 3000);
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], layer.digest.as_str());
        assert_eq!(manifest["layers"][0]["size"], layer.size);
        assert_eq!(manifest["config"]["size"], image.config.data.len());
    }

    #[test]
    fn layer_stream_reports_a_short_read() {
        let mut stream = LayerStream::new(10_000).unwrap();
        let mut buf = [0u8; 4096];
        stream.read_exact(&mut buf).unwrap();
        let err = stream.finish().unwrap_err().to_string();
        assert!(err.contains("after 4096 of 11776 bytes"), "{err}");
    }

    #[test]
    fn pattern_crosses_table_copies() {
        let edge = TABLE_WORDS as u64 * 8;
        let mut whole = vec![];
        Pattern {
            pos: edge - 13,
            size: edge + 29,
        }
        .read_to_end(&mut whole)
        .unwrap();
        let mut pieces = vec![];
        let mut p = Pattern {
            pos: edge - 13,
            size: edge + 29,
        };
        let mut buf = [0u8; 5];
        loop {
            let n = p.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.len(), 42);
        // Word TABLE_WORDS starts the second copy, under the second key.
        assert_eq!(whole[13..21], (splitmix64(0) ^ block_key(1)).to_le_bytes());
        assert_ne!(whole[13..21], (splitmix64(0) ^ block_key(0)).to_le_bytes());
    }

    #[test]
    fn pattern_does_not_depend_on_read_sizes() {
        let mut one = vec![];
        Pattern { pos: 0, size: 1000 }
            .read_to_end(&mut one)
            .unwrap();
        assert_eq!(one[..8], (splitmix64(0) ^ block_key(0)).to_le_bytes());
        assert_eq!(one[992..], (splitmix64(124) ^ block_key(0)).to_le_bytes());
        for piece in [1, 3, 8, 13, 64, 999] {
            let mut p = Pattern { pos: 0, size: 1000 };
            let mut two = vec![];
            let mut buf = vec![0u8; piece];
            loop {
                let n = p.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                two.extend_from_slice(&buf[..n]);
            }
            assert_eq!(one, two, "reads of {piece} bytes");
        }
    }

    #[test]
    fn upload_locations_relative_absolute_and_with_query() {
        let post = Url::parse("https://reg.local:5000/v2/r/blobs/uploads/").unwrap();
        let rel = resolve_location(&post, "/v2/r/blobs/uploads/u1?_state=abc%3D").unwrap();
        assert_eq!(
            rel.as_str(),
            "https://reg.local:5000/v2/r/blobs/uploads/u1?_state=abc%3D"
        );
        let abs = resolve_location(&post, "http://other:1/v2/r/blobs/uploads/u2").unwrap();
        assert_eq!(abs.as_str(), "http://other:1/v2/r/blobs/uploads/u2");
        assert_eq!(
            with_digest(&rel, "sha256:00").as_str(),
            "https://reg.local:5000/v2/r/blobs/uploads/u1?_state=abc%3D&digest=sha256%3A00"
        );
        assert_eq!(
            with_digest(&abs, "sha256:00").as_str(),
            "http://other:1/v2/r/blobs/uploads/u2?digest=sha256%3A00"
        );
    }

    #[test]
    fn value_parsers() {
        assert!(parse_url("http://127.0.0.1:5000").is_ok());
        assert!(parse_url("https://reg.local/").is_ok());
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("127.0.0.1:5000").is_err());
        assert!(parse_url("http://h/some/path").is_err());
        assert!(parse_repo("regbake-probe").is_ok());
        assert!(parse_repo("a/b.c/d__e").is_ok());
        assert!(parse_repo("Upper").is_err());
        assert!(parse_repo("a//b").is_err());
        assert!(parse_repo("-a").is_err());
        assert!(parse_tag("v1.0_x-y").is_ok());
        assert!(parse_tag(".x").is_err());
    }
}
