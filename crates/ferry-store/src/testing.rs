//! Stores for tests without a registry (feature `test-support`): an in-memory target that counts what is
//! asked of it, and faults injected per digest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};

use crate::{
    BlobWriter, BoxFuture, ByteSource, ReadStore, Referrer, Resolver, Result, Store, StoreError,
    Tagger, WriteStore,
};

type Shared<T> = std::sync::Arc<Mutex<T>>;

/// A fault to inject when a digest is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next `n` fetches fail with a transient error before sending anything.
    Transient(u32),
    /// Every fetch fails with a permanent error.
    Fatal,
    /// Bodies end after this many bytes the first time (a cut connection); ranged fetches are whole.
    CutAfter(u64),
    /// Bodies are the right length but one byte is flipped.
    Corrupt,
    /// Range requests are ignored: the body always starts at byte 0.
    IgnoreRange,
    /// Fetches that start at this offset fail permanently (a process killed while fetching that part).
    FailAt(u64),
}

/// An in-memory store: content by digest, names, referrers. Counts fetches per digest and the most
/// fetches in flight at once.
#[derive(Default)]
pub struct MemoryStore {
    name: String,
    content: Shared<HashMap<Digest, Bytes>>,
    tags: Mutex<BTreeMap<String, Descriptor>>,
    referrers: Mutex<HashMap<Digest, Vec<Referrer>>>,
    faults: Mutex<HashMap<Digest, Fault>>,
    fetches: Mutex<HashMap<Digest, u32>>,
    /// Blob ranges asked for: (digest, offset).
    ranges: Mutex<Vec<(Digest, u64)>>,
    in_flight: std::sync::Arc<AtomicUsize>,
    max_in_flight: AtomicUsize,
    /// Order in which content arrived (writes committed, manifests put).
    arrivals: Shared<Vec<Digest>>,
    /// Simulated time a fetch takes, so concurrency shows.
    delay_ms: u64,
}

impl MemoryStore {
    /// An empty store whose [`Store::describe`] is `name`.
    pub fn new(name: &str) -> MemoryStore {
        MemoryStore {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Every fetch takes `ms` milliseconds (so overlapping fetches can be observed).
    pub fn with_delay(mut self, ms: u64) -> MemoryStore {
        self.delay_ms = ms;
        self
    }

    /// Add content; returns its descriptor with `media_type`.
    pub fn add(&self, media_type: &str, bytes: impl Into<Bytes>) -> Descriptor {
        let bytes = bytes.into();
        let desc = Descriptor::of(media_type, &bytes);
        self.content
            .lock()
            .unwrap()
            .insert(desc.digest.clone(), bytes);
        desc
    }

    /// Point the name `name` at `desc` (what resolving `name` answers), as a [`Tagger`] would.
    pub fn set_tag(&self, name: &str, desc: &Descriptor) {
        self.tags.lock().unwrap().insert(name.into(), desc.clone());
    }

    /// What `name` points at, if anything.
    pub fn tagged(&self, name: &str) -> Option<Descriptor> {
        self.tags.lock().unwrap().get(name).cloned()
    }

    /// Every name, sorted.
    pub fn tag_names(&self) -> Vec<String> {
        self.tags.lock().unwrap().keys().cloned().collect()
    }

    /// List `referrer` among the referrers of `subject`.
    pub fn add_referrer(&self, subject: &Digest, referrer: Referrer) {
        self.referrers
            .lock()
            .unwrap()
            .entry(subject.clone())
            .or_default()
            .push(referrer);
    }

    /// Make fetches of `digest` fail as `fault` says (replacing any fault it had).
    pub fn inject(&self, digest: &Digest, fault: Fault) {
        self.faults.lock().unwrap().insert(digest.clone(), fault);
    }

    /// Remove every injected fault.
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// Whether content `digest` is held.
    pub fn has(&self, digest: &Digest) -> bool {
        self.content.lock().unwrap().contains_key(digest)
    }

    /// How many distinct contents (blobs and manifests) are held.
    pub fn len(&self) -> usize {
        self.content.lock().unwrap().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times `digest` was fetched (manifest or blob, every attempt).
    pub fn fetches(&self, digest: &Digest) -> u32 {
        self.fetches
            .lock()
            .unwrap()
            .get(digest)
            .copied()
            .unwrap_or(0)
    }

    /// The offsets `digest`'s body was asked from.
    pub fn ranges(&self, digest: &Digest) -> Vec<u64> {
        let ranges = self.ranges.lock().unwrap();
        ranges
            .iter()
            .filter(|(d, _)| d == digest)
            .map(|(_, o)| *o)
            .collect()
    }

    /// The most fetches that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Digests in the order they were stored here.
    pub fn arrivals(&self) -> Vec<Digest> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Count a fetch, apply the fault; the guard keeps it "in flight".
    async fn begin(&self, digest: &Digest) -> Result<(InFlight, Option<Fault>)> {
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_default() += 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(self.in_flight.clone());
        if self.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
        }
        let mut faults = self.faults.lock().unwrap();
        let fault = faults.get(digest).cloned();
        match fault {
            Some(Fault::Transient(n)) => {
                if n <= 1 {
                    faults.remove(digest);
                } else {
                    faults.insert(digest.clone(), Fault::Transient(n - 1));
                }
                Err(remote(
                    format!("{}: connection reset (injected)", digest),
                    true,
                ))
            }
            Some(Fault::Fatal) => Err(remote(format!("{digest}: refused (injected)"), false)),
            Some(Fault::CutAfter(_)) => {
                faults.remove(digest);
                Ok((guard, fault))
            }
            other => Ok((guard, other)),
        }
    }

    fn get(&self, desc: &Descriptor) -> Result<Bytes> {
        self.content
            .lock()
            .unwrap()
            .get(&desc.digest)
            .cloned()
            .ok_or_else(|| StoreError::not_found(self.describe(), desc.digest.to_string()))
    }
}

fn remote(message: String, transient: bool) -> StoreError {
    StoreError::remote(message, transient)
}

/// One fetch in flight (a body being read counts until it is dropped).
struct InFlight(std::sync::Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        format!("memory store {}", self.name)
    }
}

impl ReadStore for MemoryStore {
    fn holds(&self, digest: &Digest) -> Option<bool> {
        Some(self.has(digest))
    }

    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let (_guard, _) = self.begin(&desc.digest).await?;
            let bytes = self.get(desc)?;
            crate::transfer::verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(bytes)
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        self.fetch_range(desc, offset, u64::MAX)
    }

    fn fetch_range<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            let (guard, fault) = self.begin(&desc.digest).await?;
            self.ranges
                .lock()
                .unwrap()
                .push((desc.digest.clone(), offset));
            if let Some(Fault::FailAt(at)) = fault
                && offset == at
            {
                return Err(remote(format!("{}: killed (injected)", desc.digest), false));
            }
            let mut bytes = self.get(desc)?.to_vec();
            let mut from = offset.min(bytes.len() as u64);
            match fault {
                Some(Fault::Corrupt) if !bytes.is_empty() => bytes[0] ^= 0xff,
                Some(Fault::IgnoreRange) => from = 0,
                _ => {}
            }
            let mut body = bytes.split_off(from as usize);
            if from == offset {
                body.truncate(len.min(body.len() as u64) as usize);
            }
            if let Some(Fault::CutAfter(n)) = fault {
                body.truncate(n as usize);
            }
            // The body stays in flight while it is read, as a network body would.
            Ok((
                Box::new(Chunks::new(body, guard)) as Box<dyn ByteSource>,
                from,
            ))
        })
    }

    fn referrers<'a>(&'a self, subject: &'a Descriptor) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        Box::pin(async move {
            Ok(self
                .referrers
                .lock()
                .unwrap()
                .get(&subject.digest)
                .cloned()
                .unwrap_or_default())
        })
    }
}

impl Resolver for MemoryStore {
    fn resolve<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(Descriptor, Bytes)>> {
        Box::pin(async move {
            let desc = match reference.parse::<Digest>() {
                Ok(d) => self
                    .tags
                    .lock()
                    .unwrap()
                    .values()
                    .find(|t| t.digest == d)
                    .cloned(),
                Err(_) => self.tagged(reference),
            }
            .ok_or_else(|| {
                StoreError::not_found(self.describe(), format!("manifest {reference}"))
            })?;
            let bytes = self.fetch_manifest(&desc).await?;
            Ok((desc, bytes))
        })
    }
}

impl Tagger for MemoryStore {
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        _bytes: Bytes,
        name: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if !self.has(&desc.digest) {
                return Err(StoreError::not_found(
                    self.describe(),
                    format!("manifest {} to tag {name}", desc.digest),
                ));
            }
            self.set_tag(name, desc);
            Ok(())
        })
    }
}

impl WriteStore for MemoryStore {
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.has(&desc.digest)) })
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            Ok(Box::new(MemoryWriter {
                content: self.content.clone(),
                arrivals: self.arrivals.clone(),
                digest: desc.digest.clone(),
                data: Vec::new(),
            }) as Box<dyn BlobWriter>)
        })
    }

    fn put_manifest<'a>(&'a self, desc: &'a Descriptor, bytes: Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.commit(desc.digest.clone(), bytes);
            Ok(())
        })
    }
}

impl MemoryStore {
    fn commit(&self, digest: Digest, bytes: Bytes) {
        commit(&self.content, &self.arrivals, digest, bytes);
    }
}

fn commit(
    content: &Shared<HashMap<Digest, Bytes>>,
    arrivals: &Shared<Vec<Digest>>,
    digest: Digest,
    bytes: Bytes,
) {
    content.lock().unwrap().insert(digest.clone(), bytes);
    arrivals.lock().unwrap().push(digest);
}

/// Writes into a [`MemoryStore`]; nothing is visible before `commit`.
struct MemoryWriter {
    content: Shared<HashMap<Digest, Bytes>>,
    arrivals: Shared<Vec<Digest>>,
    digest: Digest,
    data: Vec<u8>,
}

impl BlobWriter for MemoryWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        self.data.extend_from_slice(&chunk);
        Box::pin(async { Ok(()) })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        commit(
            &self.content,
            &self.arrivals,
            self.digest,
            Bytes::from(self.data),
        );
        Box::pin(async { Ok(()) })
    }
}

/// A body in 1 KiB chunks.
struct Chunks {
    data: Bytes,
    _in_flight: InFlight,
}

impl Chunks {
    fn new(data: Vec<u8>, in_flight: InFlight) -> Chunks {
        Chunks {
            data: data.into(),
            _in_flight: in_flight,
        }
    }
}

impl ByteSource for Chunks {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let n = self.data.len().min(1024);
        let chunk = (n > 0).then(|| self.data.split_to(n));
        Box::pin(async move { Ok(chunk) })
    }
}
