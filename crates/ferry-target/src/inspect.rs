//! What a location names, described: the manifest or index, its platforms, layers, config and the bytes a
//! copy of it moves. `ferry inspect`, `ferry digest` and `ferry layout ls` print what this finds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Manifest, ManifestKind, Platform, PlatformSpec, media_type};
use ferry_store::{OciLayout, ReadStore, StoreError};
use serde::Serialize;

use crate::{Location, OpenContext, TargetError};

/// The largest config read to learn a platform or to print; configs are small, a bigger blob is not one.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// One manifest or index a location names, read and parsed.
pub struct Opened {
    /// Where its content lives.
    pub store: Arc<dyn ReadStore>,
    /// The location as written (with the platform, once one is chosen).
    pub label: String,
    /// The layout or archive entry's name, when it has one.
    pub name: Option<String>,
    /// Its descriptor (without a layout's naming annotations).
    pub desc: Descriptor,
    /// Its exact bytes.
    pub bytes: Bytes,
    /// Its parsed form.
    pub manifest: Manifest,
}

/// What [`Opened::describe`] finds, as `ferry inspect --json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The location as written.
    pub reference: String,
    /// The entry's name in a layout or archive.
    pub name: Option<String>,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The artifact type, from the manifest or its descriptor.
    pub artifact_type: Option<String>,
    /// `index` or `manifest`.
    pub kind: &'static str,
    /// The platform: the descriptor's, else the image config's.
    pub platform: Option<String>,
    /// An index's manifests.
    pub manifests: Vec<ChildInfo>,
    /// An image's config.
    pub config: Option<Descriptor>,
    /// An image's layers.
    pub layers: Vec<Descriptor>,
    /// The image this artifact is about.
    pub subject: Option<Descriptor>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// Bytes a copy moves: every distinct manifest, config and distributable layer below, once.
    pub total_size: u64,
    /// Whether every manifest below could be read (a layout may hold one platform of an index).
    pub complete: bool,
}

/// One manifest of an index, in an [`Inspection`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildInfo {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The platform the index gives it.
    pub platform: Option<String>,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// The index's annotations for it.
    pub annotations: BTreeMap<String, String>,
    /// Bytes a copy of it moves; None when a manifest below is missing.
    pub total_size: Option<u64>,
}

/// [`open`], then for an index the manifest for `platform` if one is given ([`Opened::for_platform`]).
pub async fn open_for(
    location: &Location,
    ctx: &OpenContext,
    platform: Option<&PlatformSpec>,
) -> Result<Opened, TargetError> {
    let opened = open(location, ctx).await?;
    match platform {
        Some(p) => opened.for_platform(p).await,
        None => Ok(opened),
    }
}

/// The descriptor of what `location` names (`ferry digest`): a registry reference without a platform costs
/// one `HEAD` request; anything else is opened ([`open_for`]).
pub async fn descriptor(
    location: &Location,
    ctx: &OpenContext,
    platform: Option<&PlatformSpec>,
) -> Result<Descriptor, TargetError> {
    match (location, platform) {
        (Location::Registry(r), None) => {
            let repo =
                ferry_registry::Repository::new(ctx.client.clone(), &r.registry, &r.repository);
            repo.head_manifest(&r.target())
                .await
                .map_err(|e| TargetError::Store {
                    location: location.to_string(),
                    source: e.into(),
                })
        }
        _ => Ok(open_for(location, ctx, platform).await?.desc),
    }
}

/// One entry of a layout's `index.json`, as `ferry layout ls` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutEntry {
    /// The name ferry and Zarf know the image by ([`Descriptor::image_name`]'s priority).
    pub name: Option<String>,
    /// Its `org.opencontainers.image.ref.name`.
    pub ref_name: Option<String>,
    /// Its `org.opencontainers.image.base.name` (Zarf reads either).
    pub base_name: Option<String>,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// The entry's platform, else its config's, else those of the index's manifests ([`platforms`]).
    pub platforms: Vec<String>,
}

/// Every entry of `layout`, described.
pub async fn layout_entries(layout: &OciLayout) -> Result<Vec<LayoutEntry>, StoreError> {
    use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
    let mut out = Vec::new();
    for d in layout.entries()? {
        out.push(LayoutEntry {
            name: d.image_name(),
            ref_name: d.annotation(ANNOTATION_REF_NAME).map(str::to_string),
            base_name: d.annotation(ANNOTATION_BASE_NAME).map(str::to_string),
            platforms: platforms(layout, &d).await,
            digest: d.digest.to_string(),
            media_type: d.media_type,
            size: d.size,
            artifact_type: d.artifact_type,
        });
    }
    Ok(out)
}

/// Open the one image `location` names. A layout or archive holding several needs a name; a layout name
/// may also be the digest of a manifest below an entry (a platform of an index).
pub async fn open(location: &Location, ctx: &OpenContext) -> Result<Opened, TargetError> {
    let label = location.to_string();
    let invalid = |why: String| TargetError::Invalid {
        location: label.clone(),
        why,
    };
    let store_error = |source| TargetError::Store {
        location: label.clone(),
        source,
    };
    let (store, name, desc, bytes): (Arc<dyn ReadStore>, _, _, _) = match location {
        Location::Layout { dir, name } => {
            let layout = ferry_store::OciLayout::open_in(dir).map_err(store_error)?;
            let (desc, entry_name) = find_entry(&layout, name.as_deref()).map_err(invalid)?;
            let bytes = layout.fetch_manifest(&desc).await.map_err(store_error)?;
            (Arc::new(layout), entry_name, desc, bytes)
        }
        _ => {
            let source = location.open_source(ctx).await?;
            let [image] = source.images.as_slice() else {
                let names: Vec<String> = source
                    .images
                    .iter()
                    .map(|i| i.name.clone().unwrap_or_else(|| i.key.clone()))
                    .collect();
                return Err(invalid(format!(
                    "it holds {} images; name one with FILE:REF ({})",
                    names.len(),
                    names.join(", ")
                )));
            };
            let (desc, bytes) = source
                .target
                .resolve(&image.key)
                .await
                .map_err(store_error)?;
            let name = match location {
                Location::Registry(_) => None,
                _ => image.name.clone(),
            };
            (source.target, name, desc, bytes)
        }
    };
    let manifest = parse(&desc, &bytes, store.as_ref()).map_err(store_error)?;
    Ok(Opened {
        store,
        label,
        name,
        desc,
        bytes,
        manifest,
    })
}

fn parse(desc: &Descriptor, bytes: &[u8], store: &dyn ReadStore) -> Result<Manifest, StoreError> {
    Manifest::parse(&desc.media_type, bytes).map_err(|source| StoreError::Manifest {
        store: store.describe(),
        digest: desc.digest.to_string(),
        source,
    })
}

/// The entry `name` names (by `ref.name`, `base.name` or normalized name — both Zarf eras — or by digest,
/// which may also be a nested manifest), or the only image when no name is given. The descriptor comes
/// back without the layout's naming annotations. Errors are the reason, to be given with the location.
fn find_entry(
    layout: &OciLayout,
    name: Option<&str>,
) -> Result<(Descriptor, Option<String>), String> {
    let dir = layout.root().display().to_string();
    let entries = layout.entries().map_err(|e| e.to_string())?;
    let names = || {
        let mut all: Vec<String> = entries.iter().filter_map(|e| e.image_name()).collect();
        all.dedup();
        all.join(", ")
    };
    let digest = name.and_then(|n| n.parse::<Digest>().ok());
    let found: Vec<Descriptor> = match (name, &digest) {
        (None, _) => entries.clone(),
        (Some(_), Some(d)) => entries.iter().filter(|e| e.digest == *d).cloned().collect(),
        (Some(n), None) => layout.find(n).map_err(|e| e.to_string())?,
    };
    let mut distinct: Vec<&Descriptor> = Vec::new();
    for f in &found {
        if !distinct.iter().any(|d| d.digest == f.digest) {
            distinct.push(f);
        }
    }
    match (distinct.as_slice(), name) {
        ([one], _) => {
            let mut desc = (*one).clone();
            desc.annotations.clear();
            Ok((desc, one.image_name()))
        }
        // Not an entry: a manifest below one (a platform of an index), found by its blob.
        ([], Some(n)) => match digest {
            Some(d) => {
                let path = layout.blob_path(&d);
                let size = std::fs::metadata(&path)
                    .map_err(|_| format!("{n} is not in {dir}: no entry and no blob"))?
                    .len();
                if size > ferry_oci::MAX_MANIFEST_BYTES {
                    return Err(format!(
                        "blob {n} in {dir} is {size} bytes: too large to be a manifest"
                    ));
                }
                let bytes = std::fs::read(&path)
                    .map_err(|_| format!("{n} is not in {dir}: no entry and no blob"))?;
                let manifest = Manifest::parse("", &bytes)
                    .map_err(|e| format!("blob {n} in {dir} is not a manifest: {e}"))?;
                let size = bytes.len() as u64;
                Ok((Descriptor::new(manifest.media_type, d, size), None))
            }
            None => Err(format!("no image named {n} in {dir}; it has: {}", names())),
        },
        ([], None) => Err(format!("{dir} has no images")),
        (_, _) => Err(format!(
            "{} images in {dir} match; name one (oci:{dir}:NAME): {}",
            distinct.len(),
            names()
        )),
    }
}

impl Opened {
    /// For an index: its first manifest for `spec`, fetched. Anything else is returned unchanged.
    pub async fn for_platform(self, spec: &PlatformSpec) -> Result<Opened, TargetError> {
        if self.manifest.kind != ManifestKind::Index {
            return Ok(self);
        }
        let store_error = |source| TargetError::Store {
            location: self.label.clone(),
            source,
        };
        let child = self
            .manifest
            .manifests
            .iter()
            .find(|c| c.platform.as_ref().is_some_and(|cp| spec.matches(cp)))
            .ok_or_else(|| TargetError::Invalid {
                location: self.label.clone(),
                why: format!(
                    "no manifest for {spec}; it has: {}",
                    self.platforms().join(", ")
                ),
            })?;
        let desc = Descriptor::new(child.media_type.clone(), child.digest.clone(), child.size);
        let bytes = self
            .store
            .fetch_manifest(&desc)
            .await
            .map_err(store_error)?;
        let manifest = parse(&desc, &bytes, self.store.as_ref()).map_err(store_error)?;
        Ok(Opened {
            label: format!("{} ({spec})", self.label),
            desc: Descriptor {
                platform: child.platform.clone(),
                ..desc
            },
            bytes,
            manifest,
            ..self
        })
    }

    /// The platforms an index lists (`-` for a manifest without one).
    pub fn platforms(&self) -> Vec<String> {
        self.manifest
            .manifests
            .iter()
            .map(|c| c.platform.as_ref().map_or("-".into(), |p| p.to_string()))
            .collect()
    }

    /// The image config's bytes; an index (choose a platform) and an artifact without a config have none.
    pub async fn config(&self) -> Result<Bytes, TargetError> {
        let Some(config) = &self.manifest.config else {
            let why = if self.manifest.kind == ManifestKind::Index {
                format!(
                    "an index has no config; choose a manifest with a platform ({})",
                    self.platforms().join(", ")
                )
            } else {
                "it has no config".into()
            };
            return Err(TargetError::Invalid {
                location: self.label.clone(),
                why,
            });
        };
        ferry_store::file::read_small(self.store.as_ref(), config, MAX_CONFIG_BYTES)
            .await
            .map_err(|source| TargetError::Store {
                location: format!("the config of {}", self.label),
                source,
            })
    }

    /// Everything `ferry inspect` shows, the total size included (which reads every manifest below).
    pub async fn describe(&self) -> Result<Inspection, TargetError> {
        let store_error = |source| TargetError::Store {
            location: self.label.clone(),
            source,
        };
        let m = &self.manifest;
        let store = self.store.as_ref();
        let mut parsed: HashMap<Digest, Manifest> = HashMap::new();
        parsed.insert(self.desc.digest.clone(), m.clone());
        let mut manifests = Vec::new();
        for child in &m.manifests {
            let (total, complete) = total_size(store, child, &mut parsed)
                .await
                .map_err(store_error)?;
            manifests.push(ChildInfo {
                media_type: child.media_type.clone(),
                digest: child.digest.to_string(),
                size: child.size,
                platform: child.platform.as_ref().map(|p| p.to_string()),
                artifact_type: child.artifact_type.clone(),
                annotations: child.annotations.clone(),
                total_size: complete.then_some(total),
            });
        }
        let (total, complete) = total_size(store, &self.desc, &mut parsed)
            .await
            .map_err(store_error)?;
        let platform = match (&self.desc.platform, &m.config) {
            (Some(p), _) => Some(p.to_string()),
            (None, Some(config)) => config_platform(store, config).await.map(|p| p.to_string()),
            (None, None) => None,
        };
        Ok(Inspection {
            reference: self.label.clone(),
            name: self.name.clone(),
            media_type: self.desc.media_type.clone(),
            digest: self.desc.digest.to_string(),
            size: self.desc.size,
            artifact_type: m
                .artifact_type
                .clone()
                .or_else(|| self.desc.artifact_type.clone()),
            kind: match m.kind {
                ManifestKind::Index => "index",
                ManifestKind::Image => "manifest",
            },
            platform,
            manifests,
            config: m.config.clone(),
            layers: m.layers.clone(),
            subject: m.subject.clone(),
            annotations: m.annotations.clone(),
            total_size: total,
            complete,
        })
    }
}

/// Bytes of every distinct node under `root` that a copy moves (manifests, configs, distributable layers;
/// not the subject, which is another image), and whether every manifest below could be read. `parsed`
/// keeps the manifests read, for the next call.
pub async fn total_size(
    store: &dyn ReadStore,
    root: &Descriptor,
    parsed: &mut HashMap<Digest, Manifest>,
) -> Result<(u64, bool), StoreError> {
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    let (mut total, mut complete) = (0u64, true);
    while let Some(desc) = stack.pop() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        total += desc.size;
        if !media_type::is_manifest_like(&desc.media_type) {
            continue;
        }
        if !parsed.contains_key(&desc.digest) {
            let plain = Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
            match store.fetch_manifest(&plain).await {
                Ok(bytes) => {
                    parsed.insert(desc.digest.clone(), parse(&plain, &bytes, store)?);
                }
                // A layout may hold one platform of an index (Docker exports do).
                Err(StoreError::NotFound { .. }) => {
                    complete = false;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let m = &parsed[&desc.digest];
        stack.extend(m.manifests.iter().cloned());
        stack.extend(m.config.iter().cloned());
        stack.extend(
            m.layers
                .iter()
                .filter(|l| !media_type::is_non_distributable(&l.media_type))
                .cloned(),
        );
    }
    Ok((total, complete))
}

/// The platform an image config declares; None for artifacts or when it cannot be read (logged).
pub async fn config_platform(store: &dyn ReadStore, config: &Descriptor) -> Option<Platform> {
    if !media_type::is_image_config(&config.media_type) {
        return None;
    }
    match ferry_store::file::read_small(store, config, ferry_oci::MAX_MANIFEST_BYTES).await {
        Ok(bytes) => Platform::from_config(&bytes),
        Err(e) => {
            tracing::debug!("config {}: {e}", config.digest);
            None
        }
    }
}

/// The platforms of an entry: its descriptor's, else its config's, else those its index lists; empty when
/// unknown (artifacts, missing blobs).
pub async fn platforms(store: &dyn ReadStore, desc: &Descriptor) -> Vec<String> {
    if let Some(p) = &desc.platform {
        return vec![p.to_string()];
    }
    let Some(manifest) = store
        .fetch_manifest(desc)
        .await
        .ok()
        .and_then(|b| Manifest::parse(&desc.media_type, &b).ok())
    else {
        return Vec::new();
    };
    match (manifest.kind, &manifest.config) {
        (ManifestKind::Index, _) => manifest
            .manifests
            .iter()
            .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
            .collect(),
        (ManifestKind::Image, Some(config)) => config_platform(store, config)
            .await
            .map(|p| vec![p.to_string()])
            .unwrap_or_default(),
        (ManifestKind::Image, None) => Vec::new(),
    }
}
