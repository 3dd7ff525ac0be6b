//! Rekor entries carried in a bundle, checked offline: the signed entry timestamp (the log's promise to
//! include the entry, which is also what makes `integratedTime` trustworthy), the Merkle inclusion proof
//! and the signed checkpoint it leads to, and that the entry's body records this signature.

use ferry_oci::base64::{decode, encode};
use ferry_oci::digest::to_hex;
use ring::digest::{SHA256, digest};
use serde::Deserialize;
use serde_json::Value;

use crate::key::Hash;
use crate::trusted_root::{LogKey, TrustedRoot};

/// A proof longer than this is not one (a tree of 2^64 leaves needs 64 hashes).
const MAX_PROOF_HASHES: usize = 64;

/// A transparency-log entry as a bundle carries it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    log_id: LogId,
    kind_version: KindVersion,
    #[serde(default, deserialize_with = "int64")]
    integrated_time: i64,
    inclusion_promise: Option<Promise>,
    inclusion_proof: Option<Proof>,
    canonicalized_body: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Clone, Debug, Deserialize)]
struct KindVersion {
    kind: String,
    version: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Proof {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    root_hash: String,
    #[serde(deserialize_with = "int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<Checkpoint>,
}

#[derive(Clone, Debug, Deserialize)]
struct Checkpoint {
    envelope: String,
}

/// protobuf JSON writes int64 as a string; accept a number too.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("not an int64")),
        _ => Err(serde::de::Error::custom("not an int64")),
    }
}

/// What a verified entry tells.
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    /// Its index in the log.
    pub log_index: i64,
    /// When the log integrated it (Unix seconds), as its signed promise says.
    pub integrated_time: i64,
}

/// What the body of an entry must record: the signature and who made it, and what it signs.
pub struct Expected<'a> {
    /// The raw signature.
    pub signature: &'a [u8],
    /// The DER of the signing certificate or public key.
    pub signer_der: &'a [u8],
    /// A message signature: the SHA-256 of the artifact. A DSSE envelope: the SHA-256 of its payload.
    pub hash: &'a [u8],
    /// Whether the signature is over a DSSE envelope.
    pub dsse: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CosignRekorBundle {
    signed_entry_timestamp: String,
    payload: CosignRekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CosignRekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

impl Entry {
    /// The Rekor bundle cosign keeps in a `.sig` layer's `dev.sigstore.cosign/bundle` annotation (the
    /// signed entry timestamp, the body, time, index and hex log ID) as an entry.
    pub fn from_cosign_annotation(text: &str) -> Result<Entry, String> {
        let b: CosignRekorBundle = serde_json::from_str(text).map_err(|e| {
            format!("the dev.sigstore.cosign/bundle annotation is not a Rekor bundle ({e})")
        })?;
        let body = decode(&b.payload.body).ok_or("the Rekor bundle's body is not base64")?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the Rekor body is not JSON ({e})"))?;
        let log_id = ferry_oci::digest::from_hex(&b.payload.log_id)
            .ok_or("the Rekor bundle's logID is not hex")?;
        Ok(Entry {
            log_index: b.payload.log_index,
            log_id: LogId {
                key_id: encode(&log_id),
            },
            kind_version: KindVersion {
                kind: v["kind"].as_str().unwrap_or_default().to_string(),
                version: v["apiVersion"].as_str().unwrap_or_default().to_string(),
            },
            integrated_time: b.payload.integrated_time,
            inclusion_promise: Some(Promise {
                signed_entry_timestamp: b.signed_entry_timestamp,
            }),
            inclusion_proof: None,
            canonicalized_body: b.payload.body,
        })
    }

    /// Check this entry with `root`'s Rekor keys: a valid signed entry timestamp is required (it is what
    /// makes the integration time trustworthy offline); an inclusion proof, when present, must lead to the
    /// root hash of a checkpoint the same log signed; the body must record `expected`.
    pub fn verify(&self, root: &TrustedRoot, expected: &Expected<'_>) -> Result<Logged, String> {
        let log_id = decode(&self.log_id.key_id).ok_or("its logId is not base64")?;
        let log = root.tlogs.iter().find(|l| l.id == log_id).ok_or_else(|| {
            format!(
                "log {} is not one the trusted root {} lists",
                to_hex(&log_id),
                root.origin
            )
        })?;
        let body = decode(&self.canonicalized_body).ok_or("its body is not base64")?;
        let Some(promise) = &self.inclusion_promise else {
            return Err("no signed entry timestamp (inclusion promise); an offline check needs one to trust the time".into());
        };
        let set = decode(&promise.signed_entry_timestamp).ok_or("its SET is not base64")?;
        let signed = serde_json::json!({
            "body": encode(&body),
            "integratedTime": self.integrated_time,
            "logID": to_hex(&log_id),
            "logIndex": self.log_index,
        })
        .to_string();
        if !log.key.verify_with(Hash::Sha256, signed.as_bytes(), &set) {
            return Err(format!("the signed entry timestamp is not {}'s", log.url));
        }
        if !log.valid.contains(self.integrated_time) {
            return Err(format!(
                "{}'s key was not in use at {}",
                log.url,
                ferry_oci::date::rfc3339(self.integrated_time)
            ));
        }
        if let Some(proof) = &self.inclusion_proof {
            check_inclusion(proof, &body, log)?;
        }
        check_body(&body, &self.kind_version, expected)?;
        Ok(Logged {
            log_index: self.log_index,
            integrated_time: self.integrated_time,
        })
    }
}

fn check_inclusion(proof: &Proof, body: &[u8], log: &LogKey) -> Result<(), String> {
    if proof.hashes.len() > MAX_PROOF_HASHES {
        return Err("an inclusion proof longer than any tree needs".into());
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| decode(h).filter(|h| h.len() == 32))
        .collect::<Option<Vec<_>>>()
        .ok_or("an inclusion proof hash is not 32 base64 bytes")?;
    let leaf = hash_children(0x00, &[body]);
    let root = root_from_inclusion(proof.log_index, proof.tree_size, leaf, &hashes)
        .ok_or("the inclusion proof does not fit its tree size")?;
    if encode(&root) != proof.root_hash && decode(&proof.root_hash).as_deref() != Some(&root[..]) {
        return Err("the inclusion proof does not lead to its root hash".into());
    }
    let Some(checkpoint) = &proof.checkpoint else {
        return Ok(());
    };
    let (size, root_hash) = checkpoint_signed_by(&checkpoint.envelope, log)?;
    if size != proof.tree_size || root_hash != root {
        return Err("the checkpoint names another tree than the inclusion proof".into());
    }
    Ok(())
}

fn hash_children(prefix: u8, parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&SHA256);
    ctx.update(&[prefix]);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().try_into().expect("32 bytes")
}

/// RFC 9162 §2.1.3.2: the root an audit path leads to.
fn root_from_inclusion(
    index: i64,
    size: i64,
    leaf: [u8; 32],
    proof: &[Vec<u8>],
) -> Option<[u8; 32]> {
    if index < 0 || index >= size {
        return None;
    }
    let (mut f, mut s) = (index as u64, (size - 1) as u64);
    let mut r = leaf;
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = hash_children(0x01, &[p, &r]);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = hash_children(0x01, &[&r, p]);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// A signed note (`origin\nsize\nroot\n[…]\n\n— name base64(hint‖sig)\n`) checked with `log`'s key: the
/// tree size and root hash it vouches for.
fn checkpoint_signed_by(envelope: &str, log: &LogKey) -> Result<(i64, Vec<u8>), String> {
    let split = envelope
        .find("\n\n")
        .ok_or("the checkpoint is not a signed note")?;
    let (text, sigs) = (&envelope[..split + 1], &envelope[split + 2..]);
    let mut lines = text.lines();
    let (_origin, size, root) = (lines.next(), lines.next(), lines.next());
    let size: i64 = size
        .and_then(|s| s.parse().ok())
        .ok_or("the checkpoint has no tree size")?;
    let root = root
        .and_then(decode)
        .ok_or("the checkpoint has no root hash")?;
    let hint = &log.id[..4.min(log.id.len())];
    let signed = sigs.lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return false;
        };
        let Some(sig) = rest.rsplit(' ').next().and_then(decode) else {
            return false;
        };
        sig.len() > 4
            && &sig[..4] == hint
            && log
                .key
                .verify_with(Hash::Sha256, text.as_bytes(), &sig[4..])
    });
    if !signed {
        return Err(format!("the checkpoint is not signed by {}", log.url));
    }
    Ok((size, root))
}

/// The body must be the kind the entry says, and record this signature, signer and content.
fn check_body(body: &[u8], kv: &KindVersion, expected: &Expected<'_>) -> Result<(), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("its body is not JSON ({e})"))?;
    let kind = v["kind"].as_str().unwrap_or_default();
    let version = v["apiVersion"].as_str().unwrap_or_default();
    if kind != kv.kind || version != kv.version {
        return Err(format!(
            "its body is a {kind} {version} entry, the bundle says {} {}",
            kv.kind, kv.version
        ));
    }
    let spec = &v["spec"];
    let sig_b64 = encode(expected.signature);
    let hash_hex = to_hex(expected.hash);
    let same_signer = |pem_b64: &Value| {
        pem_b64
            .as_str()
            .and_then(decode)
            .map(|pem| pem_der(&String::from_utf8_lossy(&pem)))
            .is_some_and(|der| der.as_deref() == Some(expected.signer_der))
    };
    let (hash, records) = match (kind, version, expected.dsse) {
        ("hashedrekord", "0.0.1", false) => {
            let s = &spec["signature"];
            (
                &spec["data"]["hash"],
                s["content"].as_str() == Some(&sig_b64) && same_signer(&s["publicKey"]["content"]),
            )
        }
        ("dsse", "0.0.1", true) => (
            &spec["payloadHash"],
            spec["signatures"].as_array().is_some_and(|sigs| {
                sigs.iter().any(|s| {
                    s["signature"].as_str() == Some(&sig_b64) && same_signer(&s["verifier"])
                })
            }),
        ),
        ("intoto", "0.0.2", true) => (
            &spec["content"]["payloadHash"],
            spec["content"]["envelope"]["signatures"]
                .as_array()
                .is_some_and(|sigs| {
                    sigs.iter().any(|s| {
                        let sig = s["sig"].as_str().and_then(decode);
                        sig.as_deref() == Some(sig_b64.as_bytes()) && same_signer(&s["publicKey"])
                    })
                }),
        ),
        _ => {
            return Err(format!(
                "a {kind} {version} entry does not record a {}",
                if expected.dsse {
                    "DSSE envelope"
                } else {
                    "message signature"
                }
            ));
        }
    };
    if hash["algorithm"].as_str() != Some("sha256") || hash["value"].as_str() != Some(&hash_hex) {
        return Err(format!(
            "its body records a {} of {}, not sha256 {hash_hex}",
            hash["algorithm"], hash["value"]
        ));
    }
    if !records {
        return Err("its body records another signature or signer".into());
    }
    Ok(())
}

/// The DER of the first PEM block (a certificate or a public key) in `text`.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let body = &text[start..];
    let body = &body[body.find('\n')? + 1..];
    let stop = body.find("-----END ")?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    decode(&b64)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inclusion of every leaf of every tree up to 9 leaves, against roots computed from the definition.
    #[test]
    fn inclusion_proofs_match_the_merkle_tree_definition() {
        fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
            if leaves.len() == 1 {
                return leaves[0];
            }
            let k = leaves.len().next_power_of_two() / 2;
            hash_children(0x01, &[&mth(&leaves[..k]), &mth(&leaves[k..])])
        }
        fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
            if leaves.len() == 1 {
                return Vec::new();
            }
            let k = leaves.len().next_power_of_two() / 2;
            if m < k {
                let mut p = path(m, &leaves[..k]);
                p.push(mth(&leaves[k..]).to_vec());
                p
            } else {
                let mut p = path(m - k, &leaves[k..]);
                p.push(mth(&leaves[..k]).to_vec());
                p
            }
        }
        for n in 1..=9usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| hash_children(0, &[&[i as u8]])).collect();
            let root = mth(&leaves);
            for m in 0..n {
                let p = path(m, &leaves);
                assert_eq!(
                    root_from_inclusion(m as i64, n as i64, leaves[m], &p),
                    Some(root),
                    "leaf {m} of {n}"
                );
                if n > 1 {
                    assert_ne!(
                        root_from_inclusion(m as i64, n as i64, leaves[(m + 1) % n], &p),
                        Some(root)
                    );
                }
            }
        }
        assert_eq!(root_from_inclusion(3, 3, [0; 32], &[]), None);
    }
}
