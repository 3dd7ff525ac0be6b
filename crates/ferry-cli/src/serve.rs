//! `ferry serve`: parse the flags, start the library's server, stop it on Ctrl-C.

use anyhow::Context;
use ferry_serve::{ServeOptions, Server, SourceSpec};

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs, quiet: bool) -> anyhow::Result<()> {
    let source = match (&args.source, &args.cache) {
        (Some(s), _) => SourceSpec::parse(s),
        (None, Some(dir)) => SourceSpec::Cache(
            dir.clone()
                .or_else(ferry_store::BlobCache::default_root)
                .context("no cache directory: set $FERRY_CACHE or pass --cache DIR")?,
        ),
        (None, None) => unreachable!("clap requires SOURCE or --cache"),
    };
    let opts = ServeOptions {
        source,
        listen: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        htpasswd: args.htpasswd,
        writable: args.writable,
        zarf_names: args.zarf_names,
        max_upload_bytes: args.max_upload_size,
        temp_dir: args.tmpdir,
    };
    let server = Server::bind(opts).await?;
    if !quiet {
        eprintln!(
            "serving {} at {}://{}/v2/ (Ctrl-C stops)",
            server.summary().await,
            server.scheme(),
            server.local_addr()
        );
    }
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if !quiet {
        eprintln!("stopped");
    }
    Ok(())
}
