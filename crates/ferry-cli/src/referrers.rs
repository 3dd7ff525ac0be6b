//! `--referrers`: find the artifacts about an image (signatures, attestations, SBOMs) so they travel with it.

use std::collections::HashSet;

use ferry_oci::{Descriptor, Digest};
use ferry_store::{ReadStore, Referrer};

use crate::cli::ReferrerArgs;

/// Every referrer of `root`, and of those in turn (a signature of an SBOM of an image), each once, in the
/// order found, keeping those whose artifactType passes `--referrers-type`. Cosign tags carry no
/// artifactType: a type filter leaves them out.
pub async fn discover(
    source: &dyn ReadStore,
    root: &Descriptor,
    args: &ReferrerArgs,
) -> anyhow::Result<Vec<Referrer>> {
    if !args.referrers {
        return Ok(Vec::new());
    }
    let mut seen: HashSet<Digest> = HashSet::from([root.digest.clone()]);
    let mut queue = vec![root.clone()];
    let mut found = Vec::new();
    while let Some(subject) = queue.pop() {
        for r in source.referrers(&subject).await? {
            if !seen.insert(r.desc.digest.clone()) {
                continue;
            }
            queue.push(r.desc.clone());
            let wanted = args.referrers_types.is_empty()
                || r.desc
                    .artifact_type
                    .as_ref()
                    .is_some_and(|t| args.referrers_types.contains(t));
            if wanted {
                found.push(r);
            }
        }
    }
    Ok(found)
}
