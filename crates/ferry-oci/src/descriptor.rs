//! Content descriptors, serialized in the image spec's Go field order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, Platform};

/// The tag or name an `index.json` entry is known by (the OCI layout's name key; Zarf's ORAS era writes the
/// full reference here).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full image reference of an `index.json` entry, as Crane-era Zarf and ferry write it.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// A layer's file name in an artifact (ORAS and Zarf packages name their layers with it).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The full image name containerd and `docker save` (Engine ≥ 25) record; their `ref.name` holds only the
/// tag.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Prefix of containerd's `containerd.io/distribution.source.<registry>` annotation, whose value is the
/// repository the content came from.
pub const ANNOTATION_DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source.";

/// Field order: mediaType, digest, size, urls, annotations, data, platform, artifactType — the order of
/// `ocispec.Descriptor`, which is what Zarf's `index.json` bytes follow. Annotations are a sorted map, as
/// Go sorts map keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The content's media type; empty when the document omitted it (some Docker-era indexes do).
    #[serde(default)]
    pub media_type: String,
    /// The sha256 digest the content must hash to.
    pub digest: Digest,
    /// The content's length in bytes; a read stops and fails past it.
    pub size: u64,
    /// Other places the content may be fetched from (foreign layers); ferry never follows them.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    /// Annotations, sorted by key as Go writes them.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The content itself, base64-encoded, when the writer embedded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The platform an index entry is for; `None` for platform-independent content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest this describes (referrers and artifact indexes carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// Go writes a nil map or slice as `null`; read it as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Descriptor {
    /// A descriptor of `size` bytes of `media_type` content with `digest`, and nothing else set.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The descriptor of `bytes` with `media_type`.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The image name a layout entry is known by, in zarf-compat §4 priority: `io.containerd.image.name`
    /// (Docker exports, whose `ref.name` is only the tag), then `containerd.io/distribution.source.<registry>`
    /// (→ `<registry>/<repo>@<digest>`), then `ref.name`, then `base.name` (Crane-era Zarf layouts).
    pub fn image_name(&self) -> Option<String> {
        if let Some(n) = self.annotation(ANNOTATION_CONTAINERD_NAME) {
            return Some(n.to_string());
        }
        if let Some((key, repo)) = self
            .annotations
            .iter()
            .find(|(k, _)| k.starts_with(ANNOTATION_DISTRIBUTION_SOURCE))
        {
            let registry = &key[ANNOTATION_DISTRIBUTION_SOURCE.len()..];
            return Some(format!("{registry}/{repo}@{}", self.digest));
        }
        self.annotation(ANNOTATION_REF_NAME)
            .or_else(|| self.annotation(ANNOTATION_BASE_NAME))
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_annotations_and_urls_read_as_empty() {
        let d: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"x","digest":"{}","size":1,"annotations":null,"urls":null}}"#,
            Digest::of(b"x")
        ))
        .unwrap();
        assert!(d.annotations.is_empty() && d.urls.is_empty());
    }

    #[test]
    fn image_name_priority() {
        let mut d = Descriptor::new(crate::media_type::OCI_INDEX, Digest::of(b"i"), 1);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "linux".into());
        assert_eq!(d.image_name().as_deref(), Some("linux"));
        d.annotations.insert(
            "containerd.io/distribution.source.docker.io".into(),
            "library/hello-world".into(),
        );
        assert_eq!(
            d.image_name(),
            Some(format!("docker.io/library/hello-world@{}", d.digest))
        );
        d.annotations.insert(
            ANNOTATION_CONTAINERD_NAME.into(),
            "docker.io/library/hello-world:linux".into(),
        );
        assert_eq!(
            d.image_name().as_deref(),
            Some("docker.io/library/hello-world:linux")
        );
    }

    #[test]
    fn serializes_in_go_field_order() {
        let mut d = Descriptor::new(crate::media_type::OCI_MANIFEST, Digest::of(b"x"), 1);
        d.artifact_type = Some("application/x".into());
        d.platform = Some(Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        });
        d.annotations.insert("z".into(), "1".into());
        d.annotations.insert("a".into(), "2".into());
        let s = String::from_utf8(crate::gojson::to_vec(&d).unwrap()).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1,"annotations":{{"a":"2","z":"1"}},"platform":{{"architecture":"amd64","os":"linux"}},"artifactType":"application/x"}}"#,
                Digest::of(b"x")
            )
        );
    }
}
