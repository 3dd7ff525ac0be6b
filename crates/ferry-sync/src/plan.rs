//! `--plan`: the same copy, against a destination that records instead of writing.
//!
//! The engine walks every graph exactly as a real run would (same successors, platforms, referrers), asking
//! the real destination what it has; whatever it would write is counted instead. A blob counted once in a
//! run is not counted again (a registry mounts it from the repository it went to first, a layout already
//! has it), so the total is what the real run moves. No blob is read from the source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ferry_oci::{Descriptor, Digest, media_type};
use ferry_store::{BoxFuture, StoreError, WriteTarget};
use serde::Serialize;

use crate::dryrun::{DryRun, Probe};

/// What a plan has counted so far in the run: blobs by digest, manifests per destination.
#[derive(Default)]
pub struct PlanLedger {
    counted: Mutex<HashSet<(String, Digest)>>,
}

/// Bytes of one image's plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanBytes {
    /// Would move to the destination.
    pub moving: u64,
    /// The destination already has.
    pub present: u64,
    /// Moving for an earlier image of this run already (counted there).
    pub shared: u64,
}

/// A destination as `--plan` sees it: answers what the real one has, records what would be written.
pub struct PlanTarget {
    inner: Arc<dyn WriteTarget>,
    ledger: Arc<PlanLedger>,
    bytes: Mutex<PlanBytes>,
}

impl PlanTarget {
    /// A plan over `inner`, counting into the run's `ledger` so content shared by images is counted once.
    pub fn new(inner: Arc<dyn WriteTarget>, ledger: Arc<PlanLedger>) -> DryRun<PlanTarget> {
        DryRun(PlanTarget {
            inner,
            ledger,
            bytes: Mutex::new(PlanBytes::default()),
        })
    }

    /// What this destination's share of the plan counted so far.
    pub fn bytes(&self) -> PlanBytes {
        self.bytes.lock().expect("plan lock").clone()
    }

    /// Blobs are one pool per run (mounted or shared); manifests are written per destination store.
    fn key(&self, desc: &Descriptor) -> (String, Digest) {
        let scope = if media_type::is_manifest_like(&desc.media_type) {
            self.inner.describe()
        } else {
            String::new()
        };
        (scope, desc.digest.clone())
    }
}

impl Probe for PlanTarget {
    fn describe(&self) -> String {
        format!("{} (plan)", self.inner.describe())
    }

    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if self.inner.exists(desc).await? {
                self.bytes.lock().expect("plan lock").present += desc.size;
                return Ok(true);
            }
            Ok(false)
        })
    }

    /// Every node the destination lacks "arrives" here (a blob as if mounted, so the engine never reads
    /// it from the source), counted once per run.
    fn would_write(&self, desc: &Descriptor) -> Result<bool, StoreError> {
        let first = self
            .ledger
            .counted
            .lock()
            .expect("ledger lock")
            .insert(self.key(desc));
        let mut b = self.bytes.lock().expect("plan lock");
        if first {
            b.moving += desc.size;
        } else {
            b.shared += desc.size;
        }
        Ok(true)
    }

    fn would_tag(&self, _desc: &Descriptor) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_copy::{CopyOptions, copy};
    use ferry_oci::media_type::{OCI_CONFIG, OCI_MANIFEST};
    use ferry_store::ReadTarget;
    use ferry_store::testing::MemoryStore;

    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

    fn image(
        store: &MemoryStore,
        tag: &str,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Descriptor {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
        });
        let d = store.add(OCI_MANIFEST, serde_json::to_vec(&m).unwrap());
        store.set_tag(tag, &d);
        d
    }

    /// Two images sharing a layer and their config, into a store that already has one other layer: the plan
    /// counts what is shared once, the present layer as present, reads no blob, and writes nothing.
    #[tokio::test]
    async fn shared_blobs_count_once_and_nothing_is_written() {
        let src = Arc::new(MemoryStore::new("src"));
        let shared = src.add(LAYER, b"shared layer".to_vec());
        let own_a = src.add(LAYER, b"layer a".to_vec());
        let own_b = src.add(LAYER, b"layer b".to_vec());
        let cfg = src.add(OCI_CONFIG, b"{}".to_vec());
        let a = image(&src, "a", &cfg, &[shared.clone(), own_a.clone()]);
        let b = image(&src, "b", &cfg, &[shared.clone(), own_b.clone()]);
        let dst = Arc::new(MemoryStore::new("dst"));
        dst.add(LAYER, b"layer b".to_vec());

        let ledger = Arc::new(PlanLedger::default());
        let source: Arc<dyn ReadTarget> = src.clone();
        let mut totals = PlanBytes::default();
        for name in ["a", "b"] {
            let plan = Arc::new(PlanTarget::new(dst.clone(), ledger.clone()));
            let target: Arc<dyn WriteTarget> = plan.clone();
            copy(
                &source,
                name,
                &target,
                &[name.to_string()],
                &CopyOptions::default(),
            )
            .await
            .unwrap();
            let got = plan.bytes();
            totals.moving += got.moving;
            totals.present += got.present;
            totals.shared += got.shared;
        }
        assert_eq!(
            totals.moving,
            shared.size + own_a.size + cfg.size + a.size + b.size,
            "{totals:?}"
        );
        assert_eq!(totals.present, own_b.size);
        assert_eq!(totals.shared, shared.size + cfg.size);
        for blob in [&shared, &own_a, &own_b, &cfg] {
            assert_eq!(src.fetches(&blob.digest), 0, "a plan reads no blob");
        }
        assert!(
            !dst.has(&shared.digest) && !dst.has(&a.digest),
            "a plan writes nothing"
        );
        assert!(dst.tag_names().is_empty());
    }
}
