//! `ferry copy`: the image one location names (or, between registries, every tag of a repository) to
//! another location, each image resolved, its platform chosen, then copied (its signature checked beside the
//! copy) and named.

use std::sync::Arc;

use ferry_copy::{Copied, CopyOptions, PlatformChoice, select_root};
use ferry_oci::{PlatformSpec, Reference};
use ferry_registry::Repository;
use ferry_store::{ReadStore, ReadTarget};
use ferry_target::{Location, Named, OpenContext, TargetError};
use ferry_trust::Verifier;

use crate::push::Watcher;

/// A read-through proxy put in front of a registry source (the blob cache).
pub type Through = Arc<dyn Fn(Arc<dyn ReadTarget>) -> Arc<dyn ReadTarget> + Send + Sync>;

/// How [`copy_location`] runs.
pub struct LocationCopyOptions {
    /// Clients (credentials, TLS) for the source.
    pub source: OpenContext,
    /// Clients for the destination.
    pub dest: OpenContext,
    /// Copy every tag of the source repository (registry to registry).
    pub all_tags: bool,
    /// One platform instead of a whole index (an archive's index is always chosen from: this machine's
    /// platform by default).
    pub platform: Option<PlatformSpec>,
    /// Budget, attempts, referrers of each image's copy (its platform choice is set here).
    pub copy: CopyOptions,
    /// Registry sources are read through this.
    pub through: Option<Through>,
    /// Refuse images this signature policy does not accept (before anything of them is written).
    pub verify: Option<Arc<Verifier>>,
    /// Progress of each image, by its destination.
    pub watch: Option<Watcher>,
}

/// One image copied.
pub struct CopiedImage {
    /// Its name at the source (or the source location).
    pub source: String,
    /// Where it went.
    pub destination: String,
    /// What the copy did.
    pub copied: Copied,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum LocationCopyError {
    /// A location cannot be opened.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The locations cannot be copied this way.
    #[error("{0}")]
    Invalid(String),
    /// One image failed (`copying SRC to DEST`).
    #[error("{context}")]
    Image {
        /// What was being copied.
        context: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Copy what `from` names to `to`: a registry or layout source is copied whole unless a platform is asked
/// for, an archive's index is chosen from; a layout records the image under the name given, else the
/// source's own; a destination pinned by digest must be that digest.
pub async fn copy_location(
    from: &Location,
    to: &Location,
    opts: &LocationCopyOptions,
) -> Result<Vec<CopiedImage>, LocationCopyError> {
    let choice = match (from, &opts.platform) {
        (Location::Archive(_), p) => {
            PlatformChoice::Auto(p.clone().unwrap_or_else(PlatformSpec::host))
        }
        (_, Some(p)) => PlatformChoice::Exactly(p.clone()),
        (_, None) => PlatformChoice::All,
    };
    let mut ctx = opts.source.clone();
    // Exports hold only the local platform's blobs: the Engine is asked for that one.
    ctx.archive.platform = Some(opts.platform.clone().unwrap_or_else(PlatformSpec::host));
    let (source, pairs) = plan(from, to, &ctx, opts.all_tags).await?;
    let source = match (from, &opts.through) {
        (Location::Registry(_), Some(through)) => through(source),
        _ => source,
    };
    let copy = CopyOptions {
        platform: choice.clone(),
        ..opts.copy.clone()
    };
    let mut out = Vec::new();
    for (image, to) in pairs {
        let shown = image.name.clone().unwrap_or_else(|| from.to_string());
        let context = format!("copying {shown} to {to}");
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| LocationCopyError::Image {
            context: context.clone(),
            source: e,
        };
        let (desc, bytes) = source
            .resolve(&image.key)
            .await
            .map_err(|e| fail(e.into()))?;
        let selection = select_root(source.as_ref(), desc, bytes, image.pinned, &choice)
            .await
            .map_err(|e| fail(e.into()))?;
        if let Location::Registry(Reference {
            digest: Some(d), ..
        }) = &to
            && *d != selection.root.digest
        {
            let why = format!(
                "the destination names digest {d}, but the source is {}",
                selection.root.digest
            );
            return Err(fail(why.into()));
        }
        let (dest, name) = to
            .open_destination(&opts.dest)
            .map_err(|e| fail(e.into()))?;
        let name = name.or_else(|| match &to {
            Location::Layout { .. } => image.name.clone(),
            _ => None,
        });
        let label = to.to_string();
        let watch = opts.watch.as_ref().map(|w| w(&label));
        let copy = CopyOptions {
            events: watch.as_ref().map_or(copy.events.clone(), |w| w.events()),
            ..copy.clone()
        };
        let src: Arc<dyn ReadStore> = source.clone();
        let names: Vec<String> = name.into_iter().collect();
        // The signature is checked beside the copy: nothing of the image is written until it passes.
        let verifier = opts.verify.as_deref();
        let result = crate::copy_verified(
            &src,
            &selection,
            &dest,
            &names,
            &copy,
            verifier,
            source.as_ref(),
            &shown,
            &image.key,
        )
        .await;
        if let Some(w) = watch {
            w.finish(matches!(result, Ok(Ok(_))));
        }
        let copied = result
            .map_err(|e| fail(e.into()))?
            .map_err(|e| fail(e.into()))?;
        out.push(CopiedImage {
            source: shown,
            destination: label,
            copied,
        });
    }
    Ok(out)
}

/// The source opened once, and each image to copy with its destination: one, or with `all_tags` every
/// tag of a repository.
async fn plan(
    from: &Location,
    to: &Location,
    ctx: &OpenContext,
    all_tags: bool,
) -> Result<(Arc<dyn ReadTarget>, Vec<(Named, Location)>), LocationCopyError> {
    let opened = from
        .open_source(ctx)
        .await
        .map_err(|e| LocationCopyError::Image {
            context: format!("copying {from} to {to}"),
            source: e.into(),
        })?;
    if all_tags {
        let (Location::Registry(src), Location::Registry(dst)) = (from, to) else {
            return Err(LocationCopyError::Invalid(
                "--all-tags copies a repository between registries".into(),
            ));
        };
        if src.digest.is_some() || dst.digest.is_some() {
            return Err(LocationCopyError::Invalid(
                "--all-tags copies a repository: give repositories without a digest".into(),
            ));
        }
        let repo = Repository::new(ctx.client.clone(), &src.registry, &src.repository);
        let tags = repo
            .list_tags()
            .await
            .map_err(|e| LocationCopyError::Image {
                context: format!("listing the tags of {}", src.name()),
                source: e.into(),
            })?;
        let at = |r: &Reference, t: &str| Reference {
            tag: Some(t.to_string()),
            digest: None,
            ..r.clone()
        };
        let pairs = tags
            .into_iter()
            .map(|t| {
                let name = Some(at(src, &t).to_string());
                let to = Location::Registry(at(dst, &t));
                (
                    Named {
                        name,
                        key: t,
                        pinned: false,
                    },
                    to,
                )
            })
            .collect();
        return Ok((opened.target, pairs));
    }
    let [image] = opened.images.as_slice() else {
        return Err(LocationCopyError::Invalid(format!(
            "copying {from} to {to}: the source holds {} images; name one with {from}:NAME",
            opened.images.len(),
        )));
    };
    Ok((opened.target, vec![(image.clone(), to.clone())]))
}
