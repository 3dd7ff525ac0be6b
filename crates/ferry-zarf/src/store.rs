//! A package's files as a content store: each file is the blob named by its digest, read where it lies (a
//! file, a byte range of a tar, memory) through ferry-archive's [`BlobMap`] — what the copy engine
//! publishes from and pushes images from.

use bytes::Bytes;
use ferry_archive::{BlobMap, BlobSource};
use ferry_oci::{Descriptor, Digest};
use ferry_store::{BoxFuture, ByteSource, ReadStore, Result, Store};

use crate::local::{FileEntry, LocalPackage, Location};

/// Blobs by digest; see the module docs.
#[derive(Clone, Debug)]
pub struct FileStore {
    blobs: BlobMap,
}

impl FileStore {
    /// An empty store, described as `describe` in messages.
    pub fn new(describe: impl Into<String>) -> FileStore {
        FileStore {
            blobs: BlobMap::new(describe),
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
            Location::Path(p) => BlobSource::File(p.clone()),
            Location::Range { file, offset } => BlobSource::Range {
                file: file.clone(),
                offset: *offset,
                size: entry.size,
                shown: file.clone(),
            },
            Location::Memory => match pkg.read(rel, u64::MAX) {
                Ok(Some(b)) => BlobSource::Memory(Bytes::from(b)),
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
            .insert(desc.digest.clone(), BlobSource::Memory(bytes));
        desc
    }

    /// Whether the blob `digest` is served.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        self.blobs.describe()
    }
}

impl ReadStore for FileStore {
    fn fetch_manifest<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<Bytes>> {
        self.blobs.fetch_manifest(desc)
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64)>> {
        self.blobs.fetch_blob(desc, offset)
    }

    fn holds(&self, digest: &Digest) -> Option<bool> {
        Some(self.blobs.contains(digest))
    }
}
