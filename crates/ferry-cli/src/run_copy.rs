//! The CLI side of one copy: options from flags, the cache, what moved and how it is printed, the signature policy.

use std::sync::Arc;

use ferry_copy::{Budget, Copied, CopyOptions, PlatformChoice, Referrers};
use ferry_store::ranged::RangePolicy;
use ferry_store::{BlobCache, CachedSource, ReadTarget};

use anyhow::Context;
use ferry_trust::{Keyless, Match, Policy, PublicKey, TrustedRoot, Verifier};

use crate::cli::{ReferrerArgs, TransferArgs, TrustArgs};

/// What one image's copy did, as `--json` shows it (after the command's own naming fields).
#[derive(serde::Serialize)]
pub struct Moved {
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub platform: Option<String>,
    pub bytes: u64,
    pub blobs: ferry_copy::CopyStats,
    /// Digests of the referrers copied with it (`--referrers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<String>,
}

/// Print `rows` (a name, what moved for it) as JSON, or as a table under `heading` unless `quiet`.
pub fn print_moved<T: serde::Serialize>(
    rows: &[T],
    json: bool,
    quiet: bool,
    heading: &str,
    row: impl Fn(&T) -> (&str, &Moved),
) -> anyhow::Result<()> {
    if json {
        return crate::output::print_json(&rows);
    }
    if quiet {
        return Ok(());
    }
    let line = |cells: [&dyn std::fmt::Display; 9]| {
        let [a, b, c, d, e, f, g, h, i] = cells;
        println!("{a:<60} {b:<19} {c:<14} {d:>12} {e:>7} {f:>6} {g:>6} {h:>7} {i:>8}");
    };
    line([
        &heading,
        &"DIGEST",
        &"PLATFORM",
        &"BYTES",
        &"FETCHED",
        &"CACHED",
        &"LINKED",
        &"MOUNTED",
        &"EXISTING",
    ]);
    for r in rows {
        let (name, m) = row(r);
        let b = &m.blobs;
        line([
            &name,
            &crate::output::short_digest(&m.digest),
            &m.platform.as_deref().unwrap_or("-"),
            &m.bytes,
            &b.fetched,
            &b.cached,
            &b.linked,
            &b.mounted,
            &b.existing,
        ]);
    }
    Ok(())
}

impl Moved {
    pub fn of(copied: Copied) -> Moved {
        Moved {
            digest: copied.root.digest.to_string(),
            media_type: copied.root.media_type.clone(),
            platform: copied.root.platform.as_ref().map(|p| p.to_string()),
            bytes: copied.stats.total_bytes(),
            referrers: copied
                .referrers
                .iter()
                .map(|r| r.desc.digest.to_string())
                .collect(),
            blobs: copied.stats,
        }
    }
}

impl crate::cli::ImageCopyArgs {
    /// Copy options for every image of a run ([`options`]), with `--oci-concurrency` and the referrer flags.
    pub fn options(&self, platform: PlatformChoice, attempts: u32) -> CopyOptions {
        options(
            platform,
            self.transfer.oci_concurrency,
            attempts,
            referrers(&self.referrers),
        )
    }

    /// The cache as a read-through proxy for registry sources, unless `--no-cache`.
    pub fn through(&self) -> anyhow::Result<Option<ferry_sync::Through>> {
        Ok(Caching::through(Caching::from_args(&self.transfer)?))
    }
}

/// Copy options shared by every image of a run: one node budget, the referrer choice, the attempts.
pub fn options(
    platform: PlatformChoice,
    concurrency: u32,
    attempts: u32,
    referrers: Referrers,
) -> CopyOptions {
    CopyOptions {
        platform,
        budget: Budget::new(concurrency as usize),
        attempts,
        referrers,
        ..CopyOptions::default()
    }
}

/// `--referrers` and `--referrers-type`.
pub fn referrers(args: &ReferrerArgs) -> Referrers {
    match (args.referrers, args.referrers_types.is_empty()) {
        (false, _) => Referrers::None,
        (true, true) => Referrers::All,
        (true, false) => Referrers::Types(args.referrers_types.clone()),
    }
}

/// The blob cache as the flags ask for it (`None` with `--no-cache`), and how it fetches large blobs.
#[derive(Clone)]
pub struct Caching {
    cache: BlobCache,
    ranges: RangePolicy,
}

impl Caching {
    pub fn from_args(args: &TransferArgs) -> anyhow::Result<Option<Caching>> {
        Ok(open_cache(args)?.map(|cache| Caching {
            cache,
            ranges: RangePolicy {
                min_size: args.range_threshold.max(1),
                part_size: args.range_size.max(1 << 16),
                ..RangePolicy::default()
            },
        }))
    }

    /// The cache as a read-through proxy for registry sources, if there is one.
    pub fn through(caching: Option<Caching>) -> Option<ferry_sync::Through> {
        caching.map(|c| Arc::new(move |s| c.wrap(s)) as ferry_sync::Through)
    }

    /// `source` read through the cache.
    pub fn wrap(&self, source: Arc<dyn ReadTarget>) -> Arc<dyn ReadTarget> {
        Arc::new(CachedSource::new(source, self.cache.clone()).with_ranges(self.ranges))
    }
}

/// The signature policy `--verify-key`, `--trusted-root` or `--verify-policy` asks for, if any.
pub fn verifier(args: &TrustArgs) -> anyhow::Result<Option<Arc<Verifier>>> {
    if let Some(file) = &args.verify_policy {
        return Ok(Some(Arc::new(Verifier::new(Policy::from_file(file)?))));
    }
    let keys = match &args.verify_key {
        Some(key) => vec![
            PublicKey::from_file(key)
                .with_context(|| format!("reading --verify-key {}", key.display()))?,
        ],
        None => Vec::new(),
    };
    let keyless = match &args.trusted_root {
        Some(root) => Some(Keyless {
            root: Arc::new(TrustedRoot::from_file(root)?),
            identity: Match::from_flags(
                args.certificate_identity.as_deref(),
                args.certificate_identity_regexp.as_deref(),
                "--certificate-identity",
            )?,
            issuer: Match::from_flags(
                args.certificate_oidc_issuer.as_deref(),
                args.certificate_oidc_issuer_regexp.as_deref(),
                "--certificate-oidc-issuer",
            )?,
        }),
        None => None,
    };
    if keys.is_empty() && keyless.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Verifier::new(Policy::signed(keys, keyless)))))
}

/// The blob cache `--cache` names (else the default), or none with `--no-cache`.
pub fn open_cache(args: &TransferArgs) -> anyhow::Result<Option<BlobCache>> {
    if args.no_cache {
        return Ok(None);
    }
    let root = match &args.cache {
        Some(dir) => dir.clone(),
        None => BlobCache::default_root().context(
            "no cache directory: set $HOME or $FERRY_CACHE, pass --cache DIR, or --no-cache",
        )?,
    };
    Ok(Some(BlobCache::open(&root).with_context(|| {
        format!("opening the blob cache {}", root.display())
    })?))
}
