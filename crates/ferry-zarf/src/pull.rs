//! Pulling a package from a registry into a directory, all of it or some components (zarf-compat §7),
//! every layer through the copy engine and so through the shared blob cache: a package's image blobs are
//! layers named by the same digests as the images' own blobs, so one download serves both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_copy::{Budget, CopyHooks, CopyOptions, CopyStats, EventSink, copy_graph};
use ferry_oci::{Descriptor, Digest, Manifest, Reference, media_type};
use ferry_store::file::{AtomicFileWriter, link_atomic};
use ferry_store::{
    BlobCache, BlobWriter, BoxFuture, CachedSource, ReadStore, Store, StoreError, WriteStore,
    WriteTarget,
};

use crate::checksums::{self, Integrity};
use crate::definition::Definition;
use crate::error::{PackageError, Result};
use crate::images::parse_index;
use crate::remote::RemotePackage;
use crate::{
    CHECKSUMS, DOCUMENTATION_TAR, IMAGES_INDEX, IMAGES_LAYOUT, SBOMS_TAR, SIGNATURES, ZARF_YAML,
};

/// Files every pull fetches (Zarf's `PackageAlwaysPull`).
const ALWAYS: [&str; 6] = [
    ZARF_YAML,
    CHECKSUMS,
    SIGNATURES[0],
    SIGNATURES[1],
    "values.yaml",
    "values.schema.json",
];

/// What a pull did.
pub struct Pulled {
    /// The pulled package's definition.
    pub definition: Definition,
    /// Files written, by path, with their layer descriptors.
    pub files: BTreeMap<String, Descriptor>,
    /// What the copy moved, and how.
    pub stats: CopyStats,
    /// What checking the written files against `checksums.txt` found.
    pub integrity: Integrity,
}

/// What `ferry package pull` reports about one pull.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    /// The package's reference.
    pub reference: String,
    /// Its manifest's digest.
    pub digest: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.version`.
    pub version: String,
    /// The package's architecture.
    pub architecture: String,
    /// The components asked for; empty when the whole package was pulled.
    pub components: Vec<String>,
    /// The path written.
    pub output: String,
    /// Files written.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Layers downloaded from the registry.
    pub fetched: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// Layers served from the blob cache (linked or copied) instead.
    pub from_cache: u64,
    /// Their bytes.
    pub from_cache_bytes: u64,
    /// What the copy moved, and how.
    pub blobs: CopyStats,
    /// What checking the written files against `checksums.txt` found.
    pub integrity: Integrity,
}

impl PullReport {
    /// The report of `pulled`, a pull of `pkg` (with `components`, if some) written to `output`.
    pub fn new(pkg: &RemotePackage, pulled: &Pulled, components: &[String], output: &Path) -> Self {
        let s = &pulled.stats;
        PullReport {
            reference: pkg.reference.to_string(),
            digest: pkg.manifest.digest.to_string(),
            name: pulled.definition.metadata.name.clone(),
            version: pulled.definition.metadata.version.clone(),
            architecture: pulled.definition.architecture().to_string(),
            components: components.to_vec(),
            output: output.display().to_string(),
            files: pulled.files.len(),
            bytes: pulled.files.values().map(|d| d.size).sum(),
            fetched: s.fetched,
            fetched_bytes: s.fetched_bytes,
            from_cache: s.cached + s.linked,
            from_cache_bytes: s.cached_bytes + s.linked_bytes,
            blobs: s.clone(),
            integrity: pulled.integrity.clone(),
        }
    }
}

/// How [`pull_package`] pulls.
pub struct PullRequest<'a> {
    /// Only these components (and the required ones); empty: the whole package.
    pub components: &'a [String],
    /// The architecture to pull (default: the only one, else this machine's).
    pub architecture: Option<&'a str>,
    /// Refuse the package unless this key signed its `zarf.yaml` (checked in the registry, before anything
    /// is written).
    pub key: Option<&'a ferry_trust::PublicKey>,
    /// Layers in flight at once.
    pub concurrency: usize,
    /// Read through (and fill) this blob cache.
    pub cache: Option<BlobCache>,
    /// Where progress goes.
    pub events: EventSink,
}

/// `ferry package pull`: the package `reference` names, its signature checked first when a key is given,
/// resolved for the architecture and pulled to `out` ([`pull_to`]).
pub async fn pull_package(
    client: &Arc<ferry_registry::RegistryClient>,
    reference: Reference,
    out: &Path,
    req: PullRequest<'_>,
) -> Result<PullReport> {
    if let Some(key) = req.key {
        let source = crate::PackageSource::Remote(reference.clone());
        source
            .check_signature(client, req.architecture, key)
            .await?;
    }
    let remote = crate::source::resolve(client, reference, req.architecture).await?;
    let components = (!req.components.is_empty()).then_some(req.components);
    let (pulled, written) = pull_to(
        &remote,
        out,
        components,
        req.concurrency,
        req.cache,
        req.events,
    )
    .await?;
    Ok(PullReport::new(&remote, &pulled, req.components, &written))
}

/// Pull `pkg` to `out`, as [`pull`] does: an existing directory receives it as Zarf names it
/// (`zarf-package-….tar.zst`), a `.tar` or `.tar.zst` path is written as that archive, any other path
/// becomes the package directory. The package is staged beside `out` (the cache links into it on the same
/// filesystem) and moved or archived into place only once complete and verified: a failed pull writes
/// nothing. Returns what was pulled and the path written.
pub async fn pull_to(
    pkg: &RemotePackage,
    out: &Path,
    components: Option<&[String]>,
    concurrency: usize,
    cache: Option<BlobCache>,
    events: EventSink,
) -> Result<(Pulled, PathBuf)> {
    let label = format!("oci://{}", pkg.reference);
    let staged = ferry_store::file::StagedDir::beside(out)?;
    let parent = staged
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let ingest = tempfile::Builder::new()
        .prefix(".ferry-ingest-")
        .tempdir_in(&parent)
        .map_err(|e| PackageError::io(&parent, e))?;
    let pulled = pull(
        pkg,
        staged.path(),
        ingest.path(),
        components,
        concurrency,
        cache,
        events,
    )
    .await?;
    if !pulled.integrity.ok {
        return Err(PackageError::Verification {
            package: label,
            summary: format!(
                "{} (after the pull; nothing was written to {})",
                pulled.integrity.summary(),
                out.display()
            ),
        });
    }
    let out = if out.is_dir() {
        let name = pulled.definition.file_name().ok_or_else(|| {
            PackageError::invalid(
                &label,
                "zarf.yaml has no build.architecture to name the package file with; give a FILE.tar.zst",
            )
        })?;
        out.join(name)
    } else {
        out.to_path_buf()
    };
    match crate::tarball::TarKind::for_path(&out) {
        Some(_) if out.exists() => {
            return Err(PackageError::invalid(
                out.display(),
                "exists; nothing was written",
            ));
        }
        Some(kind) => {
            let (root, file) = (staged.path().to_path_buf(), out.clone());
            tokio::task::spawn_blocking(move || crate::tarball::write(&root, &file, kind))
                .await
                .expect("archive task panicked")?;
        }
        None => staged.commit()?,
    }
    Ok((pulled, out))
}

/// Pull `pkg` into `root` (an empty directory): every layer, or with `components` only theirs (and the
/// files every package needs), then check the result against `checksums.txt`. `ingest` holds temp files; it
/// must be on `root`'s filesystem and outside it. The package manifest is copied as one graph whose
/// successors are the chosen layers: at most `concurrency` move at once, through the cache, with resume
/// and whole-package retries.
pub async fn pull(
    pkg: &RemotePackage,
    root: &Path,
    ingest: &Path,
    components: Option<&[String]>,
    concurrency: usize,
    cache: Option<BlobCache>,
    events: EventSink,
) -> Result<Pulled> {
    let all = || pkg.layers.values().cloned().collect();
    // With components: those and the required ones, unless that is all of them.
    let (wanted, keep) = match components {
        None => (all(), None),
        Some(names) => {
            let def = pkg.definition().await?;
            let keep = chosen_components(pkg, &def, names)?;
            if keep.len() < def.components.len() {
                (chosen_layers(pkg, &def, &keep).await?, Some(keep))
            } else {
                (all(), None)
            }
        }
    };
    let done: HashSet<Digest> = wanted.iter().map(|d| d.digest.clone()).collect();
    let dest = Arc::new(PackageDir::new(root, ingest, &pkg.layers, &pkg.label()));
    let source: Arc<dyn ReadStore> = CachedSource::wrap(Arc::new(pkg.repo.clone()), cache.as_ref());
    let opts = CopyOptions {
        budget: Budget::new(concurrency),
        events,
        hooks: Arc::new(ChosenLayers(wanted)),
        ..CopyOptions::default()
    };
    let dest_target: Arc<dyn WriteTarget> = dest.clone();
    let known = HashMap::from([(pkg.manifest.digest.clone(), pkg.manifest_bytes.clone())]);
    let stats = copy_graph(&source, &dest_target, &pkg.manifest, &known, &opts)
        .await
        .map_err(|e| PackageError::Copy {
            package: pkg.label(),
            source: Box::new(e),
        })?;
    let definition = read_definition(pkg, root)?;
    let mut files = dest.written(&done);
    // What was pulled is checked against the package's own list first (some files absent)...
    let mut integrity = check(root, &files, &definition, keep.is_some());
    if let (Some(keep), true) = (&keep, integrity.ok) {
        // ...then made a whole package of its own.
        let mut digests: BTreeMap<String, Digest> = files
            .iter()
            .map(|(k, v)| (k.clone(), v.digest.clone()))
            .collect();
        let dropped = crate::partial::make_whole(root, &pkg.label(), keep, &mut digests)?;
        if !dropped.is_empty() {
            tracing::warn!(
                "{}: removed {} from the partial package: the signature was made over the whole package's zarf.yaml and no longer matches",
                pkg.label(),
                dropped.join(" and ")
            );
        }
        files = digests
            .into_iter()
            .map(|(rel, d)| {
                let size = std::fs::metadata(root.join(&rel)).map_or(0, |m| m.len());
                (rel, Descriptor::new("", d, size))
            })
            .collect();
        let definition = read_definition(pkg, root)?;
        integrity = check(root, &files, &definition, false);
    }
    Ok(Pulled {
        definition: read_definition(pkg, root)?,
        files,
        stats,
        integrity,
    })
}

/// `wanted` (each must exist) and every required component, in the definition's order.
fn chosen_components(
    pkg: &RemotePackage,
    def: &Definition,
    wanted: &[String],
) -> Result<Vec<String>> {
    if let Some(name) = wanted.iter().find(|n| def.component(n).is_none()) {
        return Err(PackageError::invalid(
            pkg.label(),
            format!(
                "has no component {name:?}; it has: {}",
                def.components
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(def
        .components
        .iter()
        .filter(|c| c.required || wanted.contains(&c.name))
        .map(|c| c.name.clone())
        .collect())
}

/// The files written in `root` against its `checksums.txt` and aggregate.
fn check(
    root: &Path,
    files: &BTreeMap<String, Descriptor>,
    definition: &Definition,
    partial: bool,
) -> Integrity {
    let digests = files
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.digest.clone())))
        .collect();
    let checksums = std::fs::read(root.join(CHECKSUMS)).ok();
    checksums::verify(
        &digests,
        checksums.as_deref(),
        &definition.metadata.aggregate_checksum,
        &definition.provenance_files(files.contains_key(crate::SIGNATURES[1])),
        partial,
    )
}

/// The package manifest's successors are the layers chosen for this pull, nothing else.
struct ChosenLayers(Vec<Descriptor>);

impl CopyHooks for ChosenLayers {
    fn successors<'a>(
        &'a self,
        _source: &'a dyn ReadStore,
        _desc: &'a Descriptor,
        _bytes: &'a Bytes,
    ) -> BoxFuture<'a, ferry_store::Result<Vec<Descriptor>>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

fn read_definition(pkg: &RemotePackage, root: &Path) -> Result<Definition> {
    let path = root.join(ZARF_YAML);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            PackageError::invalid(pkg.label(), "has no zarf.yaml layer")
        }
        _ => PackageError::io(&path, e),
    })?;
    Definition::parse(&pkg.label(), &bytes)
}

/// The layers a pull of the components `names` needs: the files every package needs, the components' tarballs, and the
/// images they list with everything below them (found through `images/index.json` and the manifests, read
/// from the registry: a manifest's children are known only once it is read).
async fn chosen_layers(
    pkg: &RemotePackage,
    def: &Definition,
    names: &[String],
) -> Result<Vec<Descriptor>> {
    let mut titles: Vec<String> = ALWAYS.iter().map(|s| s.to_string()).collect();
    let mut images: Vec<String> = Vec::new();
    for c in def.components.iter().filter(|c| names.contains(&c.name)) {
        titles.push(format!("components/{}.tar", c.name));
        for i in &c.images {
            if !images.contains(i) {
                images.push(i.clone());
            }
        }
    }
    titles.extend([SBOMS_TAR.to_string(), DOCUMENTATION_TAR.to_string()]);
    if !images.is_empty() {
        titles.extend([IMAGES_INDEX.to_string(), IMAGES_LAYOUT.to_string()]);
        titles.extend(image_blob_titles(pkg, &images).await?);
    }
    let mut seen = HashSet::new();
    Ok(titles
        .iter()
        .filter_map(|t| pkg.layers.get(t))
        .filter(|d| seen.insert(d.digest.clone()))
        .cloned()
        .collect())
}

/// The titles of every blob under `images` (names as `zarf.yaml` lists them).
async fn image_blob_titles(pkg: &RemotePackage, images: &[String]) -> Result<Vec<String>> {
    let index = pkg
        .fetch_small(IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)
        .await?
        .ok_or_else(|| PackageError::invalid(pkg.label(), "has images but no images/index.json"))?;
    let entries = parse_index(&pkg.label(), &index)?;
    let mut frontier: Vec<Descriptor> = Vec::new();
    for image in images {
        let entry = find_image(&entries, image).ok_or_else(|| {
            PackageError::file(
                pkg.label(),
                IMAGES_INDEX,
                format!("has no image named {image:?} (listed in zarf.yaml)"),
            )
        })?;
        frontier.push(entry.clone());
    }
    let missing = |d: &Descriptor| {
        PackageError::invalid(
            pkg.label(),
            format!(
                "has no layer {} ({}), which its images need",
                blob_title(d),
                d.media_type
            ),
        )
    };
    let mut titles = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut depth = 0;
    while !frontier.is_empty() {
        depth += 1;
        if depth > ferry_copy::MAX_DEPTH {
            return Err(PackageError::invalid(
                pkg.label(),
                format!(
                    "has images nested more than {} levels deep",
                    ferry_copy::MAX_DEPTH
                ),
            ));
        }
        let mut next = Vec::new();
        for d in std::mem::take(&mut frontier) {
            let title = blob_title(&d);
            if !pkg.layers.contains_key(&title) {
                // An image's own manifest must be there; an index's children may not all be (an index
                // exported from a Docker Engine holds one platform), and what is absent is not needed.
                if depth == 1 || !media_type::is_manifest_like(&d.media_type) {
                    return Err(missing(&d));
                }
                tracing::debug!(
                    "{}: index child {} is not in the package",
                    pkg.label(),
                    d.digest
                );
                continue;
            }
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            titles.push(title.clone());
            if !media_type::is_manifest_like(&d.media_type) {
                continue;
            }
            let bytes = pkg
                .fetch_small(&title, ferry_oci::MAX_MANIFEST_BYTES)
                .await?
                .ok_or_else(|| missing(&d))?;
            let m = Manifest::parse(&d.media_type, &bytes)
                .map_err(|e| PackageError::file(pkg.label(), &title, ferry_oci::error_chain(&e)))?;
            next.extend(m.successors());
        }
        frontier = next;
    }
    Ok(titles)
}

/// Where a package keeps a blob of its images.
fn blob_title(d: &Descriptor) -> String {
    format!("images/blobs/sha256/{}", d.digest.hex())
}

/// The `index.json` entry `image` names: by `base.name` or `ref.name` as written, or compared as
/// normalized references, so Crane-era names without `docker.io/` match (zarf-compat §4).
pub fn find_image<'a>(entries: &'a [Descriptor], image: &str) -> Option<&'a Descriptor> {
    use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
    let wanted = image.parse::<Reference>().ok();
    entries.iter().find(|e| {
        [ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME].iter().any(|k| {
            e.annotation(k).is_some_and(|n| {
                n == image || (wanted.is_some() && n.parse::<Reference>().ok() == wanted)
            })
        })
    })
}

/// The output directory as a store: each blob is the package file(s) its layer is titled by.
pub struct PackageDir {
    root: PathBuf,
    ingest: PathBuf,
    titles: HashMap<Digest, Vec<String>>,
    describe: String,
}

impl PackageDir {
    /// A store writing into `root` the files titled by `layers` (temp files in `ingest`); `label` names it in
    /// messages.
    pub fn new(
        root: &Path,
        ingest: &Path,
        layers: &BTreeMap<String, Descriptor>,
        label: &str,
    ) -> PackageDir {
        let mut titles: HashMap<Digest, Vec<String>> = HashMap::new();
        for (title, d) in layers {
            titles
                .entry(d.digest.clone())
                .or_default()
                .push(title.clone());
        }
        PackageDir {
            root: root.to_path_buf(),
            ingest: ingest.to_path_buf(),
            titles,
            describe: format!("package directory {} (from {label})", root.display()),
        }
    }

    fn paths(&self, desc: &Descriptor) -> ferry_store::Result<Vec<PathBuf>> {
        self.titles
            .get(&desc.digest)
            .map(|t| t.iter().map(|t| self.root.join(t)).collect())
            .ok_or_else(|| StoreError::NotFound {
                store: self.describe.clone(),
                what: format!("a layer {}", desc.digest),
            })
    }

    /// The files written for the digests in `done`.
    fn written(&self, done: &HashSet<Digest>) -> BTreeMap<String, Descriptor> {
        let mut out = BTreeMap::new();
        for d in done {
            for t in self.titles.get(d).into_iter().flatten() {
                if let Ok(meta) = std::fs::metadata(self.root.join(t)) {
                    out.insert(t.clone(), Descriptor::new("", d.clone(), meta.len()));
                }
            }
        }
        out
    }
}

impl Store for PackageDir {
    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// A package directory has no names: files are named by their layers' titles.
impl ferry_store::Tagger for PackageDir {
    fn tag<'a>(
        &'a self,
        _desc: &'a Descriptor,
        _bytes: Bytes,
        _name: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl WriteStore for PackageDir {
    /// A node that is no file of the package (the package manifest itself) has nothing to write.
    fn exists<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, ferry_store::Result<bool>> {
        Box::pin(async move {
            if !self.titles.contains_key(&desc.digest) {
                return Ok(true);
            }
            Ok(self
                .paths(desc)?
                .iter()
                .all(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == desc.size)))
        })
    }

    fn blob_writer<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            let mut paths = self.paths(desc)?;
            let first = paths.remove(0);
            let inner = AtomicFileWriter::create(&self.ingest, first.clone(), false).await?;
            Ok(Box::new(Titled {
                inner: Box::new(inner),
                first,
                others: paths,
                ingest: self.ingest.clone(),
            }) as Box<dyn BlobWriter>)
        })
    }

    fn link_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        from: &'a Path,
    ) -> BoxFuture<'a, ferry_store::Result<bool>> {
        Box::pin(async move {
            let paths = self.paths(desc)?;
            let (from, ingest) = (from.to_path_buf(), self.ingest.clone());
            tokio::task::spawn_blocking(move || {
                for p in &paths {
                    if !link_atomic(&from, p, &ingest)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await
            .expect("link task panicked")
        })
    }
}

/// Writes a layer to its first title; on commit, the other titles of the same content become links to it.
struct Titled {
    inner: Box<AtomicFileWriter>,
    first: PathBuf,
    others: Vec<PathBuf>,
    ingest: PathBuf,
}

impl BlobWriter for Titled {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, ferry_store::Result<()>> {
        self.inner.write(chunk)
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, ferry_store::Result<()>> {
        Box::pin(async move {
            let Titled {
                inner,
                first,
                others,
                ingest,
            } = *self;
            inner.commit().await?;
            tokio::task::spawn_blocking(move || {
                for p in &others {
                    if !link_atomic(&first, p, &ingest)? {
                        std::fs::copy(&first, p).map_err(|e| StoreError::io(p, e))?;
                    }
                }
                Ok(())
            })
            .await
            .expect("link task panicked")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};

    #[tokio::test]
    async fn a_layer_lands_under_every_title_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let (root, ingest) = (dir.path().join("pkg"), dir.path().join("ingest"));
        let layer = Descriptor::of(crate::ZARF_LAYER, b"same bytes");
        let other = Descriptor::of(crate::ZARF_LAYER, b"other");
        let layers: BTreeMap<String, Descriptor> = [
            ("a/one.txt".to_string(), layer.clone()),
            ("b/two.txt".to_string(), layer.clone()),
            ("c.txt".to_string(), other.clone()),
        ]
        .into();
        let store = PackageDir::new(&root, &ingest, &layers, "oci://x/y:1");
        assert!(!store.exists(&layer).await.unwrap());
        let mut w = store.blob_writer(&layer).await.unwrap();
        w.write(Bytes::from_static(b"same bytes")).await.unwrap();
        w.commit().await.unwrap();
        assert!(store.exists(&layer).await.unwrap());
        assert_eq!(
            std::fs::read(root.join("b/two.txt")).unwrap(),
            b"same bytes"
        );
        // Linked from elsewhere (the cache).
        let cached = dir.path().join("cached");
        std::fs::write(&cached, b"other").unwrap();
        assert!(store.link_blob(&other, &cached).await.unwrap());
        assert_eq!(std::fs::read(root.join("c.txt")).unwrap(), b"other");
        let done: HashSet<Digest> = [layer.digest.clone(), other.digest.clone()].into();
        assert_eq!(store.written(&done).len(), 3);
        let unknown = Descriptor::of(crate::ZARF_LAYER, b"?");
        assert!(store.blob_writer(&unknown).await.is_err());
    }

    #[test]
    fn finds_images_of_both_eras() {
        let mut oras = Descriptor::of(media_type::OCI_MANIFEST, b"a");
        oras.annotations.insert(
            ANNOTATION_REF_NAME.into(),
            "docker.io/library/nginx:1.25".into(),
        );
        oras.annotations.insert(
            ANNOTATION_BASE_NAME.into(),
            "docker.io/library/nginx:1.25".into(),
        );
        let mut crane = Descriptor::of(media_type::OCI_MANIFEST, b"b");
        crane
            .annotations
            .insert(ANNOTATION_BASE_NAME.into(), "library/busybox:1".into());
        let entries = vec![oras.clone(), crane.clone()];
        assert_eq!(find_image(&entries, "nginx:1.25"), Some(&oras));
        assert_eq!(
            find_image(&entries, "docker.io/library/busybox:1"),
            Some(&crane)
        );
        assert_eq!(find_image(&entries, "busybox:1"), Some(&crane));
        assert_eq!(find_image(&entries, "busybox:2"), None);
    }
}
