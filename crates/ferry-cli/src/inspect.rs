//! `ferry inspect` and `ferry digest`: what a location names (registry, layout entry, archive), printed.

use std::io::Write;

use anyhow::Context;
use ferry_registry::Repository;
use ferry_target::inspect::{Inspection, Opened};
use ferry_target::{Location, OpenContext};
use serde::Serialize;

use crate::cli::{DigestArgs, InspectArgs, RegistryArgs};
use crate::output::{human, print_json, short_media_type};
use crate::registry_opts;

async fn open(
    reference: &str,
    registry: &RegistryArgs,
    platform: Option<&ferry_oci::PlatformSpec>,
) -> anyhow::Result<Opened> {
    let location = Location::parse(reference)?;
    let ctx = OpenContext {
        client: registry_opts::client(registry, None)?,
        archive: Default::default(),
    };
    let opened = ferry_target::inspect::open(&location, &ctx).await?;
    Ok(match platform {
        Some(p) => opened.for_platform(p).await?,
        None => opened,
    })
}

pub async fn run_inspect(args: InspectArgs) -> anyhow::Result<()> {
    let opened = open(&args.reference, &args.registry, args.platform.as_ref())
        .await
        .with_context(|| format!("inspecting {}", args.reference))?;
    if args.raw {
        return write_stdout(&opened.bytes);
    }
    if args.config {
        if opened.manifest.kind == ferry_oci::ManifestKind::Index {
            anyhow::bail!(
                "{} is an index, which has no config; choose a manifest with --platform ({})",
                opened.label,
                opened.platforms().join(", ")
            );
        }
        return write_stdout(&opened.config().await?);
    }
    let info = opened.describe().await?;
    if args.json {
        return print_json(&info);
    }
    print_inspection(&info);
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

fn print_inspection(i: &Inspection) {
    let row = |k: &str, v: &str| println!("{k:<14} {v}");
    row("Reference", &i.reference);
    if let Some(n) = &i.name {
        row("Name", n);
    }
    row("Media type", &i.media_type);
    row("Digest", &i.digest);
    row("Size", &i.size.to_string());
    if let Some(a) = &i.artifact_type {
        row("Artifact type", a);
    }
    if let Some(p) = &i.platform {
        row("Platform", p);
    }
    let total = format!("{} ({})", i.total_size, human(i.total_size));
    if i.complete {
        row("Total size", &total);
    } else {
        row(
            "Total size",
            &format!("{total}, of what is present: some manifests are missing"),
        );
    }
    if !i.manifests.is_empty() {
        println!("\nManifests:");
        println!(
            "  {:<16} {:<71} {:<16} {:>10}",
            "PLATFORM", "DIGEST", "TYPE", "TOTAL"
        );
        for c in &i.manifests {
            println!(
                "  {:<16} {:<71} {:<16} {:>10}",
                c.platform.as_deref().unwrap_or("-"),
                c.digest,
                short_media_type(&c.media_type),
                c.total_size.map_or("missing".into(), human)
            );
        }
    }
    if let Some(c) = &i.config {
        println!(
            "\nConfig:\n  {}  {:>10}  {}",
            c.digest,
            human(c.size),
            c.media_type
        );
    }
    if !i.layers.is_empty() {
        println!("\nLayers:");
        for l in &i.layers {
            println!("  {}  {:>10}  {}", l.digest, human(l.size), l.media_type);
        }
    }
    if let Some(s) = &i.subject {
        println!("\nSubject:\n  {}  {}", s.digest, s.media_type);
    }
    if !i.annotations.is_empty() {
        println!("\nAnnotations:");
        for (k, v) in &i.annotations {
            println!("  {k}: {v}");
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DigestOutput {
    reference: String,
    digest: String,
    media_type: String,
    size: u64,
}

pub async fn run_digest(args: DigestArgs) -> anyhow::Result<()> {
    let desc = match (Location::parse(&args.reference)?, &args.platform) {
        // The common case costs one HEAD request.
        (Location::Registry(reference), None) => {
            let client = registry_opts::client(&args.registry, None)?;
            let repo = Repository::new(client, &reference.registry, &reference.repository);
            repo.head_manifest(&reference.target())
                .await
                .with_context(|| format!("resolving {reference}"))?
        }
        _ => {
            open(&args.reference, &args.registry, args.platform.as_ref())
                .await
                .with_context(|| format!("resolving {}", args.reference))?
                .desc
        }
    };
    if args.json {
        return print_json(&DigestOutput {
            reference: args.reference,
            digest: desc.digest.to_string(),
            media_type: desc.media_type,
            size: desc.size,
        });
    }
    println!("{}", desc.digest);
    Ok(())
}
