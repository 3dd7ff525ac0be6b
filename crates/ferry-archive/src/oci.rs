//! OCI layouts as one file: `.tar`, `.tar.gz` or `.tar.zst` (what `skopeo copy … oci-archive:` reads and
//! writes), opened as a store and written from a layout directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher};
use ferry_store::{BlobWriter, BoxFuture, OciLayout, ReadStore, Store, WriteStore};

use crate::compress::Compression;
use crate::error::{ArchiveError, Result};
use crate::names::{self, ArchiveImage};
use crate::ocitar;
use crate::store::{ArchiveStore, OpenOptions, delegate_read_store};
use crate::tarindex::MAX_METADATA_BYTES;
use crate::tarwriter::{BLOB_MODE, FILE_MODE, TarWriter, worth_compressing};

/// An OCI layout inside a tar (optionally gzip or zstd; decompressed once to a temp file) as a store.
pub struct OciArchive {
    store: ArchiveStore,
    images: Vec<ArchiveImage>,
    /// `index.json`'s entries as written (annotations included).
    entries: Vec<Descriptor>,
    /// `index.json`'s own annotations.
    annotations: ocitar::Annotations,
}

/// The annotation of a delta archive's `index.json` naming its base (what [`DeltaBase::label`] says).
pub const ANNOTATION_DELTA_BASE: &str = "dev.ferry.delta.base";
/// The annotation of a delta archive's `index.json` fingerprinting its base: the sha256 of the base's
/// digests, sorted, one per line.
pub const ANNOTATION_DELTA_BASE_DIGEST: &str = "dev.ferry.delta.base.digest";

/// What the far side of a delta already has: blobs in this set are left out of the archive (manifests and
/// indexes never are).
#[derive(Clone, Debug, Default)]
pub struct DeltaBase {
    /// What the base is, for people (a file name).
    pub label: String,
    /// Every digest of the base's image graphs.
    pub digests: std::collections::HashSet<Digest>,
}

impl DeltaBase {
    /// The sha256 of the base's digests, sorted, one per line: the same base gives the same fingerprint.
    pub fn fingerprint(&self) -> Digest {
        let mut all: Vec<String> = self.digests.iter().map(Digest::to_string).collect();
        all.sort();
        let mut h = Hasher::new();
        for d in &all {
            h.update(d.as_bytes());
            h.update(b"\n");
        }
        h.finish()
    }

    fn annotations(&self) -> ocitar::Annotations {
        [
            (ANNOTATION_DELTA_BASE.to_string(), self.label.clone()),
            (
                ANNOTATION_DELTA_BASE_DIGEST.to_string(),
                self.fingerprint().to_string(),
            ),
        ]
        .into()
    }

    /// Whether a node is left out of a delta on this base: a blob (not a manifest or index) the base has.
    pub fn omits(&self, desc: &Descriptor) -> bool {
        !ferry_oci::media_type::is_manifest_like(&desc.media_type)
            && self.digests.contains(&desc.digest)
    }
}

delegate_read_store!(OciArchive);

/// What [`OciArchive::write`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// The archive file written.
    pub path: PathBuf,
    /// How it is compressed.
    pub compression: Compression,
    /// Blobs in the archive.
    pub blobs: usize,
    /// Bytes of blob content (before compression).
    pub blob_bytes: u64,
    /// Size of the archive file.
    pub archive_bytes: u64,
    /// Blobs a delta left out because its base has them (0 for a full archive).
    pub omitted: usize,
}

impl OciArchive {
    /// Open and index `path`. Blocking (a compressed archive is decompressed here); call it from
    /// `spawn_blocking` in async code.
    pub fn open(path: &Path) -> Result<OciArchive> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// [`OciArchive::open`] with `opts` (limits, where a compressed archive is spooled).
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<OciArchive> {
        let mut store = ArchiveStore::open(path, opts, "oci-archive")?;
        // A layout wrapped in one directory is read as if it were at the root.
        if !ocitar::is_layout(&store.index) && store.index.strip_single_root().is_some() {
            tracing::debug!(
                "{}: the layout sits in one wrapping directory",
                path.display()
            );
        }
        if !ocitar::is_layout(&store.index) {
            return Err(ArchiveError::invalid(
                path,
                "not an OCI layout archive: no oci-layout and index.json at its root",
            ));
        }
        let (blobs, entries, annotations) = ocitar::read_annotated(&store.index)?;
        store.blobs = blobs;
        let images = entries
            .iter()
            .flat_map(|e| {
                names::entry_names(e, &[])
                    .into_iter()
                    .map(|name| ArchiveImage {
                        name,
                        desc: names::plain(e),
                    })
            })
            .collect();
        Ok(OciArchive {
            store,
            images,
            entries,
            annotations,
        })
    }

    /// The base this archive is a delta of (its `index.json`'s [`ANNOTATION_DELTA_BASE`]), if it is one: blobs
    /// its images need may then be absent, for the far side to take from what it already has.
    pub fn delta_base(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_DELTA_BASE)
            .map(String::as_str)
    }

    /// The entries of the archive's `index.json` as written, annotations included.
    pub fn entries(&self) -> &[Descriptor] {
        &self.entries
    }

    /// Every `index.json` entry, once per name; entries without a name (the children of a whole index,
    /// as oras-go and ferry list them) have `name: None`.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// The image `name` names: an image name (compared as a normalized reference; `repo@digest` too) or a
    /// digest. The error lists the names the archive has.
    pub fn resolve(&self, name: &str) -> Result<&ArchiveImage> {
        names::resolve(&self.images, name, &self.store.describe())
    }

    /// The archive's only image. Unnamed entries are the children of a whole index listed beside it, so
    /// when there are named ones, only those count.
    pub fn single(&self) -> Result<&ArchiveImage> {
        let named: Vec<&ArchiveImage> = self.images.iter().filter(|i| i.name.is_some()).collect();
        let pool = if named.is_empty() {
            self.images.iter().collect()
        } else {
            named
        };
        names::single(pool, &self.store.describe())
    }

    /// Export the layout at `layout_dir` as one file, compressed by `out`'s name (`.tar.zst`/`.tzst`: zstd,
    /// `.tar.gz`/`.tgz`: gzip, else a plain tar). Blocking.
    pub fn write(layout_dir: &Path, out: &Path) -> Result<WriteSummary> {
        Self::write_with(layout_dir, out, Compression::for_path(out))
    }

    /// Write the archive deterministically: `oci-layout`, `index.json`, `blobs/`, `blobs/sha256/`, then
    /// every blob the entries of `index.json` reach, sorted by digest; mtime 0, uid/gid 0, no user names,
    /// blobs 0444. The same layout gives the same bytes. Each blob is hashed on the way in and a blob the
    /// images need but the layout lacks fails the export, naming it, so a broken layout is refused rather
    /// than exported. `out` is whole or absent.
    pub fn write_with(
        layout_dir: &Path,
        out: &Path,
        compression: Compression,
    ) -> Result<WriteSummary> {
        Self::write_delta(layout_dir, out, compression, None)
    }

    /// [`OciArchive::write_with`], as a delta on `base` when given: a blob the base has may be absent from
    /// the layout and is then left out, and `index.json` records the base (its annotations
    /// [`ANNOTATION_DELTA_BASE`] and [`ANNOTATION_DELTA_BASE_DIGEST`]).
    pub fn write_delta(
        layout_dir: &Path,
        out: &Path,
        compression: Compression,
        base: Option<&DeltaBase>,
    ) -> Result<WriteSummary> {
        let layout = OciLayout::open(layout_dir)?;
        let oci_layout = read_capped(&layout_dir.join(ocitar::OCI_LAYOUT))?;
        let index_path = layout_dir.join(ocitar::INDEX_JSON);
        let index_json = if index_path.exists() {
            read_capped(&index_path)?
        } else {
            ferry_store::layout::index_bytes(&[])
        };
        // The walk starts from the index.json bytes written into the archive, not a later read of it.
        let entries = ferry_store::layout::decode_index(&index_json)
            .map_err(|why| ArchiveError::entry(layout_dir, ocitar::INDEX_JSON, why))?;
        let index_json = match base {
            Some(base) => ferry_store::layout::index_bytes_annotated(&entries, &base.annotations()),
            None => index_json,
        };
        let reachable = layout.reachable_from(entries)?;
        for d in &reachable.missing {
            tracing::warn!(layout = %layout_dir.display(), digest = %d, "a nested manifest is not in the layout (a partial index); exporting without it");
        }
        let mut digests: Vec<&Digest> = reachable
            .digests
            .iter()
            .filter(|d| !reachable.missing.contains(d))
            .collect();
        digests.sort();

        let mut tar = TarWriter::create(out, compression)?;
        tar.append_bytes(ocitar::OCI_LAYOUT, FILE_MODE, &oci_layout)?;
        tar.append_bytes(ocitar::INDEX_JSON, FILE_MODE, &index_json)?;
        tar.append_dir("blobs/")?;
        tar.append_dir("blobs/sha256/")?;
        let (mut blob_bytes, mut omitted) = (0, 0);
        for digest in &digests {
            if base.is_some_and(|b| b.digests.contains(*digest))
                && layout.holds(digest) == Some(false)
            {
                omitted += 1;
                continue;
            }
            let path = layout.blob_file(digest).map_err(|e| match e {
                ferry_store::StoreError::NotFound { .. } => ArchiveError::invalid(
                    layout_dir,
                    format!(
                        "blob {digest} is referenced by index.json but missing from the layout; nothing was written"
                    ),
                ),
                other => other.into(),
            })?;
            blob_bytes += append_blob(&mut tar, digest, &path)?;
        }
        let archive_bytes = tar.finish()?;
        Ok(WriteSummary {
            path: out.to_path_buf(),
            compression,
            blobs: digests.len() - omitted,
            blob_bytes,
            archive_bytes,
            omitted,
        })
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ArchiveError::io(path, e))?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(ArchiveError::io(
            path,
            std::io::Error::other(format!(
                "more than the {MAX_METADATA_BYTES}-byte limit for metadata files"
            )),
        ));
    }
    Ok(bytes)
}

/// One blob, hashed as it streams into the tar; returns its size.
fn append_blob(tar: &mut TarWriter, digest: &Digest, path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    let size = f.metadata().map_err(|e| ArchiveError::io(path, e))?.len();
    let compressible = worth_compressing(&mut f).map_err(|e| ArchiveError::io(path, e))?;
    let mut reader = HashingReader {
        inner: std::io::BufReader::with_capacity(1 << 20, f),
        hasher: Hasher::new(),
    };
    tar.append_reader(
        &format!("blobs/sha256/{}", digest.hex()),
        BLOB_MODE,
        size,
        &mut reader,
        compressible,
        path,
    )?;
    let HashingReader { hasher, .. } = reader;
    let (len, actual) = (hasher.len(), hasher.finish());
    if len != size || &actual != digest {
        return Err(ArchiveError::io(
            path,
            std::io::Error::other(format!(
                "blob is corrupt or changed while exporting: {len} bytes hashing to {actual}, \
                 expected {size} bytes of {digest}; nothing was written"
            )),
        ));
    }
    Ok(size)
}

struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A [`WriteStore`] whose content becomes an oci-archive: blobs and manifests go to a staging layout beside
/// the archive (same filesystem, so the cache can hard-link into it), and [`finish`](Self::finish) writes
/// the archive and removes the staging directory. Record images with [`layout`](Self::layout)`().update_index`.
pub struct OciArchiveWriter {
    out: PathBuf,
    compression: Compression,
    layout: OciLayout,
    staging: tempfile::TempDir,
    /// A delta's base: its blobs count as present and are left out.
    base: Option<DeltaBase>,
}

impl OciArchiveWriter {
    /// A writer for the archive `out`, compressed as its name says (`.zst`/`.tzst`: zstd, `.gz`/`.tgz`: gzip,
    /// else plain). Nothing appears at `out` before [`OciArchiveWriter::finish`].
    pub fn create(out: &Path) -> Result<OciArchiveWriter> {
        Self::create_with(out, Compression::for_path(out))
    }

    /// A writer for the archive `out`, compressed with `compression` whatever its extension.
    pub fn create_with(out: &Path, compression: Compression) -> Result<OciArchiveWriter> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = tempfile::Builder::new()
            .prefix(".ferry-staging-")
            .tempdir_in(&dir)
            .map_err(|e| ArchiveError::io(&dir, e))?;
        let layout = OciLayout::open_or_create(staging.path())?;
        Ok(OciArchiveWriter {
            out: out.to_path_buf(),
            compression,
            layout,
            staging,
            base: None,
        })
    }

    /// A writer of a delta on `base`: every blob the base has counts as already present (a copy skips it),
    /// and [`finish`](Self::finish) writes the archive without them, recording the base in `index.json`.
    pub fn create_delta(out: &Path, base: DeltaBase) -> Result<OciArchiveWriter> {
        let mut w = Self::create(out)?;
        w.base = Some(base);
        Ok(w)
    }

    /// The staging layout, to record images in (`update_index` + `record_image`).
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    /// Write the archive. Dropping the writer without calling this discards everything.
    pub fn finish(self) -> Result<WriteSummary> {
        self.layout.tidy();
        let summary = OciArchive::write_delta(
            self.staging.path(),
            &self.out,
            self.compression,
            self.base.as_ref(),
        )?;
        make_removable(self.staging.path());
        drop(self.staging);
        Ok(summary)
    }
}

/// Blob files are 0444; on unix that does not stop their removal, elsewhere it does.
fn make_removable(_dir: &Path) {
    #[cfg(not(unix))]
    if let Ok(entries) = std::fs::read_dir(_dir.join("blobs").join("sha256")) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                let mut p = m.permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                p.set_readonly(false);
                let _ = std::fs::set_permissions(e.path(), p);
            }
        }
    }
}

impl Store for OciArchiveWriter {
    fn describe(&self) -> String {
        format!("oci-archive {}", self.out.display())
    }
}

impl WriteStore for OciArchiveWriter {
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, ferry_store::Result<bool>> {
        if self.base.as_ref().is_some_and(|b| b.omits(desc)) {
            return Box::pin(async { Ok(true) });
        }
        self.layout.exists(desc)
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Box<dyn BlobWriter>>> {
        self.layout.blob_writer(desc)
    }

    fn link_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        from: &'a Path,
    ) -> BoxFuture<'a, ferry_store::Result<bool>> {
        self.layout.link_blob(desc, from)
    }
}

/// Names are recorded in the staging layout, as a layout records them.
impl ferry_store::Tagger for OciArchiveWriter {
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
        name: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<()>> {
        self.layout.tag(desc, bytes, name)
    }

    fn keep<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, ferry_store::Result<()>> {
        self.layout.keep(desc)
    }
}

impl std::fmt::Debug for OciArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciArchiveWriter")
            .field("out", &self.out)
            .field("staging", &self.staging.path())
            .finish()
    }
}
