//! `docker save` archives, both formats:
//!
//! - Engine ≥ 25: an OCI layout inside the tar, plus the legacy `manifest.json` beside it. Under the
//!   containerd image store the `index.json` entry is the upstream index, with only the local platform's
//!   blobs present; under the graph-driver store it is one OCI manifest with uncompressed layers.
//! - Legacy (Docker < 25, podman, `skopeo copy … docker-archive:`): `manifest.json`, `<config>.json`,
//!   `<id>/layer.tar` (or `<diffid>.tar`), uncompressed. Converted here into an OCI image: config and
//!   layers as given, a manifest generated deterministically.
//!
//! Every blob is named by the sha256 of its bytes, never by the engine's image ID (which can be the
//! manifest's digest rather than the config's).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher, Manifest, ManifestKind, media_type};
use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::error::{ArchiveError, Result};
use crate::names::{self, ArchiveImage};
use crate::ocitar;
use crate::store::{ArchiveStore, OpenOptions, delegate_read_store};
use crate::tarindex::{MAX_METADATA_BYTES, Span, TarIndex, normalize};

const MANIFEST_JSON: &str = "manifest.json";

/// Which `docker save` format an archive is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DockerFormat {
    /// Engine ≥ 25: an OCI layout (plus `manifest.json`).
    Oci,
    /// `manifest.json`, `<config>.json`, uncompressed layer tars; converted to OCI on open.
    Legacy,
}

/// A `docker save` tarball (optionally gzip- or zstd-compressed, as `docker load` accepts) as a store.
pub struct DockerArchive {
    store: ArchiveStore,
    images: Vec<ArchiveImage>,
    format: DockerFormat,
}

delegate_read_store!(DockerArchive);

/// One image of `manifest.json`.
#[derive(Deserialize)]
struct SaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

impl DockerArchive {
    /// Open and index `path`. Blocking: reads every header, and hashes every layer of a legacy archive
    /// once (to name it); call it from `spawn_blocking` in async code.
    pub fn open(path: &Path) -> Result<DockerArchive> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// [`DockerArchive::open`] with `opts` (limits, where a compressed archive is spooled).
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<DockerArchive> {
        Self::from_store(ArchiveStore::open(path, opts, "docker-archive")?)
    }

    pub(crate) fn from_store(mut store: ArchiveStore) -> Result<DockerArchive> {
        let save = read_save_manifest(&store.index)?;
        let (images, format) = if ocitar::is_layout(&store.index) {
            let (blobs, entries) = ocitar::read(&store.index)?;
            store.blobs = blobs;
            let images = oci_images(&store, &entries, save.as_deref().unwrap_or_default());
            (images, DockerFormat::Oci)
        } else if let Some(save) = save {
            (convert_legacy(&mut store, &save)?, DockerFormat::Legacy)
        } else {
            return Err(ArchiveError::invalid(
                store.index.archive(),
                "not a docker save archive: it has neither an OCI layout (oci-layout, index.json) nor manifest.json",
            ));
        };
        Ok(DockerArchive {
            store,
            images,
            format,
        })
    }

    /// Which of the two `docker save` formats the archive is.
    pub fn format(&self) -> DockerFormat {
        self.format
    }

    /// Every image, once per name, in archive order.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// The image `name` names (a reference, normalized before comparing; or a manifest digest). A missing
    /// name errors with the names found.
    pub fn resolve(&self, name: &str) -> Result<&ArchiveImage> {
        names::resolve(&self.images, name, &self.store.describe())
    }

    /// The only image of the archive; errors listing the names when there are several.
    pub fn single(&self) -> Result<&ArchiveImage> {
        names::single(self.images.iter().collect(), &self.store.describe())
    }
}

fn read_save_manifest(index: &TarIndex) -> Result<Option<Vec<SaveEntry>>> {
    if index.get(MANIFEST_JSON).is_none() {
        return Ok(None);
    }
    let bytes = index.read_small(MANIFEST_JSON)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ArchiveError::entry(index.archive(), MANIFEST_JSON, format!("invalid: {e}")))
}

/// The images of an OCI-layout save. `RepoTags` are used only for entries without a containerd name; they
/// are matched through the config (or manifest) digest that `manifest.json` points at.
fn oci_images(
    store: &ArchiveStore,
    entries: &[Descriptor],
    save: &[SaveEntry],
) -> Vec<ArchiveImage> {
    let mut images = Vec::new();
    for entry in entries {
        let has_containerd_name = entry.annotations.keys().any(|k| {
            k == ferry_oci::descriptor::ANNOTATION_CONTAINERD_NAME
                || k.starts_with(ferry_oci::descriptor::ANNOTATION_DISTRIBUTION_SOURCE)
        });
        let mut tags = Vec::new();
        if !has_containerd_name && !save.is_empty() {
            let digests = digests_under(store, entry);
            for s in save {
                let hex = save_config_hex(&s.config);
                if digests.iter().any(|d| Some(d.hex()) == hex) {
                    tags.extend(s.repo_tags.iter().flatten().cloned());
                }
            }
        }
        for name in names::entry_names(entry, &tags) {
            images.push(ArchiveImage {
                name,
                desc: names::plain(entry),
            });
        }
    }
    images
}

/// `blobs/sha256/<hex>` (Engine ≥ 25) or `<hex>.json` (legacy) → `<hex>`.
fn save_config_hex(config: &str) -> Option<&str> {
    let base = config.rsplit('/').next()?;
    Some(base.strip_suffix(".json").unwrap_or(base))
}

/// The entry's digest, and the manifests and configs under it that the archive holds.
fn digests_under(store: &ArchiveStore, entry: &Descriptor) -> HashSet<Digest> {
    let mut out = HashSet::from([entry.digest.clone()]);
    let mut stack = vec![entry.clone()];
    while let Some(d) = stack.pop() {
        let Some(span) = store.blobs.get(&d.digest) else {
            continue;
        };
        let Ok(bytes) = store
            .index
            .read_span(d.digest.hex(), *span, ferry_oci::MAX_MANIFEST_BYTES)
        else {
            continue;
        };
        let Ok(m) = Manifest::parse(&d.media_type, &bytes) else {
            continue;
        };
        match m.kind {
            ManifestKind::Image => out.extend(m.config.map(|c| c.digest)),
            ManifestKind::Index => {
                for child in m.manifests {
                    if out.insert(child.digest.clone()) {
                        stack.push(child);
                    }
                }
            }
        }
    }
    out
}

/// Image manifest in the image spec's field order, compact: the same input always gives the same bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedManifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

pub(crate) fn manifest_bytes(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    ferry_oci::gojson::to_vec(&GeneratedManifest {
        schema_version: 2,
        media_type: media_type::OCI_MANIFEST,
        config,
        layers,
    })
    .expect("descriptors always serialize")
}

/// Turn every `manifest.json` entry into an OCI image: config and layers as they are in the archive
/// (layers keep their compression, normally none), a generated manifest held in memory.
fn convert_legacy(store: &mut ArchiveStore, save: &[SaveEntry]) -> Result<Vec<ArchiveImage>> {
    let archive = store.index.archive().to_path_buf();
    let locate = |index: &TarIndex, path: &str| -> Result<(String, Span)> {
        let name = normalize(path)
            .map_err(|why| {
                ArchiveError::entry(
                    &archive,
                    path,
                    format!("{MANIFEST_JSON} names an unsafe path ({why})"),
                )
            })?
            .ok_or_else(|| ArchiveError::entry(&archive, path, "not a file"))?;
        let span = index.get(&name).ok_or_else(|| {
            ArchiveError::entry(
                &archive,
                path,
                format!("named by {MANIFEST_JSON} but missing from the archive"),
            )
        })?;
        Ok((name, span))
    };
    // A layer shared by several images (or listed twice) is hashed once.
    let mut layer_cache: HashMap<Span, Descriptor> = HashMap::new();
    let mut images = Vec::new();
    for entry in save {
        let (config_name, config_span) = locate(&store.index, &entry.config)?;
        let config_bytes = store
            .index
            .read_span(&config_name, config_span, MAX_METADATA_BYTES)?;
        let config = Descriptor::of(media_type::OCI_CONFIG, &config_bytes);
        store.blobs.insert(config.digest.clone(), config_span);
        let mut layers = Vec::new();
        for path in entry.layers.iter().flatten() {
            let (name, span) = locate(&store.index, path)?;
            let desc = match layer_cache.get(&span) {
                Some(d) => d.clone(),
                None => {
                    let d = hash_layer(&store.index, &name, span)?;
                    layer_cache.insert(span, d.clone());
                    d
                }
            };
            store.blobs.insert(desc.digest.clone(), span);
            layers.push(desc);
        }
        check_diff_ids(&archive, &config_name, &config_bytes, &layers);
        let manifest = manifest_bytes(&config, &layers);
        let desc = Descriptor::of(media_type::OCI_MANIFEST, &manifest);
        store
            .generated
            .insert(desc.digest.clone(), Bytes::from(manifest));
        let tags = entry.repo_tags.clone().unwrap_or_default();
        if tags.is_empty() {
            images.push(ArchiveImage { name: None, desc });
        } else {
            for t in tags {
                images.push(ArchiveImage {
                    name: Some(names::normalize_name(&t)),
                    desc: desc.clone(),
                });
            }
        }
    }
    Ok(images)
}

/// Stream a layer through sha256 once (never held in memory); its first bytes say whether it is compressed.
fn hash_layer(index: &TarIndex, name: &str, span: Span) -> Result<Descriptor> {
    let mut r = index.open_span(span)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut compression = None;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| ArchiveError::entry(index.archive(), name, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        compression.get_or_insert_with(|| Compression::of_bytes(&buf[..n]));
        hasher.update(&buf[..n]);
    }
    if hasher.len() != span.size {
        return Err(ArchiveError::entry(
            index.archive(),
            name,
            format!(
                "truncated: {} of {} bytes readable",
                hasher.len(),
                span.size
            ),
        ));
    }
    let media_type = compression.unwrap_or(Compression::None).layer_media_type();
    Ok(Descriptor::new(media_type, hasher.finish(), span.size))
}

/// An uncompressed layer's digest is its diff_id. A mismatch does not stop the import (the bytes are
/// what the archive holds, and every copy verifies them), but the image would not run as saved.
fn check_diff_ids(archive: &Path, config_name: &str, config: &[u8], layers: &[Descriptor]) {
    #[derive(Deserialize)]
    struct Config {
        rootfs: Option<RootFs>,
    }
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let Ok(Config {
        rootfs: Some(rootfs),
    }) = serde_json::from_slice::<Config>(config)
    else {
        return;
    };
    let uncompressed: Vec<String> = layers
        .iter()
        .filter(|l| l.media_type == Compression::None.layer_media_type())
        .map(|l| l.digest.to_string())
        .collect();
    if uncompressed.len() == layers.len() && rootfs.diff_ids != uncompressed {
        tracing::warn!(
            "{}: config {config_name} lists diff_ids {:?} but the layers hash to {:?}",
            archive.display(),
            rootfs.diff_ids,
            uncompressed
        );
    }
}
