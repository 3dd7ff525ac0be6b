use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher, Manifest, media_type};
use ferry_store::{
    BlobCache, BlobWriter, BoxFuture, ReadStore, StoreError, WriteStore, transfer, transfer_from,
};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use crate::events::{BlobOutcome, Event, EventSink};

/// How many times a blob is started over after a transient failure the transfer could not resume.
const BLOB_ATTEMPTS: u32 = 3;

/// A node that could not be copied. Cheap to clone: one failure is reported by every parent waiting on it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind} {digest}: {source}")]
pub struct CopyError {
    pub digest: Digest,
    pub kind: &'static str,
    #[source]
    pub source: Arc<StoreError>,
}

impl CopyError {
    /// Whether another attempt may succeed (a broken connection, an overloaded registry), as opposed to
    /// content that is wrong or missing.
    pub fn is_transient(&self) -> bool {
        self.source.is_transient()
    }
}

/// What a copy did, in nodes and bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyStats {
    pub fetched: u64,
    pub fetched_bytes: u64,
    pub cached: u64,
    pub cached_bytes: u64,
    pub linked: u64,
    pub linked_bytes: u64,
    pub mounted: u64,
    pub mounted_bytes: u64,
    pub existing: u64,
    pub existing_bytes: u64,
    /// Bytes an earlier, interrupted run had already downloaded and this one did not fetch again.
    pub resumed_bytes: u64,
}

impl CopyStats {
    fn add(&mut self, outcome: BlobOutcome, size: u64) {
        let (n, b) = match outcome {
            BlobOutcome::Fetched => (&mut self.fetched, &mut self.fetched_bytes),
            BlobOutcome::Cached => (&mut self.cached, &mut self.cached_bytes),
            BlobOutcome::Linked => (&mut self.linked, &mut self.linked_bytes),
            BlobOutcome::Mounted => (&mut self.mounted, &mut self.mounted_bytes),
            BlobOutcome::Existing => (&mut self.existing, &mut self.existing_bytes),
        };
        *n += 1;
        *b += size;
    }

    pub fn total_bytes(&self) -> u64 {
        self.fetched_bytes
            + self.cached_bytes
            + self.linked_bytes
            + self.mounted_bytes
            + self.existing_bytes
    }

    pub fn merge(&mut self, o: &CopyStats) {
        self.fetched += o.fetched;
        self.fetched_bytes += o.fetched_bytes;
        self.cached += o.cached;
        self.cached_bytes += o.cached_bytes;
        self.linked += o.linked;
        self.linked_bytes += o.linked_bytes;
        self.mounted += o.mounted;
        self.mounted_bytes += o.mounted_bytes;
        self.existing += o.existing;
        self.existing_bytes += o.existing_bytes;
        self.resumed_bytes += o.resumed_bytes;
    }
}

/// The copy engine: a bounded number of node copies at once, an optional shared cache, and an event sink.
#[derive(Clone)]
pub struct Engine {
    cache: Option<BlobCache>,
    concurrency: usize,
    events: EventSink,
}

/// The outcome of one node's copy, shared by every parent that waits on it.
type NodeCell = Arc<OnceCell<Result<(), CopyError>>>;

struct Run {
    source: Arc<dyn ReadStore>,
    dest: Arc<dyn WriteStore>,
    cache: Option<BlobCache>,
    slots: Semaphore,
    nodes: Mutex<HashMap<Digest, NodeCell>>,
    known: HashMap<Digest, Bytes>,
    stats: Mutex<CopyStats>,
    events: EventSink,
}

impl Engine {
    pub fn new(cache: Option<BlobCache>, concurrency: usize, events: EventSink) -> Engine {
        Engine {
            cache,
            concurrency: concurrency.max(1),
            events,
        }
    }

    /// Copy the graph under `root` from `source` to `dest`. `known` holds manifest bytes the caller already
    /// fetched (the resolved root), so they are not fetched twice.
    pub async fn copy(
        &self,
        source: Arc<dyn ReadStore>,
        dest: Arc<dyn WriteStore>,
        root: &Descriptor,
        known: HashMap<Digest, Bytes>,
    ) -> Result<CopyStats, CopyError> {
        let run = Arc::new(Run {
            source,
            dest,
            cache: self.cache.clone(),
            slots: Semaphore::new(self.concurrency),
            nodes: Mutex::new(HashMap::new()),
            known,
            stats: Mutex::new(CopyStats::default()),
            events: self.events.clone(),
        });
        copy_node(run.clone(), root.clone()).await?;
        let stats = run.stats.lock().expect("stats lock").clone();
        Ok(stats)
    }
}

/// Copy one node, at most once per run however many parents share it (or list it twice).
/// Boxed with an explicit `Send` bound: the recursion (manifest → children) needs a nameable future type.
fn copy_node(run: Arc<Run>, desc: Descriptor) -> BoxFuture<'static, Result<(), CopyError>> {
    Box::pin(copy_node_once(run, desc))
}

async fn copy_node_once(run: Arc<Run>, desc: Descriptor) -> Result<(), CopyError> {
    let cell = {
        let mut nodes = run.nodes.lock().expect("nodes lock");
        match nodes.get(&desc.digest) {
            Some(c) => c.clone(),
            None => {
                (run.events)(&Event::Discovered {
                    digest: desc.digest.clone(),
                    size: desc.size,
                });
                let c = Arc::new(OnceCell::new());
                nodes.insert(desc.digest.clone(), c.clone());
                c
            }
        }
    };
    cell.get_or_init(|| async {
        let result = if media_type::is_manifest_like(&desc.media_type) {
            copy_manifest(&run, &desc).await
        } else {
            copy_blob(&run, &desc).await
        };
        let kind = if media_type::is_manifest_like(&desc.media_type) {
            "manifest"
        } else {
            "blob"
        };
        result.map_err(|e| CopyError {
            digest: desc.digest.clone(),
            kind,
            source: Arc::new(e),
        })
    })
    .await
    .clone()
}

async fn copy_manifest(run: &Arc<Run>, desc: &Descriptor) -> Result<(), StoreError> {
    let bytes = fetch_manifest(run, desc).await?;
    let manifest =
        Manifest::parse(&desc.media_type, &bytes).map_err(|source| StoreError::Manifest {
            store: run.source.describe(),
            digest: desc.digest.to_string(),
            source,
        })?;
    // Children first, all at once; each takes a slot only while it moves bytes, so a parent waiting here
    // holds none. The walk happens even when the destination has this manifest: an interrupted earlier
    // run may have left it without its children, and checking them is cheap.
    let mut children = JoinSet::new();
    for child in manifest.successors() {
        children.spawn(copy_node(run.clone(), child));
    }
    let mut first_error = None;
    while let Some(joined) = children.join_next().await {
        let result = match joined {
            Ok(r) => r,
            // Siblings aborted after the first failure below.
            Err(e) if e.is_cancelled() => continue,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match result {
            Ok(()) => {}
            Err(e) if first_error.is_none() => {
                first_error = Some(e);
                // Stop the siblings: the image cannot complete, and partial writes are discarded anyway.
                children.abort_all();
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        // A parent fails the way its child did: a transient child failure is worth another attempt.
        return Err(StoreError::Remote {
            transient: e.source.is_transient(),
            source: Box::new(e),
        });
    }
    let _slot = run.slots.acquire().await.expect("semaphore open");
    let outcome = if run.dest.exists(desc).await? {
        BlobOutcome::Existing
    } else {
        run.dest.put_manifest(desc, bytes.clone()).await?;
        BlobOutcome::Fetched
    };
    if let Some(cache) = &run.cache
        && let Err(e) = cache.put_bytes(desc, bytes).await
    {
        tracing::warn!("cannot add manifest {} to the cache: {e}", desc.digest);
    }
    finish(run, desc, outcome);
    Ok(())
}

/// Manifest bytes: handed in by the caller, from the cache (verified), or from the source.
async fn fetch_manifest(run: &Arc<Run>, desc: &Descriptor) -> Result<Bytes, StoreError> {
    if let Some(b) = run.known.get(&desc.digest) {
        ferry_store::transfer::verify_bytes("resolved manifest", desc, b)?;
        return Ok(b.clone());
    }
    if let Some(cache) = &run.cache
        && let Some(b) = cache.get_bytes(desc).await
    {
        return Ok(b);
    }
    let _slot = run.slots.acquire().await.expect("semaphore open");
    run.source.fetch_manifest(desc).await
}

async fn copy_blob(run: &Arc<Run>, desc: &Descriptor) -> Result<(), StoreError> {
    let _slot = run.slots.acquire().await.expect("semaphore open");
    if run.dest.exists(desc).await? {
        finish(run, desc, BlobOutcome::Existing);
        return Ok(());
    }
    if run.dest.mount(desc).await? {
        finish(run, desc, BlobOutcome::Mounted);
        return Ok(());
    }
    let progress = {
        let events = run.events.clone();
        let digest = desc.digest.clone();
        move |bytes: u64| {
            events(&Event::Progress {
                digest: digest.clone(),
                bytes,
            })
        }
    };
    if let Some(cache) = &run.cache
        && let Some(path) = cache.lookup(desc).await
    {
        if run.dest.link_blob(desc, &path).await? {
            progress(desc.size);
            finish(run, desc, BlobOutcome::Linked);
            return Ok(());
        }
        let writer = run.dest.blob_writer(desc).await?;
        match transfer(cache, desc, vec![writer], &progress).await {
            Ok(_) => {
                finish(run, desc, BlobOutcome::Cached);
                return Ok(());
            }
            Err(e) => {
                // Rotted since it was stamped: drop it and fall through to the source.
                tracing::warn!(
                    "cached blob {} failed verification ({e}); fetching it again",
                    desc.digest
                );
                cache.evict(&desc.digest).await;
            }
        }
    }
    let mut attempt = 1;
    let resumed = loop {
        let result = match &run.cache {
            Some(cache) => fetch_through_cache(run, cache, desc, &progress).await,
            None => {
                let writers = vec![run.dest.blob_writer(desc).await?];
                transfer(run.source.as_ref(), desc, writers, &progress)
                    .await
                    .map(|_| 0)
            }
        };
        match result {
            Ok(resumed) => break resumed,
            Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                (run.events)(&Event::Retrying {
                    digest: desc.digest.clone(),
                    attempt,
                    error: e.to_string(),
                });
                tracing::warn!("blob {} failed ({e}); trying it again", desc.digest);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    run.stats.lock().expect("stats lock").resumed_bytes += resumed;
    finish(run, desc, BlobOutcome::Fetched);
    Ok(())
}

/// Fetch a blob from the source through the cache into the destination, continuing a partial download an
/// earlier process left. Returns how many bytes that process had already fetched.
async fn fetch_through_cache(
    run: &Arc<Run>,
    cache: &BlobCache,
    desc: &Descriptor,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, StoreError> {
    // Into the cache first, then linked into the destination: the bytes cross the network once and reach
    // the disk once (a hard link costs nothing; a copy only when the two are on different filesystems).
    let (writer, start): (Box<dyn BlobWriter>, Hasher) = match cache.partial(desc).await {
        Ok(Some(p)) => {
            let start = p.resume_state();
            (Box::new(p), start)
        }
        // Another process is fetching the same blob right now: fetch our own copy beside it.
        Ok(None) => (cache.writer(desc).await?, Hasher::new()),
        Err(e) => {
            tracing::warn!("not caching {}: {e}", desc.digest);
            let writer = run.dest.blob_writer(desc).await?;
            transfer(run.source.as_ref(), desc, vec![writer], progress).await?;
            return Ok(0);
        }
    };
    let already = start.len();
    if already > 0 {
        progress(already);
    }
    if let Err(e) = transfer_from(run.source.as_ref(), desc, vec![writer], start, progress).await {
        if e.invalidates_partial() {
            cache.discard_partial(desc);
            if already > 0 {
                tracing::warn!(
                    "partial download of {} is unusable ({e}); starting over",
                    desc.digest
                );
                // Transient: the next attempt starts the blob from byte 0.
                return Err(StoreError::RangeIgnored {
                    store: run.source.describe(),
                    digest: desc.digest.clone(),
                    offset: already,
                });
            }
        }
        return Err(e);
    }
    place_from_cache(run, cache, desc).await?;
    Ok(already)
}

/// Put a blob the cache now holds into the destination: a hard link, or a verified copy.
async fn place_from_cache(
    run: &Arc<Run>,
    cache: &BlobCache,
    desc: &Descriptor,
) -> Result<(), StoreError> {
    if run
        .dest
        .link_blob(desc, &cache.blob_path(&desc.digest))
        .await?
    {
        return Ok(());
    }
    let writer = run.dest.blob_writer(desc).await?;
    transfer(cache, desc, vec![writer], &|_| {})
        .await
        .map(|_| ())
}

fn finish(run: &Run, desc: &Descriptor, outcome: BlobOutcome) {
    run.stats
        .lock()
        .expect("stats lock")
        .add(outcome, desc.size);
    (run.events)(&Event::Done {
        digest: desc.digest.clone(),
        size: desc.size,
        outcome,
    });
}
