//! Raw manifests: parsed only to find their successors, never re-serialized (that would change digests).

use serde::Deserialize;

use crate::Descriptor;
use crate::media_type::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The largest manifest ferry reads: registries cap manifests at 4 MiB, and an unbounded read of
/// untrusted metadata is how memory gets exhausted.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Why bytes could not be read as a manifest or index. Each variant is a refusal of untrusted content, not an
/// I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A Docker schema 1 manifest (served as, declared as, or with `schemaVersion: 1`); holds its media type.
    #[error(
        "Docker schema 1 manifest ({0}) is not supported: it is deprecated and unsigned-by-digest; \
         re-push the image with a current Docker or skopeo to convert it to schema 2"
    )]
    Schema1(String),
    /// The bytes are not JSON of a manifest's shape.
    #[error("manifest is not valid JSON for {media_type}")]
    Json {
        /// The media type the bytes were read as (`a manifest` when unknown).
        media_type: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// More than [`MAX_MANIFEST_BYTES`]; refused before parsing.
    #[error("manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit")]
    TooLarge {
        /// The manifest's length in bytes.
        size: u64,
    },
    /// Neither served type, declared `mediaType` nor shape (`manifests` or `config`) says what it is; holds
    /// the served type.
    #[error("unknown manifest media type {0:?}: expected an OCI or Docker v2 manifest or index")]
    UnknownMediaType(String),
    /// The document's `mediaType` disagrees with the specific type it was served as.
    #[error("manifest declares media type {declared:?} but was served as {served:?}")]
    MediaTypeMismatch {
        /// The document's own `mediaType`.
        declared: String,
        /// The Content-Type or parent descriptor's type it came with.
        served: String,
    },
}

/// Which of the two manifest shapes a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// An OCI index or Docker manifest list: its successors are `manifests`.
    Index,
    /// An image or artifact manifest: its successors are the config and `layers`.
    Image,
}

/// The parts of a manifest or index ferry reads. Unknown fields are ignored; the raw bytes are what travel.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Index or image manifest.
    pub kind: ManifestKind,
    /// The media type it was read as (served type, else declared, else inferred from its shape).
    pub media_type: String,
    /// The `artifactType`, if declared.
    pub artifact_type: Option<String>,
    /// The config blob of an image manifest (`None` for an index).
    pub config: Option<Descriptor>,
    /// The layers of an image manifest (also the `blobs` of the withdrawn artifact manifest).
    pub layers: Vec<Descriptor>,
    /// The entries of an index (empty for an image manifest).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one is about (`subject`: a signature's or SBOM's image), for referrers.
    pub subject: Option<Descriptor>,
    /// The document's annotations (empty when absent or `null`).
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    // The withdrawn OCI artifact manifest used `blobs`; treat them as layers.
    #[serde(default)]
    blobs: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Manifest {
    /// Parse `bytes` served with `served_type` (the Content-Type or the parent descriptor's mediaType; may be
    /// empty when unknown, then the document's own `mediaType` or its shape decides).
    pub fn parse(served_type: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let served = media_type::essence(served_type);
        if media_type::is_schema1(served) {
            return Err(ManifestError::Schema1(served.to_string()));
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            media_type: if served.is_empty() {
                "a manifest"
            } else {
                served
            }
            .to_string(),
            source,
        })?;
        if raw.schema_version == Some(1) {
            return Err(ManifestError::Schema1(
                raw.media_type
                    .unwrap_or_else(|| media_type::DOCKER_SCHEMA1.into()),
            ));
        }
        let declared = raw.media_type.as_deref().unwrap_or("");
        if media_type::is_schema1(declared) {
            return Err(ManifestError::Schema1(declared.to_string()));
        }
        // A generic type such as application/json says nothing; otherwise the served type must agree with the
        // document, or a registry (or attacker) could make ferry walk bytes as something they are not.
        let served_is_specific = media_type::is_manifest_like(served);
        let media_type = match (served_is_specific, declared.is_empty()) {
            (true, false) if served != declared => {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: declared.into(),
                    served: served.into(),
                });
            }
            (true, _) => served.to_string(),
            (false, false) => declared.to_string(),
            (false, true) if raw.manifests.is_some() => OCI_INDEX.to_string(),
            (false, true) if raw.config.is_some() => OCI_MANIFEST.to_string(),
            (false, true) => return Err(ManifestError::UnknownMediaType(served.to_string())),
        };
        let kind = if media_type::is_index(&media_type) {
            ManifestKind::Index
        } else if media_type::is_image_manifest(&media_type) {
            ManifestKind::Image
        } else {
            return Err(ManifestError::UnknownMediaType(media_type));
        };
        let mut layers = raw.layers;
        layers.extend(raw.blobs);
        Ok(Manifest {
            kind,
            media_type,
            artifact_type: raw.artifact_type,
            config: raw.config,
            layers,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            annotations: raw.annotations.unwrap_or_default(),
        })
    }

    /// The nodes this one points at, in document order: manifests (index), or config then layers
    /// (manifest), then the subject. Non-distributable layers are left out: they are never copied.
    pub fn successors(&self) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        out.extend(self.manifests.iter().cloned());
        out.extend(self.config.iter().cloned());
        out.extend(
            self.layers
                .iter()
                .filter(|d| !media_type::is_non_distributable(&d.media_type))
                .cloned(),
        );
        out.extend(self.subject.iter().cloned());
        out
    }

    /// How a referrers index lists this manifest (OCI distribution spec): its own descriptor with the
    /// manifest's `artifactType` (else the config's media type) and the manifest's annotations.
    pub fn referrer_descriptor(&self, desc: &Descriptor) -> Descriptor {
        let mut d = Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
        d.artifact_type = self
            .artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()));
        d.annotations = self.annotations.clone();
        d
    }

    /// Whether every layer is a container-image layer (the Zarf definition of a container image).
    pub fn is_container_image(&self) -> bool {
        self.kind == ManifestKind::Image
            && self.layers.iter().all(|l| {
                l.media_type.starts_with("application/vnd.oci.image.layer.")
                    || l.media_type
                        .starts_with("application/vnd.docker.image.rootfs.")
            })
    }
}

/// Whether a media type is one of the four v2 manifest/index types (used by callers to pick Accept headers).
pub fn is_known_manifest_type(mt: &str) -> bool {
    matches!(
        mt,
        OCI_INDEX | OCI_MANIFEST | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1b44b5a3e06a9aae883e7bf25e45c100be0bb81a0e01b32de604f3ac44711634","size":2},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:17eec7bbc9d79fa397ac95c7283ecd04d1fe6978516932a3db110c6206430809","size":5,"urls":["https://example.com/x"]},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2771e37a12b7bcb2902456ecf3f29bf9ee11ec348e66e8eb322d9780ad7fc2df","size":3}]}"#;

    #[test]
    fn successors_skip_foreign_layers() {
        let m = Manifest::parse("", IMAGE.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        let s = m.successors();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].media_type, media_type::OCI_CONFIG);
        assert!(m.is_container_image());
    }

    #[test]
    fn refuses_schema1() {
        let err = Manifest::parse(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            b"{}",
        )
        .unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        let err =
            Manifest::parse("application/json", br#"{"schemaVersion":1,"name":"x"}"#).unwrap_err();
        assert!(matches!(err, ManifestError::Schema1(_)));
    }

    #[test]
    fn detects_shape_and_rejects_mismatch() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(Manifest::parse("", idx).unwrap().kind, ManifestKind::Index);
        let err = Manifest::parse(media_type::OCI_INDEX, IMAGE.as_bytes()).unwrap_err();
        assert!(matches!(err, ManifestError::MediaTypeMismatch { .. }));
        assert!(matches!(
            Manifest::parse("", b"not json"),
            Err(ManifestError::Json { .. })
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
        assert!(matches!(
            Manifest::parse("", &big),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
