//! A miniature Sigstore made with the openssl CLI, for end-to-end keyless tests of images (whose digests
//! real test vectors cannot name): a Fulcio-like CA, a short-lived leaf with Fulcio's extensions (e-mail
//! SAN, code signing, OIDC issuer in 57264.1.1 and .1.8), a Rekor-like log key signing entry timestamps,
//! and the `trusted_root.json` naming them (no CT log: SCTs are not checked for such a root). Signatures
//! come out in the two layouts cosign writes: a v0.3 bundle (DSSE, `--new-bundle-format`) and cosign 2's
//! `.sig` layer annotations (certificate + Rekor bundle over a hashedrekord entry).

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cosign_keys::{KeyType, SigningKey};
use crate::encode::{base64, hex};
use crate::pki::run;

/// The identity and issuer the leaf certificate names.
pub const IDENTITY: &str = "release@ferry.test";
/// The OIDC issuer the leaf certificate names.
pub const ISSUER: &str = "https://issuer.ferry.test";

/// The keys and certificates of a miniature Sigstore, and its trusted root on disk.
pub struct MiniSigstore {
    /// The Fulcio-like CA's key (P-384).
    pub ca: SigningKey,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The signer's key (P-256), certified by the CA.
    pub leaf: SigningKey,
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
    /// The leaf certificate, PEM.
    pub leaf_pem: String,
    /// The Rekor-like log's key, signing entry timestamps.
    pub rekor: SigningKey,
    /// The log's public key, DER (SubjectPublicKeyInfo).
    pub rekor_der: Vec<u8>,
    /// The trusted root file.
    pub trusted_root: std::path::PathBuf,
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    crate::encode::base64_decode(&b64).expect("PEM base64")
}

impl MiniSigstore {
    /// Everything in `dir`; the leaf is valid from now for a day, as `identity` issued by `issuer`.
    pub fn new(dir: &Path, identity: &str, issuer: &str) -> MiniSigstore {
        let ca = SigningKey::generate(KeyType::EcdsaP384, dir, "fulcio-ca");
        let leaf = SigningKey::generate(KeyType::EcdsaP256, dir, "leaf");
        let rekor = SigningKey::generate(KeyType::EcdsaP256, dir, "rekor");
        let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &s(&ca.private_pem),
                "-subj",
                "/O=ferry-test/CN=fulcio",
                "-days",
                "3650",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "ca.pem",
            ],
            dir,
        );
        run(
            "openssl",
            &[
                "req",
                "-new",
                "-key",
                &s(&leaf.private_pem),
                "-subj",
                "/CN=ferry-test-leaf",
                "-out",
                "leaf.csr",
            ],
            dir,
        );
        let issuer_v1 = hex(issuer.as_bytes());
        std::fs::write(
            dir.join("leaf.ext"),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n\
                 subjectAltName=critical,email:{identity}\n1.3.6.1.4.1.57264.1.1=DER:{issuer_v1}\n\
                 1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:{issuer}\n"
            ),
        )
        .expect("writing leaf.ext");
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                &s(&ca.private_pem),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.pem",
            ],
            dir,
        );
        let ca_pem =
            String::from_utf8(std::fs::read(dir.join("ca.pem")).expect("ca.pem")).expect("pem");
        let ca_der = pem_to_der(ca_pem.as_bytes());
        let leaf_pem =
            String::from_utf8(std::fs::read(dir.join("leaf.pem")).expect("leaf.pem")).expect("pem");
        let leaf_der = pem_to_der(leaf_pem.as_bytes());
        let rekor_der = pem_to_der(&std::fs::read(&rekor.public_pem).expect("rekor.pub"));
        let root = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.ferry.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": base64(&rekor_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": base64(&Sha256::digest(&rekor_der))}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "ferry-test", "commonName": "fulcio"},
                "uri": "https://fulcio.ferry.test",
                "certChain": {"certificates": [{"rawBytes": base64(&ca_der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            }],
            "ctlogs": [],
            "timestampAuthorities": []
        });
        let trusted_root = dir.join("trusted_root.json");
        std::fs::write(
            &trusted_root,
            serde_json::to_vec_pretty(&root).expect("json"),
        )
        .expect("trusted root");
        MiniSigstore {
            ca,
            ca_der,
            ca_pem,
            leaf,
            leaf_der,
            leaf_pem,
            rekor,
            rekor_der,
            trusted_root,
        }
    }

    fn log_id(&self) -> Vec<u8> {
        Sha256::digest(&self.rekor_der).to_vec()
    }

    /// The signed entry timestamp over `body` at `time`, index `index`.
    fn set(&self, body: &[u8], time: i64, index: i64) -> Vec<u8> {
        let canonical = json!({
            "body": base64(body),
            "integratedTime": time,
            "logID": hex(&self.log_id()),
            "logIndex": index,
        })
        .to_string();
        self.rekor.sign(canonical.as_bytes())
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
    }

    /// A v0.3 keyless bundle over an in-toto `statement` (DSSE), logged as a dsse 0.0.1 entry.
    pub fn dsse_bundle(&self, statement: &[u8]) -> Vec<u8> {
        let sig = self.leaf.sign(&crate::fixtures::dsse_pae(statement));
        let body = json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": "00"},
                "payloadHash": {"algorithm": "sha256", "value": hex(&Sha256::digest(statement))},
                "signatures": [{"signature": base64(&sig), "verifier": base64(self.leaf_pem.as_bytes())}]
            }
        })
        .to_string()
        .into_bytes();
        let (time, index) = (Self::now(), 4242);
        serde_json::to_vec(&json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": base64(&self.leaf_der)},
                "tlogEntries": [{
                    "logIndex": index.to_string(),
                    "logId": {"keyId": base64(&self.log_id())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": base64(&self.set(&body, time, index))},
                    "canonicalizedBody": base64(&body)
                }]
            },
            "dsseEnvelope": {
                "payload": base64(statement),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": base64(&sig), "keyid": ""}]
            }
        }))
        .expect("json")
    }

    /// cosign 2's keyless `.sig` layer for `payload`: the base64 signature, and the certificate and Rekor
    /// bundle annotations (a hashedrekord 0.0.1 entry of the payload's SHA-256).
    pub fn sig_layer(&self, payload: &[u8]) -> (String, Vec<(String, String)>) {
        let sig = self.leaf.sign(payload);
        let body = json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex(&Sha256::digest(payload))}},
                "signature": {"content": base64(&sig), "publicKey": {"content": base64(self.leaf_pem.as_bytes())}}
            }
        })
        .to_string()
        .into_bytes();
        let (time, index) = (Self::now(), 4343);
        let rekor_bundle: Value = json!({
            "SignedEntryTimestamp": base64(&self.set(&body, time, index)),
            "Payload": {"body": base64(&body), "integratedTime": time, "logIndex": index, "logID": hex(&self.log_id())}
        });
        (
            base64(&sig),
            vec![
                (
                    "dev.sigstore.cosign/certificate".into(),
                    self.leaf_pem.clone(),
                ),
                (
                    "dev.sigstore.cosign/chain".into(),
                    String::from_utf8_lossy(
                        &std::fs::read(self.ca.private_pem.with_file_name("ca.pem"))
                            .expect("ca.pem"),
                    )
                    .into_owned(),
                ),
                (
                    "dev.sigstore.cosign/bundle".into(),
                    rekor_bundle.to_string(),
                ),
            ],
        )
    }
}
