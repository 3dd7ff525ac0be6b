//! OCI layouts as one file: `.tar`, `.tar.gz` or `.tar.zst` (what `skopeo copy … oci-archive:` reads and
//! writes), opened as a store and written from a layout directory.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher};
use ferry_store::{BlobWriter, BoxFuture, OciLayout, Store, WriteStore};

use crate::compress::{Compression, Sink};
use crate::error::{ArchiveError, Result};
use crate::names::{self, ArchiveImage};
use crate::ocitar;
use crate::store::{ArchiveStore, OpenOptions, delegate_read_store};
use crate::tarindex::MAX_METADATA_BYTES;

/// An OCI layout inside a tar (optionally gzip or zstd; decompressed once to a temp file) as a store.
pub struct OciArchive {
    store: ArchiveStore,
    images: Vec<ArchiveImage>,
}

delegate_read_store!(OciArchive);

/// What [`OciArchive::write`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    pub path: PathBuf,
    pub compression: Compression,
    /// Blobs in the archive.
    pub blobs: usize,
    /// Bytes of blob content (before compression).
    pub blob_bytes: u64,
    /// Size of the archive file.
    pub archive_bytes: u64,
}

impl OciArchive {
    /// Open and index `path`. Blocking (a compressed archive is decompressed here); call it from
    /// `spawn_blocking` in async code.
    pub fn open(path: &Path) -> Result<OciArchive> {
        Self::open_with(path, &OpenOptions::default())
    }

    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<OciArchive> {
        let mut store = ArchiveStore::open(path, opts, "oci-archive")?;
        if !ocitar::is_layout(&store.index) {
            return Err(ArchiveError::invalid(
                path,
                "not an OCI layout archive: no oci-layout and index.json at its root",
            ));
        }
        let (blobs, entries) = ocitar::read(&store.index)?;
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
        Ok(OciArchive { store, images })
    }

    /// Every `index.json` entry, once per name; entries without a name (the children of a whole index,
    /// as oras-go and ferry list them) have `name: None`.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

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
    /// every blob sorted by digest; mtime 0, uid/gid 0, no user names, blobs 0444. The same layout gives the
    /// same bytes. Each blob is hashed on the way in, so a corrupt layout is refused rather than exported.
    /// Written to a temp file beside `out` and renamed, so `out` is whole or absent.
    pub fn write_with(
        layout_dir: &Path,
        out: &Path,
        compression: Compression,
    ) -> Result<WriteSummary> {
        OciLayout::open(layout_dir)?;
        let oci_layout = read_capped(&layout_dir.join(ocitar::OCI_LAYOUT))?;
        let index_path = layout_dir.join(ocitar::INDEX_JSON);
        let index_json = if index_path.exists() {
            read_capped(&index_path)?
        } else {
            ferry_store::layout::index_bytes(&[])
        };
        let blobs = list_blobs(layout_dir)?;

        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".ferry-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| ArchiveError::io(&dir, e))?;
        let file = tmp.reopen().map_err(|e| ArchiveError::io(tmp.path(), e))?;
        let io = |e: std::io::Error| ArchiveError::io(out, e);

        let mut tar = tar::Builder::new(Sink::new(file, compression));
        append(&mut tar, ocitar::OCI_LAYOUT, 0o644, &oci_layout).map_err(io)?;
        append(&mut tar, ocitar::INDEX_JSON, 0o644, &index_json).map_err(io)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
        }
        let mut blob_bytes = 0;
        for (digest, path) in &blobs {
            blob_bytes += append_blob(&mut tar, digest, path)?;
        }
        let file = tar
            .into_inner()
            .and_then(Sink::finish)
            .and_then(|f| f.sync_all().map(|_| f))
            .map_err(io)?;
        let archive_bytes = file.metadata().map_err(io)?.len();
        drop(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                .map_err(|e| ArchiveError::io(tmp.path(), e))?;
        }
        tmp.persist(out)
            .map_err(|e| ArchiveError::io(out, e.error))?;
        Ok(WriteSummary {
            path: out.to_path_buf(),
            compression,
            blobs: blobs.len(),
            blob_bytes,
            archive_bytes,
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

/// `blobs/sha256/<hex>` files, sorted by digest. Anything else there (temp files) is not content.
fn list_blobs(layout_dir: &Path) -> Result<Vec<(Digest, PathBuf)>> {
    let dir = layout_dir.join("blobs").join("sha256");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ArchiveError::io(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ArchiveError::io(&dir, e))?;
        let name = entry.file_name();
        let Some(digest) = name
            .to_str()
            .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
        else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push((digest, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append(
    tar: &mut tar::Builder<Sink>,
    name: &str,
    mode: u32,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, mode);
    tar.append_data(&mut h, name, bytes)
}

/// One blob, hashed as it streams into the tar; returns its size.
fn append_blob(tar: &mut tar::Builder<Sink>, digest: &Digest, path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    let size = f.metadata().map_err(|e| ArchiveError::io(path, e))?.len();
    // A gzip or zstd layer is not compressed again (see `Sink`).
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(|e| ArchiveError::io(path, e))?;
    let compressed = Compression::of_bytes(&head[..n]) != Compression::None;
    f.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| ArchiveError::io(path, e))?;
    tar.get_mut()
        .set_compressible(!compressed)
        .map_err(|e| ArchiveError::io(path, e))?;
    let mut reader = HashingReader {
        inner: f.take(size),
        hasher: Hasher::new(),
    };
    let mut h = header(tar::EntryType::Regular, size, 0o444);
    tar.append_data(
        &mut h,
        format!("blobs/sha256/{}", digest.hex()),
        &mut reader,
    )
    .map_err(|e| ArchiveError::io(path, e))?;
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
}

impl OciArchiveWriter {
    pub fn create(out: &Path) -> Result<OciArchiveWriter> {
        Self::create_with(out, Compression::for_path(out))
    }

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
        })
    }

    /// The staging layout, to record images in (`update_index` + `record_image`).
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    /// Write the archive. Dropping the writer without calling this discards everything.
    pub fn finish(self) -> Result<WriteSummary> {
        self.layout.tidy();
        let summary = OciArchive::write_with(self.staging.path(), &self.out, self.compression)?;
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
        self.layout.exists(desc)
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Box<dyn BlobWriter>>> {
        self.layout.blob_writer(desc)
    }

    fn put_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
    ) -> BoxFuture<'a, ferry_store::Result<()>> {
        self.layout.put_manifest(desc, bytes)
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
