//! `ferry pull`: registry → OCI layout through the shared cache.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyOptions, PlatformChoice, Selection, select_root};
use ferry_oci::PlatformSpec;
use ferry_registry::RegistryClient;
use ferry_store::{BlobCache, OciLayout, ReadStore, ReadTarget, WriteTarget};
use serde::Serialize;

use ferry_target::{Location, OpenContext};

use crate::cli::{PullArgs, TransferArgs};
use crate::progress::{ImageProgress, Mode};
use crate::registry_opts;
use crate::run_copy::{Caching, Moved, cached, options, print_moved, referrers, verifier};
use ferry_trust::Verifier;

/// Whole-image attempts, as Zarf makes.
const PULL_ATTEMPTS: u32 = 3;

/// How many references resolve at once (metadata only; images then copy one at a time, as in Zarf).
const RESOLVE_CONCURRENCY: usize = 10;

#[derive(Serialize)]
struct PulledImage {
    reference: String,
    #[serde(flatten)]
    moved: Moved,
}

/// Where a pull writes: a layout directory, or `oci-archive:FILE` (a staging layout beside it).
enum Output {
    Layout { layout: OciLayout, created: bool },
    Archive(Arc<ferry_archive::OciArchiveWriter>),
}

impl Output {
    fn open(spec: &Path) -> anyhow::Result<Output> {
        if let Some(file) = spec.to_str().and_then(|o| o.strip_prefix("oci-archive:")) {
            let writer = ferry_archive::OciArchiveWriter::create(Path::new(file))
                .with_context(|| format!("creating {file}"))?;
            return Ok(Output::Archive(Arc::new(writer)));
        }
        let created = !spec.exists();
        let layout = OciLayout::open_or_create(spec)
            .with_context(|| format!("opening the output layout {}", spec.display()))?;
        Ok(Output::Layout { layout, created })
    }

    fn target(&self) -> Arc<dyn WriteTarget> {
        match self {
            Output::Layout { layout, .. } => Arc::new(layout.clone()),
            Output::Archive(w) => w.clone(),
        }
    }

    /// Write the archive, or tidy the layout (a layout this run created and left empty is removed, so a
    /// failed pull leaves no trace; a failed archive is never written).
    fn finish(self, ok: bool, spec: &Path) -> anyhow::Result<()> {
        match self {
            Output::Layout { layout, created } => {
                layout.tidy();
                if !ok && created && layout.entries().map(|e| e.is_empty()).unwrap_or(false) {
                    // Blocking work of the failed copy (a temp file being closed) may still be
                    // finishing inside: a removal that races it is tried again, briefly.
                    for _ in 0..10 {
                        if std::fs::remove_dir_all(layout.root()).is_ok() || !layout.root().exists()
                        {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
            }
            Output::Archive(w) if ok => {
                let writer = Arc::try_unwrap(w).map_err(|_| {
                    anyhow::anyhow!("internal error: the archive writer is still in use")
                })?;
                let written = writer
                    .finish()
                    .with_context(|| format!("writing {}", spec.display()))?;
                tracing::info!("wrote {written:?}");
            }
            Output::Archive(_) => {}
        }
        Ok(())
    }
}

pub async fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    let wanted = collect_references(&args)?;
    if wanted.is_empty() {
        bail!("nothing to pull: give image references or -f FILE");
    }
    let overrides = ferry_zarf::overrides::parse_overrides(&args.registry_overrides)?;
    let choice = platform_choice(&args)?;
    let client = registry_opts::client(&args.registry, None)?;
    let cache = Caching::from_args(&args.transfer)?;

    // Temp files of archives and daemon exports go beside the output, on disk rather than in a RAM /tmp.
    let spill = args
        .output
        .to_str()
        .map(|o| o.strip_prefix("oci-archive:").unwrap_or(o))
        .and_then(|o| Path::new(o).parent().map(Path::to_path_buf))
        .filter(|p| p.is_dir());
    // Resolve everything first: a typo in the tenth reference fails before anything is written.
    let resolved = resolve_all(
        &client,
        cache.as_ref(),
        &wanted,
        &overrides,
        &choice,
        &args,
        spill,
    )
    .await?;

    let output = Output::open(&args.output)?;
    let resolved = match &args.base {
        Some(base) => match with_base(resolved, base, &output.target(), &args).await {
            Ok(r) => r,
            Err(e) => {
                output.finish(false, &args.output)?;
                return Err(e);
            }
        },
        None => resolved,
    };
    let opts = options(
        choice,
        args.transfer.oci_concurrency,
        PULL_ATTEMPTS,
        referrers(&args.referrers),
    );
    // Signatures are checked beside each image's copy, before anything of it is written.
    let verifier = verifier(&args.trust)?;
    let result = copy_all(quiet, &output.target(), resolved, &opts, verifier).await;
    output.finish(result.is_ok(), &args.output)?;
    print_moved(&result?, args.json, quiet, "REFERENCE", |p| {
        (&p.reference, &p.moved)
    })
}

/// Each source read over `base` (a delta completed from what it lacks), and every image checked complete
/// against the output before anything is written.
async fn with_base(
    resolved: Vec<Resolved>,
    base: &Path,
    dest: &Arc<dyn WriteTarget>,
    args: &PullArgs,
) -> anyhow::Result<Vec<Resolved>> {
    let base_store = ferry_sync::delta::open_base_store(base)
        .await
        .with_context(|| format!("opening the base {}", base.display()))?;
    let resolved: Vec<Resolved> = resolved
        .into_iter()
        .map(|r| Resolved {
            source: Arc::new(ferry_sync::WithBase::new(r.source, base_store.clone())),
            ..r
        })
        .collect();
    let checks: Vec<ferry_sync::CheckImage> = resolved
        .iter()
        .map(|r| ferry_sync::CheckImage {
            label: r.name.clone(),
            source: r.source.clone(),
            root: r.selection.root.clone(),
            dest: dest.clone(),
        })
        .collect();
    ferry_sync::check_complete(&checks, args.transfer.oci_concurrency as usize).await?;
    Ok(resolved)
}

struct Resolved {
    /// The name recorded in the layout and shown: the normalized reference.
    name: String,
    source: Arc<dyn ReadTarget>,
    /// Where the bytes come from, for messages (`pulling X (from Y)`).
    origin: String,
    /// What the source calls it (the key a signature is looked up by).
    key: String,
    selection: Selection,
}

async fn resolve_all(
    client: &Arc<RegistryClient>,
    cache: Option<&Caching>,
    wanted: &[Location],
    overrides: &[(String, String)],
    choice: &PlatformChoice,
    args: &PullArgs,
    spill: Option<std::path::PathBuf>,
) -> anyhow::Result<Vec<Resolved>> {
    let ctx = OpenContext {
        client: client.clone(),
        archive: ferry_archive::SourceOptions {
            open: ferry_archive::OpenOptions { temp_dir: spill },
            platform: match choice {
                PlatformChoice::Auto(p) | PlatformChoice::Exactly(p) => Some(p.clone()),
                PlatformChoice::All => None,
            },
        },
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(RESOLVE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out: Vec<Vec<Resolved>> = (0..wanted.len()).map(|_| Vec::new()).collect();
    for (i, location) in wanted.iter().enumerate() {
        let Location::Registry(reference) = location else {
            out[i] = resolve_location(location, None, &ctx, cache, choice).await?;
            continue;
        };
        // The bytes may come from a mirror; the recorded name never changes.
        let from = Location::Registry(ferry_zarf::overrides::apply_override(reference, overrides)?);
        let (ctx, slots, choice, cache) =
            (ctx.clone(), slots.clone(), choice.clone(), cache.cloned());
        let reference = reference.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let name = reference.to_string();
            let r = resolve_location(&from, Some(&name), &ctx, cache.as_ref(), &choice).await;
            (i, reference, r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, reference, r) = joined.expect("resolve task panicked");
        out[i] = match r {
            Ok(r) => r,
            // Zarf's fallback: an image the registry cannot give (for any reason but rate limiting) may be
            // one built locally.
            Err(e) if args.daemon_fallback && !is_rate_limited(&e) => {
                tracing::warn!("{e:#}; trying the Docker daemon");
                let daemon = Location::Archive(ferry_archive::SourceSpec::DockerDaemon {
                    name: reference.to_string(),
                });
                resolve_location(&daemon, None, &ctx, None, choice)
                    .await
                    .with_context(|| format!("{e:#}; the Docker daemon fallback failed too"))?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(out.into_iter().flatten().collect())
}

/// The images `location` names, each resolved (through the cache, for a registry) and its platform
/// chosen. `name` overrides the recorded name (a registry override keeps the name asked for).
async fn resolve_location(
    location: &Location,
    name: Option<&str>,
    ctx: &OpenContext,
    cache: Option<&Caching>,
    choice: &PlatformChoice,
) -> anyhow::Result<Vec<Resolved>> {
    let opened = location.open_source(ctx).await?;
    let cache = cache.filter(|_| matches!(location, Location::Registry(_)));
    let target = cached(opened.target, cache);
    let mut out = Vec::new();
    for image in opened.images {
        let shown = name
            .map(str::to_string)
            .or(image.name.clone())
            .with_context(|| {
                format!("an image in {location} has no name; name it: {location}:NAME")
            })?;
        let context = || describe_source(&shown, &location.to_string());
        let (desc, bytes) = target.resolve(&image.key).await.with_context(context)?;
        let selection = select_root(target.as_ref(), desc, bytes, image.pinned, choice)
            .await
            .with_context(context)?;
        out.push(Resolved {
            origin: location.to_string(),
            name: shown,
            key: image.key.clone(),
            source: target.clone(),
            selection,
        });
    }
    Ok(out)
}

fn is_rate_limited(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        ferry_registry::RegistryError::find(c)
            .is_some_and(ferry_registry::RegistryError::is_rate_limited)
    })
}

fn describe_source(name: &str, origin: &str) -> String {
    if name == origin {
        format!("pulling {name}")
    } else {
        format!("pulling {name} (from {origin})")
    }
}

/// Every image at once under the run's one budget: at most `--oci-concurrency` nodes move in flight in
/// all (Zarf's bound), and the next image's nodes take the slots the last one's no longer need. The first
/// failure stops the rest; an image is named only once it is complete.
async fn copy_all(
    quiet: bool,
    dest: &Arc<dyn WriteTarget>,
    resolved: Vec<Resolved>,
    opts: &CopyOptions,
    verifier: Option<Arc<Verifier>>,
) -> anyhow::Result<Vec<PulledImage>> {
    let mode = Mode::detect(quiet);
    let mut tasks = tokio::task::JoinSet::new();
    let count = resolved.len();
    for (i, r) in resolved.into_iter().enumerate() {
        let (dest, opts, verifier) = (dest.clone(), opts.clone(), verifier.clone());
        tasks.spawn(async move {
            let source: Arc<dyn ReadStore> = r.source.clone();
            let names = vec![r.name.clone()];
            let progress = ImageProgress::new(mode, &r.name);
            let opts = CopyOptions {
                events: progress.sink(),
                ..opts
            };
            // The signature is checked beside the copy, before anything of the image is written.
            let copied = ferry_sync::copy_verified(
                &source,
                &r.selection,
                &dest,
                &names,
                &opts,
                verifier.as_deref(),
                r.source.as_ref(),
                &r.name,
                &r.key,
            )
            .await
            .map_err(anyhow::Error::from)
            .and_then(|copied| Ok(copied?));
            progress.finish(copied.is_ok());
            let copied = copied.with_context(|| describe_source(&r.name, &r.origin));
            (i, r.name, copied)
        });
    }
    let mut pulled: Vec<Option<PulledImage>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, name, copied) = joined.expect("copy task panicked");
        let copied = match copied {
            Ok(c) => c,
            Err(e) => {
                tasks.abort_all();
                return Err(e);
            }
        };
        pulled[i] = Some(PulledImage {
            reference: name,
            moved: Moved::of(copied),
        });
    }
    Ok(pulled.into_iter().flatten().collect())
}

/// References from arguments and `-f` files, normalized, in order, without duplicates.
fn collect_references(args: &PullArgs) -> anyhow::Result<Vec<Location>> {
    let mut raw: Vec<String> = args.references.to_vec();
    for file in &args.files {
        let is_zarf = file
            .file_name()
            .is_some_and(|n| n == "zarf.yaml" || n == "zarf.yml");
        if is_zarf {
            let arch = match &args.platform {
                Some(p) => Some(p.architecture.clone()),
                None => args.architecture.clone(),
            };
            raw.extend(ferry_zarf::pull_list(file, arch.as_deref(), &args.flavor)?);
            continue;
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading references from {}", file.display()))?;
        raw.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    let mut out: Vec<Location> = Vec::new();
    for r in raw {
        let location = Location::parse(&r)?;
        if !out.contains(&location) {
            out.push(location);
        }
    }
    Ok(out)
}

fn platform_choice(args: &PullArgs) -> anyhow::Result<PlatformChoice> {
    if args.all_platforms {
        return Ok(PlatformChoice::All);
    }
    if let Some(p) = &args.platform {
        return Ok(PlatformChoice::Exactly(p.clone()));
    }
    Ok(PlatformChoice::Auto(match &args.architecture {
        Some(a) => PlatformSpec::linux(a),
        None => PlatformSpec::host(),
    }))
}

pub fn open_cache(args: &TransferArgs) -> anyhow::Result<Option<BlobCache>> {
    if args.no_cache {
        return Ok(None);
    }
    let root = match &args.cache {
        Some(dir) => dir.clone(),
        None => BlobCache::default_root().context(
            "no cache directory: set $HOME or $FERRY_CACHE, pass --cache DIR, or --no-cache",
        )?,
    };
    Ok(Some(BlobCache::open(&root).with_context(|| {
        format!("opening the blob cache {}", root.display())
    })?))
}
