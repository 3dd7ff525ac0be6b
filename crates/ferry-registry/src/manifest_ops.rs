//! Manifest operations that move no content: resolving a reference to its descriptor with `HEAD`, and
//! deleting a manifest by digest.

use ferry_oci::{Descriptor, Digest, media_type};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::client::Call;
use crate::error::RegistryError;
use crate::repository::Repository;

impl Repository {
    /// The descriptor of the manifest `reference` (tag or digest) names. A `HEAD` request answers when the
    /// registry sends `Docker-Content-Digest` and a manifest media type; otherwise (some registries omit the
    /// header, or refuse HEAD) the manifest is fetched and hashed.
    pub async fn head_manifest(&self, reference: &str) -> Result<Descriptor, RegistryError> {
        let what = self.manifest_what(reference);
        let mut call = Call::new(
            Method::HEAD,
            format!("/v2/{}/manifests/{reference}", self.repository),
            &self.pull_scope,
            what.clone(),
        );
        call.headers.insert(
            ACCEPT,
            HeaderValue::from_static(media_type::MANIFEST_ACCEPT),
        );
        let resp = self.client.send(&self.host, &call).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.host.name.clone(),
                what,
            });
        }
        if resp.status().is_success() {
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
            };
            let digest = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
            let mt = header(CONTENT_TYPE.as_str()).map(media_type::essence);
            let size = header(CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
            if let (Some(digest), Some(mt), Some(size)) = (digest, mt, size)
                && media_type::is_manifest_like(mt)
            {
                if let Ok(asked) = reference.parse::<Digest>()
                    && asked != digest
                {
                    return Err(RegistryError::Protocol {
                        registry: self.host.name.clone(),
                        what,
                        why: format!("asked for {asked}, the registry answered for {digest}"),
                    });
                }
                return Ok(Descriptor::new(mt, digest, size));
            }
        }
        tracing::debug!(
            "{what}: HEAD answered {} without a usable digest; fetching the manifest",
            resp.status()
        );
        Ok(self.resolve(reference).await?.0)
    }

    /// `DELETE /v2/<repo>/manifests/<digest>`: removes the manifest and every tag pointing at it.
    /// Registries answer 202; 405 means the registry does not allow deleting (distribution needs
    /// `storage.delete.enabled`).
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        let what = self.manifest_what(&digest.to_string());
        let scope = format!("repository:{}:delete", self.repository);
        let call = Call::new(
            Method::DELETE,
            format!("/v2/{}/manifests/{digest}", self.repository),
            &scope,
            what.clone(),
        );
        let resp = self.client.send(&self.host, &call).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.host.name.clone(),
                what,
            });
        }
        let mut body = self.client.body_excerpt(resp).await;
        if status == StatusCode::METHOD_NOT_ALLOWED {
            body.push_str(
                " (the registry does not allow deleting; distribution needs storage.delete.enabled)",
            );
        }
        Err(RegistryError::Status {
            registry: self.host.name.clone(),
            what,
            status: status.as_u16(),
            body,
        })
    }

    /// `manifest host/repo:tag` or `manifest host/repo@sha256:…`, for messages.
    fn manifest_what(&self, reference: &str) -> String {
        let sep = if reference.parse::<Digest>().is_ok() {
            '@'
        } else {
            ':'
        };
        format!(
            "manifest {}/{}{sep}{reference}",
            self.host.name, self.repository
        )
    }
}
