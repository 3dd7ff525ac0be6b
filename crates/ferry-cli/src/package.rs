//! `ferry package inspect|verify|publish|pull|sign`: Zarf packages as directories, `.tar`/`.tar.zst` files
//! and `oci://` references; the work is `ferry_zarf`'s.

use std::path::Path;

use anyhow::{Context, bail};
use ferry_copy::{PlatformChoice, Referrers};
use ferry_trust::zarf::{BUNDLE, LEGACY, PackageSigned};
use ferry_trust::{PrivateKey, PublicKey};
use ferry_zarf::PackageSource;
use ferry_zarf::inspect::Summary;
use ferry_zarf::publish::PublishRequest;
use ferry_zarf::pull::{PullRequest, pull_package};

use crate::cli::{PackageArgs, PackageCommand, PackageSignArgs};
use crate::output::{human, or_dash, print_json, report, short_digest};
use crate::progress::{ImageProgress, Mode};
use crate::registry_opts;
use crate::run_copy::options;

pub async fn run(cmd: PackageCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::Inspect(a) => {
            let (s, _) = summarize(&a, None, false).await?;
            if a.json {
                print_json(&s)
            } else {
                print_summary(&s)
            }
        }
        PackageCommand::Verify(a) => {
            let (s, signed) = summarize(&a.package, a.key.as_deref(), a.partial).await?;
            if a.package.json {
                print_json(&s.integrity)?;
            } else if !quiet {
                if let Some(signed) = signed {
                    println!("{}: {} signed by {}", s.package, signed.file, signed.key);
                }
                for p in &s.integrity.problems {
                    println!("{p}");
                }
                println!("{}: {}", s.package, s.integrity.status());
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
        PackageCommand::Publish(a) => {
            let client = registry_opts::client(&a.registry, Some(&a.upload))?;
            if let Some(key) = &a.key {
                let package = PackageSource::Local(a.package.clone());
                check_key(&package, None, &client, key).await?;
            }
            let progress = ImageProgress::new(Mode::detect(quiet), &a.destination);
            let opts = ferry_copy::CopyOptions {
                events: progress.sink(),
                ..options(
                    PlatformChoice::All,
                    a.oci_concurrency,
                    a.retries,
                    Referrers::None,
                )
            };
            let request = PublishRequest {
                tag: a.tag.clone(),
                skip_verify: a.skip_verify,
            };
            let result = ferry_zarf::publish::publish_package(
                &a.package,
                &a.destination,
                &request,
                &client,
                &opts,
            )
            .await;
            progress.finish(result.is_ok());
            let out = result.map_err(|e| advice(e, "publish")).with_context(|| {
                format!("publishing {} to {}", a.package.display(), a.destination)
            })?;
            report(a.json, quiet, &out, |out| {
                println!(
                    "published {} ({}, {} layers, {}; {} sent, {} already there) as {}",
                    out.reference,
                    out.architecture,
                    out.layers,
                    human(out.bytes),
                    out.blobs.fetched,
                    out.blobs.existing + out.blobs.mounted,
                    short_digest(&out.digest)
                )
            })
        }
        PackageCommand::Pull(a) => {
            let reference = PackageSource::parse_remote(&a.reference)?;
            let key = a.key.as_deref().map(read_key).transpose()?;
            let label = format!("oci://{reference}");
            let progress = ImageProgress::new(Mode::detect(quiet), &label);
            let request = PullRequest {
                components: &a.components,
                architecture: a.architecture.as_deref(),
                key: key.as_ref(),
                concurrency: a.transfer.oci_concurrency as usize,
                cache: crate::run_copy::open_cache(&a.transfer)?,
                events: progress.sink(),
            };
            let client = registry_opts::client(&a.registry, None)?;
            let result = pull_package(&client, reference, &a.output, request).await;
            progress.finish(result.is_ok());
            let r = result.with_context(|| format!("pulling {label}"))?;
            report(a.json, quiet, &r, |r| {
                println!(
                    "pulled {} ({}) into {}: {} files, {}; {} fetched ({}), {} from the cache ({})",
                    r.reference,
                    or_dash(&r.architecture),
                    r.output,
                    r.files,
                    human(r.bytes),
                    r.fetched,
                    human(r.fetched_bytes),
                    r.from_cache,
                    human(r.from_cache_bytes)
                )
            })
        }
        PackageCommand::Sign(a) => sign(a).await,
    }
}

/// The package's summary, its signature checked first (as Zarf checks it on load) when `key` is given.
async fn summarize(
    a: &PackageArgs,
    key: Option<&Path>,
    partial: bool,
) -> anyhow::Result<(Summary, Option<PackageSigned>)> {
    let package = PackageSource::parse(&a.package)?;
    let client = registry_opts::client(&a.registry, None)?;
    let arch = a.architecture.as_deref();
    let signed = match key {
        Some(key) => Some(check_key(&package, arch, &client, key).await?),
        None => None,
    };
    Ok((package.summary(&client, arch, partial).await?, signed))
}

/// `--key KEY.pub`: refuse `package` unless that key signed its `zarf.yaml`.
pub(crate) async fn check_key(
    package: &PackageSource,
    arch: Option<&str>,
    client: &std::sync::Arc<ferry_registry::RegistryClient>,
    key: &Path,
) -> anyhow::Result<PackageSigned> {
    Ok(package
        .check_signature(client, arch, &read_key(key)?)
        .await?)
}

/// `--key KEY.pub`, read.
pub(crate) fn read_key(key: &Path) -> anyhow::Result<PublicKey> {
    PublicKey::from_file(key).with_context(|| format!("reading --key {}", key.display()))
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

fn print_summary(s: &Summary) -> anyhow::Result<()> {
    let row = |k: &str, v: &str| println!("{:<14}{v}", format!("{k}:"));
    row("Package", &s.package);
    row("Format", &s.format);
    row("Name", &s.name);
    row("Version", or_dash(&s.version));
    row("Architecture", or_dash(&s.architecture));
    for (k, v) in [("Flavor", &s.flavor), ("Description", &s.description)] {
        if !v.is_empty() {
            row(k, v);
        }
    }
    if let Some(d) = &s.digest {
        row("Digest", d);
    }
    row("Files", &format!("{} ({})", s.files, human(s.bytes)));
    row("Integrity", &s.integrity.status());
    for p in &s.integrity.problems {
        println!("  - {p}");
    }
    println!("\nComponents:");
    for c in &s.components {
        let n = c.images.len();
        let required = if c.required { " (required)" } else { "" };
        println!(
            "  {}{required}  ({n} image{})",
            c.name,
            if n == 1 { "" } else { "s" }
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

/// `ferry package sign`.
async fn sign(args: PackageSignArgs) -> anyhow::Result<()> {
    let key = PrivateKey::from_file(&args.signing_key)
        .with_context(|| format!("reading --signing-key {}", args.signing_key.display()))?;
    let signed = tokio::task::spawn_blocking(move || {
        ferry_zarf::sign::sign_directory(&args.package, &key, args.overwrite)
    })
    .await??;
    println!(
        "{}: {BUNDLE} written, signed by {}",
        signed.package, signed.key
    );
    if signed.removed_legacy {
        println!("{}: the legacy {LEGACY} was removed", signed.package);
    }
    Ok(())
}
