//! What a package is: name, version, architecture, components, images (digest, size) and integrity — the
//! same summary for a package on disk and one in a registry.

use std::collections::HashSet;
use std::future::Future;

use ferry_oci::{Descriptor, Manifest, media_type};
use serde::Serialize;

use crate::checksums::Integrity;
use crate::definition::Definition;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The path or reference inspected.
    pub package: String,
    /// `directory`, `tar`, `tar.zst`, `tar.gz` or `oci`.
    pub format: String,
    pub kind: String,
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub flavor: String,
    pub description: String,
    /// For a package in a registry: the digest of its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub components: Vec<ComponentSummary>,
    pub images: Vec<ImageSummary>,
    /// Files in the package and their bytes.
    pub files: usize,
    pub bytes: u64,
    pub integrity: Integrity,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSummary {
    pub name: String,
    pub required: bool,
    pub description: String,
    pub images: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    pub name: String,
    pub digest: String,
    pub media_type: String,
    /// Bytes of the manifest (or index) and everything below it that the package stores.
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Summary {
    pub fn new(
        package: String,
        format: &str,
        def: &Definition,
        files: usize,
        bytes: u64,
        integrity: Integrity,
    ) -> Summary {
        Summary {
            package,
            format: format.to_string(),
            kind: def.kind.clone(),
            name: def.metadata.name.clone(),
            version: def.metadata.version.clone(),
            architecture: def.architecture().to_string(),
            flavor: def.build.flavor.clone(),
            description: def.metadata.description.clone(),
            digest: None,
            components: def
                .components
                .iter()
                .map(|c| ComponentSummary {
                    name: c.name.clone(),
                    required: c.required,
                    description: c.description.clone(),
                    images: c.images.clone(),
                })
                .collect(),
            images: Vec::new(),
            files,
            bytes,
            integrity,
        }
    }
}

/// The named entries of `images/index.json` with their sizes; `read` gives a blob's bytes (`None` when the
/// package cannot say, which leaves that manifest's children out of the size).
pub async fn images<F, Fut>(entries: &[Descriptor], read: F) -> Vec<ImageSummary>
where
    F: Fn(Descriptor) -> Fut,
    Fut: Future<Output = Option<Vec<u8>>>,
{
    let mut out = Vec::new();
    for e in entries {
        let Some(name) = e.image_name() else { continue };
        let mut seen: HashSet<ferry_oci::Digest> = HashSet::new();
        let mut size = 0;
        let mut stack = vec![e.clone()];
        while let Some(d) = stack.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            size += d.size;
            if media_type::is_manifest_like(&d.media_type)
                && let Some(bytes) = read(d.clone()).await
                && let Ok(m) = Manifest::parse(&d.media_type, &bytes)
            {
                stack.extend(m.successors());
            }
        }
        out.push(ImageSummary {
            name,
            digest: e.digest.to_string(),
            media_type: e.media_type.clone(),
            size,
            platform: e.platform.as_ref().map(|p| p.to_string()),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
