//! One repository on one registry, as a ferry store: read (resolve, fetch) and write (exists, upload,
//! mount, manifests, tags).

use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, MAX_MANIFEST_BYTES, Manifest, media_type};
use ferry_store::transfer::verify_bytes;
use ferry_store::{BlobWriter, BoxFuture, ByteSource, ReadStore, Store, StoreError, WriteStore};
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE,
};
use reqwest::{Method, Response, StatusCode};

use crate::body::{Body, excerpt};
use crate::client::{Call, HostState, RegistryClient};
use crate::error::RegistryError;
use crate::upload::Upload;

/// One repository of a registry as a ferry store: a source ([`ferry_store::ReadStore`],
/// [`ferry_store::Resolver`]) and a destination ([`ferry_store::WriteStore`], [`ferry_store::Tagger`]). Cheap
/// to clone; every clone shares the client.
#[derive(Clone)]
pub struct Repository {
    pub(crate) client: Arc<RegistryClient>,
    pub(crate) host: Arc<HostState>,
    pub(crate) repository: String,
    pub(crate) pull_scope: String,
    /// Every write asks for push (and pull, which registries want alongside it): one token per repository.
    pub(crate) push_scope: String,
}

impl Repository {
    /// `registry` as in references (`docker.io`, `127.0.0.1:5000`), `repository` the path (`library/nginx`).
    pub fn new(client: Arc<RegistryClient>, registry: &str, repository: &str) -> Repository {
        Repository {
            host: client.host(registry),
            client,
            repository: repository.to_string(),
            pull_scope: format!("repository:{repository}:pull"),
            push_scope: format!("repository:{repository}:pull,push"),
        }
    }

    /// The registry host as given (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.host.name
    }

    /// The repository path (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Fetch the manifest a tag or digest points at: its descriptor (media type from the response, digest
    /// computed from the bytes) and the raw bytes. A digest reference is verified; a tag is checked against
    /// `Docker-Content-Digest` when the registry sends one.
    pub async fn resolve(&self, reference: &str) -> Result<(Descriptor, Bytes), RegistryError> {
        let what = format!(
            "manifest {}/{}:{}",
            self.host.name, self.repository, reference
        )
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
        let bytes = self.read_manifest(resp, &what).await?;
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
            why: ferry_oci::error_chain(&e),
        })?;
        Ok((
            Descriptor::new(parsed.media_type, digest, bytes.len() as u64),
            bytes,
        ))
    }

    async fn get_manifest(&self, reference: &str, what: &str) -> Result<Response, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(media_type::MANIFEST_ACCEPT),
        );
        let call = Call {
            headers,
            ..Call::new(
                Method::GET,
                format!("/v2/{}/manifests/{}", self.repository, reference),
                &self.pull_scope,
                what.to_string(),
            )
        };
        let resp = self.client.send(&self.host, &call).await?;
        self.expect_success(resp, what).await
    }

    /// Point `tag` at the manifest `desc` describes; `bytes` are its exact bytes (pushed again, as the
    /// distribution API tags by uploading the manifest under the tag).
    pub async fn tag(
        &self,
        desc: &Descriptor,
        bytes: Bytes,
        tag: &str,
    ) -> Result<(), RegistryError> {
        self.push_manifest(desc, bytes, tag).await
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the bytes as they are: any re-encoding would change the
    /// digest.
    pub(crate) async fn push_manifest(
        &self,
        desc: &Descriptor,
        bytes: Bytes,
        reference: &str,
    ) -> Result<(), RegistryError> {
        let what = format!(
            "manifest {}/{}:{reference}",
            self.host.name, self.repository
        )
        .replace(":sha256:", "@sha256:");
        let content_type =
            HeaderValue::from_str(&desc.media_type).map_err(|_| RegistryError::Config {
                why: format!(
                    "manifest {} has an invalid media type {:?}",
                    desc.digest, desc.media_type
                ),
                source: None,
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type);
        let pushed = bytes.clone();
        let call = Call {
            headers,
            body: Some(bytes),
            ..Call::new(
                Method::PUT,
                format!("/v2/{}/manifests/{reference}", self.repository),
                &self.push_scope,
                what.clone(),
            )
        };
        let resp = self.client.send(&self.host, &call).await?;
        let status = resp.status();
        if !status.is_success() {
            let body = self.client.error_body(resp).await;
            let errors = error_codes(&body);
            if errors
                .iter()
                .any(|(code, _)| code == "MANIFEST_BLOB_UNKNOWN" || code == "BLOB_UNKNOWN")
            {
                return Err(RegistryError::MissingReferences {
                    registry: self.host.name.clone(),
                    repository: self.repository.clone(),
                    digest: desc.digest.to_string(),
                    detail: errors
                        .iter()
                        .map(|(code, text)| format!("{code}: {text}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            return Err(RegistryError::Status {
                registry: self.host.name.clone(),
                what,
                status: status.as_u16(),
                body: excerpt(&body),
            });
        }
        check_digest_header(&resp, &desc.digest, &self.host.name, &what)?;
        // A registry with the referrers API answers `OCI-Subject`; without it, the client keeps the
        // tag-schema index that lets others find this artifact from its subject.
        if reference.parse::<Digest>().is_ok()
            && !resp.headers().contains_key("oci-subject")
            && let Ok(manifest) = Manifest::parse(&desc.media_type, &pushed)
            && let Some(subject) = &manifest.subject
        {
            self.add_to_fallback_index(&subject.digest, manifest.referrer_descriptor(desc))
                .await?;
        }
        Ok(())
    }

    /// `HEAD` the manifest or blob: present with the descriptor's size (when the registry says it).
    pub(crate) async fn has(&self, desc: &Descriptor) -> Result<bool, RegistryError> {
        let manifest = media_type::is_manifest_like(&desc.media_type);
        let (kind, endpoint) = if manifest {
            ("manifest", "manifests")
        } else {
            ("blob", "blobs")
        };
        let what = format!(
            "{kind} {}/{}@{}",
            self.host.name, self.repository, desc.digest
        );
        let mut call = Call::new(
            Method::HEAD,
            format!("/v2/{}/{endpoint}/{}", self.repository, desc.digest),
            &self.push_scope,
            what.clone(),
        );
        if manifest {
            call.headers.insert(
                ACCEPT,
                HeaderValue::from_static(media_type::MANIFEST_ACCEPT),
            );
        }
        let resp = self.client.send(&self.host, &call).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let resp = self.expect_success(resp, &what).await?;
        // The header, not `content_length()`: a HEAD response has no body to measure.
        let size = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let present = size.is_none_or(|s| s == desc.size);
        if present && !manifest {
            self.host.saw_blob(&desc.digest, &self.repository);
        }
        Ok(present)
    }

    /// Cross-repository mount from a repository of this registry where the blob was seen.
    async fn mount_blob(&self, desc: &Descriptor) -> Result<bool, RegistryError> {
        if media_type::is_manifest_like(&desc.media_type) {
            return Ok(false);
        }
        let Some(from) = self.host.blob_elsewhere(&desc.digest, &self.repository) else {
            return Ok(false);
        };
        let what = format!(
            "mount of blob {}/{}@{} from {from}",
            self.host.name, self.repository, desc.digest
        );
        // The token must cover reading the source as well as writing here.
        let scope = format!("{} repository:{from}:pull", self.push_scope);
        let call = Call {
            body: Some(Bytes::new()),
            ..Call::new(
                Method::POST,
                format!(
                    "/v2/{}/blobs/uploads/?mount={}&from={from}",
                    self.repository, desc.digest
                ),
                &scope,
                what.clone(),
            )
        };
        let resp = match self.client.send(&self.host, &call).await {
            Ok(resp) => resp,
            // No right to read the source: a plain upload may still be allowed.
            Err(e @ (RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                tracing::debug!("{what} refused: {e}");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => {
                check_digest_header(&resp, &desc.digest, &self.host.name, &what)?;
                self.host.saw_blob(&desc.digest, &self.repository);
                Ok(true)
            }
            StatusCode::ACCEPTED => {
                // Refused; the registry opened an upload session instead, which nobody will use.
                if let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok())
                    && let Ok(url) = self.client.resolve(&self.host, location, &what).await
                {
                    Upload::abandon_session(self.clone(), url, what.clone());
                }
                tracing::debug!("{what}: the registry did not mount it");
                Ok(false)
            }
            status => {
                tracing::debug!(
                    "{what}: HTTP {status}{}",
                    self.client.body_excerpt(resp).await
                );
                Ok(false)
            }
        }
    }

    /// A manifest body, refused past [`MAX_MANIFEST_BYTES`].
    async fn read_manifest(&self, resp: Response, what: &str) -> Result<Bytes, RegistryError> {
        self.client
            .body(resp, &self.host.name, what)
            .read_capped(MAX_MANIFEST_BYTES, "manifests")
            .await
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
            body: self.client.body_excerpt(resp).await,
        })
    }
}

impl Store for Repository {
    fn describe(&self) -> String {
        format!("registry {} repository {}", self.host.name, self.repository)
    }
}

impl ReadStore for Repository {
    fn referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<ferry_store::Referrer>, StoreError>> {
        Box::pin(async move { Ok(self.list_referrers(&subject.digest).await?) })
    }

    fn subject_referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<ferry_store::Referrer>, StoreError>> {
        Box::pin(async move { Ok(self.list_subject_referrers(&subject.digest).await?) })
    }

    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        Box::pin(async move {
            if desc.size > MAX_MANIFEST_BYTES {
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let what = format!(
                "manifest {}/{}@{}",
                self.host.name, self.repository, desc.digest
            );
            let resp = self.get_manifest(&desc.digest.to_string(), &what).await?;
            let bytes = self.read_manifest(resp, &what).await?;
            verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(bytes)
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64), StoreError>> {
        self.fetch_range(desc, offset, u64::MAX)
    }

    /// `Range: bytes=OFFSET-END` (or `OFFSET-` for the rest): a registry or CDN that ignores it answers
    /// 200 from byte 0, which the caller sees in the returned start.
    fn fetch_range<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64), StoreError>> {
        Box::pin(async move {
            let what = format!(
                "blob {}/{}@{}",
                self.host.name, self.repository, desc.digest
            );
            let mut headers = HeaderMap::new();
            let bounded = len < desc.size.saturating_sub(offset);
            if offset > 0 || bounded {
                let end = if bounded {
                    (offset + len - 1).to_string()
                } else {
                    String::new()
                };
                headers.insert(
                    RANGE,
                    HeaderValue::from_str(&format!("bytes={offset}-{end}")).expect("ascii"),
                );
            }
            let call = Call {
                headers,
                ..Call::new(
                    Method::GET,
                    format!("/v2/{}/blobs/{}", self.repository, desc.digest),
                    &self.pull_scope,
                    what.clone(),
                )
            };
            let resp = self.client.send(&self.host, &call).await?;
            let resp = self.expect_success(resp, &what).await?;
            // Another repository of this registry can mount it from here.
            self.host.saw_blob(&desc.digest, &self.repository);
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
                Box::new(ResponseBody(self.client.body(resp, &self.host.name, &what)))
                    as Box<dyn ByteSource>,
                start,
            ))
        })
    }
}

impl WriteStore for Repository {
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.has(desc).await?) })
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, StoreError>> {
        Box::pin(async move {
            let upload = Upload::start(self.clone(), desc.clone()).await?;
            Ok(Box::new(upload) as Box<dyn BlobWriter>)
        })
    }

    fn put_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            Ok(self
                .push_manifest(desc, bytes, &desc.digest.to_string())
                .await?)
        })
    }

    fn mount<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.mount_blob(desc).await?) })
    }
}

/// Fail when the registry says it stored something other than `expected` (`Docker-Content-Digest`).
pub(crate) fn check_digest_header(
    resp: &Response,
    expected: &Digest,
    registry: &str,
    what: &str,
) -> Result<(), RegistryError> {
    let Some(header) = resp.headers().get("docker-content-digest") else {
        return Ok(());
    };
    let stored = header.to_str().unwrap_or_default();
    if stored.parse::<Digest>().ok().as_ref() == Some(expected) {
        return Ok(());
    }
    Err(RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        why: format!("the registry reports digest {stored:?}, ferry sent {expected}"),
    })
}

/// `(code, "message: detail")` of each entry of a distribution error body
/// (`{"errors":[{"code":…,"message":…,"detail":…}]}`); empty when the body is something else.
fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: serde_json::Value,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        return Vec::new();
    };
    parsed
        .errors
        .into_iter()
        .map(|e| {
            let text = match e.detail {
                serde_json::Value::Null => e.message,
                serde_json::Value::String(d) => format!("{}: {d}", e.message),
                d => format!("{}: {d}", e.message),
            };
            (e.code, text)
        })
        .collect()
}

/// `bytes 100-199/200` → 100.
fn parse_content_range_start(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A blob's body, read under the client's throughput rule.
struct ResponseBody(Body);

impl ByteSource for ResponseBody {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        Box::pin(async move { Ok(self.0.chunk().await?) })
    }
}

/// Names in a repository are tags, or digests (`sha256:…`) to resolve.
impl ferry_store::Resolver for Repository {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<(Descriptor, Bytes)>> {
        Box::pin(async move { Ok(Repository::resolve(self, reference).await?) })
    }
}

impl ferry_store::Tagger for Repository {
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
        name: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<()>> {
        Box::pin(async move { Ok(Repository::tag(self, desc, bytes, name).await?) })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_body() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"},{"code":"DENIED","message":"no","detail":{"x":1}}]}"#;
        assert_eq!(
            super::error_codes(body),
            vec![
                (
                    "MANIFEST_BLOB_UNKNOWN".to_string(),
                    "blob unknown to registry: sha256:ab".to_string()
                ),
                ("DENIED".to_string(), r#"no: {"x":1}"#.to_string()),
            ]
        );
        assert!(super::error_codes(b"<html>").is_empty());
    }

    #[test]
    fn content_range() {
        assert_eq!(
            super::parse_content_range_start("bytes 100-199/200"),
            Some(100)
        );
        assert_eq!(super::parse_content_range_start("bytes */200"), None);
    }
}
