//! A read-only store over an indexed tar file: blobs are byte ranges of the file, served in 1 MiB chunks;
//! manifests ferry generated (legacy docker-save images) live in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};
use ferry_store::file::FileSource;
use ferry_store::transfer::verify_bytes;
use ferry_store::{BoxFuture, ByteSource, ReadStore, Result, Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::compress::{Compression, decompress_to_temp};
use crate::error::ArchiveError;
use crate::tarindex::{Span, TarIndex};

/// Where temporary copies go (decompressed archives, daemon exports).
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Defaults to the system temp directory. A decompressed archive needs as much room as the tar inside;
    /// where `/tmp` is a RAM disk, point this at disk (e.g. beside the destination layout).
    pub temp_dir: Option<PathBuf>,
}

impl OpenOptions {
    pub(crate) fn temp_dir(&self) -> PathBuf {
        self.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

pub(crate) struct ArchiveStore {
    pub index: TarIndex,
    pub blobs: HashMap<Digest, Span>,
    pub generated: HashMap<Digest, Bytes>,
    describe: String,
    /// A decompressed or spooled copy of the archive, removed when the store is dropped.
    _temp: Option<tempfile::TempPath>,
}

impl ArchiveStore {
    /// Index `archive` (decompressing it to a temp file first if it is gzip or zstd).
    pub fn open(
        archive: &Path,
        opts: &OpenOptions,
        kind: &str,
    ) -> std::result::Result<ArchiveStore, ArchiveError> {
        let compression = Compression::sniff(archive)?;
        let temp = match compression {
            Compression::None => None,
            c => Some(decompress_to_temp(archive, c, &opts.temp_dir())?),
        };
        let file = temp.as_deref().unwrap_or(archive);
        let index = TarIndex::scan(file, archive)?;
        Ok(Self::new(
            index,
            temp,
            format!("{kind} {}", archive.display()),
        ))
    }

    /// A store over a temp file that is already an uncompressed tar (a daemon export), deleted on drop.
    pub fn open_temp(
        temp: tempfile::TempPath,
        describe: String,
        name: &Path,
    ) -> std::result::Result<ArchiveStore, ArchiveError> {
        let index = TarIndex::scan(&temp, name)?;
        Ok(Self::new(index, Some(temp), describe))
    }

    fn new(index: TarIndex, temp: Option<tempfile::TempPath>, describe: String) -> ArchiveStore {
        ArchiveStore {
            index,
            blobs: HashMap::new(),
            generated: HashMap::new(),
            describe,
            _temp: temp,
        }
    }

    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    /// Whether the archive has blob `digest` (a file under `blobs/`, or a manifest generated in memory).
    pub fn holds(&self, digest: &Digest) -> bool {
        self.generated.contains_key(digest) || self.blobs.contains_key(digest)
    }

    fn not_found(&self, what: &str, digest: &Digest) -> StoreError {
        StoreError::NotFound {
            store: self.describe(),
            what: format!("{what} {digest}"),
        }
    }

    /// Where blob `digest` is: a generated manifest in memory, or a byte range of the tar.
    fn source(&self, what: &str, digest: &Digest) -> Result<BlobSource> {
        if let Some(b) = self.generated.get(digest) {
            return Ok(BlobSource::Memory(b.clone()));
        }
        let span = self
            .blobs
            .get(digest)
            .ok_or_else(|| self.not_found(what, digest))?;
        Ok(BlobSource::Range {
            file: self.index.file().to_path_buf(),
            offset: span.offset,
            size: span.size,
            shown: self.index.archive().to_path_buf(),
        })
    }

    pub fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let source = self.source("manifest", &desc.digest)?;
            source.manifest(&self.describe, desc).await
        })
    }

    pub fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move { self.source("blob", &desc.digest)?.open(offset).await })
    }
}

/// Where one blob's bytes are on this machine: a whole file, a byte range of a file (an entry of a tar),
/// or memory (a generated manifest). The one reader of the three, for every local store that is not a
/// layout directory.
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// A whole file.
    File(PathBuf),
    /// `size` bytes of `file` from `offset` (an entry of an uncompressed tar, read in place).
    Range {
        /// The file read.
        file: PathBuf,
        /// Where the blob starts in it.
        offset: u64,
        /// The blob's length.
        size: u64,
        /// What errors name: the archive the user gave, where `file` may be a temp copy of it.
        shown: PathBuf,
    },
    /// Bytes held in memory.
    Memory(Bytes),
}

impl BlobSource {
    /// The blob as a manifest: at most [`ferry_oci::MAX_MANIFEST_BYTES`], verified against `desc`.
    pub async fn manifest(&self, store: &str, desc: &Descriptor) -> Result<Bytes> {
        if desc.size > ferry_oci::MAX_MANIFEST_BYTES {
            return Err(StoreError::Manifest {
                store: store.to_string(),
                digest: desc.digest.to_string(),
                source: ferry_oci::ManifestError::TooLarge { size: desc.size },
            });
        }
        let bytes = match self {
            BlobSource::Memory(b) => b.clone(),
            // One byte more than the descriptor says, so a longer file fails verification.
            BlobSource::File(path) => read_range(path, 0, desc.size + 1, path).await?,
            BlobSource::Range {
                file,
                offset,
                size,
                shown,
            } => {
                if *size != desc.size {
                    return Err(StoreError::SizeMismatch {
                        store: store.to_string(),
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: *size,
                    });
                }
                read_range(file, *offset, *size, shown).await?
            }
        };
        verify_bytes(store, desc, &bytes)?;
        Ok(bytes)
    }

    /// The blob's bytes from `offset` (clamped to its end); returns where they really start.
    pub async fn open(&self, offset: u64) -> Result<(Box<dyn ByteSource>, u64)> {
        let source: Box<dyn ByteSource> = match self {
            BlobSource::Memory(b) => {
                Box::new(Once(Some(b.slice((offset as usize).min(b.len())..))))
            }
            BlobSource::File(p) => Box::new(FileSource::open(p, offset).await?),
            BlobSource::Range {
                file,
                offset: start,
                size,
                shown,
            } => {
                let offset = offset.min(*size);
                return Ok((
                    Box::new(FileSource::range(file, start + offset, size - offset, shown).await?),
                    offset,
                ));
            }
        };
        Ok((source, offset))
    }
}

/// Up to `len` bytes of `path` from `offset`.
async fn read_range(path: &Path, offset: u64, len: u64, shown: &Path) -> Result<Bytes> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| StoreError::io(shown, e))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| StoreError::io(shown, e))?;
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| StoreError::io(shown, e))?;
    Ok(Bytes::from(buf))
}

/// A read store over blobs wherever they lie ([`BlobSource`]), by digest.
#[derive(Clone, Debug)]
pub struct BlobMap {
    describe: String,
    blobs: HashMap<Digest, BlobSource>,
}

impl BlobMap {
    /// An empty map, described as `describe` in messages.
    pub fn new(describe: impl Into<String>) -> BlobMap {
        BlobMap {
            describe: describe.into(),
            blobs: HashMap::new(),
        }
    }

    /// Say where the blob `digest` is (replacing any earlier source). Not verified here: every read is.
    pub fn insert(&mut self, digest: Digest, source: BlobSource) {
        self.blobs.insert(digest, source);
    }

    /// Whether the map knows where `digest` is.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    fn get(&self, what: &str, digest: &Digest) -> Result<&BlobSource> {
        self.blobs.get(digest).ok_or_else(|| StoreError::NotFound {
            store: self.describe.clone(),
            what: format!("{what} {digest}"),
        })
    }
}

impl Store for BlobMap {
    fn describe(&self) -> String {
        self.describe.clone()
    }
}

impl ReadStore for BlobMap {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            self.get("manifest", &desc.digest)?
                .manifest(&self.describe, desc)
                .await
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move { self.get("blob", &desc.digest)?.open(offset).await })
    }
}

struct Once(Option<Bytes>);

impl ByteSource for Once {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let next = self.0.take().filter(|b| !b.is_empty());
        Box::pin(async move { Ok(next) })
    }
}

/// `Store` + `ReadStore` for a type whose `store` field is an [`ArchiveStore`].
macro_rules! delegate_read_store {
    ($ty:ty) => {
        impl ferry_store::Store for $ty {
            fn describe(&self) -> String {
                self.store.describe()
            }
        }

        impl ferry_store::ReadStore for $ty {
            fn fetch_manifest<'a>(
                &'a self,
                desc: &'a ferry_oci::Descriptor,
            ) -> ferry_store::BoxFuture<'a, ferry_store::Result<bytes::Bytes>> {
                self.store.fetch_manifest(desc)
            }

            fn fetch_blob<'a>(
                &'a self,
                desc: &'a ferry_oci::Descriptor,
                offset: u64,
            ) -> ferry_store::BoxFuture<
                'a,
                ferry_store::Result<(Box<dyn ferry_store::ByteSource>, u64)>,
            > {
                self.store.fetch_blob(desc, offset)
            }

            fn holds(&self, digest: &ferry_oci::Digest) -> Option<bool> {
                Some(self.store.holds(digest))
            }
        }
    };
}
pub(crate) use delegate_read_store;
