//! `ferry pull`: images from registries, archives and the Docker Engine into one OCI layout or
//! oci-archive, every image resolved first (a typo in the tenth reference fails before anything is
//! written), then all of them copied at once under the run's one node budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_archive::{OciArchiveWriter, SourceSpec};
use ferry_copy::{Copied, CopyOptions, PlatformChoice, Selection, select_root};
use ferry_oci::{PlatformSpec, Reference};
use ferry_registry::RegistryError;
use ferry_store::{OciLayout, ReadStore, ReadTarget, WriteTarget};
use ferry_target::{Location, OpenContext};
use ferry_trust::Verifier;
use ferry_zarf::overrides::apply_override;

use crate::delta::{CheckImage, open_base_store};
use crate::dest::Destination;
use crate::locations::Through;
use crate::push::Watcher;

/// How many references resolve at once (metadata only; the copies then share the run's budget).
const RESOLVE_CONCURRENCY: usize = 10;

/// Boxed cause of a failed step.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// How [`pull`] runs.
pub struct PullOptions {
    /// Clients for registries; archives and Engine exports spill beside the output unless this says where.
    pub source: OpenContext,
    /// Registry overrides (`HOST=MIRROR`, parsed): the bytes come from the mirror, the recorded name
    /// stays the one asked for.
    pub overrides: Vec<(String, String)>,
    /// Which platform of an index each image keeps.
    pub platform: PlatformChoice,
    /// Zarf's fallback: an image a registry cannot give (for any reason but rate limiting) is looked for
    /// in the Docker Engine.
    pub daemon_fallback: bool,
    /// A base (layout or archive) the sources are completed from: the pull is then of a delta, checked
    /// complete before anything is written.
    pub base: Option<PathBuf>,
    /// Budget, attempts and referrers of every image's copy (its platform choice is set here).
    pub copy: CopyOptions,
    /// Registry sources are read through this (the blob cache).
    pub through: Option<Through>,
    /// Refuse images this signature policy does not accept (before anything of them is written).
    pub verify: Option<Arc<Verifier>>,
    /// Progress of each image, by its recorded name.
    pub watch: Option<Watcher>,
}

/// One image pulled.
pub struct PulledImage {
    /// The name recorded in the output (the normalized reference asked for).
    pub reference: String,
    /// What its copy did.
    pub copied: Copied,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// No image was named.
    #[error("nothing to pull: give image references or -f FILE")]
    Nothing,
    /// A location cannot be parsed or opened.
    #[error(transparent)]
    Target(Box<ferry_target::TargetError>),
    /// A `zarf.yaml` names no images it can give.
    #[error(transparent)]
    Zarf(#[from] ferry_zarf::PackageError),
    /// A registry override cannot be applied.
    #[error(transparent)]
    Override(#[from] ferry_zarf::overrides::OverrideError),
    /// The archive could not be written at the end of the run.
    #[error(transparent)]
    Dest(#[from] crate::DestError),
    /// The images are not complete over the base (a blob neither it nor the output holds).
    #[error(transparent)]
    Delta(#[from] crate::DeltaError),
    /// An image of an archive or layout has no name to record it under.
    #[error("an image in {0} has no name; name it: {0}:NAME")]
    Unnamed(String),
    /// A step failed: `context` says which (`pulling NAME (from ORIGIN)`, `opening the output layout
    /// DIR`, …).
    #[error("{context}")]
    Step {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Cause,
    },
}

impl From<ferry_target::TargetError> for PullError {
    fn from(e: ferry_target::TargetError) -> PullError {
        PullError::Target(Box::new(e))
    }
}

impl PullError {
    fn step(context: impl Into<String>, source: impl Into<Cause>) -> PullError {
        PullError::Step {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The references `refs` names and those listed in `files` (a line each, `#` comments; a `zarf.yaml`
/// gives its components' images for `architecture` and `flavor`), parsed, in order, without duplicates;
/// none at all is [`PullError::Nothing`].
pub fn references(
    refs: &[String],
    files: &[PathBuf],
    architecture: Option<&str>,
    flavor: &str,
) -> Result<Vec<Location>, PullError> {
    let mut raw: Vec<String> = refs.to_vec();
    for file in files {
        let is_zarf = file
            .file_name()
            .is_some_and(|n| n == "zarf.yaml" || n == "zarf.yml");
        if is_zarf {
            raw.extend(ferry_zarf::pull_list(file, architecture, flavor)?);
            continue;
        }
        let text = std::fs::read_to_string(file).map_err(|e| {
            PullError::step(format!("reading references from {}", file.display()), e)
        })?;
        raw.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if raw.is_empty() {
        return Err(PullError::Nothing);
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

/// Pull every image `wanted` names into `output` (a layout directory, or `oci-archive:FILE`), each
/// recorded under its normalized reference. The first failure stops the rest; a layout this run created
/// is removed again when nothing landed in it, and an archive is written only when every image is in.
pub async fn pull(
    wanted: &[Location],
    output: &Path,
    opts: &PullOptions,
) -> Result<Vec<PulledImage>, PullError> {
    if wanted.is_empty() {
        return Err(PullError::Nothing);
    }
    let mut ctx = opts.source.clone();
    ctx.archive.platform = match &opts.platform {
        PlatformChoice::Auto(p) | PlatformChoice::Exactly(p) => Some(p.clone()),
        PlatformChoice::All => None,
    };
    if ctx.archive.open.temp_dir.is_none() {
        // Temp files of archives and Engine exports go beside the output, on disk rather than in a RAM
        // /tmp.
        ctx.archive.open.temp_dir = Output::path(output)
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| p.is_dir());
    }
    let resolved = resolve_all(wanted, &ctx, opts).await?;

    let out = Output::open(output)?;
    let resolved = match &opts.base {
        Some(base) => match with_base(resolved, base, &out.target(), opts).await {
            Ok(r) => r,
            Err(e) => {
                out.finish(false)?;
                return Err(e);
            }
        },
        None => resolved,
    };
    let result = copy_all(&out.target(), resolved, opts).await;
    out.finish(result.is_ok())?;
    result
}

/// One image resolved and its platform chosen, ready to copy.
struct Resolved {
    /// The name recorded in the output and shown: the normalized reference.
    name: String,
    source: Arc<dyn ReadTarget>,
    /// Where the bytes come from, for messages (`pulling X (from Y)`).
    origin: String,
    /// What the source calls it (the key a signature is looked up by).
    key: String,
    selection: Selection,
}

async fn resolve_all(
    wanted: &[Location],
    ctx: &OpenContext,
    opts: &PullOptions,
) -> Result<Vec<Resolved>, PullError> {
    let slots = Arc::new(tokio::sync::Semaphore::new(RESOLVE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out: Vec<Vec<Resolved>> = (0..wanted.len()).map(|_| Vec::new()).collect();
    for (i, location) in wanted.iter().enumerate() {
        let Location::Registry(reference) = location else {
            out[i] = resolve_location(location, None, ctx, None, &opts.platform).await?;
            continue;
        };
        // The bytes may come from a mirror; the recorded name never changes.
        let from = Location::Registry(apply_override(reference, &opts.overrides)?);
        let (ctx, slots, choice, through) = (
            ctx.clone(),
            slots.clone(),
            opts.platform.clone(),
            opts.through.clone(),
        );
        let reference = reference.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let name = reference.to_string();
            let r = resolve_location(&from, Some(&name), &ctx, through.as_ref(), &choice).await;
            (i, reference, r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, reference, r) = joined.expect("resolve task panicked");
        out[i] = match r {
            Ok(r) => r,
            Err(e) if opts.daemon_fallback && !is_rate_limited(&e) => {
                from_daemon(&reference, e, ctx, &opts.platform).await?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(out.into_iter().flatten().collect())
}

/// Zarf's fallback: `reference`, which a registry could not give (`why`), from the Docker Engine.
async fn from_daemon(
    reference: &Reference,
    why: PullError,
    ctx: &OpenContext,
    choice: &PlatformChoice,
) -> Result<Vec<Resolved>, PullError> {
    let why = ferry_oci::error_chain(&why);
    tracing::warn!("{why}; trying the Docker daemon");
    let daemon = Location::Archive(SourceSpec::DockerDaemon {
        name: reference.to_string(),
    });
    resolve_location(&daemon, None, ctx, None, choice)
        .await
        .map_err(|e| PullError::step(format!("{why}; the Docker daemon fallback failed too"), e))
}

/// The images `location` names, each resolved (through `through`, for a registry) and its platform
/// chosen. `name` overrides the recorded name (a registry override keeps the name asked for).
async fn resolve_location(
    location: &Location,
    name: Option<&str>,
    ctx: &OpenContext,
    through: Option<&Through>,
    choice: &PlatformChoice,
) -> Result<Vec<Resolved>, PullError> {
    let opened = location.open_source(ctx).await?;
    let target = match (location, through) {
        (Location::Registry(_), Some(through)) => through(opened.target),
        _ => opened.target,
    };
    let mut out = Vec::new();
    for image in opened.images {
        let Some(shown) = name.map(str::to_string).or(image.name.clone()) else {
            return Err(PullError::Unnamed(location.to_string()));
        };
        let origin = location.to_string();
        let fail = |e: Cause| PullError::step(pulling(&shown, &origin), e);
        let (desc, bytes) = target
            .resolve(&image.key)
            .await
            .map_err(|e| fail(e.into()))?;
        let selection = select_root(target.as_ref(), desc, bytes, image.pinned, choice)
            .await
            .map_err(|e| fail(e.into()))?;
        out.push(Resolved {
            origin,
            name: shown,
            key: image.key.clone(),
            source: target.clone(),
            selection,
        });
    }
    Ok(out)
}

/// Whether any registry error in `e`'s chain is a rate limit (HTTP 429).
fn is_rate_limited(e: &PullError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if RegistryError::find(cause).is_some_and(RegistryError::is_rate_limited) {
            return true;
        }
        next = cause.source();
    }
    false
}

/// `pulling NAME`, with `(from ORIGIN)` when the bytes come from elsewhere.
fn pulling(name: &str, origin: &str) -> String {
    if name == origin {
        format!("pulling {name}")
    } else {
        format!("pulling {name} (from {origin})")
    }
}

/// Each source read over `base` (a delta completed from what it lacks), and every image checked complete
/// against the output before anything is written.
async fn with_base(
    resolved: Vec<Resolved>,
    base: &Path,
    dest: &Arc<dyn WriteTarget>,
    opts: &PullOptions,
) -> Result<Vec<Resolved>, PullError> {
    let base_store = open_base_store(base)
        .await
        .map_err(|e| PullError::step(format!("opening the base {}", base.display()), e))?;
    let resolved: Vec<Resolved> = resolved
        .into_iter()
        .map(|r| Resolved {
            source: Arc::new(crate::WithBase::new(r.source, base_store.clone())),
            ..r
        })
        .collect();
    let checks: Vec<CheckImage> = resolved
        .iter()
        .map(|r| CheckImage {
            label: r.name.clone(),
            source: r.source.clone(),
            root: r.selection.root.clone(),
            dest: dest.clone(),
        })
        .collect();
    crate::check_complete(&checks, opts.copy.budget.size()).await?;
    Ok(resolved)
}

/// Every image at once under the run's one budget: at most the budget's nodes move in flight in all
/// (Zarf's bound), and the next image's nodes take the slots the last one's no longer need. The first
/// failure stops the rest; an image is named only once it is complete, and its signature (if a policy is
/// given) is checked beside its copy, before anything of it is written.
async fn copy_all(
    dest: &Arc<dyn WriteTarget>,
    resolved: Vec<Resolved>,
    opts: &PullOptions,
) -> Result<Vec<PulledImage>, PullError> {
    let mut tasks = tokio::task::JoinSet::new();
    let count = resolved.len();
    for (i, r) in resolved.into_iter().enumerate() {
        let dest = dest.clone();
        let verifier = opts.verify.clone();
        let watch = opts.watch.as_ref().map(|w| w(&r.name));
        let copy = CopyOptions {
            platform: opts.platform.clone(),
            events: watch
                .as_ref()
                .map_or(opts.copy.events.clone(), |w| w.events()),
            ..opts.copy.clone()
        };
        tasks.spawn(async move {
            let source: Arc<dyn ReadStore> = r.source.clone();
            let names = vec![r.name.clone()];
            let copied = crate::copy_verified(
                &source,
                &r.selection,
                &dest,
                &names,
                &copy,
                verifier.as_deref(),
                r.source.as_ref(),
                &r.name,
                &r.key,
            )
            .await;
            if let Some(w) = watch {
                w.finish(matches!(copied, Ok(Ok(_))));
            }
            let fail = |e: Cause| PullError::step(pulling(&r.name, &r.origin), e);
            let copied = match copied {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(fail(e.into())),
                Err(e) => Err(fail(e.into())),
            };
            (i, r.name, copied)
        });
    }
    let mut pulled: Vec<Option<PulledImage>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, reference, copied) = joined.expect("copy task panicked");
        match copied {
            Ok(copied) => pulled[i] = Some(PulledImage { reference, copied }),
            Err(e) => {
                tasks.abort_all();
                return Err(e);
            }
        }
    }
    Ok(pulled.into_iter().flatten().collect())
}

/// Where a pull writes: a layout directory or an oci-archive ([`Destination`], written once every image is
/// in), and whether this run made the layout.
struct Output {
    dest: Destination,
    created: bool,
}

impl Output {
    /// The file or directory `spec` names.
    fn path(spec: &Path) -> &Path {
        spec.to_str()
            .and_then(|o| o.strip_prefix("oci-archive:"))
            .map_or(spec, Path::new)
    }

    fn open(spec: &Path) -> Result<Output, PullError> {
        let path = Output::path(spec);
        if path != spec {
            let writer = OciArchiveWriter::create(path)
                .map_err(|e| PullError::step(format!("creating {}", path.display()), e))?;
            let dest = Destination::Archive {
                path: path.to_path_buf(),
                writer: Arc::new(writer),
            };
            return Ok(Output {
                dest,
                created: false,
            });
        }
        let created = !spec.exists();
        let layout = OciLayout::open_or_create(spec).map_err(|e| {
            PullError::step(format!("opening the output layout {}", spec.display()), e)
        })?;
        Ok(Output {
            dest: Destination::Layout(layout),
            created,
        })
    }

    fn target(&self) -> Arc<dyn WriteTarget> {
        self.dest
            .local_target()
            .expect("a pull writes a layout or an archive")
    }

    /// Write the archive, or tidy the layout. After a failure a layout this run created and left empty is
    /// removed, so a failed pull leaves no trace, and an archive is never written.
    fn finish(self, ok: bool) -> Result<(), PullError> {
        if ok {
            return Ok(self.dest.finish()?);
        }
        if let Destination::Layout(layout) = &self.dest {
            layout.tidy();
            if self.created && layout.entries().map(|e| e.is_empty()).unwrap_or(false) {
                // Blocking work of the failed copy (a temp file being closed) may still be finishing
                // inside: a removal that races it is tried again, briefly.
                for _ in 0..10 {
                    if std::fs::remove_dir_all(layout.root()).is_ok() || !layout.root().exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }
}

/// The platform `--all-platforms`, `--platform` or `--arch` asks for: by default this machine's, or
/// the only one an image has.
pub fn platform_choice(
    all: bool,
    platform: Option<&PlatformSpec>,
    architecture: Option<&str>,
) -> PlatformChoice {
    match (all, platform) {
        (true, _) => PlatformChoice::All,
        (false, Some(p)) => PlatformChoice::Exactly(p.clone()),
        (false, None) => {
            PlatformChoice::Auto(architecture.map_or_else(PlatformSpec::host, PlatformSpec::linux))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_arguments_then_files_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("images.txt");
        std::fs::write(
            &list,
            "# comment\n\n  docker.io/library/alpine:3.20\nregistry.local/app:v1\n",
        )
        .unwrap();
        let got = references(&["alpine:3.20".into()], &[list], None, "").unwrap();
        let shown: Vec<String> = got.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            ["docker.io/library/alpine:3.20", "registry.local/app:v1"]
        );
    }

    #[test]
    fn no_reference_at_all_is_said_before_anything_opens() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("images.txt");
        std::fs::write(&empty, "# nothing yet\n").unwrap();
        let e = references(&[], &[empty], None, "").unwrap_err();
        assert!(matches!(e, PullError::Nothing), "{e}");
    }

    #[test]
    fn a_missing_list_file_is_named() {
        let e = references(&[], &[PathBuf::from("/nonexistent/list.txt")], None, "").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/list.txt"),
            "{}",
            ferry_oci::error_chain(&e)
        );
    }

    #[test]
    fn the_platform_flags_choose_in_order() {
        let arm = PlatformSpec::linux("arm64");
        assert!(matches!(
            platform_choice(true, Some(&arm), None),
            PlatformChoice::All
        ));
        assert!(matches!(platform_choice(false, Some(&arm), Some("amd64")),
            PlatformChoice::Exactly(p) if p == arm));
        assert!(matches!(platform_choice(false, None, Some("arm64")),
            PlatformChoice::Auto(p) if p == arm));
    }
}
