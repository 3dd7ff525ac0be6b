//! X.509 certificates, as far as checking a Fulcio chain needs: the signed part, the issuer and subject
//! names (compared as bytes), validity, the key, and the extensions Fulcio and the CA/B rules use.
//! Everything else in a certificate is skipped; an unknown extension marked critical is refused.

use crate::der::{
    BIT_STRING, BOOLEAN, CONTEXT_0, CONTEXT_3, Der, Element, INTEGER, OCTET_STRING, OID, SEQUENCE,
    UTF8_STRING, encode, time,
};
use crate::key::{Hash, PublicKey};

const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// id-kp-codeSigning.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// The embedded SCT list (RFC 6962).
pub const SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
/// Fulcio's OIDC issuer, v1 (1.3.6.1.4.1.57264.1.1): the raw string as the extension's value.
const FULCIO_ISSUER_V1: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x01];
/// Fulcio's OIDC issuer, v2 (1.3.6.1.4.1.57264.1.8): a DER UTF8String.
const FULCIO_ISSUER_V2: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08];
/// Fulcio's otherName SAN for user names (1.3.6.1.4.1.57264.1.7).
const FULCIO_OTHERNAME: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x07];

const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// keyUsage bits (bit 0 is the most significant bit of the first byte).
const DIGITAL_SIGNATURE: u16 = 1 << 15;
const KEY_CERT_SIGN: u16 = 1 << 10;

/// A certificate is a few kilobytes; anything past this is not one.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// A parsed certificate. Owns its DER; the parts are ranges read again on demand.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature_alg: Vec<u8>,
    signature: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    spki: Vec<u8>,
    key: PublicKey,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    ca: bool,
    key_usage: Option<u16>,
    ext_key_usage: Option<Vec<Vec<u8>>>,
    sans: Vec<String>,
    issuer_v1: Option<String>,
    issuer_v2: Option<String>,
    sct_list: Option<Vec<u8>>,
    unknown_critical: Option<String>,
}

fn offset(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

impl Certificate {
    /// Parse DER; `Err` says what is wrong.
    pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(format!("a certificate of {} bytes is too large", der.len()));
        }
        let bad = |what: &str| format!("not an X.509 certificate ({what})");
        let mut outer = Der::new(der);
        let cert = outer
            .read(SEQUENCE)
            .filter(|_| outer.is_empty())
            .ok_or_else(|| bad("outer sequence"))?;
        let mut cert = Der::new(cert);
        let tbs = cert.element(SEQUENCE).ok_or_else(|| bad("to-be-signed"))?;
        let mut alg = Der::new(cert.read(SEQUENCE).ok_or_else(|| bad("algorithm"))?);
        let signature_alg = alg.read(OID).ok_or_else(|| bad("algorithm OID"))?.to_vec();
        let signature = match cert.read(BIT_STRING).map(<[u8]>::split_first) {
            Some(Some((0, sig))) => sig.to_vec(),
            _ => return Err(bad("signature bits")),
        };
        let tbs_range = offset(der, tbs.raw)..offset(der, tbs.raw) + tbs.raw.len();
        let mut t = Der::new(tbs.contents);
        if let Some(v) = t.optional(CONTEXT_0) {
            // v3 is INTEGER 2; v1/v2 have no extensions and are read the same way.
            Der::new(v).read(INTEGER).ok_or_else(|| bad("version"))?;
        }
        t.read(INTEGER).ok_or_else(|| bad("serial"))?;
        t.read(SEQUENCE).ok_or_else(|| bad("signature algorithm"))?;
        let issuer = t
            .element(SEQUENCE)
            .ok_or_else(|| bad("issuer"))?
            .raw
            .to_vec();
        let mut validity = Der::new(t.read(SEQUENCE).ok_or_else(|| bad("validity"))?);
        let mut when = || validity.any().as_ref().and_then(time);
        let (not_before, not_after) = match (when(), when()) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(bad("validity times")),
        };
        let subject = t
            .element(SEQUENCE)
            .ok_or_else(|| bad("subject"))?
            .raw
            .to_vec();
        let spki = t.element(SEQUENCE).ok_or_else(|| bad("public key"))?.raw;
        let key = PublicKey::from_spki(spki, "certificate").map_err(|e| e.to_string())?;
        let mut c = Certificate {
            der: der.to_vec(),
            tbs: tbs_range,
            signature_alg,
            signature,
            issuer,
            subject,
            spki: spki.to_vec(),
            key,
            not_before,
            not_after,
            ca: false,
            key_usage: None,
            ext_key_usage: None,
            sans: Vec::new(),
            issuer_v1: None,
            issuer_v2: None,
            sct_list: None,
            unknown_critical: None,
        };
        // Skip issuerUniqueID [1] and subjectUniqueID [2]; extensions are [3].
        while let Some(e) = t.any() {
            if e.tag == CONTEXT_3 {
                let exts = Der::new(e.contents)
                    .read(SEQUENCE)
                    .ok_or_else(|| bad("extensions"))?;
                c.read_extensions(exts).map_err(bad)?;
            }
        }
        Ok(c)
    }

    fn read_extensions(&mut self, exts: &[u8]) -> Result<(), &'static str> {
        let mut exts = Der::new(exts);
        while !exts.is_empty() {
            let mut ext = Der::new(exts.read(SEQUENCE).ok_or("extension")?);
            let oid = ext.read(OID).ok_or("extension OID")?;
            let critical = match ext.optional(BOOLEAN) {
                Some([b]) => *b != 0,
                Some(_) => return Err("extension criticality"),
                None => false,
            };
            let value = ext.read(OCTET_STRING).ok_or("extension value")?;
            match oid {
                BASIC_CONSTRAINTS => {
                    let mut seq =
                        Der::new(Der::new(value).read(SEQUENCE).ok_or("basicConstraints")?);
                    self.ca = matches!(seq.optional(BOOLEAN), Some([b]) if *b != 0);
                }
                KEY_USAGE => {
                    let bits = Der::new(value).read(BIT_STRING).ok_or("keyUsage")?;
                    let byte = |i: usize| bits.get(i).copied().unwrap_or(0) as u16;
                    self.key_usage = Some(byte(1) << 8 | byte(2));
                }
                EXTENDED_KEY_USAGE => {
                    let mut seq = Der::new(Der::new(value).read(SEQUENCE).ok_or("extKeyUsage")?);
                    let mut usages = Vec::new();
                    while let Some(u) = seq.read(OID) {
                        usages.push(u.to_vec());
                    }
                    self.ext_key_usage = Some(usages);
                }
                SUBJECT_ALT_NAME => {
                    let mut names =
                        Der::new(Der::new(value).read(SEQUENCE).ok_or("subjectAltName")?);
                    while let Some(n) = names.any() {
                        if let Some(name) = general_name(&n) {
                            self.sans.push(name);
                        }
                    }
                }
                FULCIO_ISSUER_V1 => {
                    self.issuer_v1 = Some(String::from_utf8_lossy(value).into_owned());
                }
                FULCIO_ISSUER_V2 => {
                    let s = Der::new(value).read(UTF8_STRING).ok_or("Fulcio issuer")?;
                    self.issuer_v2 = Some(String::from_utf8_lossy(s).into_owned());
                }
                SCT_LIST => {
                    let list = Der::new(value).read(OCTET_STRING).ok_or("SCT list")?;
                    self.sct_list = Some(list.to_vec());
                }
                _ if critical && self.unknown_critical.is_none() => {
                    self.unknown_critical = Some(oid_text(oid));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate's key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The subject alternative names: e-mail addresses, URIs and Fulcio user names.
    pub fn sans(&self) -> &[String] {
        &self.sans
    }

    /// The OIDC issuer Fulcio recorded (the v2 extension, else v1).
    pub fn oidc_issuer(&self) -> Option<&str> {
        self.issuer_v2.as_deref().or(self.issuer_v1.as_deref())
    }

    /// The embedded SCT list (TLS encoding), if any.
    pub fn sct_list(&self) -> Option<&[u8]> {
        self.sct_list.as_deref()
    }

    /// Whether `issuer` signed this certificate (names chain and the signature holds).
    pub fn signed_by(&self, issuer: &Certificate) -> Result<(), String> {
        if self.issuer != issuer.subject {
            return Err("its issuer is not the CA certificate's subject".into());
        }
        let hash = match self.signature_alg.as_slice() {
            ECDSA_SHA256 | RSA_SHA256 => Hash::Sha256,
            ECDSA_SHA384 | RSA_SHA384 => Hash::Sha384,
            ECDSA_SHA512 | RSA_SHA512 | ED25519 => Hash::Sha512,
            other => {
                return Err(format!(
                    "signature algorithm {} is not supported",
                    oid_text(other)
                ));
            }
        };
        if issuer
            .key
            .verify_with(hash, &self.der[self.tbs.clone()], &self.signature)
        {
            Ok(())
        } else {
            Err("the CA's signature over it does not hold".into())
        }
    }

    /// Whether the certificate is valid at `unix`.
    pub fn valid_at(&self, unix: i64) -> Result<(), String> {
        if unix < self.not_before || unix > self.not_after {
            return Err(format!(
                "valid from {} to {}, not at {}",
                ferry_oci::date::rfc3339(self.not_before),
                ferry_oci::date::rfc3339(self.not_after),
                ferry_oci::date::rfc3339(unix)
            ));
        }
        Ok(())
    }

    /// Whether this may sign certificates.
    pub fn check_ca(&self) -> Result<(), String> {
        if !self.ca {
            return Err("not a CA certificate (basicConstraints)".into());
        }
        if self.key_usage.is_some_and(|u| u & KEY_CERT_SIGN == 0) {
            return Err("its keyUsage lacks certificate signing".into());
        }
        Ok(())
    }

    /// Whether this may sign code, as Fulcio's leaves do.
    pub fn check_code_signing(&self) -> Result<(), String> {
        if let Some(oid) = &self.unknown_critical {
            return Err(format!("an unknown critical extension {oid}"));
        }
        if self.ca {
            return Err("a CA certificate, not a signing certificate".into());
        }
        if self.key_usage.is_some_and(|u| u & DIGITAL_SIGNATURE == 0) {
            return Err("its keyUsage lacks digital signature".into());
        }
        match &self.ext_key_usage {
            Some(u) if u.iter().any(|o| o == CODE_SIGNING) => Ok(()),
            _ => Err("its extendedKeyUsage lacks code signing".into()),
        }
    }

    /// The to-be-signed part with the SCT list extension removed: what a CT log signed (RFC 6962
    /// precertificate entry).
    pub fn precertificate_tbs(&self) -> Option<Vec<u8>> {
        let tbs = &self.der[self.tbs.clone()];
        let mut fields = Der::new(Der::new(tbs).read(SEQUENCE)?);
        let mut out = Vec::new();
        while let Some(e) = fields.any() {
            if e.tag != CONTEXT_3 {
                out.extend_from_slice(e.raw);
                continue;
            }
            let mut exts = Der::new(Der::new(e.contents).read(SEQUENCE)?);
            let mut kept = Vec::new();
            while let Some(ext) = exts.element(SEQUENCE) {
                if Der::new(ext.contents).read(OID)? != SCT_LIST {
                    kept.extend_from_slice(ext.raw);
                }
            }
            out.extend(encode(CONTEXT_3, &encode(SEQUENCE, &kept)));
        }
        Some(encode(SEQUENCE, &out))
    }
}

/// A GeneralName as text, for the kinds Fulcio writes.
fn general_name(n: &Element<'_>) -> Option<String> {
    match n.tag {
        // rfc822Name [1], uniformResourceIdentifier [6]: IA5String contents.
        0x81 | 0x86 => Some(String::from_utf8_lossy(n.contents).into_owned()),
        CONTEXT_0 => {
            let mut other = Der::new(n.contents);
            if other.read(OID)? != FULCIO_OTHERNAME {
                return None;
            }
            let value = Der::new(other.read(CONTEXT_0)?).read(UTF8_STRING)?;
            Some(String::from_utf8_lossy(value).into_owned())
        }
        _ => None,
    }
}

/// Dotted text of an OID.
pub fn oid_text(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if parts.is_empty() && i < oid.len() {
                let first = (value / 40).min(2);
                parts.push(first);
                parts.push(value - first * 40);
            } else {
                parts.push(value);
            }
            value = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The DER of each `CERTIFICATE` block in PEM text.
pub fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(stop) = body.find(END) else { break };
        let b64: String = body[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(der) = ferry_oci::base64::decode(&b64) {
            out.push(der);
        }
        rest = &body[stop + END.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_print_dotted() {
        assert_eq!(oid_text(FULCIO_ISSUER_V2), "1.3.6.1.4.1.57264.1.8");
        assert_eq!(oid_text(SCT_LIST), "1.3.6.1.4.1.11129.2.4.2");
        assert_eq!(oid_text(ECDSA_SHA384), "1.2.840.10045.4.3.3");
    }
}
