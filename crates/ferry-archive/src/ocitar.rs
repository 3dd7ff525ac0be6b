//! An OCI image layout inside a tar: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.

use std::collections::HashMap;

use ferry_oci::{Descriptor, Digest};

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
    read_annotated(index).map(|(blobs, entries, _)| (blobs, entries))
}

/// [`read`], and the annotations of `index.json` itself.
pub(crate) fn read_annotated(
    index: &TarIndex,
) -> Result<(HashMap<Digest, Span>, Vec<Descriptor>, Annotations)> {
    let marker = index.read_small(OCI_LAYOUT)?;
    ferry_store::layout::check_layout_marker(&marker)
        .map_err(|why| ArchiveError::entry(index.archive(), OCI_LAYOUT, why))?;
    let bytes = index.read_small(INDEX_JSON)?;
    let (entries, annotations) = ferry_store::layout::decode_index_annotated(&bytes)
        .map_err(|why| ArchiveError::entry(index.archive(), INDEX_JSON, why))?;
    let blobs = index
        .files()
        .filter_map(|(name, span)| {
            let hex = name.strip_prefix("blobs/sha256/")?;
            let digest = format!("sha256:{hex}").parse::<Digest>().ok()?;
            Some((digest, span))
        })
        .collect();
    Ok((blobs, entries, annotations))
}

pub(crate) type Annotations = std::collections::BTreeMap<String, String>;
