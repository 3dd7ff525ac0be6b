//! Signed certificate timestamps embedded in a Fulcio certificate (RFC 6962 §3.2–3.3): proof that a
//! certificate-transparency log saw the precertificate, checked with the CT log keys of a trusted root.

use crate::key::Hash;
use crate::trusted_root::TrustedRoot;
use crate::x509::Certificate;

/// A TLS-encoding reader: big-endian integers and length-prefixed vectors, bounds checked.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, &b| acc << 8 | b as u64),
        )
    }

    fn vector(&mut self, len_bytes: usize) -> Option<&'a [u8]> {
        let n = self.uint(len_bytes)? as usize;
        self.take(n)
    }
}

/// Whether `leaf` (issued by `issuer`) carries at least one valid SCT from a CT log `root` trusts.
pub fn verify(leaf: &Certificate, issuer: &Certificate, root: &TrustedRoot) -> Result<(), String> {
    let list = leaf
        .sct_list()
        .ok_or("the certificate carries no signed certificate timestamp")?;
    let tbs = leaf
        .precertificate_tbs()
        .ok_or("the certificate's to-be-signed part cannot be re-encoded")?;
    let issuer_key_hash = crate::tlog::sha256(issuer.spki());
    let mut outer = Tls(list);
    let mut scts = Tls(outer.vector(2).ok_or("a malformed SCT list")?);
    let mut why = Vec::new();
    while !scts.0.is_empty() {
        let mut sct = Tls(scts.vector(2).ok_or("a malformed SCT")?);
        match check_one(&mut sct, &tbs, &issuer_key_hash, root) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    Err(if why.is_empty() {
        "an empty SCT list".into()
    } else {
        format!("no valid SCT: {}", why.join("; "))
    })
}

fn check_one(
    sct: &mut Tls<'_>,
    tbs: &[u8],
    issuer_key_hash: &[u8],
    root: &TrustedRoot,
) -> Result<(), String> {
    let malformed = || "a malformed SCT".to_string();
    let version = sct.uint(1).ok_or_else(malformed)?;
    if version != 0 {
        return Err(format!("SCT version {version}"));
    }
    let log_id = sct.take(32).ok_or_else(malformed)?;
    let timestamp = sct.uint(8).ok_or_else(malformed)?;
    let extensions = sct.vector(2).ok_or_else(malformed)?;
    let hash = match sct.uint(1).ok_or_else(malformed)? {
        4 => Hash::Sha256,
        5 => Hash::Sha384,
        6 => Hash::Sha512,
        other => return Err(format!("SCT hash algorithm {other}")),
    };
    sct.uint(1).ok_or_else(malformed)?; // signature algorithm: the log key says which
    let signature = sct.vector(2).ok_or_else(malformed)?;
    let log = root.ctlogs.iter().find(|l| l.id == log_id).ok_or_else(|| {
        format!(
            "an SCT from CT log {} the trusted root does not list",
            ferry_oci::digest::to_hex(log_id)
        )
    })?;
    if !log.valid.contains((timestamp / 1000) as i64) {
        return Err(format!("CT log {}'s key was not in use then", log.url));
    }
    let tbs_len = (tbs.len() as u32).to_be_bytes();
    let mut signed = Vec::with_capacity(tbs.len() + 64);
    signed.extend_from_slice(&[0, 0]); // v1, certificate_timestamp
    signed.extend_from_slice(&timestamp.to_be_bytes());
    signed.extend_from_slice(&[0, 1]); // precert_entry
    signed.extend_from_slice(issuer_key_hash);
    signed.extend_from_slice(&tbs_len[1..]);
    signed.extend_from_slice(tbs);
    signed.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    signed.extend_from_slice(extensions);
    if log.key.verify_with(hash, &signed, signature) {
        Ok(())
    } else {
        Err(format!("the SCT is not CT log {}'s signature", log.url))
    }
}
