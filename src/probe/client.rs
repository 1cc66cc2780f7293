//! The registry client: the Distribution HTTP API calls the probe makes,
//! each with its checks.

use std::io::Read;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use ureq::http::Response;
use ureq::{Agent, Body, RequestBuilder};
use url::Url;

use super::args::Args;
use sha2::{Digest, Sha256};

use super::fail::{answered_from, error_body, status_text, Explain};
use super::oci::{layer_bytes, layer_tar_size, sha256_digest, Blob, Layer, LayerStream};
use super::report::{human, short, Done};
use super::wire::{drain, header, same_digest, upload_location, with_digest};

pub(super) const API_HEADER: &str = "docker-distribution-api-version";
pub(super) const DIGEST_HEADER: &str = "docker-content-digest";

pub(super) struct Client {
    pub(super) agent: Agent,
    pub(super) base: Url,
    /// `Basic …` header value; never printed, sent only to `base`'s origin.
    pub(super) auth: Option<String>,
    pub(super) username: Option<String>,
    /// Turns failures into advice.
    pub(super) explain: Explain,
}

impl Client {
    pub(super) fn new(opts: &Args) -> Result<Self> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &opts.ca {
            // Checked by the argument parser too; read bounded anyway (the
            // file may have been swapped since).
            let pem = crate::util::fsx::read_text(ca, 1 << 20)
                .with_context(|| format!("reading --ca {}", ca.display()))?;
            let mut certs = vec![];
            for item in ureq::tls::parse_pem(pem.as_bytes()) {
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
        let whole = Duration::from_secs(opts.timeout);
        // Each request as a whole, bodies included, ends within --timeout
        // (the layer's get more: see `layer_request`). The phase bounds, a
        // hair shorter, only name the phase that used it all up when one did.
        let phase = Some(whole.saturating_sub(Duration::from_millis(10)));
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(whole))
            .timeout_resolve(phase)
            .timeout_connect(phase)
            .timeout_send_request(phase)
            .timeout_recv_response(phase)
            // A redirect may leave the origin; credentials never follow it.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
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
            explain: Explain {
                base: opts.url.clone(),
                credentials: auth.is_some(),
                ca: opts.ca.clone(),
                timeout: whole,
                budget: "--timeout",
            },
            auth,
            username: opts.username.clone(),
        })
    }

    pub(super) fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("building the URL for {path}"))
    }

    /// The request with the credentials, when it goes to the origin they
    /// were given for (as docker does): never to another host, port or
    /// scheme an upload Location names, so never over plain HTTP unless the
    /// registry URL itself was plain HTTP.
    pub(super) fn authed<B>(&self, rb: RequestBuilder<B>, url: &Url) -> RequestBuilder<B> {
        match &self.auth {
            Some(a) if self.same_origin(url) => rb.header("Authorization", a),
            _ => rb,
        }
    }

    pub(super) fn same_origin(&self, url: &Url) -> bool {
        self.explain.same_origin(url)
    }

    /// A request that carries the layer (its size is the user's choice, up
    /// to 1 GiB): its deadline is --timeout plus a second per MiB, and no
    /// read or write of it may stall for --timeout. The explanations say so.
    fn layer_request<B>(&self, rb: RequestBuilder<B>, size: u64) -> (RequestBuilder<B>, Explain) {
        let whole = self.explain.timeout;
        let deadline = whole + Duration::from_secs(size.div_ceil(1 << 20));
        let rb = rb
            .config()
            .timeout_global(Some(deadline))
            .timeout_send_body(None)
            .timeout_recv_body(None)
            .timeout_per_read(Some(whole))
            .timeout_per_write(Some(whole))
            .build();
        let explain = Explain {
            timeout: deadline,
            budget: "--timeout plus 1 s per MiB of layer",
            ..self.explain.clone()
        };
        (rb, explain)
    }

    /// `GET /v2/`: returns whether the registry asked for credentials.
    pub(super) fn check_v2(&self, with_auth: bool) -> Result<(bool, Done)> {
        let url = self.url("/v2/")?;
        let rb = self.agent.get(url.as_str());
        let rb = if with_auth { self.authed(rb, &url) } else { rb };
        let mut resp = rb.call().map_err(|e| self.explain.fail(e, "GET", &url))?;
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
                let from = answered_from(&resp, &url);
                let body = error_body(&mut resp);
                // A redirect elsewhere got no credentials: none were rejected.
                if !self.same_origin(&from) {
                    bail!(
                        "HTTP 401 Unauthorized{body}\n{}",
                        self.explain.not_sent(&url, &from, status)
                    );
                }
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
            _ => Err(self.explain.unexpected(&mut resp, &url)),
        }
    }

    /// POST /v2/<repo>/blobs/uploads/ → the upload URL from Location.
    pub(super) fn start_upload(&self, repo: &str) -> Result<Url> {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let mut resp = self
            .authed(self.agent.post(start.as_str()), &start)
            .send_empty()
            .map_err(|e| self.explain.fail(e, "POST", &start))?;
        if resp.status().as_u16() != 202 {
            return Err(self
                .explain
                .unexpected(&mut resp, &start)
                .context("starting the upload (POST)"));
        }
        let location = upload_location(&resp, &start)?;
        drain(&mut resp);
        Ok(location)
    }

    /// PUT <upload>?digest=… with the rest of the blob (maybe empty), then
    /// HEAD the blob: it must now be there with its size.
    pub(super) fn finish_upload(
        &self,
        repo: &str,
        upload: &Url,
        digest: &str,
        size: u64,
        body: &[u8],
    ) -> Result<()> {
        let put = with_digest(upload, digest);
        let mut resp = self
            .authed(self.agent.put(put.as_str()), &put)
            .header("Content-Type", "application/octet-stream")
            .send(body)
            .map_err(|e| self.explain.fail(e, "PUT", &put))?;
        if resp.status().as_u16() != 201 {
            return Err(self
                .explain
                .unexpected(&mut resp, &put)
                .context("finishing the upload (PUT)"));
        }
        let echoed = header(&resp, DIGEST_HEADER);
        drain(&mut resp);
        same_digest(echoed.as_deref(), digest)?;

        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let mut resp = self
            .authed(self.agent.head(url.as_str()), &url)
            .call()
            .map_err(|e| self.explain.fail(e, "HEAD", &url))?;
        if resp.status().as_u16() != 200 {
            return Err(self
                .explain
                .unexpected(&mut resp, &url)
                .context("HEAD after the upload"));
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
    pub(super) fn push_blob(&self, repo: &str, blob: &Blob) -> Result<String> {
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
    pub(super) fn push_layer(&self, repo: &str, content_size: u64) -> Result<(Layer, String)> {
        let upload = self.start_upload(repo)?;
        let mut body = LayerStream::new(content_size)?;
        let size = layer_tar_size(content_size);
        let (rb, explain) = self.layer_request(
            self.authed(self.agent.patch(upload.as_str()), &upload),
            size,
        );
        let mut resp = rb
            .header("Content-Type", "application/octet-stream")
            // Known up front: a plain body instead of chunked encoding.
            .header("Content-Length", size.to_string())
            .send(ureq::SendBody::from_reader(&mut body))
            .map_err(|e| explain.fail(e, "PATCH", &upload))?;
        if resp.status().as_u16() != 202 {
            return Err(explain
                .unexpected(&mut resp, &upload)
                .context("streaming the layer (PATCH)"));
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

    pub(super) fn push_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"))?;
        let mut resp = self
            .authed(self.agent.put(url.as_str()), &url)
            .header("Content-Type", manifest.media_type)
            .send(&manifest.data[..])
            .map_err(|e| self.explain.fail(e, "PUT", &url))?;
        if resp.status().as_u16() != 201 {
            return Err(self.explain.unexpected(&mut resp, &url));
        }
        let echoed = header(&resp, DIGEST_HEADER);
        drain(&mut resp);
        same_digest(echoed.as_deref(), &manifest.digest)?;
        Ok(format!(
            "{repo}:{tag} = {}, 201 Created",
            short(&manifest.digest)
        ))
    }

    pub(super) fn pull_manifest(&self, repo: &str, tag: &str, manifest: &Blob) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"))?;
        let mut resp = self
            .authed(self.agent.get(url.as_str()), &url)
            .header("Accept", manifest.media_type)
            .call()
            .map_err(|e| self.explain.fail(e, "GET", &url))?;
        if resp.status().as_u16() != 200 {
            return Err(self.explain.unexpected(&mut resp, &url));
        }
        let content_type = header(&resp, "content-type").unwrap_or_default();
        let echoed = header(&resp, DIGEST_HEADER);
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| self.explain.fail_body(e, "GET", &url))?;
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

    /// GET /v2/<repo>/blobs/<digest>, which must answer 200; the request
    /// and how to explain its failures (the layer's deadline is longer).
    pub(super) fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        layer_size: Option<u64>,
    ) -> Result<(Url, Response<Body>, Explain)> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let rb = self.authed(self.agent.get(url.as_str()), &url);
        let (rb, explain) = match layer_size {
            Some(size) => self.layer_request(rb, size),
            None => (rb, self.explain.clone()),
        };
        let mut resp = rb.call().map_err(|e| explain.fail(e, "GET", &url))?;
        if resp.status().as_u16() != 200 {
            return Err(explain.unexpected(&mut resp, &url));
        }
        Ok((url, resp, explain))
    }

    /// Stream the blob through sha256: nothing is kept.
    pub(super) fn pull_blob(
        &self,
        repo: &str,
        name: &str,
        digest: &str,
        size: u64,
    ) -> Result<String> {
        let (url, mut resp, explain) = self.get_blob(repo, digest, None)?;
        let mut reader = resp.body_mut().as_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got_size = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| explain.body_failed(e, "GET", &url))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            got_size += n as u64;
            // Read no more than was pushed: an endless body ends here.
            if got_size > size {
                bail!("{name} digest mismatch: the registry sent more than the {size} bytes of {digest}");
            }
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
    pub(super) fn pull_layer(
        &self,
        repo: &str,
        layer: &Layer,
        content_size: u64,
    ) -> Result<String> {
        let digest = &layer.digest;
        let (url, mut resp, explain) = self.get_blob(repo, digest, Some(layer.size))?;
        let echoed = header(&resp, DIGEST_HEADER);
        let mut reader = resp.body_mut().as_reader();
        let mut pushed = layer_bytes(content_size)?;
        let mut got = vec![0u8; 256 * 1024];
        let mut want = vec![0u8; got.len()];
        let mut offset = 0u64;
        loop {
            let n = reader
                .read(&mut got)
                .map_err(|e| explain.body_failed(e, "GET", &url))?;
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

    pub(super) fn delete_manifest(&self, repo: &str, manifest: &Blob) -> Result<Done> {
        let url = self.url(&format!("/v2/{repo}/manifests/{}", manifest.digest))?;
        let mut resp = self
            .authed(self.agent.delete(url.as_str()), &url)
            .call()
            .map_err(|e| self.explain.fail(e, "DELETE", &url))?;
        match resp.status().as_u16() {
            202 => drain(&mut resp),
            405 => {
                drain(&mut resp);
                return Ok(Done::Skipped(
                    "delete disabled, skipped (405 Method Not Allowed)".into(),
                ));
            }
            _ => return Err(self.explain.unexpected(&mut resp, &url)),
        }
        // The delete only counts when the manifest is really gone.
        let mut resp = self
            .authed(self.agent.get(url.as_str()), &url)
            .header("Accept", manifest.media_type)
            .call()
            .map_err(|e| self.explain.fail(e, "GET", &url))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_origin_they_were_given_for() {
        let client = |base: &str| Client {
            agent: Agent::new_with_defaults(),
            base: Url::parse(base).unwrap(),
            auth: Some("Basic x".into()),
            username: None,
            explain: Explain {
                base: Url::parse(base).unwrap(),
                credentials: true,
                ca: None,
                timeout: Duration::from_secs(1),
                budget: "--timeout",
            },
        };
        let tls = client("https://reg.local:5000");
        let at = |u: &str| Url::parse(u).unwrap();
        assert!(tls.same_origin(&at("https://reg.local:5000/v2/r/blobs/uploads/u")));
        for other in [
            "http://reg.local:5000/v2/",
            "https://reg.local:5001/v2/",
            "https://other.local:5000/v2/",
            "https://reg.local.evil:5000/v2/",
        ] {
            assert!(!tls.same_origin(&at(other)), "{other}");
        }
        assert!(client("https://reg.local").same_origin(&at("https://reg.local:443/v2/")));
        assert!(client("http://reg.local:5000").same_origin(&at("http://reg.local:5000/u")));
        assert!(!client("http://reg.local:5000").same_origin(&at("https://reg.local:5000/u")));
    }
}
