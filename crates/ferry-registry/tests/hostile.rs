//! Hostile and broken servers (ferry-test's hostile server): every body read into memory is capped with
//! the limit named, Link cycles end, drips fail within one throughput window, headers have a deadline,
//! and credentials never go to a plain-HTTP realm off loopback. Each test bounds its own run time so a
//! regression fails instead of hanging.

use std::time::Duration;

use ferry_oci::Digest;
use ferry_registry::retry::RetryPolicy;
use ferry_registry::{
    ClientOptions, Credential, CredentialStore, Limits, RegistryClient, RegistryError, Repository,
};
use ferry_test::faults::{Fault, FaultProxy, Rule};
use ferry_test::hostile::{HostileServer, Hostility};
use ferry_test::{Mode, Registry, fixtures};

/// Small windows so a drip fails in seconds; few, quick retries.
fn options() -> ClientOptions {
    ClientOptions {
        plain_http: true,
        certs_d_roots: Vec::new(),
        retry: RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        limits: Limits {
            min_bytes: 1024,
            window: Duration::from_secs(2),
            headers: Duration::from_secs(2),
        },
        ..ClientOptions::default()
    }
}

fn repo_on(server: &HostileServer, opts: ClientOptions) -> Repository {
    Repository::new(
        RegistryClient::new(opts).unwrap(),
        &server.host(),
        "hostile/app",
    )
}

/// Fails the test instead of hanging when a guard is missing.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("a hostile server must not hold the client for a minute")
}

fn message(e: &RegistryError) -> String {
    ferry_oci::error_chain(e)
}

/// The error itself, or the last one before retries gave up.
fn last(e: &RegistryError) -> &RegistryError {
    match e {
        RegistryError::RetriesExhausted { last, .. } => last,
        e => e,
    }
}

#[tokio::test]
async fn endless_error_body_is_read_only_as_an_excerpt() {
    let server = HostileServer::start(Hostility::EndlessError);
    let repo = repo_on(&server, options());
    let err = bounded(repo.resolve("1")).await.unwrap_err();
    let text = message(&err);
    assert!(
        matches!(last(&err), RegistryError::Status { status: 500, .. }),
        "{text}"
    );
    assert!(
        text.len() < 1000,
        "the excerpt is short: {} bytes",
        text.len()
    );
}

#[tokio::test]
async fn endless_token_response_is_refused_at_its_limit() {
    let server = HostileServer::start(Hostility::EndlessToken);
    let err = bounded(repo_on(&server, options()).resolve("1"))
        .await
        .unwrap_err();
    let text = message(&err);
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                kind: "token responses",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("262144-byte limit"), "{text}");
}

#[tokio::test]
async fn endless_listing_pages_are_refused_at_their_limit() {
    let server = HostileServer::start(Hostility::EndlessPage);
    let repo = repo_on(&server, options());
    let err = bounded(repo.list_tags()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                kind: "a page of a listing",
                ..
            }
        ),
        "{}",
        message(&err)
    );
    let client = RegistryClient::new(options()).unwrap();
    let err = bounded(client.catalog(&server.host(), None))
        .await
        .unwrap_err();
    assert!(
        message(&err).contains("8388608-byte limit for a page of a listing"),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn endless_referrers_and_manifests_are_refused_at_their_limits() {
    let server = HostileServer::start(Hostility::EndlessReferrers);
    let subject = Digest::of(b"subject");
    let err = bounded(repo_on(&server, options()).list_referrers(&subject))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                kind: "a referrers index",
                ..
            }
        ),
        "{}",
        message(&err)
    );
    let server = HostileServer::start(Hostility::EndlessManifest);
    let err = bounded(repo_on(&server, options()).resolve("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                kind: "manifests",
                ..
            }
        ),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn link_cycle_longer_than_one_page_is_detected() {
    let server = HostileServer::start(Hostility::LinkCycle);
    let err = bounded(repo_on(&server, options()).list_tags())
        .await
        .unwrap_err();
    let text = message(&err);
    assert!(
        text.contains("loop back") && text.contains("page=b"),
        "{text}"
    );
    // first → B → A → B: three pages fetched, the link back to B refused before any request.
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn dripping_body_fails_within_a_throughput_window() {
    let server = HostileServer::start(Hostility::DripBody);
    let err = bounded(repo_on(&server, options()).resolve("1"))
        .await
        .unwrap_err();
    let text = message(&err);
    assert!(
        matches!(last(&err), RegistryError::Stalled { .. }),
        "{text}"
    );
    assert!(
        text.contains("under the minimum of 1024 bytes per 2s"),
        "{text}"
    );
}

#[tokio::test]
async fn dripping_headers_hit_the_header_deadline() {
    let server = HostileServer::start(Hostility::DripHeaders);
    let err = bounded(repo_on(&server, options()).resolve("1"))
        .await
        .unwrap_err();
    assert!(
        matches!(last(&err), RegistryError::NoResponse { .. }),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn slow_but_honest_link_passes() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(9, &[24 << 10], "amd64");
    reg.seed("slow/app", Some("1"), &image).await;
    let proxy = FaultProxy::start(&reg.host());
    // 2 KiB every 0.5 s: 4 KiB/s, above the 1 KiB per 2 s minimum, for about six seconds.
    proxy.add(Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Fault::SlowBody {
            chunk: 2048,
            pause: Duration::from_millis(500),
        },
        usize::MAX,
    ));
    let client = RegistryClient::new(options()).unwrap();
    let repo = Repository::new(client, &proxy.host(), "slow/app");
    let (desc, bytes) = repo.resolve("1").await.unwrap();
    let manifest = ferry_oci::Manifest::parse(&desc.media_type, &bytes).unwrap();
    let layer = manifest.layers.last().unwrap();
    let (mut body, _) = ferry_store::ReadStore::fetch_blob(&repo, layer, 0)
        .await
        .unwrap();
    let mut got = 0u64;
    while let Some(chunk) = body.next_chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, layer.size);
}

#[tokio::test]
async fn credentials_never_go_to_a_plain_http_realm_off_loopback() {
    let server = HostileServer::start(Hostility::RemotePlainRealm);
    let opts = ClientOptions {
        // The registry is reached over plain HTTP because it is loopback, not because of --plain-http.
        plain_http: false,
        credentials: CredentialStore::with_files(
            Some(Credential::Basic {
                username: "u".into(),
                password: "secret".into(),
            }),
            vec![],
        ),
        ..options()
    };
    let err = bounded(repo_on(&server, opts).resolve("1"))
        .await
        .unwrap_err();
    let text = message(&err);
    assert!(
        matches!(err, RegistryError::InsecureCredentials { .. }),
        "{text}"
    );
    assert!(
        text.contains("http://10.255.255.1:9")
            && text.contains("plain HTTP")
            && text.contains("loopback"),
        "{text}"
    );
}
