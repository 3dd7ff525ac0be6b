//! `ferry copy`: registry → registry, through the cache, never through a local layout.

use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyStats, PlatformChoice, select_root};
use ferry_oci::{PlatformSpec, Reference};
use ferry_registry::Repository;
use ferry_store::{ReadStore, WriteStore};
use serde::Serialize;

use crate::cli::CopyArgs;
use crate::image_copy::ImageCopy;
use crate::progress::Mode;
use crate::pull::open_cache;
use crate::push::copy_referrer;
use crate::referrers::discover;
use crate::registry_opts::{build, credential};

#[derive(Serialize)]
struct CopiedImage {
    source: String,
    destination: String,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    platform: Option<String>,
    bytes: u64,
    blobs: CopyStats,
}

pub async fn run(args: CopyArgs, quiet: bool) -> anyhow::Result<()> {
    let destination: Reference = args.destination.parse()?;
    if let Some(spec) = ferry_archive::SourceSpec::parse(&args.source) {
        return copy_local(&args, spec, destination, quiet).await;
    }
    let source: Reference = args.source.parse()?;
    let src_client = build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        credential(&args.src_username, &args.src_password),
        None,
    )?;
    let dest_client = build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        credential(&args.dest_username, &args.dest_password),
        Some(&args.upload),
    )?;
    let cache = open_cache(&args.transfer)?;
    // A copy keeps the whole index unless a platform is asked for.
    let choice = match (&args.platform, &args.architecture) {
        (Some(p), _) => {
            PlatformChoice::Exactly(p.parse::<PlatformSpec>().map_err(anyhow::Error::msg)?)
        }
        (None, Some(a)) => PlatformChoice::Exactly(PlatformSpec::linux(a)),
        (None, None) => PlatformChoice::All,
    };
    let src_repo = Repository::new(src_client, &source.registry, &source.repository);
    let dest_repo = Repository::new(dest_client, &destination.registry, &destination.repository);

    let pairs: Vec<(Reference, Reference)> = if args.all_tags {
        if source.digest.is_some() || destination.digest.is_some() {
            bail!("--all-tags copies a repository: give repositories without a digest");
        }
        let tags = src_repo
            .list_tags()
            .await
            .with_context(|| format!("listing the tags of {}", source.name()))?;
        tags.into_iter()
            .map(|t| (with_tag(&source, &t), with_tag(&destination, &t)))
            .collect()
    } else {
        vec![(source.clone(), destination.clone())]
    };

    let mode = Mode::detect(quiet);
    let src_store: Arc<dyn ReadStore> = Arc::new(src_repo.clone());
    let dest_store: Arc<dyn WriteStore> = Arc::new(dest_repo.clone());
    let mut copied = Vec::new();
    for (from, to) in pairs {
        let context = format!("copying {from} to {to}");
        let (desc, bytes) = src_repo
            .resolve(&from.target())
            .await
            .context(context.clone())?;
        let selection = select_root(&src_repo, desc, bytes, from.digest.is_some(), &choice)
            .await
            .context(context.clone())?;
        if let Some(d) = &to.digest
            && *d != selection.root.digest
        {
            bail!(
                "{context}: the destination names digest {d}, but the source is {}",
                selection.root.digest
            );
        }
        let label = to.to_string();
        let copier = ImageCopy {
            label: &label,
            mode,
            cache: cache.clone(),
            concurrency: args.transfer.oci_concurrency as usize,
            attempts: args.retries,
        };
        let mut stats = copier
            .run(
                src_store.clone(),
                dest_store.clone(),
                &selection.root,
                &selection.known,
            )
            .await
            .context(context.clone())?;
        if to.digest.is_none() {
            let tag = to.tag.clone().unwrap_or_else(|| "latest".into());
            let bytes = selection
                .known
                .get(&selection.root.digest)
                .cloned()
                .expect("the selected root's bytes are known");
            dest_repo
                .tag(&selection.root, bytes, &tag)
                .await
                .with_context(|| format!("{context}: tagging {tag}"))?;
        }
        for referrer in discover(&src_repo, &selection.root, &args.referrers)
            .await
            .with_context(|| format!("{context}: listing referrers"))?
        {
            stats.merge(
                &copy_referrer(&copier, &src_store, &dest_store, &dest_repo, &referrer).await?,
            );
        }
        copied.push(CopiedImage {
            source: from.to_string(),
            destination: to.to_string(),
            digest: selection.root.digest.to_string(),
            media_type: selection.root.media_type.clone(),
            platform: selection.root.platform.as_ref().map(|p| p.to_string()),
            bytes: stats.total_bytes(),
            blobs: stats,
        });
    }
    if args.json {
        crate::output::print_json(&copied)?;
    } else if !quiet {
        println!(
            "{:<60} {:<19} {:>12} {:>7} {:>6} {:>7} {:>8}",
            "DESTINATION", "DIGEST", "BYTES", "FETCHED", "CACHED", "MOUNTED", "EXISTING"
        );
        for c in &copied {
            println!(
                "{:<60} {:<19} {:>12} {:>7} {:>6} {:>7} {:>8}",
                c.destination,
                &c.digest[..c.digest.len().min(19)],
                c.bytes,
                c.blobs.fetched,
                c.blobs.cached,
                c.blobs.mounted,
                c.blobs.existing
            );
        }
    }
    Ok(())
}

/// `docker-daemon:`, `docker-archive:` or `oci-archive:` → registry: one image (the one named, or the only
/// one), selected for this machine's platform unless `-a`/`--platform` says otherwise — exports hold only
/// the local platform's blobs.
async fn copy_local(
    args: &CopyArgs,
    spec: ferry_archive::SourceSpec,
    destination: Reference,
    quiet: bool,
) -> anyhow::Result<()> {
    let context = format!("copying {} to {destination}", args.source);
    let choice = match (&args.platform, &args.architecture) {
        (Some(p), _) => p.parse::<PlatformSpec>().map_err(anyhow::Error::msg)?,
        (None, Some(a)) => PlatformSpec::linux(a),
        (None, None) => PlatformSpec::host(),
    };
    let opts = ferry_archive::SourceOptions {
        platform: Some(choice.clone()),
        ..Default::default()
    };
    let source = ferry_archive::open_source(&spec, &opts)
        .await
        .context(context.clone())?;
    let [image] = source.images.as_slice() else {
        bail!(
            "{context}: the source holds {} images; name one with {}:REF",
            source.images.len(),
            args.source
        );
    };
    let bytes = source
        .store
        .fetch_manifest(&image.desc)
        .await
        .context(context.clone())?;
    let selection = select_root(
        source.store.as_ref(),
        image.desc.clone(),
        bytes,
        false,
        &PlatformChoice::Auto(choice),
    )
    .await
    .context(context.clone())?;
    let dest_client = build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        credential(&args.dest_username, &args.dest_password),
        Some(&args.upload),
    )?;
    let dest_repo = Repository::new(dest_client, &destination.registry, &destination.repository);
    let dest_store: Arc<dyn WriteStore> = Arc::new(dest_repo.clone());
    let label = destination.to_string();
    let stats = ImageCopy {
        label: &label,
        mode: Mode::detect(quiet),
        cache: None,
        concurrency: args.transfer.oci_concurrency as usize,
        attempts: args.retries,
    }
    .run(
        source.store.clone(),
        dest_store,
        &selection.root,
        &selection.known,
    )
    .await
    .context(context.clone())?;
    if destination.digest.is_none() {
        let tag = destination.tag.clone().unwrap_or_else(|| "latest".into());
        let bytes = selection.known[&selection.root.digest].clone();
        dest_repo
            .tag(&selection.root, bytes, &tag)
            .await
            .with_context(|| format!("{context}: tagging {tag}"))?;
    }
    let copied = [CopiedImage {
        source: args.source.clone(),
        destination: label,
        digest: selection.root.digest.to_string(),
        media_type: selection.root.media_type.clone(),
        platform: selection.root.platform.as_ref().map(|p| p.to_string()),
        bytes: stats.total_bytes(),
        blobs: stats,
    }];
    if args.json {
        crate::output::print_json(&copied)?;
    } else if !quiet {
        println!(
            "{} {} ({} bytes)",
            copied[0].destination, copied[0].digest, copied[0].bytes
        );
    }
    Ok(())
}

fn with_tag(r: &Reference, tag: &str) -> Reference {
    Reference {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: Some(tag.to_string()),
        digest: None,
    }
}
