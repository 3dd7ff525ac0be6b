//! Signatures over a file as `cosign sign-blob` writes them: a base64 signature (`--output-signature`);
//! its Sigstore bundles (`--bundle`, `--new-bundle-format`) are [`crate::bundle`]'s.

use ferry_oci::base64::decode;

use crate::key::PublicKey;

/// A signature file is small; anything larger is not one.
pub const MAX_SIGNATURE_BYTES: u64 = 1024 * 1024;

/// Which key signed `blob`, given a `sign-blob` signature file (base64 text).
pub fn verify_signature<'k>(
    keys: &'k [PublicKey],
    blob: &[u8],
    signature: &[u8],
) -> Result<&'k PublicKey, String> {
    let text = std::str::from_utf8(signature).map_err(|_| "the signature is not base64 text")?;
    let sig = decode(text.trim()).ok_or("the signature is not base64 text")?;
    signed_by(keys, blob, &sig)
}

pub(crate) fn signed_by<'k>(
    keys: &'k [PublicKey],
    blob: &[u8],
    sig: &[u8],
) -> Result<&'k PublicKey, String> {
    keys.iter().find(|k| k.verify(blob, sig)).ok_or_else(|| {
        format!(
            "not a signature by {}",
            keys.iter()
                .map(PublicKey::describe)
                .collect::<Vec<_>>()
                .join(" or ")
        )
    })
}
