//! `ferry layout ls` and `ferry layout gc`: the images of an OCI layout, and removing the blobs none of
//! them reaches.

use anyhow::Context;
use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Manifest, ManifestKind, media_type};
use ferry_store::OciLayout;
use ferry_store::layout::GcOptions;
use serde::Serialize;

use crate::cache::parse_duration;
use crate::cli::{LayoutCommand, LayoutGcArgs, LayoutLsArgs};
use crate::inspect::open_layout;
use crate::output::{human, print_json, short_digest, short_media_type};

pub async fn run(cmd: LayoutCommand, quiet: bool) -> anyhow::Result<()> {
    // File-system work: keep it off the async workers (gc may wait for the index lock).
    tokio::task::spawn_blocking(move || match cmd {
        LayoutCommand::Ls(a) => ls(a),
        LayoutCommand::Gc(a) => gc(a, quiet),
    })
    .await
    .context("layout task failed")?
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The name ferry and Zarf know the image by (`Descriptor::image_name` priority).
    name: Option<String>,
    ref_name: Option<String>,
    base_name: Option<String>,
    digest: String,
    media_type: String,
    size: u64,
    artifact_type: Option<String>,
    /// The entry's platform, else its config's, else those of the index's manifests.
    platforms: Vec<String>,
}

fn ls(args: LayoutLsArgs) -> anyhow::Result<()> {
    let layout = open_layout(&args.dir)?;
    let entries: Vec<Entry> = layout
        .entries()?
        .into_iter()
        .map(|d| Entry {
            name: d.image_name(),
            ref_name: d.annotation(ANNOTATION_REF_NAME).map(str::to_string),
            base_name: d.annotation(ANNOTATION_BASE_NAME).map(str::to_string),
            digest: d.digest.to_string(),
            media_type: d.media_type.clone(),
            size: d.size,
            artifact_type: d.artifact_type.clone(),
            platforms: platforms(&layout, &d),
        })
        .collect();
    if args.json {
        return print_json(&entries);
    }
    let width = entries
        .iter()
        .map(|e| e.name.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<19}  {:<16}  PLATFORM",
        "NAME", "DIGEST", "TYPE"
    );
    for e in &entries {
        println!(
            "{:<width$}  {:<19}  {:<16}  {}",
            e.name.as_deref().unwrap_or("-"),
            short_digest(&e.digest),
            short_media_type(&e.media_type),
            if e.platforms.is_empty() {
                "-".to_string()
            } else {
                e.platforms.join(",")
            }
        );
    }
    Ok(())
}

/// Platforms of an entry, read from the layout's own blobs; empty when unknown (artifacts, missing blobs).
fn platforms(layout: &OciLayout, d: &Descriptor) -> Vec<String> {
    if let Some(p) = &d.platform {
        return vec![p.to_string()];
    }
    let read = |desc: &Descriptor| std::fs::read(layout.blob_path(&desc.digest)).ok();
    let Some(manifest) = read(d).and_then(|b| Manifest::parse(&d.media_type, &b).ok()) else {
        return Vec::new();
    };
    match manifest.kind {
        ManifestKind::Index => manifest
            .manifests
            .iter()
            .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
            .collect(),
        ManifestKind::Image => {
            #[derive(serde::Deserialize)]
            struct ImageConfig {
                #[serde(default)]
                os: String,
                #[serde(default)]
                architecture: String,
                variant: Option<String>,
            }
            let config = manifest.config.as_ref().filter(|c| {
                c.media_type == media_type::OCI_CONFIG
                    || c.media_type == "application/vnd.docker.container.image.v1+json"
            });
            let parsed = config
                .filter(|c| c.size <= ferry_oci::MAX_MANIFEST_BYTES)
                .and_then(read)
                .and_then(|b| serde_json::from_slice::<ImageConfig>(&b).ok())
                .filter(|c| !c.os.is_empty() && !c.architecture.is_empty());
            parsed
                .map(|c| {
                    let mut p = format!("{}/{}", c.os, c.architecture);
                    if let Some(v) = c.variant {
                        p = format!("{p}/{v}");
                    }
                    vec![p]
                })
                .unwrap_or_default()
        }
    }
}

fn gc(args: LayoutGcArgs, quiet: bool) -> anyhow::Result<()> {
    let opts = GcOptions {
        min_age: parse_duration(&args.min_age)?,
        dry_run: args.dry_run,
    };
    let layout = open_layout(&args.dir)?;
    let root = layout.root().display().to_string();
    let report = layout
        .gc(&opts, &|| {
            eprintln!("waiting for the ferry processes writing to {root} to finish…")
        })
        .with_context(|| format!("collecting garbage in {root}; nothing was removed"))?;
    if args.json {
        return print_json(&report);
    }
    if !quiet {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for d in &report.removed {
            println!("{verb} {d}");
        }
        println!(
            "{root}: {verb} {} blobs ({}); {} reachable kept",
            report.removed.len(),
            human(report.removed_bytes),
            report.reachable
        );
        if report.kept_recent > 0 {
            println!(
                "kept {} unreferenced blobs ({}) changed in the last {} (--min-age)",
                report.kept_recent,
                human(report.kept_recent_bytes),
                args.min_age
            );
        }
    }
    Ok(())
}
