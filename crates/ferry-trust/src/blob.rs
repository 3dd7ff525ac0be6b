//! Signatures over a file, as `cosign sign-blob` writes them: a base64 signature (`--output-signature`),
//! or a Sigstore bundle (`--bundle`, `--new-bundle-format`) whose `messageSignature` signs the file.

use ferry_oci::base64::decode;
use ferry_oci::digest::to_hex;
use serde::Deserialize;

use crate::key::PublicKey;

/// A signature file is small; anything larger is not one.
pub const MAX_SIGNATURE_BYTES: u64 = 1024 * 1024;

const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

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

fn signed_by<'k>(keys: &'k [PublicKey], blob: &[u8], sig: &[u8]) -> Result<&'k PublicKey, String> {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    public_key: Option<serde_json::Value>,
    certificate: Option<serde_json::Value>,
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

/// Which key signed `blob`, given a Sigstore bundle made with a key (offline: its transparency-log
/// entries are not checked, as Zarf verifies by default). Keyless bundles are refused: they need a
/// trusted root.
pub fn verify_bundle<'k>(
    keys: &'k [PublicKey],
    blob: &[u8],
    bundle: &[u8],
) -> Result<&'k PublicKey, String> {
    let b: Bundle =
        serde_json::from_slice(bundle).map_err(|e| format!("not a Sigstore bundle ({e})"))?;
    if !b.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return Err(format!(
            "not a Sigstore bundle (media type {:?})",
            b.media_type
        ));
    }
    let m = &b.verification_material;
    if m.public_key.is_none() && (m.certificate.is_some() || m.x509_certificate_chain.is_some()) {
        return Err(
            "signed keyless (a Fulcio certificate): keyless verification is not supported yet"
                .into(),
        );
    }
    let Some(ms) = b.message_signature else {
        return Err(
            "the bundle has no messageSignature (a DSSE attestation, not a signature of the file)"
                .into(),
        );
    };
    let claimed =
        decode(&ms.message_digest.digest).ok_or("the bundle's message digest is not base64")?;
    let algorithm = match ms.message_digest.algorithm.as_str() {
        "SHA2_256" => &ring::digest::SHA256,
        "SHA2_384" => &ring::digest::SHA384,
        "SHA2_512" => &ring::digest::SHA512,
        other => return Err(format!("message digest algorithm {other} is not supported")),
    };
    let actual = ring::digest::digest(algorithm, blob);
    if claimed != actual.as_ref() {
        return Err(format!(
            "the bundle signs a file whose {} is {}, not this one's ({})",
            ms.message_digest.algorithm,
            to_hex(&claimed),
            to_hex(actual.as_ref())
        ));
    }
    let sig = decode(&ms.signature).ok_or("the bundle's signature is not base64")?;
    signed_by(keys, blob, &sig)
}
