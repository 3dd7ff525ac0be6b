//! Why `ferry serve` cannot start. Errors while serving are answered per request (see `api_error`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot serve {source_name}")]
    Store {
        source_name: String,
        #[source]
        source: ferry_store::StoreError,
    },
    #[error("cannot serve {source_name}")]
    Package {
        source_name: String,
        #[source]
        source: Box<ferry_zarf::PackageError>,
    },
    #[error("cannot serve {source_name}")]
    Archive {
        source_name: String,
        #[source]
        source: ferry_archive::ArchiveError,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration from {}", cert.display())]
    Tls {
        cert: PathBuf,
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
