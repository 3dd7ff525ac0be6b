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
    Discovered {
        /// The node.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// Bytes of a node arrived.
    Progress {
        /// The node.
        digest: Digest,
        /// How many bytes arrived since the last event.
        bytes: u64,
    },
    /// A node is complete at the destination.
    Done {
        /// The node.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// How it got there.
        outcome: BlobOutcome,
    },
    /// The copy of the graph under `digest` failed (transiently) and starts over: counts so far are void.
    Retrying {
        /// The graph's root.
        digest: Digest,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Why, on one line.
        error: String,
    },
}

/// Where a copy sends its [`Event`]s.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
