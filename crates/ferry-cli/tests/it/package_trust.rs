//! `ferry package verify --key`: a Zarf package's `zarf.bundle.sig` (a Sigstore bundle over `zarf.yaml`,
//! key-signed as `zarf package sign --signing-key` writes it) or older `zarf.yaml.sig` (`cosign sign-blob`,
//! base64), checked by Zarf's rules: the bundle preferred, a key for an unsigned package an error.

use ferry_test::cosign_keys::{KeyType, SigningKey};
use ferry_test::encode::{base64, sha256_digest};
use ferry_test::zarf_package::{PackageSpec, ZarfPackage, build};

use crate::support::Env;

/// A key-signed Sigstore bundle v0.3 over `blob`, in the shape cosign writes (no transparency-log entry:
/// Zarf signs with `TlogUpload=false` for air gaps).
fn bundle(key: &SigningKey, blob: &[u8]) -> Vec<u8> {
    let digest = sha256_digest(blob);
    let raw = ferry_test::encode::hex_decode(digest.strip_prefix("sha256:").unwrap());
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

/// `ferry package verify DIR --key` with `key`'s public half must fail; its error.
async fn verify_fails(env: &Env, dir: &str, key: &SigningKey) -> String {
    let k = key.public_pem.to_str().unwrap();
    env.fails(&["package", "verify", dir, "--key", k]).await
}

/// The keys' directory, a trusted key and another (of the kinds given), and a sample package.
fn fixture(
    env: &Env,
    kinds: (KeyType, KeyType),
    name: &str,
    seed: u64,
) -> (tempfile::TempDir, SigningKey, SigningKey, ZarfPackage) {
    let keys = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(kinds.0, keys.path(), "zarf");
    let other = SigningKey::generate(kinds.1, keys.path(), "other");
    let pkg = build(&PackageSpec::sample(name, "amd64", seed), &env.path("out"));
    (keys, key, other, pkg)
}

#[tokio::test]
async fn package_verify_checks_the_bundle_or_the_legacy_signature() {
    let env = Env::new();
    let (_keys, key, other, pkg) =
        fixture(&env, (KeyType::EcdsaP256, KeyType::Ed25519), "signed", 1200);
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
    let err = verify_fails(&env, dir, &other).await;
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
    let (_keys, key, other, pkg) = fixture(&env, (KeyType::EcdsaP384, KeyType::Rsa), "demo", 1300);
    let (k, o) = (
        key.public_pem.to_str().unwrap(),
        other.public_pem.to_str().unwrap(),
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

/// Zarf's check of a key-signed bundle (cosign verify-blob --key --new-bundle-format, tlog ignored as
/// Zarf's air-gap default), done here without ferry's code: the bundle's media type and message digest,
/// and the signature over zarf.yaml checked by the openssl CLI.
fn zarf_verifies_bundle(dir: &std::path::Path, public_pem: &std::path::Path) -> Result<(), String> {
    let yaml = std::fs::read(dir.join("zarf.yaml")).unwrap();
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("zarf.bundle.sig")).unwrap()).unwrap();
    if bundle["mediaType"] != "application/vnd.dev.sigstore.bundle.v0.3+json"
        || bundle["verificationMaterial"]["publicKey"]["hint"]
            .as_str()
            .is_none()
    {
        return Err(format!("not a key-signed v0.3 bundle: {bundle}"));
    }
    let ms = &bundle["messageSignature"];
    let digest = sha256_digest(&yaml);
    let raw = ferry_test::encode::hex_decode(digest.strip_prefix("sha256:").unwrap());
    if ms["messageDigest"]["algorithm"] != "SHA2_256"
        || ms["messageDigest"]["digest"] != base64(&raw)
    {
        return Err("the message digest is not zarf.yaml's".into());
    }
    let tmp = tempfile::tempdir().unwrap();
    let sig = tmp.path().join("sig");
    let decoded = std::process::Command::new("openssl")
        .args(["base64", "-d", "-A"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(ms["signature"].as_str().unwrap().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    std::fs::write(&sig, decoded.stdout).unwrap();
    let verified = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_pem)
        .arg("-signature")
        .arg(&sig)
        .arg(dir.join("zarf.yaml"))
        .output()
        .unwrap();
    if verified.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&verified.stdout).into_owned())
    }
}

#[tokio::test]
async fn package_sign_writes_what_zarf_writes_and_both_rules_accept_it() {
    let env = Env::new();
    let (_keys, key, other, pkg) = fixture(
        &env,
        (KeyType::EcdsaP256, KeyType::EcdsaP256),
        "tosign",
        1400,
    );
    let dir = pkg.dir.to_str().unwrap();
    let (k, private) = (
        key.public_pem.to_str().unwrap(),
        key.private_pem.to_str().unwrap(),
    );
    // A legacy signature from an earlier signing is superseded.
    std::fs::write(pkg.dir.join("zarf.yaml.sig"), "old").unwrap();

    let out = env
        .ok(&["package", "sign", dir, "--signing-key", private])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("zarf.bundle.sig written, signed by ECDSA P-256 key"),
        "{text}"
    );
    assert!(!pkg.dir.join("zarf.yaml.sig").exists());
    let yaml: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(pkg.dir.join("zarf.yaml")).unwrap()).unwrap();
    assert_eq!(yaml["build"]["signed"], true);
    assert!(
        yaml["build"]["provenanceFiles"]
            .as_sequence()
            .unwrap()
            .contains(&"zarf.bundle.sig".into())
    );
    assert_eq!(
        yaml["build"]["versionRequirements"][0]["version"],
        "v0.71.0"
    );

    // Zarf's rules: integrity (the bundle is a provenance file, checksums unchanged) and the signature.
    crate::package::zarf_validate_package_integrity(&pkg.dir, false).unwrap();
    zarf_verifies_bundle(&pkg.dir, &key.public_pem).unwrap();
    assert!(zarf_verifies_bundle(&pkg.dir, &other.public_pem).is_err());
    // ferry's rules.
    env.ok(&["package", "verify", dir, "--key", k]).await;
    let err = verify_fails(&env, dir, &other).await;
    assert!(err.contains("zarf.bundle.sig: not a signature by"), "{err}");

    // Signing again needs --overwrite, and changes nothing but the signature.
    let err = env
        .fails(&["package", "sign", dir, "--signing-key", private])
        .await;
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    let before = std::fs::read(pkg.dir.join("zarf.yaml")).unwrap();
    env.ok(&[
        "package",
        "sign",
        dir,
        "--signing-key",
        private,
        "--overwrite",
    ])
    .await;
    assert_eq!(std::fs::read(pkg.dir.join("zarf.yaml")).unwrap(), before);
    zarf_verifies_bundle(&pkg.dir, &key.public_pem).unwrap();

    // A tampered zarf.yaml is refused by both.
    let mut tampered = before.clone();
    tampered.extend_from_slice(b"# changed\n");
    std::fs::write(pkg.dir.join("zarf.yaml"), &tampered).unwrap();
    assert!(zarf_verifies_bundle(&pkg.dir, &key.public_pem).is_err());
    let err = env.fails(&["package", "verify", dir, "--key", k]).await;
    assert!(
        err.contains("the bundle signs a file whose SHA2_256 is"),
        "{err}"
    );
}

#[tokio::test]
async fn package_sign_reads_each_key_kind_and_refuses_cosign_encrypted_keys() {
    let env = Env::new();
    let keys = tempfile::tempdir().unwrap();
    for (i, kind) in [KeyType::EcdsaP384, KeyType::Rsa, KeyType::Ed25519]
        .into_iter()
        .enumerate()
    {
        let key = SigningKey::generate(kind, keys.path(), &format!("k{i}"));
        let pkg = build(
            &PackageSpec::sample(&format!("kind{i}"), "amd64", 1410 + i as u64),
            &env.path(&format!("out{i}")),
        );
        let dir = pkg.dir.to_str().unwrap();
        env.ok(&[
            "package",
            "sign",
            dir,
            "--signing-key",
            key.private_pem.to_str().unwrap(),
        ])
        .await;
        env.ok(&[
            "package",
            "verify",
            dir,
            "--key",
            key.public_pem.to_str().unwrap(),
        ])
        .await;
    }
    // SEC1 `EC PRIVATE KEY`, as `openssl ecparam -genkey` writes it.
    let sec1 = keys.path().join("sec1.key");
    let status = std::process::Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&sec1)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    let pkg = build(
        &PackageSpec::sample("sec1", "amd64", 1420),
        &env.path("sec1"),
    );
    env.ok(&[
        "package",
        "sign",
        pkg.dir.to_str().unwrap(),
        "--signing-key",
        sec1.to_str().unwrap(),
    ])
    .await;

    let encrypted = keys.path().join("cosign.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = env
        .fails(&[
            "package",
            "sign",
            pkg.dir.to_str().unwrap(),
            "--signing-key",
            encrypted.to_str().unwrap(),
            "--overwrite",
        ])
        .await;
    assert!(
        err.contains("cosign's encrypted key format is not read"),
        "{err}"
    );
}

#[tokio::test]
async fn push_with_a_key_refuses_an_unsigned_or_foreign_package_before_sending_anything() {
    let reg = ferry_test::Registry::start(ferry_test::Mode::Plain);
    let env = Env::new();
    let (_keys, key, other, pkg) = fixture(
        &env,
        (KeyType::EcdsaP256, KeyType::EcdsaP256),
        "pushme",
        1500,
    );
    let k = key.public_pem.to_str().unwrap();
    let dir = pkg.dir.to_str().unwrap();
    let proxy = ferry_test::faults::FaultProxy::start(&reg.base_url());
    let target = format!("{}/ns", proxy.host());

    for unsigned in [&pkg.dir, &pkg.tar_zst] {
        let source = unsigned.to_str().unwrap();
        let err = env
            .fails(&["push", source, "--registry", &target, "--key", k])
            .await;
        assert!(
            err.contains("is not signed") && err.contains(source),
            "{err}"
        );
    }
    env.ok(&[
        "package",
        "sign",
        dir,
        "--signing-key",
        other.private_pem.to_str().unwrap(),
    ])
    .await;
    let err = env
        .fails(&["push", dir, "--registry", &target, "--key", k])
        .await;
    assert!(err.contains("zarf.bundle.sig: not a signature by"), "{err}");
    assert!(proxy.requests().is_empty(), "sent: {:?}", proxy.requests());

    env.ok(&[
        "package",
        "sign",
        dir,
        "--signing-key",
        key.private_pem.to_str().unwrap(),
        "--overwrite",
    ])
    .await;
    let pushed = crate::support::json(
        &env.ok(&["push", dir, "--registry", &target, "--key", k, "--json"])
            .await,
    );
    assert_eq!(
        pushed.as_array().unwrap().len(),
        pkg.spec.images.len(),
        "{pushed:#}"
    );

    // A layout is not a package: --key is refused rather than ignored.
    let err = env
        .fails(&[
            "push",
            pkg.dir.join("images").to_str().unwrap(),
            "--registry",
            &target,
            "--key",
            k,
        ])
        .await;
    assert!(err.contains("is not a Zarf package"), "{err}");
}
