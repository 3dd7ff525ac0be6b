//! `ferry pull`: registry → OCI layout through the shared cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyStats, PlatformChoice, Selection, select_root};
use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, PlatformSpec, Reference};
use ferry_registry::{RegistryClient, Repository};
use ferry_store::layout::record_image;
use ferry_store::{BlobCache, OciLayout, ReadStore, WriteStore};
use serde::Serialize;

use crate::cli::{PullArgs, TransferArgs};
use crate::image_copy::ImageCopy;
use crate::progress::Mode;
use crate::referrers::discover;
use crate::registry_opts;

/// Whole-image attempts, as Zarf makes.
const PULL_ATTEMPTS: u32 = 3;

/// How many references resolve at once (metadata only; images then copy one at a time, as in Zarf).
const RESOLVE_CONCURRENCY: usize = 10;

#[derive(Serialize)]
struct PulledImage {
    reference: String,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    platform: Option<String>,
    bytes: u64,
    blobs: CopyStats,
    /// Digests of the referrers pulled with it (`--referrers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    referrers: Vec<String>,
}

pub async fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    let wanted = collect_references(&args.references, &args.files)?;
    if wanted.is_empty() {
        bail!("nothing to pull: give image references or -f FILE");
    }
    let overrides = parse_overrides(&args.registry_overrides)?;
    let choice = platform_choice(&args)?;
    let client = registry_opts::client(&args.registry, None)?;
    let cache = open_cache(&args.transfer)?;
    // `-o oci-archive:FILE.tar[.zst]`: pull into a layout beside FILE, then write the archive from it.
    let archive_out = args
        .output
        .to_str()
        .and_then(|o| o.strip_prefix("oci-archive:"))
        .map(std::path::PathBuf::from);
    let layout_dir = match &archive_out {
        Some(file) => staging_dir(file)?,
        None => args.output.clone(),
    };

    // Resolve everything first: a typo in the tenth reference fails before anything is written.
    let resolved = resolve_all(&client, &wanted, &overrides, &choice, &args, &layout_dir).await?;

    let created = !layout_dir.exists();
    let layout = OciLayout::open_or_create(&layout_dir)
        .with_context(|| format!("opening the output layout {}", layout_dir.display()))?;
    let result = copy_all(&args, quiet, cache, &layout, resolved).await;
    layout.tidy();
    if result.is_err() && created {
        remove_if_empty(&layout);
    }
    let pulled = result?;
    if let Some(file) = &archive_out {
        let (dir, file) = (layout_dir.clone(), file.clone());
        let written = tokio::task::spawn_blocking(move || {
            let r = ferry_archive::OciArchive::write(&dir, &file);
            let _ = std::fs::remove_dir_all(&dir);
            r
        })
        .await
        .context("archive task failed")?
        .with_context(|| format!("writing {}", args.output.display()))?;
        tracing::info!("wrote {written:?}");
    }
    print_summary(&pulled, args.json, quiet)
}

/// A fresh directory beside `file` (same filesystem, so cached blobs link instead of copying).
fn staging_dir(file: &Path) -> anyhow::Result<std::path::PathBuf> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".ferry-archive-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    Ok(dir.keep())
}

/// What the user asked for: a registry reference, or an archive or daemon image.
enum Wanted {
    Registry(Reference),
    Local(ferry_archive::SourceSpec, String),
}

struct Resolved {
    /// The name recorded in the layout and shown: the normalized reference.
    name: String,
    /// The registry reference (`None` for archives and the daemon), for naming cosign referrers.
    reference: Option<Reference>,
    source: Arc<dyn ReadStore>,
    /// Where the bytes come from, for messages (`pulling X (from Y)`).
    origin: String,
    selection: Selection,
}

async fn resolve_all(
    client: &Arc<RegistryClient>,
    wanted: &[Wanted],
    overrides: &[(String, String)],
    choice: &PlatformChoice,
    args: &PullArgs,
    layout_dir: &Path,
) -> anyhow::Result<Vec<Resolved>> {
    let slots = Arc::new(tokio::sync::Semaphore::new(RESOLVE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out: Vec<Vec<Resolved>> = (0..wanted.len()).map(|_| Vec::new()).collect();
    // Temp files of archives and daemon exports go beside the output, on disk rather than in a RAM /tmp.
    let open = ferry_archive::SourceOptions {
        open: ferry_archive::OpenOptions {
            temp_dir: layout_dir
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| p.is_dir()),
        },
        platform: match choice {
            PlatformChoice::Auto(p) | PlatformChoice::Exactly(p) => Some(p.clone()),
            PlatformChoice::All => None,
        },
    };
    for (i, w) in wanted.iter().enumerate() {
        let reference = match w {
            Wanted::Local(spec, typed) => {
                out[i] = resolve_local(spec, typed, &open, choice).await?;
                continue;
            }
            Wanted::Registry(r) => r.clone(),
        };
        let source_ref = apply_override(&reference, overrides)?;
        let (client, slots, choice) = (client.clone(), slots.clone(), choice.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire().await.expect("semaphore open");
            let repo = Repository::new(client, &source_ref.registry, &source_ref.repository);
            let result = async {
                let (desc, bytes) = repo.resolve(&source_ref.target()).await?;
                let selection =
                    select_root(&repo, desc, bytes, source_ref.digest.is_some(), &choice).await?;
                anyhow::Ok(selection)
            }
            .await
            .with_context(|| describe_source(&reference.to_string(), &source_ref.to_string()));
            (
                i,
                reference.clone(),
                result.map(|selection| Resolved {
                    name: reference.to_string(),
                    reference: Some(reference),
                    origin: source_ref.to_string(),
                    source: Arc::new(repo),
                    selection,
                }),
            )
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, reference, r) = joined.expect("resolve task panicked");
        out[i] = match r {
            Ok(r) => vec![r],
            // Zarf's fallback: an image the registry cannot give (for any reason but rate limiting) may be
            // one built locally.
            Err(e) if args.daemon_fallback && !is_rate_limited(&e) => {
                tracing::warn!("{e:#}; trying the Docker daemon");
                let spec = ferry_archive::SourceSpec::DockerDaemon {
                    name: reference.to_string(),
                };
                resolve_local(&spec, &reference.to_string(), &open, choice)
                    .await
                    .with_context(|| format!("{e:#}; the Docker daemon fallback failed too"))?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(out.into_iter().flatten().collect())
}

fn is_rate_limited(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<ferry_registry::RegistryError>()
            .is_some_and(ferry_registry::RegistryError::is_rate_limited)
    })
}

/// The images of an archive or the daemon, selected like registry images, named by the reference given
/// (`docker-archive:FILE:REF`), else by the names the archive records.
async fn resolve_local(
    spec: &ferry_archive::SourceSpec,
    typed: &str,
    open: &ferry_archive::SourceOptions,
    choice: &PlatformChoice,
) -> anyhow::Result<Vec<Resolved>> {
    let source = ferry_archive::open_source(spec, open)
        .await
        .with_context(|| format!("opening {typed}"))?;
    let given = match spec {
        ferry_archive::SourceSpec::DockerDaemon { name } => Some(name.clone()),
        ferry_archive::SourceSpec::DockerArchive { reference, .. }
        | ferry_archive::SourceSpec::OciArchive { reference, .. } => reference.clone(),
    };
    let mut out = Vec::new();
    for image in source.images {
        let raw_name = given
            .clone()
            .or(image.name.clone())
            .with_context(|| format!("an image in {typed} has no name; name it: {typed}:NAME"))?;
        // Names that are references are normalized like any other; a bare tag (Docker's `linux`) is kept.
        let reference = raw_name.parse::<Reference>().ok();
        let name = reference
            .as_ref()
            .map_or(raw_name.clone(), |r| r.to_string());
        let bytes = source
            .store
            .fetch_manifest(&image.desc)
            .await
            .with_context(|| format!("reading {name} from {typed}"))?;
        let selection = select_root(
            source.store.as_ref(),
            image.desc.clone(),
            bytes,
            false,
            choice,
        )
        .await
        .with_context(|| format!("pulling {name} from {typed}"))?;
        out.push(Resolved {
            name,
            reference: None,
            source: source.store.clone(),
            origin: typed.to_string(),
            selection,
        });
    }
    Ok(out)
}

fn describe_source(name: &str, origin: &str) -> String {
    if name == origin {
        format!("pulling {name}")
    } else {
        format!("pulling {name} (from {origin})")
    }
}

async fn copy_all(
    args: &PullArgs,
    quiet: bool,
    cache: Option<BlobCache>,
    layout: &OciLayout,
    resolved: Vec<Resolved>,
) -> anyhow::Result<Vec<PulledImage>> {
    let mode = Mode::detect(quiet);
    let dest: Arc<dyn WriteStore> = Arc::new(layout.clone());
    let mut pulled = Vec::new();
    for r in resolved {
        let label = r.name.clone();
        let source: Arc<dyn ReadStore> = r.source.clone();
        let copier = ImageCopy {
            label: &label,
            mode,
            cache: cache.clone(),
            concurrency: args.transfer.oci_concurrency as usize,
            attempts: PULL_ATTEMPTS,
        };
        let mut stats = copier
            .run(
                source.clone(),
                dest.clone(),
                &r.selection.root,
                &r.selection.known,
            )
            .await
            .with_context(|| describe_source(&r.name, &r.origin))?;

        // The image is complete: only now does it get an index entry.
        let named = named_entry(&r.selection.root, &label);
        let children = r.selection.children.clone();
        let entry = named.clone();
        layout
            .update_index(move |entries| record_image(entries, entry, children))
            .with_context(|| format!("recording {label} in {}", layout.root().display()))?;

        // Referrers after their subject, each recorded once complete: cosign tags under their tag, the
        // others as unnamed entries (as oras-go records them) that `push --referrers` finds again.
        let mut referrers = Vec::new();
        let found = discover(source.as_ref(), &r.selection.root, &args.referrers)
            .await
            .with_context(|| format!("listing the referrers of {label}"))?;
        for referrer in found {
            let more = copier
                .run(
                    source.clone(),
                    dest.clone(),
                    &referrer.desc,
                    &HashMap::new(),
                )
                .await
                .with_context(|| format!("pulling referrer {} of {label}", referrer.desc.digest))?;
            stats.merge(&more);
            let update = match &referrer.tag {
                Some(tag) => {
                    let name = match &r.reference {
                        Some(reference) => Reference {
                            tag: Some(tag.clone()),
                            digest: None,
                            ..reference.clone()
                        }
                        .to_string(),
                        None => {
                            format!("{}:{tag}", label.split(['@', ':']).next().unwrap_or(&label))
                        }
                    };
                    let entry = named_entry(&referrer.desc, &name);
                    layout.update_index(move |entries| record_image(entries, entry, Vec::new()))
                }
                None => {
                    let entry = referrer.desc.clone();
                    layout.update_index(move |entries| {
                        if !entries.iter().any(|e| e.digest == entry.digest) {
                            entries.push(entry);
                        }
                    })
                }
            };
            update.with_context(|| format!("recording a referrer of {label}"))?;
            referrers.push(referrer.desc.digest.to_string());
        }
        let mut summary = summary(&r.name, &named, stats);
        summary.referrers = referrers;
        pulled.push(summary);
    }
    Ok(pulled)
}

/// A layout entry for `desc` named `name` with both annotations Zarf reads.
fn named_entry(desc: &Descriptor, name: &str) -> Descriptor {
    let mut named = desc.clone();
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), name.to_string());
    named
        .annotations
        .insert(ANNOTATION_BASE_NAME.into(), name.to_string());
    named
}

fn summary(name: &str, desc: &Descriptor, stats: CopyStats) -> PulledImage {
    PulledImage {
        reference: name.to_string(),
        digest: desc.digest.to_string(),
        media_type: desc.media_type.clone(),
        platform: desc.platform.as_ref().map(|p| p.to_string()),
        bytes: stats.total_bytes(),
        blobs: stats,
        referrers: Vec::new(),
    }
}

fn print_summary(pulled: &[PulledImage], json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(&pulled)?;
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    println!(
        "{:<60} {:<19} {:<14} {:>12} {:>7} {:>6} {:>6} {:>8}",
        "REFERENCE", "DIGEST", "PLATFORM", "BYTES", "FETCHED", "CACHED", "LINKED", "EXISTING"
    );
    for p in pulled {
        println!(
            "{:<60} {:<19} {:<14} {:>12} {:>7} {:>6} {:>6} {:>8}",
            p.reference,
            &p.digest[..p.digest.len().min(19)],
            p.platform.as_deref().unwrap_or("-"),
            p.bytes,
            p.blobs.fetched,
            p.blobs.cached,
            p.blobs.linked,
            p.blobs.existing
        );
    }
    Ok(())
}

/// References from arguments and `-f` files, normalized, in order, without duplicates.
fn collect_references(
    args: &[String],
    files: &[std::path::PathBuf],
) -> anyhow::Result<Vec<Wanted>> {
    let mut raw: Vec<String> = args.to_vec();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading references from {}", file.display()))?;
        let is_zarf = file
            .file_name()
            .is_some_and(|n| n == "zarf.yaml" || n == "zarf.yml");
        if is_zarf {
            raw.extend(ferry_zarf::images_in_zarf_yaml(
                &file.display().to_string(),
                &text,
            )?);
        } else {
            raw.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<Wanted> = Vec::new();
    for r in raw {
        if let Some(spec) = ferry_archive::SourceSpec::parse(&r) {
            if !seen.contains(&r) {
                seen.push(r.clone());
                out.push(Wanted::Local(spec, r));
            }
            continue;
        }
        let parsed: Reference = r.parse()?;
        if !seen.contains(&parsed.to_string()) {
            seen.push(parsed.to_string());
            out.push(Wanted::Registry(parsed));
        }
    }
    Ok(out)
}

fn parse_overrides(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|o| match o.split_once('=') {
            Some((src, dst)) if !src.is_empty() && !dst.is_empty() => {
                Ok((src.to_string(), dst.trim_end_matches('/').to_string()))
            }
            _ => bail!("invalid --registry-override {o:?}: expected SRC=DST, e.g. docker.io=mirror.local:5000"),
        })
        .collect()
}

/// The first override whose SRC is a string prefix of the normalized reference rewrites where it is
/// fetched from (Zarf's rule).
fn apply_override(
    reference: &Reference,
    overrides: &[(String, String)],
) -> anyhow::Result<Reference> {
    let full = reference.to_string();
    for (src, dst) in overrides {
        if let Some(rest) = full.strip_prefix(src.as_str()) {
            let rewritten = format!("{dst}{rest}");
            return rewritten.parse::<Reference>().with_context(|| {
                format!("--registry-override {src}={dst} turns {full} into an invalid reference")
            });
        }
    }
    Ok(reference.clone())
}

fn platform_choice(args: &PullArgs) -> anyhow::Result<PlatformChoice> {
    if args.all_platforms {
        return Ok(PlatformChoice::All);
    }
    if let Some(p) = &args.platform {
        return Ok(PlatformChoice::Exactly(
            p.parse::<PlatformSpec>().map_err(anyhow::Error::msg)?,
        ));
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

/// A layout this run created and filled with nothing is removed, so a failed pull leaves no trace.
fn remove_if_empty(layout: &OciLayout) {
    if layout.entries().map(|e| e.is_empty()).unwrap_or(false) {
        let root: &Path = layout.root();
        let _ = std::fs::remove_dir_all(root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_use_the_first_prefix_match() {
        let o = parse_overrides(&[
            "docker.io/library=mirror:5000/lib".into(),
            "docker.io=mirror:5000".into(),
        ])
        .unwrap();
        let r: Reference = "nginx:1.25".parse().unwrap();
        assert_eq!(
            apply_override(&r, &o).unwrap().to_string(),
            "mirror:5000/lib/nginx:1.25"
        );
        let r: Reference = "zarf-dev/agent:1".parse().unwrap();
        assert_eq!(
            apply_override(&r, &o).unwrap().to_string(),
            "mirror:5000/zarf-dev/agent:1"
        );
        assert!(parse_overrides(&["nonsense".into()]).is_err());
    }
}
