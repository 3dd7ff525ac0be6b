//! Key pairs of each kind cosign signs with, made with the openssl CLI, and signatures as cosign makes
//! them (ECDSA: ASN.1 DER over SHA-256, or SHA-384 on P-384; RSA: PKCS#1 v1.5 SHA-256; Ed25519: over
//! the message itself).

use std::path::{Path, PathBuf};

use crate::encode::base64;
use crate::pki::run;

/// The kinds of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 (cosign's default).
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA.
    Rsa,
    /// Ed25519.
    Ed25519,
}

/// A private key in a directory, and its public key as cosign writes it (`cosign.pub`, PEM SPKI).
pub struct SigningKey {
    /// Which kind of key.
    pub kind: KeyType,
    /// The private key, PEM.
    pub private_pem: PathBuf,
    /// The public key, PEM SPKI (what `--verify-key` takes).
    pub public_pem: PathBuf,
}

impl SigningKey {
    /// A new key named `name` in `dir`.
    pub fn generate(kind: KeyType, dir: &Path, name: &str) -> SigningKey {
        let private_pem = dir.join(format!("{name}.key"));
        let public_pem = dir.join(format!("{name}.pub"));
        let key = private_pem.to_str().expect("utf-8 path");
        let mut args = vec!["genpkey", "-out", key, "-algorithm"];
        args.extend(match kind {
            KeyType::EcdsaP256 => &["EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            KeyType::EcdsaP384 => &["EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            KeyType::Rsa => &["RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            KeyType::Ed25519 => &["ED25519"][..],
        });
        run("openssl", &args, dir);
        let public = public_pem.to_str().expect("utf-8 path");
        run(
            "openssl",
            &["pkey", "-in", key, "-pubout", "-out", public],
            dir,
        );
        SigningKey {
            kind,
            private_pem,
            public_pem,
        }
    }

    /// The raw signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let msg = dir.path().join("message");
        std::fs::write(&msg, message).expect("writing the message");
        let (key, msg) = (
            self.private_pem.to_str().expect("utf-8 path"),
            msg.to_str().expect("utf-8 path"),
        );
        match self.kind {
            KeyType::Ed25519 => run(
                "openssl",
                &["pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg],
                dir.path(),
            ),
            KeyType::EcdsaP384 => run(
                "openssl",
                &["dgst", "-sha384", "-sign", key, msg],
                dir.path(),
            ),
            _ => run(
                "openssl",
                &["dgst", "-sha256", "-sign", key, msg],
                dir.path(),
            ),
        }
    }

    /// The signature over `message`, base64 as cosign stores it.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        base64(&self.sign(message))
    }
}
