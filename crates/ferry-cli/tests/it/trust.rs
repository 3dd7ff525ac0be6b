//! `--verify-key` on pull, copy and push against the real registry: a signed image passes; an unsigned
//! one, one signed by another key, one whose payload names another digest, one with flipped signature
//! bytes and one whose `.sig` tag was re-pointed are each refused with nothing written.

use ferry_test::cosign_keys::{KeyType, SigningKey};
use ferry_test::encode::base64;
use ferry_test::faults::FaultProxy;
use ferry_test::fixtures::{cosign_payload, cosign_signature_of, cosign_tag, oci_image};
use ferry_test::{Artifact, Mode, Registry};

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

/// Verification costs one signature manifest and one payload blob per image, nothing more. Requests are
/// counted through a proxy; times are taken straight against the registry (best of three, fresh caches).
#[tokio::test]
async fn verification_adds_one_manifest_and_one_payload_request_per_image() {
    let reg = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    seed(&reg, "signed", 990, Case::Signed, &keys).await;
    let pull = |host: String, verify: bool| {
        let key = key.clone();
        async move {
            let env = Env::new();
            let out = env.path("images");
            let reference = format!("{host}/signed:1");
            let mut args = vec!["pull", &reference, "-o", out.to_str().unwrap(), "-q"];
            if verify {
                args.extend(["--verify-key", key.as_str()]);
            }
            let started = std::time::Instant::now();
            env.ok(&args).await;
            started.elapsed()
        }
    };
    let mut requests = Vec::new();
    for verify in [false, true] {
        let proxy = FaultProxy::start(&reg.base_url());
        pull(proxy.host(), verify).await;
        requests.push(proxy.requests().len());
    }
    let mut best = [std::time::Duration::MAX; 2];
    for _ in 0..3 {
        for (i, verify) in [false, true].into_iter().enumerate() {
            best[i] = best[i].min(pull(reg.host(), verify).await);
        }
    }
    eprintln!(
        "pull: {} requests, best {:?}; with --verify-key: {} requests, best {:?}",
        requests[0], best[0], requests[1], best[1]
    );
    assert_eq!(
        requests[1],
        requests[0] + 2,
        "the .sig manifest and its payload, nothing else"
    );
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
/// --new-bundle-format --key` stores it; the registry has no referrers API, so the `sha256-<hex>` fallback
/// index lists it), the statement naming `names` and signed by `key`.
async fn seed_bundled(
    reg: &Registry,
    repo: &str,
    seed: u64,
    names: Option<&str>,
    key: &SigningKey,
) -> Artifact {
    use ferry_test::fixtures::{
        SIGSTORE_BUNDLE_V03, bundle_referrer, cosign_sign_statement, dsse_pae, key_dsse_bundle,
        referrers_index,
    };
    let image = oci_image(seed, 1, "amd64");
    reg.seed(repo, Some("1"), &image).await;
    let statement = cosign_sign_statement(names.unwrap_or(&image.digest()));
    let bundle = key_dsse_bundle(&statement, &key.sign(&dsse_pae(&statement)));
    let referrer = bundle_referrer(&image.manifest, bundle);
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

#[tokio::test]
async fn bundles_stored_as_referrers_are_verified_on_pull_copy_and_verify() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let keys = keys();
    let key = keys.trusted.public_pem.to_str().unwrap().to_string();
    let signed = seed_bundled(&src, "bundled", 1200, None, &keys.trusted).await;
    let other_key = seed_bundled(&src, "bundle-otherkey", 1210, None, &keys.other).await;
    let elsewhere = oci_image(1299, 1, "amd64").digest();
    let other_digest = seed_bundled(
        &src,
        "bundle-otherdigest",
        1220,
        Some(&elsewhere),
        &keys.trusted,
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

    // What a bundle costs, counted through a proxy: the .sig tag looked up and missed, the referrers API
    // probed (2.8 has none), the fallback index, the referrer manifest and the bundle.
    let mut requests = Vec::new();
    for verify in [false, true] {
        let proxy = FaultProxy::start(&src.base_url());
        let env = Env::new();
        let out = env.path("images");
        let reference = format!("{}/bundled:1", proxy.host());
        let mut args = vec!["pull", &reference, "-o", out.to_str().unwrap(), "-q"];
        if verify {
            args.extend(["--verify-key", key.as_str()]);
        }
        env.ok(&args).await;
        requests.push(proxy.requests().len());
    }
    eprintln!(
        "bundle referrer: pull {} requests, with --verify-key {}",
        requests[0], requests[1]
    );
    assert_eq!(requests[1], requests[0] + 5);
}

/// Keyless image signatures end to end, offline, from a miniature Sigstore (ferry_test::sigstore): a v0.3
/// bundle stored as a referrer (cosign 3) and cosign 2's `.sig` layer with certificate and Rekor bundle.
#[tokio::test]
async fn keyless_images_verify_offline_against_a_trusted_root() {
    use ferry_test::fixtures::{
        SIGSTORE_BUNDLE_V03, bundle_referrer, cosign_sign_statement, cosign_signature_with,
        referrers_index,
    };
    use ferry_test::sigstore::{IDENTITY, ISSUER, MiniSigstore};
    let reg = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let sigstore = MiniSigstore::new(dir.path(), IDENTITY, ISSUER);
    let root = sigstore.trusted_root.to_str().unwrap().to_string();

    let bundled = oci_image(1300, 1, "amd64");
    reg.seed("keyless-bundle", Some("1"), &bundled).await;
    let referrer = bundle_referrer(
        &bundled.manifest,
        sigstore.dsse_bundle(&cosign_sign_statement(&bundled.digest())),
    );
    reg.seed("keyless-bundle", None, &referrer).await;
    let (status, body) = reg
        .put_manifest(
            "keyless-bundle",
            &bundled.digest().replace(':', "-"),
            &referrers_index(&[(&referrer, SIGSTORE_BUNDLE_V03)]),
        )
        .await;
    assert!((200..300).contains(&status), "{body}");

    let tagged = oci_image(1310, 1, "amd64");
    reg.seed("keyless-sig", Some("1"), &tagged).await;
    let payload = cosign_payload(&format!("{}/keyless-sig", reg.host()), &tagged.digest());
    let (sig, annotations) = sigstore.sig_layer(&payload);
    reg.seed(
        "keyless-sig",
        Some(&cosign_tag(&tagged.digest())),
        &cosign_signature_with(payload, &sig, &annotations),
    )
    .await;

    let env = Env::new();
    let keyless = |identity: &str| {
        vec![
            "--trusted-root".to_string(),
            root.clone(),
            "--certificate-identity".into(),
            identity.into(),
            "--certificate-oidc-issuer".into(),
            ISSUER.into(),
        ]
    };
    for (repo, image, label) in [
        ("keyless-bundle", &bundled, "bundle referrer sha256:"),
        ("keyless-sig", &tagged, "sha256-"),
    ] {
        let reference = format!("{}/{repo}:1", reg.host());
        let mut args = vec!["verify".to_string(), reference.clone(), "--json".into()];
        args.extend(keyless(IDENTITY));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = crate::support::json(&env.ok(&args).await);
        let s = &out[0]["signatures"][0];
        assert_eq!(s["digest"], image.digest().as_str(), "{repo}: {s}");
        assert!(
            s["signature"].as_str().unwrap().starts_with(label),
            "{repo}: {s}"
        );
        assert!(
            s["key"].as_str().unwrap().contains(IDENTITY)
                && s["key"].as_str().unwrap().contains(ISSUER),
            "{repo}: {s}"
        );

        let mut args = vec!["verify".to_string(), reference.clone()];
        args.extend(keyless("someone@else.test"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = env.fails(&args).await;
        assert!(
            err.contains("someone@else.test") && err.contains(IDENTITY),
            "{repo}: {err}"
        );

        let layout = env.path(&format!("pulled-{repo}"));
        let mut args = vec![
            "pull".to_string(),
            reference.clone(),
            "-o".into(),
            layout.to_str().unwrap().into(),
            "-q".into(),
        ];
        args.extend(keyless(IDENTITY));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.ok(&args).await;
        assert!(blob(&layout, &layer_digest(image)).exists(), "{repo}");
    }

    // The identity flags are required with a trusted root; a policy file says the same per scope.
    let reference = format!("{}/keyless-sig:1", reg.host());
    let err = env
        .fails(&["verify", &reference, "--trusted-root", &root])
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

    // Counted through a proxy: a cosign 2 keyless .sig costs what a key signature does (2 requests); a
    // bundle referrer 5 (the missed .sig, the referrers API probe, the fallback index, manifest, bundle).
    for (repo, extra) in [("keyless-sig", 2), ("keyless-bundle", 5)] {
        let mut counts = Vec::new();
        for verify in [false, true] {
            let proxy = FaultProxy::start(&reg.base_url());
            let env = Env::new();
            let out = env.path("images");
            let reference = format!("{}/{repo}:1", proxy.host());
            let mut args = vec![
                "pull".to_string(),
                reference,
                "-o".into(),
                out.to_str().unwrap().into(),
                "-q".into(),
            ];
            if verify {
                args.extend(keyless(IDENTITY));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.ok(&args).await;
            counts.push(proxy.requests().len());
        }
        eprintln!(
            "{repo}: pull {} requests, keyless-verified {}",
            counts[0], counts[1]
        );
        assert_eq!(counts[1], counts[0] + extra, "{repo}");
    }
}
