//! The small pieces of the Distribution wire protocol the client shares:
//! upload locations, digests in queries and headers, bodies drained.

use anyhow::{anyhow, bail, Context, Result};
use ureq::http::Response;
use ureq::Body;
use url::Url;

/// The Location of an upload answer, resolved against the request URL:
/// registries send it absolute or relative.
pub(super) fn upload_location(resp: &Response<Body>, request: &Url) -> Result<Url> {
    let location = header(resp, "location")
        .ok_or_else(|| anyhow!("{request}: {} without a Location header", resp.status()))?;
    resolve_location(request, &location)
}

pub(super) fn resolve_location(request: &Url, location: &str) -> Result<Url> {
    request
        .join(location)
        .with_context(|| format!("upload Location {location:?} is not a URL"))
}

/// The upload URL with `digest=` added to whatever query (upload state) it
/// already carries.
pub(super) fn with_digest(upload: &Url, digest: &str) -> Url {
    let mut url = upload.clone();
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

pub(super) fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Read and drop a small body so the connection can be reused.
pub(super) fn drain(resp: &mut Response<Body>) {
    let _ = resp.body_mut().with_config().limit(1 << 20).read_to_vec();
}

pub(super) fn same_digest(echoed: Option<&str>, ours: &str) -> Result<()> {
    match echoed {
        Some(d) if d != ours => {
            bail!("registry answered Docker-Content-Digest {d}, expected {ours}")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
