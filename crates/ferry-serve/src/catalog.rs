//! What the served registry holds, read from the source's index: repositories and their tags, the size
//! and media type of every manifest and blob the index reaches, and the referrers of each subject.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, Manifest, media_type};

use crate::backing::Backing;
use crate::names;

/// More nodes than any real layout has; a hostile one stops here instead of exhausting memory.
const MAX_NODES: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct Catalog {
    /// repository → tag → the manifest it names (without the layout's naming annotations).
    pub repositories: BTreeMap<String, BTreeMap<String, Tagged>>,
    /// Every manifest and blob the index reaches.
    pub content: HashMap<Digest, Known>,
    /// subject digest → the manifests that name it as their subject, as a referrers index lists them.
    pub referrers: HashMap<Digest, Vec<Descriptor>>,
}

/// A tag and the full image name it was read from (a push to the same tag records under that name).
#[derive(Clone, Debug)]
pub(crate) struct Tagged {
    pub desc: Descriptor,
    pub image_name: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub size: u64,
    pub media_type: String,
}

impl Catalog {
    /// Read `backing`'s index and walk what it reaches. A manifest that is missing or fails verification is
    /// logged and left out: it is answered with an error when asked for, and the rest is served.
    pub async fn load(
        backing: &Backing,
        zarf_names: bool,
    ) -> Result<Catalog, ferry_store::StoreError> {
        let mut catalog = Catalog::default();
        let entries = backing.entries()?;
        for entry in &entries {
            catalog.name(entry, zarf_names);
        }
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut stack: Vec<Descriptor> = entries.into_iter().map(plain).collect();
        while let Some(desc) = stack.pop() {
            if !seen.insert(desc.digest.clone()) || seen.len() > MAX_NODES {
                continue;
            }
            catalog.content.insert(
                desc.digest.clone(),
                Known {
                    size: desc.size,
                    media_type: desc.media_type.clone(),
                },
            );
            if !media_type::is_manifest_like(&desc.media_type) {
                continue;
            }
            let manifest = match backing.store().fetch_manifest(&desc).await {
                Ok(bytes) => match Manifest::parse(&desc.media_type, &bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(
                            "{}: manifest {} is invalid: {e}",
                            backing.describe(),
                            desc.digest
                        );
                        continue;
                    }
                },
                Err(e) => {
                    // A Docker export holds one platform of its index: the others are simply absent.
                    tracing::debug!("{}: {e}", backing.describe());
                    continue;
                }
            };
            if let Some(subject) = &manifest.subject {
                let list = catalog.referrers.entry(subject.digest.clone()).or_default();
                if !list.iter().any(|d| d.digest == desc.digest) {
                    list.push(manifest.referrer_descriptor(&desc));
                }
            }
            stack.extend(
                manifest
                    .manifests
                    .into_iter()
                    .chain(manifest.config)
                    .chain(manifest.layers)
                    .filter(|d| !media_type::is_non_distributable(&d.media_type)),
            );
        }
        if seen.len() > MAX_NODES {
            tracing::warn!(
                "{}: more than {MAX_NODES} nodes; serving the first ones",
                backing.describe()
            );
        }
        Ok(catalog)
    }

    /// List `entry` under the names it is served by. Two images whose names differ only in their host
    /// collide once the host is dropped: the first keeps the name, and the clash is logged.
    fn name(&mut self, entry: &Descriptor, zarf_names: bool) {
        let Some(image_name) = entry.image_name() else {
            return;
        };
        let Some(served) = names::served(&image_name, zarf_names) else {
            return;
        };
        let tags = self
            .repositories
            .entry(served.repository.clone())
            .or_default();
        for tag in served.tags {
            match tags.get(&tag) {
                Some(t) if t.desc.digest != entry.digest => tracing::warn!(
                    "{image_name} is not served as {}:{tag}: {} already is",
                    served.repository,
                    t.image_name
                ),
                Some(_) => {}
                None => {
                    tags.insert(
                        tag,
                        Tagged {
                            desc: plain(entry.clone()),
                            image_name: image_name.clone(),
                        },
                    );
                }
            }
        }
    }

    /// What a digest is, if the index reaches it.
    pub fn known(&self, digest: &Digest) -> Option<&Known> {
        self.content.get(digest)
    }
}

/// A descriptor without the layout's naming annotations, which are not part of the image.
fn plain(mut desc: Descriptor) -> Descriptor {
    desc.annotations.remove(ANNOTATION_REF_NAME);
    desc.annotations.remove(ANNOTATION_BASE_NAME);
    desc
}
