//! Public keys as cosign writes them (PEM `PUBLIC KEY`, a SubjectPublicKeyInfo; or `RSA PUBLIC KEY`,
//! PKCS#1), and checking a signature with one the way cosign signs.

use ferry_oci::Digest;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

use crate::der::{BIT_STRING, Der, OID, SEQUENCE};

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A key file is small; anything larger is not one.
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// A small file, read whole but never past `cap` bytes (keys, trusted roots, policies).
pub(crate) fn read_capped(path: &std::path::Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)?
        .take(cap)
        .read_to_end(&mut text)?;
    Ok(text)
}

/// The kinds of key cosign signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 (cosign's default), SHA-256.
    EcdsaP256,
    /// ECDSA on P-384, SHA-384 (cosign 2.5+) or SHA-256 (earlier cosign).
    EcdsaP384,
    /// RSA, PKCS#1 v1.5 with SHA-256.
    Rsa,
    /// Ed25519 over the message itself.
    Ed25519,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        })
    }
}

/// The message digests signatures here are made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PEM block of a public key type.
    #[error("{origin}: no PEM `PUBLIC KEY` or `RSA PUBLIC KEY` block")]
    NotPem {
        /// Where the key came from.
        origin: String,
    },
    /// The PEM body is not base64.
    #[error("{origin}: the PEM body is not base64")]
    Base64 {
        /// Where the key came from.
        origin: String,
    },
    /// The DER is not a SubjectPublicKeyInfo this crate knows.
    #[error("{origin}: {why}")]
    Unsupported {
        /// Where the key came from.
        origin: String,
        /// What is wrong or unsupported.
        why: &'static str,
    },
}

/// A public key a signature can be checked with.
#[derive(Clone, Debug)]
pub struct PublicKey {
    kind: KeyKind,
    /// What ring wants: the EC point, the PKCS#1 RSAPublicKey, or the 32 Ed25519 bytes.
    raw: Vec<u8>,
    /// The SHA-256 of the DER the key was given as: a stable name for it.
    id: Digest,
    /// Where it came from (a file path), for messages.
    origin: String,
}

impl PublicKey {
    /// The first public key PEM block in `text`; `origin` names it in messages.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_KEY_BYTES)]).into_owned();
        for (label, pkcs1) in [("PUBLIC KEY", false), ("RSA PUBLIC KEY", true)] {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let Some(start) = text.find(&begin) else {
                continue;
            };
            let body = &text[start + begin.len()..];
            let Some(stop) = body.find(&end) else {
                continue;
            };
            let b64: String = body[..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let der = ferry_oci::base64::decode(&b64).ok_or_else(|| KeyError::Base64 {
                origin: origin.to_string(),
            })?;
            return if pkcs1 {
                Ok(PublicKey::rsa_pkcs1(der, origin))
            } else {
                PublicKey::from_spki(&der, origin)
            };
        }
        Err(KeyError::NotPem {
            origin: origin.to_string(),
        })
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
        let bad = |why| KeyError::Unsupported {
            origin: origin.to_string(),
            why,
        };
        let mut outer = Der::new(der);
        let spki = outer
            .read(SEQUENCE)
            .ok_or_else(|| bad("not a DER SubjectPublicKeyInfo"))?;
        let mut spki = Der::new(spki);
        let mut alg = Der::new(
            spki.read(SEQUENCE)
                .ok_or_else(|| bad("no algorithm identifier"))?,
        );
        let bits = spki
            .read(BIT_STRING)
            .ok_or_else(|| bad("no public key bit string"))?;
        let key = match bits.split_first() {
            Some((0, key)) => key.to_vec(),
            _ => return Err(bad("the public key bit string has unused bits")),
        };
        let oid = alg.read(OID).ok_or_else(|| bad("no algorithm OID"))?;
        let kind = match oid {
            EC_PUBLIC_KEY => match alg.read(OID) {
                Some(P256) if key.len() == 65 => KeyKind::EcdsaP256,
                Some(P384) if key.len() == 97 => KeyKind::EcdsaP384,
                Some(P256 | P384) => return Err(bad("the EC point is not uncompressed")),
                _ => return Err(bad("an EC curve other than P-256 or P-384")),
            },
            RSA_ENCRYPTION => KeyKind::Rsa,
            ED25519 if key.len() == 32 => KeyKind::Ed25519,
            ED25519 => return Err(bad("an Ed25519 key that is not 32 bytes")),
            _ => return Err(bad("a key algorithm other than ECDSA, RSA or Ed25519")),
        };
        Ok(PublicKey {
            kind,
            raw: key,
            id: Digest::of(der),
            origin: origin.to_string(),
        })
    }

    /// A DER PKCS#1 RSAPublicKey (`RSA PUBLIC KEY`).
    pub fn rsa_pkcs1(der: Vec<u8>, origin: &str) -> PublicKey {
        PublicKey {
            kind: KeyKind::Rsa,
            id: Digest::of(&der),
            raw: der,
            origin: origin.to_string(),
        }
    }

    /// Read a key file.
    pub fn from_file(path: &std::path::Path) -> Result<PublicKey, std::io::Error> {
        let text = read_capped(path, MAX_KEY_BYTES as u64)?;
        PublicKey::from_pem(&text, &path.display().to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The key's algorithm.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The SHA-256 of the key's DER.
    pub fn id(&self) -> &Digest {
        &self.id
    }

    /// `ECDSA P-256 key cosign.pub (sha256:0123456789ab)`.
    pub fn describe(&self) -> String {
        format!(
            "{} key {} (sha256:{})",
            self.kind,
            self.origin,
            &self.id.hex()[..12]
        )
    }

    /// Whether `sig` is this key's signature over `message` with the digest `hash` (what an X.509
    /// signature algorithm or a log's key details name). Ed25519 ignores `hash`.
    pub fn verify_with(&self, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match (self.kind, hash) {
            (KeyKind::EcdsaP256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcdsaP256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyKind::EcdsaP384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyKind::EcdsaP384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcdsaP256 | KeyKind::EcdsaP384, Hash::Sha512) => return false,
            (KeyKind::Rsa, Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, _) => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, sig)
            .is_ok()
    }

    /// Whether `sig` is this key's signature over `message`, as cosign makes it.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let algorithms: &[&'static dyn VerificationAlgorithm] = match self.kind {
            KeyKind::EcdsaP256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            KeyKind::EcdsaP384 => &[
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P384_SHA256_ASN1,
            ],
            KeyKind::Rsa => &[&signature::RSA_PKCS1_2048_8192_SHA256],
            KeyKind::Ed25519 => &[&signature::ED25519],
        };
        algorithms.iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.raw)
                .verify(message, sig)
                .is_ok()
        })
    }
}
