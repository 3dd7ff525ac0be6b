#![warn(missing_docs)]
//! The OCI model ferry works with: references, digests, media types, descriptors and raw manifests.
//!
//! Manifests stay raw bytes everywhere in ferry; this crate parses them only to walk the graph.
//! Descriptors serialize the way Go's `encoding/json` and the image-spec types do, so `index.json` files
//! written by ferry are byte-compatible with the ones Zarf and oras-go write.

pub mod base64;
pub mod date;
pub mod descriptor;
pub mod digest;
pub mod gojson;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;

pub use descriptor::Descriptor;
pub use digest::{Digest, DigestError, Hasher};
pub use manifest::{MAX_MANIFEST_BYTES, Manifest, ManifestError, ManifestKind};
pub use platform::{Platform, PlatformSpec};
pub use reference::{Reference, ReferenceError};

/// An error and its causes on one line (`a: b: c`): for messages that carry an error as text, since errors
/// here say their own part only and leave the cause to `source()`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
