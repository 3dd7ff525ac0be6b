//! What is served, opened as a store: a layout directory (a Zarf package directory's `images/` too), a
//! Zarf package tarball read in place, an OCI layout archive, or the blob cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::descriptor::ANNOTATION_REF_NAME;
use ferry_oci::{Descriptor, Digest};
use ferry_store::file::FileSource;
use ferry_store::{BlobCache, BoxFuture, ByteSource, OciLayout, ReadStore, Store, StoreError};
use ferry_zarf::PackageImages;

use crate::error::ServeError;

/// What to serve, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A layout directory, a Zarf package directory or tarball (`.tar`, `.tar.zst`, `.tar.gz`), or a tar of
    /// an OCI layout: told apart by what is there.
    Path(PathBuf),
    /// `oci-archive:FILE`: a tar of an OCI layout.
    OciArchive(PathBuf),
    /// The blob cache rooted here: content by digest only (it keeps no names).
    Cache(PathBuf),
}

impl SourceSpec {
    /// `oci-archive:FILE`, `oci:DIR`, or a path.
    pub fn parse(s: &str) -> SourceSpec {
        if let Some(file) = s.strip_prefix("oci-archive:") {
            return SourceSpec::OciArchive(PathBuf::from(file));
        }
        SourceSpec::Path(PathBuf::from(s.strip_prefix("oci:").unwrap_or(s)))
    }
}

/// A file's identity and version: a verified blob stays verified while the file it is read from keeps
/// these (a replaced, rewritten or truncated file changes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// An opened source.
pub(crate) enum Backing {
    Layout(OciLayout),
    /// A Zarf package tarball: blobs are byte ranges of it (or files unpacked from a compressed one).
    Package {
        images: PackageImages,
        file: PathBuf,
    },
    /// A tar of an OCI layout; `entries` are its images with their names.
    Archive {
        store: Arc<dyn ReadStore>,
        entries: Vec<Descriptor>,
        file: PathBuf,
    },
    Cache(CacheStore),
}

impl Backing {
    /// Open `spec`; `temp_dir` takes decompressed copies of compressed tarballs. With `create`, a directory
    /// that holds no layout yet (or does not exist) becomes an empty one, to push into.
    pub async fn open(
        spec: &SourceSpec,
        temp_dir: Option<PathBuf>,
        create: bool,
    ) -> Result<Backing, ServeError> {
        let name = |p: &Path| p.display().to_string();
        match spec {
            SourceSpec::Cache(root) => {
                let cache = BlobCache::open(root).map_err(|source| ServeError::Store {
                    source_name: format!("the blob cache {}", root.display()),
                    source,
                })?;
                Ok(Backing::Cache(CacheStore(cache)))
            }
            SourceSpec::OciArchive(file) => open_archive(file, temp_dir).await,
            SourceSpec::Path(path) if path.is_dir() || (create && !path.exists()) => {
                let empty = !path.join("oci-layout").exists() && !path.join("images").exists();
                let layout = if create && empty {
                    OciLayout::open_or_create(path)
                } else {
                    ferry_store::OciLayout::open_in(path)
                };
                let layout = layout.map_err(|source| ServeError::Store {
                    source_name: name(path),
                    source,
                })?;
                Ok(Backing::Layout(layout))
            }
            SourceSpec::Path(path) => {
                let opts = ferry_zarf::OpenOptions {
                    extract: ferry_zarf::Extract::Images,
                    // Blobs are verified when first served; hashing the whole package up front would
                    // only delay the start.
                    hash: false,
                    temp_dir: temp_dir.clone(),
                    stop_if_layout: true,
                };
                let p = path.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    let pkg = ferry_zarf::LocalPackage::open(&p, &opts)?;
                    PackageImages::from_package(&pkg)
                })
                .await
                .expect("package scan panicked");
                match opened {
                    Ok(images) => Ok(Backing::Package {
                        images,
                        file: path.clone(),
                    }),
                    Err(ferry_zarf::PackageError::NotAPackage { .. }) => {
                        open_archive(path, temp_dir).await
                    }
                    Err(source) => Err(ServeError::Package {
                        source_name: name(path),
                        source: Box::new(source),
                    }),
                }
            }
        }
    }

    pub fn store(&self) -> &dyn ReadStore {
        match self {
            Backing::Layout(l) => l,
            Backing::Package { images, .. } => images,
            Backing::Archive { store, .. } => store.as_ref(),
            Backing::Cache(c) => c,
        }
    }

    pub fn describe(&self) -> String {
        self.store().describe()
    }

    /// The layout writes go to, when this is a layout.
    pub fn layout(&self) -> Option<&OciLayout> {
        match self {
            Backing::Layout(l) => Some(l),
            _ => None,
        }
    }

    /// The entries of the index: named images, their children, referrers.
    pub fn entries(&self) -> Result<Vec<Descriptor>, StoreError> {
        match self {
            Backing::Layout(l) => l.entries(),
            Backing::Package { images, .. } => images.entries(),
            Backing::Archive { entries, .. } => Ok(entries.clone()),
            Backing::Cache(_) => Ok(Vec::new()),
        }
    }

    /// The version of the index, for sources another process may change (a layout `ferry pull` writes to).
    pub fn index_stamp(&self) -> Option<Stamp> {
        match self {
            Backing::Layout(l) => Stamp::of(&l.root().join("index.json")),
            _ => None,
        }
    }

    /// The size of a blob the index does not reach (pushed but not yet referenced, or in the cache).
    pub fn probe(&self, digest: &Digest) -> Option<u64> {
        let path = match self {
            Backing::Layout(l) => contained_blob(l, digest)?,
            Backing::Cache(c) => c.0.blob_path(digest),
            _ => return None,
        };
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    /// The file whose stamp keeps `digest` verified; `None` when the store verifies reads itself (the
    /// cache, with its own stamps) — and for a layout blob that resolves outside the layout, which is
    /// never read.
    pub fn stamp(&self, digest: &Digest) -> Result<Option<Stamp>, StoreError> {
        let path = match self {
            Backing::Layout(l) => {
                contained_blob(l, digest).ok_or_else(|| StoreError::NotFound {
                    store: l.describe(),
                    what: format!("blob {digest} (missing, or a link that leaves the layout)"),
                })?
            }
            Backing::Package { file, .. } | Backing::Archive { file, .. } => file.clone(),
            Backing::Cache(_) => return Ok(None),
        };
        Stamp::of(&path)
            .map(Some)
            .ok_or_else(|| StoreError::not_found(self.describe(), format!("blob {digest}")))
    }
}

/// The path of a layout blob, if it is there and resolves inside the layout (a planted symlink to a file
/// elsewhere is refused before anything is read).
fn contained_blob(layout: &OciLayout, digest: &Digest) -> Option<PathBuf> {
    let path = layout.blob_path(digest);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if meta.file_type().is_symlink() {
        let root = layout.root().canonicalize().ok()?;
        let real = path.canonicalize().ok()?;
        if !real.starts_with(&root) {
            tracing::warn!(
                "refusing blob {digest}: {} links outside the layout to {}",
                path.display(),
                real.display()
            );
            return None;
        }
    }
    Some(path)
}

async fn open_archive(file: &Path, temp_dir: Option<PathBuf>) -> Result<Backing, ServeError> {
    let spec = ferry_archive::SourceSpec::OciArchive {
        path: file.to_path_buf(),
        reference: None,
    };
    let opts = ferry_archive::SourceOptions {
        open: ferry_archive::OpenOptions { temp_dir },
        platform: None,
    };
    let source = ferry_archive::open_source(&spec, &opts)
        .await
        .map_err(|source| ServeError::Archive {
            source_name: file.display().to_string(),
            source,
        })?;
    let entries = source
        .images
        .iter()
        .map(|i| {
            let mut d = i.desc.clone();
            if let Some(n) = &i.name {
                d.annotations.insert(ANNOTATION_REF_NAME.into(), n.clone());
            }
            d
        })
        .collect();
    let store: Arc<dyn ReadStore> = source.store;
    Ok(Backing::Archive {
        store,
        entries,
        file: file.to_path_buf(),
    })
}

/// The blob cache as a read store: [`BlobCache::lookup`] verifies (by its stamps, else by hashing) and
/// evicts what is corrupt.
pub(crate) struct CacheStore(BlobCache);

impl Store for CacheStore {
    fn describe(&self) -> String {
        format!("blob cache {}", self.0.store_dir().display())
    }
}

impl ReadStore for CacheStore {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Bytes>> {
        Box::pin(async move {
            self.0.get_bytes(desc).await.ok_or_else(|| {
                StoreError::not_found(self.describe(), format!("manifest {}", desc.digest))
            })
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, ferry_store::Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            let path = self.0.lookup(desc).await.ok_or_else(|| {
                StoreError::not_found(self.describe(), format!("blob {}", desc.digest))
            })?;
            FileSource::blob(&path, offset).await
        })
    }
}
