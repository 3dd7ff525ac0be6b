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

    /// A writer lost bytes it had been given (an upload cut mid-body whose registry kept only part of
    /// it, or dropped the session) and needs the blob again from `offset`. [`crate::transfer`] re-reads
    /// the source from there; anywhere else it is a transient error (starting the blob over works).
    #[error("{store} needs the bytes of {digest} again from byte {offset}")]
    Resend {
        /// The writer's store, described.
        store: String,
        /// The blob.
        digest: Digest,
        /// Where the store needs the bytes from.
        offset: u64,
    },

    /// A local file or directory could not be read, written or renamed.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A manifest a store holds could not be parsed (it walks no further).
    #[error("invalid manifest {digest} from {store}")]
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
            StoreError::Remote(r) => r.transient,
            // Starting the blob over from byte 0 works.
            StoreError::RangeIgnored { .. }
            | StoreError::PartialDiscarded { .. }
            | StoreError::Resend { .. } => true,
            _ => false,
        }
    }
}
