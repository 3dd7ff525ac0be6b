//! The decision on in-memory sources: signatures made with each key type, and each way one can fail.

use std::sync::Arc;

use ferry_oci::Descriptor;
use ferry_store::ReadTarget;
use ferry_store::testing::MemoryStore;
use ferry_test::Artifact;
use ferry_test::cosign_keys::{KeyType, SigningKey};
use ferry_test::fixtures::{cosign_payload, cosign_signature_of, cosign_tag, oci_image};
use ferry_trust::{Policy, PublicKey, Subject, Verifier, VerifyError};

const NAME: &str = "registry.example.com/team/app:1";

fn add(store: &MemoryStore, a: &Artifact) -> Descriptor {
    for b in a.all_blobs() {
        store.add(&b.media_type, b.bytes.clone());
    }
    for m in a.all_manifests() {
        store.add(&m.media_type, m.bytes.clone());
    }
    store.add(&a.manifest.media_type, a.manifest.bytes.clone())
}

/// `image` in a store, tagged `1`.
fn image_store(seed: u64) -> (Arc<MemoryStore>, Descriptor) {
    let store = Arc::new(MemoryStore::new("memory"));
    let desc = add(&store, &oci_image(seed, 1, "amd64"));
    store.set_tag("1", &desc);
    (store, desc)
}

/// A cosign signature by `key` over `payload`, stored under the signature tag of `for_digest`.
fn attach(store: &MemoryStore, key: &SigningKey, payload: Vec<u8>, for_digest: &str) {
    let sig = key.sign_base64(&payload);
    let desc = add(store, &cosign_signature_of(payload, &sig));
    store.set_tag(&cosign_tag(for_digest), &desc);
}

fn verifier(key: &SigningKey) -> Verifier {
    Verifier::new(Policy::key(PublicKey::from_file(&key.public_pem).unwrap()))
}

async fn verify(
    v: &Verifier,
    store: &Arc<MemoryStore>,
    desc: &Descriptor,
) -> Result<ferry_trust::Verified, VerifyError> {
    let source: Arc<dyn ReadTarget> = store.clone();
    v.verify(
        source.as_ref(),
        Subject {
            name: NAME,
            key: "1",
            resolved: &desc.digest,
            selected: &desc.digest,
        },
    )
    .await
}

#[tokio::test]
async fn a_signature_by_each_key_type_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (i, kind) in [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa,
        KeyType::Ed25519,
    ]
    .into_iter()
    .enumerate()
    {
        let key = SigningKey::generate(kind, dir.path(), &format!("k{i}"));
        let (store, desc) = image_store(i as u64);
        let digest = desc.digest.to_string();
        attach(
            &store,
            &key,
            cosign_payload("registry.example.com/team/app", &digest),
            &digest,
        );
        let ok = verify(&verifier(&key), &store, &desc)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {}", ferry_oci::error_chain(&e)));
        assert_eq!(ok.signatures.len(), 1, "{kind:?}");
        assert_eq!(ok.signatures[0].digest, digest);
        assert!(ok.signatures[0].key.contains("k"), "{:?}", ok.signatures[0]);
    }
}

fn refusal(e: VerifyError) -> String {
    match &e {
        VerifyError::Unsigned { .. } => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn each_bad_signature_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyType::EcdsaP256, dir.path(), "trusted");
    let other = SigningKey::generate(KeyType::EcdsaP256, dir.path(), "other");
    let v = verifier(&key);

    // Unsigned.
    let (store, desc) = image_store(10);
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(
        msg.contains(NAME)
            && msg.contains(&cosign_tag(&desc.digest.to_string()))
            && msg.contains("not found"),
        "{msg}"
    );

    // Signed by another key.
    let (store, desc) = image_store(11);
    let d = desc.digest.to_string();
    attach(&store, &other, cosign_payload("x/y", &d), &d);
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(msg.contains("not a signature by a trusted key"), "{msg}");

    // A valid signature whose payload names another digest.
    let (store, desc) = image_store(12);
    let (_, elsewhere) = image_store(13);
    attach(
        &store,
        &key,
        cosign_payload("x/y", &elsewhere.digest.to_string()),
        &desc.digest.to_string(),
    );
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(
        msg.contains(&format!("payload names {}", elsewhere.digest)),
        "{msg}"
    );

    // Flipped signature bytes.
    let (store, desc) = image_store(14);
    let d = desc.digest.to_string();
    let payload = cosign_payload("x/y", &d);
    let mut sig = key.sign(&payload);
    let last = sig.len() - 5;
    sig[last] ^= 0x01;
    let sig_desc = add(
        &store,
        &cosign_signature_of(payload, &ferry_test::encode::base64(&sig)),
    );
    store.set_tag(&cosign_tag(&d), &sig_desc);
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(msg.contains("not a signature by a trusted key"), "{msg}");

    // The .sig tag re-pointed at another image's (valid) signature.
    let (store, desc) = image_store(15);
    let other_image = add(&store, &oci_image(16, 1, "amd64"));
    let od = other_image.digest.to_string();
    attach(&store, &key, cosign_payload("x/y", &od), &od);
    let theirs = store.tagged(&cosign_tag(&od)).unwrap();
    store.set_tag(&cosign_tag(&desc.digest.to_string()), &theirs);
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(msg.contains(&format!("payload names {od}")), "{msg}");
}

#[tokio::test]
async fn a_platform_chosen_from_a_signed_index_is_covered_by_the_index_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyType::EcdsaP256, dir.path(), "k");
    let store = Arc::new(MemoryStore::new("memory"));
    let amd = oci_image(20, 1, "amd64");
    let arm = oci_image(21, 1, "arm64");
    let index = ferry_test::fixtures::oci_index(vec![
        (amd.clone(), "linux", "amd64", None),
        (arm, "linux", "arm64", None),
    ]);
    let index_desc = add(&store, &index);
    let child = Descriptor::of(&amd.manifest.media_type, &amd.manifest.bytes);
    let source: Arc<dyn ReadTarget> = store.clone();
    let subject = Subject {
        name: NAME,
        key: "1",
        resolved: &index_desc.digest,
        selected: &child.digest,
    };
    let v = verifier(&key);
    // Neither signed: both signature tags were looked for.
    let msg = v
        .verify(source.as_ref(), subject)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&cosign_tag(&index_desc.digest.to_string()))
            && msg.contains(&cosign_tag(&child.digest.to_string())),
        "{msg}"
    );
    // The child alone signed (cosign sign --recursive on the child): accepted.
    let cd = child.digest.to_string();
    attach(&store, &key, cosign_payload("x/y", &cd), &cd);
    assert_eq!(
        v.verify(source.as_ref(), subject).await.unwrap().signatures[0].digest,
        cd
    );
    // The index signed: accepted by the index's signature first.
    let id = index_desc.digest.to_string();
    attach(&store, &key, cosign_payload("x/y", &id), &id);
    assert_eq!(
        v.verify(source.as_ref(), subject).await.unwrap().signatures[0].digest,
        id
    );
}

#[tokio::test]
async fn a_policy_chooses_by_scope_and_checks_identities() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(KeyType::Ed25519, dir.path(), "team");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{
          "default": [{"type": "reject"}],
          "transports": {"docker": {
            "registry.example.com/team": [{"type": "sigstoreSigned", "keyPath": "team.pub",
                                            "signedIdentity": {"type": "matchRepository"}}],
            "registry.example.com/open": [{"type": "insecureAcceptAnything"}]
          }}
        }"#,
    )
    .unwrap();
    let v = Verifier::new(Policy::from_file(&policy).unwrap());
    let (store, desc) = image_store(30);
    let d = desc.digest.to_string();
    // Signed under another repository's name: the identity rule refuses it.
    attach(
        &store,
        &key,
        cosign_payload("registry.example.com/evil/app", &d),
        &d,
    );
    let msg = refusal(verify(&v, &store, &desc).await.unwrap_err());
    assert!(msg.contains("registry.example.com/evil/app"), "{msg}");
    attach(
        &store,
        &key,
        cosign_payload("registry.example.com/team/app", &d),
        &d,
    );
    let ok = verify(&v, &store, &desc).await.unwrap();
    assert_eq!(ok.scope, "registry.example.com/team");

    let source: Arc<dyn ReadTarget> = store.clone();
    let subject = |name| Subject {
        name,
        key: "1",
        resolved: &desc.digest,
        selected: &desc.digest,
    };
    let open = v
        .verify(source.as_ref(), subject("registry.example.com/open/x:1"))
        .await
        .unwrap();
    assert!(open.signatures.is_empty());
    let e = v
        .verify(source.as_ref(), subject("elsewhere.io/x:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::Rejected { .. }), "{e}");
}

#[test]
fn keys_cosign_and_zarf_publish_are_read() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let zarf = PublicKey::from_file(&data.join("zarf-cosign.pub")).unwrap();
    assert_eq!(zarf.kind(), ferry_trust::KeyKind::EcdsaP256);
    let zarf_test = PublicKey::from_file(&data.join("zarf-test.pub")).unwrap();
    assert_eq!(zarf_test.kind(), ferry_trust::KeyKind::EcdsaP256);
    let rsa = PublicKey::from_file(&data.join("cosign-rsa.pem")).unwrap();
    assert_eq!(rsa.kind(), ferry_trust::KeyKind::Rsa);
    assert!(!zarf.verify(b"message", b"not a signature"));
    assert!(
        PublicKey::from_pem(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "x"
        )
        .is_err()
    );
    assert!(PublicKey::from_pem(b"nothing here", "x").is_err());
}
