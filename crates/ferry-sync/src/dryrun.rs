//! Destinations that write nothing. The engine walks a graph exactly as a real copy would (same
//! successors, platforms, referrers); a [`Probe`] answers what the destination has and notes what would
//! be written, and no blob is ever read from the source. Three dry runs stand on it: the graph of a delta
//! base, the completeness check before a copy ([`crate::delta`]) and `--plan` ([`crate::plan`]).

use std::ops::Deref;

use bytes::Bytes;
use ferry_oci::Descriptor;
use ferry_store::{BlobWriter, BoxFuture, Store, StoreError, Tagger, WriteStore};

/// What a dry run does where a real destination would act.
pub trait Probe: Send + Sync {
    /// The destination, for messages.
    fn describe(&self) -> String;

    /// Whether the destination has `desc`: `true` and the engine goes on without writing it.
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// A node the engine would write now: a manifest whose children are in place, or a blob the
    /// destination lacks. For a blob, `Ok(true)` counts it as arrived (as a mount does), so no byte is read;
    /// `Ok(false)` leaves it to a blob writer, which a dry run refuses.
    fn would_write(&self, desc: &Descriptor) -> Result<bool, StoreError>;

    /// A name the copy would write; by default refused (only a dry run of a whole copy names anything).
    fn would_tag(&self, desc: &Descriptor) -> Result<(), StoreError> {
        Err(writes_nothing(&self.describe(), desc))
    }
}

/// A [`Probe`] as a destination: a `WriteTarget` for the engine that writes nothing.
pub struct DryRun<P>(pub P);

impl<P> Deref for DryRun<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.0
    }
}

impl<P: Probe> Store for DryRun<P> {
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl<P: Probe> WriteStore for DryRun<P> {
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.0.exists(desc)
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, StoreError>> {
        Box::pin(async move { Err(writes_nothing(&self.describe(), desc)) })
    }

    fn put_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
        _bytes: Bytes,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let done = self.0.would_write(desc).map(drop);
        Box::pin(async move { done })
    }

    fn mount<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        let done = self.0.would_write(desc);
        Box::pin(async move { done })
    }
}

impl<P: Probe> Tagger for DryRun<P> {
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        _bytes: Bytes,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let done = self.0.would_tag(desc);
        Box::pin(async move { done })
    }
}

/// The error of a dry run asked to write `desc`.
pub fn writes_nothing(store: &str, desc: &Descriptor) -> StoreError {
    StoreError::remote(
        format!("{store} writes nothing ({} was about to be)", desc.digest),
        false,
    )
}
