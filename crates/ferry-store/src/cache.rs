//! The shared blob cache: an OCI-layout-shaped store (`images/blobs/sha256/<hex>`, temp files under
//! `images/ingest/`) that Zarf's `~/.zarf-cache` also has, so `--cache ~/.zarf-cache` shares one store.
//!
//! Every blob is verified before it is renamed into place. Reads are verified too, cheaply: when a blob is
//! committed (or first re-hashed) ferry records a stamp of its size, mtime and inode; a blob whose metadata
//! still matches its stamp is served without re-hashing, anything else (a blob written by Zarf, a file that
//! was modified or truncated) is hashed before use, and evicted if it is wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher};

use crate::file::{AtomicFileWriter, write_atomic};
use crate::{BlobWriter, BoxFuture, Result, StoreError};

/// The cache's layout version: bump when the on-disk shape changes, so old and new ferry never share a
/// directory they disagree about.
pub const CACHE_VERSION: &str = "v1";

/// The shared blob cache (see the module docs): a store of verified blobs by digest, read through
/// [`crate::CachedSource`] and shared by every ferry process and by Zarf. Cloning shares the handle and its
/// lock.
#[derive(Clone, Debug)]
pub struct BlobCache {
    store: PathBuf,
    stamps: PathBuf,
    /// Held for as long as any clone lives: shared by every process adding to or reading the cache,
    /// exclusive for prune and clean, so nothing is removed from under a running copy.
    _lock: std::sync::Arc<std::fs::File>,
}

/// One cached blob, for listing and pruning.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CachedBlob {
    /// The blob's digest (its file name).
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
    /// When ferry last served or added it (seconds since the Unix epoch); falls back to the blob's mtime.
    pub last_used: u64,
}

/// What `cache du` shows.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheUsage {
    /// Blobs held.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Unfinished downloads and their hash states in `ingest/`.
    pub partials: usize,
    /// Bytes of those partials (downloaded so far).
    pub partial_bytes: u64,
}

/// Which blobs [`BlobCache::prune`] removes.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Blobs not used for this long.
    pub older_than: Option<std::time::Duration>,
    /// Then the least recently used, until the rest fits.
    pub max_size: Option<u64>,
}

/// What [`BlobCache::prune`] and [`BlobCache::clean`] removed.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Blob bytes and temp file bytes freed.
    pub bytes: u64,
    /// Leftover temp files (partials, stale ingest files) removed.
    pub temp_files: usize,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Blobs hashed.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs whose content did not match their name; they were removed.
    pub evicted: Vec<Digest>,
}

impl BlobCache {
    /// `$FERRY_CACHE`, else `$XDG_CACHE_HOME/ferry/v1`, else `~/.cache/ferry/v1`.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("FERRY_CACHE").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("ferry").join(CACHE_VERSION))
    }

    /// Open (creating if needed) the cache rooted at `root` for use alongside other processes. Blobs live in
    /// `root/images`, Zarf's shape.
    pub fn open(root: &Path) -> Result<BlobCache> {
        Self::open_locked(root, None)
    }

    /// Open the cache with exclusive use (prune, clean), waiting up to `timeout` for other ferry processes to
    /// finish; `on_wait` is called once if the wait begins, so the user sees why nothing happens.
    pub fn open_exclusive(
        root: &Path,
        timeout: std::time::Duration,
        on_wait: &dyn Fn(),
    ) -> Result<BlobCache> {
        Self::open_locked(root, Some((timeout, on_wait)))
    }

    fn open_locked(
        root: &Path,
        exclusive: Option<(std::time::Duration, &dyn Fn())>,
    ) -> Result<BlobCache> {
        let store = root.join("images");
        let blobs = store.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| StoreError::io(&blobs, e))?;
        let marker = store.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, crate::layout::OCI_LAYOUT_BYTES)?;
        }
        let stamps = root.join("ferry").join("verified");
        std::fs::create_dir_all(&stamps).map_err(|e| StoreError::io(&stamps, e))?;
        let lock_path = root.join("ferry").join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        match exclusive {
            None => lock
                .lock_shared()
                .map_err(|e| StoreError::io(&lock_path, e))?,
            Some((timeout, on_wait)) => {
                let deadline = std::time::Instant::now() + timeout;
                let mut told = false;
                loop {
                    match lock.try_lock() {
                        Ok(()) => break,
                        Err(std::fs::TryLockError::WouldBlock) => {
                            if !told {
                                on_wait();
                                told = true;
                            }
                            if std::time::Instant::now() >= deadline {
                                return Err(StoreError::io(
                                    &lock_path,
                                    std::io::Error::new(
                                        std::io::ErrorKind::TimedOut,
                                        format!(
                                            "other ferry processes still use the cache after {timeout:?}; try again when they finish"
                                        ),
                                    ),
                                ));
                            }
                            std::thread::sleep(std::time::Duration::from_millis(200));
                        }
                        Err(std::fs::TryLockError::Error(e)) => {
                            return Err(StoreError::io(&lock_path, e));
                        }
                    }
                }
            }
        }
        Ok(BlobCache {
            store,
            stamps,
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// Every blob in the cache.
    pub fn list(&self) -> Result<Vec<CachedBlob>> {
        let dir = self.store.join("blobs").join("sha256");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let Ok(digest) =
                format!("sha256:{}", entry.file_name().to_string_lossy()).parse::<Digest>()
            else {
                continue; // not a blob (a stray file)
            };
            // Not following links: ferry and Zarf write blobs as regular files, and a planted symlink (to
            // a directory, or out of the cache) is not content.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let used = std::fs::metadata(self.stamps.join(digest.hex()))
                .and_then(|m| m.modified())
                .or_else(|_| meta.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            out.push(CachedBlob {
                digest,
                size: meta.len(),
                last_used: used,
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Re-hash every blob; remove the ones that do not match their name.
    pub fn verify(&self, on_blob: &dyn Fn(&CachedBlob)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for blob in self.list()? {
            on_blob(&blob);
            let path = self.blob_path(&blob.digest);
            report.checked += 1;
            report.bytes += blob.size;
            match hash_file(&path) {
                Ok(d) if d == blob.digest => {
                    stamp_when_durable(path.clone(), self.stamps.join(blob.digest.hex()));
                }
                Ok(_) => {
                    self.evict_blocking(&blob.digest);
                    report.evicted.push(blob.digest);
                }
                Err(e) => return Err(StoreError::io(path, e)),
            }
        }
        Ok(report)
    }

    /// Remove blobs (and their stamps). Needs [`BlobCache::open_exclusive`] to be safe against other processes.
    pub fn remove(&self, digests: &[Digest]) {
        for d in digests {
            self.evict_blocking(d);
        }
    }

    /// Blobs and unfinished downloads (`ingest/`), for `cache du`.
    pub fn usage(&self) -> Result<CacheUsage> {
        let blobs = self.list()?;
        let (partials, partial_bytes) = self.temp_files(None);
        Ok(CacheUsage {
            blobs: blobs.len(),
            bytes: blobs.iter().map(|b| b.size).sum(),
            partials: partials.len(),
            partial_bytes,
        })
    }

    /// Remove blobs unused for `opts.older_than`, then the least recently used until the rest fits in
    /// `opts.max_size`, and temp files older than an hour. Needs [`BlobCache::open_exclusive`].
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        let mut blobs = self.list()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut doomed: Vec<CachedBlob> = Vec::new();
        if let Some(older) = opts.older_than {
            let cutoff = now.saturating_sub(older.as_secs());
            let (old, keep): (Vec<_>, Vec<_>) =
                blobs.into_iter().partition(|b| b.last_used < cutoff);
            doomed.extend(old);
            blobs = keep;
        }
        if let Some(max) = opts.max_size {
            blobs.sort_by_key(|b| std::cmp::Reverse(b.last_used));
            let mut total = 0u64;
            for b in blobs {
                total += b.size;
                if total > max {
                    doomed.push(b);
                }
            }
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        Ok(self.remove_all(&doomed, Some(hour_ago)))
    }

    /// Remove every blob and every temp file (unfinished downloads included). Needs
    /// [`BlobCache::open_exclusive`]: no other process can be writing one.
    pub fn clean(&self) -> Result<PruneReport> {
        let blobs = self.list()?;
        Ok(self.remove_all(&blobs, None))
    }

    fn remove_all(
        &self,
        blobs: &[CachedBlob],
        temps_before: Option<std::time::SystemTime>,
    ) -> PruneReport {
        for b in blobs {
            self.evict_blocking(&b.digest);
        }
        let (temps, temp_bytes) = self.temp_files(temps_before);
        let temp_files = temps
            .iter()
            .filter(|p| std::fs::remove_file(p).is_ok())
            .count();
        PruneReport {
            blobs: blobs.len(),
            bytes: blobs.iter().map(|b| b.size).sum::<u64>() + temp_bytes,
            temp_files,
        }
    }

    /// The files in `ingest/` (partial downloads, their hash states, temp files), modified before
    /// `before` if given, and their total size.
    fn temp_files(&self, before: Option<std::time::SystemTime>) -> (Vec<PathBuf>, u64) {
        let mut out = (Vec::new(), 0);
        for e in std::fs::read_dir(self.ingest_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(meta) = e.metadata() else { continue };
            let old_enough = before.is_none_or(|b| meta.modified().is_ok_and(|t| t < b));
            if meta.is_file() && old_enough {
                out.0.push(e.path());
                out.1 += meta.len();
            }
        }
        out
    }

    /// The blob store directory (`<root>/images`).
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// Where the blob `digest` lives, whether or not it is there (`<root>/images/blobs/sha256/<hex>`). A file
    /// at this path is not yet trusted: [`BlobCache::lookup`] verifies it.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.store.join("blobs").join("sha256").join(digest.hex())
    }

    fn ingest_dir(&self) -> PathBuf {
        self.store.join("ingest")
    }

    /// The path of a verified copy of `desc`, or `None` when the cache does not hold a good one. A corrupt
    /// entry is evicted here, so the caller simply fetches from the origin.
    ///
    /// The common answers come from metadata alone, on the calling thread: a blob that is not there (a cold
    /// pull asks for every blob first), and a blob whose stamp vouches for it (a warm pull) cost a `stat`
    /// and a read of the small stamp file — less than the hop to a blocking thread and back. Anything that
    /// needs hashing, evicting or fixing goes to a blocking thread ([`BlobCache::lookup_blocking`]).
    pub async fn lookup(&self, desc: &Descriptor) -> Option<PathBuf> {
        match self.lookup_quick(desc) {
            Quick::Missing => None,
            Quick::Trusted { path, touch } => {
                if let Some(stamp) = touch {
                    // Recording the use waits for nobody: at worst a use goes unrecorded.
                    later(Later::Touch(stamp));
                }
                Some(path)
            }
            Quick::Check => {
                let this = self.clone();
                let desc = desc.clone();
                tokio::task::spawn_blocking(move || this.lookup_blocking(&desc))
                    .await
                    .unwrap_or(None)
            }
        }
    }

    /// [`BlobCache::lookup`] from metadata only: the blob's `stat` and its stamp. Never hashes, never
    /// writes; whatever it cannot decide is [`Quick::Check`].
    fn lookup_quick(&self, desc: &Descriptor) -> Quick {
        let path = self.blob_path(&desc.digest);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Quick::Missing,
            Err(_) => return Quick::Check,
        };
        if meta.len() != desc.size || meta.permissions().mode() & 0o222 != 0 {
            return Quick::Check;
        }
        let stamp_path = self.stamps.join(desc.digest.hex());
        let Ok(file) = std::fs::File::open(&stamp_path) else {
            return Quick::Check;
        };
        let Some(recorded) = read_stamp(&file) else {
            return Quick::Check;
        };
        let this_boot = volatile_stamp_of(&meta).is_some_and(|v| v == recorded);
        if !this_boot && stamp_of(&meta) != recorded {
            return Quick::Check;
        }
        if this_boot && is_older_than(&meta, SYNC_AFTER) {
            sync_later(path.clone(), stamp_path.clone());
        }
        let touch = file
            .metadata()
            .map_or(true, |m| is_older_than(&m, TOUCH_AFTER))
            .then_some(stamp_path);
        Quick::Trusted { path, touch }
    }

    fn lookup_blocking(&self, desc: &Descriptor) -> Option<PathBuf> {
        let path = self.blob_path(&desc.digest);
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() != desc.size {
            tracing::warn!(path = %path.display(), "cached blob has {} bytes, expected {}; evicting", meta.len(), desc.size);
            self.evict_blocking(&desc.digest);
            return None;
        }
        // Blobs are immutable, and a hard link shares the mode with every layout it lands in (0444 there
        // too); blobs Zarf or a user left writable are fixed here. A mode change does not touch mtime.
        if meta.permissions().mode() & 0o222 != 0 {
            let _ = crate::file::set_read_only(&path);
        }
        let stamp = stamp_of(&meta);
        let stamp_path = self.stamps.join(desc.digest.hex());
        let recorded = std::fs::File::open(&stamp_path)
            .ok()
            .and_then(|f| read_stamp(&f));
        let volatile = volatile_stamp_of(&meta);
        let this_boot = recorded.is_some() && recorded == volatile;
        if this_boot || recorded.as_deref() == Some(stamp.as_str()) {
            if this_boot && is_older_than(&meta, SYNC_AFTER) {
                sync_later(path.clone(), stamp_path.clone());
            }
            touch_stamp(&stamp_path);
            return Some(path);
        }
        match hash_file(&path) {
            Ok(actual) if actual == desc.digest => {
                // Hashed from the page cache: lasting only once synced, like a fresh download.
                stamp_when_durable(path.clone(), stamp_path);
                Some(path)
            }
            Ok(actual) => {
                tracing::warn!(path = %path.display(), %actual, "cached blob is corrupt (expected {}); evicting and fetching again", desc.digest);
                self.evict_blocking(&desc.digest);
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read cached blob: {e}; fetching again");
                None
            }
        }
    }

    /// Remove a blob that failed verification.
    pub async fn evict(&self, digest: &Digest) {
        let this = self.clone();
        let digest = digest.clone();
        let _ = tokio::task::spawn_blocking(move || this.evict_blocking(&digest)).await;
    }

    fn evict_blocking(&self, digest: &Digest) {
        let _ = std::fs::remove_file(self.stamps.join(digest.hex()));
        let _ = std::fs::remove_file(self.blob_path(digest));
    }

    /// A writer that adds `desc` to the cache on commit (fsynced, read-only, stamped).
    pub async fn writer(&self, desc: &Descriptor) -> Result<Box<dyn BlobWriter>> {
        let inner =
            AtomicFileWriter::create(&self.ingest_dir(), self.blob_path(&desc.digest), false)
                .await?;
        Ok(Box::new(CacheWriter {
            inner: Box::new(inner),
            dest: self.blob_path(&desc.digest),
            stamp: self.stamps.join(desc.digest.hex()),
        }))
    }

    /// Add bytes already verified in memory (manifests).
    pub async fn put_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<()> {
        if self.blob_path(&desc.digest).exists() {
            return Ok(());
        }
        let mut w = self.writer(desc).await?;
        w.write(bytes).await?;
        w.commit().await
    }

    /// Read a cached manifest, verified, or `None`.
    pub async fn get_bytes(&self, desc: &Descriptor) -> Option<Bytes> {
        let path = self.blob_path(&desc.digest);
        let bytes = tokio::fs::read(&path).await.ok()?;
        if crate::transfer::verify_bytes("cache", desc, &bytes).is_ok() {
            Some(Bytes::from(bytes))
        } else {
            self.evict(&desc.digest).await;
            None
        }
    }
}

/// A download into the cache that survives the process: `ingest/<hex>.partial` plus its hash state in
/// `ingest/<hex>.partial.state`. The partial file is locked while a process writes it, so two processes never
/// append to the same one; a later process that finds it unlocked continues where the last checkpoint says.
pub struct PartialWriter {
    file: crate::file::ChunkFile,
    /// A second handle on the partial that holds its exclusive lock until the writer goes away.
    _lock: std::fs::File,
    path: PathBuf,
    state_path: PathBuf,
    dest: PathBuf,
    stamp: PathBuf,
    start: Hasher,
    /// Whether a hash state file may exist for this partial (one was resumed, or a checkpoint wrote one):
    /// the commit removes it. A blob that arrived between checkpoints never had one.
    has_state: bool,
}

impl PartialWriter {
    /// The hash state of the bytes already in the partial (empty for a fresh one).
    pub fn resume_state(&self) -> Hasher {
        self.start.clone()
    }

    /// Fetch the rest of `desc` as parallel range requests into the partial (see [`crate::ranged`]),
    /// checkpointing the contiguous prefix. `Unsupported` leaves the writer as it was, to be used for a
    /// sequential transfer. On `Complete` the caller compares the state with the digest, then commits.
    pub async fn fetch_ranged(
        &mut self,
        source: &dyn crate::ReadStore,
        desc: &Descriptor,
        lanes: Option<&std::sync::Arc<tokio::sync::Semaphore>>,
        policy: crate::ranged::RangePolicy,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<crate::ranged::Ranged> {
        self.file
            .flush()
            .await
            .map_err(|e| StoreError::io(&self.path, e))?;
        let state_path = self.state_path.clone();
        // Ranged fetches are of large blobs: assume a state file, the commit removes it.
        self.has_state = true;
        let checkpoint = move |state: &Hasher| -> Result<()> {
            let tmp = state_path.with_extension("state.tmp");
            std::fs::write(&tmp, state.save()).map_err(|e| StoreError::io(&tmp, e))?;
            std::fs::rename(&tmp, &state_path).map_err(|e| StoreError::io(&state_path, e))
        };
        crate::ranged::fetch_ranged(
            source,
            desc,
            &self._lock,
            &self.path,
            self.start.clone(),
            lanes,
            policy,
            progress,
            &checkpoint,
        )
        .await
    }
}

impl BlobCache {
    /// A resumable download of `desc`, continuing a partial an earlier process left if its state checks out.
    /// `None` when another process is downloading the same blob right now.
    pub async fn partial(&self, desc: &Descriptor) -> Result<Option<PartialWriter>> {
        let ingest = self.ingest_dir();
        let path = ingest.join(format!("{}.partial", desc.digest.hex()));
        let state_path = ingest.join(format!("{}.partial.state", desc.digest.hex()));
        let (dest, stamp) = (
            self.blob_path(&desc.digest),
            self.stamps.join(desc.digest.hex()),
        );
        let size = desc.size;
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&ingest).map_err(|e| StoreError::io(&ingest, e))?;
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
            }
            // The file opened may have been committed (renamed to its blob name) by its writer between our
            // open and our lock: then it is a finished blob, not a partial, and must not be touched. Only
            // the file still at the partial's path is ours.
            {
                use std::os::unix::fs::MetadataExt;
                let ours = lock.metadata().map_err(|e| StoreError::io(&path, e))?;
                let at_path = std::fs::metadata(&path).ok();
                if at_path.is_none_or(|m| m.ino() != ours.ino() || m.dev() != ours.dev()) {
                    return Ok(None);
                }
            }
            let on_disk = lock.metadata().map_err(|e| StoreError::io(&path, e))?.len();
            // A state that claims more than the file holds, or more than the blob, is not trusted.
            let start = std::fs::read_to_string(&state_path)
                .ok()
                .and_then(|s| Hasher::restore(&s))
                .filter(|h| h.len() <= on_disk && h.len() < size)
                .unwrap_or_default();
            if start.is_empty() {
                let _ = std::fs::remove_file(&state_path);
            } else {
                tracing::info!(path = %path.display(), bytes = start.len(), "resuming a partial download");
            }
            // Bytes past the last checkpoint were never hashed: drop them. A fresh (empty) partial is not
            // truncated: on ext4 a truncate to 0 marks the file for a forced writeback when it is closed
            // (auto_da_alloc), which would make the commit wait for the disk.
            if on_disk != start.len() {
                lock.set_len(start.len()).map_err(|e| StoreError::io(&path, e))?;
            }
            let mut append = lock.try_clone().map_err(|e| StoreError::io(&path, e))?;
            use std::io::Seek;
            append
                .seek(std::io::SeekFrom::Start(start.len()))
                .map_err(|e| StoreError::io(&path, e))?;
            Ok(Some(PartialWriter {
                file: crate::file::ChunkFile::new(append),
                _lock: lock,
                path,
                state_path,
                dest,
                stamp,
                has_state: !start.is_empty(),
                start,
            }))
        })
        .await
        .expect("partial task panicked")
    }

    /// Throw away a partial download whose bytes turned out wrong.
    pub fn discard_partial(&self, desc: &Descriptor) {
        let ingest = self.ingest_dir();
        let _ = std::fs::remove_file(ingest.join(format!("{}.partial", desc.digest.hex())));
        let _ = std::fs::remove_file(ingest.join(format!("{}.partial.state", desc.digest.hex())));
    }
}

impl BlobWriter for PartialWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.file
                .write(chunk)
                .await
                .map_err(|e| StoreError::io(&self.path, e))
        })
    }

    fn checkpoint<'a>(&'a mut self, state: &'a Hasher) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // The data reaches the file before the state that vouches for it.
            self.file
                .flush()
                .await
                .map_err(|e| StoreError::io(&self.path, e))?;
            let tmp = self.state_path.with_extension("state.tmp");
            self.has_state = true;
            std::fs::write(&tmp, state.save()).map_err(|e| StoreError::io(&tmp, e))?;
            std::fs::rename(&tmp, &self.state_path).map_err(|e| StoreError::io(&self.state_path, e))
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let PartialWriter {
                file,
                _lock,
                path,
                state_path,
                dest,
                stamp,
                has_state,
                ..
            } = *self;
            let shown = path.clone();
            // One blocking hop for the last write and everything the commit does on disk.
            file.close_with(move |file| {
                drop(file);
                crate::file::set_read_only(&path)?;
                std::fs::rename(&path, &dest).map_err(|e| StoreError::io(&dest, e))?;
                if has_state {
                    let _ = std::fs::remove_file(&state_path);
                }
                drop(_lock);
                stamp_when_durable(dest, stamp);
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(|e| StoreError::io(&shown, e))?
        })
    }
}

struct CacheWriter {
    inner: Box<AtomicFileWriter>,
    dest: PathBuf,
    stamp: PathBuf,
}

impl BlobWriter for CacheWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        self.inner.write(chunk)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let CacheWriter { inner, dest, stamp } = *self;
        inner.commit_then(move || stamp_when_durable(dest, stamp))
    }
}

/// The bytes were verified on the way in: say so at once, for this boot; the stamp becomes lasting later,
/// when a use finds the blob old enough that the kernel has written it back — without anyone waiting for
/// the disk.
///
/// The blob is visible as soon as it is renamed. Its stamp is written right away with the kernel's boot id
/// appended ([`volatile_stamp_of`]): until the machine restarts, the page cache holds exactly the bytes
/// that were hashed, so the stamp is true whether or not they reached the disk yet. No sync runs while a
/// copy writes (syncing during a pull made the disk's writeback compete with the pull itself). A later
/// [`BlobCache::lookup`] that trusts a blob stamped for this boot more than [`SYNC_AFTER`] ago hands it
/// to a background thread, which syncs it (cheap by then: the kernel flushes dirty pages within about
/// 30 s) and rewrites the stamp without the boot id; a failed sync removes the stamp. A crash or power
/// loss before that leaves a stamp for a boot that is over, which no reader accepts: the blob is hashed
/// before its next use (and evicted if a torn write left it wrong). Where the boot id cannot be read, the
/// blob is synced in the background at once instead.
fn stamp_when_durable(blob: PathBuf, stamp: PathBuf) {
    match std::fs::metadata(&blob)
        .ok()
        .and_then(|m| volatile_stamp_of(&m))
    {
        Some(volatile) => {
            let _ = std::fs::write(&stamp, volatile);
        }
        None => sync_later(blob, stamp),
    }
}

/// How old a blob stamped for this boot must be before a use makes its stamp lasting.
const SYNC_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A use is recorded (the stamp's mtime, for `cache prune`) only when the last one is older than this:
/// ages that matter to pruning are hours and days, and a warm pull of a blob just used writes nothing.
const TOUCH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`BlobCache::lookup_quick`] could tell from metadata.
enum Quick {
    /// No blob under that name.
    Missing,
    /// A stamp vouches for the blob; `touch`: its stamp, when the use should be recorded.
    Trusted {
        path: PathBuf,
        touch: Option<PathBuf>,
    },
    /// Something only the blocking lookup settles (hashing, a wrong size or mode, no stamp).
    Check,
}

/// A stamp file's text. A stamp is under 150 bytes: at most 256 are read (anything longer is not a stamp,
/// and does not match one), without the extra call that would only find the end.
fn read_stamp(mut file: &std::fs::File) -> Option<String> {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            // A regular file that returns less than asked is at its end.
            Ok(n) if n < buf.len() - len => {
                len += n;
                break;
            }
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    String::from_utf8(buf[..len].to_vec()).ok()
}

/// Whether `meta`'s mtime is at least `age` ago (an mtime in the future is not).
fn is_older_than(meta: &std::fs::Metadata, age: std::time::Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|a| a >= age)
}

/// Record a use of a blob: its stamp's mtime, for `cache prune --older-than`.
fn touch_stamp(stamp: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(stamp) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Queue `blob` for [`sync_and_stamp`] on the one background thread.
fn sync_later(blob: PathBuf, stamp: PathBuf) {
    later(Later::Sync { blob, stamp });
}

/// Cache bookkeeping nobody waits for.
enum Later {
    /// [`sync_and_stamp`].
    Sync { blob: PathBuf, stamp: PathBuf },
    /// [`touch_stamp`].
    Touch(PathBuf),
}

/// Queue a job on the one background thread of the cache (one thread, however many blobs a warm pull
/// touches). Detached: it dies with the process, whatever it has not done yet (blobs not synced stay
/// stamped for this boot only; a use not recorded leaves an older last-use time).
fn later(job: Later) {
    type Queue = std::sync::Mutex<std::sync::mpsc::Sender<Later>>;
    static SYNCER: std::sync::OnceLock<Queue> = std::sync::OnceLock::new();
    let sender = SYNCER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Later>();
        let spawned = std::thread::Builder::new()
            .name("ferry-cache-sync".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Later::Sync { blob, stamp } => sync_and_stamp(&blob, &stamp),
                        Later::Touch(stamp) => touch_stamp(&stamp),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("no cache sync thread ({e}); cached blobs stay stamped for this boot");
        }
        std::sync::Mutex::new(tx)
    });
    let _ = sender.lock().expect("syncer lock").send(job);
}

/// Sync `blob`, then stamp it for good if it is still the file that was stamped for this boot.
fn sync_and_stamp(blob: &Path, stamp: &Path) {
    let synced = std::fs::File::open(blob).and_then(|f| f.sync_data());
    let meta = std::fs::metadata(blob);
    match (synced, meta) {
        (Ok(()), Ok(meta)) => {
            let unchanged = volatile_stamp_of(&meta)
                .is_some_and(|v| std::fs::read_to_string(stamp).ok().as_deref() == Some(&v));
            if unchanged {
                let _ = std::fs::write(stamp, stamp_of(&meta));
            }
        }
        (Err(e), _) => {
            tracing::warn!(path = %blob.display(), "cannot sync a cached blob ({e}); it will be hashed before its next use");
            let _ = std::fs::remove_file(stamp);
        }
        (_, Err(_)) => {}
    }
}

/// The kernel's id of the running boot (`/proc/sys/kernel/random/boot_id`), read once.
fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| id.to_string())
    })
    .as_deref()
}

/// [`stamp_of`] for bytes verified in this boot that may not be on disk yet: valid until the machine
/// restarts. `None` where the boot id cannot be read (then only synced blobs are stamped).
pub(crate) fn volatile_stamp_of(meta: &std::fs::Metadata) -> Option<String> {
    Some(format!("{} boot {}", stamp_of(meta), boot_id()?))
}

/// Size, mtime and inode: what changes when a file is rewritten or replaced (the cache's and the layout's
/// verification stamps).
pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!(
            "{} {} {} {}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        )
    }
    #[cfg(not(unix))]
    {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{} {}", meta.len(), mtime)
    }
}

/// sha256 of a file, read in 1 MiB blocks.
pub fn hash_file(path: &Path) -> std::io::Result<Digest> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

impl crate::Store for BlobCache {
    fn describe(&self) -> String {
        format!("cache {}", self.store.display())
    }
}

/// The cache as a source: the copy engine streams from it (verifying as it goes) when it cannot link.
impl crate::ReadStore for BlobCache {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            self.get_bytes(desc)
                .await
                .ok_or_else(|| StoreError::NotFound {
                    store: crate::Store::describe(self),
                    what: format!("manifest {}", desc.digest),
                })
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn crate::ByteSource>, u64)>> {
        Box::pin(async move {
            let src = crate::file::FileSource::open(&self.blob_path(&desc.digest), offset).await?;
            Ok((Box::new(src) as Box<dyn crate::ByteSource>, offset))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor::of("application/octet-stream", bytes)
    }

    #[tokio::test]
    async fn stores_verifies_and_evicts_corrupt_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"hello cache");
        assert!(cache.lookup(&d).await.is_none());
        cache
            .put_bytes(&d, Bytes::from_static(b"hello cache"))
            .await
            .unwrap();
        let path = cache.lookup(&d).await.expect("cached");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello cache");
        assert!(path.starts_with(dir.path().join("images/blobs/sha256")));

        // Same size, different bytes: the stamp no longer matches (mtime changes), so it is re-hashed and evicted.
        std::thread::sleep(std::time::Duration::from_millis(10));
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, b"HELLO CACHE").unwrap();
        assert!(cache.lookup(&d).await.is_none());
        assert!(!path.exists(), "corrupt blob evicted");
    }

    #[tokio::test]
    async fn blobs_written_by_others_are_hashed_once_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"from zarf");
        std::fs::write(cache.blob_path(&d.digest), b"from zarf").unwrap();
        assert!(cache.lookup(&d).await.is_some());
        assert!(
            dir.path()
                .join("ferry/verified")
                .join(d.digest.hex())
                .exists()
        );
        assert_eq!(
            std::fs::read(dir.path().join("images/oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
    }

    #[tokio::test]
    async fn partials_are_counted_and_cleaned_and_planted_links_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"a blob being downloaded");
        let mut w = cache.partial(&d).await.unwrap().unwrap();
        w.write(Bytes::from_static(b"a blob")).await.unwrap();
        let mut h = Hasher::new();
        h.update(b"a blob");
        w.checkpoint(&h).await.unwrap();
        drop(w);
        let u = cache.usage().unwrap();
        assert_eq!((u.blobs, u.partials), (0, 2), "{u:?}");
        assert!(u.partial_bytes >= 6, "{u:?}");
        // A directory symlinked in under a digest name is not a blob: verify goes on.
        let planted = dir.path().join("planted");
        std::fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&planted, cache.blob_path(&desc(b"x").digest)).unwrap();
        cache
            .put_bytes(&d, Bytes::from_static(b"a blob being downloaded"))
            .await
            .unwrap();
        let report = cache.verify(&|_| {}).unwrap();
        assert_eq!(report.checked, 1);
        drop(cache);
        let cache =
            BlobCache::open_exclusive(dir.path(), std::time::Duration::from_secs(5), &|| {})
                .unwrap();
        let r = cache.clean().unwrap();
        assert_eq!((r.blobs, r.temp_files), (1, 2), "{r:?}");
        assert_eq!(cache.usage().unwrap().partials, 0);
    }

    /// A partial keeps exactly the bytes its saved state vouches for; a fresh one starts empty, and a
    /// blob that arrived between checkpoints leaves no state file behind.
    #[tokio::test]
    async fn partials_resume_what_their_state_vouches_for() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"a blob, then more");
        let ingest = dir.path().join("images/ingest");
        let (file, state) = (
            ingest.join(format!("{}.partial", d.digest.hex())),
            ingest.join(format!("{}.partial.state", d.digest.hex())),
        );
        let mut w = cache.partial(&d).await.unwrap().unwrap();
        assert!(w.resume_state().is_empty());
        let mut h = Hasher::new();
        h.update(b"a blob");
        w.write(Bytes::from_static(b"a blob")).await.unwrap();
        w.write(Bytes::from_static(b", the")).await.unwrap();
        // The state says 6 bytes; 11 reached the file.
        w.checkpoint(&h).await.unwrap();
        drop(w);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 11);
        let mut w = cache.partial(&d).await.unwrap().unwrap();
        assert_eq!(w.resume_state().len(), 6);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"a blob",
            "unvouched bytes dropped"
        );
        w.write(Bytes::from_static(b", then more")).await.unwrap();
        Box::new(w).commit().await.unwrap();
        assert!(!state.exists() && !file.exists());
        assert_eq!(
            std::fs::read(cache.blob_path(&d.digest)).unwrap(),
            b"a blob, then more"
        );

        // No checkpoint, no state file: nothing to remove, nothing left.
        let d2 = desc(b"fast");
        let mut w = cache.partial(&d2).await.unwrap().unwrap();
        w.write(Bytes::from_static(b"fast")).await.unwrap();
        Box::new(w).commit().await.unwrap();
        assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);
        assert!(cache.lookup(&d2).await.is_some());
    }

    /// The quick lookup answers from metadata; what it cannot vouch for goes to the full one, and a use is
    /// recorded on the stamp only when the last recorded one is old.
    #[tokio::test]
    async fn quick_lookups_trust_stamps_and_record_old_uses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"looked up often");
        assert!(matches!(cache.lookup_quick(&d), Quick::Missing));
        cache
            .put_bytes(&d, Bytes::from_static(b"looked up often"))
            .await
            .unwrap();
        let stamp = dir.path().join("ferry/verified").join(d.digest.hex());
        assert!(
            matches!(cache.lookup_quick(&d), Quick::Trusted { touch: None, .. }),
            "a stamp written just now is not touched"
        );
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let set_stamp_mtime = |t| {
            std::fs::File::options()
                .write(true)
                .open(&stamp)
                .unwrap()
                .set_modified(t)
                .unwrap()
        };
        set_stamp_mtime(two_hours_ago);
        assert!(matches!(
            cache.lookup_quick(&d),
            Quick::Trusted { touch: Some(_), .. }
        ));
        assert!(cache.lookup(&d).await.is_some());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::fs::metadata(&stamp)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .is_ok_and(|a| a < std::time::Duration::from_secs(3600))
        {
            assert!(std::time::Instant::now() < deadline, "use never recorded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        // A writable blob, or one without a stamp, is for the full lookup: fixed, or hashed.
        let path = cache.blob_path(&d.digest);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(cache.lookup_quick(&d), Quick::Check));
        assert!(cache.lookup(&d).await.is_some());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
        std::fs::remove_file(&stamp).unwrap();
        assert!(matches!(cache.lookup_quick(&d), Quick::Check));
        assert!(cache.lookup(&d).await.is_some(), "hashed, right, stamped");
        assert!(matches!(cache.lookup_quick(&d), Quick::Trusted { .. }));
    }

    /// After a reboot (the stamp names another boot id) a blob that was never synced is hashed before it
    /// is used again: kept, and stamped for the running boot, when its bytes are right.
    #[tokio::test]
    async fn a_blob_stamped_before_a_reboot_is_hashed_and_kept_when_right() {
        if boot_id().is_none() {
            eprintln!("no boot id on this system; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"survived the reboot");
        cache
            .put_bytes(&d, Bytes::from_static(b"survived the reboot"))
            .await
            .unwrap();
        let path = cache.blob_path(&d.digest);
        let stamp = dir.path().join("ferry/verified").join(d.digest.hex());
        let meta = std::fs::metadata(&path).unwrap();
        let other_boot = format!(
            "{} boot 00000000-0000-0000-0000-000000000000",
            stamp_of(&meta)
        );
        std::fs::write(&stamp, &other_boot).unwrap();
        assert!(matches!(cache.lookup_quick(&d), Quick::Check));
        assert!(cache.lookup(&d).await.is_some());
        assert_eq!(
            std::fs::read_to_string(&stamp).ok(),
            volatile_stamp_of(&meta),
            "re-hashed, stamped for this boot"
        );
    }

    /// Replace `path`'s bytes with `bytes` (same length) keeping its size, mtime and inode: a change the
    /// stamp cannot see, as a torn write found after a crash would be.
    fn swap_bytes_keeping_metadata(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = std::fs::File::options().write(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
        f.set_modified(mtime).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }

    /// A blob is trusted at once for this boot, for good once a later use finds it old enough and syncs it;
    /// a stamp from another boot (a crash before the sync) is not trusted: the blob is hashed, and evicted
    /// when it turns out wrong.
    #[tokio::test]
    async fn unsynced_blobs_are_trusted_for_this_boot_only() {
        if boot_id().is_none() {
            eprintln!("no boot id on this system; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let d = desc(b"written, not yet synced");
        let stamp = dir.path().join("ferry/verified").join(d.digest.hex());
        cache
            .put_bytes(&d, Bytes::from_static(b"written, not yet synced"))
            .await
            .unwrap();
        let path = cache.blob_path(&d.digest);
        let meta = std::fs::metadata(&path).unwrap();
        // Stamped at commit for this boot; no sync yet.
        assert_eq!(
            std::fs::read_to_string(&stamp).ok(),
            volatile_stamp_of(&meta)
        );
        assert!(cache.lookup(&d).await.is_some());
        assert_eq!(
            std::fs::read_to_string(&stamp).ok(),
            volatile_stamp_of(&meta),
            "a young blob is not synced by a use"
        );

        // An older one is: the use hands it to the sync thread, which makes the stamp lasting.
        let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path))
            .unwrap()
            .set_modified(two_minutes_ago)
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        std::fs::write(&stamp, volatile_stamp_of(&meta).unwrap()).unwrap();
        assert!(cache.lookup(&d).await.is_some());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_to_string(&stamp).unwrap() != stamp_of(&meta) {
            assert!(
                std::time::Instant::now() < deadline,
                "stamp never became lasting"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        // This boot's stamp is trusted without hashing: bytes swapped under it go unnoticed...
        std::fs::write(&stamp, volatile_stamp_of(&meta).unwrap()).unwrap();
        swap_bytes_keeping_metadata(&path, b"WRITTEN, NOT YET SYNCED");
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            meta.modified().unwrap()
        );
        assert!(cache.lookup(&d).await.is_some(), "trusted within the boot");
        // ...but a stamp from a boot that is over is not: the blob is hashed and evicted.
        let other_boot = format!(
            "{} boot 00000000-0000-0000-0000-000000000000",
            stamp_of(&meta)
        );
        std::fs::write(&stamp, other_boot).unwrap();
        assert!(cache.lookup(&d).await.is_none(), "hashed and found wrong");
        assert!(!path.exists(), "evicted");
    }
}
