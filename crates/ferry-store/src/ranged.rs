//! A large blob fetched as parallel `Range` requests into its place in one file, hashed in order as the
//! contiguous prefix grows, so the hash state stays resumable exactly as for a sequential download.
//!
//! One TCP stream is bounded by the link's bandwidth-delay product and by one core; a 10 GB layer over a
//! long link needs several. Extra streams borrow spare slots of the run's budget (never waiting for one),
//! so they count against `--oci-concurrency` like any other node copy.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use ferry_oci::{Descriptor, Hasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::transfer::MAX_RESUMES;
use crate::{ReadStore, Result, StoreError};

/// When and how a blob is split.
#[derive(Clone, Copy, Debug)]
pub struct RangePolicy {
    /// Blobs at least this large are fetched in ranges (when a spare slot exists).
    pub min_size: u64,
    /// The size of each range request.
    pub part_size: u64,
    /// The most streams one blob uses.
    pub max_streams: usize,
}

impl Default for RangePolicy {
    fn default() -> Self {
        RangePolicy {
            min_size: 64 << 20,
            part_size: 16 << 20,
            max_streams: 8,
        }
    }
}

/// How a ranged fetch ended.
pub enum Ranged {
    /// Every byte is in the file and hashed: the state, to compare with the digest.
    Complete(Hasher),
    /// The source answered the first range with the whole blob: fetch it sequentially instead. Nothing was
    /// written.
    Unsupported,
}

/// Writes in this size reach the file together (one blocking call each).
const WRITE_BLOCK: usize = 1 << 20;
/// Bytes hashed between checkpoints (and at least [`crate::transfer::CHECKPOINT_INTERVAL`] between them).
const CHECKPOINT_EVERY: u64 = 8 << 20;

/// Fetch `desc` from byte `start.len()` into `file` (which holds the first `start.len()` bytes) with up to
/// `policy.max_streams` range requests at once: this call's own slot, and spare slots of `lanes`.
/// `checkpoint` records the hash state of the contiguous prefix every few MiB and when the fetch stops
/// early; bytes past that prefix are not vouched for.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_ranged(
    source: &dyn ReadStore,
    desc: &Descriptor,
    file: &std::fs::File,
    path: &Path,
    start: Hasher,
    lanes: Option<&Arc<Semaphore>>,
    policy: RangePolicy,
    progress: &(dyn Fn(u64) + Send + Sync),
    checkpoint: &(dyn Fn(&Hasher) -> Result<()> + Send + Sync),
) -> Result<Ranged> {
    let mut parts: VecDeque<(u64, u64)> = VecDeque::new();
    let mut at = start.len();
    while at < desc.size {
        let end = (at + policy.part_size.max(1)).min(desc.size);
        parts.push_back((at, end));
        at = end;
    }
    // The last range goes first: a source that ignores ranges answers it from byte 0, which shows at once
    // (a first range from byte 0 would look honoured either way).
    let Some(first) = parts.pop_back() else {
        return Ok(Ranged::Complete(start));
    };
    let (body, from) = source.fetch_range(desc, first.0, first.1 - first.0).await?;
    if from != first.0 {
        return Ok(Ranged::Unsupported);
    }
    let queue = Mutex::new(parts);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let mut extra: Vec<OwnedSemaphorePermit> = Vec::new();
    if let Some(lanes) = lanes {
        while extra.len() + 1 < policy.max_streams {
            match lanes.clone().try_acquire_owned() {
                Ok(p) => extra.push(p),
                Err(_) => break,
            }
        }
    }
    let ctx = Ctx {
        source,
        desc,
        file,
        path,
        progress,
    };
    let workers = async {
        let first_worker = async {
            ctx.fetch_part(first, Some(body)).await?;
            done_tx.send(first).ok();
            ctx.drain(&queue, &done_tx).await
        };
        let others = futures_all((0..extra.len()).map(|_| ctx.drain(&queue, &done_tx)));
        let (a, b) = tokio::join!(first_worker, others);
        drop(done_tx);
        a.and(b)
    };
    let hashing = async {
        let mut hasher = start.clone();
        let mut finished: BTreeMap<u64, u64> = BTreeMap::new();
        let mut last_checkpoint = hasher.len();
        let mut last_written = std::time::Instant::now();
        while let Some((s, e)) = done_rx.recv().await {
            finished.insert(s, e);
            while let Some(end) = finished.remove(&hasher.len()) {
                hash_file_range(file, path, &mut hasher, end).await?;
                if hasher.len() - last_checkpoint >= CHECKPOINT_EVERY
                    && last_written.elapsed() >= crate::transfer::CHECKPOINT_INTERVAL
                {
                    last_checkpoint = hasher.len();
                    last_written = std::time::Instant::now();
                    checkpoint(&hasher)?;
                }
            }
        }
        Ok::<Hasher, StoreError>(hasher)
    };
    let (fetched, hashed) = tokio::join!(workers, hashing);
    drop(extra);
    match (fetched, hashed) {
        (Ok(()), Ok(hasher)) if hasher.len() == desc.size => Ok(Ranged::Complete(hasher)),
        (Ok(()), Ok(hasher)) => Err(StoreError::SizeMismatch {
            store: source.describe(),
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: hasher.len(),
        }),
        (Err(e), Ok(hasher)) => {
            // Keep the contiguous prefix for a later run.
            let _ = checkpoint(&hasher);
            Err(e)
        }
        (_, Err(e)) => Err(e),
    }
}

/// Run every future to completion; the first error wins.
async fn futures_all<F: std::future::Future<Output = Result<()>>>(
    futures: impl Iterator<Item = F>,
) -> Result<()> {
    futures_util::future::join_all(futures)
        .await
        .into_iter()
        .collect()
}

struct Ctx<'a> {
    source: &'a dyn ReadStore,
    desc: &'a Descriptor,
    file: &'a std::fs::File,
    path: &'a Path,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl Ctx<'_> {
    /// Take parts from the queue until it is empty.
    async fn drain(
        &self,
        queue: &Mutex<VecDeque<(u64, u64)>>,
        done: &mpsc::UnboundedSender<(u64, u64)>,
    ) -> Result<()> {
        loop {
            let Some(part) = queue.lock().expect("queue lock").pop_front() else {
                return Ok(());
            };
            self.fetch_part(part, None).await?;
            done.send(part).ok();
        }
    }

    /// Fetch `[start, end)` into its place, resuming a broken body within the part.
    async fn fetch_part(
        &self,
        (start, end): (u64, u64),
        mut body: Option<Box<dyn crate::ByteSource>>,
    ) -> Result<()> {
        let mut at = start;
        let mut resumes = 0;
        let mut block = BytesMut::with_capacity(WRITE_BLOCK);
        let mut block_at = at;
        while at < end {
            let source = match body.take() {
                Some(b) => b,
                None => {
                    let (b, from) = self.source.fetch_range(self.desc, at, end - at).await?;
                    if from != at {
                        return Err(StoreError::RangeIgnored {
                            store: self.source.describe(),
                            digest: self.desc.digest.clone(),
                            offset: at,
                        });
                    }
                    b
                }
            };
            let mut source = source;
            let broke = loop {
                match source.next_chunk().await {
                    Ok(Some(chunk)) => {
                        let take = chunk.len().min((end - at) as usize);
                        block.extend_from_slice(&chunk[..take]);
                        at += take as u64;
                        (self.progress)(take as u64);
                        if block.len() >= WRITE_BLOCK || at == end {
                            self.write(&mut block, block_at).await?;
                            block_at = at;
                        }
                        if at == end {
                            break None;
                        }
                    }
                    Ok(None) => break Some(format!("ended at byte {at} of part {start}-{end}")),
                    Err(e) if e.is_transient() => break Some(e.to_string()),
                    Err(e) => return Err(e),
                }
            };
            if let Some(why) = broke {
                self.write(&mut block, block_at).await?;
                block_at = at;
                resumes += 1;
                if resumes > MAX_RESUMES {
                    return Err(StoreError::remote(
                        format!(
                            "range {start}-{end} of {} from {} broke {resumes} times: {why}",
                            self.desc.digest,
                            self.source.describe()
                        ),
                        true,
                    ));
                }
                tracing::warn!(
                    "range of {} from {} {why}; resuming at byte {at}",
                    self.desc.digest,
                    self.source.describe()
                );
            }
        }
        Ok(())
    }

    async fn write(&self, block: &mut BytesMut, at: u64) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let data = block.split().freeze();
        let file = self
            .file
            .try_clone()
            .map_err(|e| StoreError::io(self.path, e))?;
        let path = self.path.to_path_buf();
        tokio::task::spawn_blocking(move || file.write_all_at(&data, at))
            .await
            .expect("write task panicked")
            .map_err(|e| StoreError::io(path, e))
    }
}

/// Hash `file` from `hasher.len()` to `end`.
async fn hash_file_range(
    file: &std::fs::File,
    path: &Path,
    hasher: &mut Hasher,
    end: u64,
) -> Result<()> {
    let file = file.try_clone().map_err(|e| StoreError::io(path, e))?;
    let mut h = std::mem::take(hasher);
    let shown = path.to_path_buf();
    *hasher = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; WRITE_BLOCK];
        while h.len() < end {
            let n = ((end - h.len()) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], h.len())?;
            h.update(&buf[..n]);
        }
        Ok::<Hasher, std::io::Error>(h)
    })
    .await
    .expect("hash task panicked")
    .map_err(|e| StoreError::io(shown, e))?;
    Ok(())
}
