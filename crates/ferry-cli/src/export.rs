//! `ferry export`: a layout as one deterministic archive file.

use anyhow::Context;

use crate::cli::ExportArgs;

pub async fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<()> {
    let dir = crate::push::layout_dir(&args.layout)?;
    ferry_store::OciLayout::open(&dir)?;
    let out = args.output.clone();
    let summary = tokio::task::spawn_blocking(move || ferry_archive::OciArchive::write(&dir, &out))
        .await
        .context("export task failed")?
        .with_context(|| format!("writing {}", args.output.display()))?;
    if args.json {
        let json = serde_json::json!({
            "archive": summary.path,
            "compression": format!("{:?}", summary.compression).to_lowercase(),
            "blobs": summary.blobs,
            "blobBytes": summary.blob_bytes,
            "archiveBytes": summary.archive_bytes,
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
    }
    Ok(())
}
