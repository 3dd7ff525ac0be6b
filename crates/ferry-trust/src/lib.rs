#![warn(missing_docs)]
//! Deciding whether an artifact is signed by someone trusted.
//!
//! Keys as cosign writes them ([`PublicKey`]: ECDSA P-256/P-384, RSA, Ed25519), cosign's tag-based image
//! signatures ([`cosign`]), a policy of which images need whose signature ([`Policy`]), and the decision
//! ([`Verifier`]). Everything is offline: signatures are read from the same source as the image.

pub mod cosign;
mod der;
mod key;
pub mod payload;
mod policy;
mod verify;

pub use key::{KeyError, KeyKind, PublicKey};
pub use policy::{Policy, PolicyError, Requirement, SignedIdentity};
pub use verify::{Signature, Subject, Tried, Verified, Verifier, VerifyError};
