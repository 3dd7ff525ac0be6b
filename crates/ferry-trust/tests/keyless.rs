//! Keyless verification against real Sigstore data (see testdata/README.md for provenance): bundles that
//! sigstore-python and sigstore-js made against Sigstore's staging and public-good instances, checked
//! offline with those instances' real trusted roots.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_trust::bundle::{self, Artifact};
use ferry_trust::{Keyless, Match, Trust, TrustedRoot};
use serde_json::Value;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn staging() -> Arc<TrustedRoot> {
    Arc::new(
        TrustedRoot::from_json(
            &data("sigstore-python-staging-trusted_root.json"),
            "staging",
        )
        .unwrap(),
    )
}

/// The identity sigstore-python's maintainer signed its v3 test bundle with (read from its certificate:
/// an e-mail SAN, GitHub's OAuth issuer in both Fulcio issuer extensions).
fn yossarian(root: Arc<TrustedRoot>) -> Keyless {
    Keyless {
        root,
        identity: Match::Exact("william@yossarian.net".into()),
        issuer: Match::Exact("https://github.com/login/oauth".into()),
    }
}

fn check(bundle: &[u8], file: &[u8], keyless: &Keyless) -> Result<bundle::Signer, String> {
    bundle::verify(
        bundle,
        Artifact::Bytes(file),
        Trust {
            keys: &[],
            keyless: Some(keyless),
        },
    )
}

#[test]
fn a_real_v03_bundle_verifies_offline_with_its_trusted_root() {
    let signer = check(
        &data("sigstore-python-bundle_v3.txt.sigstore"),
        &data("sigstore-python-bundle_v3.txt"),
        &yossarian(staging()),
    )
    .unwrap();
    assert_eq!(signer.identity.as_deref(), Some("william@yossarian.net"));
    assert_eq!(
        signer.issuer.as_deref(),
        Some("https://github.com/login/oauth")
    );
    assert_eq!(signer.log_index, Some(25915956));
    assert_eq!(
        signer.integrated_time.as_deref(),
        Some("2024-04-02T19:19:09Z")
    );

    // What one offline keyless check costs in CPU (parse, chain, SCT, SET, inclusion proof, checkpoint,
    // body, signature), for docs/benchmarks.md.
    let (bundle, file, k) = (
        data("sigstore-python-bundle_v3.txt.sigstore"),
        data("sigstore-python-bundle_v3.txt"),
        yossarian(staging()),
    );
    let started = std::time::Instant::now();
    for _ in 0..50 {
        check(&bundle, &file, &k).unwrap();
    }
    eprintln!(
        "keyless bundle verification: {:?} each",
        started.elapsed() / 50
    );
}

#[test]
fn v01_and_v02_bundles_verify_too() {
    for (bundle, file) in [
        (
            "sigstore-python-bundle.txt.sigstore",
            "sigstore-python-bundle.txt",
        ),
        (
            "sigstore-python-bundle_no_checkpoint.txt.sigstore",
            "sigstore-python-bundle_no_checkpoint.txt",
        ),
    ] {
        let any = Keyless {
            root: staging(),
            identity: Match::regexp(".").unwrap(),
            issuer: Match::regexp(".").unwrap(),
        };
        let signer =
            check(&data(bundle), &data(file), &any).unwrap_or_else(|e| panic!("{bundle}: {e}"));
        assert!(signer.identity.is_some(), "{bundle}");
    }
}

#[test]
fn identity_and_issuer_are_matched_exactly_or_by_regexp() {
    let (bundle, file) = (
        data("sigstore-python-bundle_v3.txt.sigstore"),
        data("sigstore-python-bundle_v3.txt"),
    );
    let mut k = yossarian(staging());
    k.identity = Match::Exact("someone@else.example".into());
    let e = check(&bundle, &file, &k).unwrap_err();
    assert!(
        e.contains("william@yossarian.net") && e.contains("someone@else.example"),
        "{e}"
    );

    let mut k = yossarian(staging());
    k.issuer = Match::Exact("https://accounts.google.com".into());
    let e = check(&bundle, &file, &k).unwrap_err();
    assert!(
        e.contains("OIDC issuer") && e.contains("github.com/login/oauth"),
        "{e}"
    );

    let mut k = yossarian(staging());
    k.identity = Match::regexp("^.*@yossarian\\.net$").unwrap();
    k.issuer = Match::regexp("^https://github\\.com/").unwrap();
    check(&bundle, &file, &k).unwrap();
    k.identity = Match::regexp("^.*@example\\.com$").unwrap();
    assert!(check(&bundle, &file, &k).is_err());
}

/// Flip one bit of the base64-decoded value at `path` (a JSON pointer) in a bundle.
fn flipped(bundle: &[u8], pointer: &str, byte: usize) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bundle).unwrap();
    let field = v.pointer_mut(pointer).unwrap();
    let mut raw = ferry_oci::base64::decode(field.as_str().unwrap()).unwrap();
    raw[byte] ^= 1;
    *field = Value::String(ferry_oci::base64::encode(&raw));
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn a_flipped_signature_byte_or_another_file_is_refused() {
    let (bundle, file) = (
        data("sigstore-python-bundle_v3.txt.sigstore"),
        data("sigstore-python-bundle_v3.txt"),
    );
    let k = yossarian(staging());
    let bad = flipped(&bundle, "/messageSignature/signature", 20);
    let e = check(&bad, &file, &k).unwrap_err();
    assert!(e.contains("signature"), "{e}");

    let mut other = file.clone();
    other[0] ^= 1;
    let e = check(&bundle, &other, &k).unwrap_err();
    assert!(e.contains("signs a file whose SHA2_256"), "{e}");

    // The log's promise, the logged body and the certificate are each checked.
    let e = check(
        &flipped(
            &bundle,
            "/verificationMaterial/tlogEntries/0/inclusionPromise/signedEntryTimestamp",
            10,
        ),
        &file,
        &k,
    )
    .unwrap_err();
    assert!(e.contains("signed entry timestamp"), "{e}");
    let e = check(
        &flipped(
            &bundle,
            "/verificationMaterial/tlogEntries/0/canonicalizedBody",
            30,
        ),
        &file,
        &k,
    )
    .unwrap_err();
    assert!(e.contains("no transparency-log entry holds"), "{e}");
    let e = check(
        &flipped(
            &bundle,
            "/verificationMaterial/tlogEntries/0/inclusionProof/hashes/0",
            3,
        ),
        &file,
        &k,
    )
    .unwrap_err();
    assert!(e.contains("inclusion proof"), "{e}");
}

#[test]
fn a_trusted_root_lacking_the_ca_or_the_log_is_refused() {
    let (bundle, file) = (
        data("sigstore-python-bundle_v3.txt.sigstore"),
        data("sigstore-python-bundle_v3.txt"),
    );
    let root: Value =
        serde_json::from_slice(&data("sigstore-python-staging-trusted_root.json")).unwrap();
    let without = |field: &str| {
        let mut r = root.clone();
        r[field] = Value::Array(Vec::new());
        Arc::new(TrustedRoot::from_json(&serde_json::to_vec(&r).unwrap(), field).unwrap())
    };
    let e = check(
        &bundle,
        &file,
        &yossarian(without("certificateAuthorities")),
    )
    .unwrap_err();
    assert!(e.contains("lists no certificate authority"), "{e}");
    let e = check(&bundle, &file, &yossarian(without("tlogs"))).unwrap_err();
    assert!(e.contains("is not one the trusted root"), "{e}");

    // Another instance's root (public-good) does not vouch for a staging signature.
    assert!(check(&bundle, &file, &yossarian(public_good())).is_err());

    // A CA whose window ended before the entry was logged is not used.
    let mut r = root.clone();
    r["certificateAuthorities"][0]["validFor"]["end"] =
        Value::String("2023-01-01T00:00:00Z".into());
    let ended =
        Arc::new(TrustedRoot::from_json(&serde_json::to_vec(&r).unwrap(), "ended").unwrap());
    let e = check(&bundle, &file, &yossarian(ended)).unwrap_err();
    assert!(e.contains("was not in use then"), "{e}");

    // A CT log key the root does not hold leaves the certificate without a valid SCT.
    let mut r = root.clone();
    r["ctlogs"] = Value::Array(vec![root["ctlogs"][0].clone()]);
    let no_ct =
        Arc::new(TrustedRoot::from_json(&serde_json::to_vec(&r).unwrap(), "no ct").unwrap());
    let e = check(&bundle, &file, &yossarian(no_ct)).unwrap_err();
    assert!(e.contains("SCT"), "{e}");
}

#[test]
fn a_keyless_bundle_needs_keyless_trust_and_a_key_is_not_enough() {
    let e = bundle::verify(
        &data("sigstore-python-bundle_v3.txt.sigstore"),
        Artifact::Bytes(&data("sigstore-python-bundle_v3.txt")),
        Trust {
            keys: &[],
            keyless: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("no trusted root"), "{e}");
}

/// The sha512 the DSSE statement of bundle `b` names as its first subject.
fn statement_sha512(b: &[u8]) -> String {
    let v: Value = serde_json::from_slice(b).unwrap();
    let payload =
        ferry_oci::base64::decode(v["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    statement["subject"][0]["digest"]["sha512"]
        .as_str()
        .unwrap()
        .to_string()
}

fn public_good() -> Arc<TrustedRoot> {
    Arc::new(
        TrustedRoot::from_json(
            &data("sigstore-go-public-good-trusted_root.json"),
            "public-good",
        )
        .unwrap(),
    )
}

#[test]
fn a_public_good_dsse_bundle_verifies_against_its_statement_subject() {
    let b = data("sigstore-go-dsse.sigstore.json");
    let hex = statement_sha512(&b);
    let public = public_good();
    let any = Keyless {
        root: public,
        identity: Match::regexp(".").unwrap(),
        issuer: Match::regexp(".").unwrap(),
    };
    let trust = Trust {
        keys: &[],
        keyless: Some(&any),
    };
    let signer = bundle::verify(
        &b,
        Artifact::Digest {
            algorithm: "sha512",
            hex: &hex,
        },
        trust,
    )
    .unwrap();
    assert!(signer.integrated_time.unwrap().starts_with("2022-11-09"));
    let mut other = hex.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).unwrap();
    let e = bundle::verify(
        &b,
        Artifact::Digest {
            algorithm: "sha512",
            hex: &other,
        },
        trust,
    )
    .unwrap_err();
    assert!(e.contains("names other subjects"), "{e}");
}

#[test]
fn a_github_actions_identity_is_matched_on_its_uri_san() {
    let b = data("sigstore-go-sigstore.js-2.0.0-provenance.sigstore.json");
    let hex = statement_sha512(&b);
    let public = public_good();
    let mut k = Keyless {
        root: public,
        identity: Match::regexp("^https://github\\.com/sigstore/sigstore-js/").unwrap(),
        issuer: Match::Exact("https://token.actions.githubusercontent.com".into()),
    };
    let artifact = Artifact::Digest {
        algorithm: "sha512",
        hex: &hex,
    };
    let check = |k: &Keyless| {
        bundle::verify(
            &b,
            artifact,
            Trust {
                keys: &[],
                keyless: Some(k),
            },
        )
    };
    let signer = check(&k).unwrap();
    assert_eq!(
        signer.identity.as_deref(),
        Some(
            "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
        )
    );
    k.identity = Match::regexp("^https://github\\.com/evil/").unwrap();
    assert!(check(&k).unwrap_err().contains("names"));
}

#[test]
fn policy_files_name_keyless_identities_with_a_trusted_root_or_its_pieces() {
    use ferry_trust::{Policy, Requirement};
    let dir = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sigstore-python-staging-trusted_root.json");
    let write = |text: String| {
        let p = dir.path().join("policy.json");
        std::fs::write(&p, text).unwrap();
        Policy::from_file(&p)
    };
    let policy = write(format!(
        r#"{{"default": [{{"type": "sigstoreSigned", "trustedRootPath": {root:?},
            "fulcio": {{"oidcIssuer": "https://github.com/login/oauth", "subjectEmail": "william@yossarian.net"}}}}]}}"#,
        root = root.display().to_string()
    ))
    .unwrap();
    let (_, reqs) = policy.requirements("example.com/app:1");
    let Requirement::SigstoreSigned {
        keyless: Some(k),
        keys,
        ..
    } = &reqs[0]
    else {
        panic!("{reqs:?}")
    };
    assert!(keys.is_empty());
    // The policy's keyless requirement is the one the real bundle satisfies.
    check(
        &data("sigstore-python-bundle_v3.txt.sigstore"),
        &data("sigstore-python-bundle_v3.txt"),
        k,
    )
    .unwrap();

    // containers-policy.json's pieces: the CA chain and Rekor's key, taken here from the same root.
    let r: Value =
        serde_json::from_slice(&data("sigstore-python-staging-trusted_root.json")).unwrap();
    let pem =
        |b64: &str| format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    let chain: String = r["certificateAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| pem(c["rawBytes"].as_str().unwrap()))
        .collect();
    std::fs::write(dir.path().join("fulcio.pem"), chain).unwrap();
    let rekor = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        r["tlogs"][0]["publicKey"]["rawBytes"].as_str().unwrap()
    );
    std::fs::write(dir.path().join("rekor.pub"), rekor).unwrap();
    let policy = write(
        r#"{"default": [{"type": "sigstoreSigned", "rekorPublicKeyPath": "rekor.pub",
            "fulcio": {"caPath": "fulcio.pem", "oidcIssuerRegexp": "^https://github\\.com/", "subjectIdentityRegexp": "@yossarian\\.net$"}}]}"#
            .into(),
    )
    .unwrap();
    let (_, reqs) = policy.requirements("example.com/app:1");
    let Requirement::SigstoreSigned {
        keyless: Some(k), ..
    } = &reqs[0]
    else {
        panic!("{reqs:?}")
    };
    check(
        &data("sigstore-python-bundle_v3.txt.sigstore"),
        &data("sigstore-python-bundle_v3.txt"),
        k,
    )
    .unwrap();

    for (bad, why) in [
        (
            r#"{"type": "sigstoreSigned", "fulcio": {"caPath": "fulcio.pem", "subjectEmail": "a@b"}}"#,
            "oidcIssuer",
        ),
        (
            r#"{"type": "sigstoreSigned", "trustedRootPath": "x.json"}"#,
            "needs a fulcio section",
        ),
        (
            r#"{"type": "sigstoreSigned", "fulcio": {"oidcIssuer": "i", "subjectEmail": "a@b"}}"#,
            "fulcio.caPath",
        ),
        (
            r#"{"type": "sigstoreSigned", "fulcio": {"oidcIssuer": "i", "subjectIdentityRegexp": "("}}"#,
            "regular expression",
        ),
    ] {
        let e = write(format!(r#"{{"default": [{bad}]}}"#)).unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}
