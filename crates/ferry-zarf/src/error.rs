use std::path::PathBuf;

use ferry_registry::RegistryError;
use ferry_store::StoreError;

/// Errors from reading, verifying, publishing and pulling Zarf packages. Messages name the package (path or
/// reference) and, where there is one, the file inside it.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file of the package (or its output) could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Something wrong with the package as a whole, or with one file in it.
    #[error("{package}: {}{why}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        /// The package's path or reference.
        package: String,
        /// The file in the package, when one is at fault.
        file: Option<String>,
        /// What is wrong.
        why: String,
    },

    /// The file is an archive of something else (an OCI layout), not a Zarf package.
    #[error("{package} is not a Zarf package: {why}")]
    NotAPackage {
        /// The file as given.
        package: String,
        /// What it is instead.
        why: String,
    },

    /// The package's files do not match its `checksums.txt` (or it cannot be checked).
    #[error("{package} failed verification: {summary}")]
    Verification {
        /// The package's path or reference.
        package: String,
        /// The problems found ([`crate::checksums::Integrity::summary`]).
        summary: String,
    },

    /// A store error while reading or writing package content (a digest mismatch, a layout error).
    #[error(transparent)]
    Store(#[from] StoreError),

    /// A registry error while publishing or pulling.
    #[error(transparent)]
    Registry(#[from] RegistryError),

    /// Copying the package (or its images) failed.
    #[error("copying {package}")]
    Copy {
        /// The package's path or reference.
        package: String,
        /// What the copy says went wrong.
        #[source]
        source: Box<ferry_copy::CopyFailed>,
    },

    /// An archive error while reading a package tarball or an image archive.
    #[error(transparent)]
    Archive(#[from] ferry_archive::ArchiveError),

    /// A package reference (`oci://…`) that is not a reference.
    #[error("invalid package reference {text:?}")]
    Reference {
        /// The text as given.
        text: String,
        /// Why it is not a reference.
        source: ferry_oci::ReferenceError,
    },

    /// A package in a registry could not be resolved.
    #[error("resolving the package {package}")]
    Resolve {
        /// `oci://` and the reference.
        package: String,
        /// Why.
        source: Box<PackageError>,
    },

    /// The package's signature does not hold (or there is none) for the key given.
    #[error(transparent)]
    Signature(#[from] ferry_trust::zarf::PackageSignatureError),
}

/// A package operation's result.
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
