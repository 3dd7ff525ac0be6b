//! Sigstore bundles (`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2|0.3`,
//! `application/vnd.dev.sigstore.bundle.v0.3+json`), verified offline: signed with a key the caller trusts,
//! or keyless — a Fulcio certificate chained to a CA of a trusted root, valid when Rekor integrated the
//! entry (the time its signed entry timestamp vouches for), with a valid SCT, naming the wanted identity
//! and OIDC issuer — over a message (a file) or a DSSE envelope (an in-toto statement naming an image).

use ferry_oci::Digest;
use ferry_oci::base64::decode;
use ferry_oci::digest::to_hex;
use serde::Deserialize;

use crate::key::PublicKey;
use crate::tlog::{self, Expected};
use crate::trusted_root::{Chain, RawBytes, TrustedRoot};
use crate::x509::Certificate;

/// The media type prefix every bundle version shares.
pub const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The v0.3 media type, also the `artifactType` of a bundle stored as an OCI referrer.
pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// A bundle is a few kilobytes; anything larger is not read.
pub const MAX_BUNDLE_BYTES: u64 = 1024 * 1024;
/// The in-toto statement payload type.
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// What an identity or issuer must be.
#[derive(Clone, Debug)]
pub enum Match {
    /// Exactly this.
    Exact(String),
    /// Matched by this regular expression (RE2 syntax, unanchored as Go's `MatchString`, which cosign
    /// uses: anchor it with `^…$`).
    Regexp(regex_lite::Regex),
}

impl Match {
    /// A regular expression; `Err` says why it is not one.
    pub fn regexp(pattern: &str) -> Result<Match, String> {
        regex_lite::Regex::new(pattern)
            .map(Match::Regexp)
            .map_err(|e| format!("{pattern:?} is not a regular expression: {e}"))
    }

    /// One of an exact value and a regexp, as flags give them (`flag` and `flag-regexp`).
    pub fn from_flags(
        exact: Option<&str>,
        regexp: Option<&str>,
        flag: &str,
    ) -> Result<Match, MatchError> {
        match (exact, regexp) {
            (Some(e), None) => Ok(Match::Exact(e.to_string())),
            (None, Some(r)) => Match::regexp(r).map_err(|why| MatchError {
                flag: format!("{flag}-regexp"),
                why,
            }),
            _ => Err(MatchError {
                flag: flag.to_string(),
                why: format!("keyless verification needs {flag} or {flag}-regexp"),
            }),
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Match::Exact(e) => e == s,
            Match::Regexp(r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Exact(e) => write!(f, "{e:?}"),
            Match::Regexp(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// An identity or issuer that cannot be matched.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {why}")]
pub struct MatchError {
    /// The flag or field.
    pub flag: String,
    /// Why.
    pub why: String,
}

/// Keyless trust: a trusted root, and who the certificate must name.
#[derive(Clone, Debug)]
pub struct Keyless {
    /// The CAs and logs.
    pub root: std::sync::Arc<TrustedRoot>,
    /// The certificate's subject alternative name (e-mail, URI, user name).
    pub identity: Match,
    /// The OIDC issuer Fulcio recorded.
    pub issuer: Match,
}

impl Keyless {
    /// `identity … issued by … (trusted root …)`.
    pub fn describe(&self) -> String {
        format!(
            "a certificate for {} from issuer {} (trusted root {})",
            self.identity, self.issuer, self.root.origin
        )
    }
}

/// Whom a bundle may be signed by.
#[derive(Clone, Copy, Debug)]
pub struct Trust<'a> {
    /// Any of these keys.
    pub keys: &'a [PublicKey],
    /// Keyless, if wanted.
    pub keyless: Option<&'a Keyless>,
}

/// What a bundle signs.
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    /// A file's bytes (a message signature over them, or a statement naming their SHA-256).
    Bytes(&'a [u8]),
    /// Content by digest (a statement naming it): an image, or a file's `sha512`.
    Digest {
        /// `sha256`, `sha512`, … as in-toto names them.
        algorithm: &'a str,
        /// Lowercase hex.
        hex: &'a str,
    },
}

impl<'a> Artifact<'a> {
    /// An image (its manifest or index digest).
    pub fn image(digest: &'a Digest) -> Artifact<'a> {
        Artifact::Digest {
            algorithm: digest.algorithm(),
            hex: digest.hex(),
        }
    }
}

/// Who signed a bundle that held.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Signer {
    /// The key, or the certificate's identity and issuer.
    pub signer: String,
    /// The certificate's identity (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The OIDC issuer (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The Rekor entry that vouched for it (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_index: Option<i64>,
    /// When Rekor integrated it, RFC 3339 (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrated_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    public_key: Option<serde_json::Value>,
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    tlog_entries: Vec<tlog::Entry>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<StatementSubject>,
    #[serde(rename = "predicateType", default)]
    predicate_type: String,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// A v0.3 bundle signing `blob` with `key`, as `cosign sign-blob --new-bundle-format --tlog-upload=false`
/// writes it (Zarf's `package sign` with a key): a message signature over the SHA-256 of the file, the key
/// named by its hint (base64 SHA-256 of its DER), no transparency-log entry.
pub fn sign_message(key: &crate::sign::PrivateKey, blob: &[u8]) -> Vec<u8> {
    use ferry_oci::base64::encode;
    let value = serde_json::json!({
        "mediaType": MEDIA_TYPE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": encode(&tlog::sha256(key.spki()))},
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": encode(&tlog::sha256(blob))},
            "signature": encode(&key.sign(blob)),
        },
    });
    serde_json::to_vec(&value).expect("a bundle always serializes")
}

/// DSSE's pre-authentication encoding: what an envelope's signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Verify `bundle` over `artifact` with `trust`.
pub fn verify(bundle: &[u8], artifact: Artifact<'_>, trust: Trust<'_>) -> Result<Signer, String> {
    if bundle.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(format!("a bundle of {} bytes is too large", bundle.len()));
    }
    let b: Bundle =
        serde_json::from_slice(bundle).map_err(|e| format!("not a Sigstore bundle ({e})"))?;
    if !b.media_type.starts_with(MEDIA_TYPE_PREFIX) {
        return Err(format!(
            "not a Sigstore bundle (media type {:?})",
            b.media_type
        ));
    }
    // What was signed, the signature, and the hash the log entry must record.
    let (message, signature, hash, dsse) = match (&b.message_signature, &b.dsse_envelope) {
        (Some(ms), None) => {
            let Artifact::Bytes(blob) = artifact else {
                return Err(
                    "a message signature, not a statement naming an image: it does not sign one"
                        .into(),
                );
            };
            let claimed = decode(&ms.message_digest.digest)
                .ok_or("the bundle's message digest is not base64")?;
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
            (blob.to_vec(), sig, tlog::sha256(blob), false)
        }
        (None, Some(env)) => {
            let payload = decode(&env.payload).ok_or("the envelope's payload is not base64")?;
            check_statement(&env.payload_type, &payload, artifact)?;
            let [one] = env.signatures.as_slice() else {
                return Err(format!(
                    "an envelope with {} signatures (one is expected)",
                    env.signatures.len()
                ));
            };
            let sig = decode(&one.sig).ok_or("the envelope's signature is not base64")?;
            let hash = tlog::sha256(&payload);
            (pae(&env.payload_type, &payload), sig, hash, true)
        }
        _ => return Err("the bundle has neither one messageSignature nor one dsseEnvelope".into()),
    };
    let m = &b.verification_material;
    let leaf = match (&m.certificate, &m.x509_certificate_chain) {
        (Some(c), _) => Some(&c.raw_bytes),
        (None, Some(chain)) => chain.certificates.first().map(|c| &c.raw_bytes),
        (None, None) => None,
    };
    match leaf {
        None if m.public_key.is_some() => {
            if trust.keys.is_empty() {
                return Err("signed with a key, and no key is trusted".into());
            }
            let key = crate::blob::signed_by(trust.keys, &message, &signature)?;
            Ok(Signer {
                signer: key.describe(),
                identity: None,
                issuer: None,
                log_index: None,
                integrated_time: None,
            })
        }
        None => Err("the bundle has no public key hint and no certificate".into()),
        Some(leaf) => {
            let keyless = trust.keyless.ok_or(
                "signed keyless (a Fulcio certificate), and no trusted root and identity were given",
            )?;
            let der = decode(leaf).ok_or("the certificate is not base64")?;
            let cert = Certificate::from_der(&der)?;
            if !cert.key().verify(&message, &signature) {
                return Err("the signature is not the certificate key's".into());
            }
            let expected = Expected {
                signature: &signature,
                signer_der: &der,
                hash: &hash,
                dsse,
            };
            keyless_signer(&cert, &m.tlog_entries, &expected, keyless)
        }
    }
}

/// The statement must be an in-toto statement naming the artifact.
fn check_statement(
    payload_type: &str,
    payload: &[u8],
    artifact: Artifact<'_>,
) -> Result<(), String> {
    if payload_type != IN_TOTO {
        return Err(format!(
            "an envelope of {payload_type:?}, not an in-toto statement"
        ));
    }
    let st: Statement = serde_json::from_slice(payload)
        .map_err(|e| format!("the envelope's payload is not an in-toto statement ({e})"))?;
    if !st.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!("a statement of type {:?}", st.kind));
    }
    let wanted = match artifact {
        Artifact::Digest { algorithm, hex } => (algorithm.to_string(), hex.to_string()),
        Artifact::Bytes(b) => ("sha256".to_string(), to_hex(&tlog::sha256(b))),
    };
    let names = |s: &StatementSubject| s.digest.get(&wanted.0) == Some(&wanted.1);
    if !st.subject.iter().any(names) {
        return Err(format!(
            "its statement ({}) names other subjects, not {}:{}",
            st.predicate_type, wanted.0, wanted.1
        ));
    }
    Ok(())
}

/// The certificate's chain, time, SCT and identity, and a log entry vouching for all of it.
pub(crate) fn keyless_signer(
    cert: &Certificate,
    entries: &[tlog::Entry],
    expected: &Expected<'_>,
    keyless: &Keyless,
) -> Result<Signer, String> {
    let root = &keyless.root;
    // The time comes from a log entry whose signed timestamp holds: nothing else is trusted offline.
    let mut why = Vec::new();
    let mut logged = None;
    for e in entries {
        match e.verify(root, expected) {
            Ok(l) => {
                logged = Some(l);
                break;
            }
            Err(e) => why.push(e),
        }
    }
    let Some(logged) = logged else {
        return Err(if why.is_empty() {
            "no transparency-log entry (an offline keyless check needs Rekor's signed timestamp)"
                .into()
        } else {
            format!("no transparency-log entry holds: {}", why.join("; "))
        });
    };
    let t = logged.integrated_time;
    cert.valid_at(t)
        .map_err(|e| format!("the signing certificate is {e} (Rekor's integration time)"))?;
    cert.check_code_signing()
        .map_err(|e| format!("the signing certificate: {e}"))?;
    let issuer_cert = chain_to_root(cert, root, t)?;
    if !root.ctlogs.is_empty() {
        crate::sct::verify(cert, issuer_cert, root)?;
    }
    let issuer = cert.oidc_issuer().unwrap_or_default().to_string();
    if !keyless.issuer.matches(&issuer) {
        return Err(format!(
            "the certificate's OIDC issuer is {issuer:?}, not {}",
            keyless.issuer
        ));
    }
    let Some(identity) = cert.sans().iter().find(|s| keyless.identity.matches(s)) else {
        return Err(format!(
            "the certificate names {:?}, not {}",
            cert.sans(),
            keyless.identity
        ));
    };
    Ok(Signer {
        signer: format!("{identity} (issuer {issuer})"),
        identity: Some(identity.clone()),
        issuer: Some(issuer),
        log_index: Some(logged.log_index),
        integrated_time: Some(ferry_oci::date::rfc3339(t)),
    })
}

/// The CA certificate that issued `cert`, from a chain of `root` in use at `t`, every link checked.
fn chain_to_root<'r>(
    cert: &Certificate,
    root: &'r TrustedRoot,
    t: i64,
) -> Result<&'r Certificate, String> {
    let mut why = Vec::new();
    for ca in &root.certificate_authorities {
        if !ca.valid.contains(t) {
            why.push(format!("CA {} was not in use then", ca.name));
            continue;
        }
        let links = std::iter::once(cert)
            .chain(ca.chain.iter())
            .zip(ca.chain.iter());
        let checked = links.enumerate().try_for_each(|(i, (child, parent))| {
            child
                .signed_by(parent)
                .and_then(|()| parent.check_ca())
                .and_then(|()| parent.valid_at(t))
                .map_err(|e| format!("CA {} certificate {i}: {e}", ca.name))
        });
        match checked {
            Ok(()) => return Ok(&ca.chain[0]),
            Err(e) => why.push(e),
        }
    }
    Err(if why.is_empty() {
        format!(
            "the trusted root {} lists no certificate authority",
            root.origin
        )
    } else {
        format!(
            "the certificate does not chain to a CA of {}: {}",
            root.origin,
            why.join("; ")
        )
    })
}
