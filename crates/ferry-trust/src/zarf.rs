//! A Zarf package's signature, by Zarf's rules on load: `zarf.bundle.sig` (a Sigstore bundle over
//! `zarf.yaml`) is preferred; else the older `zarf.yaml.sig` (`cosign sign-blob`, base64); a key given
//! for a package with neither is an error.

use crate::blob;
use crate::bundle::{self, Artifact, Trust};

/// The Sigstore bundle over `zarf.yaml`.
pub const BUNDLE: &str = "zarf.bundle.sig";
/// The older `cosign sign-blob` signature of `zarf.yaml`.
pub const LEGACY: &str = "zarf.yaml.sig";

/// The files a package signature is read from.
pub struct PackageFiles<'a> {
    /// `zarf.yaml`, as stored.
    pub zarf_yaml: &'a [u8],
    /// `zarf.bundle.sig`, if present.
    pub bundle: Option<&'a [u8]>,
    /// `zarf.yaml.sig`, if present.
    pub legacy: Option<&'a [u8]>,
}

/// Who signed a package.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackageSigned {
    /// The signature file that held.
    pub file: &'static str,
    /// The key, or the keyless signer.
    pub key: String,
}

/// Why a package's signature did not hold.
#[derive(Debug, thiserror::Error)]
pub enum PackageSignatureError {
    /// Neither signature file is there.
    #[error("{package} is not signed (no {BUNDLE} or {LEGACY}), but a key was given")]
    Unsigned {
        /// The package.
        package: String,
    },
    /// A signature file is there and does not hold.
    #[error("{package}: {file}: {why}")]
    Invalid {
        /// The package.
        package: String,
        /// The signature file.
        file: &'static str,
        /// Why.
        why: String,
    },
}

/// Check `files` of `package` against `trust` (the legacy signature: keys only).
pub fn verify_package(
    package: &str,
    files: &PackageFiles<'_>,
    trust: Trust<'_>,
) -> Result<PackageSigned, PackageSignatureError> {
    let (file, result) = match (files.bundle, files.legacy) {
        (Some(b), _) => (
            BUNDLE,
            bundle::verify(b, Artifact::Bytes(files.zarf_yaml), trust).map(|s| s.signer),
        ),
        (None, Some(s)) => (
            LEGACY,
            blob::verify_signature(trust.keys, files.zarf_yaml, s).map(|k| k.describe()),
        ),
        (None, None) => {
            return Err(PackageSignatureError::Unsigned {
                package: package.to_string(),
            });
        }
    };
    match result {
        Ok(key) => Ok(PackageSigned { file, key }),
        Err(why) => Err(PackageSignatureError::Invalid {
            package: package.to_string(),
            file,
            why,
        }),
    }
}
