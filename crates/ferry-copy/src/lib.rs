#![warn(missing_docs)]
//! The one copy between targets, and the graph engine under it.
//!
//! [`copy`] resolves a name in a source target, chooses the platform ([`select_root`]), copies the graph
//! (children before parents, each digest once, at most [`Budget`] node copies in flight), brings the
//! artifacts that refer to it, and names the result at the destination. Pull, push, copy and Zarf package
//! pulls are all this function between different targets. Successors are decided by media type alone
//! unless [`CopyHooks`] say otherwise; nothing here knows what a Helm chart or a signature is.

mod copy;
mod engine;
mod events;
mod hooks;
pub mod select;

pub use copy::{
    Budget, Copied, CopyFailed, CopyOptions, Referrers, copy, copy_graph, copy_selected,
    copy_selected_when, discover_referrers, resolve, sibling_name,
};
pub use engine::{CopyError, CopyStats, MAX_DEPTH};
pub use events::{BlobOutcome, Event, EventSink};
pub use hooks::{CopyHooks, DefaultHooks, manifest_successors};
pub use select::{PlatformChoice, Selection, select_root};
