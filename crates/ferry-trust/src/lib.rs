#![warn(missing_docs)]
//! Deciding whether an artifact is signed by someone trusted.
//!
//! Keyless signatures too: Sigstore bundles ([`bundle`]) checked against a trusted root file
//! ([`TrustedRoot`]): Fulcio chain, Rekor's signed entry timestamp and checkpoint, CT logs' SCTs.
//!
//! Keys as cosign writes them ([`PublicKey`]: ECDSA P-256/P-384, RSA, Ed25519), cosign's tag-based image
//! signatures ([`cosign`]), a policy of which images need whose signature ([`Policy`]), and the decision
//! ([`Verifier`]); and file signatures as `cosign sign-blob` writes them ([`blob`]), with Zarf's rules for a
//! package's ([`zarf`]). Everything is offline: signatures are read from the same source as the image.

pub mod blob;
pub mod bundle;
pub mod cosign;
mod der;
mod key;
pub mod payload;
mod policy;
mod sct;
mod sign;
mod tlog;
pub mod trusted_root;
mod verify;
pub mod x509;
pub mod zarf;

pub use bundle::{Keyless, Match, Trust};
pub use key::{Hash, KeyError, KeyKind, PublicKey};
pub use policy::{Policy, PolicyError, Requirement, SignedIdentity};
pub use sign::PrivateKey;
pub use trusted_root::TrustedRoot;
pub use verify::{Signature, Subject, Tried, Verified, Verifier, VerifyError};
