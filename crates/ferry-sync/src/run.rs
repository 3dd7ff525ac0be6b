//! One sync run: list and filter tags, resolve every image (so a typo fails before anything moves), then
//! copy the images one after another through `ferry_copy` with one shared node budget. Images go one at a
//! time so that a blob shared by several moves once: the next image finds it at the destination (a
//! layout, an archive) or mounts it from the repository it went to (a registry).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_copy::{Budget, CopyFailed, CopyOptions, Event, PlatformChoice, Referrers, Selection};
use ferry_oci::{Descriptor, Digest, PlatformSpec, Reference, error_chain};
use ferry_registry::{ClientOptions, RegistryClient, RegistryError, Repository};
use ferry_store::{BlobCache, CachedSource, ReadStore, ReadTarget, StoreError, WriteTarget};
use ferry_trust::Verifier;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, RepoSpec, SyncFile};
use crate::dest::{DestError, Destination};
use crate::lock::{LockError, LockFile, LockedImage};
use crate::plan::{PlanBytes, PlanLedger, PlanTarget};
use crate::sources::{SourceError, client_for};

/// Listings and resolutions in flight at once (metadata only).
const RESOLVE_CONCURRENCY: usize = 8;

/// How a sync runs: clients, platform, budget, retries, and what to do beyond copying.
pub struct SyncOptions {
    /// Options of the source clients (per-registry settings of the file are applied on top).
    pub client_options: ClientOptions,
    /// The client for sources without settings of their own.
    pub client: Arc<RegistryClient>,
    /// Platforms to copy unless an entry names one.
    pub platform: PlatformChoice,
    /// Node copies in flight for the whole run.
    pub budget: Budget,
    /// Attempts in all for one image (see [`ferry_copy::CopyOptions::attempts`]).
    pub attempts: u32,
    /// Go on past an image that fails; the report lists it and the run fails at the end.
    pub keep_going: bool,
    /// Resolve and count, move nothing.
    pub plan: bool,
    /// Read through this blob cache (and fill it).
    pub cache: Option<BlobCache>,
    /// Where to write the lock file (read first: unchanged images keep their entries).
    pub lock: Option<PathBuf>,
    /// Refuse images this signature policy does not accept (checked as each resolves, before any copy).
    pub verify: Option<Arc<Verifier>>,
}

/// Why a sync, or one image of it, failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The sync file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source registry's client could not be built.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The destination cannot be opened or written.
    #[error(transparent)]
    Dest(#[from] DestError),
    /// The lock file cannot be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A repository's tags could not be listed.
    #[error("listing the tags of {repository}")]
    Listing {
        /// `registry/repository`.
        repository: String,
        /// The registry's error.
        #[source]
        source: RegistryError,
    },
    /// A sync file entry does not make a reference.
    #[error("{reference}: invalid reference")]
    Reference {
        /// The reference built.
        reference: String,
        /// Why it is not one.
        #[source]
        source: ferry_oci::ReferenceError,
    },
    /// An entry's `platform` is not `os/arch[/variant]`.
    #[error("{reference}: invalid platform {platform:?}: {why}")]
    Platform {
        /// The image it was given for.
        reference: String,
        /// The platform as written.
        platform: String,
        /// What is wrong with it.
        why: String,
    },
    /// An image could not be resolved at its source.
    #[error("opening {reference}")]
    Open {
        /// The image.
        reference: String,
        /// The source's error.
        #[source]
        source: StoreError,
    },
    /// An image could not be copied.
    #[error("syncing {reference}")]
    Image {
        /// The image.
        reference: String,
        /// What the copy says went wrong.
        #[source]
        source: Box<CopyFailed>,
    },
    /// The signature policy refused the image (the error names it).
    #[error(transparent)]
    Verify(Box<ferry_trust::VerifyError>),
}

/// What happened to one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Copied (some or all of it was already there).
    Copied,
    /// The destination had this digest under this name: nothing moved.
    UpToDate,
    /// `--plan`: would be copied.
    Planned,
    /// It failed; [`ImageReport::error`] says why.
    Failed,
}

/// One image of a sync report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// The source reference.
    pub source: String,
    /// The digest it resolved to (`None` when it failed before resolving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its names at the destination.
    pub destination: Vec<String>,
    /// What happened.
    pub status: Status,
    /// Bytes moved, already present and shared (mounted, or counted for another image in a plan).
    pub bytes: PlanBytes,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sums over a report's images.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Images in the run.
    pub images: usize,
    /// Copied (or, in a plan, to be copied).
    pub copied: usize,
    /// Already up to date.
    pub up_to_date: usize,
    /// Failed.
    pub failed: usize,
    /// Their bytes, summed.
    pub bytes: PlanBytes,
}

/// Room on the destination's disk (`--plan` for a layout or archive).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskRoom {
    /// The directory checked.
    pub path: String,
    /// Bytes the sync would write there (twice the content for an archive: staging, then the file).
    pub needed: u64,
    /// Bytes free there (0 when unknown).
    pub available: u64,
    /// Whether `available` covers `needed`.
    pub enough: bool,
}

/// What a sync did (or, with `plan`, would do), image by image, with totals.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Whether this is a plan (nothing moved).
    pub plan: bool,
    /// The destination, described.
    pub destination: String,
    /// Every image, in the order taken.
    pub images: Vec<ImageReport>,
    /// Sums over the images.
    pub totals: Totals,
    /// Room on the destination's disk, for a plan to a layout or archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskRoom>,
}

/// An image to copy, resolved.
struct Resolved {
    reference: Reference,
    spec: usize,
    source: Arc<dyn ReadTarget>,
    selection: Selection,
    platform: PlatformChoice,
}

/// Images whose copies run at once (their nodes share the run's budget); more only queue more HEADs.
const IMAGES_TOGETHER: usize = 16;

/// Run a sync of `file` (read from `file_path`) into `dest`.
pub async fn sync(
    file: &SyncFile,
    file_path: &Path,
    dest: Destination,
    opts: &SyncOptions,
) -> Result<Report, SyncError> {
    let specs = file.repositories(file_path)?;
    let mut clients = Vec::with_capacity(specs.len());
    for spec in &specs {
        let entry = &file.registries[&spec.registry];
        clients.push(client_for(
            &spec.registry,
            entry,
            &opts.client_options,
            &opts.client,
        )?);
    }
    let mut failures: Vec<ImageReport> = Vec::new();
    let wanted = expand(&specs, &clients, opts, &mut failures).await?;
    let resolved = resolve_all(&specs, &clients, wanted, opts, &mut failures).await?;
    let earlier = match &opts.lock {
        Some(p) => LockFile::load(p)?,
        None => None,
    };

    let ledger = Arc::new(PlanLedger::default());
    let mut images = failures;
    let mut locked = Vec::new();
    // Images copy together under the run's one budget (a blob two images share moves once, and the next
    // image's nodes use slots the last one no longer needs); a plan walks them one at a time.
    let together = if opts.plan { 1 } else { IMAGES_TOGETHER };
    let (specs_ref, dest_ref, ledger_ref, earlier_ref) = (&specs, &dest, &ledger, earlier.as_ref());
    let mut runs = futures_util::stream::iter(resolved.iter().map(|r| {
        let (dest, ledger, earlier) = (dest_ref, ledger_ref, earlier_ref);
        async move {
            let spec = &specs_ref[r.spec];
            (r, sync_one(r, spec, dest, opts, ledger, earlier).await)
        }
    }))
    .buffered(together);
    while let Some((r, result)) = runs.next().await {
        let (report, entry) = match result {
            Ok(done) => done,
            Err(e) if opts.keep_going => {
                tracing::error!("{}", error_chain(&e));
                (failed(&r.reference.to_string(), &e), None)
            }
            Err(e) => return Err(e),
        };
        images.push(report);
        locked.extend(entry);
    }
    drop(runs);

    let mut totals = Totals {
        images: images.len(),
        ..Totals::default()
    };
    for i in &images {
        match i.status {
            Status::Copied | Status::Planned => totals.copied += 1,
            Status::UpToDate => totals.up_to_date += 1,
            Status::Failed => totals.failed += 1,
        }
        totals.bytes.moving += i.bytes.moving;
        totals.bytes.present += i.bytes.present;
        totals.bytes.shared += i.bytes.shared;
    }
    let disk = match (opts.plan, dest.local_dir()) {
        (true, Some(dir)) => Some(disk_room(&dir, &dest, totals.bytes.moving)),
        _ => None,
    };
    let report = Report {
        plan: opts.plan,
        destination: dest.describe(),
        images,
        totals,
        disk,
    };
    if !opts.plan {
        dest.finish()?;
        if let Some(path) = &opts.lock {
            LockFile {
                version: LockFile::VERSION,
                images: locked,
            }
            .save(path)?;
        }
    }
    Ok(report)
}

/// Every reference to take: listed ones as they are, filtered ones from the repository's tag list.
async fn expand(
    specs: &[RepoSpec],
    clients: &[Arc<RegistryClient>],
    opts: &SyncOptions,
    failures: &mut Vec<ImageReport>,
) -> Result<Vec<(usize, Reference)>, SyncError> {
    let slots = Arc::new(Semaphore::new(RESOLVE_CONCURRENCY));
    let mut listings = tokio::task::JoinSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if !spec.filter.needs_listing() {
            continue;
        }
        let repo = repository_reference(spec, "latest")?;
        let (client, slots) = (clients[i].clone(), slots.clone());
        listings.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let listed = Repository::new(client, &repo.registry, &repo.repository)
                .list_tags()
                .await;
            (i, repo.name(), listed)
        });
    }
    let mut tags: HashMap<usize, Vec<String>> = HashMap::new();
    while let Some(joined) = listings.join_next().await {
        let (i, repository, listed) = joined.expect("listing task panicked");
        match listed {
            Ok(t) => {
                tags.insert(i, t);
            }
            Err(source) => {
                let e = SyncError::Listing { repository, source };
                if !opts.keep_going {
                    return Err(e);
                }
                tracing::error!("{}", error_chain(&e));
                failures.push(failed(&specs[i].repository, &e));
            }
        }
    }
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let listed = tags.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        for r in spec.filter.select(listed) {
            out.push((i, repository_reference(spec, &r)?));
        }
    }
    Ok(out)
}

/// `registry/repository:tag`, or `@digest` when `r` is one.
fn repository_reference(spec: &RepoSpec, r: &str) -> Result<Reference, SyncError> {
    let text = if r.parse::<Digest>().is_ok() {
        format!("{}/{}@{r}", spec.registry, spec.repository)
    } else {
        format!("{}/{}:{r}", spec.registry, spec.repository)
    };
    text.parse().map_err(|source| SyncError::Reference {
        reference: text,
        source,
    })
}

async fn resolve_all(
    specs: &[RepoSpec],
    clients: &[Arc<RegistryClient>],
    wanted: Vec<(usize, Reference)>,
    opts: &SyncOptions,
    failures: &mut Vec<ImageReport>,
) -> Result<Vec<Resolved>, SyncError> {
    let slots = Arc::new(Semaphore::new(RESOLVE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let n = wanted.len();
    for (order, (i, reference)) in wanted.into_iter().enumerate() {
        let platform = match &specs[i].platform {
            Some(p) => PlatformChoice::Exactly(p.parse::<PlatformSpec>().map_err(|why| {
                SyncError::Platform {
                    reference: reference.to_string(),
                    platform: p.clone(),
                    why: why.to_string(),
                }
            })?),
            None => opts.platform.clone(),
        };
        let (client, slots, cache) = (clients[i].clone(), slots.clone(), opts.cache.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let result = resolve_one(&client, &reference, cache.as_ref(), &platform).await;
            (order, i, reference, platform, result)
        });
    }
    let mut out: Vec<Option<Resolved>> = (0..n).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (order, spec, reference, platform, result) = joined.expect("resolve task panicked");
        match result {
            Ok((source, selection)) => {
                out[order] = Some(Resolved {
                    reference,
                    spec,
                    source,
                    selection,
                    platform,
                })
            }
            Err(e) if opts.keep_going => {
                tracing::error!("{}", error_chain(&e));
                failures.push(failed(&reference.to_string(), &e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out.into_iter().flatten().collect())
}

async fn resolve_one(
    client: &Arc<RegistryClient>,
    reference: &Reference,
    cache: Option<&BlobCache>,
    platform: &PlatformChoice,
) -> Result<(Arc<dyn ReadTarget>, Selection), SyncError> {
    let opened = ferry_registry::open_read(client, &reference.registry, &reference.repository)
        .map_err(|source| SyncError::Open {
            reference: reference.to_string(),
            source,
        })?;
    let source = CachedSource::wrap(opened, cache);
    let selection = ferry_copy::resolve(source.as_ref(), &reference.target(), platform)
        .await
        .map_err(|source| SyncError::Image {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    Ok((source, selection))
}

/// Whether the policy accepts the image `r` names, as its source has it (`Ok` without a policy).
async fn verify(r: &Resolved, verifier: Option<&Verifier>) -> Result<(), SyncError> {
    let Some(verifier) = verifier else {
        return Ok(());
    };
    let (name, key) = (r.reference.to_string(), r.reference.target());
    crate::verify(Some(verifier), r.source.as_ref(), &name, &key, &r.selection)
        .await
        .map_err(|e| SyncError::Verify(Box::new(e)))?;
    Ok(())
}

/// Copy (or plan) one image; returns its report and lock entry.
async fn sync_one(
    r: &Resolved,
    spec: &RepoSpec,
    dest: &Destination,
    opts: &SyncOptions,
    ledger: &Arc<PlanLedger>,
    earlier: Option<&LockFile>,
) -> Result<(ImageReport, Option<LockedImage>), SyncError> {
    let shown_source = r.reference.to_string();
    let placement = dest.place(&r.reference, spec.rename.as_deref())?;
    let root = &r.selection.root;
    let referrers = if spec.referrers {
        Referrers::All
    } else {
        Referrers::None
    };
    let mut report = ImageReport {
        source: shown_source.clone(),
        digest: Some(root.digest.to_string()),
        destination: placement.shown.clone(),
        status: if opts.plan {
            Status::Planned
        } else {
            Status::Copied
        },
        bytes: PlanBytes::default(),
        error: None,
    };
    let image_error = |source| SyncError::Image {
        reference: shown_source.clone(),
        source: Box::new(source),
    };
    // Incremental: the name already points at this digest (one HEAD); referrers may have changed, so an
    // image that brings them is walked anyway (every node it has costs one existence check).
    let up_to_date = referrers == Referrers::None
        && placement.current.digest().await.as_ref() == Some(&root.digest);
    let verifier = opts.verify.as_deref();
    // Nothing is written for a plan or an image already there: the policy is applied on its own. A copy
    // runs it beside the transfer instead, writing nothing until it passes.
    if opts.plan || up_to_date {
        verify(r, verifier).await?;
    }
    let digests = Arc::new(Mutex::new(BTreeSet::new()));
    if up_to_date {
        report.status = Status::UpToDate;
    } else {
        let seen = digests.clone();
        let copy = CopyOptions {
            platform: r.platform.clone(),
            budget: opts.budget.clone(),
            attempts: opts.attempts,
            referrers,
            events: Arc::new(move |e: &Event| {
                if let Event::Done { digest, .. } = e {
                    seen.lock()
                        .expect("digests lock")
                        .insert(digest.to_string());
                }
            }),
            ..CopyOptions::default()
        };
        let src: Arc<dyn ReadStore> = r.source.clone();
        if opts.plan {
            let plan = Arc::new(PlanTarget::new(placement.target.clone(), ledger.clone()));
            let target: Arc<dyn WriteTarget> = plan.clone();
            ferry_copy::copy_selected(&src, &r.selection, &target, &placement.names, &copy)
                .await
                .map_err(image_error)?;
            report.bytes = plan.bytes();
        } else {
            let (name, key) = (r.reference.to_string(), r.reference.target());
            let (dest, names) = (&placement.target, &placement.names);
            let copied = crate::copy_verified(
                &src,
                &r.selection,
                dest,
                names,
                &copy,
                verifier,
                r.source.as_ref(),
                &name,
                &key,
            )
            .await
            .map_err(|e| SyncError::Verify(Box::new(e)))?
            .map_err(image_error)?;
            let s = &copied.stats;
            report.bytes = PlanBytes {
                moving: s.fetched_bytes + s.cached_bytes + s.linked_bytes,
                present: s.existing_bytes,
                shared: s.mounted_bytes,
            };
        }
    }
    if opts.plan || opts.lock.is_none() {
        return Ok((report, None));
    }
    let mut digests = std::mem::take(&mut *digests.lock().expect("digests lock"));
    if up_to_date {
        digests = match earlier.and_then(|l| l.unchanged(&shown_source, &root.digest.to_string())) {
            Some(e) => e.digests.clone(),
            None => graph_digests(r.source.as_ref(), root, &r.selection)
                .await
                .map_err(|source| SyncError::Open {
                    reference: shown_source.clone(),
                    source,
                })?,
        };
    }
    let entry = LockedImage {
        source: shown_source,
        digest: root.digest.to_string(),
        media_type: root.media_type.clone(),
        destination: placement.shown,
        digests,
    };
    Ok((report, Some(entry)))
}

/// Every digest under `root`, reading manifests only (for an image that was already up to date).
async fn graph_digests(
    source: &dyn ReadStore,
    root: &Descriptor,
    selection: &Selection,
) -> Result<BTreeSet<String>, StoreError> {
    let mut out = BTreeSet::new();
    let mut queue = vec![(root.clone(), 0usize)];
    while let Some((desc, depth)) = queue.pop() {
        if !out.insert(desc.digest.to_string()) || depth > ferry_copy::MAX_DEPTH {
            continue;
        }
        if !ferry_oci::media_type::is_manifest_like(&desc.media_type) {
            continue;
        }
        let bytes = match selection.known.get(&desc.digest) {
            Some(b) => b.clone(),
            None => source.fetch_manifest(&desc).await?,
        };
        for child in ferry_copy::manifest_successors(source, &desc, &bytes)? {
            queue.push((child, depth + 1));
        }
    }
    Ok(out)
}

fn failed(source: &str, e: &SyncError) -> ImageReport {
    ImageReport {
        source: source.to_string(),
        digest: None,
        destination: Vec::new(),
        status: Status::Failed,
        bytes: PlanBytes::default(),
        error: Some(error_chain(e)),
    }
}

/// Free space where a layout or archive would be written, against what the plan moves (an archive is
/// staged as a layout beside it, then written: twice the bytes at the peak).
fn disk_room(dir: &Path, dest: &Destination, moving: u64) -> DiskRoom {
    let needed = match dest {
        Destination::Archive { .. } => moving.saturating_mul(2),
        _ => moving,
    };
    let available = crate::disk::available_bytes(dir).unwrap_or(0);
    DiskRoom {
        path: dir.display().to_string(),
        needed,
        available,
        enough: available >= needed,
    }
}
