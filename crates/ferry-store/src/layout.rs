//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), written the way Zarf
//! writes a package's `images/` directory, and read whichever era of Zarf (or Docker, or skopeo) wrote it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, gojson, media_type};
use serde::{Deserialize, Serialize};

use crate::file::{AtomicFileWriter, FileSource, link_atomic, write_atomic};
use crate::transfer::verify_bytes;
use crate::{
    BlobWriter, BoxFuture, ByteSource, ReadStore, Referrer, Result, Store, StoreError, WriteStore,
};

/// Compact, no trailing newline: the bytes Zarf and oras-go write.
pub const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`) as a store: read by digest,
/// resolved by image name, written blob by blob with atomic commits. This is the `images/` directory of a
/// Zarf package. Cloning shares the verified-blob memory and the writer's lock.
#[derive(Clone, Debug)]
pub struct OciLayout {
    root: PathBuf,
    /// Blobs this process has verified (or written), with the metadata they had then: an existing blob
    /// is hashed once, and trusted after that only while its size, mtime and inode stay the same.
    verified: Arc<Mutex<HashMap<Digest, String>>>,
    /// A layout opened for writing holds a shared lock on its directory for as long as any clone lives, so
    /// [`OciLayout::gc`] (which takes it exclusively) never runs while a pull's blobs are not yet recorded.
    _writer: Option<Arc<std::fs::File>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    /// The index's own annotations (a delta archive records its base here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl OciLayout {
    /// Open an existing layout for writing, or create an empty one (directory, `oci-layout`,
    /// `index.json`). Waits while [`OciLayout::gc`] runs on it, and keeps gc out until dropped.
    pub fn open_or_create(root: &Path) -> Result<OciLayout> {
        std::fs::create_dir_all(root.join("blobs").join("sha256"))
            .map_err(|e| StoreError::io(root, e))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, OCI_LAYOUT_BYTES)?;
        }
        let dir = std::fs::File::open(root).map_err(|e| StoreError::io(root, e))?;
        dir.lock_shared().map_err(|e| StoreError::io(root, e))?;
        let mut layout = OciLayout::open(root)?;
        layout._writer = Some(Arc::new(dir));
        if !root.join("index.json").exists() {
            layout.update_index(|_| {})?;
        }
        Ok(layout)
    }

    /// Open an existing layout; errors name the path and what is wrong with it.
    pub fn open(root: &Path) -> Result<OciLayout> {
        let marker = root.join("oci-layout");
        let bytes = std::fs::read(&marker).map_err(|e| StoreError::InvalidLayout {
            path: root.to_path_buf(),
            why: format!("not an OCI image layout (cannot read oci-layout: {e})"),
        })?;
        check_layout_marker(&bytes)
            .map_err(|why| StoreError::InvalidLayout { path: marker, why })?;
        Ok(OciLayout {
            root: root.to_path_buf(),
            verified: Arc::default(),
            _writer: None,
        })
    }

    /// The layout at `dir`, or the `images/` layout of a directory holding one (a Zarf package's). A
    /// directory with neither is [`StoreError::InvalidLayout`] saying so.
    pub fn open_in(dir: &Path) -> Result<OciLayout> {
        let images = dir.join("images");
        if !dir.join("oci-layout").exists() && images.join("oci-layout").exists() {
            return OciLayout::open(&images);
        }
        if !dir.join("oci-layout").exists() {
            return Err(StoreError::InvalidLayout {
                path: dir.to_path_buf(),
                why: "neither an OCI layout (no oci-layout file) nor a Zarf package directory (no images/oci-layout)".into(),
            });
        }
        OciLayout::open(dir)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives, whether or not it is there (`<root>/blobs/sha256/<hex>`).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// The entries of `index.json` as written (an absent file is an empty index).
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => parse_index(&path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Read-modify-write `index.json` under an exclusive lock on `oci-layout` (a file that is never
    /// replaced, so every process locks the same inode), then write it atomically, sorted and Go-encoded.
    pub fn update_index(&self, change: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let marker = self.root.join("oci-layout");
        let lock = std::fs::File::open(&marker).map_err(|e| StoreError::io(&marker, e))?;
        lock.lock().map_err(|e| StoreError::io(&marker, e))?;
        let mut entries = self.entries()?;
        change(&mut entries);
        sort_entries(&mut entries);
        let bytes = index_bytes(&entries);
        let result = write_atomic(&self.root.join("index.json"), &bytes);
        let _ = lock.unlock();
        result
    }

    /// Hold the lock [`OciLayout::update_index`] takes until the guard is dropped: `index.json` cannot change
    /// meanwhile. Blocks while another process holds it. Calling `update_index` while holding it deadlocks.
    pub fn lock_index(&self) -> Result<IndexLock> {
        let marker = self.root.join("oci-layout");
        let file = std::fs::File::open(&marker).map_err(|e| StoreError::io(&marker, e))?;
        file.lock().map_err(|e| StoreError::io(&marker, e))?;
        Ok(IndexLock { _file: file })
    }

    /// Every digest the entries of `index.json` reach: the entries, and below manifests and indexes their
    /// manifests, configs, layers (foreign ones too, when present) and subjects. A missing or unreadable
    /// manifest named by an entry is an error (what it references is unknown); a missing nested one is
    /// listed in [`Reachable::missing`] (a Docker export holds one platform of its index).
    pub fn reachable(&self) -> Result<Reachable> {
        self.reachable_from(self.entries()?)
    }

    /// What [`OciLayout::reachable`] finds, starting from `entries` (an `index.json` already read).
    pub fn reachable_from(&self, entries: Vec<Descriptor>) -> Result<Reachable> {
        let mut out = Reachable::default();
        let mut stack: Vec<(Descriptor, bool)> = entries.into_iter().map(|d| (d, true)).collect();
        while let Some((desc, is_entry)) = stack.pop() {
            // A descriptor without a media type may still be a manifest: look inside rather than lose
            // what it references.
            let maybe_manifest =
                desc.media_type.is_empty() || media_type::is_manifest_like(&desc.media_type);
            if !out.digests.insert(desc.digest.clone()) || !maybe_manifest {
                continue;
            }
            if desc.size > ferry_oci::MAX_MANIFEST_BYTES {
                if desc.media_type.is_empty() {
                    continue;
                }
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let bytes = match self.read_blob_capped(&desc.digest, desc.size) {
                Ok(b) => b,
                Err(StoreError::NotFound { .. }) if !is_entry => {
                    out.missing.push(desc.digest.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            verify_bytes(&self.describe(), &desc, &bytes)?;
            let manifest = match ferry_oci::Manifest::parse(&desc.media_type, &bytes) {
                Ok(m) => m,
                Err(_) if desc.media_type.is_empty() => continue,
                Err(source) => {
                    return Err(StoreError::Manifest {
                        store: self.describe(),
                        digest: desc.digest.to_string(),
                        source,
                    });
                }
            };
            let children = manifest
                .manifests
                .into_iter()
                .chain(manifest.config)
                .chain(manifest.layers)
                .chain(manifest.subject);
            stack.extend(children.map(|d| (d, false)));
        }
        Ok(out)
    }

    /// The path of blob `digest`, checked before anything is read from it: it must exist, and resolve
    /// inside the layout (a symlink planted in `blobs/sha256/` could otherwise serve any file).
    pub fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        let path = self.blob_path(digest);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::not_found(
                    self.describe(),
                    format!("blob {digest}"),
                ));
            }
            Err(e) => return Err(StoreError::io(path, e)),
        };
        if meta.file_type().is_symlink() {
            let real = std::fs::canonicalize(&path).map_err(|e| StoreError::io(&path, e))?;
            let root =
                std::fs::canonicalize(&self.root).map_err(|e| StoreError::io(&self.root, e))?;
            if !real.starts_with(&root) {
                return Err(StoreError::InvalidLayout {
                    path,
                    why: format!(
                        "a symlink to {}, outside the layout; refusing to read it",
                        real.display()
                    ),
                });
            }
        }
        Ok(path)
    }

    /// A blob of at most `cap` bytes (a manifest or config), read whole; the caller verifies it.
    fn read_blob_capped(&self, digest: &Digest, cap: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let path = self.blob_file(digest)?;
        let file = std::fs::File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut bytes = Vec::new();
        file.take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(bytes)
    }

    /// Remove the blobs no entry of `index.json` reaches and that have not changed for `opts.min_age`.
    /// Runs alone: it waits (calling `on_wait` once) for every process writing to the layout to finish
    /// ([`OciLayout::open_or_create`] holds the lock it takes), and holds the index lock throughout, so
    /// no blob a pull has written but not yet recorded is removed. A manifest an entry names that is
    /// missing or unreadable stops it before anything is removed.
    pub fn gc(&self, opts: &GcOptions, on_wait: &dyn Fn()) -> Result<GcReport> {
        let dir = std::fs::File::open(&self.root).map_err(|e| StoreError::io(&self.root, e))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                dir.lock().map_err(|e| StoreError::io(&self.root, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&self.root, e)),
        }
        let _index = self.lock_index()?;
        let reachable = self.reachable()?;
        let now = SystemTime::now();
        let mut report = GcReport {
            layout: self.root.display().to_string(),
            dry_run: opts.dry_run,
            missing: reachable.missing.clone(),
            ..GcReport::default()
        };
        for (digest, path) in self.blobs()? {
            if reachable.digests.contains(&digest) {
                report.reachable += 1;
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(path, e)),
            };
            // ctime changes when a blob is written, renamed into place or hard-linked from the cache: a
            // second line of defence for writers that do not take the lock (other tools).
            if now.duration_since(changed_at(&meta)).unwrap_or_default() < opts.min_age {
                report.kept_recent += 1;
                report.kept_recent_bytes += meta.len();
                continue;
            }
            if !opts.dry_run {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
            report.removed.push(digest);
            report.removed_bytes += meta.len();
        }
        Ok(report)
    }

    /// Whether the blob at `path` is `desc`: trusted without reading when this process verified it and
    /// its metadata has not changed since, else hashed (and remembered when it matches).
    fn verify_existing(&self, desc: &Descriptor, path: &Path) -> Result<bool> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        if meta.len() != desc.size || !meta.is_file() {
            return Ok(false);
        }
        let stamp = crate::cache::stamp_of(&meta);
        if self.verified.lock().expect("stamps").get(&desc.digest) == Some(&stamp) {
            return Ok(true);
        }
        let actual = crate::cache::hash_file(path).map_err(|e| StoreError::io(path, e))?;
        if actual != desc.digest {
            tracing::warn!(path = %path.display(), %actual, "layout blob does not match its name {}; writing it again", desc.digest);
            return Ok(false);
        }
        self.remember(&desc.digest, path);
        Ok(true)
    }

    /// Whether this process verified the blob `digest` when it had the metadata `meta`.
    fn remembered(&self, digest: &Digest, meta: &std::fs::Metadata) -> bool {
        self.verified
            .lock()
            .expect("stamps")
            .get(digest)
            .is_some_and(|s| *s == crate::cache::stamp_of(meta))
    }

    /// Record that the blob at `path` was verified (written by this process, or hashed).
    fn remember(&self, digest: &Digest, path: &Path) {
        if let Ok(meta) = std::fs::metadata(path) {
            self.verified
                .lock()
                .expect("stamps")
                .insert(digest.clone(), crate::cache::stamp_of(&meta));
        }
    }

    /// The files under `blobs/sha256/` named by a digest, with their paths. Anything else there is not
    /// a blob and is left out.
    pub fn blobs(&self) -> Result<Vec<(Digest, PathBuf)>> {
        let dir = self.root.join("blobs").join("sha256");
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name();
            if let Some(digest) = name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
            {
                out.push((digest, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove the temp directory if this run left it empty (Zarf leaves an empty `ingest/`; ferry tidies).
    pub fn tidy(&self) {
        let _ = std::fs::remove_dir(self.ingest_dir());
    }

    /// Find entries named `name`: by `ref.name` or `base.name` as written, or by [`Descriptor::image_name`]
    /// after normalization, so `library/nginx:1.25` (Crane era) and `docker.io/library/nginx:1.25` match.
    pub fn find(&self, name: &str) -> Result<Vec<Descriptor>> {
        let wanted = name.parse::<ferry_oci::Reference>().ok();
        Ok(self
            .entries()?
            .into_iter()
            .filter(|d| is_named(d, name, wanted.as_ref()))
            .collect())
    }
}

/// Whether a layout entry is named `name` (`wanted`: `name` parsed): either naming annotation as written,
/// or the same reference once both are normalized.
pub(crate) fn is_named(d: &Descriptor, name: &str, wanted: Option<&ferry_oci::Reference>) -> bool {
    d.annotation(ANNOTATION_REF_NAME) == Some(name)
        || d.annotation(ANNOTATION_BASE_NAME) == Some(name)
        || (wanted.is_some() && d.image_name().and_then(|n| n.parse().ok()).as_ref() == wanted)
}

/// The exclusive lock on a layout's `index.json` ([`OciLayout::lock_index`]); released when dropped (closing
/// the file releases the `flock`).
pub struct IndexLock {
    _file: std::fs::File,
}

/// What the entries of a layout reach ([`OciLayout::reachable`]).
#[derive(Debug, Default)]
pub struct Reachable {
    /// Every digest reached: the entries, their children, theirs, down to the layers.
    pub digests: std::collections::HashSet<Digest>,
    /// Nested manifests that are referenced but not in the layout.
    pub missing: Vec<Digest>,
}

/// What [`OciLayout::gc`] removes.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Keep unreferenced blobs changed more recently than this.
    pub min_age: Duration,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
}

/// What [`OciLayout::gc`] did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// The layout's directory, as given.
    pub layout: String,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Blobs removed (or, with `dry_run`, that would be).
    pub removed: Vec<Digest>,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Unreferenced blobs kept because they changed within `min_age`.
    pub kept_recent: usize,
    /// Their bytes.
    pub kept_recent_bytes: u64,
    /// Blobs an entry reaches.
    pub reachable: usize,
    /// Manifests referenced but absent (a Docker export holds one platform of its index).
    pub missing: Vec<Digest>,
}

/// When a file last changed (ctime: written, renamed or linked).
fn changed_at(meta: &std::fs::Metadata) -> SystemTime {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        SystemTime::UNIX_EPOCH
            + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().max(0) as u32)
    }
    #[cfg(not(unix))]
    {
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Record a pulled image in `entries`: `named` replaces any entry with the same `ref.name` (a tag that moved
/// gets a fresh entry, a re-pull is a no-op), and `untagged` (children of a whole index) are listed once,
/// unless a named entry already covers their digest — what oras-go's layout store does.
pub fn record_image(entries: &mut Vec<Descriptor>, named: Descriptor, untagged: Vec<Descriptor>) {
    let name = named.annotation(ANNOTATION_REF_NAME).map(str::to_string);
    entries.retain(|e| e.annotation(ANNOTATION_REF_NAME).map(str::to_string) != name);
    entries.retain(|e| !(e.image_name().is_none() && e.digest == named.digest));
    entries.push(named);
    for child in untagged {
        if !entries.iter().any(|e| e.digest == child.digest) {
            entries.push(child);
        }
    }
}

/// Sorted by digest (as Zarf does), ties broken by name so the bytes are stable.
fn sort_entries(entries: &mut [Descriptor]) {
    entries.sort_by(|a, b| (a.digest.hex(), a.image_name()).cmp(&(b.digest.hex(), b.image_name())));
}

/// `index.json` as ferry writes it: Go-encoded, OCI index media type, entries as given.
pub fn index_bytes(entries: &[Descriptor]) -> Vec<u8> {
    index_bytes_annotated(entries, &BTreeMap::new())
}

/// [`index_bytes`] with the index's own `annotations` (none: the field is left out).
pub fn index_bytes_annotated(
    entries: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let file = IndexFile {
        schema_version: 2,
        media_type: media_type::OCI_INDEX.to_string(),
        manifests: entries.to_vec(),
        annotations: annotations.clone(),
    };
    gojson::to_vec(&file).expect("descriptors always serialize")
}

/// The entries of an `index.json` (of a layout directory, an archive or a package); the error says what is
/// wrong, for the caller to name the file.
pub fn decode_index(bytes: &[u8]) -> std::result::Result<Vec<Descriptor>, String> {
    decode_index_annotated(bytes).map(|(entries, _)| entries)
}

/// [`decode_index`], and the index's own annotations.
pub fn decode_index_annotated(
    bytes: &[u8],
) -> std::result::Result<(Vec<Descriptor>, BTreeMap<String, String>), String> {
    let file: IndexFile =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid index.json: {e}"))?;
    if file.schema_version != 2 {
        return Err(format!(
            "unsupported index.json schemaVersion {}",
            file.schema_version
        ));
    }
    Ok((file.manifests, file.annotations))
}

/// Check an `oci-layout` file: version 1.0.0, whatever the formatting (Crane wrote it indented).
pub fn check_layout_marker(bytes: &[u8]) -> std::result::Result<(), String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Marker {
        image_layout_version: String,
    }
    match serde_json::from_slice::<Marker>(bytes) {
        Ok(m) if m.image_layout_version == "1.0.0" => Ok(()),
        Ok(m) => Err(format!(
            "unsupported imageLayoutVersion {:?}",
            m.image_layout_version
        )),
        Err(e) => Err(format!("invalid oci-layout file: {e}")),
    }
}

fn parse_index(path: &Path, bytes: &[u8]) -> Result<Vec<Descriptor>> {
    decode_index(bytes).map_err(|why| StoreError::InvalidLayout {
        path: path.to_path_buf(),
        why,
    })
}

impl Store for OciLayout {
    fn describe(&self) -> String {
        format!("layout {}", self.root.display())
    }
}

impl WriteStore for OciLayout {
    /// A blob already present counts only once verified ([`OciLayout::verify_existing`]): a same-size
    /// corrupt file must not be recorded as the image's content.
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            // The common answers from one `lstat` on this thread: not there (a pull into a fresh
            // layout), or a plain file this process verified and nobody changed since. Hashing, and
            // the symlink check, go to a blocking thread.
            match std::fs::symlink_metadata(self.blob_path(&desc.digest)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Ok(meta) if meta.is_file() && self.remembered(&desc.digest, &meta) => {
                    return Ok(meta.len() == desc.size);
                }
                _ => {}
            }
            let (this, desc) = (self.clone(), desc.clone());
            tokio::task::spawn_blocking(move || {
                let path = this.blob_file(&desc.digest);
                match path {
                    Ok(path) => this.verify_existing(&desc, &path),
                    Err(StoreError::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
            .expect("verify task panicked")
        })
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            let dest = self.blob_path(&desc.digest);
            let inner = AtomicFileWriter::create(&self.ingest_dir(), dest.clone(), false).await?;
            Ok(Box::new(LayoutWriter {
                inner: Box::new(inner),
                layout: self.clone(),
                digest: desc.digest.clone(),
                dest,
            }) as Box<dyn BlobWriter>)
        })
    }

    fn link_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        from: &'a Path,
    ) -> BoxFuture<'a, Result<bool>> {
        let dest = self.blob_path(&desc.digest);
        let tmp = self.ingest_dir();
        let (from, this, digest) = (from.to_path_buf(), self.clone(), desc.digest.clone());
        Box::pin(async move {
            // The common case is one `link` into a free name in a directory that exists: done on this
            // thread (a warm pull links every blob; the hop to a blocking thread and back cost more than
            // the link). Anything else (a name taken, a directory to make, a filesystem that cannot
            // link) goes the full way on a blocking thread.
            if std::fs::hard_link(&from, &dest).is_ok() {
                this.remember(&digest, &dest);
                return Ok(true);
            }
            tokio::task::spawn_blocking(move || {
                let linked = link_atomic(&from, &dest, &tmp)?;
                if linked {
                    // The caller links only verified files.
                    this.remember(&digest, &dest);
                }
                Ok(linked)
            })
            .await
            .expect("link task panicked")
        })
    }
}

/// A layout blob being written: committed by [`AtomicFileWriter`], then remembered as verified (the caller
/// commits only verified bytes).
struct LayoutWriter {
    inner: Box<AtomicFileWriter>,
    layout: OciLayout,
    digest: Digest,
    dest: PathBuf,
}

impl BlobWriter for LayoutWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        self.inner.write(chunk)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let LayoutWriter {
                inner,
                layout,
                digest,
                dest,
            } = *self;
            inner
                .commit_then(move || layout.remember(&digest, &dest))
                .await
        })
    }
}

impl ReadStore for OciLayout {
    fn holds(&self, digest: &Digest) -> Option<bool> {
        Some(self.blob_file(digest).is_ok())
    }

    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            if desc.size > ferry_oci::MAX_MANIFEST_BYTES {
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let (this, digest, size) = (self.clone(), desc.digest.clone(), desc.size);
            let bytes = tokio::task::spawn_blocking(move || this.read_blob_capped(&digest, size))
                .await
                .expect("read task panicked")
                .map_err(|e| match e {
                    StoreError::NotFound { store, .. } => StoreError::NotFound {
                        store,
                        what: format!("manifest {}", desc.digest),
                    },
                    other => other,
                })?;
            verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(Bytes::from(bytes))
        })
    }

    /// Entries whose manifest names `subject` as its subject (how `pull --referrers` records them), and
    /// entries named with a cosign tag for it.
    fn referrers<'a>(&'a self, subject: &'a Descriptor) -> BoxFuture<'a, Result<Vec<Referrer>>> {
        Box::pin(async move {
            let tag_prefix = format!(":{}.", subject.digest.tag_form());
            let mut out: Vec<Referrer> = Vec::new();
            for entry in self.entries()? {
                if out.iter().any(|r| r.desc.digest == entry.digest)
                    || entry.digest == subject.digest
                {
                    continue;
                }
                let cosign_tag = entry.image_name().and_then(|n| {
                    let i = n.rfind(&tag_prefix)?;
                    let tag = &n[i + 1..];
                    crate::COSIGN_SUFFIXES
                        .iter()
                        .any(|s| tag.ends_with(&format!(".{s}")))
                        .then(|| tag.to_string())
                });
                if !ferry_oci::media_type::is_manifest_like(&entry.media_type) {
                    continue;
                }
                let plain =
                    Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size);
                if let Some(tag) = cosign_tag {
                    out.push(Referrer {
                        desc: plain,
                        tag: Some(tag),
                    });
                    continue;
                }
                let bytes = self.fetch_manifest(&plain).await?;
                let Ok(manifest) = ferry_oci::Manifest::parse(&plain.media_type, &bytes) else {
                    continue;
                };
                if manifest
                    .subject
                    .as_ref()
                    .is_some_and(|s| s.digest == subject.digest)
                {
                    out.push(Referrer {
                        desc: manifest.referrer_descriptor(&plain),
                        tag: None,
                    });
                }
            }
            Ok(out)
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            let (this, digest) = (self.clone(), desc.digest.clone());
            let path = tokio::task::spawn_blocking(move || this.blob_file(&digest))
                .await
                .expect("stat task panicked")?;
            FileSource::blob(&path, offset).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_in_finds_a_layout_or_a_package_s_images() {
        let dir = tempfile::tempdir().unwrap();
        let err = OciLayout::open_in(dir.path()).unwrap_err().to_string();
        assert!(err.contains("neither an OCI layout"), "{err}");
        OciLayout::open_or_create(&dir.path().join("images")).unwrap();
        let found = OciLayout::open_in(dir.path()).unwrap();
        assert_eq!(found.root(), dir.path().join("images"));
        let direct = OciLayout::open_in(&dir.path().join("images")).unwrap();
        assert_eq!(direct.root(), found.root());
    }

    fn named(bytes: &[u8], name: &str) -> Descriptor {
        let mut d = Descriptor::of(media_type::OCI_MANIFEST, bytes);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), name.into());
        d.annotations
            .insert(ANNOTATION_BASE_NAME.into(), name.into());
        d
    }

    #[test]
    fn new_layout_has_zarf_bytes() {
        let dir = tempfile::tempdir().unwrap();
        OciLayout::open_or_create(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("oci-layout")).unwrap(),
            OCI_LAYOUT_BYTES
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("index.json")).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
        );
    }

    #[test]
    fn record_replaces_same_name_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(dir.path()).unwrap();
        let (a, b) = (named(b"a", "x.io/a:1"), named(b"b", "x.io/b:1"));
        layout
            .update_index(|e| {
                record_image(e, a.clone(), vec![]);
                record_image(e, b.clone(), vec![]);
                record_image(e, a.clone(), vec![]);
            })
            .unwrap();
        let entries = layout.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].digest.hex() < entries[1].digest.hex());
        // A tag that moved: the new digest replaces the old entry.
        let moved = named(b"c", "x.io/a:1");
        layout
            .update_index(|e| record_image(e, moved.clone(), vec![]))
            .unwrap();
        let entries = layout.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.contains(&moved) && entries.contains(&b));
    }

    #[test]
    fn untagged_children_listed_once_unless_named() {
        let mut entries = Vec::new();
        let child = Descriptor::of(media_type::OCI_MANIFEST, b"child");
        let root = named(b"root", "x.io/r@sha256:...");
        record_image(&mut entries, root, vec![child.clone(), child.clone()]);
        assert_eq!(entries.len(), 2);
        let mut named_child = child.clone();
        named_child
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), "x.io/c:1".into());
        record_image(&mut entries, named_child, vec![]);
        assert_eq!(
            entries.len(),
            2,
            "the untagged entry gives way to the named one"
        );
    }

    #[test]
    fn reachable_walks_indexes_and_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(dir.path()).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            std::fs::write(layout.blob_path(&d), bytes).unwrap();
            d
        };
        let config = put(b"{}");
        let layer = put(b"layer");
        let orphan = put(b"orphan");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG
        );
        let m = put(manifest.as_bytes());
        let absent = Digest::of(b"absent child");
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{idx}","manifests":[{{"mediaType":"{man}","digest":"{m}","size":{}}},{{"mediaType":"{man}","digest":"{absent}","size":9}}]}}"#,
            manifest.len(),
            idx = media_type::OCI_INDEX,
            man = media_type::OCI_MANIFEST
        );
        let i = put(index.as_bytes());
        let entry = named(index.as_bytes(), "x.io/i:1");
        assert_eq!(entry.digest, i);
        let mut entry = entry;
        entry.media_type = media_type::OCI_INDEX.into();
        layout.update_index(|e| e.push(entry)).unwrap();
        let _lock = layout.lock_index().unwrap();
        let r = layout.reachable().unwrap();
        for d in [&config, &layer, &m, &i, &absent] {
            assert!(r.digests.contains(d), "{d}");
        }
        assert!(!r.digests.contains(&orphan));
        assert_eq!(r.missing, vec![absent]);
        assert_eq!(layout.blobs().unwrap().len(), 5);
        drop(_lock);
        // An entry whose manifest is gone: what it references is unknown, so nothing is reachable-safe.
        std::fs::remove_file(layout.blob_path(&i)).unwrap();
        assert!(layout.reachable().is_err());
    }

    #[test]
    fn reads_crane_era_index_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            b"{\n    \"imageLayoutVersion\": \"1.0.0\"\n}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            b"{\"schemaVersion\":2,\"manifests\":[]}",
        )
        .unwrap();
        let layout = OciLayout::open(dir.path()).unwrap();
        assert!(layout.entries().unwrap().is_empty());
        std::fs::write(dir.path().join("index.json"), b"{").unwrap();
        let err = layout.entries().unwrap_err().to_string();
        assert!(err.contains("index.json"), "{err}");
        let other = tempfile::tempdir().unwrap();
        let err = OciLayout::open(other.path()).unwrap_err().to_string();
        assert!(err.contains("not an OCI image layout"), "{err}");
    }

    #[tokio::test]
    async fn existing_blobs_count_only_when_verified() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(dir.path()).unwrap();
        let desc = Descriptor::of("application/octet-stream", b"the real layer");
        let path = layout.blob_path(&desc.digest);
        // Same size, other bytes: a corrupt blob must not satisfy the copy.
        std::fs::write(&path, b"THE REAL LAYER").unwrap();
        assert!(!layout.exists(&desc).await.unwrap());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"the real layer").unwrap();
        assert!(layout.exists(&desc).await.unwrap());
        // Once verified, a change to the file is noticed (its stamp no longer matches).
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&path, b"the fake layer").unwrap();
        assert!(!layout.exists(&desc).await.unwrap());
    }

    #[tokio::test]
    async fn blobs_linked_out_of_the_layout_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(&dir.path().join("l")).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"not yours").unwrap();
        let desc = Descriptor::of("application/octet-stream", b"not yours");
        std::os::unix::fs::symlink(&secret, layout.blob_path(&desc.digest)).unwrap();
        let err = layout.fetch_blob(&desc, 0).await.err().unwrap().to_string();
        assert!(err.contains("outside the layout"), "{err}");
        let err = layout.fetch_manifest(&desc).await.unwrap_err().to_string();
        assert!(err.contains("outside the layout"), "{err}");
        // A link that stays inside is fine.
        let inner = layout.root().join("elsewhere");
        std::fs::write(&inner, b"inside").unwrap();
        let d2 = Descriptor::of("application/octet-stream", b"inside");
        std::os::unix::fs::symlink(&inner, layout.blob_path(&d2.digest)).unwrap();
        assert!(layout.fetch_blob(&d2, 0).await.is_ok());
    }

    #[test]
    fn gc_waits_for_writers_and_keeps_what_they_record() {
        let dir = tempfile::tempdir().unwrap();
        let writer = OciLayout::open_or_create(dir.path()).unwrap();
        // A pull has written its blob but not recorded its image yet.
        let bytes = b"pulled, not yet recorded";
        // An artifact entry whose content is not a manifest: reachable by its digest alone.
        let mut desc = named(bytes, "x.io/p:1");
        desc.media_type = "application/vnd.example.blob".into();
        std::fs::write(writer.blob_path(&desc.digest), bytes).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let root = dir.path().to_path_buf();
        let gc = std::thread::spawn(move || {
            let layout = OciLayout::open(&root).unwrap();
            let opts = GcOptions {
                min_age: Duration::ZERO,
                dry_run: false,
            };
            layout.gc(&opts, &|| tx.send(()).unwrap()).unwrap()
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("gc waits for the writer");
        assert!(!gc.is_finished());
        writer.update_index(|e| e.push(desc.clone())).unwrap();
        drop(writer);
        let report = gc.join().unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert!(
            dir.path()
                .join("blobs/sha256")
                .join(desc.digest.hex())
                .exists()
        );
        // With no writer, an unreferenced blob goes.
        let layout = OciLayout::open(dir.path()).unwrap();
        layout.update_index(|e| e.clear()).unwrap();
        let opts = GcOptions::default();
        let report = layout.gc(&opts, &|| panic!("no writer")).unwrap();
        assert_eq!(report.removed, vec![desc.digest]);
    }
}
