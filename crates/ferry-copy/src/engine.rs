//! The graph walk: children before parents, each digest once per run, a bounded number of node copies in
//! flight. It knows only the store traits: caching, linking and mounting are what the stores offer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, media_type};
use ferry_store::{BoxFuture, Fetch, LocalOrigin, ReadStore, StoreError, WriteStore, transfer};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::events::{BlobOutcome, Event, EventSink};
use crate::hooks::CopyHooks;

/// Deeper nesting than this (index in index in …) is refused: no real artifact comes close, and a
/// hostile registry could otherwise keep a walk going for hours.
pub const MAX_DEPTH: usize = 32;

/// A node that could not be copied. Cheap to clone: one failure is reported by every parent waiting on it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind} {digest}")]
pub struct CopyError {
    /// The node.
    pub digest: Digest,
    /// `manifest` or `blob`.
    pub kind: &'static str,
    /// Why it failed.
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
    /// Nodes streamed from the source (and their bytes).
    pub fetched: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// Nodes streamed from a local copy the source kept (a cache).
    pub cached: u64,
    /// Their bytes.
    pub cached_bytes: u64,
    /// Nodes hard-linked from a local copy: no bytes moved.
    pub linked: u64,
    /// Their bytes.
    pub linked_bytes: u64,
    /// Nodes a registry mounted from another repository.
    pub mounted: u64,
    /// Their bytes.
    pub mounted_bytes: u64,
    /// Nodes the destination already had.
    pub existing: u64,
    /// Their bytes.
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

    /// Bytes of every node, however it got there.
    pub fn total_bytes(&self) -> u64 {
        self.fetched_bytes
            + self.cached_bytes
            + self.linked_bytes
            + self.mounted_bytes
            + self.existing_bytes
    }

    /// Add another copy's counts to these.
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

/// One graph copy between two stores: every node under the roots given to [`GraphCopy::node`], each
/// digest once however many parents share it.
pub(crate) struct GraphCopy {
    source: Arc<dyn ReadStore>,
    dest: Arc<dyn WriteStore>,
    slots: Slots,
    hooks: Arc<dyn CopyHooks>,
    events: EventSink,
    /// Nodes of every copy into the same destination that share this run's budget, so two images that
    /// share a layer, copied at the same time, move it once.
    shared: SharedNodes,
    dest_id: String,
    /// Nodes this copy has met (each is counted and reported once per copy).
    seen: Mutex<std::collections::HashSet<Digest>>,
    known: HashMap<Digest, Bytes>,
    stats: Mutex<CopyStats>,
    gate: Option<Gate>,
}

/// A check that runs beside a copy (a signature policy): until it passes, nothing is written to the
/// destination, while the source may fetch into local copies it keeps out of sight (a cache proxy). A
/// refused or abandoned check fails every write that waits on it.
#[derive(Clone)]
pub(crate) struct Gate(watch::Receiver<Option<bool>>);

/// The side that settles a [`Gate`]; dropping it unsettled refuses.
pub(crate) struct GateKeeper(watch::Sender<Option<bool>>);

impl Gate {
    pub(crate) fn new() -> (GateKeeper, Gate) {
        let (tx, rx) = watch::channel(None);
        (GateKeeper(tx), Gate(rx))
    }

    fn is_open(&self) -> bool {
        *self.0.borrow() == Some(true)
    }

    /// Wait until the check is settled: `Ok` once it passed.
    pub(crate) async fn wait(&self) -> Result<(), StoreError> {
        let mut rx = self.0.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(open) if *open == Some(true) => Ok(()),
            _ => Err(StoreError::remote(
                "the check run beside the copy refused the image; nothing was written",
                false,
            )),
        }
    }
}

impl GateKeeper {
    pub(crate) fn settle(self, passed: bool) {
        // Nobody waiting (the copy ended first) is fine.
        let _ = self.0.send(Some(passed));
    }
}

/// Where a graph copy takes its slots: the run's budget, and on a retry also a one-slot narrowing (a
/// retrying image moves one node at a time, inside the same budget as everything else).
#[derive(Clone)]
pub(crate) struct Slots {
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) narrow: Option<Arc<Semaphore>>,
    pub(crate) shared: SharedNodes,
}

/// The node cells of a run, by destination and digest.
pub(crate) type SharedNodes = Arc<Mutex<HashMap<(String, Digest), NodeCell>>>;

/// Both permits of a slot; released together when dropped.
pub(crate) struct Slot {
    _narrow: Option<OwnedSemaphorePermit>,
    _budget: OwnedSemaphorePermit,
}

impl Slots {
    async fn acquire(&self) -> Slot {
        // The narrowing first: a retrying image waits its turn without holding budget others could use.
        let narrow = match &self.narrow {
            Some(n) => Some(n.clone().acquire_owned().await.expect("semaphore open")),
            None => None,
        };
        let budget = self
            .budget
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        Slot {
            _narrow: narrow,
            _budget: budget,
        }
    }
}

/// The outcome of one node's copy, shared by every parent that waits on it.
type NodeCell = Arc<OnceCell<Result<(), CopyError>>>;

impl GraphCopy {
    /// `slots` bounds the node copies in flight (shared with other copies that use the same budget);
    /// `known` holds manifest bytes the caller already has (a resolved root), so they are not fetched again.
    pub(crate) fn new(
        source: Arc<dyn ReadStore>,
        dest: Arc<dyn WriteStore>,
        slots: Slots,
        hooks: Arc<dyn CopyHooks>,
        events: EventSink,
        known: HashMap<Digest, Bytes>,
        gate: Option<Gate>,
    ) -> Arc<GraphCopy> {
        Arc::new(GraphCopy {
            dest_id: dest.describe(),
            shared: slots.shared.clone(),
            source,
            dest,
            slots,
            hooks,
            events,
            seen: Mutex::new(std::collections::HashSet::new()),
            known,
            stats: Mutex::new(CopyStats::default()),
            gate,
        })
    }

    pub(crate) fn stats(&self) -> CopyStats {
        self.stats.lock().expect("stats lock").clone()
    }

    /// Copy `desc` and everything below it, at most once per run.
    pub(crate) fn node(
        self: &Arc<Self>,
        desc: Descriptor,
        depth: usize,
    ) -> BoxFuture<'static, Result<(), CopyError>> {
        // Boxed with an explicit `Send` bound: the recursion needs a nameable future type.
        Box::pin(self.clone().node_once(desc, depth))
    }

    async fn node_once(self: Arc<Self>, desc: Descriptor, depth: usize) -> Result<(), CopyError> {
        let first_here = self
            .seen
            .lock()
            .expect("seen lock")
            .insert(desc.digest.clone());
        if first_here {
            (self.events)(&Event::Discovered {
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        let is_manifest = media_type::is_manifest_like(&desc.media_type);
        // A failure met while waiting on another copy's attempt (another image's, whose check may have
        // refused it) is not this copy's verdict: it tries the node once itself.
        let mut waited_on_another = false;
        loop {
            let key = (self.dest_id.clone(), desc.digest.clone());
            let cell = self
                .shared
                .lock()
                .expect("nodes lock")
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone();
            let ran_here = std::sync::atomic::AtomicBool::new(false);
            let result = cell
                .get_or_init(|| async {
                    ran_here.store(true, std::sync::atomic::Ordering::Relaxed);
                    let result = if depth > MAX_DEPTH {
                        Err(StoreError::remote(
                            format!(
                                "nested more than {MAX_DEPTH} levels deep; refusing to walk further"
                            ),
                            false,
                        ))
                    } else if is_manifest {
                        self.manifest(&desc, depth).await
                    } else {
                        self.blob(&desc).await
                    };
                    result.map_err(|e| CopyError {
                        digest: desc.digest.clone(),
                        kind: if is_manifest { "manifest" } else { "blob" },
                        source: Arc::new(e),
                    })
                })
                .await
                .clone();
            let ran_here = ran_here.load(std::sync::atomic::Ordering::Relaxed);
            match &result {
                // A failure is not remembered for the run: a later attempt or image tries the node again.
                Err(_) => {
                    let mut shared = self.shared.lock().expect("nodes lock");
                    if shared.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                        shared.remove(&key);
                    }
                    if !ran_here && !waited_on_another {
                        waited_on_another = true;
                        continue;
                    }
                }
                // Another copy of this run moved it: here it is a node the destination already has.
                Ok(()) if first_here && !ran_here => self.finish(&desc, BlobOutcome::Existing),
                Ok(()) => {}
            }
            return result;
        }
    }

    async fn manifest(self: &Arc<Self>, desc: &Descriptor, depth: usize) -> Result<(), StoreError> {
        let bytes = self.fetch_manifest(desc).await?;
        let successors = self
            .hooks
            .successors(self.source.as_ref(), desc, &bytes)
            .await?;
        // Children first, all at once; each takes a slot only while it moves bytes, so a parent waiting
        // here holds none. The walk happens even when the destination has this manifest: an interrupted
        // earlier run may have left it without its children, and checking them is cheap.
        let mut children = JoinSet::new();
        for child in successors {
            children.spawn(self.node(child, depth + 1));
        }
        let mut first_error = None;
        while let Some(joined) = children.join_next().await {
            let result = match joined {
                Ok(r) => r,
                // Siblings aborted after the first failure below.
                Err(e) if e.is_cancelled() => continue,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            if let Err(e) = result
                && first_error.is_none()
            {
                first_error = Some(e);
                // Stop the siblings: the image cannot complete, and partial writes are discarded anyway.
                children.abort_all();
            }
        }
        if let Some(e) = first_error {
            // A parent fails the way its child did (the child named in the chain): a transient child
            // failure is worth another attempt.
            let transient = e.is_transient();
            return Err(StoreError::remote(e, transient));
        }
        if let Some(gate) = &self.gate {
            gate.wait().await?;
        }
        let _slot = self.slots.acquire().await;
        if self.skipped(desc, None).await? {
            return Ok(());
        }
        self.dest.put_manifest(desc, bytes).await?;
        self.hooks.post_copy(desc).await?;
        self.finish(desc, BlobOutcome::Fetched);
        Ok(())
    }

    /// Whether the destination already has `desc` (then it is done; `known`: as just asked); otherwise the
    /// pre-copy hook runs.
    async fn skipped(&self, desc: &Descriptor, known: Option<bool>) -> Result<bool, StoreError> {
        let exists = match known {
            Some(e) => e,
            None => self.dest.exists(desc).await?,
        };
        if exists {
            self.hooks.on_skipped(desc).await?;
            self.finish(desc, BlobOutcome::Existing);
            return Ok(true);
        }
        self.hooks.pre_copy(desc).await?;
        Ok(false)
    }

    /// Manifest bytes: handed in by the caller (verified here), or from the source.
    async fn fetch_manifest(&self, desc: &Descriptor) -> Result<Bytes, StoreError> {
        if let Some(b) = self.known.get(&desc.digest) {
            ferry_store::transfer::verify_bytes("resolved manifest", desc, b)?;
            return Ok(b.clone());
        }
        let _slot = self.slots.acquire().await;
        self.source.fetch_manifest(desc).await
    }

    async fn blob(&self, desc: &Descriptor) -> Result<(), StoreError> {
        let (mut exists, mut ahead) = (None, None);
        if let Some(gate) = self.gate.as_ref().filter(|g| !g.is_open()) {
            // While the check runs, the bytes go where nobody sees them yet: into the source's local copy.
            // The slot is given back before waiting, so that other blobs fetch meanwhile.
            {
                let _slot = self.slots.acquire().await;
                let present = self.dest.exists(desc).await?;
                exists = Some(present);
                if !present {
                    ahead = self.fetch_ahead(desc).await?;
                }
            }
            gate.wait().await?;
        }
        let _slot = self.slots.acquire().await;
        if self.skipped(desc, exists).await? {
            return Ok(());
        }
        let outcome = if self.dest.mount(desc).await? {
            BlobOutcome::Mounted
        } else {
            match self.place(desc, ahead).await {
                // A local copy the source kept (a cache) that failed verification is dropped by the
                // source, and the blob fetched once more from its origin.
                Err((e, true)) if e.invalidates_partial() && self.source.forget(desc).await => {
                    self.place(desc, None).await.map_err(|(e, _)| e)?
                }
                r => r.map_err(|(e, _)| e)?,
            }
        };
        self.hooks.post_copy(desc).await?;
        self.finish(desc, outcome);
        Ok(())
    }

    /// The source's local copy of `desc`, made now if it keeps one (a cache proxy downloads it), before the
    /// destination may be written; `None` when it keeps none (the blob is streamed once the gate opens).
    async fn fetch_ahead(&self, desc: &Descriptor) -> Result<Option<LocalOrigin>, StoreError> {
        let progress = self.progress(desc);
        let local = self.source.local_blob(desc, &self.fetch(&progress)).await?;
        Ok(local.map(|l| l.origin))
    }

    fn progress(&self, desc: &Descriptor) -> impl Fn(u64) + Send + Sync + use<> {
        let events = self.events.clone();
        let digest = desc.digest.clone();
        move |bytes: u64| {
            events(&Event::Progress {
                digest: digest.clone(),
                bytes,
            })
        }
    }

    fn fetch<'a>(&self, progress: &'a (dyn Fn(u64) + Send + Sync)) -> Fetch<'a> {
        Fetch {
            progress,
            // A retrying image moves one thing at a time: no extra streams.
            lanes: self
                .slots
                .narrow
                .is_none()
                .then(|| self.slots.budget.clone()),
        }
    }

    /// Move a blob's bytes: a hard link of the source's local copy where the destination takes one, else a
    /// verified stream. `ahead`: how the local copy came to be, if it was fetched ahead of a gate. A failure
    /// says whether the bytes came from a local copy the source already had.
    async fn place(
        &self,
        desc: &Descriptor,
        ahead: Option<LocalOrigin>,
    ) -> Result<BlobOutcome, (StoreError, bool)> {
        let mut had_copy = false;
        self.place_inner(desc, ahead, &mut had_copy)
            .await
            .map_err(|e| (e, had_copy))
    }

    async fn place_inner(
        &self,
        desc: &Descriptor,
        ahead: Option<LocalOrigin>,
        had_copy: &mut bool,
    ) -> Result<BlobOutcome, StoreError> {
        let progress = self.progress(desc);
        let fetch = self.fetch(&progress);
        let mut local = self.source.local_blob(desc, &fetch).await?;
        // Fetched ahead of the gate: this run's download, whatever the second look says.
        if let (Some(l), Some(origin @ LocalOrigin::Fetched { .. })) = (local.as_mut(), ahead) {
            l.origin = origin;
        }
        *had_copy = local
            .as_ref()
            .is_some_and(|l| l.origin == LocalOrigin::Present);
        let streamed = match &local {
            Some(l) if matches!(l.origin, LocalOrigin::Fetched { .. }) => BlobOutcome::Fetched,
            Some(_) => BlobOutcome::Cached,
            None => BlobOutcome::Fetched,
        };
        if let Some(l) = &local {
            if let LocalOrigin::Fetched { resumed } = l.origin {
                self.stats.lock().expect("stats lock").resumed_bytes += resumed;
            }
            if self.dest.link_blob(desc, &l.path).await? {
                return Ok(match l.origin {
                    LocalOrigin::Present => BlobOutcome::Linked,
                    LocalOrigin::Fetched { .. } => BlobOutcome::Fetched,
                });
            }
        }
        // Bytes already reported while the source fetched its local copy are not reported twice.
        let quiet = |_: u64| {};
        let report: &(dyn Fn(u64) + Send + Sync) = match &local {
            Some(l) if matches!(l.origin, LocalOrigin::Fetched { .. }) => &quiet,
            _ => &progress,
        };
        let writer = self.dest.blob_writer(desc).await?;
        transfer(self.source.as_ref(), desc, vec![writer], report).await?;
        Ok(streamed)
    }

    fn finish(&self, desc: &Descriptor, outcome: BlobOutcome) {
        self.stats
            .lock()
            .expect("stats lock")
            .add(outcome, desc.size);
        (self.events)(&Event::Done {
            digest: desc.digest.clone(),
            size: desc.size,
            outcome,
        });
    }
}
