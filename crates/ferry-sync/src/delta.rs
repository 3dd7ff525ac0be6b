//! Deltas: ship only what the far side lacks, and complete it there from what it already has.
//!
//! [`export_delta`] copies a layout through [`ferry_copy`] into an [`OciArchiveWriter`] made for a
//! [`DeltaBase`]: every manifest and index travels, a blob the base has counts as present and stays out, and
//! the archive's `index.json` names the base. On the far side [`check_complete`] runs the same engine
//! against a destination that writes nothing, before anything is copied: each blob must be in the source
//! (the delta, or the delta over a base, [`WithBase`]) or already at the destination (a registry answers a
//! `HEAD` with the right size), else the first one missing is an error naming it and its image, and the
//! caller tags nothing. Blobs read from a base are hashed as every blob is ([`ferry_store::transfer`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_archive::{ArchiveError, DeltaBase, OciArchive, OciArchiveWriter, WriteSummary};
use ferry_copy::{
    Budget, CopyFailed, CopyHooks, CopyOptions, CopyStats, copy_graph, manifest_successors,
};
use ferry_oci::{Descriptor, Digest, media_type};
use ferry_store::{
    BoxFuture, ByteSource, OciLayout, ReadStore, ReadTarget, Referrer, Resolver, Store, StoreError,
    WriteTarget,
};
use serde::Serialize;

use crate::dryrun::{DryRun, Probe, writes_nothing};
use crate::lock::LockFile;

/// Why a delta could not be written or completed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// BASE is neither a layout, an archive of one, nor a sync lock file.
    #[error(
        "{path}: not a delta base (an OCI layout directory, an oci-archive or a sync lock file)"
    )]
    NotABase {
        /// The path given.
        path: PathBuf,
    },
    /// The base could not be read.
    #[error("reading the delta base {path}")]
    Base {
        /// The base.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A blob an image needs is in neither the source nor the destination.
    #[error(
        "blob {digest} of {image} (manifest {manifest}) is neither in {source_store} nor at {dest}; \
         nothing was tagged"
    )]
    Missing {
        /// The blob.
        digest: Digest,
        /// The image (its name at the destination, or its source name).
        image: String,
        /// The manifest that lists the blob.
        manifest: Digest,
        /// Where it was looked for first.
        source_store: String,
        /// Where it was looked for then.
        dest: String,
    },
    /// Copying (or walking) a graph failed.
    #[error(transparent)]
    Copy(Box<CopyFailed>),
    /// Reading or writing an archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CopyFailed> for DeltaError {
    fn from(e: CopyFailed) -> Self {
        DeltaError::Copy(Box::new(e))
    }
}

impl DeltaError {
    fn base(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        DeltaError::Base {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// What the far side has, read from BASE: a layout directory (the graphs its `index.json` reaches), an
/// oci-archive (`.tar`, `.tar.gz`, `.tar.zst`; the graphs of its images, a delta's included), or a sync
/// lock file (every digest it lists).
pub async fn open_base(path: &Path) -> Result<DeltaBase, DeltaError> {
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let digests = if path.is_dir() {
        let layout = OciLayout::open(path).map_err(|e| DeltaError::base(path, e))?;
        let reachable = tokio::task::spawn_blocking(move || layout.reachable())
            .await
            .expect("layout walk panicked")
            .map_err(|e| DeltaError::base(path, e))?;
        reachable.digests.into_iter().collect()
    } else if looks_like_json(path)? {
        let lock = match LockFile::load(path) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Err(DeltaError::NotABase { path: path.into() }),
            Err(e) => return Err(DeltaError::base(path, e)),
        };
        let mut out = HashSet::new();
        for d in lock.all_digests() {
            out.insert(d.parse::<Digest>().map_err(|e| DeltaError::base(path, e))?);
        }
        out
    } else {
        let archive = open_archive(path).await?;
        let entries = archive.entries().to_vec();
        let source: Arc<dyn ReadStore> = Arc::new(archive);
        graph_digests(&source, &entries).await?
    };
    Ok(DeltaBase { label, digests })
}

/// Open an oci-archive off the async threads (a compressed one is decompressed once).
async fn open_archive(path: &Path) -> Result<OciArchive, DeltaError> {
    let file = path.to_path_buf();
    tokio::task::spawn_blocking(move || OciArchive::open(&file))
        .await
        .expect("archive open panicked")
        .map_err(|e| DeltaError::base(path, e))
}

/// A lock file is JSON; an archive starts with a tar header or a compression magic.
fn looks_like_json(path: &Path) -> Result<bool, DeltaError> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).map_err(|e| DeltaError::base(path, e))?;
    let n = f.read(&mut head).map_err(|e| DeltaError::base(path, e))?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{'))
}

/// Every digest of the graphs under `roots` in `source`, found by the engine's own walk into a
/// destination that has everything (no blob is read).
async fn graph_digests(
    source: &Arc<dyn ReadStore>,
    roots: &[Descriptor],
) -> Result<HashSet<Digest>, DeltaError> {
    let recorder = Arc::new(DryRun(Recorder::default()));
    let dest: Arc<dyn WriteTarget> = recorder.clone();
    let opts = CopyOptions::default();
    for root in roots {
        copy_graph(source, &dest, root, &HashMap::new(), &opts).await?;
    }
    let seen = recorder.seen.lock().expect("recorder lock").clone();
    Ok(seen)
}

/// A destination that has every node, and notes each one asked about.
#[derive(Default)]
struct Recorder {
    seen: Mutex<HashSet<Digest>>,
}

impl Probe for Recorder {
    fn describe(&self) -> String {
        "the delta base's graph".to_string()
    }

    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.seen
            .lock()
            .expect("recorder lock")
            .insert(desc.digest.clone());
        Box::pin(async { Ok(true) })
    }

    fn would_write(&self, desc: &Descriptor) -> Result<bool, StoreError> {
        Err(writes_nothing(&self.describe(), desc))
    }
}

/// What [`export_delta`] wrote.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaExport {
    /// The archive.
    #[serde(skip)]
    pub summary: WriteSummary,
    /// The base, as recorded in the archive.
    pub base: String,
    /// Blobs left out because the base has them.
    pub omitted: u64,
    /// Their bytes.
    pub omitted_bytes: u64,
    /// What the copy into the archive did.
    pub stats: CopyStats,
}

/// Counts the blobs a delta leaves out: the engine skips exactly those (the writer says it has them).
#[derive(Default)]
struct Omitted {
    counts: Mutex<(u64, u64)>,
}

impl CopyHooks for Omitted {
    fn on_skipped<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        if !media_type::is_manifest_like(&desc.media_type) {
            let mut c = self.counts.lock().expect("omitted lock");
            c.0 += 1;
            c.1 += desc.size;
        }
        Box::pin(async { Ok(()) })
    }
}

/// Export the layout at `layout_dir` to `out` as a delta on `base`: every image of its `index.json`
/// (names and annotations as written there) through the copy engine into a delta archive writer, which
/// keeps every manifest and index and leaves out the blobs the base has. The archive is deterministic and
/// whole or absent.
pub async fn export_delta(
    layout_dir: &Path,
    out: &Path,
    base: DeltaBase,
    concurrency: usize,
) -> Result<DeltaExport, DeltaError> {
    let layout = OciLayout::open(layout_dir)?;
    let entries = layout.entries()?;
    let label = base.label.clone();
    let writer = Arc::new(OciArchiveWriter::create_delta(out, base)?);
    let source: Arc<dyn ReadStore> = Arc::new(layout);
    let dest: Arc<dyn WriteTarget> = writer.clone();
    let omitted = Arc::new(Omitted::default());
    let opts = CopyOptions {
        budget: Budget::new(concurrency),
        hooks: omitted.clone(),
        ..CopyOptions::default()
    };
    let mut stats = CopyStats::default();
    for entry in &entries {
        stats.merge(&copy_graph(&source, &dest, entry, &HashMap::new(), &opts).await?);
    }
    drop(dest);
    let writer = Arc::into_inner(writer).expect("the copy holds no writer once done");
    writer.layout().update_index(|e| *e = entries)?;
    let summary = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("archive write panicked")?;
    let (omitted, omitted_bytes) = *omitted.counts.lock().expect("omitted lock");
    Ok(DeltaExport {
        summary,
        base: label,
        omitted,
        omitted_bytes,
        stats,
    })
}

/// What [`export`] wrote, as `ferry export --json` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    /// The archive file.
    pub archive: std::path::PathBuf,
    /// `none`, `gzip` or `zstd` (by the file's name).
    pub compression: String,
    /// Blobs in the archive.
    pub blobs: usize,
    /// Their bytes (before compression).
    pub blob_bytes: u64,
    /// The archive's size.
    pub archive_bytes: u64,
    /// Blobs left out because the base has them.
    pub omitted_blobs: usize,
    /// For a delta: its base and what was left out.
    pub delta: Option<DeltaExport>,
}

/// `ferry export`: the layout at `layout` (or a Zarf package directory's `images/`) as one deterministic
/// archive at `out`, compressed by its name; with `since`, a delta on that base ([`open_base`],
/// [`export_delta`], `concurrency` node copies at once).
pub async fn export(
    layout: &Path,
    out: &Path,
    since: Option<&Path>,
    concurrency: usize,
) -> Result<Exported, DeltaError> {
    let dir = OciLayout::open_in(layout)?.root().to_path_buf();
    let (summary, delta) = match since {
        Some(base) => {
            let delta = export_delta(&dir, out, open_base(base).await?, concurrency).await?;
            (delta.summary.clone(), Some(delta))
        }
        None => {
            let out = out.to_path_buf();
            let written = tokio::task::spawn_blocking(move || OciArchive::write(&dir, &out));
            (written.await.expect("export task panicked")?, None)
        }
    };
    Ok(Exported {
        compression: format!("{:?}", summary.compression).to_lowercase(),
        archive: summary.path,
        blobs: summary.blobs,
        blob_bytes: summary.blob_bytes,
        archive_bytes: summary.archive_bytes,
        omitted_blobs: summary.omitted,
        delta,
    })
}

/// A delta (or any source missing blobs) read over a base that has them: names and manifests come from the
/// delta, a blob from the delta when it holds it and else from the base, hashed as it is read like every
/// blob (no hard link into the destination skips that).
pub struct WithBase {
    delta: Arc<dyn ReadTarget>,
    base: Arc<dyn ReadStore>,
}

impl WithBase {
    /// `delta` completed from `base`.
    pub fn new(delta: Arc<dyn ReadTarget>, base: Arc<dyn ReadStore>) -> WithBase {
        WithBase { delta, base }
    }

    fn blob_source(&self, desc: &Descriptor) -> &dyn ReadStore {
        match self.delta.holds(&desc.digest) {
            Some(false) => self.base.as_ref(),
            _ => self.delta.as_ref(),
        }
    }
}

/// A base to complete a delta from: a layout directory or an oci-archive.
pub async fn open_base_store(path: &Path) -> Result<Arc<dyn ReadStore>, DeltaError> {
    if path.is_dir() {
        let layout = OciLayout::open(path).map_err(|e| DeltaError::base(path, e))?;
        return Ok(Arc::new(layout));
    }
    Ok(Arc::new(open_archive(path).await?))
}

impl Store for WithBase {
    fn describe(&self) -> String {
        format!("{} (base {})", self.delta.describe(), self.base.describe())
    }
}

impl Resolver for WithBase {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(Descriptor, Bytes), StoreError>> {
        self.delta.resolve(reference)
    }
}

impl ReadStore for WithBase {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        self.blob_source(desc).fetch_manifest(desc)
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64), StoreError>> {
        self.blob_source(desc).fetch_blob(desc, offset)
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<Referrer>, StoreError>> {
        self.delta.referrers(subject)
    }

    fn holds(&self, digest: &Digest) -> Option<bool> {
        match (self.delta.holds(digest), self.base.holds(digest)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }
    }
}

/// One image to check before a copy: its graph under `root` in `source`, going to `dest`.
pub struct CheckImage {
    /// The image, for messages (its destination name).
    pub label: String,
    /// Where its content comes from.
    pub source: Arc<dyn ReadStore>,
    /// The node that will be copied and named.
    pub root: Descriptor,
    /// Where it goes.
    pub dest: Arc<dyn WriteTarget>,
}

/// What [`check_complete`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Blobs the sources lack that the destinations already have.
    pub at_destination: u64,
    /// Their bytes.
    pub at_destination_bytes: u64,
}

/// Before anything is copied: every blob of every image is in its source or already at a destination (its
/// own, or another of `images`, from which a registry mounts it). A destination is asked only about blobs
/// its source says it lacks ([`ReadStore::holds`]); a registry answers by `HEAD`, counted present only with
/// the descriptor's size. The first blob found in neither is [`DeltaError::Missing`], naming it, its image
/// and its manifest; nothing is written in any case.
pub async fn check_complete(
    images: &[CheckImage],
    concurrency: usize,
) -> Result<Completion, DeltaError> {
    let (found, problems) = check_each(images, concurrency).await;
    match problems.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// [`check_complete`] for each image on its own: what each lacks (`None`: complete), in the order given, so a
/// caller that goes on past failures (`--keep-going`) copies only the complete ones.
pub async fn check_each(
    images: &[CheckImage],
    concurrency: usize,
) -> (Completion, Vec<Option<DeltaError>>) {
    let dests: Vec<Arc<dyn WriteTarget>> = images.iter().map(|i| i.dest.clone()).collect();
    let counts = Arc::new(Mutex::new(Completion::default()));
    let budget = Budget::new(concurrency);
    let mut problems = Vec::new();
    for image in images {
        problems.push(check_one(image, &dests, &budget, &counts).await.err());
    }
    let found = counts.lock().expect("counts lock").clone();
    (found, problems)
}

async fn check_one(
    image: &CheckImage,
    dests: &[Arc<dyn WriteTarget>],
    budget: &Budget,
    counts: &Arc<Mutex<Completion>>,
) -> Result<(), DeltaError> {
    {
        let check = Arc::new(DryRun(CheckTarget {
            source: image.source.clone(),
            dest: image.dest.clone(),
            others: dests.to_vec(),
            missing: Mutex::new(None),
            counts: counts.clone(),
        }));
        let parents = Arc::new(Parents::default());
        let opts = CopyOptions {
            budget: budget.clone(),
            attempts: 1,
            hooks: parents.clone(),
            ..CopyOptions::default()
        };
        let dest: Arc<dyn WriteTarget> = check.clone();
        let walked = copy_graph(&image.source, &dest, &image.root, &HashMap::new(), &opts).await;
        if let Some(digest) = check.missing.lock().expect("check lock").take() {
            let manifest = parents
                .of
                .lock()
                .expect("parents lock")
                .get(&digest)
                .cloned()
                .unwrap_or_else(|| image.root.digest.clone());
            return Err(DeltaError::Missing {
                digest,
                image: image.label.clone(),
                manifest,
                source_store: image.source.describe(),
                dest: image.dest.describe(),
            });
        }
        walked?;
    }
    Ok(())
}

/// Remembers, for each node, the manifest that listed it.
#[derive(Default)]
struct Parents {
    of: Mutex<HashMap<Digest, Digest>>,
}

impl CopyHooks for Parents {
    fn successors<'a>(
        &'a self,
        source: &'a dyn ReadStore,
        desc: &'a Descriptor,
        bytes: &'a Bytes,
    ) -> BoxFuture<'a, Result<Vec<Descriptor>, StoreError>> {
        Box::pin(async move {
            let children = manifest_successors(source, desc, bytes)?;
            let mut of = self.of.lock().expect("parents lock");
            for c in &children {
                of.entry(c.digest.clone())
                    .or_insert_with(|| desc.digest.clone());
            }
            Ok(children)
        })
    }
}

/// A destination for the check: has a blob when the source holds it (it will be copied) or the real
/// destination has it; a manifest is "written" by doing nothing.
struct CheckTarget {
    source: Arc<dyn ReadStore>,
    dest: Arc<dyn WriteTarget>,
    others: Vec<Arc<dyn WriteTarget>>,
    missing: Mutex<Option<Digest>>,
    counts: Arc<Mutex<Completion>>,
}

impl CheckTarget {
    async fn present(&self, desc: &Descriptor) -> Result<bool, StoreError> {
        if self.dest.exists(desc).await? {
            return Ok(true);
        }
        for other in &self.others {
            if !Arc::ptr_eq(other, &self.dest) && other.exists(desc).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Probe for CheckTarget {
    fn describe(&self) -> String {
        format!("{} (completeness check)", self.dest.describe())
    }

    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if media_type::is_manifest_like(&desc.media_type) {
                return Ok(false);
            }
            // Unknown counts as held: the copy itself then fails on it, before naming anything.
            if self.source.holds(&desc.digest) != Some(false) {
                return Ok(true);
            }
            if self.present(desc).await? {
                let mut c = self.counts.lock().expect("counts lock");
                c.at_destination += 1;
                c.at_destination_bytes += desc.size;
                return Ok(true);
            }
            self.missing
                .lock()
                .expect("check lock")
                .get_or_insert_with(|| desc.digest.clone());
            Err(StoreError::NotFound {
                store: self.dest.describe(),
                what: format!("blob {}", desc.digest),
            })
        })
    }

    /// A manifest is "written" by doing nothing; a blob is never written (the check never says it lacks one).
    fn would_write(&self, _desc: &Descriptor) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::media_type::{OCI_CONFIG, OCI_MANIFEST};
    use ferry_store::testing::{Fault, MemoryStore};

    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

    /// A manifest in `store` over a config and layers that may or may not be in it.
    fn manifest(store: &MemoryStore, config: &Descriptor, layers: &[Descriptor]) -> Descriptor {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
        });
        store.add(OCI_MANIFEST, serde_json::to_vec(&m).unwrap())
    }

    /// A delta: the manifest and config are in it, the layer (the base's) is not.
    fn delta() -> (Arc<MemoryStore>, Descriptor, Descriptor) {
        let delta = Arc::new(MemoryStore::new("delta"));
        let config = delta.add(OCI_CONFIG, &b"{\"os\":\"linux\"}"[..]);
        let layer = Descriptor::of(LAYER, &Bytes::from_static(b"base layer"));
        let root = manifest(&delta, &config, std::slice::from_ref(&layer));
        (delta, root, layer)
    }

    fn check(source: Arc<dyn ReadStore>, root: &Descriptor, dest: Arc<MemoryStore>) -> CheckImage {
        CheckImage {
            label: "app:2".into(),
            source,
            root: root.clone(),
            dest,
        }
    }

    #[tokio::test]
    async fn a_blob_in_neither_the_source_nor_a_destination_is_named_with_its_manifest() {
        let (delta, root, layer) = delta();
        let empty = Arc::new(MemoryStore::new("far"));
        let err = check_complete(&[check(delta.clone(), &root, empty.clone())], 4)
            .await
            .unwrap_err();
        match &err {
            DeltaError::Missing {
                digest,
                image,
                manifest,
                ..
            } => {
                assert_eq!(
                    (digest, image.as_str(), manifest),
                    (&layer.digest, "app:2", &root.digest)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(empty.is_empty(), "a check writes nothing");

        // The layer in another destination of the same run (where a registry mounts it from) will do, and
        // so will the image's own destination; only blobs the source lacks are asked about.
        let other = Arc::new(MemoryStore::new("other"));
        other.add(LAYER, &b"base layer"[..]);
        let images = [
            check(delta.clone(), &root, empty.clone()),
            check(delta.clone(), &root, other.clone()),
        ];
        let found = check_complete(&images, 4).await.unwrap();
        assert_eq!(found.at_destination, 2);
        assert_eq!(found.at_destination_bytes, 2 * layer.size);
        assert_eq!(delta.fetches(&layer.digest), 0);

        // --keep-going: each image on its own.
        let lone = [check(delta.clone(), &root, Arc::new(MemoryStore::new("x")))];
        let (_, each) = check_each(&lone, 4).await;
        assert!(matches!(each[..], [Some(DeltaError::Missing { .. })]));
    }

    #[tokio::test]
    async fn a_delta_over_its_base_copies_whole_and_hashes_what_the_base_gives() {
        let (delta, root, layer) = delta();
        let base = Arc::new(MemoryStore::new("base"));
        base.add(LAYER, &b"base layer"[..]);
        let source: Arc<dyn ReadTarget> = delta.clone();
        let over = Arc::new(WithBase::new(source, base.clone()));
        let out = Arc::new(MemoryStore::new("out"));
        check_complete(&[check(over.clone(), &root, out.clone())], 4)
            .await
            .unwrap();
        let src: Arc<dyn ReadStore> = over.clone();
        let dst: Arc<dyn WriteTarget> = out.clone();
        copy_graph(&src, &dst, &root, &HashMap::new(), &CopyOptions::default())
            .await
            .unwrap();
        assert!(out.has(&layer.digest) && out.has(&root.digest));
        assert_eq!(base.fetches(&layer.digest), 1);

        // A base whose bytes are wrong fails the copy: what it gives is verified like any blob.
        base.inject(&layer.digest, Fault::Corrupt);
        let fresh = Arc::new(MemoryStore::new("fresh"));
        let dst: Arc<dyn WriteTarget> = fresh.clone();
        let opts = CopyOptions {
            attempts: 1,
            ..CopyOptions::default()
        };
        let err = copy_graph(&src, &dst, &root, &HashMap::new(), &opts)
            .await
            .unwrap_err();
        assert!(
            crate::chain(&err).contains(&layer.digest.to_string()),
            "{}",
            crate::chain(&err)
        );
        assert!(!fresh.has(&layer.digest) && !fresh.has(&root.digest));
    }
}
