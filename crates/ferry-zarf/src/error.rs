use std::path::PathBuf;

use ferry_registry::RegistryError;
use ferry_store::StoreError;

/// Errors from reading, verifying, publishing and pulling Zarf packages. Messages name the package (path or
/// reference) and, where there is one, the file inside it.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Something wrong with the package as a whole, or with one file in it.
    #[error("{package}: {}{why}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        package: String,
        file: Option<String>,
        why: String,
    },

    /// The file is an archive of something else (an OCI layout), not a Zarf package.
    #[error("{package} is not a Zarf package: {why}")]
    NotAPackage { package: String, why: String },

    #[error("{package} failed verification: {summary}")]
    Verification { package: String, summary: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Registry(#[from] RegistryError),

    #[error("copying {package}")]
    Copy {
        package: String,
        #[source]
        source: Box<ferry_copy::CopyFailed>,
    },

    #[error(transparent)]
    Archive(#[from] ferry_archive::ArchiveError),
}

pub type Result<T, E = PackageError> = std::result::Result<T, E>;

impl PackageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PackageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(package: impl ToString, why: impl Into<String>) -> Self {
        PackageError::Invalid {
            package: package.to_string(),
            file: None,
            why: why.into(),
        }
    }

    pub(crate) fn file(
        package: impl ToString,
        file: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        PackageError::Invalid {
            package: package.to_string(),
            file: Some(file.into()),
            why: why.into(),
        }
    }
}
