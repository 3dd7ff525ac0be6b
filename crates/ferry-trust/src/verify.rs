//! The decision: does a policy accept this image, as the source has it?

use ferry_oci::Digest;
use ferry_store::{ReadTarget, StoreError};

use crate::bundle::{self, Artifact, Keyless, Trust};
use crate::cosign;
use crate::key::PublicKey;
use crate::payload;
use crate::policy::{Policy, Requirement, SignedIdentity, identity_matches};

/// The image to decide about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The image's name: it chooses the policy scope, and identity rules compare signatures to it.
    pub name: &'a str,
    /// What the source calls it (a tag or digest in a registry, a full name in a layout).
    pub key: &'a str,
    /// The digest of what the name resolved to.
    pub resolved: &'a Digest,
    /// The digest of what will be copied: the resolved node, or a platform's manifest chosen from that
    /// index.
    pub selected: &'a Digest,
}

/// A signature that held.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Signature {
    /// The digest it signs (the image's, or the index's it was chosen from).
    pub digest: String,
    /// Where it was found (`sha256-<hex>.sig layer 0`).
    pub signature: String,
    /// The key that made it.
    pub key: String,
    /// The name it was signed under (`critical.identity.docker-reference`).
    pub signed_as: String,
}

/// What the policy decided, when it accepted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verified {
    /// The image.
    pub image: String,
    /// The policy scope that applied.
    pub scope: String,
    /// The signatures that satisfied it (none: the scope accepts anything).
    pub signatures: Vec<Signature>,
}

/// One signature looked at, and why it did not do.
#[derive(Clone, Debug)]
pub struct Tried {
    /// Which signature.
    pub signature: String,
    /// Why it failed.
    pub why: String,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The policy rejects the image outright.
    #[error("{image}: the signature policy rejects it (scope {scope})")]
    Rejected {
        /// The image.
        image: String,
        /// The scope that said so.
        scope: String,
    },
    /// No signature satisfied the policy.
    #[error(
        "{image} ({digest}) has no valid signature by {keys}: {}",
        describe(tried)
    )]
    Unsigned {
        /// The image.
        image: String,
        /// Its digest.
        digest: Digest,
        /// The trusted keys.
        keys: String,
        /// Every signature looked at, and why it failed.
        tried: Vec<Tried>,
    },
    /// The signatures could not be read.
    #[error("{image}: reading its signatures from {store}")]
    Store {
        /// The image.
        image: String,
        /// The source.
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

impl VerifyError {
    /// Whether trying again may help (the source failed, the signatures did not).
    pub fn is_transient(&self) -> bool {
        matches!(self, VerifyError::Store { source, .. } if source.is_transient())
    }
}

fn describe(tried: &[Tried]) -> String {
    tried
        .iter()
        .map(|t| format!("{}: {}", t.signature, t.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A policy applied to images.
#[derive(Clone, Debug)]
pub struct Verifier {
    policy: Policy,
}

impl Verifier {
    /// Apply `policy`.
    pub fn new(policy: Policy) -> Verifier {
        Verifier { policy }
    }

    /// Decide about `subject` as `source` has it. Costs, per digest looked at, the `.sig` manifest and one
    /// payload blob per signature, and beside them the referrers listing with one manifest and one bundle
    /// per bundle referrer; a child chosen from an index is covered by a signature of the index (cosign
    /// signs what the tag names) or one of its own (`cosign sign --recursive`).
    pub async fn verify(
        &self,
        source: &dyn ReadTarget,
        subject: Subject<'_>,
    ) -> Result<Verified, VerifyError> {
        let (scope, requirements) = self.policy.requirements(subject.name);
        let mut signatures = Vec::new();
        for requirement in requirements {
            match requirement {
                Requirement::InsecureAcceptAnything => {}
                Requirement::Reject => {
                    return Err(VerifyError::Rejected {
                        image: subject.name.to_string(),
                        scope,
                    });
                }
                Requirement::SigstoreSigned {
                    keys,
                    keyless,
                    identity,
                } => {
                    let trust = Trust {
                        keys,
                        keyless: keyless.as_ref(),
                    };
                    signatures.push(signed(source, subject, trust, identity).await?);
                }
            }
        }
        Ok(Verified {
            image: subject.name.to_string(),
            scope,
            signatures,
        })
    }
}

async fn signed(
    source: &dyn ReadTarget,
    subject: Subject<'_>,
    trust: Trust<'_>,
    identity: &SignedIdentity,
) -> Result<Signature, VerifyError> {
    let mut digests = vec![subject.resolved];
    if subject.selected != subject.resolved {
        digests.push(subject.selected);
    }
    let store_error = |source_err| VerifyError::Store {
        image: subject.name.to_string(),
        store: source.describe(),
        source: source_err,
    };
    let mut tried = Vec::new();
    for digest in digests {
        // Both places are looked up at once: cosign's tag (one manifest and one payload; key or cosign 2
        // keyless signatures) and Sigstore bundles stored as OCI 1.1 referrers (one listing, then one
        // manifest and one bundle each). In sequence a bundle would wait for the tag's miss; side by side
        // either kind costs the round trips of its own chain. The tag's signatures are judged first.
        let sig = cosign::signatures(source, subject.key, digest);
        let bundles = cosign::bundles(source, digest);
        tokio::pin!(sig, bundles);
        let mut listed = None;
        let found = loop {
            tokio::select! {
                found = &mut sig => break found,
                b = &mut bundles, if listed.is_none() => listed = Some(b),
            }
        };
        // A `.sig` signature that holds returns here, dropping a listing still under way.
        match found.map_err(store_error)? {
            None => tried.push(Tried {
                signature: cosign::signature_tag(digest),
                why: "not found".into(),
            }),
            Some(candidates) => {
                for c in candidates {
                    match check(&c, digest, subject.name, trust, identity) {
                        Ok(s) => return Ok(s),
                        Err(why) => tried.push(Tried {
                            signature: c.label,
                            why,
                        }),
                    }
                }
            }
        }
        // A failed referrers lookup matters only when no `.sig` signature held.
        let bundles = match listed {
            Some(b) => b,
            None => bundles.await,
        }
        .map_err(store_error)?;
        if bundles.is_empty() {
            tried.push(Tried {
                signature: format!("{} referrers of {digest}", bundle::MEDIA_TYPE_V03),
                why: "none".into(),
            });
        }
        for c in bundles {
            let checked = c.found.as_ref().map_err(Clone::clone).and_then(|b| {
                let signer = bundle::verify(b, Artifact::image(digest), trust)?;
                identity_matches(identity, subject.name, "")
                    .map_err(|_| "a bundle names no docker-reference for the policy's signedIdentity to check".to_string())?;
                Ok(signer)
            });
            match checked {
                Ok(signer) => {
                    return Ok(Signature {
                        digest: digest.to_string(),
                        signature: c.label,
                        key: signer.signer,
                        signed_as: String::new(),
                    });
                }
                Err(why) => tried.push(Tried {
                    signature: c.label,
                    why,
                }),
            }
        }
    }
    Err(VerifyError::Unsigned {
        image: subject.name.to_string(),
        digest: subject.selected.clone(),
        keys: describe_trust(trust),
        tried,
    })
}

/// `KEY or a certificate for … from issuer …`.
fn describe_trust(trust: Trust<'_>) -> String {
    trust
        .keys
        .iter()
        .map(PublicKey::describe)
        .chain(trust.keyless.map(Keyless::describe))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Whether one `.sig` signature is a trusted key's, or keyless as `trust` wants (cosign 2's keyless
/// layout: the Fulcio certificate and the Rekor bundle in the layer's annotations), over a payload naming
/// `digest` (and the identity wanted).
fn check(
    c: &cosign::Candidate,
    digest: &Digest,
    name: &str,
    trust: Trust<'_>,
    identity: &SignedIdentity,
) -> Result<Signature, String> {
    let (payload, sig) = c.found.as_ref().map_err(Clone::clone)?;
    let signer = match (
        trust.keys.iter().find(|k| k.verify(payload, sig)),
        &c.keyless,
        trust.keyless,
    ) {
        (Some(key), _, _) => key.describe(),
        (None, Some((pem, rekor)), Some(keyless)) => {
            keyless_sig(payload, sig, pem, rekor.as_deref(), keyless)?
        }
        (None, Some(_), None) => return Err(
            "signed keyless (a Fulcio certificate), and no trusted root and identity were given"
                .into(),
        ),
        (None, None, _) if trust.keys.is_empty() => {
            return Err("signed with a key, and no key is trusted".into());
        }
        (None, None, _) => return Err("not a signature by a trusted key".into()),
    };
    let claims = payload::parse(payload)?;
    if claims.digest != digest.to_string() {
        return Err(format!(
            "signed by {signer} but its payload names {}, not {digest}",
            claims.digest
        ));
    }
    identity_matches(identity, name, &claims.reference)?;
    Ok(Signature {
        digest: digest.to_string(),
        signature: c.label.clone(),
        key: signer,
        signed_as: claims.reference,
    })
}

/// A keyless `.sig` layer: the certificate's key made the signature, and the Rekor bundle vouches for it
/// (a hashedrekord entry of the payload's SHA-256).
fn keyless_sig(
    payload: &[u8],
    sig: &[u8],
    pem: &str,
    rekor: Option<&str>,
    keyless: &Keyless,
) -> Result<String, String> {
    let der = crate::x509::pem_certificates(pem)
        .into_iter()
        .next()
        .ok_or("the certificate annotation holds no PEM certificate")?;
    let cert = crate::x509::Certificate::from_der(&der)?;
    if !cert.key().verify(payload, sig) {
        return Err("the signature is not the certificate key's".into());
    }
    let rekor =
        rekor.ok_or("keyless, with no Rekor bundle annotation (an offline check needs one)")?;
    let entry = crate::tlog::Entry::from_cosign_annotation(rekor)?;
    let hash = crate::tlog::sha256(payload);
    let expected = crate::tlog::Expected {
        signature: sig,
        signer_der: &der,
        hash: &hash,
        dsse: false,
    };
    Ok(bundle::keyless_signer(&cert, &[entry], &expected, keyless)?.signer)
}
