//! `ferry export`: a layout as one deterministic archive file.

use anyhow::Context;

use crate::cli::ExportArgs;

/// Node copies in flight while a delta is written (local disk to local disk).
const DELTA_CONCURRENCY: usize = 6;

pub async fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<()> {
    let dir = ferry_store::OciLayout::open_in(&args.layout)?
        .root()
        .to_path_buf();
    let out = args.output.clone();
    let writing = || format!("writing {}", args.output.display());
    let (summary, delta) = match &args.since {
        Some(base) => {
            let base = ferry_sync::delta::open_base(base).await?;
            let delta = ferry_sync::export_delta(&dir, &out, base, DELTA_CONCURRENCY)
                .await
                .with_context(writing)?;
            (delta.summary.clone(), Some(delta))
        }
        None => {
            let summary =
                tokio::task::spawn_blocking(move || ferry_archive::OciArchive::write(&dir, &out))
                    .await
                    .context("export task failed")?
                    .with_context(writing)?;
            (summary, None)
        }
    };
    if args.json {
        let json = serde_json::json!({
            "archive": summary.path,
            "compression": format!("{:?}", summary.compression).to_lowercase(),
            "blobs": summary.blobs,
            "blobBytes": summary.blob_bytes,
            "archiveBytes": summary.archive_bytes,
            "omittedBlobs": summary.omitted,
            "delta": delta,
        });
        crate::output::print_json(&json)?;
    } else if !quiet {
        println!(
            "wrote {}: {} blobs, {} bytes of content, {} bytes on disk",
            summary.path.display(),
            summary.blobs,
            summary.blob_bytes,
            summary.archive_bytes
        );
        if let Some(d) = &delta {
            println!(
                "delta on {}: {} blobs ({} bytes) left out, the base has them",
                d.base, d.omitted, d.omitted_bytes
            );
        }
    }
    Ok(())
}
