//! `ferry pull`: flags → [`ferry_sync::pull::pull`], printed.

use ferry_sync::pull::{PullOptions, platform_choice, pull, references};
use serde::Serialize;

use crate::cli::PullArgs;
use crate::progress::{Mode, watcher};
use crate::registry_opts;
use crate::run_copy::{Moved, print_moved, verifier};

/// Whole-image attempts, as Zarf makes.
const PULL_ATTEMPTS: u32 = 3;

#[derive(Serialize)]
struct PulledImage {
    reference: String,
    #[serde(flatten)]
    moved: Moved,
}

pub async fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    let arch = match &args.platform {
        Some(p) => Some(p.architecture.as_str()),
        None => args.architecture.as_deref(),
    };
    let wanted = references(&args.references, &args.files, arch, &args.flavor)?;
    let platform = platform_choice(
        args.all_platforms,
        args.platform.as_ref(),
        args.architecture.as_deref(),
    );
    let opts = PullOptions {
        source: ferry_target::OpenContext {
            client: registry_opts::client(&args.registry, None)?,
            archive: Default::default(),
        },
        overrides: ferry_zarf::overrides::parse_overrides(&args.registry_overrides)?,
        copy: args.copy.options(platform.clone(), PULL_ATTEMPTS),
        platform,
        daemon_fallback: args.daemon_fallback,
        base: args.base.clone(),
        through: args.copy.through()?,
        verify: verifier(&args.copy.trust)?,
        watch: Some(watcher(Mode::detect(quiet))),
    };
    let pulled: Vec<PulledImage> = pull(&wanted, &args.output, &opts)
        .await?
        .into_iter()
        .map(|p| PulledImage {
            reference: p.reference,
            moved: Moved::of(p.copied),
        })
        .collect();
    print_moved(&pulled, args.copy.json, quiet, "REFERENCE", |p| {
        (&p.reference, &p.moved)
    })
}
