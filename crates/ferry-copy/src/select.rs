//! Which node of a resolved reference becomes the image (zarf-compat §3): a tag that resolves to an index
//! selects one platform's manifest; an index pinned by digest is kept whole.

use std::collections::HashMap;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Manifest, ManifestKind, PlatformSpec};
use ferry_store::{ReadStore, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The Zarf default: select `spec` from a tagged index, keep an index referenced by digest whole.
    Auto(PlatformSpec),
    /// `--platform`: select `spec` from any index, even one pinned by digest.
    Exactly(PlatformSpec),
    /// `--all-platforms`: keep every index whole.
    All,
}

/// The node to copy and record.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The descriptor to record: the resolved manifest or index, or the selected child as the parent index
    /// described it (with its platform and annotations).
    pub root: Descriptor,
    /// Manifest bytes already fetched, keyed by digest (handed to the engine so nothing is fetched twice).
    pub known: HashMap<Digest, Bytes>,
    /// When a whole index is kept: every manifest below it, as their parents describe them. Layouts list
    /// these as entries without a name, as oras-go does.
    pub children: Vec<Descriptor>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "no {wanted} image in index {digest}; it has: {available}. Choose one with --platform or -a, or use --all-platforms"
    )]
    NoMatch {
        wanted: String,
        digest: Digest,
        available: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid manifest {digest}: {source}")]
    Manifest {
        digest: Digest,
        source: ferry_oci::ManifestError,
    },
}

/// Decide what to copy for a reference that resolved to `resolved` (with `bytes`). `by_digest` says whether
/// the reference named a digest.
pub async fn select_root(
    source: &dyn ReadStore,
    resolved: Descriptor,
    bytes: Bytes,
    by_digest: bool,
    choice: &PlatformChoice,
) -> Result<Selection, SelectError> {
    let manifest = parse(&resolved, &bytes)?;
    let mut known = HashMap::from([(resolved.digest.clone(), bytes.clone())]);
    if manifest.kind == ManifestKind::Image {
        return Ok(Selection {
            root: resolved,
            known,
            children: Vec::new(),
        });
    }
    let spec = match choice {
        PlatformChoice::Auto(_) if by_digest => None,
        PlatformChoice::All => None,
        PlatformChoice::Auto(spec) | PlatformChoice::Exactly(spec) => Some(spec),
    };
    let Some(spec) = spec else {
        let children = all_children(source, &manifest, &mut known).await?;
        return Ok(Selection {
            root: resolved,
            known,
            children,
        });
    };
    let chosen = manifest
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| spec.matches(p)))
        .cloned();
    let Some(chosen) = chosen else {
        let available: Vec<String> = manifest
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect();
        return Err(SelectError::NoMatch {
            wanted: spec.to_string(),
            digest: resolved.digest,
            available: if available.is_empty() {
                "no platform entries".into()
            } else {
                available.join(", ")
            },
        });
    };
    let child_bytes = source.fetch_manifest(&chosen).await?;
    known.insert(chosen.digest.clone(), child_bytes);
    Ok(Selection {
        root: chosen,
        known,
        children: Vec::new(),
    })
}

fn parse(desc: &Descriptor, bytes: &[u8]) -> Result<Manifest, SelectError> {
    Manifest::parse(&desc.media_type, bytes).map_err(|source| SelectError::Manifest {
        digest: desc.digest.clone(),
        source,
    })
}

/// Every manifest and index below an index (nested indexes included), depth first, each once.
async fn all_children(
    source: &dyn ReadStore,
    index: &Manifest,
    known: &mut HashMap<Digest, Bytes>,
) -> Result<Vec<Descriptor>, SelectError> {
    let mut out: Vec<Descriptor> = Vec::new();
    let mut stack: Vec<Descriptor> = index.manifests.iter().rev().cloned().collect();
    while let Some(d) = stack.pop() {
        if out.iter().any(|o| o.digest == d.digest) {
            continue;
        }
        if ferry_oci::media_type::is_index(&d.media_type) {
            let bytes = source.fetch_manifest(&d).await?;
            let nested = parse(&d, &bytes)?;
            known.insert(d.digest.clone(), bytes);
            stack.extend(nested.manifests.iter().rev().cloned());
        }
        out.push(d);
    }
    Ok(out)
}
