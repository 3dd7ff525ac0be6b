//! Signing with a private key as cosign signs: ECDSA P-256 (SHA-256) or P-384 (SHA-384), ASN.1 DER
//! signatures; RSA PKCS#1 v1.5 SHA-256; Ed25519. Keys are read from unencrypted PEM: PKCS#8 `PRIVATE KEY`
//! (what `openssl genpkey` writes and `cosign import-key-pair` reads) or SEC1 `EC PRIVATE KEY`.
//!
//! cosign's own `ENCRYPTED SIGSTORE PRIVATE KEY` (scrypt + NaCl secretbox) is refused with a way out: ring
//! has neither primitive, and two new crates for a key format that `cosign import-key-pair` can produce
//! from the PKCS#8 file anyway are not worth their weight.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::der::{BIT_STRING, CONTEXT_0, Der, INTEGER, OCTET_STRING, OID, SEQUENCE, encode};
use crate::key::{KeyError, KeyKind, MAX_KEY_BYTES, PublicKey};

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key cosign could sign with.
pub struct PrivateKey {
    pair: Pair,
    public: PublicKey,
    spki: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.public.describe())
    }
}

impl PrivateKey {
    /// The first private key PEM block in `text`; `origin` names it in messages.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<PrivateKey, KeyError> {
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_KEY_BYTES)]).into_owned();
        let bad = |why| KeyError::Unsupported {
            origin: origin.to_string(),
            why,
        };
        for encrypted in [
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            "ENCRYPTED COSIGN PRIVATE KEY",
        ] {
            if text.contains(&format!("-----BEGIN {encrypted}-----")) {
                return Err(bad(
                    "cosign's encrypted key format is not read: give the key as unencrypted PKCS#8 PEM \
                     (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`; `cosign import-key-pair` \
                     makes the cosign.key of the same pair)",
                ));
            }
        }
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(bad(
                "an encrypted PKCS#8 key: decrypt it first (`openssl pkcs8 -in KEY -out PLAIN.key`)",
            ));
        }
        for (label, sec1) in [("PRIVATE KEY", false), ("EC PRIVATE KEY", true)] {
            let Some(der) = pem_block(&text, label) else {
                continue;
            };
            let der = der.ok_or_else(|| KeyError::Base64 {
                origin: origin.to_string(),
            })?;
            let pair = if sec1 {
                sec1_pair(&der).ok_or_else(|| bad("not an EC private key on P-256 or P-384"))?
            } else {
                pkcs8_pair(&der).map_err(bad)?
            };
            let spki = spki_of(&pair);
            let public = PublicKey::from_spki(&spki, origin)?;
            return Ok(PrivateKey { pair, public, spki });
        }
        Err(KeyError::NotPem {
            origin: origin.to_string(),
        })
    }

    /// Read a key file.
    pub fn from_file(path: &std::path::Path) -> Result<PrivateKey, std::io::Error> {
        let text = crate::key::read_capped(path, MAX_KEY_BYTES as u64)?;
        PrivateKey::from_pem(&text, &path.display().to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public half as a DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The signature over `message`, as cosign makes it with this kind of key.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ecdsa(p) => p
                .sign(&rng, message)
                .expect("ECDSA signing fails only without randomness")
                .as_ref()
                .to_vec(),
            Pair::Ed25519(p) => p.sign(message).as_ref().to_vec(),
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public().modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .expect("RSA signing fails only without randomness");
                sig
            }
        }
    }
}

/// `Some(None)`: the block is there and its body is not base64.
fn pem_block(text: &str, label: &str) -> Option<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = &text[text.find(&begin)? + begin.len()..];
    let body = &body[..body.find(&end)?];
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    Some(ferry_oci::base64::decode(&b64))
}

fn ecdsa_alg(curve: &[u8]) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match curve {
        P256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        P384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        _ => None,
    }
}

fn pkcs8_pair(der: &[u8]) -> Result<Pair, &'static str> {
    let mut info = Der::new(Der::new(der).read(SEQUENCE).ok_or("not PKCS#8")?);
    info.read(INTEGER).ok_or("not PKCS#8")?;
    let mut alg = Der::new(info.read(SEQUENCE).ok_or("not PKCS#8")?);
    let rng = SystemRandom::new();
    match alg.read(OID).ok_or("not PKCS#8")? {
        EC_PUBLIC_KEY => {
            let curve = alg
                .read(OID)
                .and_then(ecdsa_alg)
                .ok_or("an EC curve other than P-256 or P-384")?;
            EcdsaKeyPair::from_pkcs8(curve, der, &rng)
                .map(Pair::Ecdsa)
                .map_err(|_| "an EC key ring cannot read (PKCS#8 without its public key?)")
        }
        ED25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Pair::Ed25519)
            .map_err(|_| "an Ed25519 key ring cannot read"),
        RSA_ENCRYPTION => RsaKeyPair::from_pkcs8(der)
            .map(Pair::Rsa)
            .map_err(|_| "an RSA key ring cannot read (2048–8192 bits)"),
        _ => Err("a key algorithm other than ECDSA, RSA or Ed25519"),
    }
}

/// SEC1 `ECPrivateKey { version 1, privateKey, [0] curve, [1] publicKey }`.
fn sec1_pair(der: &[u8]) -> Option<Pair> {
    let mut k = Der::new(Der::new(der).read(SEQUENCE)?);
    k.read(INTEGER)?;
    let private = k.read(OCTET_STRING)?;
    let curve = Der::new(k.read(CONTEXT_0)?).read(OID)?;
    let public = Der::new(k.read(0xa1)?)
        .read(BIT_STRING)?
        .strip_prefix(&[0])?;
    EcdsaKeyPair::from_private_key_and_public_key(
        ecdsa_alg(curve)?,
        private,
        public,
        &SystemRandom::new(),
    )
    .ok()
    .map(Pair::Ecdsa)
}

fn spki_of(pair: &Pair) -> Vec<u8> {
    let (alg, key): (Vec<u8>, &[u8]) = match pair {
        Pair::Ecdsa(p) => {
            let curve = if p.public_key().as_ref().len() == 65 {
                P256
            } else {
                P384
            };
            (
                [encode(OID, EC_PUBLIC_KEY), encode(OID, curve)].concat(),
                p.public_key().as_ref(),
            )
        }
        Pair::Ed25519(p) => (encode(OID, ED25519), p.public_key().as_ref()),
        Pair::Rsa(p) => (
            [encode(OID, RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
            p.public().as_ref(),
        ),
    };
    let bits = [&[0u8][..], key].concat();
    encode(
        SEQUENCE,
        &[encode(SEQUENCE, &alg), encode(BIT_STRING, &bits)].concat(),
    )
}

impl PrivateKey {
    /// The key's algorithm.
    pub fn kind(&self) -> KeyKind {
        self.public.kind()
    }
}
