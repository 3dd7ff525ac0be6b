//! `ferry export`: a layout as one deterministic archive file ([`ferry_sync::delta::export`]).

use anyhow::Context;

use crate::cli::ExportArgs;

/// Node copies in flight while a delta is written (local disk to local disk).
const DELTA_CONCURRENCY: usize = 6;

pub async fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<()> {
    let out = &args.output;
    let e = ferry_sync::delta::export(&args.layout, out, args.since.as_deref(), DELTA_CONCURRENCY)
        .await
        .with_context(|| format!("writing {}", out.display()))?;
    crate::output::report(args.json, quiet, &e, |e| {
        let (path, blobs, bytes, size) =
            (e.archive.display(), e.blobs, e.blob_bytes, e.archive_bytes);
        println!("wrote {path}: {blobs} blobs, {bytes} bytes of content, {size} bytes on disk");
        if let Some(d) = &e.delta {
            println!(
                "delta on {}: {} blobs ({} bytes) left out, the base has them",
                d.base, d.omitted, d.omitted_bytes
            );
        }
    })
}
