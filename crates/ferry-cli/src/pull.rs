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
    let references = collect_references(&args.references, &args.files)?;
    if references.is_empty() {
        bail!("nothing to pull: give image references or -f FILE");
    }
    let overrides = parse_overrides(&args.registry_overrides)?;
    let choice = platform_choice(&args)?;
    let client = registry_opts::client(&args.registry, None)?;
    let cache = open_cache(&args.transfer)?;

    // Resolve everything first: a typo in the tenth reference fails before anything is written.
    let resolved = resolve_all(&client, &references, &overrides, &choice).await?;

    let created = !args.output.exists();
    let layout = OciLayout::open_or_create(&args.output)
        .with_context(|| format!("opening the output layout {}", args.output.display()))?;
    let result = copy_all(&args, quiet, cache, &layout, resolved).await;
    layout.tidy();
    if result.is_err() && created {
        remove_if_empty(&layout);
    }
    let pulled = result?;
    print_summary(&pulled, args.json, quiet)
}

struct Resolved {
    reference: Reference,
    source: Repository,
    selection: Selection,
}

async fn resolve_all(
    client: &Arc<RegistryClient>,
    references: &[Reference],
    overrides: &[(String, String)],
    choice: &PlatformChoice,
) -> anyhow::Result<Vec<Resolved>> {
    let slots = Arc::new(tokio::sync::Semaphore::new(RESOLVE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, reference) in references.iter().enumerate() {
        let source_ref = apply_override(reference, overrides)?;
        let (client, slots, choice, reference) = (
            client.clone(),
            slots.clone(),
            choice.clone(),
            reference.clone(),
        );
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
            .with_context(|| describe_source(&reference, &source_ref));
            (
                i,
                result.map(|selection| Resolved {
                    reference,
                    source: repo,
                    selection,
                }),
            )
        });
    }
    let mut out: Vec<Option<Resolved>> = (0..references.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, r) = joined.expect("resolve task panicked");
        out[i] = Some(r?);
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every reference resolved"))
        .collect())
}

fn describe_source(reference: &Reference, source: &Reference) -> String {
    if reference == source {
        format!("pulling {reference}")
    } else {
        format!("pulling {reference} (from {source})")
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
        let label = r.reference.to_string();
        let source: Arc<dyn ReadStore> = Arc::new(r.source.clone());
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
            .with_context(|| describe_source(&r.reference, &source_reference(&r)))?;

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
                    let name = Reference {
                        tag: Some(tag.clone()),
                        digest: None,
                        ..r.reference.clone()
                    }
                    .to_string();
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
        let mut summary = summary(&r.reference, &named, stats);
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

fn source_reference(r: &Resolved) -> Reference {
    r.reference
        .with_location(r.source.registry(), r.source.repository())
}

fn summary(reference: &Reference, desc: &Descriptor, stats: CopyStats) -> PulledImage {
    PulledImage {
        reference: reference.to_string(),
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
        println!("{}", serde_json::to_string_pretty(pulled)?);
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
) -> anyhow::Result<Vec<Reference>> {
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
    let mut out: Vec<Reference> = Vec::new();
    for r in raw {
        let parsed: Reference = r.parse()?;
        if !out.contains(&parsed) {
            out.push(parsed);
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
