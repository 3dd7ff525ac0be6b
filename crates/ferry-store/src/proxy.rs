//! The blob cache as a read-through proxy in front of a source (oras-go's `content.NewProxy`, with resume):
//! the copy engine sees one more [`ReadStore`] and knows nothing about caching.
//!
//! A blob is downloaded into the cache first (continuing a partial an earlier process left, with its saved
//! hash state), then offered to the destination as a [`LocalBlob`] to hard-link, or streamed from the cache
//! file. Manifests are served from the cache when it holds them (verified) and added to it when fetched.

use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::{Descriptor, Hasher};

use crate::cache::{BlobCache, PartialWriter};
use crate::ranged::{RangePolicy, Ranged};
use crate::{
    BlobWriter, BoxFuture, ByteSource, Fetch, LocalBlob, LocalOrigin, ReadStore, ReadTarget,
    Referrer, Resolver, Result, Store, StoreError, transfer_from,
};

/// `inner`, with every blob and manifest going through `cache`.
#[derive(Clone)]
pub struct CachedSource {
    inner: Arc<dyn ReadTarget>,
    cache: BlobCache,
    ranges: RangePolicy,
}

impl CachedSource {
    /// `inner` behind `cache`, large blobs fetched in parallel ranges by the default policy.
    pub fn new(inner: Arc<dyn ReadTarget>, cache: BlobCache) -> CachedSource {
        CachedSource {
            inner,
            cache,
            ranges: RangePolicy::default(),
        }
    }

    /// When and how large blobs are fetched in parallel ranges.
    pub fn with_ranges(mut self, ranges: RangePolicy) -> CachedSource {
        self.ranges = ranges;
        self
    }

    /// `inner` behind `cache`, or `inner` itself without one.
    pub fn wrap(inner: Arc<dyn ReadTarget>, cache: Option<&BlobCache>) -> Arc<dyn ReadTarget> {
        match cache {
            Some(c) => Arc::new(CachedSource::new(inner, c.clone())),
            None => inner,
        }
    }

    /// Download `desc` from the origin into the cache, continuing a partial download. Returns how many
    /// bytes an earlier process had already fetched, or `None` when the cache cannot take it (the caller
    /// streams from the origin instead).
    async fn fetch_into_cache(&self, desc: &Descriptor, fetch: &Fetch<'_>) -> Result<Option<u64>> {
        let progress = fetch.progress;
        let mut ours = true;
        let (writer, start): (Box<dyn BlobWriter>, Hasher) = match self.cache.partial(desc).await {
            Ok(Some(mut p)) => {
                let start = p.resume_state();
                let spare = fetch
                    .lanes
                    .as_ref()
                    .is_some_and(|l| l.available_permits() > 0);
                if desc.size >= self.ranges.min_size && spare {
                    let lanes = fetch.lanes.as_ref();
                    let ranged = p
                        .fetch_ranged(self.inner.as_ref(), desc, lanes, self.ranges, progress)
                        .await;
                    match ranged {
                        Ok(Ranged::Complete(state)) => {
                            // What an earlier run fetched counts as arrived, as below.
                            progress(start.len());
                            return self.commit_ranged(desc, p, state, start.len()).await;
                        }
                        Ok(Ranged::Unsupported) => tracing::debug!(
                            "{} ignores ranges; fetching {} in one stream",
                            self.inner.describe(),
                            desc.digest
                        ),
                        Err(e) => return self.settle(desc, e, start.len(), true),
                    }
                }
                (Box::new(p), start)
            }
            // Another process is fetching the same blob right now: fetch our own copy beside it (and leave
            // its partial alone whatever happens to ours).
            Ok(None) => {
                ours = false;
                (self.cache.writer(desc).await?, Hasher::new())
            }
            Err(e) => {
                tracing::warn!("not caching {}: {e}", desc.digest);
                return Ok(None);
            }
        };
        let already = start.len();
        if already > 0 {
            progress(already);
        }
        if let Err(e) =
            transfer_from(self.inner.as_ref(), desc, vec![writer], start, progress).await
        {
            return self.settle(desc, e, already, ours);
        }
        Ok(Some(already))
    }

    /// After a download into the cache failed (`ours`: into our own partial). A full cache disk must not
    /// fail a pull whose destination has room: `Ok(None)` sends the blob straight there (the caller streams
    /// it from the origin). Anything else is the error, the partial dropped if its bytes cannot be the blob.
    fn settle(
        &self,
        desc: &Descriptor,
        e: StoreError,
        already: u64,
        ours: bool,
    ) -> Result<Option<u64>> {
        let cache_full = matches!(&e, StoreError::Io { path, source }
            if source.kind() == std::io::ErrorKind::StorageFull
                && path.starts_with(self.cache.store_dir()));
        if cache_full {
            if ours {
                self.cache.discard_partial(desc);
            }
            tracing::warn!(
                "the cache's disk is full ({}); {} goes to the destination without the cache",
                ferry_oci::error_chain(&e),
                desc.digest
            );
            return Ok(None);
        }
        Err(if ours {
            self.failed(desc, e, already)
        } else {
            e
        })
    }

    /// A download into the cache failed: a partial whose bytes cannot be the blob is dropped, and when an
    /// earlier run's bytes were in it the error says to start over (transiently: the next attempt does).
    fn failed(&self, desc: &Descriptor, e: StoreError, already: u64) -> StoreError {
        if !e.invalidates_partial() {
            return e;
        }
        self.cache.discard_partial(desc);
        if already == 0 {
            return e;
        }
        tracing::warn!(
            "partial download of {} is unusable ({}); starting over",
            desc.digest,
            ferry_oci::error_chain(&e)
        );
        StoreError::PartialDiscarded {
            store: self.inner.describe(),
            digest: desc.digest.clone(),
            offset: already,
            cause: Box::new(e),
        }
    }

    /// A ranged download is complete: verify the whole, then make it the cached blob.
    async fn commit_ranged(
        &self,
        desc: &Descriptor,
        partial: PartialWriter,
        state: Hasher,
        already: u64,
    ) -> Result<Option<u64>> {
        let size = state.len();
        let actual = state.finish();
        if actual != desc.digest {
            drop(partial);
            let e = StoreError::DigestMismatch {
                store: self.inner.describe(),
                expected: desc.digest.clone(),
                actual,
                size,
            };
            return Err(self.failed(desc, e, already));
        }
        Box::new(partial).commit().await?;
        Ok(Some(already))
    }
}

impl Store for CachedSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Names always resolve at the origin (a tag moves); the manifest they name is cached on the way.
impl Resolver for CachedSource {
    fn resolve<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(Descriptor, Bytes)>> {
        Box::pin(async move {
            let (desc, bytes) = self.inner.resolve(reference).await?;
            if let Err(e) = self.cache.put_bytes(&desc, bytes.clone()).await {
                tracing::warn!("cannot add manifest {} to the cache: {e}", desc.digest);
            }
            Ok((desc, bytes))
        })
    }
}

impl ReadStore for CachedSource {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            if let Some(b) = self.cache.get_bytes(desc).await {
                return Ok(b);
            }
            let bytes = self.inner.fetch_manifest(desc).await?;
            if let Err(e) = self.cache.put_bytes(desc, bytes.clone()).await {
                tracing::warn!("cannot add manifest {} to the cache: {e}", desc.digest);
            }
            Ok(bytes)
        })
    }

    /// From the cache when it holds a verified copy, else from the origin (uncached: the engine asks
    /// [`ReadStore::local_blob`] first, which caches).
    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            match self.cache.lookup(desc).await {
                Some(path) => crate::file::FileSource::blob(&path, offset).await,
                None => self.inner.fetch_blob(desc, offset).await,
            }
        })
    }

    fn referrers<'a>(&'a self, subject: &'a Descriptor) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        self.inner.referrers(subject)
    }

    fn subject_referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        self.inner.subject_referrers(subject)
    }

    fn local_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        fetch: &'a Fetch<'a>,
    ) -> BoxFuture<'a, Result<Option<LocalBlob>>> {
        Box::pin(async move {
            if let Some(path) = self.cache.lookup(desc).await {
                return Ok(Some(LocalBlob {
                    path,
                    origin: LocalOrigin::Present,
                }));
            }
            // The bytes cross the network once and reach the disk once: into the cache, then linked.
            Ok(self
                .fetch_into_cache(desc, fetch)
                .await?
                .map(|resumed| LocalBlob {
                    path: self.cache.blob_path(&desc.digest),
                    origin: LocalOrigin::Fetched { resumed },
                }))
        })
    }

    fn forget<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            tracing::warn!(
                "cached blob {} failed verification; evicting it and fetching it again",
                desc.digest
            );
            self.cache.evict(&desc.digest).await;
            true
        })
    }
}
