//! Blobs are served only once their digest was verified: each is hashed in full before its first byte
//! goes out, then remembered with the stamp of the file it is read from, and hashed again when that file
//! changes. Hashing first (rather than while streaming, cutting the connection on a mismatch) is what lets
//! a client never receive wrong bytes; the cost is one extra read per blob per file version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_oci::{Descriptor, Digest};
use ferry_store::StoreError;

use crate::backing::{Backing, Stamp};

#[derive(Default)]
pub(crate) struct Verified {
    done: Mutex<HashMap<Digest, Stamp>>,
    /// One hashing per blob at a time: concurrent first requests wait for it instead of each hashing.
    running: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Verified {
    /// Ok when `desc` may be served from `backing`: its bytes hash to its digest.
    pub async fn ensure(&self, backing: &Backing, desc: &Descriptor) -> Result<(), StoreError> {
        let Some(before) = backing.stamp(&desc.digest)? else {
            return Ok(()); // the store verifies each read itself
        };
        if self.is_verified(&desc.digest, before) {
            return Ok(());
        }
        let gate = self
            .running
            .lock()
            .expect("verify lock")
            .entry(desc.digest.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        let before = backing.stamp(&desc.digest)?.unwrap_or(before);
        if self.is_verified(&desc.digest, before) {
            return Ok(());
        }
        // Hashing with no writer is the verified transfer itself: size and digest are checked.
        let result = ferry_store::transfer(backing.store(), desc, Vec::new(), &|_| {}).await;
        self.running
            .lock()
            .expect("verify lock")
            .remove(&desc.digest);
        if let Err(e) = result {
            tracing::warn!("not serving {}: {e}", desc.digest);
            self.done.lock().expect("verify lock").remove(&desc.digest);
            return Err(e);
        }
        // A file that changed while it was hashed proves nothing; the next request hashes it again.
        if backing.stamp(&desc.digest)? == Some(before) {
            self.done
                .lock()
                .expect("verify lock")
                .insert(desc.digest.clone(), before);
        }
        Ok(())
    }

    fn is_verified(&self, digest: &Digest, stamp: Stamp) -> bool {
        self.done.lock().expect("verify lock").get(digest) == Some(&stamp)
    }
}
