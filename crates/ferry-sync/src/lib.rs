#![warn(missing_docs)]
//! `ferry sync`: declarative mirroring at fleet scale.
//!
//! A sync file in `skopeo sync`'s YAML names registries, repositories and tag filters (lists, regular
//! expressions, semver constraints); [`sync`] lists and filters the tags, resolves every image, and copies
//! each through [`ferry_copy`] with one node budget for the whole run, into a registry prefix, an OCI
//! layout or an oci-archive. A tag the destination already holds at the same digest moves nothing; with
//! `plan` the same walk counts bytes instead of moving them; a lock file records every reference, its
//! digest, where it went and every digest of its graph.
//!
//! Beside it: [`push`] (a layout's images into a registry, as `ferry push` names them), [`copy_location`]
//! (`ferry copy`: what one location names to another), [`pull::pull`] (`ferry pull`: many locations into one
//! layout or archive under one budget) and deltas
//! ([`delta`]: exporting only what a base lacks, checking a copy complete before it starts).

pub mod config;
pub mod delta;
pub mod dest;
mod disk;
pub mod dryrun;
pub mod filter;
pub mod locations;
pub mod lock;
pub mod plan;
pub mod pull;
pub mod push;
mod run;
pub mod semver;
mod sources;
pub mod verified;

pub use config::{ConfigError, SyncFile};
pub use delta::{
    CheckImage, Completion, DeltaError, DeltaExport, WithBase, check_complete, export_delta,
};
pub use dest::{DestError, Destination, Naming};
pub use disk::available_bytes;
pub use locations::{CopiedImage, LocationCopyError, LocationCopyOptions, Through, copy_location};
pub use lock::{LockError, LockFile, LockedImage};
pub use plan::PlanBytes;
pub use push::{PushError, PushNames, PushOptions, PushedImage, push};
pub use run::{DiskRoom, ImageReport, Report, Status, SyncError, SyncOptions, Totals, sync};
pub use sources::SourceError;
pub use verified::{copy_verified, verify};

/// An error and its causes, for tests.
#[cfg(test)]
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    ferry_oci::error_chain(e)
}
