//! The one graph-copy engine. Pull, push and copy are all `Engine::copy` between different stores.
//!
//! Successors are decided by media type alone (index → manifests, manifest → config + layers, both →
//! subject); nothing here knows what a Helm chart or a signature is. Children are copied before parents, so a
//! manifest never appears in a destination before everything it references.

mod engine;
mod events;
pub mod select;

pub use engine::{CopyError, CopyStats, Engine};
pub use events::{BlobOutcome, Event, EventSink};
pub use select::{PlatformChoice, Selection, select_root};
