//! `ferry layout ls` and `ferry layout gc`: the images of an OCI layout, and removing the blobs none of
//! them reaches.

use anyhow::Context;
use ferry_store::layout::GcOptions;

use crate::cli::{LayoutArgs, LayoutCommand, LayoutGcArgs};
use crate::output::{human, or_dash, print_json, report, short_digest, short_media_type};

pub async fn run(cmd: LayoutCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        LayoutCommand::Ls(a) => ls(a).await,
        // File-system work: keep it off the async workers (gc may wait for the index lock).
        LayoutCommand::Gc(a) => tokio::task::spawn_blocking(move || gc(a, quiet))
            .await
            .context("layout task failed")?,
    }
}

async fn ls(args: LayoutArgs) -> anyhow::Result<()> {
    let layout = ferry_store::OciLayout::open_in(&args.dir)?;
    let entries = ferry_target::inspect::layout_entries(&layout).await?;
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
            or_dash(&e.platforms.join(","))
        );
    }
    Ok(())
}

fn gc(args: LayoutGcArgs, quiet: bool) -> anyhow::Result<()> {
    let opts = GcOptions {
        min_age: args.min_age,
        dry_run: args.dry_run,
    };
    let layout = ferry_store::OciLayout::open_in(&args.layout.dir)?;
    let root = layout.root().display().to_string();
    let gc = layout
        .gc(&opts, &|| {
            eprintln!("waiting for the ferry processes writing to {root} to finish…")
        })
        .with_context(|| format!("collecting garbage in {root}; nothing was removed"))?;
    report(args.layout.json, quiet, &gc, |gc| {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for d in &gc.removed {
            println!("{verb} {d}");
        }
        let (n, bytes) = (gc.removed.len(), human(gc.removed_bytes));
        println!(
            "{root}: {verb} {n} blobs ({bytes}); {} reachable kept",
            gc.reachable
        );
        if gc.kept_recent > 0 {
            println!(
                "kept {} unreferenced blobs ({}) changed in the last {:?} (--min-age)",
                gc.kept_recent,
                human(gc.kept_recent_bytes),
                args.min_age
            );
        }
    })
}
