//! Which node of a resolved reference becomes the image (zarf-compat §3): a tag that resolves to an index
//! selects one platform's manifest; an index pinned by digest is kept whole.

use std::collections::HashMap;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Manifest, ManifestKind, PlatformSpec};
use ferry_store::{ReadStore, StoreError};

/// Which platform of an index a copy takes.
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
}

impl Selection {
    /// The index the root was chosen from, when a platform's manifest was chosen (the other manifest the
    /// selection knows): what a signature of the tag covers.
    pub fn chosen_from(&self) -> Option<&Digest> {
        self.known.keys().find(|d| **d != self.root.digest)
    }

    /// `root` as it is, its bytes (if known) handed on.
    pub fn of(root: Descriptor, bytes: Option<Bytes>) -> Selection {
        Selection {
            known: bytes
                .map(|b| HashMap::from([(root.digest.clone(), b)]))
                .unwrap_or_default(),
            root,
        }
    }
}

/// Why no node could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The index has no manifest for the platform asked for.
    #[error(
        "no {wanted} image in index {digest}; it has: {available}. Choose one with --platform or -a, or use --all-platforms"
    )]
    NoMatch {
        /// The platform asked for.
        wanted: String,
        /// The index.
        digest: Digest,
        /// The platforms it has.
        available: String,
    },
    /// Reading a manifest failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest could not be parsed.
    #[error("invalid manifest {digest}")]
    Manifest {
        /// The manifest.
        digest: Digest,
        /// Why.
        #[source]
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
        });
    }
    let spec = match choice {
        PlatformChoice::Auto(_) if by_digest => None,
        PlatformChoice::All => None,
        PlatformChoice::Auto(spec) | PlatformChoice::Exactly(spec) => Some(spec),
    };
    let Some(spec) = spec else {
        return Ok(Selection {
            root: resolved,
            known,
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
    })
}

fn parse(desc: &Descriptor, bytes: &[u8]) -> Result<Manifest, SelectError> {
    Manifest::parse(&desc.media_type, bytes).map_err(|source| SelectError::Manifest {
        digest: desc.digest.clone(),
        source,
    })
}
