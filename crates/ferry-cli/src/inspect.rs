//! `ferry inspect` and `ferry digest`: what a location names (registry, layout entry, archive), printed.

use std::io::Write;

use anyhow::Context;
use ferry_target::inspect::{Inspection, descriptor, open_for};
use ferry_target::{Location, OpenContext};
use serde_json::json;

use crate::cli::{DigestArgs, InspectArgs, RegistryArgs};
use crate::output::{human, print_json, short_media_type};
use crate::registry_opts;

fn context(registry: &RegistryArgs) -> anyhow::Result<OpenContext> {
    let client = registry_opts::client(registry, None)?;
    Ok(OpenContext {
        client,
        archive: Default::default(),
    })
}

pub async fn run_inspect(args: InspectArgs) -> anyhow::Result<()> {
    let location = Location::parse(&args.reference)?;
    let ctx = context(&args.registry)?;
    let inspecting = || format!("inspecting {}", args.reference);
    let opened = open_for(&location, &ctx, args.platform.as_ref())
        .await
        .with_context(inspecting)?;
    if args.raw {
        return write_stdout(&opened.bytes);
    }
    if args.config {
        if opened.manifest.kind == ferry_oci::ManifestKind::Index {
            let platforms = opened.platforms().join(", ");
            anyhow::bail!(
                "{} is an index, which has no config; choose a manifest with --platform ({platforms})",
                opened.label
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

pub async fn run_digest(args: DigestArgs) -> anyhow::Result<()> {
    let location = Location::parse(&args.reference)?;
    let desc = descriptor(&location, &context(&args.registry)?, args.platform.as_ref())
        .await
        .with_context(|| format!("resolving {}", args.reference))?;
    if args.json {
        let (reference, digest) = (&args.reference, desc.digest.to_string());
        return print_json(&json!({
            "reference": reference, "digest": digest, "mediaType": desc.media_type, "size": desc.size
        }));
    }
    println!("{}", desc.digest);
    Ok(())
}
