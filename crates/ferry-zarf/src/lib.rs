#![warn(missing_docs)]
//! Zarf compatibility: the CRC-suffixed push names and the push plan (zarf-compat §2), registry overrides
//! (§5), one typed model of `zarf.yaml` (v1alpha1 and v1beta1) and the images it selects, and
//! Zarf packages themselves (§7): reading and verifying them on disk (directory, `.tar`, `.tar.zst`),
//! serving their `images/` to a push, publishing them to a registry in Zarf's OCI format, and pulling
//! them back — all or some components — through the shared blob cache.

pub mod checksums;
pub mod definition;
mod error;
pub mod images;
pub mod inspect;
pub mod local;
pub mod naming;
pub mod overrides;
pub mod package;
pub mod partial;
pub mod publish;
pub mod pull;
pub mod push_plan;
pub mod remote;
pub mod sign;
pub mod source;
pub mod store;
pub mod tarball;

pub use checksums::{Integrity, Problem};
pub use definition::Definition;
pub use error::{PackageError, Result};
pub use images::PackageImages;
pub use local::{Extract, Format, LocalPackage, OpenOptions};
pub use naming::{crc32, push_names};
pub use package::pull_list;
pub use remote::RemotePackage;
pub use source::PackageSource;

/// The package definition.
pub const ZARF_YAML: &str = "zarf.yaml";
/// `<sha256> <path>` for every other file.
pub const CHECKSUMS: &str = "checksums.txt";
/// Signatures (new and legacy name): not listed in `checksums.txt`.
pub const SIGNATURES: [&str; 2] = ["zarf.bundle.sig", "zarf.yaml.sig"];
/// The package's image index: the OCI layout's `index.json` under `images/`.
pub const IMAGES_INDEX: &str = "images/index.json";
/// The `oci-layout` marker of the package's `images/` layout.
pub const IMAGES_LAYOUT: &str = "images/oci-layout";
/// The SBOMs Zarf generated for the package, as one tar.
pub const SBOMS_TAR: &str = "sboms.tar";
/// The documentation files of `documentation:`, as one tar.
pub const DOCUMENTATION_TAR: &str = "documentation.tar";
/// The config media type of a published package.
pub const ZARF_CONFIG: &str = "application/vnd.zarf.config.v1+json";
/// The media type of every layer of a published package (one per file).
pub const ZARF_LAYER: &str = "application/vnd.zarf.layer.v1.blob";
