//! `ferry push`: OCI layout (or a Zarf package's `images/`) → registry, under Zarf's names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyOptions, CopyStats, PlatformChoice, Selection};
use ferry_registry::Repository;
use ferry_store::{OciLayout, ReadStore, WriteTarget};
use ferry_sync::CheckImage;
use ferry_zarf::PackageImages;
use ferry_zarf::push_plan::PushItem;
use serde::Serialize;

use crate::cli::PushArgs;
use crate::progress::Mode;
use crate::registry_opts;
use crate::run_copy::{copy_with_progress, options, referrers, verifier, verify};

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
    let package = PackageImages::for_push(&args.source, args.skip_verify)
        .await
        .map_err(|e| crate::package::advice(e, "push"))?;
    if let Some(key) = &args.key {
        let label = args.source.display().to_string();
        if package.is_none() {
            bail!("{label} is not a Zarf package: --key checks a package's signature");
        }
        let signed = crate::package_trust::check(&label, None, &args.registry_opts, key).await?;
        tracing::info!("{label}: {} signed by {}", signed.file, signed.key);
    }
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
    let (entries, root) = (layout.entries()?, layout.root().display().to_string());
    let plan = match &args.registry {
        Some(target) => ferry_zarf::push_plan::zarf_plan(
            &entries,
            &root,
            target,
            &args.images,
            args.no_checksum,
        )?,
        None if args.images.len() == 2 => vec![ferry_zarf::push_plan::explicit_plan(
            &entries,
            &root,
            &args.images[0],
            &args.images[1],
        )?],
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
    let verifier = verifier(&args.trust)?;
    let opts = options(
        PlatformChoice::All,
        args.oci_concurrency,
        args.retries,
        referrers(&args.referrers),
    );
    let repos: Vec<Arc<dyn WriteTarget>> = plan
        .iter()
        .map(|item| {
            Arc::new(Repository::new(
                client.clone(),
                &item.registry,
                &item.repository,
            )) as _
        })
        .collect();
    // Every blob of every image is in the source (a delta holds only some) or already at the registry,
    // before anything is written.
    let checks: Vec<CheckImage> = plan
        .iter()
        .zip(&repos)
        .map(|(item, repo)| CheckImage {
            label: item.names.first().unwrap_or(&item.source).clone(),
            source: source.clone(),
            root: item.desc.clone(),
            dest: repo.clone(),
        })
        .collect();
    let (found, mut lacking) =
        ferry_sync::delta::check_each(&checks, args.oci_concurrency as usize).await;
    if !args.keep_going
        && let Some(e) = lacking.iter_mut().find_map(Option::take)
    {
        return Err(anyhow::Error::new(e).context(format!("pushing {root}")));
    }
    if found.at_destination > 0 {
        tracing::info!(
            "{root}: {} blobs ({} bytes) it lacks are at the registry already",
            found.at_destination,
            found.at_destination_bytes
        );
    }
    let mut results = Vec::new();
    let mut failures = 0;
    for ((item, repo), lacks) in plan.into_iter().zip(repos).zip(lacking) {
        let label = item
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| item.source.clone());
        let result = async {
            if let Some(e) = lacks {
                return Err(e.into());
            }
            if let Some(verifier) = verifier.as_deref() {
                let selection = Selection::of(item.desc.clone(), None);
                verify(verifier, &layout, &item.source, &item.source, &selection).await?;
            }
            push_one(mode, &source, repo, &item, &label, &opts).await
        }
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
    let copied = copy_with_progress(
        label, mode, source, &selection, &dest, &item.tags, opts, None,
    )
    .await?;
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
