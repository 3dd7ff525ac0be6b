//! A package's files as a content store: each file is the blob named by its digest, read where it lies (a
//! file, a byte range of a tar) — what the copy engine publishes from and pushes images from.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};
use ferry_store::file::FileSource;
use ferry_store::transfer::verify_bytes;
use ferry_store::{BoxFuture, ByteSource, ReadStore, Result, Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::local::{FileEntry, LocalPackage, Location};

#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Range {
        file: PathBuf,
        offset: u64,
        size: u64,
    },
    Memory(Bytes),
}

/// Blobs by digest; see the module docs.
#[derive(Clone, Debug)]
pub struct FileStore {
    describe: String,
    blobs: HashMap<Digest, Source>,
}

impl FileStore {
    pub fn new(describe: impl Into<String>) -> FileStore {
        FileStore {
            describe: describe.into(),
            blobs: HashMap::new(),
        }
    }

    /// Serve the package file `rel` as the blob `digest`; false when its bytes cannot be read (packed).
    pub fn add_file(
        &mut self,
        pkg: &LocalPackage,
        rel: &str,
        entry: &FileEntry,
        digest: &Digest,
    ) -> bool {
        let source = match &entry.location {
            Location::Path(p) => Source::File(p.clone()),
            Location::Range { file, offset } => Source::Range {
                file: file.clone(),
                offset: *offset,
                size: entry.size,
            },
            Location::Memory => match pkg.read(rel, u64::MAX) {
                Ok(Some(b)) => Source::Memory(Bytes::from(b)),
                _ => return false,
            },
            Location::Packed => return false,
        };
        self.blobs.insert(digest.clone(), source);
        true
    }

    /// Serve `bytes` (a generated manifest or config).
    pub fn add_bytes(&mut self, media_type: &str, bytes: Bytes) -> Descriptor {
        let desc = Descriptor::of(media_type, &bytes);
        self.blobs
            .insert(desc.digest.clone(), Source::Memory(bytes));
        desc
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    fn missing(&self, what: &str, digest: &Digest) -> StoreError {
        StoreError::NotFound {
            store: self.describe.clone(),
            what: format!("{what} {digest}"),
        }
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }
}

impl ReadStore for FileStore {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            if desc.size > ferry_oci::MAX_MANIFEST_BYTES {
                return Err(StoreError::Manifest {
                    store: self.describe(),
                    digest: desc.digest.to_string(),
                    source: ferry_oci::ManifestError::TooLarge { size: desc.size },
                });
            }
            let bytes = match self.blobs.get(&desc.digest) {
                None => return Err(self.missing("manifest", &desc.digest)),
                Some(Source::Memory(b)) => b.clone(),
                Some(Source::File(p)) => {
                    Bytes::from(tokio::fs::read(p).await.map_err(|e| StoreError::io(p, e))?)
                }
                Some(Source::Range { file, offset, size }) => {
                    if *size != desc.size {
                        return Err(StoreError::SizeMismatch {
                            store: self.describe(),
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            actual: *size,
                        });
                    }
                    let mut f = open_at(file, *offset).await?;
                    let mut buf = vec![0u8; *size as usize];
                    f.read_exact(&mut buf)
                        .await
                        .map_err(|e| StoreError::io(file, e))?;
                    Bytes::from(buf)
                }
            };
            verify_bytes(&self.describe(), desc, &bytes)?;
            Ok(bytes)
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move {
            let source: Box<dyn ByteSource> = match self.blobs.get(&desc.digest) {
                None => return Err(self.missing("blob", &desc.digest)),
                Some(Source::Memory(b)) => {
                    Box::new(Once(Some(b.slice((offset as usize).min(b.len())..))))
                }
                Some(Source::File(p)) => Box::new(FileSource::open(p, offset).await?),
                Some(Source::Range {
                    file,
                    offset: start,
                    size,
                }) => {
                    let offset = offset.min(*size);
                    Box::new(FileSource::range(file, start + offset, size - offset, file).await?)
                }
            };
            Ok((source, offset))
        })
    }
}

async fn open_at(path: &PathBuf, pos: u64) -> Result<tokio::fs::File> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| StoreError::io(path, e))?;
    f.seek(std::io::SeekFrom::Start(pos))
        .await
        .map_err(|e| StoreError::io(path, e))?;
    Ok(f)
}

struct Once(Option<Bytes>);

impl ByteSource for Once {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let next = self.0.take().filter(|b| !b.is_empty());
        Box::pin(async move { Ok(next) })
    }
}
