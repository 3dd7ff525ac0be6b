//! Referrers: listing the artifacts about an image (the OCI referrers API, or its tag-schema fallback, plus
//! cosign's `sha256-<hex>.sig` tags), and keeping the fallback index current when pushing to a registry that
//! has no referrers API.

use bytes::Bytes;
use ferry_oci::descriptor::Descriptor;
use ferry_oci::{Digest, MAX_MANIFEST_BYTES, Manifest, gojson, media_type};
use ferry_store::{COSIGN_SUFFIXES, Referrer};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Serialize;

use crate::error::RegistryError;
use crate::listing::Pages;
use crate::repository::Repository;

/// How often a fallback-index update is retried when another client's update replaced ours.
const INDEX_UPDATE_ATTEMPTS: u32 = 5;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: &'a [Descriptor],
}

impl Repository {
    /// Everything that refers to `subject`: the referrers API when the registry has one, else the
    /// `sha256-<hex>` fallback index; plus cosign-style tags.
    pub async fn list_referrers(&self, subject: &Digest) -> Result<Vec<Referrer>, RegistryError> {
        let mut out = self.list_subject_referrers(subject).await?;
        for suffix in COSIGN_SUFFIXES {
            let tag = format!("{}.{suffix}", subject.tag_form());
            match self.resolve(&tag).await {
                Ok((desc, _)) => {
                    if !out.iter().any(|r| r.desc.digest == desc.digest) {
                        out.push(Referrer {
                            desc,
                            tag: Some(tag),
                        });
                    }
                }
                Err(RegistryError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// What names `subject` as its subject: the referrers API when the registry has one, else the
    /// `sha256-<hex>` fallback index.
    pub async fn list_subject_referrers(
        &self,
        subject: &Digest,
    ) -> Result<Vec<Referrer>, RegistryError> {
        Ok(match self.referrers_api(subject).await? {
            Some(list) => list,
            None => self.fallback_index(subject).await?,
        }
        .into_iter()
        .map(|desc| Referrer { desc, tag: None })
        .collect())
    }

    /// `GET /v2/<name>/referrers/<digest>` across pages; `None` when the registry has no such API.
    async fn referrers_api(
        &self,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let what = format!(
            "referrers of {}/{}@{subject}",
            self.host.name, self.repository
        );
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(media_type::OCI_INDEX));
        let first = format!("/v2/{}/referrers/{subject}", self.repository);
        let mut pages = Pages::new(
            &self.client,
            &self.host,
            first,
            &self.pull_scope,
            &what,
            headers,
        );
        let mut out = Vec::new();
        let mut first_page = true;
        while let Some(resp) = pages.next().await? {
            let status = resp.status().as_u16();
            // Registries without the API answer 404 (or 400/405 for an unknown route).
            if matches!(status, 404 | 400 | 405) && first_page {
                return Ok(None);
            }
            first_page = false;
            if !resp.status().is_success() {
                return Err(RegistryError::Status {
                    registry: self.host.name.clone(),
                    what,
                    status,
                    body: self.client.body_excerpt(resp).await,
                });
            }
            let body = self
                .client
                .body(resp, &self.host.name, &what)
                .read_capped(MAX_MANIFEST_BYTES, "a referrers index")
                .await?;
            let index = Manifest::parse(media_type::OCI_INDEX, &body).map_err(|e| {
                RegistryError::Protocol {
                    registry: self.host.name.clone(),
                    what: what.clone(),
                    why: ferry_oci::error_chain(&e),
                }
            })?;
            out.extend(index.manifests);
        }
        Ok(Some(out))
    }

    /// The tag-schema fallback: an index tagged `sha256-<hex>` listing the referrers.
    async fn fallback_index(&self, subject: &Digest) -> Result<Vec<Descriptor>, RegistryError> {
        match self.resolve(&subject.tag_form()).await {
            Ok((desc, bytes)) if media_type::is_index(&desc.media_type) => {
                Ok(Manifest::parse(&desc.media_type, &bytes)
                    .map(|m| m.manifests)
                    .unwrap_or_default())
            }
            Ok(_) | Err(RegistryError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// After pushing a manifest with a `subject` to a registry that did not take care of it (no
    /// `OCI-Subject` answer), add it to the fallback index: read, add, write, then read again — another
    /// client updating the same index at the same moment may have replaced ours, and then we go again.
    pub(crate) async fn add_to_fallback_index(
        &self,
        subject: &Digest,
        entry: Descriptor,
    ) -> Result<(), RegistryError> {
        let tag = subject.tag_form();
        for attempt in 1..=INDEX_UPDATE_ATTEMPTS {
            let mut manifests = self.fallback_index(subject).await?;
            if manifests.iter().any(|m| m.digest == entry.digest) {
                return Ok(());
            }
            manifests.push(entry.clone());
            let bytes = gojson::to_vec(&Index {
                schema_version: 2,
                media_type: media_type::OCI_INDEX,
                manifests: &manifests,
            })
            .expect("descriptors serialize");
            let desc = Descriptor::of(media_type::OCI_INDEX, &bytes);
            // Boxed: pushing a manifest can lead here, and here pushes a manifest.
            Box::pin(self.push_manifest(&desc, Bytes::from(bytes), &tag)).await?;
            // Registries without the referrers API have no conditional writes either, so a client that read
            // the index just before our write can replace it just after. Checking again after such a
            // client's read-modify-write would have landed catches that, and then we write again.
            let mut kept = true;
            for pause_ms in [0, 150 + (crate::retry::jitter() * 150.0) as u64] {
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                if !self
                    .fallback_index(subject)
                    .await?
                    .iter()
                    .any(|m| m.digest == entry.digest)
                {
                    kept = false;
                    break;
                }
            }
            if kept {
                return Ok(());
            }
            tracing::warn!(
                registry = %self.host.name, attempt,
                "the referrers index {tag} was changed by another client at the same time; updating it again"
            );
        }
        Err(RegistryError::Protocol {
            registry: self.host.name.clone(),
            what: format!(
                "referrers index {}/{}:{tag}",
                self.host.name, self.repository
            ),
            why: format!(
                "other clients kept replacing it; {} is not listed after {INDEX_UPDATE_ATTEMPTS} attempts",
                entry.digest
            ),
        })
    }
}
