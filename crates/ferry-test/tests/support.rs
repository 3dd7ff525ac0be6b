//! Starts each registry mode for real and round-trips fixtures through it.

use ferry_test::fixtures::{self, OCI_INDEX, OCI_MANIFEST};
use ferry_test::{Artifact, Mode, PASSWORD, Registry, USER};

fn index_and_chart() -> (Artifact, Artifact) {
    let index = fixtures::oci_index(vec![
        (fixtures::oci_image(1, 2, "amd64"), "linux", "amd64", None),
        (
            fixtures::oci_image(2, 2, "arm64/v8"),
            "linux",
            "arm64",
            Some("v8"),
        ),
    ]);
    (index, fixtures::helm_chart(3))
}

async fn round_trip(mode: Mode) -> Registry {
    let registry = Registry::start(mode);
    assert_eq!(registry.mode(), mode);
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(
        registry.scheme(),
        if mode == Mode::Tls { "https" } else { "http" }
    );
    assert_eq!(registry.ca_file().is_some(), mode == Mode::Tls);

    let (index, chart) = index_and_chart();
    registry.seed("ferry/multi", Some("v1"), &index).await;
    registry.seed("charts/demo", None, &chart).await;

    let (content_type, bytes) = registry
        .get_manifest("ferry/multi", "v1")
        .await
        .expect("tagged index");
    assert_eq!(content_type, OCI_INDEX);
    assert_eq!(bytes, index.manifest.bytes);
    for child in &index.children {
        let (content_type, bytes) = registry
            .get_manifest("ferry/multi", &child.digest())
            .await
            .expect("child");
        assert_eq!(content_type, OCI_MANIFEST);
        assert_eq!(bytes, child.manifest.bytes);
    }
    for blob in index.all_blobs() {
        assert!(
            registry.blob_exists("ferry/multi", &blob.digest()).await,
            "{}",
            blob.digest()
        );
    }
    // The chart manifest has no mediaType field; distribution still serves it as an OCI manifest.
    let (content_type, bytes) = registry
        .get_manifest("charts/demo", &chart.digest())
        .await
        .expect("chart");
    assert_eq!(content_type, OCI_MANIFEST);
    assert_eq!(bytes, chart.manifest.bytes);
    for blob in &chart.blobs {
        assert!(registry.blob_exists("charts/demo", &blob.digest()).await);
        assert!(
            !registry.blob_exists("ferry/multi", &blob.digest()).await,
            "blobs are per repository"
        );
    }
    assert!(
        registry
            .get_manifest("ferry/multi", "missing")
            .await
            .is_none()
    );
    assert!(
        registry.get_manifest("charts/demo", "v1").await.is_none(),
        "pushed by digest only"
    );
    registry
}

/// An unauthenticated client sees the registry's challenge in the auth modes.
async fn anonymous_status(registry: &Registry) -> u16 {
    let url = format!("{}/v2/ferry/multi/tags/list", registry.base_url());
    registry
        .client()
        .get(url)
        .send()
        .await
        .expect("anonymous GET")
        .status()
        .as_u16()
}

#[tokio::test]
async fn plain_registry_round_trips() {
    let registry = round_trip(Mode::Plain).await;
    assert_eq!(anonymous_status(&registry).await, 200);
    assert!(
        registry
            .storage_dir()
            .join("docker/registry/v2/repositories/ferry/multi")
            .is_dir()
    );
}

#[tokio::test]
async fn tls_registry_round_trips_and_needs_the_ca() {
    let registry = round_trip(Mode::Tls).await;
    assert_eq!(anonymous_status(&registry).await, 200);
    let pem = std::fs::read(registry.ca_file().unwrap()).unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    // A client that does not trust the test CA fails certificate verification.
    let err = ferry_test::client(None)
        .get(format!("{}/v2/", registry.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // `localhost` is in the certificate too.
    let by_name = format!("https://localhost:{}/v2/", registry.port());
    assert_eq!(
        registry
            .client()
            .get(by_name)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn basic_registry_round_trips_and_challenges() {
    let registry = round_trip(Mode::Basic).await;
    assert_eq!(anonymous_status(&registry).await, 401);
    let url = format!("{}/v2/", registry.base_url());
    let wrong = registry
        .client()
        .get(&url)
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = registry
        .client()
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn token_registry_round_trips_and_token_server_works() {
    let registry = round_trip(Mode::Token).await;
    let client = registry.client();

    // The registry challenges with our realm and service.
    let response = client
        .get(format!(
            "{}/v2/ferry/multi/manifests/v1",
            registry.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let realm = registry.token_realm().unwrap();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("service=\"ferry-test\""), "{challenge}");
    assert!(
        challenge.contains("scope=\"repository:ferry/multi:pull\""),
        "{challenge}"
    );

    // No credentials, or wrong ones: 401.
    let token_url = format!("{realm}?service=ferry-test&scope=repository%3Aferry%2Fmulti%3Apull");
    assert_eq!(client.get(&token_url).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&token_url)
            .basic_auth(USER, Some("nope"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(registry.token_requests(), 2);
    assert_eq!(registry.tokens_issued(), 0);

    // With credentials the token works against the real registry.
    let body: serde_json::Value = serde_json::from_slice(
        &client
            .get(&token_url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["expires_in"], 300);
    let token = body["token"].as_str().unwrap();
    let manifest = client
        .get(format!(
            "{}/v2/ferry/multi/manifests/v1",
            registry.base_url()
        ))
        .header("accept", OCI_INDEX)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    // A pull token does not allow pushing.
    let upload = client
        .post(format!(
            "{}/v2/ferry/multi/blobs/uploads/",
            registry.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 401);
    // Nor reading another repository.
    let other = client
        .get(format!("{}/v2/charts/demo/tags/list", registry.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    assert_eq!(registry.token_requests(), 3);
    assert_eq!(registry.tokens_issued(), 1);
    assert_eq!(
        registry.token_scopes(),
        vec![vec!["repository:ferry/multi:pull".to_string()]]
    );

    // Several scopes, including catalog access.
    let multi = format!(
        "{realm}?service=ferry-test&scope=repository%3Acharts%2Fdemo%3Apull%2Cpush&scope=registry%3Acatalog%3A%2A"
    );
    let body: serde_json::Value = serde_json::from_slice(
        &client
            .get(&multi)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let catalog = client
        .get(format!("{}/v2/_catalog", registry.base_url()))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);
    let catalog: serde_json::Value =
        serde_json::from_slice(&catalog.bytes().await.unwrap()).unwrap();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["charts/demo", "ferry/multi"])
    );
}

#[tokio::test]
async fn other_fixtures_are_accepted_by_distribution() {
    let registry = Registry::start(Mode::Plain);
    let docker_list = fixtures::docker_manifest_list(vec![
        (
            fixtures::docker_image(10, 1, "amd64"),
            "linux",
            "amd64",
            None,
        ),
        (
            fixtures::docker_image(11, 2, "arm/v7"),
            "linux",
            "arm",
            Some("v7"),
        ),
    ]);
    let nested = fixtures::nested_index(
        fixtures::oci_index(vec![(
            fixtures::oci_image(12, 1, "amd64"),
            "linux",
            "amd64",
            None,
        )]),
        vec![(fixtures::oci_image(13, 1, "s390x"), "linux", "s390x", None)],
    );
    let image = fixtures::oci_image(14, 1, "amd64");
    let signature = fixtures::cosign_signature(&image.digest(), 14);
    let sbom = fixtures::artifact_with_subject(&image.manifest, "application/spdx+json", 14);
    let foreign = fixtures::image_with_foreign_layer(15);
    let shared_a = fixtures::image_with_shared_and_duplicate_layers(16);
    let shared_b = fixtures::image_with_shared_and_duplicate_layers(17);
    let big = fixtures::oci_image_sized(18, &[3 << 20, 100], "amd64");

    registry.seed("docker/list", Some("v1"), &docker_list).await;
    registry.seed("nested/index", Some("v1"), &nested).await;
    registry.seed("signed/app", Some("v1"), &image).await;
    registry
        .seed(
            "signed/app",
            Some(&fixtures::cosign_tag(&image.digest())),
            &signature,
        )
        .await;
    registry.seed("signed/app", None, &sbom).await;
    registry.seed("foreign/app", Some("v1"), &foreign).await;
    registry.seed("shared/app", Some("a"), &shared_a).await;
    registry.seed("shared/app", Some("b"), &shared_b).await;
    registry.seed("big/app", Some("v1"), &big).await;

    for (repo, artifact) in [
        ("docker/list", &docker_list),
        ("nested/index", &nested),
        ("signed/app", &signature),
        ("signed/app", &sbom),
        ("foreign/app", &foreign),
        ("shared/app", &shared_b),
        ("big/app", &big),
    ] {
        let (content_type, bytes) = registry
            .get_manifest(repo, &artifact.digest())
            .await
            .expect(repo);
        assert_eq!(content_type, artifact.manifest.media_type, "{repo}");
        assert_eq!(bytes, artifact.manifest.bytes, "{repo}");
    }
    let foreign_manifest: serde_json::Value =
        serde_json::from_slice(&foreign.manifest.bytes).unwrap();
    let foreign_digest = foreign_manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(
        !registry.blob_exists("foreign/app", foreign_digest).await,
        "foreign layers are never uploaded"
    );

    // Distribution 2.8 refuses schema1 pushes unless compatibility.schema1.enabled is set.
    let (status, body) = registry
        .put_manifest("legacy/app", "latest", &fixtures::schema1_manifest())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("MANIFEST_INVALID"), "{body}");
}

#[test]
fn starts_from_a_plain_test_and_cleans_up() {
    let registry = Registry::start(Mode::Basic);
    let dir = registry.dir().to_path_buf();
    let host = registry.host();
    assert!(dir.is_dir());
    drop(registry);
    assert!(!dir.exists());
    assert!(
        std::net::TcpStream::connect(host).is_err(),
        "process killed"
    );
}
