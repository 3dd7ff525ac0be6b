//! cosign's tag-based signatures: the `sha256-<hex>.sig` manifest beside an image, each simple-signing
//! layer a payload with its signature in an annotation.

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Manifest};
use ferry_store::{ReadTarget, StoreError};

use crate::bundle;

/// The media type of a cosign payload layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A keyless signature's Fulcio certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// A keyless signature's Rekor bundle (signed entry timestamp and entry).
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// A payload is a few hundred bytes; a larger layer is not read.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// A signature manifest with more layers than this is not read past it.
pub const MAX_SIGNATURES: usize = 32;

/// One signature found, read and not yet checked (or why it could not be read).
pub struct Candidate {
    /// E.g. `sha256-ab….sig layer 0`.
    pub label: String,
    /// The payload bytes and the raw signature.
    pub found: Result<(Bytes, Vec<u8>), String>,
    /// A keyless signature's certificate (PEM) and Rekor bundle (JSON), from the layer's annotations.
    pub keyless: Option<(String, Option<String>)>,
}

/// cosign's tag for the signatures of `digest`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// The name `source` knows the signature tag of `digest` by, given the name `key` it knows the image by:
/// a registry knows bare tags, a layout full names.
pub fn signature_name(key: &str, digest: &Digest) -> String {
    let tag = signature_tag(digest);
    if key.parse::<Digest>().is_ok() {
        return tag;
    }
    ferry_copy::sibling_name(key, &tag)
}

/// The signatures stored for `digest` (`None`: no signature tag), each payload fetched and verified
/// against its descriptor. One manifest resolve and one small blob per signature.
pub async fn signatures(
    source: &dyn ReadTarget,
    key: &str,
    digest: &Digest,
) -> Result<Option<Vec<Candidate>>, StoreError> {
    let name = signature_name(key, digest);
    let tag = signature_tag(digest);
    let (desc, bytes) = match source.resolve(&name).await {
        Ok(found) => found,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest = match Manifest::parse(&desc.media_type, &bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Some(vec![Candidate {
                label: tag,
                found: Err(format!("not a signature manifest ({e})")),
                keyless: None,
            }]));
        }
    };
    let mut out = Vec::new();
    for (i, layer) in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLESIGNING)
        .take(MAX_SIGNATURES)
        .enumerate()
    {
        out.push(Candidate {
            label: format!("{tag} layer {i}"),
            found: read_layer(source, layer).await?,
            keyless: layer.annotation(CERTIFICATE_ANNOTATION).map(|c| {
                (
                    c.to_string(),
                    layer
                        .annotation(REKOR_BUNDLE_ANNOTATION)
                        .map(str::to_string),
                )
            }),
        });
    }
    if out.is_empty() {
        out.push(Candidate {
            label: tag,
            found: Err(format!("no {SIMPLESIGNING} layer")),
            keyless: None,
        });
    }
    Ok(Some(out))
}

/// The Sigstore bundles stored as OCI 1.1 referrers of `digest` (artifactType
/// `application/vnd.dev.sigstore.bundle…`, as `cosign sign --new-bundle-format` writes them), each read
/// whole and checked against its descriptor. One referrers listing, then one manifest and one bundle each.
pub async fn bundles(source: &dyn ReadTarget, digest: &Digest) -> Result<Vec<Bundle>, StoreError> {
    // Referrer listings look subjects up by digest alone.
    let subject = Descriptor::new(
        ferry_oci::media_type::OCI_MANIFEST.to_string(),
        digest.clone(),
        0,
    );
    let listed = source.subject_referrers(&subject).await?;
    let mut out = Vec::new();
    for r in listed
        .iter()
        .filter(|r| {
            r.desc
                .artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(bundle::MEDIA_TYPE_PREFIX))
        })
        .take(MAX_SIGNATURES)
    {
        let label = format!("bundle referrer {}", r.desc.digest);
        let bytes = source.fetch_manifest(&r.desc).await?;
        let layer = Manifest::parse(&r.desc.media_type, &bytes)
            .map_err(|e| format!("not a manifest ({e})"))
            .and_then(|m| {
                m.layers
                    .into_iter()
                    .find(|l| l.media_type.starts_with(bundle::MEDIA_TYPE_PREFIX))
                    .ok_or_else(|| "no bundle layer".to_string())
            })
            .and_then(|l| {
                if l.size > bundle::MAX_BUNDLE_BYTES {
                    Err(format!("a bundle of {} bytes is too large", l.size))
                } else {
                    Ok(l)
                }
            });
        let found = match layer {
            Err(why) => Err(why),
            Ok(layer) => {
                let b = fetch_small(source, &layer).await?;
                let actual = Digest::of(&b);
                if actual == layer.digest {
                    Ok(b)
                } else {
                    Err(format!(
                        "the bundle hashes to {actual}, not {}",
                        layer.digest
                    ))
                }
            }
        };
        out.push(Bundle { label, found });
    }
    Ok(out)
}

/// A bundle found, read and not yet checked (or why it could not be read).
pub struct Bundle {
    /// E.g. `bundle referrer sha256:…`.
    pub label: String,
    /// The bundle's bytes.
    pub found: Result<Bytes, String>,
}

/// A layer's payload and signature; a store failure is the caller's, a bad layer is this signature's.
async fn read_layer(
    source: &dyn ReadTarget,
    layer: &Descriptor,
) -> Result<Result<(Bytes, Vec<u8>), String>, StoreError> {
    let Some(sig) = layer.annotation(SIGNATURE_ANNOTATION) else {
        return Ok(Err(format!("no {SIGNATURE_ANNOTATION} annotation")));
    };
    let Some(sig) = ferry_oci::base64::decode(sig.trim()) else {
        return Ok(Err("the signature annotation is not base64".into()));
    };
    if layer.size > MAX_PAYLOAD_BYTES {
        return Ok(Err(format!(
            "the payload is {} bytes, more than a payload can be ({MAX_PAYLOAD_BYTES})",
            layer.size
        )));
    }
    let payload = fetch_small(source, layer).await?;
    let actual = Digest::of(&payload);
    if actual != layer.digest {
        return Ok(Err(format!(
            "the payload hashes to {actual}, not {}",
            layer.digest
        )));
    }
    Ok(Ok((payload, sig)))
}

/// A blob known to be small, read whole (never past its descriptor's size and one byte).
async fn fetch_small(source: &dyn ReadTarget, desc: &Descriptor) -> Result<Bytes, StoreError> {
    let (mut body, start) = source.fetch_blob(desc, 0).await?;
    debug_assert_eq!(start, 0);
    let mut out = Vec::with_capacity(desc.size as usize);
    while let Some(chunk) = body.next_chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > desc.size {
            break;
        }
    }
    Ok(Bytes::from(out))
}
