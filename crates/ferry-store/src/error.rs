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

    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid manifest {digest} from {store}")]
    Manifest {
        store: String,
        digest: String,
        source: ManifestError,
    },

    #[error("{}: {why}", path.display())]
    InvalidLayout { path: PathBuf, why: String },

    /// An error from a remote store (registry), or a refusal that is not about content. It reads as its
    /// cause: the message is the cause's, and the cause's own causes follow it once.
    #[error(transparent)]
    Remote(RemoteError),
}

/// The cause of a [`StoreError::Remote`], and whether retrying may help.
#[derive(Debug)]
pub struct RemoteError {
    cause: Box<dyn std::error::Error + Send + Sync>,
    transient: bool,
}

impl RemoteError {
    /// The error the remote store reported (a `ferry_registry::RegistryError`, say), for callers that
    /// need its kind.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.cause.as_ref()
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cause.fmt(f)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
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

    /// A remote store's failure (or any refusal given as a message); `transient`: retrying may help.
    pub fn remote(
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        transient: bool,
    ) -> Self {
        StoreError::Remote(RemoteError {
            cause: cause.into(),
            transient,
        })
    }

    /// The remote store's own error, if this is one: see [`RemoteError::cause`].
    pub fn remote_cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            StoreError::Remote(r) => Some(r.cause()),
            _ => None,
        }
    }

    /// `what` (`manifest sha256:…`, `image NAME`) is not in `store` (a store's `describe()`).
    pub fn not_found(store: String, what: impl Into<String>) -> Self {
        StoreError::NotFound {
            store,
            what: what.into(),
        }
    }

    /// An I/O failure on `path`.
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
            StoreError::Remote(r) => r.transient,
            // Starting the blob over from byte 0 works.
            StoreError::RangeIgnored { .. } | StoreError::PartialDiscarded { .. } => true,
            _ => false,
        }
    }
}
