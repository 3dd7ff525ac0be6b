//! The content graph fixtures produce and `Registry::seed` uploads.

use bytes::Bytes;

use crate::encode::sha256_digest;

/// One node of a content graph: raw bytes + media type. Digest is `sha256:<hex>` of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The Content-Type it is pushed with.
    pub media_type: String,
    /// The content.
    pub bytes: Bytes,
}

impl Blob {
    /// A blob of `bytes` with `media_type`.
    pub fn new(media_type: impl Into<String>, bytes: impl Into<Bytes>) -> Blob {
        Blob {
            media_type: media_type.into(),
            bytes: bytes.into(),
        }
    }

    /// `sha256:<hex>` of the bytes.
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// Length of the bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// A manifest or index with everything beneath it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Raw manifest/index JSON and its media type (the Content-Type to push it with).
    pub manifest: Blob,
    /// Config and layers this manifest references that must be uploaded; never foreign layers.
    pub blobs: Vec<Blob>,
    /// For indexes: the child manifests/indexes, in the order the index lists them.
    pub children: Vec<Artifact>,
}

impl Artifact {
    /// The digest of the root manifest or index.
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    /// Every blob in the graph, children first, each digest once.
    pub fn all_blobs(&self) -> Vec<Blob> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        self.walk(&mut |artifact| {
            for blob in &artifact.blobs {
                if seen.insert(blob.digest()) {
                    out.push(blob.clone());
                }
            }
        });
        out
    }

    /// Every manifest in the graph in push order: children before the indexes that list them, root last,
    /// each digest once.
    pub fn all_manifests(&self) -> Vec<Blob> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        self.walk(&mut |artifact| {
            if seen.insert(artifact.digest()) {
                out.push(artifact.manifest.clone());
            }
        });
        out
    }

    /// Post-order walk, so callers see a child before its parent.
    fn walk(&self, visit: &mut dyn FnMut(&Artifact)) {
        for child in &self.children {
            child.walk(visit);
        }
        visit(self);
    }
}
