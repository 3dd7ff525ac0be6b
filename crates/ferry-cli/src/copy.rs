//! `ferry copy SRC DEST`: flags → [`ferry_sync::copy_location`], printed.

use std::path::PathBuf;

use ferry_oci::PlatformSpec;
use ferry_sync::{LocationCopyOptions, copy_location};
use ferry_target::{Location, OpenContext};
use serde::Serialize;

use crate::cli::{ConnectArgs, CopyArgs, UploadArgs};
use crate::progress::{Mode, watcher};
use crate::registry_opts::{connect, credential};
use crate::run_copy::{Moved, print_moved, verifier};

#[derive(Serialize)]
struct CopiedImage {
    source: String,
    destination: String,
    #[serde(flatten)]
    moved: Moved,
}

pub async fn run(args: CopyArgs, quiet: bool) -> anyhow::Result<()> {
    let from = Location::parse(&args.source)?;
    let to = Location::parse(&args.destination)?;
    // Each side's own certificates and credentials, else those given for both.
    let side = |cert_dir: &Option<PathBuf>, user, password, upload: Option<&UploadArgs>| {
        let transport = ConnectArgs {
            ca_file: args.connect.ca_file.clone(),
            cert_dir: cert_dir.clone().or(args.connect.cert_dir.clone()),
            ..args.connect
        };
        let client = connect(&transport, credential(user, password), upload)?;
        anyhow::Ok(OpenContext {
            client,
            archive: Default::default(),
        })
    };
    let opts = LocationCopyOptions {
        source: side(
            &args.src_cert_dir,
            &args.src_username,
            &args.src_password,
            None,
        )?,
        dest: side(
            &args.dest_cert_dir,
            &args.dest_username,
            &args.dest_password,
            Some(&args.upload),
        )?,
        all_tags: args.all_tags,
        platform: args
            .platform
            .clone()
            .or(args.architecture.as_deref().map(PlatformSpec::linux)),
        copy: args
            .copy
            .options(ferry_copy::PlatformChoice::All, args.retries),
        // Only a registry source is read through the cache (nothing else is worth keeping twice).
        through: match from {
            Location::Registry(_) => args.copy.through()?,
            _ => None,
        },
        verify: verifier(&args.copy.trust)?,
        watch: Some(watcher(Mode::detect(quiet))),
    };
    let copied: Vec<CopiedImage> = copy_location(&from, &to, &opts)
        .await?
        .into_iter()
        .map(|c| CopiedImage {
            source: c.source,
            destination: c.destination,
            moved: Moved::of(c.copied),
        })
        .collect();
    print_moved(&copied, args.copy.json, quiet, "DESTINATION", |c| {
        (&c.destination, &c.moved)
    })
}
