//! `ferry package inspect|verify|publish|pull`, and the package side of `ferry push`: Zarf packages as
//! directories, `.tar`/`.tar.zst` files and `oci://` references.

use std::path::Path;

use anyhow::{Context, bail};
use ferry_copy::{CopyOptions, CopyStats, PlatformChoice, Referrers};
use ferry_oci::Reference;
use ferry_registry::Repository;

use ferry_zarf::inspect::Summary;
use ferry_zarf::local::{Extract, LocalPackage, OpenOptions};
use ferry_zarf::{Integrity, RemotePackage};
use serde::Serialize;

use crate::cli::{
    PackageCommand, PackageInspectArgs, PackagePublishArgs, PackagePullArgs, PackageVerifyArgs,
    RegistryArgs,
};
use crate::output::{human, print_json, short_digest};
use crate::progress::{ImageProgress, Mode};
use crate::registry_opts;
use crate::run_copy::options;

pub async fn run(cmd: PackageCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::Inspect(a) => inspect(a).await,
        PackageCommand::Verify(a) => verify(a, quiet).await,
        PackageCommand::Publish(a) => publish(a, quiet).await,
        PackageCommand::Pull(a) => pull(a, quiet).await,
        PackageCommand::Sign(a) => crate::package_trust::sign(a).await,
    }
}

/// Refuse a package that failed verification, saying how to go on anyway.
fn check(integrity: &Integrity, label: &str, action: &str) -> anyhow::Result<()> {
    if integrity.ok {
        return Ok(());
    }
    Err(advice(
        ferry_zarf::PackageError::Verification {
            package: label.to_string(),
            summary: integrity.summary(),
        },
        action,
    ))
}

/// A failed verification, with what to do about it (`action`: the command's verb).
pub(crate) fn advice(e: ferry_zarf::PackageError, action: &str) -> anyhow::Error {
    match e {
        ferry_zarf::PackageError::Verification { package, summary } => anyhow::anyhow!(
            "{package} failed verification, nothing was sent: {summary}; fix the package, or {action} it anyway with --skip-verify"
        ),
        e => e.into(),
    }
}

/// A package on disk, opened on a blocking thread (its errors name the package and the file in it).
pub(crate) async fn open_local(
    path: &Path,
    extract: Extract,
    hash: bool,
) -> anyhow::Result<LocalPackage> {
    let p = path.to_path_buf();
    let opts = OpenOptions {
        extract,
        hash,
        temp_dir: None,
        stop_if_layout: false,
    };
    Ok(
        tokio::task::spawn_blocking(move || LocalPackage::open(&p, &opts))
            .await
            .context("package task failed")??,
    )
}

/// `oci://…` is a package in a registry; anything else a path.
pub(crate) fn remote_reference(package: &str) -> anyhow::Result<Option<Reference>> {
    match package.strip_prefix("oci://") {
        Some(rest) => {
            Ok(Some(rest.parse().with_context(|| {
                format!("invalid package reference {package:?}")
            })?))
        }
        None => Ok(None),
    }
}

pub(crate) async fn resolve_remote(
    reference: Reference,
    arch: Option<&str>,
    registry: &RegistryArgs,
) -> anyhow::Result<RemotePackage> {
    let client = registry_opts::client(registry, None)?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let label = format!("oci://{reference}");
    RemotePackage::resolve(repo, reference, arch)
        .await
        .with_context(|| format!("resolving the package {label}"))
}

/// The summary of a package anywhere; `partial` allows absent files.
async fn summarize(
    package: &str,
    arch: Option<&str>,
    partial: bool,
    registry: &RegistryArgs,
) -> anyhow::Result<Summary> {
    if let Some(reference) = remote_reference(package)? {
        let remote = resolve_remote(reference, arch, registry).await?;
        return Ok(Summary::of_remote(&remote, partial).await?);
    }
    let pkg = open_local(Path::new(package), Extract::Nothing, true).await?;
    Ok(Summary::of_local(&pkg, partial).await?)
}

async fn inspect(args: PackageInspectArgs) -> anyhow::Result<()> {
    let s = summarize(
        &args.package,
        args.architecture.as_deref(),
        false,
        &args.registry,
    )
    .await?;
    if args.json {
        return print_json(&s);
    }
    println!("Package:      {}", s.package);
    println!("Format:       {}", s.format);
    println!("Name:         {}", s.name);
    println!("Version:      {}", or_dash(&s.version));
    println!("Architecture: {}", or_dash(&s.architecture));
    if !s.flavor.is_empty() {
        println!("Flavor:       {}", s.flavor);
    }
    if !s.description.is_empty() {
        println!("Description:  {}", s.description);
    }
    if let Some(d) = &s.digest {
        println!("Digest:       {d}");
    }
    println!("Files:        {} ({})", s.files, human(s.bytes));
    println!("Integrity:    {}", integrity_line(&s.integrity));
    for p in &s.integrity.problems {
        println!("  - {p}");
    }
    println!("\nComponents:");
    for c in &s.components {
        println!(
            "  {}{}  ({} image{})",
            c.name,
            if c.required { " (required)" } else { "" },
            c.images.len(),
            if c.images.len() == 1 { "" } else { "s" }
        );
        for i in &c.images {
            println!("    {i}");
        }
    }
    if !s.images.is_empty() {
        println!("\n{:<70} {:<19} {:>10}", "IMAGE", "DIGEST", "SIZE");
        for i in &s.images {
            println!(
                "{:<70} {:<19} {:>10}",
                i.name,
                short_digest(&i.digest),
                human(i.size)
            );
        }
    }
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn integrity_line(i: &Integrity) -> String {
    if i.ok {
        format!(
            "ok ({} file{} match checksums.txt, aggregate checksum matches{})",
            i.checked,
            if i.checked == 1 { "" } else { "s" },
            if i.partial { ", partial" } else { "" }
        )
    } else {
        format!(
            "FAILED ({} problem{})",
            i.problems.len(),
            if i.problems.len() == 1 { "" } else { "s" }
        )
    }
}

async fn verify(args: PackageVerifyArgs, quiet: bool) -> anyhow::Result<()> {
    // The signature first, as Zarf checks it on load.
    if let Some(key) = &args.key {
        let signed = crate::package_trust::check(
            &args.package,
            args.architecture.as_deref(),
            &args.registry,
            key,
        )
        .await?;
        if !quiet && !args.json {
            println!("{}: {} signed by {}", args.package, signed.file, signed.key);
        }
    }
    let s = summarize(
        &args.package,
        args.architecture.as_deref(),
        args.partial,
        &args.registry,
    )
    .await?;
    if args.json {
        print_json(&s.integrity)?;
    } else if !quiet {
        for p in &s.integrity.problems {
            println!("{p}");
        }
        println!("{}: {}", s.package, integrity_line(&s.integrity));
    }
    if !s.integrity.ok {
        bail!(
            "{} failed verification: {}",
            s.package,
            s.integrity.summary()
        );
    }
    Ok(())
}

async fn publish(args: PackagePublishArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(key) = &args.key {
        let package = args.package.display().to_string();
        crate::package_trust::check(&package, None, &args.registry, key).await?;
    }
    let pkg = open_local(&args.package, Extract::Everything, true).await?;
    let label = pkg.label();
    let def = pkg
        .definition()?
        .with_context(|| format!("{label} has no zarf.yaml: not a Zarf package"))?;
    if args.skip_verify {
        tracing::warn!(
            "not verifying {label} (--skip-verify): it is published without checking checksums.txt"
        );
    } else {
        check(&pkg.integrity(&def, false)?, &label, "publish")?;
    }
    let tag = match &args.tag {
        Some(t) => t.clone(),
        None => def.tag().with_context(|| {
            format!(
                "{label}: zarf.yaml has no metadata.version to tag the package with; pass --tag"
            )
        })?,
    };
    let reference = ferry_zarf::publish::destination(&args.destination, &def.metadata.name, &tag)?;
    let client = registry_opts::client(&args.registry, Some(&args.upload))?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let label = format!("oci://{reference}");
    let progress = ImageProgress::new(Mode::detect(quiet), &label);
    let opts = CopyOptions {
        events: progress.sink(),
        ..options(
            PlatformChoice::All,
            args.oci_concurrency,
            args.retries,
            Referrers::None,
        )
    };
    let tag_name = reference.tag.clone().unwrap_or(tag);
    let result = ferry_zarf::publish::publish(&pkg, &def, &repo, &tag_name, &opts).await;
    progress.finish(result.is_ok());
    let out = result.with_context(|| format!("publishing {} to {label}", pkg.label()))?;
    if args.json {
        return print_json(&out);
    }
    if !quiet {
        println!(
            "published {} ({}, {} layers, {}; {} sent, {} already there) as {}",
            out.reference,
            out.architecture,
            out.layers,
            human(out.bytes),
            out.blobs.fetched,
            out.blobs.existing + out.blobs.mounted,
            short_digest(&out.digest)
        );
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PulledPackage {
    reference: String,
    digest: String,
    name: String,
    version: String,
    architecture: String,
    /// The components asked for; empty when the whole package was pulled.
    components: Vec<String>,
    output: String,
    files: usize,
    bytes: u64,
    /// Layers downloaded from the registry.
    fetched: u64,
    fetched_bytes: u64,
    /// Layers served from the blob cache (linked or copied) instead.
    from_cache: u64,
    from_cache_bytes: u64,
    blobs: CopyStats,
    integrity: Integrity,
}

async fn pull(args: PackagePullArgs, quiet: bool) -> anyhow::Result<()> {
    let reference = remote_reference(&args.reference)?
        .or_else(|| args.reference.parse().ok())
        .with_context(|| format!("invalid package reference {:?}", args.reference))?;
    // The signature is read from the registry before anything is written.
    if let Some(key) = &args.key {
        let package = format!("oci://{reference}");
        crate::package_trust::check(&package, args.architecture.as_deref(), &args.registry, key)
            .await?;
    }
    let cache = crate::pull::open_cache(&args.transfer)?;
    let remote = resolve_remote(reference, args.architecture.as_deref(), &args.registry).await?;
    let label = format!("oci://{}", remote.reference);
    let components = (!args.components.is_empty()).then_some(args.components.as_slice());
    let progress = ImageProgress::new(Mode::detect(quiet), &label);
    let result = ferry_zarf::pull::pull_to(
        &remote,
        &args.output,
        components,
        args.transfer.oci_concurrency as usize,
        cache,
        progress.sink(),
    )
    .await;
    progress.finish(result.is_ok());
    let (pulled, out) = result.with_context(|| format!("pulling {label}"))?;
    let s = &pulled.stats;
    let summary = PulledPackage {
        reference: remote.reference.to_string(),
        digest: remote.manifest.digest.to_string(),
        name: pulled.definition.metadata.name.clone(),
        version: pulled.definition.metadata.version.clone(),
        architecture: pulled.definition.architecture().to_string(),
        components: args.components.clone(),
        output: out.display().to_string(),
        files: pulled.files.len(),
        bytes: pulled.files.values().map(|d| d.size).sum(),
        fetched: s.fetched,
        fetched_bytes: s.fetched_bytes,
        from_cache: s.cached + s.linked,
        from_cache_bytes: s.cached_bytes + s.linked_bytes,
        blobs: s.clone(),
        integrity: pulled.integrity.clone(),
    };
    if args.json {
        return print_json(&summary);
    }
    if !quiet {
        println!(
            "pulled {} ({}) into {}: {} files, {}; {} fetched ({}), {} from the cache ({})",
            summary.reference,
            or_dash(&summary.architecture),
            summary.output,
            summary.files,
            human(summary.bytes),
            summary.fetched,
            human(summary.fetched_bytes),
            summary.from_cache,
            human(summary.from_cache_bytes)
        );
    }
    Ok(())
}
