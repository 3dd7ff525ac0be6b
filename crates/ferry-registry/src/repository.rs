//! One repository on one registry, as a ferry store.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ferry_oci::{Descriptor, Digest, MAX_MANIFEST_BYTES, Manifest, media_type};
use ferry_store::transfer::verify_bytes;
use ferry_store::{BoxFuture, ByteSource, ReadStore, Store, StoreError};
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};

use crate::client::{Call, HostState, RegistryClient, body_excerpt};
use crate::error::{RegistryError, chain};

#[derive(Clone)]
pub struct Repository {
    client: Arc<RegistryClient>,
    host: Arc<HostState>,
    repository: String,
    pull_scope: String,
}

impl Repository {
    /// `registry` as in references (`docker.io`, `127.0.0.1:5000`), `repository` the path (`library/nginx`).
    pub fn new(client: Arc<RegistryClient>, registry: &str, repository: &str) -> Repository {
        Repository {
            host: client.host(registry),
            client,
            repository: repository.to_string(),
            pull_scope: format!("repository:{repository}:pull"),
        }
    }

    pub fn registry(&self) -> &str {
        &self.host.name
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Fetch the manifest a tag or digest points at: its descriptor (media type from the response, digest
    /// computed from the bytes) and the raw bytes. A digest reference is verified; a tag is checked against
    /// `Docker-Content-Digest` when the registry sends one.
    pub async fn resolve(&self, reference: &str) -> Result<(Descriptor, Bytes), RegistryError> {
        let what = format!("manifest {}/{}:{}", self.host.name, self.repository, reference)
            .replace(":sha256:", "@sha256:");
        let resp = self.get_manifest(reference, &what).await?;
        let served = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| media_type::essence(s).to_string())
            .unwrap_or_default();
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_capped(resp, &self.host.name, &what).await?;
        let digest = Digest::of(&bytes);
        let expected = reference
            .parse::<Digest>()
            .ok()
            .or_else(|| header_digest.and_then(|h| h.parse().ok()));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::Protocol {
                registry: self.host.name.clone(),
                what,
                why: format!("expected digest {expected}, the bytes received hash to {digest}"),
            });
        }
        // The document decides its media type when the server sent a generic one.
        let parsed = Manifest::parse(&served, &bytes).map_err(|e| RegistryError::Protocol {
            registry: self.host.name.clone(),
            what: what.clone(),
            why: e.to_string(),
        })?;
        Ok((
            Descriptor::new(parsed.media_type, digest, bytes.len() as u64),
            bytes,
        ))
    }

    async fn get_manifest(&self, reference: &str, what: &str) -> Result<Response, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(media_type::MANIFEST_ACCEPT));
        let call = Call {
            method: Method::GET,
            path: format!("/v2/{}/manifests/{}", self.repository, reference),
            headers,
            scope: &self.pull_scope,
            what: what.to_string(),
        };
        let resp = self.client.send(&self.host, &call).await?;
        self.expect_success(resp, what).await
    }

    async fn expect_success(&self, resp: Response, what: &str) -> Result<Response, RegistryError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.host.name.clone(),
                what: what.to_string(),
            });
        }
        Err(RegistryError::Status {
            registry: self.host.name.clone(),
            what: what.to_string(),
            status: status.as_u16(),
            body: body_excerpt(resp).await,
        })
    }
}

/// Read a manifest body, refusing more than [`MAX_MANIFEST_BYTES`] before reading it all.
async fn read_capped(mut resp: Response, registry: &str, what: &str) -> Result<Bytes, RegistryError> {
    let too_large = |size: u64| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        why: format!("manifest is {size} bytes or more, over the {MAX_MANIFEST_BYTES}-byte limit"),
    };
    if let Some(len) = resp.content_length().filter(|l| *l > MAX_MANIFEST_BYTES) {
        return Err(too_large(len));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| RegistryError::Transport {
        registry: registry.to_string(),
        what: what.to_string(),
        detail: chain(&e),
    })? {
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large(buf.len() as u64));
        }
    }
    Ok(buf.freeze())
}

impl Store for Repository {
    fn describe(&self) -> String {
        format!("registry {} repository {}", self.host.name, self.repository)
    }
}

impl ReadStore for Repository {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        Box::pin(async move {
            if desc.size > MAX_MANIFEST_BYTES {
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let what = format!("manifest {}/{}@{}", self.host.name, self.repository, desc.digest);
            let resp = self.get_manifest(&desc.digest.to_string(), &what).await?;
            let bytes = read_capped(resp, &self.host.name, &what).await?;
            verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(bytes)
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64), StoreError>> {
        Box::pin(async move {
            let what = format!("blob {}/{}@{}", self.host.name, self.repository, desc.digest);
            let mut headers = HeaderMap::new();
            if offset > 0 {
                headers.insert(
                    RANGE,
                    HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"),
                );
            }
            let call = Call {
                method: Method::GET,
                path: format!("/v2/{}/blobs/{}", self.repository, desc.digest),
                headers,
                scope: &self.pull_scope,
                what: what.clone(),
            };
            let resp = self.client.send(&self.host, &call).await?;
            let resp = self.expect_success(resp, &what).await?;
            let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
                resp.headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range_start)
                    .unwrap_or(0)
            } else {
                0
            };
            Ok((
                Box::new(ResponseBody {
                    resp,
                    registry: self.host.name.clone(),
                    what,
                }) as Box<dyn ByteSource>,
                start,
            ))
        })
    }
}

/// `bytes 100-199/200` → 100.
fn parse_content_range_start(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

struct ResponseBody {
    resp: Response,
    registry: String,
    what: String,
}

impl ByteSource for ResponseBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        Box::pin(async move {
            self.resp.chunk().await.map_err(|e| {
                StoreError::from(RegistryError::Transport {
                    registry: self.registry.clone(),
                    what: self.what.clone(),
                    detail: chain(&e),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range() {
        assert_eq!(super::parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(super::parse_content_range_start("bytes */200"), None);
    }
}
