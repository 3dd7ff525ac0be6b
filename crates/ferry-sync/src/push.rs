//! `ferry push`: the images of a layout — a directory, a Zarf package (verified first), an OCI layout
//! archive — into a registry, under Zarf's names ([`ferry_zarf::push_plan`]) or one name given.
//!
//! Before anything is written, every blob of every image is checked to be in the source (a delta holds
//! only some) or at the registry already ([`crate::delta::check_each`]); then each image is verified
//! against the signature policy, if there is one, and copied, one after another, under the run's one node
//! budget. With `keep_going` an image that fails is reported and the rest go on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_copy::{CopyOptions, CopyStats, EventSink, Selection};
use ferry_oci::error_chain;
use ferry_registry::{RegistryClient, Repository};
use ferry_store::{OciLayout, ReadStore, StoreError, WriteTarget};
use ferry_trust::{PublicKey, Verifier};
use ferry_zarf::push_plan::{PlanError, PushItem, explicit_plan, zarf_plan};
use ferry_zarf::{PackageError, PackageImages, PackageSource};
use serde::Serialize;

use crate::delta::{CheckImage, DeltaError, check_each};

/// Which names the images get.
#[derive(Clone, Debug)]
pub enum PushNames {
    /// Every named image of the layout (or those in `only`) under Zarf's names for `registry`
    /// (`HOST[:PORT][/NAMESPACE]`): `<tag>-zarf-<crc>` and, unless `no_checksum`, the plain tag too.
    Zarf {
        /// Where the images go.
        registry: String,
        /// The images to push; empty: all.
        only: Vec<String>,
        /// Push only the plain name.
        no_checksum: bool,
    },
    /// One image of the layout, under a name given.
    One {
        /// Its name in the layout.
        image: String,
        /// Where it goes.
        dest: String,
    },
}

/// How a push runs.
pub struct PushOptions {
    /// The names the images get.
    pub names: PushNames,
    /// Push a Zarf package without checking it against its `checksums.txt` (a warning says so).
    pub skip_verify: bool,
    /// A Zarf package must be signed by this key (refused otherwise, before anything is sent).
    pub key: Option<PublicKey>,
    /// Go on past an image that fails; its report holds the error.
    pub keep_going: bool,
    /// Refuse images this signature policy does not accept (checked before each image is copied).
    pub verify: Option<Arc<Verifier>>,
    /// The copy of each image: budget, attempts, referrers.
    pub copy: CopyOptions,
    /// Progress of each image, by the name it is pushed under.
    pub watch: Option<Watcher>,
}

/// Progress of one image's copy, as a display shows it: its events, then how it ended.
pub trait Watch: Send + Sync {
    /// Where the copy's events go.
    fn events(&self) -> EventSink;
    /// The copy ended (`ok`: it succeeded).
    fn finish(&self, ok: bool);
}

/// Makes the [`Watch`] of the image labelled so.
pub type Watcher = Arc<dyn Fn(&str) -> Arc<dyn Watch> + Send + Sync>;

/// One image of a push, as `--json` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedImage {
    /// Its name in the layout.
    pub source: String,
    /// Every name it is pushed under.
    pub names: Vec<String>,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Bytes of its graph.
    pub bytes: u64,
    /// What moved, and how (`None`: it failed).
    pub blobs: Option<CopyStats>,
    /// Why it failed (with `keep_going`).
    pub error: Option<String>,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The package could not be read, failed verification, or its signature does not hold.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A key was given for something that is not a Zarf package.
    #[error("{0} is not a Zarf package: only a package's signature can be checked with a key")]
    NotAPackage(String),
    /// The layout or archive could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The names asked for do not fit the layout.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The layout names no image.
    #[error("{0} has no named images to push")]
    Empty(String),
    /// A blob is neither in the source nor at the registry: nothing was pushed.
    #[error("pushing {root}")]
    Incomplete {
        /// The layout or package.
        root: String,
        /// The first blob missing.
        source: DeltaError,
    },
    /// One image failed.
    #[error("pushing {image} to {name}")]
    Image {
        /// Its name in the layout.
        image: String,
        /// Where it went.
        name: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Push the images of `source` (a layout directory or a Zarf package directory, a package `.tar`/
/// `.tar.zst`, an OCI layout archive as a file or `oci-archive:FILE`) with `client`. Returns each image's
/// report, in plan order; with `keep_going` failed images are in it (their `error` set), otherwise the
/// first failure is the error.
pub async fn push(
    source: &Path,
    client: &Arc<RegistryClient>,
    opts: &PushOptions,
) -> Result<Vec<PushedImage>, PushError> {
    let images = open(source, client, opts).await?;
    let (entries, root) = (images.entries()?, images.root().display().to_string());
    let plan = match &opts.names {
        PushNames::Zarf {
            registry,
            only,
            no_checksum,
        } => zarf_plan(&entries, &root, registry, only, *no_checksum)?,
        PushNames::One { image, dest } => vec![explicit_plan(&entries, &root, image, dest)?],
    };
    if plan.is_empty() {
        return Err(PushError::Empty(root));
    }
    let layout: Arc<dyn ReadStore> = Arc::new(images.clone());
    let repos: Vec<Arc<dyn WriteTarget>> = plan
        .iter()
        .map(|i| Arc::new(Repository::new(client.clone(), &i.registry, &i.repository)) as _)
        .collect();
    let checks: Vec<CheckImage> = plan
        .iter()
        .zip(&repos)
        .map(|(item, repo)| CheckImage {
            label: label(item),
            source: layout.clone(),
            root: item.desc.clone(),
            dest: repo.clone(),
        })
        .collect();
    let (found, mut lacking) = check_each(&checks, opts.copy.budget.size()).await;
    if !opts.keep_going
        && let Some(source) = lacking.iter_mut().find_map(Option::take)
    {
        return Err(PushError::Incomplete { root, source });
    }
    if found.at_destination > 0 {
        tracing::info!(
            "{root}: {} blobs ({} bytes) it lacks are at the registry already",
            found.at_destination,
            found.at_destination_bytes
        );
    }
    let mut out = Vec::new();
    for ((item, repo), lacks) in plan.into_iter().zip(repos).zip(lacking) {
        let name = label(&item);
        let result = match lacks {
            Some(e) => Err(e.into()),
            None => push_one(&images, &layout, repo, &item, &name, opts).await,
        };
        let result = result.map_err(|source| PushError::Image {
            image: item.source.clone(),
            name,
            source,
        });
        let (blobs, error) = match result {
            Ok(stats) => (Some(stats), None),
            Err(e) if opts.keep_going => (None, Some(error_chain(&e))),
            Err(e) => return Err(e),
        };
        out.push(PushedImage {
            source: item.source,
            names: item.names,
            digest: item.desc.digest.to_string(),
            media_type: item.desc.media_type,
            bytes: blobs.as_ref().map_or(0, CopyStats::total_bytes),
            blobs,
            error,
        });
    }
    Ok(out)
}

/// The images `source` holds: a Zarf package's (verified, its signature checked), else an archive's or a
/// layout's.
async fn open(
    source: &Path,
    client: &Arc<RegistryClient>,
    opts: &PushOptions,
) -> Result<PackageImages, PushError> {
    let package = PackageImages::for_push(source, opts.skip_verify).await?;
    if let Some(key) = &opts.key {
        if package.is_none() {
            return Err(PushError::NotAPackage(source.display().to_string()));
        }
        let pkg = PackageSource::Local(source.to_path_buf());
        let signed = pkg.check_signature(client, None, key).await?;
        tracing::info!("{}: {} signed by {}", pkg.label(), signed.file, signed.key);
    }
    if let Some(images) = package {
        return Ok(images);
    }
    // An archive is read in place through its tar index; every blob is verified as it is sent.
    if let Some(file) = archive_path(source) {
        let images = tokio::task::spawn_blocking(move || {
            PackageImages::from_oci_archive(&file, &Default::default())
        })
        .await
        .expect("archive task panicked")?;
        return Ok(images);
    }
    Ok(PackageImages::from_layout(OciLayout::open_in(source)?))
}

/// The archive file `source` names, if it is one: `oci-archive:FILE`, or a regular file.
fn archive_path(source: &Path) -> Option<PathBuf> {
    if let Some(file) = source.to_str()?.strip_prefix("oci-archive:") {
        return Some(PathBuf::from(file));
    }
    source.is_file().then(|| source.to_path_buf())
}

/// The name an image is shown by: the first it is pushed under.
fn label(item: &PushItem) -> String {
    item.names.first().unwrap_or(&item.source).clone()
}

async fn push_one(
    images: &PackageImages,
    layout: &Arc<dyn ReadStore>,
    dest: Arc<dyn WriteTarget>,
    item: &PushItem,
    name: &str,
    opts: &PushOptions,
) -> Result<CopyStats, Box<dyn std::error::Error + Send + Sync>> {
    let selection = Selection::of(item.desc.clone(), None);
    let key = &item.source;
    let watch = opts.watch.as_ref().map(|w| w(name));
    let copy = CopyOptions {
        events: watch
            .as_ref()
            .map_or(opts.copy.events.clone(), |w| w.events()),
        ..opts.copy.clone()
    };
    let verifier = opts.verify.as_deref();
    let result = crate::verified::copy_verified(
        layout, &selection, &dest, &item.tags, &copy, verifier, images, key, key,
    )
    .await;
    if let Some(w) = watch {
        w.finish(matches!(result, Ok(Ok(_))));
    }
    Ok(result??.stats)
}
