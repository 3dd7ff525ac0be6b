//! Signature policies applied to the images a command moves: one check, run beside each image's copy.

use std::sync::Arc;

use ferry_copy::{Copied, CopyFailed, CopyOptions, Selection};
use ferry_store::{ReadStore, ReadTarget, WriteTarget};
use ferry_trust::{Subject, Verified, Verifier, VerifyError};

/// Refuse the image `selection` chose unless `verifier` (if any) accepts it as `source` has it: `name`
/// chooses the policy scope, `key` is what the source calls it. What was accepted, and by whom, is
/// logged.
pub async fn verify(
    verifier: Option<&Verifier>,
    source: &dyn ReadTarget,
    name: &str,
    key: &str,
    selection: &Selection,
) -> Result<Option<Verified>, VerifyError> {
    let Some(verifier) = verifier else {
        return Ok(None);
    };
    let subject = Subject {
        name,
        key,
        resolved: selection.chosen_from().unwrap_or(&selection.root.digest),
        selected: &selection.root.digest,
    };
    let verified = verifier.verify(source, subject).await?;
    for s in &verified.signatures {
        tracing::info!("{name}: {} signed by {} ({})", s.digest, s.key, s.signature);
    }
    if verified.signatures.is_empty() {
        tracing::info!(
            "{name}: accepted without a signature (policy scope {})",
            verified.scope
        );
    }
    Ok(Some(verified))
}

/// Copy `selection` from `src` to `dst`, named `names`, with `verifier`'s check (if any) of the image as
/// `source` has it (`name` chooses the policy scope, `key` is what the source calls it) run beside the copy
/// by [`ferry_copy::copy_selected_when`]: nothing of the image is written until it passes, while a caching
/// source downloads. The check's refusal comes first, then the copy's outcome.
#[allow(clippy::too_many_arguments)]
pub async fn copy_verified(
    src: &Arc<dyn ReadStore>,
    selection: &Selection,
    dst: &Arc<dyn WriteTarget>,
    names: &[String],
    opts: &CopyOptions,
    verifier: Option<&Verifier>,
    source: &dyn ReadTarget,
    name: &str,
    key: &str,
) -> Result<Result<Copied, CopyFailed>, VerifyError> {
    let Some(verifier) = verifier else {
        return Ok(ferry_copy::copy_selected(src, selection, dst, names, opts).await);
    };
    let check = verify(Some(verifier), source, name, key, selection);
    let copied = ferry_copy::copy_selected_when(src, selection, dst, names, opts, check).await?;
    Ok(copied.map(|(c, _)| c))
}
