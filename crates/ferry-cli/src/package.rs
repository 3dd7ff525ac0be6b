//! `ferry package inspect|verify|publish|pull`, and the package side of `ferry push`: Zarf packages as
//! directories, `.tar`/`.tar.zst` files and `oci://` references.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{CopyStats, PlatformChoice, Referrers};
use ferry_oci::{Descriptor, Reference};
use ferry_registry::Repository;
use ferry_store::{OciLayout, ReadStore, WriteTarget};
use ferry_zarf::inspect::Summary;
use ferry_zarf::local::{Extract, LocalPackage, OpenOptions};
use ferry_zarf::tarball::TarKind;
use ferry_zarf::{Integrity, PackageImages, RemotePackage};
use serde::Serialize;

use crate::cli::{
    PackageCommand, PackageInspectArgs, PackagePublishArgs, PackagePullArgs, PackageVerifyArgs,
    RegistryArgs,
};
use crate::output::{human, print_json, short_digest};
use crate::progress::{ImageProgress, Mode};
use crate::registry_opts;
use crate::run_copy::{copy_with_progress, options};

pub async fn run(cmd: PackageCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::Inspect(a) => inspect(a).await,
        PackageCommand::Verify(a) => verify(a, quiet).await,
        PackageCommand::Publish(a) => publish(a, quiet).await,
        PackageCommand::Pull(a) => pull(a, quiet).await,
        PackageCommand::Sign(a) => crate::package_trust::sign(a).await,
    }
}

/// The images of the package `source` names, for `ferry push`, or `None` when `source` is not a Zarf
/// package (a layout directory, an OCI layout archive, `oci-archive:…`). A package is verified first unless
/// `skip_verify`; a directory is read in place, a `.tar` by byte ranges, a `.tar.zst` has its `images/`
/// unpacked beside it during the one pass that verifies it.
pub async fn push_source(
    source: &Path,
    skip_verify: bool,
) -> anyhow::Result<Option<PackageImages>> {
    let is_package_dir = source.is_dir() && source.join(ferry_zarf::ZARF_YAML).is_file();
    if !(is_package_dir || source.is_file()) {
        return Ok(None);
    }
    let warn = || {
        tracing::warn!(
            "not verifying {} (--skip-verify): its images are pushed without checking checksums.txt",
            source.display()
        )
    };
    if is_package_dir && skip_verify {
        warn();
        let layout = OciLayout::open(&source.join("images"))?;
        return Ok(Some(PackageImages::from_layout(layout)));
    }
    let extract = if is_package_dir {
        Extract::Nothing
    } else {
        Extract::Images
    };
    let pkg = match read_local(source, extract, !skip_verify, true).await {
        Ok(p) => p,
        Err(ferry_zarf::PackageError::NotAPackage { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(def) = pkg.definition()? else {
        return Ok(None);
    };
    if skip_verify {
        warn();
    } else {
        check(&pkg.integrity(&def, false)?, &pkg.label(), "push")?;
    }
    let images = tokio::task::spawn_blocking(move || PackageImages::from_package(&pkg))
        .await
        .context("package task failed")??;
    Ok(Some(images))
}

/// Refuse a package that failed verification, saying how to go on anyway.
fn check(integrity: &Integrity, label: &str, action: &str) -> anyhow::Result<()> {
    if integrity.ok {
        return Ok(());
    }
    bail!(
        "{label} failed verification, nothing was sent: {}; fix the package, or {action} it anyway with --skip-verify",
        integrity.summary()
    )
}

pub(crate) async fn open_local(
    path: &Path,
    extract: Extract,
    hash: bool,
) -> anyhow::Result<LocalPackage> {
    // Its errors name the package and the file in it already.
    Ok(read_local(path, extract, hash, false).await?)
}

async fn read_local(
    path: &Path,
    extract: Extract,
    hash: bool,
    stop_if_layout: bool,
) -> ferry_zarf::Result<LocalPackage> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        LocalPackage::open(
            &p,
            &OpenOptions {
                extract,
                hash,
                temp_dir: None,
                stop_if_layout,
            },
        )
    })
    .await
    .expect("package task panicked")
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
        let def = remote.definition().await?;
        let mut integrity = remote.integrity(&def).await?;
        integrity.partial = partial;
        let bytes = remote.layers.values().map(|d| d.size).sum();
        let mut summary = Summary::new(
            format!("oci://{}", remote.reference),
            "oci",
            &def,
            remote.layers.len(),
            bytes,
            integrity,
        );
        summary.digest = Some(remote.manifest.digest.to_string());
        if let Some(index) = remote
            .fetch_small(ferry_zarf::IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)
            .await?
        {
            let entries = ferry_zarf::images::parse_index(&remote.label(), &index)?;
            let remote = &remote;
            summary.images = ferry_zarf::inspect::images(&entries, |d: Descriptor| async move {
                remote
                    .fetch_small(
                        &format!("images/blobs/sha256/{}", d.digest.hex()),
                        ferry_oci::MAX_MANIFEST_BYTES,
                    )
                    .await
                    .ok()
                    .flatten()
            })
            .await;
        }
        return Ok(summary);
    }
    let path = PathBuf::from(package);
    let pkg = Arc::new(open_local(&path, Extract::Nothing, true).await?);
    let def = pkg
        .definition()?
        .with_context(|| format!("{} has no zarf.yaml: not a Zarf package", path.display()))?;
    let integrity = pkg.integrity(&def, partial)?;
    let bytes = pkg.files.values().map(|f| f.size).sum();
    let mut summary = Summary::new(
        pkg.label(),
        pkg.format.name(),
        &def,
        pkg.files.len(),
        bytes,
        integrity,
    );
    if let Some(index) = pkg.read(ferry_zarf::IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)? {
        let entries = ferry_zarf::images::parse_index(&pkg.label(), &index)?;
        let pkg = &pkg;
        summary.images = ferry_zarf::inspect::images(&entries, |d: Descriptor| async move {
            pkg.read(
                &format!("images/blobs/sha256/{}", d.digest.hex()),
                ferry_oci::MAX_MANIFEST_BYTES,
            )
            .ok()
            .flatten()
        })
        .await;
    }
    Ok(summary)
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Published {
    reference: String,
    /// The package manifest for this architecture.
    digest: String,
    /// The index the tag points at.
    index_digest: String,
    architecture: String,
    layers: usize,
    bytes: u64,
    blobs: CopyStats,
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
    let plan = ferry_zarf::publish::plan(&pkg, &def)?;
    let client = registry_opts::client(&args.registry, Some(&args.upload))?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let label = format!("oci://{reference}");
    let selection =
        ferry_copy::Selection::of(plan.manifest.clone(), Some(plan.manifest_bytes.clone()));
    let source: Arc<dyn ReadStore> = Arc::new(plan.store.clone());
    let dest: Arc<dyn WriteTarget> = Arc::new(repo.clone());
    let opts = options(
        PlatformChoice::All,
        args.oci_concurrency,
        args.retries,
        Referrers::None,
    );
    let mode = Mode::detect(quiet);
    let stats = copy_with_progress(&label, mode, &source, &selection, &dest, &[], &opts)
        .await
        .with_context(|| format!("publishing {} to {label}", pkg.label()))?
        .stats;
    // The tag last, so it only ever names a complete package.
    let tag_name = reference.tag.clone().unwrap_or(tag);
    let index =
        ferry_zarf::publish::tag_index(&repo, &tag_name, &plan.manifest, &plan.architecture)
            .await
            .with_context(|| format!("tagging {label}"))?;
    let out = Published {
        reference: reference.to_string(),
        digest: plan.manifest.digest.to_string(),
        index_digest: index.digest.to_string(),
        architecture: plan.architecture.clone(),
        layers: plan.layers.len(),
        bytes: plan.layers.iter().map(|l| l.size).sum(),
        blobs: stats,
    };
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
    // An existing directory receives the package as Zarf names it (`zarf-package-….tar.zst`).
    let into_dir = args.output.is_dir();
    let tarball = TarKind::for_path(&args.output);
    let out = &args.output;
    let cache = crate::pull::open_cache(&args.transfer)?;
    let remote = resolve_remote(reference, args.architecture.as_deref(), &args.registry).await?;
    let label = format!("oci://{}", remote.reference);

    // Staged beside the output (the cache links into it on the same filesystem), moved into place only
    // once complete and verified.
    let staged = ferry_store::file::StagedDir::beside(out)?;
    let ingest_dir = tempfile::Builder::new()
        .prefix(".ferry-ingest-")
        .tempdir_in(staged.path().parent().unwrap_or(Path::new(".")))
        .context("creating a temp directory beside the output")?;
    let (root, ingest) = (staged.path().to_path_buf(), ingest_dir.path().to_path_buf());

    let components = (!args.components.is_empty()).then_some(args.components.as_slice());
    let progress = ImageProgress::new(Mode::detect(quiet), &label);
    let result = ferry_zarf::pull::pull(
        &remote,
        &root,
        &ingest,
        components,
        args.transfer.oci_concurrency as usize,
        cache,
        progress.sink(),
    )
    .await;
    progress.finish(result.is_ok());
    let pulled = result.with_context(|| format!("pulling {label}"))?;
    if !pulled.integrity.ok {
        bail!(
            "{label} failed verification after the pull, nothing was written to {}: {}",
            out.display(),
            pulled.integrity.summary()
        );
    }
    let named;
    let (tarball, out) = if into_dir {
        let name = pulled.definition.file_name().with_context(|| {
            format!("{label}: zarf.yaml has no build.architecture to name the package file with; give -o FILE.tar.zst")
        })?;
        named = out.join(&name);
        (TarKind::for_path(&named), &named)
    } else {
        (tarball, out)
    };
    if tarball.is_some() && out.exists() {
        bail!("{} exists; nothing was written", out.display());
    }
    match tarball {
        Some(kind) => {
            let (root, file) = (root.clone(), out.clone());
            tokio::task::spawn_blocking(move || ferry_zarf::tarball::write(&root, &file, kind))
                .await
                .context("archive task failed")?
                .with_context(|| format!("writing {}", out.display()))?;
        }
        None => staged
            .commit()
            .with_context(|| format!("moving the package into {}", out.display()))?,
    }
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
