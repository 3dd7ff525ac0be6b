#![warn(missing_docs)]
//! Where content lives, and how it moves between places without ever exposing unverified bytes.
//!
//! A [`ReadStore`] serves manifests and blob bodies; a [`WriteStore`] accepts them. The copy engine
//! (`ferry-copy`) walks a graph between any two; [`transfer`] is the one place that streams a blob from a
//! source into one or more writers, hashing once and committing only after size and digest match.

pub mod cache;
mod error;
pub mod file;
pub mod layout;
mod layout_names;
pub mod proxy;
pub mod ranged;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod transfer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};

pub use cache::BlobCache;
pub use error::{RemoteError, StoreError};
pub use layout::OciLayout;
pub use layout_names::resolve_entry;
pub use proxy::CachedSource;
pub use transfer::{transfer, transfer_from};

/// A boxed, sendable future: the store traits are used as trait objects (the source and destination of a
/// copy are chosen at run time), which `async fn` in traits does not allow.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A store operation's result; errors are [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A blob body as a sequence of chunks; `None` ends it.
pub trait ByteSource: Send {
    /// The next chunk of the body, `Ok(None)` at its end. An `Err` ends the body early (a cut connection, a
    /// read error); the caller decides whether to resume.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>>;
}

/// What every store has: a short name for messages.
pub trait Store: Send + Sync {
    /// E.g. `registry 127.0.0.1:5000 repository library/nginx`, `layout ./images`.
    fn describe(&self) -> String;
}

/// A place content can be read from.
pub trait ReadStore: Store {
    /// The bytes of a manifest or index (at most [`ferry_oci::MAX_MANIFEST_BYTES`]), verified against `desc`.
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>>;

    /// A blob body starting at `offset`. Returns the offset the body really starts at: a server that ignores
    /// a range request answers from 0, and the caller must then start over.
    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>>;

    /// `len` bytes of a blob from `offset` (a body may run on past them; the caller reads what it asked
    /// for). Returns the offset the body really starts at, as [`ReadStore::fetch_blob`] does. Stores that
    /// can ask for a bounded range (a registry) do; by default the body is the rest of the blob.
    fn fetch_range<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
        _len: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        self.fetch_blob(desc, offset)
    }

    /// Artifacts about `subject` (signatures, SBOMs, attestations). Stores that cannot list them say none.
    fn referrers<'a>(&'a self, _subject: &'a Descriptor) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether this store holds blob `digest`, known without a request: `Some` for stores on local disk (a
    /// layout, an archive), `None` where it cannot tell cheaply (a registry, a proxy). A delta's far side
    /// uses it to find what must come from elsewhere before anything is written.
    fn holds(&self, _digest: &Digest) -> Option<bool> {
        None
    }

    /// Artifacts whose manifest names `subject` as its subject (the referrers API or its tag-schema
    /// fallback), without the cosign tags [`ReadStore::referrers`] adds: by default those of `referrers`
    /// no tag names; a registry asks the API alone (one request instead of four).
    fn subject_referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        Box::pin(async move {
            let all = self.referrers(subject).await?;
            Ok(all.into_iter().filter(|r| r.tag.is_none()).collect())
        })
    }

    /// A verified file on local disk holding `desc`, if this store has one or can make one (a caching proxy
    /// downloads it first, as `fetch` allows). The engine hard-links it into destinations that can take a
    /// link; `Ok(None)` means "stream it with [`ReadStore::fetch_blob`]".
    fn local_blob<'a>(
        &'a self,
        _desc: &'a Descriptor,
        _fetch: &'a Fetch<'a>,
    ) -> BoxFuture<'a, Result<Option<LocalBlob>>> {
        Box::pin(async { Ok(None) })
    }

    /// The bytes this store served for `desc` failed verification. A store that keeps copies of another
    /// store's content (a cache) drops its copy and returns `true`: fetching again goes to the origin and may
    /// succeed. Stores that are the origin return `false`.
    fn forget<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

/// What the engine lends a store that downloads a blob for it ([`ReadStore::local_blob`]).
pub struct Fetch<'a> {
    /// Called with each batch of bytes that arrives.
    pub progress: &'a (dyn Fn(u64) + Send + Sync),
    /// The run's budget: a large blob may borrow its spare slots for parallel range requests (never
    /// waiting for one). `None`: one stream only.
    pub lanes: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

/// A blob on local disk, verified, from [`ReadStore::local_blob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBlob {
    /// The file. Read it, hard-link it, never modify it: it is the store's verified copy.
    pub path: std::path::PathBuf,
    /// How it got there: already present, or fetched just now from the origin.
    pub origin: LocalOrigin,
}

/// Where a [`LocalBlob`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalOrigin {
    /// It was on disk before this call.
    Present,
    /// It was downloaded by this call; `resumed` bytes of it came from an earlier, interrupted download.
    Fetched {
        /// Bytes of it an earlier, interrupted download had already fetched.
        resumed: u64,
    },
}

/// Turns a name into the manifest it names (oras-go's `Resolver`). What a name is depends on the store: a
/// tag or digest for a registry repository, an image name (`docker.io/library/nginx:1.25`) or digest for a
/// layout or an archive.
pub trait Resolver: Store {
    /// The descriptor of the manifest or index `reference` names, and its bytes (verified against it).
    fn resolve<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(Descriptor, Bytes)>>;
}

/// Gives a manifest the store already holds a name (oras-go's `Tagger`), with the store's own meaning of
/// a name (see [`Resolver`]).
pub trait Tagger: Store {
    /// Point `name` at `desc`, whose bytes are `bytes`.
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
        name: &'a str,
    ) -> BoxFuture<'a, Result<()>>;

    /// Keep `desc` reachable without a name (a referrer found through its subject). A registry keeps
    /// every manifest pushed by digest, so by default there is nothing to do; a layout lists it in its
    /// index.
    fn keep<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a copy reads from: content and names.
pub trait ReadTarget: ReadStore + Resolver {}
impl<T: ReadStore + Resolver + ?Sized> ReadTarget for T {}

/// What a copy writes to: content and names.
pub trait WriteTarget: WriteStore + Tagger {}
impl<T: WriteStore + Tagger + ?Sized> WriteTarget for T {}

/// An artifact that refers to another: a manifest whose `subject` is it (listed by the referrers API or its
/// tag-schema fallback), or a cosign-style tag `sha256-<hex>.sig|.att|.sbom` (`tag` set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    /// The referrer's manifest.
    pub desc: Descriptor,
    /// The cosign-style tag it was found by, for a tag-named referrer; `None` when found by its `subject`.
    pub tag: Option<String>,
}

/// The cosign tag suffixes that name artifacts about an image by its digest.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// A place content can be written to. Writers never expose a blob before [`BlobWriter::commit`], and the
/// caller commits only after verifying size and digest.
pub trait WriteStore: Store {
    /// Whether the destination already holds `desc` (by digest and size).
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool>>;

    /// Start writing a blob.
    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>>;

    /// Store a manifest or index whose bytes the caller has verified against `desc`. By default it is
    /// written as a blob, as a content-addressed store keeps manifests; a registry sends it as a manifest.
    fn put_manifest<'a>(&'a self, desc: &'a Descriptor, bytes: Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut w = self.blob_writer(desc).await?;
            w.write(bytes).await?;
            w.commit().await
        })
    }

    /// Make a verified local file the content of `desc` without copying bytes (hard link), when the store
    /// and the file share a filesystem. `Ok(false)` means "not possible here, stream it instead".
    fn link_blob<'a>(
        &'a self,
        _desc: &'a Descriptor,
        _from: &'a Path,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }

    /// Make the blob exist here without sending its bytes, if the store can (a registry mounts it from
    /// another repository it is known to be in). `Ok(false)` means "not possible here, stream it instead".
    fn mount<'a>(&'a self, _desc: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }
}

/// An in-progress blob write. Dropping it without `commit` discards the partial data.
pub trait BlobWriter: Send {
    /// Append `chunk` to the blob. Bytes are not visible in the store until [`BlobWriter::commit`].
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>>;
    /// Everything written so far hashes to `state`: a writer that can resume in a later process records
    /// it (with its data flushed) so that process continues from here. Called every few MiB, at most
    /// once per [`transfer::CHECKPOINT_INTERVAL`], and when a transfer stops early.
    fn checkpoint<'a>(&'a mut self, _state: &'a ferry_oci::Hasher) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Every byte has been written: deliver what is still in flight (an upload waits for the registry to
    /// acknowledge its last `PATCH`), without making the blob visible. May fail with
    /// [`StoreError::Resend`], as [`BlobWriter::write`] may: the writer then wants the bytes again from
    /// that offset.
    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Make the blob visible. Called only after [`BlobWriter::finish`] and after the bytes were verified.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
}
