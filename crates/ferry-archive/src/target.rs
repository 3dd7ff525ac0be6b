//! An opened archive as a copy source: its store, and its images' names to resolve.

use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Reference};
use ferry_store::{BoxFuture, ByteSource, ReadStore, Referrer, Resolver, Store, StoreError};

use crate::names::ArchiveImage;

/// A read-only archive (or Docker Engine export) whose names are those of its images, normalized, or
/// their digests.
pub struct ArchiveTarget {
    store: Arc<dyn ReadStore>,
    images: Vec<ArchiveImage>,
}

impl ArchiveTarget {
    /// A target over `store` whose names are those of `images`.
    pub fn new(store: Arc<dyn ReadStore>, images: Vec<ArchiveImage>) -> ArchiveTarget {
        ArchiveTarget { store, images }
    }

    fn find(&self, reference: &str) -> Option<&ArchiveImage> {
        if let Ok(d) = reference.parse::<Digest>() {
            return self.images.iter().find(|i| i.desc.digest == d);
        }
        let wanted = reference.parse::<Reference>().ok().map(|r| r.to_string());
        self.images.iter().find(|i| {
            i.name.as_deref() == Some(reference)
                || (wanted.is_some() && i.name.as_deref() == wanted.as_deref())
        })
    }
}

impl Store for ArchiveTarget {
    fn describe(&self) -> String {
        self.store.describe()
    }
}

impl Resolver for ArchiveTarget {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<(Descriptor, Bytes)>> {
        Box::pin(async move {
            let image = self.find(reference).ok_or_else(|| {
                StoreError::not_found(self.describe(), format!("image {reference}"))
            })?;
            let bytes = self.store.fetch_manifest(&image.desc).await?;
            Ok((image.desc.clone(), bytes))
        })
    }
}

impl ReadStore for ArchiveTarget {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Bytes>> {
        self.store.fetch_manifest(desc)
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, ferry_store::Result<(Box<dyn ByteSource>, u64)>> {
        self.store.fetch_blob(desc, offset)
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Vec<Referrer>>> {
        self.store.referrers(subject)
    }

    fn holds(&self, digest: &Digest) -> Option<bool> {
        self.store.holds(digest)
    }
}
