use std::path::PathBuf;

use ferry_store::StoreError;

/// Errors from archives and the Docker Engine. Messages name the archive and entry, or the socket.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Something wrong with one entry: an unsafe path, a symlink out of the archive, an oversized metadata
    /// file, an entry cut short.
    #[error("{}: entry {entry:?}: {why}", archive.display())]
    Entry {
        archive: PathBuf,
        entry: String,
        why: String,
    },

    /// The archive as a whole: not a tar, truncated between entries, not an image archive.
    #[error("{}: {why}", archive.display())]
    Invalid { archive: PathBuf, why: String },

    #[error("no image named {wanted:?} in {archive}; it has: {found}")]
    NoSuchImage {
        archive: String,
        wanted: String,
        found: String,
    },

    #[error("{archive} holds {count} images ({found}); name the one you want")]
    Ambiguous {
        archive: String,
        count: usize,
        found: String,
    },

    #[error(
        "cannot reach the Docker Engine at {} ({origin}): {why}",
        socket.display()
    )]
    DaemonUnreachable {
        socket: PathBuf,
        origin: String,
        why: String,
    },

    #[error("image {name:?} not found in the Docker Engine at {}", socket.display())]
    DaemonImageNotFound { name: String, socket: PathBuf },

    #[error("Docker Engine at {}: {what}: {why}", socket.display())]
    Daemon {
        socket: PathBuf,
        what: String,
        why: String,
    },

    /// A Docker endpoint ferry cannot use (tcp://, ssh://, a broken context).
    #[error("{0}")]
    Endpoint(String),

    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn entry(
        archive: impl Into<PathBuf>,
        entry: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        ArchiveError::Entry {
            archive: archive.into(),
            entry: entry.into(),
            why: why.into(),
        }
    }

    pub(crate) fn invalid(archive: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        ArchiveError::Invalid {
            archive: archive.into(),
            why: why.into(),
        }
    }
}
