use std::path::PathBuf;

use ferry_oci::{Digest, ManifestError};

/// Errors from stores and transfers. Messages name the store, the path or the digest involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store does not hold the content or name asked for.
    #[error("{what} not found in {store}")]
    NotFound {
        /// The store, described.
        store: String,
        /// What was asked for (a digest, a name).
        what: String,
    },

    /// Received bytes hash to another digest than the descriptor's; nothing was stored.
    #[error(
        "digest mismatch for {expected} from {store}: received {size} bytes hashing to {actual}; \
         the content is corrupt or was replaced, nothing was stored"
    )]
    DigestMismatch {
        /// The store they came from, described.
        store: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
        /// Bytes that arrived.
        size: u64,
    },

    /// A body was shorter or longer than its descriptor's size (a longer one is cut off at one byte past it).
    #[error(
        "size mismatch for {digest} from {store}: the descriptor says {expected} bytes, received {actual}{}",
        if *actual > *expected { " or more" } else { "" }
    )]
    SizeMismatch {
        /// The store it came from, described.
        store: String,
        /// The blob.
        digest: Digest,
        /// The descriptor's size in bytes.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },

    /// A blob read whole into memory ([`crate::file::read_small`]) that is larger than its caller allows.
    #[error(
        "blob {digest} in {store} is {size} bytes, more than the {cap}-byte limit for what is read into memory"
    )]
    TooLarge {
        /// The store it is in, described.
        store: String,
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// The caller's limit in bytes.
        cap: u64,
    },

    /// A store answered a range request with the whole blob; transient, as starting the blob over from byte 0
    /// works.
    #[error(
        "{store} ignored a range request for {digest} (asked from byte {offset}, got the whole blob); \
         starting that blob over"
    )]
    RangeIgnored {
        /// The store, described.
        store: String,
        /// The blob.
        digest: Digest,
        /// The byte offset asked from.
        offset: u64,
    },

    /// A partial download (resumed from an earlier run) turned out wrong — a short or corrupt body, not an
    /// ignored range request; the bytes are thrown away and the blob starts over from byte 0.
    #[error(
        "the partial download of {digest} from {store} ({offset} bytes kept from an earlier run) is unusable; starting that blob over"
    )]
    PartialDiscarded {
        /// The store, described.
        store: String,
        /// The blob.
        digest: Digest,
        /// Bytes kept from the earlier run, now thrown away.
        offset: u64,
        /// What was wrong with them.
        #[source]
        cause: Box<StoreError>,
    },

    /// A local file or directory could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A manifest a store holds could not be parsed (it walks no further).
    #[error("invalid manifest {digest} from {store}: {source}")]
    Manifest {
        /// The store, described.
        store: String,
        /// The manifest's digest (or the name it was found by).
        digest: String,
        /// Why it was refused.
        source: ManifestError,
    },

    /// A directory or file is not a usable OCI layout (no or a bad `oci-layout`, an unreadable
    /// `index.json`, an entry that breaks the layout's rules).
    #[error("{}: {why}", path.display())]
    InvalidLayout {
        /// The layout directory or the file at fault.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// An error from a remote store (registry). `transient` says whether retrying may help.
    #[error("{source}")]
    Remote {
        /// The store's own error (a `ferry_registry` error for a registry).
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether retrying may help (a broken connection, a 5xx or 429), as the store judged it.
        transient: bool,
    },
}

impl StoreError {
    /// Whether the bytes received so far cannot be the blob: a resumed partial download must be thrown away.
    pub fn invalidates_partial(&self) -> bool {
        matches!(
            self,
            StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
                | StoreError::RangeIgnored { .. }
                | StoreError::PartialDiscarded { .. }
        )
    }

    /// An [`StoreError::Io`] naming `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the same operation may succeed: broken connections and overloaded servers, not
    /// missing content, bad credentials or corrupt data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Remote { transient, .. } => *transient,
            // Starting the blob over from byte 0 works.
            StoreError::RangeIgnored { .. } | StoreError::PartialDiscarded { .. } => true,
            _ => false,
        }
    }
}
