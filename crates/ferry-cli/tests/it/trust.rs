//! `--verify-key` on pull, copy and push against the real registry: a signed image passes; an unsigned
//! one, one signed by another key, one whose payload names another digest, one with flipped signature
//! bytes and one whose `.sig` tag was re-pointed are each refused with nothing written.

use ferry_test::cosign_keys::{KeyType, SigningKey};
use ferry_test::encode::base64;
use ferry_test::faults::FaultProxy;
use ferry_test::fixtures::{cosign_payload, cosign_signature_of, cosign_tag, oci_image};
use ferry_test::{Artifact, Mode, Registry};

use ferry_test::sigstore::{IDENTITY, ISSUER, MiniSigstore};

use crate::support::{Env, blob, entries};

/// How each repository's image is (not) signed.
#[derive(Clone, Copy, Debug)]
enum Case {
    Signed,
    Unsigned,
    OtherKey,
    OtherDigest,
    Flipped,
    Repointed,
}

const BAD: [(Case, &str, &str); 5] = [
    (Case::Unsigned, "unsigned", "not found"),
    (
        Case::OtherKey,
        "otherkey",
        "not a signature by a trusted key",
    ),
    (Case::OtherDigest, "otherdigest", "payload names"),
    (Case::Flipped, "flipped", "not a signature by a trusted key"),
    (Case::Repointed, "repointed", "payload names"),
];

struct Keys {
    _dir: tempfile::TempDir,
    trusted: SigningKey,
    other: SigningKey,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let trusted = SigningKey::generate(KeyType::EcdsaP256, dir.path(), "trusted");
    let other = SigningKey::generate(KeyType::EcdsaP256, dir.path(), "other");
    Keys {
        _dir: dir,
        trusted,
        other,
    }
}

/// `repo:1` in `reg`, signed as `case` says; returns the image.
async fn seed(reg: &Registry, repo: &str, seed: u64, case: Case, keys: &Keys) -> Artifact {
    let image = oci_image(seed, 1, "amd64");
    reg.seed(repo, Some("1"), &image).await;
    let digest = image.digest();
    let name = format!("{}/{repo}", reg.host());
    let (payload_digest, key) = match case {
        Case::Unsigned => return image,
        Case::OtherKey => (digest.clone(), &keys.other),
        Case::OtherDigest => (oci_image(seed + 1, 1, "amd64").digest(), &keys.trusted),
        _ => (digest.clone(), &keys.trusted),
    };
    let payload = cosign_payload(&name, &payload_digest);
    let mut sig = key.sign(&payload);
    if let Case::Flipped = case {
        let i = sig.len() - 3;
        sig[i] ^= 0x01;
    }
    let signature = cosign_signature_of(payload, &base64(&sig));
    if let Case::Repointed = case {
        // A valid signature of another image in the same repository, under this image's tag.
        let other = oci_image(seed + 1, 1, "amd64");
        reg.seed(repo, Some("other"), &other).await;
        let payload = cosign_payload(&name, &other.digest());
        let theirs = cosign_signature_of(payload.clone(), &keys.trusted.sign_base64(&payload));
        reg.seed(repo, Some(&cosign_tag(&other.digest())), &theirs)
            .await;
        reg.seed(repo, Some(&cosign_tag(&digest)), &theirs).await;
        return image;
    }
    reg.seed(repo, Some(&cosign_tag(&digest)), &signature).await;
    image
}

/// The layer (not config, not manifest) of `image`: present only if the image was copied.
fn layer_digest(image: &Artifact) -> String {
    image.blobs.last().unwrap().digest()
}

#[tokio::test]
async fn pull_takes_a_signed_image_and_refuses_each_bad_one_writing_nothing() {
    let reg = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    let signed = seed(&reg, "signed", 900, Case::Signed, &keys).await;
    let env = Env::new();
    let out = env.path("images");
    let o = out.to_str().unwrap();
    env.ok(&[
        "pull",
        &format!("{}/signed:1", reg.host()),
        "-o",
        o,
        "--verify-key",
        &key,
        "-q",
    ])
    .await;
    assert_eq!(entries(&out).len(), 1);
    assert!(blob(&out, &layer_digest(&signed)).exists());

    for (i, (case, repo, why)) in BAD.into_iter().enumerate() {
        let image = seed(&reg, repo, 910 + 10 * i as u64, case, &keys).await;
        let reference = format!("{}/{repo}:1", reg.host());
        let err = env
            .fails(&["pull", &reference, "-o", o, "--verify-key", &key])
            .await;
        assert!(
            err.contains(&reference) && err.contains(why),
            "{case:?}: {err}"
        );
        assert!(
            err.contains(&cosign_tag(&image.digest())),
            "{case:?} names the signature tried: {err}"
        );
        assert_eq!(
            entries(&out).len(),
            1,
            "{case:?}: the layout gained an entry"
        );
        assert!(
            !blob(&out, &layer_digest(&image)).exists(),
            "{case:?}: a layer was written"
        );
        // A layout the refused pull would have created is not left behind.
        let fresh = env.path(&format!("fresh-{repo}"));
        env.fails(&[
            "pull",
            &reference,
            "-o",
            fresh.to_str().unwrap(),
            "--verify-key",
            &key,
        ])
        .await;
        assert!(!fresh.exists(), "{case:?}: {} was created", fresh.display());
    }
}

#[tokio::test]
async fn copy_and_push_refuse_what_is_not_signed_leaving_the_destination_untagged() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    let mut images = vec![(
        "signed",
        seed(&src, "signed", 950, Case::Signed, &keys).await,
    )];
    for (i, (case, repo, _)) in BAD.into_iter().enumerate() {
        images.push((
            repo,
            seed(&src, repo, 960 + 10 * i as u64, case, &keys).await,
        ));
    }
    let env = Env::new();
    for (repo, image) in &images {
        let from = format!("{}/{repo}:1", src.host());
        let to = format!("{}/{repo}:1", dst.host());
        let args = ["copy", &from, &to, "--verify-key", &key, "-q"];
        lands_only_if_signed(&env, &args, &dst, repo, image, &from).await;
    }

    // Push from a layout holding every image with its signature tags (pulled without verification).
    let layout = env.path("all");
    let l = layout.to_str().unwrap();
    for (repo, _) in &images {
        env.ok(&[
            "pull",
            &format!("{}/{repo}:1", src.host()),
            "-o",
            l,
            "--referrers",
            "-q",
        ])
        .await;
    }
    let third = Registry::start(Mode::Plain);
    for (repo, image) in &images {
        let name = format!("{}/{repo}:1", src.host());
        let to = format!("{}/{repo}:1", third.host());
        let args = ["push", l, &name, &to, "--verify-key", &key, "-q"];
        lands_only_if_signed(&env, &args, &third, repo, image, &name).await;
    }
}

/// Run `args`: the signed image lands at `dst` as `repo:1`; any other is refused naming `shown`, with no tag
/// and no layer at `dst`.
async fn lands_only_if_signed(
    env: &Env,
    args: &[&str],
    dst: &Registry,
    repo: &str,
    image: &Artifact,
    shown: &str,
) {
    if repo == "signed" {
        env.ok(args).await;
        assert!(dst.get_manifest(repo, "1").await.is_some());
        return;
    }
    let err = env.fails(args).await;
    assert!(err.contains(shown), "{repo}: {err}");
    assert!(
        dst.get_manifest(repo, "1").await.is_none(),
        "{repo}: tagged at the destination"
    );
    assert!(
        !dst.blob_exists(repo, &layer_digest(image)).await,
        "{repo}: a layer reached the destination"
    );
}

/// What verification costs per image, by how the image is signed: requests counted through a proxy
/// (asserted), times straight against the registry (best of three, fresh layouts; printed for
/// docs/benchmarks.md). Both places are looked up side by side: the `.sig` tag and the referrers listing (the
/// referrers API probe, 2.8 has none, and the fallback index). A `.sig` signature, key or keyless, costs its
/// manifest and payload, and whatever of the listing went out before it held (2 to 4 requests); a bundle
/// referrer the missed tag, the listing, its manifest and the bundle (5).
#[tokio::test]
async fn verification_costs_per_image_by_signature_kind() {
    let reg = Registry::start(Mode::Plain);
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let sigstore = MiniSigstore::new(dir.path(), IDENTITY, ISSUER);
    seed(&reg, "signed", 990, Case::Signed, &keys).await;
    seed_bundled(&reg, "bundled", 995, None, key_bundle(&keys.trusted)).await;
    seed_keyless_sig(&reg, "keyless-sig", 1000, &sigstore).await;
    seed_bundled(&reg, "keyless-bundle", 1005, None, |s| {
        sigstore.dsse_bundle(s)
    })
    .await;
    let key = vec![
        "--verify-key".to_string(),
        keys.trusted.public_pem.to_str().unwrap().into(),
    ];
    let keyless = keyless_args(&sigstore, IDENTITY);
    let pull = |host: String, repo: &'static str, extra: Vec<String>| async move {
        let env = Env::new();
        let out = env.path("images");
        let reference = format!("{host}/{repo}:1");
        let started = std::time::Instant::now();
        ok_with(
            &env,
            &["pull", &reference, "-o", out.to_str().unwrap(), "-q"],
            &extra,
        )
        .await;
        started.elapsed()
    };
    for (repo, flags, extra) in [
        ("signed", &key, 2..=4),
        ("bundled", &key, 5..=5),
        ("keyless-sig", &keyless, 2..=4),
        ("keyless-bundle", &keyless, 5..=5),
    ] {
        let mut requests = Vec::new();
        for verify in [false, true] {
            let proxy = FaultProxy::start(&reg.base_url());
            pull(
                proxy.host(),
                repo,
                if verify { flags.clone() } else { Vec::new() },
            )
            .await;
            requests.push(proxy.requests().len());
        }
        let mut best = [std::time::Duration::MAX; 2];
        for _ in 0..3 {
            for (i, verify) in [false, true].into_iter().enumerate() {
                let t = pull(
                    reg.host(),
                    repo,
                    if verify { flags.clone() } else { Vec::new() },
                )
                .await;
                best[i] = best[i].min(t);
            }
        }
        eprintln!(
            "{repo}: pull {} requests, best {:?}; verified {} requests, best {:?}",
            requests[0], best[0], requests[1], best[1]
        );
        let added = requests[1] - requests[0];
        assert!(extra.contains(&added), "{repo}: {added} requests added");
    }
}

#[tokio::test]
async fn verify_prints_who_signed_what_in_a_registry_and_a_layout() {
    let reg = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    let image = seed(&reg, "signed", 1000, Case::Signed, &keys).await;
    seed(&reg, "otherkey", 1010, Case::OtherKey, &keys).await;
    let env = Env::new();
    let reference = format!("{}/signed:1", reg.host());
    let out = crate::support::json(
        &env.ok(&["verify", &reference, "--verify-key", &key, "--json"])
            .await,
    );
    assert_eq!(out[0]["image"], reference.as_str());
    assert_eq!(out[0]["signatures"][0]["digest"], image.digest().as_str());
    assert_eq!(
        out[0]["signatures"][0]["signed_as"],
        format!("{}/signed", reg.host()).as_str()
    );
    let bad = format!("{}/otherkey:1", reg.host());
    let err = env.fails(&["verify", &bad, "--verify-key", &key]).await;
    assert!(err.contains("not a signature by a trusted key"), "{err}");

    // A layout pulled with its signature tag verifies offline.
    let layout = env.path("images");
    let l = layout.to_str().unwrap();
    env.ok(&["pull", &reference, "-o", l, "--referrers", "-q"])
        .await;
    let text = env
        .ok(&[
            "verify",
            &format!("oci:{l}:{reference}"),
            "--verify-key",
            &key,
        ])
        .await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("{} signed by ECDSA P-256 key", image.digest())),
        "{text}"
    );
}

#[tokio::test]
async fn sync_copies_the_signed_image_and_refuses_the_other() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    seed(&src, "signed", 1100, Case::Signed, &keys).await;
    let bad = seed(&src, "otherkey", 1110, Case::OtherKey, &keys).await;
    let env = Env::new();
    let file = env.path("sync.yaml");
    let text = format!(
        "{}:\n  images:\n    signed: [\"1\"]\n    otherkey: [\"1\"]\n",
        src.host()
    );
    std::fs::write(&file, text).unwrap();
    let dest = format!("{}/mirror", dst.host());
    let err = env
        .fails(&[
            "sync",
            "-f",
            file.to_str().unwrap(),
            &dest,
            "--plain-http",
            "--no-cache",
            "--keep-going",
            "--verify-key",
            &key,
        ])
        .await;
    assert!(err.contains("1 of 2 images failed"), "{err}");
    assert!(dst.get_manifest("mirror/signed", "1").await.is_some());
    assert!(dst.get_manifest("mirror/otherkey", "1").await.is_none());
    assert!(
        !dst.blob_exists("mirror/otherkey", &layer_digest(&bad))
            .await
    );
}

/// `repo:1` signed only by a Sigstore bundle stored as an OCI 1.1 referrer (as `cosign sign
/// --new-bundle-format` stores it; the registry has no referrers API, so the `sha256-<hex>` fallback index
/// lists it); `bundle` makes the bundle from the statement naming `names` (default: the image).
async fn seed_bundled(
    reg: &Registry,
    repo: &str,
    seed: u64,
    names: Option<&str>,
    bundle: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Artifact {
    use ferry_test::fixtures::{
        SIGSTORE_BUNDLE_V03, bundle_referrer, cosign_sign_statement, referrers_index,
    };
    let image = oci_image(seed, 1, "amd64");
    reg.seed(repo, Some("1"), &image).await;
    let statement = cosign_sign_statement(names.unwrap_or(&image.digest()));
    let referrer = bundle_referrer(&image.manifest, bundle(&statement));
    reg.seed(repo, None, &referrer).await;
    let tag = image.digest().replace(':', "-");
    let (status, body) = reg
        .put_manifest(
            repo,
            &tag,
            &referrers_index(&[(&referrer, SIGSTORE_BUNDLE_V03)]),
        )
        .await;
    assert!((200..300).contains(&status), "{body}");
    image
}

/// A key-signed DSSE bundle maker for [`seed_bundled`].
fn key_bundle(key: &SigningKey) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    |statement| {
        use ferry_test::fixtures::{dsse_pae, key_dsse_bundle};
        key_dsse_bundle(statement, &key.sign(&dsse_pae(statement)))
    }
}

/// `repo:1` with cosign 2's keyless `.sig` layer from `sigstore`.
async fn seed_keyless_sig(
    reg: &Registry,
    repo: &str,
    seed: u64,
    sigstore: &MiniSigstore,
) -> Artifact {
    let image = oci_image(seed, 1, "amd64");
    reg.seed(repo, Some("1"), &image).await;
    let payload = cosign_payload(&format!("{}/{repo}", reg.host()), &image.digest());
    let (sig, annotations) = sigstore.sig_layer(&payload);
    let signature = ferry_test::fixtures::cosign_signature_with(payload, &sig, &annotations);
    reg.seed(repo, Some(&cosign_tag(&image.digest())), &signature)
        .await;
    image
}

/// The keyless flags for `sigstore`'s root, wanting `identity`.
fn keyless_args(sigstore: &MiniSigstore, identity: &str) -> Vec<String> {
    [
        "--trusted-root",
        sigstore.trusted_root.to_str().unwrap(),
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        ISSUER,
    ]
    .map(String::from)
    .to_vec()
}

/// `ferry ARGS… EXTRA…` must succeed (owned-string arguments).
async fn ok_with(env: &Env, args: &[&str], extra: &[String]) -> std::process::Output {
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    env.ok(&all).await
}

/// `ferry ARGS… EXTRA…` must fail; its error text.
async fn fails_with(env: &Env, args: &[&str], extra: &[String]) -> String {
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    env.fails(&all).await
}

#[tokio::test]
async fn bundles_stored_as_referrers_are_verified_on_pull_copy_and_verify() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    let signed = seed_bundled(&src, "bundled", 1200, None, key_bundle(&keys.trusted)).await;
    let other_key =
        seed_bundled(&src, "bundle-otherkey", 1210, None, key_bundle(&keys.other)).await;
    let elsewhere = oci_image(1299, 1, "amd64").digest();
    let other_digest = seed_bundled(
        &src,
        "bundle-otherdigest",
        1220,
        Some(&elsewhere),
        key_bundle(&keys.trusted),
    )
    .await;
    let env = Env::new();

    let reference = format!("{}/bundled:1", src.host());
    let out = crate::support::json(
        &env.ok(&["verify", &reference, "--verify-key", &key, "--json"])
            .await,
    );
    let sig = &out[0]["signatures"][0];
    assert_eq!(sig["digest"], signed.digest().as_str());
    assert!(
        sig["signature"]
            .as_str()
            .unwrap()
            .starts_with("bundle referrer sha256:"),
        "{sig}"
    );
    assert!(
        sig["key"].as_str().unwrap().contains("ECDSA P-256 key"),
        "{sig}"
    );

    let layout = env.path("images");
    let l = layout.to_str().unwrap();
    env.ok(&["pull", &reference, "-o", l, "--verify-key", &key, "-q"])
        .await;
    assert!(blob(&layout, &layer_digest(&signed)).exists());
    // `lands_only_if_signed` expects the signed image under the repository name "signed".
    let to = format!("{}/signed:1", dst.host());
    lands_only_if_signed(
        &env,
        &["copy", &reference, &to, "--verify-key", &key, "-q"],
        &dst,
        "signed",
        &signed,
        &reference,
    )
    .await;

    for (repo, image, why) in [
        ("bundle-otherkey", &other_key, "not a signature by"),
        ("bundle-otherdigest", &other_digest, "names other subjects"),
    ] {
        let reference = format!("{}/{repo}:1", src.host());
        let err = env
            .fails(&["pull", &reference, "-o", l, "--verify-key", &key])
            .await;
        assert!(
            err.contains("bundle referrer sha256:") && err.contains(why),
            "{repo}: {err}"
        );
        assert!(
            !blob(&layout, &layer_digest(image)).exists(),
            "{repo}: a layer was written"
        );
        let to = format!("{}/{repo}:1", dst.host());
        lands_only_if_signed(
            &env,
            &["copy", &reference, &to, "--verify-key", &key, "-q"],
            &dst,
            repo,
            image,
            &reference,
        )
        .await;
    }
}

/// Keyless image signatures end to end, offline, from a miniature Sigstore (ferry_test::sigstore): a v0.3
/// bundle stored as a referrer (cosign 3) and cosign 2's `.sig` layer with certificate and Rekor bundle.
#[tokio::test]
async fn keyless_images_verify_offline_against_a_trusted_root() {
    let reg = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let sigstore = MiniSigstore::new(dir.path(), IDENTITY, ISSUER);
    let bundled = seed_bundled(&reg, "keyless-bundle", 1300, None, |s| {
        sigstore.dsse_bundle(s)
    })
    .await;
    let tagged = seed_keyless_sig(&reg, "keyless-sig", 1310, &sigstore).await;
    let env = Env::new();
    let (right, wrong) = (
        keyless_args(&sigstore, IDENTITY),
        keyless_args(&sigstore, "someone@else.test"),
    );
    for (repo, image, label) in [
        ("keyless-bundle", &bundled, "bundle referrer sha256:"),
        ("keyless-sig", &tagged, "sha256-"),
    ] {
        let reference = format!("{}/{repo}:1", reg.host());
        let out =
            crate::support::json(&ok_with(&env, &["verify", &reference, "--json"], &right).await);
        let s = &out[0]["signatures"][0];
        let signer = s["key"].as_str().unwrap();
        assert_eq!(s["digest"], image.digest().as_str(), "{repo}: {s}");
        assert!(
            s["signature"].as_str().unwrap().starts_with(label),
            "{repo}: {s}"
        );
        assert!(
            signer.contains(IDENTITY) && signer.contains(ISSUER),
            "{repo}: {s}"
        );

        let err = fails_with(&env, &["verify", &reference], &wrong).await;
        assert!(
            err.contains("someone@else.test") && err.contains(IDENTITY),
            "{repo}: {err}"
        );

        let layout = env.path(&format!("pulled-{repo}"));
        ok_with(
            &env,
            &["pull", &reference, "-o", layout.to_str().unwrap(), "-q"],
            &right,
        )
        .await;
        assert!(blob(&layout, &layer_digest(image)).exists(), "{repo}");
    }

    // The identity flags are required with a trusted root; a policy file says the same per scope.
    let reference = format!("{}/keyless-sig:1", reg.host());
    let root = sigstore.trusted_root.to_str().unwrap();
    let err = env
        .fails(&["verify", &reference, "--trusted-root", root])
        .await;
    assert!(err.contains("--certificate-identity"), "{err}");
    let policy = env.path("policy.json");
    std::fs::write(
        &policy,
        serde_json::to_vec(&serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {reg.host(): [{
                "type": "sigstoreSigned", "trustedRootPath": root,
                "fulcio": {"oidcIssuer": ISSUER, "subjectEmail": IDENTITY}}]}}
        }))
        .unwrap(),
    )
    .unwrap();
    env.ok(&[
        "verify",
        &reference,
        "--verify-policy",
        policy.to_str().unwrap(),
    ])
    .await;
}
