//! Names in a layout: resolving an image name to its entry, and recording a copied image the way Zarf and
//! oras-go record it (both naming annotations; an index kept whole lists its manifests without names).

use bytes::Bytes;
use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, Manifest, media_type};

use crate::layout::record_image;
use crate::{BoxFuture, OciLayout, ReadStore, Resolver, Result, Store, StoreError, Tagger};

impl Resolver for OciLayout {
    /// `reference` is an image name (matched as [`OciLayout::find`] does) or the digest of an entry.
    fn resolve<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(Descriptor, Bytes)>> {
        Box::pin(async move { resolve_entry(self, self.entries()?, reference).await })
    }
}

/// The entry of `entries` (a layout's `index.json`, read by `store`) that `reference` names: an image name
/// (matched as [`OciLayout::find`] does) or an entry's digest; with its bytes.
pub async fn resolve_entry(
    store: &dyn ReadStore,
    entries: Vec<Descriptor>,
    reference: &str,
) -> Result<(Descriptor, Bytes)> {
    let found = match reference.parse::<Digest>() {
        Ok(d) => entries.into_iter().find(|e| e.digest == d),
        Err(_) => {
            let wanted = reference.parse::<ferry_oci::Reference>().ok();
            entries
                .into_iter()
                .find(|e| crate::layout::is_named(e, reference, wanted.as_ref()))
        }
    };
    let Some(entry) = found else {
        return Err(StoreError::NotFound {
            store: store.describe(),
            what: format!("image {reference}"),
        });
    };
    // The layout's naming annotations are not part of the image.
    let mut desc = entry;
    desc.annotations.remove(ANNOTATION_REF_NAME);
    desc.annotations.remove(ANNOTATION_BASE_NAME);
    let bytes = store.fetch_manifest(&desc).await?;
    Ok((desc, bytes))
}

impl Tagger for OciLayout {
    /// Record `desc` under `name` (both `ref.name` and `base.name`, as Zarf reads them). An index gets its
    /// manifests, nested ones included, listed as unnamed entries, as oras-go writes them.
    fn tag<'a>(
        &'a self,
        desc: &'a Descriptor,
        bytes: Bytes,
        name: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let children = self.manifests_below(desc, &bytes).await?;
            let named = named_entry(desc, name);
            self.update_index(move |entries| record_image(entries, named, children))
        })
    }

    fn keep<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let entry = desc.clone();
            self.update_index(move |entries| {
                if !entries.iter().any(|e| e.digest == entry.digest) {
                    entries.push(entry);
                }
            })
        })
    }
}

impl OciLayout {
    /// Every manifest below an index (depth first, each once), as its parent describes it; nothing for an
    /// image manifest. Nested manifests missing from the layout are skipped: an index exported from a
    /// Docker Engine holds one platform.
    async fn manifests_below(&self, desc: &Descriptor, bytes: &[u8]) -> Result<Vec<Descriptor>> {
        let mut out: Vec<Descriptor> = Vec::new();
        if !media_type::is_index(&desc.media_type) {
            return Ok(out);
        }
        let parse = |d: &Descriptor, b: &[u8]| {
            Manifest::parse(&d.media_type, b).map_err(|source| StoreError::Manifest {
                store: self.describe(),
                digest: d.digest.to_string(),
                source,
            })
        };
        let mut stack: Vec<Descriptor> = parse(desc, bytes)?.manifests.into_iter().rev().collect();
        while let Some(d) = stack.pop() {
            if out.iter().any(|o| o.digest == d.digest) || d.digest == desc.digest {
                continue;
            }
            if media_type::is_index(&d.media_type) {
                match self.fetch_manifest(&d).await {
                    Ok(b) => stack.extend(parse(&d, &b)?.manifests.into_iter().rev()),
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// A layout entry for `desc` named `name` with both annotations Zarf reads.
pub fn named_entry(desc: &Descriptor, name: &str) -> Descriptor {
    let mut named = desc.clone();
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), name.to_string());
    named
        .annotations
        .insert(ANNOTATION_BASE_NAME.into(), name.to_string());
    named
}
