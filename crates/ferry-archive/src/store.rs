//! A read-only store over an indexed tar file: blobs are byte ranges of the file, served in 1 MiB chunks;
//! manifests ferry generated (legacy docker-save images) live in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};
use ferry_store::transfer::verify_bytes;
use ferry_store::{BoxFuture, ByteSource, Result, StoreError};
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

    fn not_found(&self, what: &str, digest: &Digest) -> StoreError {
        StoreError::NotFound {
            store: self.describe(),
            what: format!("{what} {digest}"),
        }
    }

    pub fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            if desc.size > ferry_oci::MAX_MANIFEST_BYTES {
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let bytes = match self.generated.get(&desc.digest) {
                Some(b) => b.clone(),
                None => {
                    let span = *self
                        .blobs
                        .get(&desc.digest)
                        .ok_or_else(|| self.not_found("manifest", &desc.digest))?;
                    if span.size != desc.size {
                        return Err(StoreError::SizeMismatch {
                            store: self.describe(),
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            actual: span.size,
                        });
                    }
                    let mut f = self.open_at(span.offset).await?;
                    let mut buf = vec![0u8; span.size as usize];
                    f.read_exact(&mut buf)
                        .await
                        .map_err(|e| StoreError::io(self.index.archive(), e))?;
                    Bytes::from(buf)
                }
            };
            verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(bytes)
        })
    }

    pub fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            if let Some(b) = self.generated.get(&desc.digest) {
                let rest = b.slice((offset as usize).min(b.len())..);
                return Ok((Box::new(Once(Some(rest))) as Box<dyn ByteSource>, offset));
            }
            let span = *self
                .blobs
                .get(&desc.digest)
                .ok_or_else(|| self.not_found("blob", &desc.digest))?;
            let offset = offset.min(span.size);
            let source = ferry_store::file::FileSource::range(
                self.index.file(),
                span.offset + offset,
                span.size - offset,
                self.index.archive(),
            )
            .await?;
            Ok((Box::new(source) as Box<dyn ByteSource>, offset))
        })
    }

    async fn open_at(&self, pos: u64) -> Result<tokio::fs::File> {
        let mut f = tokio::fs::File::open(self.index.file())
            .await
            .map_err(|e| StoreError::io(self.index.archive(), e))?;
        f.seek(std::io::SeekFrom::Start(pos))
            .await
            .map_err(|e| StoreError::io(self.index.archive(), e))?;
        Ok(f)
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
        }
    };
}
pub(crate) use delegate_read_store;
