//! `ferry copy`: registry, archive or Docker Engine → registry, through the cache, never through a local
//! layout.

use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyStats, PlatformChoice, select_root};
use ferry_oci::{PlatformSpec, Reference};
use ferry_registry::Repository;
use ferry_store::{CachedSource, ReadStore, ReadTarget, WriteTarget};
use serde::Serialize;

use crate::cli::CopyArgs;
use crate::progress::Mode;
use crate::pull::open_cache;
use crate::registry_opts::{build, credential};
use crate::run_copy::{copy_with_progress, options, referrers};

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

/// What to copy: a source target, the names to copy from it, and where each goes.
struct Plan {
    source: Arc<dyn ReadTarget>,
    /// A registry source is read through the cache; archives and the Engine are local already.
    cached: bool,
    /// (name in the source, destination, whether the source name is a digest pin)
    pairs: Vec<(String, Reference, bool)>,
    platform: PlatformChoice,
}

pub async fn run(args: CopyArgs, quiet: bool) -> anyhow::Result<()> {
    let destination: Reference = args.destination.parse()?;
    let plan = match ferry_archive::SourceSpec::parse(&args.source) {
        Some(spec) => plan_local(&args, spec, &destination).await?,
        None => plan_registry(&args, &destination).await?,
    };
    let dest_client = build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        credential(&args.dest_username, &args.dest_password),
        Some(&args.upload),
    )?;
    let cache = if plan.cached {
        open_cache(&args.transfer)?
    } else {
        None
    };
    let source = CachedSource::wrap(plan.source.clone(), cache.as_ref());
    let opts = options(
        plan.platform.clone(),
        args.transfer.oci_concurrency,
        args.retries,
        referrers(&args.referrers),
    );
    let mode = Mode::detect(quiet);
    let mut copied = Vec::new();
    for (from, to, by_digest) in &plan.pairs {
        let context = format!("copying {} to {to}", shown(&args.source, from));
        let (desc, bytes) = source.resolve(from).await.context(context.clone())?;
        let selection = select_root(source.as_ref(), desc, bytes, *by_digest, &plan.platform)
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
        let dest: Arc<dyn WriteTarget> = Arc::new(Repository::new(
            dest_client.clone(),
            &to.registry,
            &to.repository,
        ));
        let tags: Vec<String> = match &to.digest {
            Some(_) => Vec::new(),
            None => vec![to.tag.clone().unwrap_or_else(|| "latest".into())],
        };
        let label = to.to_string();
        let src: Arc<dyn ReadStore> = source.clone();
        let done = copy_with_progress(&label, mode, &src, &selection, &dest, &tags, &opts)
            .await
            .context(context)?;
        copied.push(CopiedImage {
            source: shown(&args.source, from),
            destination: label,
            digest: done.root.digest.to_string(),
            media_type: done.root.media_type.clone(),
            platform: done.root.platform.as_ref().map(|p| p.to_string()),
            bytes: done.stats.total_bytes(),
            blobs: done.stats,
        });
    }
    print_summary(&copied, args.json, quiet)
}

/// The source as the user named it, or with the tag `--all-tags` chose.
fn shown(source: &str, from: &str) -> String {
    if from.is_empty() || source.ends_with(from) || from.starts_with("sha256:") {
        source.to_string()
    } else {
        format!("{source}:{from}")
    }
}

/// Registry → registry: one reference, or every tag of a repository. A copy keeps a whole index unless a
/// platform is asked for.
async fn plan_registry(args: &CopyArgs, destination: &Reference) -> anyhow::Result<Plan> {
    let source: Reference = args.source.parse()?;
    let src_client = build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        credential(&args.src_username, &args.src_password),
        None,
    )?;
    let platform = match (&args.platform, &args.architecture) {
        (Some(p), _) => {
            PlatformChoice::Exactly(p.parse::<PlatformSpec>().map_err(anyhow::Error::msg)?)
        }
        (None, Some(a)) => PlatformChoice::Exactly(PlatformSpec::linux(a)),
        (None, None) => PlatformChoice::All,
    };
    let repo = Repository::new(src_client, &source.registry, &source.repository);
    let pairs = if args.all_tags {
        if source.digest.is_some() || destination.digest.is_some() {
            bail!("--all-tags copies a repository: give repositories without a digest");
        }
        let tags = repo
            .list_tags()
            .await
            .with_context(|| format!("listing the tags of {}", source.name()))?;
        tags.into_iter()
            .map(|t| (t.clone(), with_tag(destination, &t), false))
            .collect()
    } else {
        vec![(
            source.target(),
            destination.clone(),
            source.digest.is_some(),
        )]
    };
    Ok(Plan {
        source: Arc::new(repo),
        cached: true,
        pairs,
        platform,
    })
}

/// `docker-daemon:`, `docker-archive:` or `oci-archive:` → registry: one image (the one named, or the only
/// one), selected for this machine's platform unless `-a`/`--platform` says otherwise — exports hold only
/// the local platform's blobs.
async fn plan_local(
    args: &CopyArgs,
    spec: ferry_archive::SourceSpec,
    destination: &Reference,
) -> anyhow::Result<Plan> {
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
    Ok(Plan {
        pairs: vec![(
            image.desc.digest.to_string(),
            destination.clone(),
            // An archive's index is chosen from like a tagged one (it is not a digest pin).
            false,
        )],
        source: source.store,
        cached: false,
        platform: PlatformChoice::Auto(choice),
    })
}

fn print_summary(copied: &[CopiedImage], json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        return crate::output::print_json(&copied);
    }
    if quiet {
        return Ok(());
    }
    println!(
        "{:<60} {:<19} {:>12} {:>7} {:>6} {:>7} {:>8}",
        "DESTINATION", "DIGEST", "BYTES", "FETCHED", "CACHED", "MOUNTED", "EXISTING"
    );
    for c in copied {
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
