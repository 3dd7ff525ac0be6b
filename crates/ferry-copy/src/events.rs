use std::sync::Arc;

use ferry_oci::Digest;

/// How a node reached the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Streamed from the source (and added to the cache on the way).
    Fetched,
    /// Streamed from the cache.
    Cached,
    /// Hard-linked from the cache: no bytes copied.
    Linked,
    /// The destination made it exist without bytes (a registry's cross-repository mount).
    Mounted,
    /// The destination already had it.
    Existing,
}

/// What the engine reports while it works; the CLI draws progress from these, a library user may log them.
#[derive(Clone, Debug)]
pub enum Event {
    /// A node joined the copy (its size counts toward the total).
    Discovered { digest: Digest, size: u64 },
    /// Bytes of a node arrived.
    Progress { digest: Digest, bytes: u64 },
    /// A node is complete at the destination.
    Done {
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
    },
    /// The copy of the graph under `digest` failed (transiently) and starts over: counts so far are void.
    Retrying {
        digest: Digest,
        attempt: u32,
        error: String,
    },
}

pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
