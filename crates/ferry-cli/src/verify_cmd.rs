//! `ferry verify`: who signed an image, as the key or the policy sees it.

use anyhow::Context;
use ferry_copy::{PlatformChoice, select_root};
use ferry_target::{Location, OpenContext};

use crate::cli::VerifyArgs;
use crate::output::print_json;
use crate::registry_opts;
use crate::run_copy::verifier;

pub async fn run(args: VerifyArgs, quiet: bool) -> anyhow::Result<()> {
    let verifier =
        verifier(&args.trust)?.context("give --verify-key KEY.pub or --verify-policy FILE")?;
    let location = Location::parse(&args.image)?;
    let ctx = OpenContext {
        client: registry_opts::client(&args.registry, None)?,
        archive: Default::default(),
    };
    let opened = location.open_source(&ctx).await?;
    let mut verified = Vec::new();
    for image in opened.images {
        let name = image.name.clone().unwrap_or_else(|| location.to_string());
        let context = || format!("verifying {name}");
        let (desc, bytes) = opened
            .target
            .resolve(&image.key)
            .await
            .with_context(context)?;
        // What the name resolves to is what is verified: an index as a whole.
        let selection = select_root(
            opened.target.as_ref(),
            desc.clone(),
            bytes,
            true,
            &PlatformChoice::All,
        )
        .await
        .with_context(context)?;
        let v = ferry_sync::verify(
            Some(&verifier),
            opened.target.as_ref(),
            &name,
            &image.key,
            &selection,
        )
        .await?;
        verified.extend(v);
    }
    if args.json {
        return print_json(&verified);
    }
    if quiet {
        return Ok(());
    }
    for v in &verified {
        if v.signatures.is_empty() {
            println!(
                "{}: accepted without a signature (policy scope {})",
                v.image, v.scope
            );
        }
        for s in &v.signatures {
            println!(
                "{}: {} signed by {} as {} ({})",
                v.image, s.digest, s.key, s.signed_as, s.signature
            );
        }
    }
    Ok(())
}
