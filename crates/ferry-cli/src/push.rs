//! `ferry push`: an OCI layout (a Zarf package, an archive of a layout) → registry, as
//! [`ferry_sync::push`] names and copies it.

use anyhow::bail;
use ferry_copy::{CopyStats, PlatformChoice};
use ferry_sync::{PushNames, PushOptions, PushedImage};

use crate::cli::PushArgs;
use crate::output::short_digest;
use crate::progress::{Mode, watcher};
use crate::registry_opts;
use crate::run_copy::{options, referrers, verifier};

pub async fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    let names = match (&args.registry, args.images.as_slice()) {
        (Some(registry), only) => PushNames::Zarf {
            registry: registry.clone(),
            only: only.to_vec(),
            no_checksum: args.no_checksum,
        },
        (None, [image, dest]) => PushNames::One {
            image: image.clone(),
            dest: dest.clone(),
        },
        (None, _) => bail!(
            "push needs --registry HOST[:PORT][/NAMESPACE] (Zarf naming), or REF-IN-LAYOUT DEST-REF (one image)"
        ),
    };
    let key = args
        .key
        .as_deref()
        .map(crate::package::read_key)
        .transpose()?;
    let opts = PushOptions {
        names,
        skip_verify: args.skip_verify,
        key,
        keep_going: args.keep_going,
        verify: verifier(&args.trust)?,
        copy: options(
            PlatformChoice::All,
            args.oci_concurrency,
            args.retries,
            referrers(&args.referrers),
        ),
        watch: Some(watcher(Mode::detect(quiet))),
    };
    let client = registry_opts::client(&args.registry_opts, Some(&args.upload))?;
    let results = ferry_sync::push(&args.source, &client, &opts)
        .await
        .map_err(|e| match e {
            ferry_sync::PushError::Package(e) => crate::package::advice(e, "push"),
            e => e.into(),
        })?;
    let failures: Vec<&PushedImage> = results.iter().filter(|r| r.error.is_some()).collect();
    for r in &failures {
        eprintln!("error: {}", r.error.as_deref().unwrap_or_default());
    }
    crate::output::report(args.json, quiet, &results, |r| print_table(r))?;
    if !failures.is_empty() {
        bail!(
            "{} of {} images failed to push",
            failures.len(),
            results.len()
        );
    }
    Ok(())
}

fn print_table(results: &[PushedImage]) {
    let line = |cells: [&dyn std::fmt::Display; 7]| {
        let [a, b, c, d, e, f, g] = cells;
        println!("{a:<70} {b:<19} {c:>12} {d:>7} {e:>7} {f:>8} {g:>6}");
    };
    line([
        &"NAME",
        &"DIGEST",
        &"BYTES",
        &"PUSHED",
        &"MOUNTED",
        &"EXISTING",
        &"STATUS",
    ]);
    for r in results {
        let b = r.blobs.clone().unwrap_or_else(CopyStats::default);
        let status = if r.error.is_some() { "FAILED" } else { "ok" };
        for name in &r.names {
            let digest = short_digest(&r.digest);
            line([
                name,
                &digest,
                &r.bytes,
                &b.fetched,
                &b.mounted,
                &b.existing,
                &status,
            ]);
        }
    }
}
