use std::path::PathBuf;

use ferry_store::StoreError;

/// Errors from archives and the Docker Engine. Messages name the archive and entry, or the socket.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file could not be opened, read, written or renamed.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Something wrong with one entry: an unsafe path, a symlink out of the archive, an oversized metadata
    /// file, an entry cut short.
    #[error("{}: entry {entry:?}: {why}", archive.display())]
    Entry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path in it.
        entry: String,
        /// What is wrong with the entry.
        why: String,
    },

    /// The archive as a whole: not a tar, truncated between entries, not an image archive.
    #[error("{}: {why}", archive.display())]
    Invalid {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// A reference matches none of an archive's images.
    #[error("no image named {wanted:?} in {archive}; it has: {found}")]
    NoSuchImage {
        /// The archive, described.
        archive: String,
        /// The reference asked for.
        wanted: String,
        /// The names it does hold, for the message.
        found: String,
    },

    /// No image was named, and the archive holds more than one.
    #[error("{archive} holds {count} images ({found}); name the one you want")]
    Ambiguous {
        /// The archive, described.
        archive: String,
        /// How many images it holds.
        count: usize,
        /// Their names, for the message.
        found: String,
    },

    /// The Docker Engine's socket could not be connected to, or did not speak the Engine API.
    #[error(
        "cannot reach the Docker Engine at {} ({origin}): {why}",
        socket.display()
    )]
    DaemonUnreachable {
        /// The socket.
        socket: PathBuf,
        /// What named that socket ([`crate::EndpointOrigin`], as text).
        origin: String,
        /// What failed.
        why: String,
    },

    /// The Docker Engine has no image by that name, tag or ID.
    #[error("image {name:?} not found in the Docker Engine at {}", socket.display())]
    DaemonImageNotFound {
        /// The image asked for.
        name: String,
        /// The engine's socket.
        socket: PathBuf,
    },

    /// The Engine answered a request with an error, or with something ferry cannot read.
    #[error("Docker Engine at {}: {what}: {why}", socket.display())]
    Daemon {
        /// The socket.
        socket: PathBuf,
        /// The request, described.
        what: String,
        /// The Engine's message, or what was wrong with its answer.
        why: String,
    },

    /// A Docker endpoint ferry cannot use (tcp://, ssh://, a broken context).
    #[error("{0}")]
    Endpoint(String),

    /// A store error while reading or writing blobs (a digest mismatch, a layout error).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An archive operation's result.
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
