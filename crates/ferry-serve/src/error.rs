//! Why `ferry serve` cannot start. Errors while serving are answered per request (see `api_error`).

use std::path::PathBuf;

/// Why `ferry serve` cannot start: the source cannot be opened, the options conflict, the socket or TLS
/// cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A layout or the blob cache could not be opened, or its index could not be read.
    #[error("cannot serve {source_name}")]
    Store {
        /// The source, described.
        source_name: String,
        /// The store's error.
        #[source]
        source: ferry_store::StoreError,
    },
    /// A Zarf package could not be opened.
    #[error("cannot serve {source_name}")]
    Package {
        /// The package's path.
        source_name: String,
        /// The package's error.
        #[source]
        source: Box<ferry_zarf::PackageError>,
    },
    /// An archive could not be opened or indexed.
    #[error("cannot serve {source_name}")]
    Archive {
        /// The archive's path.
        source_name: String,
        /// The archive's error.
        #[source]
        source: ferry_archive::ArchiveError,
    },
    /// Options that cannot work together, or an unusable htpasswd or PEM file; holds the whole message.
    #[error("{0}")]
    Invalid(String),
    /// The htpasswd file could not be read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket could not be bound (in use, no permission).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the certificate chain and key.
    #[error("TLS configuration from {}", cert.display())]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
}

impl ServeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ServeError {
        ServeError::Io {
            path: path.into(),
            source,
        }
    }
}
