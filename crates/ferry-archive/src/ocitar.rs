//! An OCI image layout inside a tar: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.

use std::collections::HashMap;

use ferry_oci::{Descriptor, Digest};
use serde::Deserialize;

use crate::error::{ArchiveError, Result};
use crate::tarindex::{Span, TarIndex};

pub(crate) const OCI_LAYOUT: &str = "oci-layout";
pub(crate) const INDEX_JSON: &str = "index.json";

/// Whether the tar holds an OCI layout (Docker ≥ 25 saves, skopeo/ferry oci-archives).
pub(crate) fn is_layout(index: &TarIndex) -> bool {
    index.get(OCI_LAYOUT).is_some() && index.get(INDEX_JSON).is_some()
}

/// The blobs by digest and the entries of `index.json`.
pub(crate) fn read(index: &TarIndex) -> Result<(HashMap<Digest, Span>, Vec<Descriptor>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Marker {
        image_layout_version: String,
    }
    let marker = index.read_small(OCI_LAYOUT)?;
    match serde_json::from_slice::<Marker>(&marker) {
        Ok(m) if m.image_layout_version == "1.0.0" => {}
        Ok(m) => {
            return Err(ArchiveError::entry(
                index.archive(),
                OCI_LAYOUT,
                format!(
                    "unsupported imageLayoutVersion {:?}",
                    m.image_layout_version
                ),
            ));
        }
        Err(e) => {
            return Err(ArchiveError::entry(
                index.archive(),
                OCI_LAYOUT,
                format!("invalid: {e}"),
            ));
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct IndexFile {
        schema_version: u32,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let bytes = index.read_small(INDEX_JSON)?;
    let file: IndexFile = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::entry(index.archive(), INDEX_JSON, format!("invalid: {e}")))?;
    if file.schema_version != 2 {
        return Err(ArchiveError::entry(
            index.archive(),
            INDEX_JSON,
            format!("unsupported schemaVersion {}", file.schema_version),
        ));
    }
    let blobs = index
        .files()
        .filter_map(|(name, span)| {
            let hex = name.strip_prefix("blobs/sha256/")?;
            let digest = format!("sha256:{hex}").parse::<Digest>().ok()?;
            Some((digest, span))
        })
        .collect();
    Ok((blobs, file.manifests))
}
