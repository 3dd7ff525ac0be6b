//! `ferry copy SRC DEST`: any source location to a registry or a layout, through the cache for registry
//! sources, never through a local layout.

use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_copy::{PlatformChoice, select_root};
use ferry_oci::{PlatformSpec, Reference};
use ferry_registry::Repository;
use ferry_store::{ReadStore, ReadTarget};
use ferry_target::{Location, Named, OpenContext};
use serde::Serialize;

use crate::cli::{ConnectArgs, CopyArgs};
use crate::progress::Mode;
use crate::registry_opts::{connect, credential};
use crate::run_copy::{
    Caching, Check, Moved, cached, copy_with_progress, options, print_moved, referrers, verifier,
    verify,
};

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
    let side = |cert_dir: &Option<std::path::PathBuf>,
                user: &Option<String>,
                password: &Option<String>,
                upload| {
        let transport = ConnectArgs {
            ca_file: args.connect.ca_file.clone(),
            cert_dir: cert_dir.clone().or(args.connect.cert_dir.clone()),
            ..args.connect
        };
        connect(&transport, credential(user, password), upload)
    };
    let platform = match (args.platform.clone(), &args.architecture) {
        (Some(p), _) => Some(p),
        (None, Some(a)) => Some(PlatformSpec::linux(a)),
        (None, None) => None,
    };
    let src_ctx = OpenContext {
        client: side(
            &args.src_cert_dir,
            &args.src_username,
            &args.src_password,
            None,
        )?,
        archive: ferry_archive::SourceOptions {
            // Exports hold only the local platform's blobs: the Engine is asked for that one.
            platform: Some(platform.clone().unwrap_or_else(PlatformSpec::host)),
            ..Default::default()
        },
    };
    let dest_ctx = OpenContext {
        client: side(
            &args.dest_cert_dir,
            &args.dest_username,
            &args.dest_password,
            Some(&args.upload),
        )?,
        archive: Default::default(),
    };
    // A registry or layout copy keeps the whole index unless a platform is asked for; an archive's index
    // is chosen from, for this machine by default.
    let choice = match (&from, platform) {
        (Location::Archive(_), p) => PlatformChoice::Auto(p.unwrap_or_else(PlatformSpec::host)),
        (_, Some(p)) => PlatformChoice::Exactly(p),
        (_, None) => PlatformChoice::All,
    };
    let (source, pairs) = plan(&args, &from, &to, &src_ctx).await?;
    let cache = match from {
        Location::Registry(_) => Caching::from_args(&args.transfer)?,
        _ => None,
    };
    let source = cached(source, cache.as_ref());
    let opts = options(
        choice.clone(),
        args.transfer.oci_concurrency,
        args.retries,
        referrers(&args.referrers),
    );
    let verifier = verifier(&args.trust)?;
    let mode = Mode::detect(quiet);
    let mut copied = Vec::new();
    for (image, to) in pairs {
        let shown = image.name.clone().unwrap_or_else(|| from.to_string());
        let context = format!("copying {shown} to {to}");
        let (desc, bytes) = source.resolve(&image.key).await.context(context.clone())?;
        let selection = select_root(source.as_ref(), desc, bytes, image.pinned, &choice)
            .await
            .context(context.clone())?;
        if let Location::Registry(Reference {
            digest: Some(d), ..
        }) = &to
            && *d != selection.root.digest
        {
            bail!(
                "{context}: the destination names digest {d}, but the source is {}",
                selection.root.digest
            );
        }
        let (dest, name) = to.open_destination(&dest_ctx).context(context.clone())?;
        // A layout records the image under the name given, else the source's own.
        let name = name.or_else(|| match &to {
            Location::Layout { .. } => image.name.clone(),
            _ => None,
        });
        let src: Arc<dyn ReadStore> = source.clone();
        let label = to.to_string();
        let names: Vec<String> = name.into_iter().collect();
        // The signature is checked beside the copy, before anything of the image is written.
        let check = verifier.as_deref().map(|v| -> Check<'_> {
            Box::pin(async {
                verify(v, source.as_ref(), &shown, &image.key, &selection).await?;
                Ok(())
            })
        });
        let done = copy_with_progress(&label, mode, &src, &selection, &dest, &names, &opts, check)
            .await
            .context(context)?;
        copied.push(CopiedImage {
            source: shown,
            destination: label,
            moved: Moved::of(done),
        });
    }
    print_moved(&copied, args.json, quiet, "DESTINATION", |c| {
        (&c.destination, &c.moved)
    })
}

/// The source opened once, and each image to copy with its destination: one, or with `--all-tags` every
/// tag of a repository.
async fn plan(
    args: &CopyArgs,
    from: &Location,
    to: &Location,
    ctx: &OpenContext,
) -> anyhow::Result<(Arc<dyn ReadTarget>, Vec<(Named, Location)>)> {
    let opened = from
        .open_source(ctx)
        .await
        .with_context(|| format!("copying {from} to {to}"))?;
    if args.all_tags {
        let (Location::Registry(src), Location::Registry(dst)) = (from, to) else {
            bail!("--all-tags copies a repository between registries");
        };
        if src.digest.is_some() || dst.digest.is_some() {
            bail!("--all-tags copies a repository: give repositories without a digest");
        }
        let repo = Repository::new(ctx.client.clone(), &src.registry, &src.repository);
        let tags = repo
            .list_tags()
            .await
            .with_context(|| format!("listing the tags of {}", src.name()))?;
        let pairs = tags
            .into_iter()
            .map(|t| {
                let image = Named {
                    name: Some(with_tag(src, &t).to_string()),
                    key: t.clone(),
                    pinned: false,
                };
                (image, Location::Registry(with_tag(dst, &t)))
            })
            .collect();
        return Ok((opened.target, pairs));
    }
    let [image] = opened.images.as_slice() else {
        bail!(
            "copying {from} to {to}: the source holds {} images; name one with {from}:NAME",
            opened.images.len(),
        );
    };
    Ok((opened.target, vec![(image.clone(), to.clone())]))
}

fn with_tag(r: &Reference, tag: &str) -> Reference {
    Reference {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: Some(tag.to_string()),
        digest: None,
    }
}
