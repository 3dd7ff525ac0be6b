use std::path::PathBuf;

use ferry_oci::{Digest, ManifestError};

/// Errors from stores and transfers. Messages name the store, the path or the digest involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found in {store}")]
    NotFound { store: String, what: String },

    #[error(
        "digest mismatch for {expected} from {store}: received {size} bytes hashing to {actual}; \
         the content is corrupt or was replaced, nothing was stored"
    )]
    DigestMismatch {
        store: String,
        expected: Digest,
        actual: Digest,
        size: u64,
    },

    #[error(
        "size mismatch for {digest} from {store}: the descriptor says {expected} bytes, received {actual}{}",
        if *actual > *expected { " or more" } else { "" }
    )]
    SizeMismatch {
        store: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    /// A blob read whole into memory ([`crate::file::read_small`]) that is larger than its caller allows.
    #[error(
        "blob {digest} in {store} is {size} bytes, more than the {cap}-byte limit for what is read into memory"
    )]
    TooLarge {
        store: String,
        digest: Digest,
        size: u64,
        cap: u64,
    },

    #[error(
        "{store} ignored a range request for {digest} (asked from byte {offset}, got the whole blob); \
         starting that blob over"
    )]
    RangeIgnored {
        store: String,
        digest: Digest,
        offset: u64,
    },

    /// A partial download (resumed from an earlier run) turned out wrong — a short or corrupt body, not an
    /// ignored range request; the bytes are thrown away and the blob starts over from byte 0.
    #[error(
        "the partial download of {digest} from {store} ({offset} bytes kept from an earlier run) is unusable; starting that blob over"
    )]
    PartialDiscarded {
        store: String,
        digest: Digest,
        offset: u64,
        #[source]
        cause: Box<StoreError>,
    },

    /// A writer lost bytes it had been given (an upload cut mid-body whose registry kept only part of
    /// it, or dropped the session) and needs the blob again from `offset`. [`crate::transfer`] re-reads
    /// the source from there; anywhere else it is a transient error (starting the blob over works).
    #[error("{store} needs the bytes of {digest} again from byte {offset}")]
    Resend {
        store: String,
        digest: Digest,
        offset: u64,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid manifest {digest} from {store}: {source}")]
    Manifest {
        store: String,
        digest: String,
        source: ManifestError,
    },

    #[error("{}: {why}", path.display())]
    InvalidLayout { path: PathBuf, why: String },

    /// An error from a remote store (registry). `transient` says whether retrying may help.
    #[error("{source}")]
    Remote {
        source: Box<dyn std::error::Error + Send + Sync>,
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
            StoreError::RangeIgnored { .. }
            | StoreError::PartialDiscarded { .. }
            | StoreError::Resend { .. } => true,
            _ => false,
        }
    }
}
