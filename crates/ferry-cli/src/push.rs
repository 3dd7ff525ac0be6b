//! `ferry push`: OCI layout (or a Zarf package's `images/`) → registry, under Zarf's names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyOptions, CopyStats, PlatformChoice, Selection};
use ferry_oci::{Descriptor, Reference};
use ferry_registry::Repository;
use ferry_store::{OciLayout, ReadStore, WriteTarget};
use ferry_zarf::PackageImages;
use serde::Serialize;

use crate::cli::PushArgs;
use crate::progress::Mode;
use crate::registry_opts;
use crate::run_copy::{copy_with_progress, options, referrers};

/// One image to push: where it goes and under which tags.
struct PushItem {
    /// The name it has in the layout (normalized).
    source: String,
    desc: Descriptor,
    registry: String,
    repository: String,
    /// Tags to write after the content is in place; empty for digest references.
    tags: Vec<String>,
    /// Every name it ends up under, for the summary.
    names: Vec<String>,
}

#[derive(Serialize)]
struct PushedImage {
    source: String,
    names: Vec<String>,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    bytes: u64,
    blobs: Option<CopyStats>,
    error: Option<String>,
}

pub async fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    // A Zarf package (a directory with zarf.yaml, a .tar or .tar.zst) is verified first and read in place
    // where it can be; anything else is a layout or an archive of one, as below.
    let package = crate::package::push_source(&args.source, args.skip_verify).await?;
    // An archive (`oci-archive:FILE`, or a `.tar`/`.tar.gz`/`.tar.zst` holding a layout) is read in place
    // through its tar index; every blob is verified as it is sent.
    let layout = match (package, archive_path(&args.source)) {
        (Some(images), _) => images,
        (None, Some(file)) => tokio::task::spawn_blocking(move || {
            PackageImages::from_oci_archive(&file, &Default::default())
        })
        .await
        .context("archive task failed")??,
        (None, None) => PackageImages::from_layout(OciLayout::open(&layout_dir(&args.source)?)?),
    };
    let plan = match &args.registry {
        Some(target) => zarf_plan(&layout, target, &args.images, args.no_checksum)?,
        None if args.images.len() == 2 => {
            vec![explicit_plan(&layout, &args.images[0], &args.images[1])?]
        }
        None => bail!(
            "push needs --registry HOST[:PORT][/NAMESPACE] (Zarf naming), or REF-IN-LAYOUT DEST-REF (one image)"
        ),
    };
    if plan.is_empty() {
        bail!("{} has no named images to push", layout.root().display());
    }
    let client = registry_opts::client(&args.registry_opts, Some(&args.upload))?;
    let mode = Mode::detect(quiet);
    let source: Arc<dyn ReadStore> = Arc::new(layout.clone());
    let opts = options(
        PlatformChoice::All,
        args.oci_concurrency,
        args.retries,
        referrers(&args.referrers),
    );
    let mut results = Vec::new();
    let mut failures = 0;
    for item in plan {
        let repo = Repository::new(client.clone(), &item.registry, &item.repository);
        let label = item
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| item.source.clone());
        let result = push_one(mode, &source, Arc::new(repo), &item, &label, &opts)
            .await
            .with_context(|| format!("pushing {} to {label}", item.source));
        let (blobs, error) = match result {
            Ok(stats) => (Some(stats), None),
            Err(e) => {
                failures += 1;
                if !args.keep_going {
                    return Err(e);
                }
                eprintln!("error: {e:#}");
                (None, Some(format!("{e:#}")))
            }
        };
        results.push(PushedImage {
            source: item.source.clone(),
            names: item.names.clone(),
            digest: item.desc.digest.to_string(),
            media_type: item.desc.media_type.clone(),
            bytes: blobs.as_ref().map_or(0, CopyStats::total_bytes),
            blobs,
            error,
        });
    }
    print_summary(&results, args.json, quiet)?;
    if failures > 0 {
        bail!("{failures} of {} images failed to push", results.len());
    }
    Ok(())
}

async fn push_one(
    mode: Mode,
    source: &Arc<dyn ReadStore>,
    dest: Arc<dyn WriteTarget>,
    item: &PushItem,
    label: &str,
    opts: &CopyOptions,
) -> anyhow::Result<CopyStats> {
    let selection = Selection::of(item.desc.clone(), None);
    let copied =
        copy_with_progress(label, mode, source, &selection, &dest, &item.tags, opts).await?;
    Ok(copied.stats)
}

/// The archive file `source` names, if it is one: `oci-archive:FILE`, or a regular file.
fn archive_path(source: &Path) -> Option<PathBuf> {
    let text = source.to_str()?;
    if let Some(file) = text.strip_prefix("oci-archive:") {
        return Some(PathBuf::from(file));
    }
    source.is_file().then(|| source.to_path_buf())
}

/// A layout directory, or a Zarf package directory holding one in `images/`.
pub fn layout_dir(source: &Path) -> anyhow::Result<PathBuf> {
    if source.join("oci-layout").is_file() {
        return Ok(source.to_path_buf());
    }
    if source.join("images").join("oci-layout").is_file() {
        return Ok(source.join("images"));
    }
    bail!(
        "{} is neither an OCI layout (no oci-layout file) nor a Zarf package directory (no images/oci-layout)",
        source.display()
    )
}

/// Every named image in the layout (or those in `only`), under Zarf's names for `target`. Names come from
/// `ref.name`, or `base.name` in Crane-era layouts; both spellings of Docker Hub names match.
fn zarf_plan(
    layout: &PackageImages,
    target: &str,
    only: &[String],
    no_checksum: bool,
) -> anyhow::Result<Vec<PushItem>> {
    let target = target.trim_end_matches('/');
    if target.is_empty() || target.contains("://") {
        bail!("invalid --registry {target:?}: expected HOST[:PORT][/NAMESPACE]");
    }
    let wanted: Vec<Reference> = only.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let mut seen: Vec<Reference> = Vec::new();
    let mut plan = Vec::new();
    for entry in layout.entries()? {
        let Some(name) = entry.image_name() else {
            continue; // an index's children: pushed with their index
        };
        let reference: Reference = name
            .parse()
            .with_context(|| format!("image name {name:?} in {}", layout.root().display()))?;
        if seen.contains(&reference) {
            continue;
        }
        seen.push(reference.clone());
        if !wanted.is_empty() && !wanted.contains(&reference) {
            continue;
        }
        let names = ferry_zarf::push_names(&reference, target, no_checksum);
        let mut parsed: Vec<Reference> =
            names.iter().map(|n| n.parse()).collect::<Result<_, _>>()?;
        let first = parsed.remove(0);
        if parsed
            .iter()
            .any(|p| p.registry != first.registry || p.repository != first.repository)
        {
            bail!("internal error: Zarf names for {reference} point at different repositories");
        }
        let tags = std::iter::once(&first)
            .chain(parsed.iter())
            .filter(|r| r.digest.is_none())
            .filter_map(|r| r.tag.clone())
            .collect();
        plan.push(PushItem {
            source: reference.to_string(),
            desc: strip_names(&entry),
            registry: first.registry.clone(),
            repository: first.repository.clone(),
            tags,
            names,
        });
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !seen.contains(w))
        .map(|w| w.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "not in {}: {}; it has: {}",
            layout.root().display(),
            missing.join(", "),
            seen.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(plan)
}

fn explicit_plan(layout: &PackageImages, name: &str, dest: &str) -> anyhow::Result<PushItem> {
    let wanted: Reference = name.parse()?;
    let entry = layout
        .entries()?
        .into_iter()
        .find(|e| {
            e.image_name()
                .and_then(|n| n.parse::<Reference>().ok())
                .is_some_and(|r| r == wanted)
        })
        .with_context(|| format!("{wanted} is not in {}", layout.root().display()))?;
    let dest_ref: Reference = dest.parse()?;
    if let Some(d) = &dest_ref.digest
        && *d != entry.digest
    {
        bail!("{dest} names digest {d}, but {wanted} is {}", entry.digest);
    }
    Ok(PushItem {
        source: wanted.to_string(),
        desc: strip_names(&entry),
        registry: dest_ref.registry.clone(),
        repository: dest_ref.repository.clone(),
        tags: match &dest_ref.digest {
            Some(_) => Vec::new(),
            None => dest_ref.tag.iter().cloned().collect(),
        },
        names: vec![dest_ref.to_string()],
    })
}

/// The manifest's own descriptor: the layout's naming annotations are not part of the image.
fn strip_names(entry: &Descriptor) -> Descriptor {
    Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size)
}

fn print_summary(results: &[PushedImage], json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(&results)?;
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    println!(
        "{:<70} {:<19} {:>12} {:>7} {:>7} {:>8} {:>6}",
        "NAME", "DIGEST", "BYTES", "PUSHED", "MOUNTED", "EXISTING", "STATUS"
    );
    for r in results {
        for name in &r.names {
            let b = r.blobs.clone().unwrap_or_default();
            println!(
                "{:<70} {:<19} {:>12} {:>7} {:>7} {:>8} {:>6}",
                name,
                &r.digest[..r.digest.len().min(19)],
                r.bytes,
                b.fetched,
                b.mounted,
                b.existing,
                if r.error.is_some() { "FAILED" } else { "ok" }
            );
        }
    }
    Ok(())
}
