//! Points where a caller joins a copy (in the spirit of oras-go's `CopyGraphOptions`): which nodes a node
//! needs, and what happens around each node's copy.

use bytes::Bytes;
use ferry_oci::{Descriptor, Manifest, media_type};
use ferry_store::{BoxFuture, ReadStore, StoreError};

/// Hooks of a copy. Every method has a default: successors by media type, nothing around the copy.
pub trait CopyHooks: Send + Sync {
    /// The nodes `desc` (a manifest or index whose verified bytes are `bytes`) needs before it can be
    /// written. By default: an index's manifests, a manifest's config and layers (non-distributable ones
    /// left out), and the subject of either.
    fn successors<'a>(
        &'a self,
        source: &'a dyn ReadStore,
        desc: &'a Descriptor,
        bytes: &'a Bytes,
    ) -> BoxFuture<'a, Result<Vec<Descriptor>, StoreError>> {
        Box::pin(async move { manifest_successors(source, desc, bytes) })
    }

    /// Called before `desc` is written to the destination (after its children are there).
    fn pre_copy<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Called once `desc` is in the destination.
    fn post_copy<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Called instead of the two above when the destination already had `desc`.
    fn on_skipped<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The default hooks.
pub struct DefaultHooks;

impl CopyHooks for DefaultHooks {}

/// The successors of a manifest or index by media type alone (what [`CopyHooks::successors`] does by
/// default; custom hooks may start from it).
pub fn manifest_successors(
    source: &dyn ReadStore,
    desc: &Descriptor,
    bytes: &[u8],
) -> Result<Vec<Descriptor>, StoreError> {
    if !media_type::is_manifest_like(&desc.media_type) {
        return Ok(Vec::new());
    }
    let manifest =
        Manifest::parse(&desc.media_type, bytes).map_err(|source_err| StoreError::Manifest {
            store: source.describe(),
            digest: desc.digest.to_string(),
            source: source_err,
        })?;
    Ok(manifest.successors())
}
