//! `ferry package verify --key`: a Zarf package's `zarf.bundle.sig` (a Sigstore bundle over `zarf.yaml`,
//! key-signed as `zarf package sign --signing-key` writes it) or older `zarf.yaml.sig` (`cosign sign-blob`,
//! base64), checked by Zarf's rules: the bundle preferred, a key for an unsigned package an error.

use ferry_test::cosign_keys::{KeyType, SigningKey};
use ferry_test::encode::{base64, sha256_digest};
use ferry_test::zarf_package::{PackageSpec, build};

use crate::support::Env;

/// A key-signed Sigstore bundle v0.3 over `blob`, in the shape cosign writes (no transparency-log entry:
/// Zarf signs with `TlogUpload=false` for air gaps).
fn bundle(key: &SigningKey, blob: &[u8]) -> Vec<u8> {
    let digest = sha256_digest(blob);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "ferry-test"}},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64(&raw)},
            "signature": key.sign_base64(blob)
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn package_verify_checks_the_bundle_or_the_legacy_signature() {
    let env = Env::new();
    let keys = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyType::EcdsaP256, keys.path(), "zarf");
    let other = SigningKey::generate(KeyType::Ed25519, keys.path(), "other");
    let pkg = build(
        &PackageSpec::sample("signed", "amd64", 1200),
        &env.path("out"),
    );
    let dir = pkg.dir.to_str().unwrap();
    let k = key.public_pem.to_str().unwrap();
    let yaml_path = pkg.dir.join("zarf.yaml");
    let yaml = std::fs::read(&yaml_path).unwrap();

    // Unsigned, with a key: refused, and said so.
    let err = env.fails(&["package", "verify", dir, "--key", k]).await;
    assert!(err.contains("is not signed"), "{err}");

    // The legacy signature.
    std::fs::write(pkg.dir.join("zarf.yaml.sig"), key.sign_base64(&yaml)).unwrap();
    let out = env.ok(&["package", "verify", dir, "--key", k]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("zarf.yaml.sig signed by ECDSA P-256 key")
    );
    let err = env
        .fails(&[
            "package",
            "verify",
            dir,
            "--key",
            other.public_pem.to_str().unwrap(),
        ])
        .await;
    assert!(
        err.contains("zarf.yaml.sig: not a signature by Ed25519 key"),
        "{err}"
    );

    // A bundle is preferred over the legacy file (here: a bundle by another key fails though the legacy
    // signature would pass).
    std::fs::write(pkg.dir.join("zarf.bundle.sig"), bundle(&other, &yaml)).unwrap();
    let err = env.fails(&["package", "verify", dir, "--key", k]).await;
    assert!(err.contains("zarf.bundle.sig: not a signature by"), "{err}");
    std::fs::write(pkg.dir.join("zarf.bundle.sig"), bundle(&key, &yaml)).unwrap();
    let out = env.ok(&["package", "verify", dir, "--key", k]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("zarf.bundle.sig signed by"));

    // A tampered zarf.yaml is refused by its signature (before its checksums are looked at).
    let mut tampered = yaml.clone();
    tampered.extend_from_slice(b"\n# changed\n");
    std::fs::write(&yaml_path, &tampered).unwrap();
    let err = env.fails(&["package", "verify", dir, "--key", k]).await;
    assert!(
        err.contains("zarf.bundle.sig: the bundle signs a file whose SHA2_256 is"),
        "{err}"
    );
    std::fs::remove_file(pkg.dir.join("zarf.bundle.sig")).unwrap();
    let err = env.fails(&["package", "verify", dir, "--key", k]).await;
    assert!(err.contains("zarf.yaml.sig: not a signature by"), "{err}");
}

#[tokio::test]
async fn publish_and_package_pull_refuse_a_package_the_key_did_not_sign() {
    let reg = ferry_test::Registry::start(ferry_test::Mode::Plain);
    let env = Env::new();
    let keys = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyType::EcdsaP384, keys.path(), "zarf");
    let other = SigningKey::generate(KeyType::Rsa, keys.path(), "other");
    let (k, o) = (
        key.public_pem.to_str().unwrap(),
        other.public_pem.to_str().unwrap(),
    );
    let pkg = build(
        &PackageSpec::sample("demo", "amd64", 1300),
        &env.path("out"),
    );
    let dir = pkg.dir.to_str().unwrap();
    let yaml = std::fs::read(pkg.dir.join("zarf.yaml")).unwrap();
    std::fs::write(pkg.dir.join("zarf.bundle.sig"), bundle(&key, &yaml)).unwrap();
    let dest = format!("oci://{}", reg.host());
    let tag = pkg.spec.version.clone();

    let err = env
        .fails(&["package", "publish", dir, &dest, "--key", o])
        .await;
    assert!(
        err.contains("zarf.bundle.sig: not a signature by RSA key"),
        "{err}"
    );
    assert!(
        reg.get_manifest("demo", &tag).await.is_none(),
        "published anyway"
    );
    env.ok(&["package", "publish", dir, &dest, "--key", k, "-q"])
        .await;

    let reference = format!("oci://{}/demo:{tag}", reg.host());
    let out = env.path("pulled");
    let o_dir = out.to_str().unwrap();
    let pull = |key| {
        [
            "package", "pull", &reference, "-o", o_dir, "--key", key, "-q",
        ]
    };
    let err = env.fails(&pull(o)).await;
    assert!(err.contains("not a signature by RSA key"), "{err}");
    assert!(!out.exists(), "written anyway");
    env.ok(&pull(k)).await;
    let signature = |dir: &std::path::Path| std::fs::read(dir.join("zarf.bundle.sig")).unwrap();
    assert_eq!(signature(&out), signature(&pkg.dir));
}
