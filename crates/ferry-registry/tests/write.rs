//! The registry write side against the real registry (every mode), and resume against a hand-written
//! upload endpoint that breaks a chunk on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest};
use ferry_registry::retry::RetryPolicy;
use ferry_registry::{
    ClientOptions, Credential, CredentialStore, RegistryClient, RegistryError, Repository,
};
use ferry_store::testing::MemoryStore;
use ferry_store::{OciLayout, StoreError, WriteStore, transfer};
use ferry_test::{Artifact, Blob, Mode, Registry, fixtures};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: u64 = 64 * 1024;

fn options(chunk: u64) -> ClientOptions {
    ClientOptions {
        chunk_threshold: chunk,
        chunk_size: chunk,
        // Resumes and restarts back off; tests need not wait.
        retry: RetryPolicy {
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

fn credentials() -> CredentialStore {
    CredentialStore::with_files(
        Some(Credential::Basic {
            username: ferry_test::USER.into(),
            password: ferry_test::PASSWORD.into(),
        }),
        vec![],
    )
}

fn client(reg: &Registry) -> Arc<RegistryClient> {
    let mut opts = options(CHUNK);
    opts.plain_http = reg.scheme() == "http";
    opts.ca_files = reg
        .ca_file()
        .map(|p| vec![p.to_path_buf()])
        .unwrap_or_default();
    if reg.credentials().is_some() {
        opts.credentials = credentials();
    }
    RegistryClient::new(opts).expect("client")
}

fn desc(blob: &Blob) -> Descriptor {
    Descriptor::new(
        blob.media_type.clone(),
        blob.digest().parse().unwrap(),
        blob.size(),
    )
}

/// Upload through a writer in uneven pieces, as a transfer would.
async fn upload(repo: &Repository, blob: &Blob) {
    let mut w = repo.blob_writer(&desc(blob)).await.expect("blob_writer");
    for piece in blob.bytes.chunks(10_000) {
        w.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    w.commit().await.expect("commit");
}

/// Blobs, then manifests children first, as a push does.
async fn push(repo: &Repository, artifact: &Artifact) {
    for blob in artifact.all_blobs() {
        upload(repo, &blob).await;
    }
    for manifest in artifact.all_manifests() {
        repo.put_manifest(&desc(&manifest), manifest.bytes.clone())
            .await
            .expect("put_manifest");
    }
}

/// Small blobs go in one request, a multi-chunk layer in 64 KiB PATCHes; manifests arrive byte for byte
/// with their media type; tags point at them.
async fn roundtrip(mode: Mode) {
    let reg = Registry::start(mode);
    let repo = Repository::new(client(&reg), &reg.host(), "ferry/write");
    let image = fixtures::oci_image_sized(1, &[1_000, 5 * CHUNK as usize + 123], "amd64");
    let layer = &image.blobs.iter().max_by_key(|b| b.size()).unwrap().clone();
    assert!(layer.size() > 5 * CHUNK);
    assert!(!repo.exists(&desc(layer)).await.unwrap());
    push(&repo, &image).await;
    for blob in image.all_blobs() {
        assert!(
            reg.blob_exists("ferry/write", &blob.digest()).await,
            "{mode:?}"
        );
        assert!(repo.exists(&desc(&blob)).await.unwrap());
    }
    let docker = fixtures::docker_image(2, 2, "arm64");
    push(&repo, &docker).await;
    for artifact in [&image, &docker] {
        let (content_type, bytes) = reg
            .get_manifest("ferry/write", &artifact.digest())
            .await
            .expect("manifest pushed");
        assert_eq!(content_type, artifact.manifest.media_type, "{mode:?}");
        assert_eq!(bytes, artifact.manifest.bytes, "{mode:?}: byte for byte");
    }
    repo.tag(&desc(&image.manifest), image.manifest.bytes.clone(), "v1")
        .await
        .expect("tag");
    let (_, bytes) = reg.get_manifest("ferry/write", "v1").await.expect("tagged");
    assert_eq!(bytes, image.manifest.bytes);
    if mode == Mode::Token {
        // Writes ask for pull,push, once per repository.
        assert!(
            reg.token_scopes()
                .iter()
                .any(|s| s == &["repository:ferry/write:pull,push"]),
            "{:?}",
            reg.token_scopes()
        );
    }
}

#[tokio::test]
async fn roundtrip_plain() {
    roundtrip(Mode::Plain).await;
}

#[tokio::test]
async fn roundtrip_tls() {
    roundtrip(Mode::Tls).await;
}

#[tokio::test]
async fn roundtrip_basic() {
    roundtrip(Mode::Basic).await;
}

#[tokio::test]
async fn roundtrip_token() {
    roundtrip(Mode::Token).await;
}

#[tokio::test]
async fn exists_checks_presence_and_size() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(3, 1, "amd64");
    reg.seed("ferry/exists", None, &image).await;
    let repo = Repository::new(client(&reg), &reg.host(), "ferry/exists");
    let blob = &image.blobs[0];
    assert!(repo.exists(&desc(blob)).await.unwrap());
    let mut wrong_size = desc(blob);
    wrong_size.size += 1;
    assert!(!repo.exists(&wrong_size).await.unwrap(), "size differs");
    let absent = Blob::new(fixtures::OCI_LAYER_GZIP, &b"not pushed"[..]);
    assert!(!repo.exists(&desc(&absent)).await.unwrap());
    // Manifests are asked for at the manifests endpoint.
    assert!(repo.exists(&desc(&image.manifest)).await.unwrap());
    let other = fixtures::oci_image(4, 1, "amd64");
    assert!(!repo.exists(&desc(&other.manifest)).await.unwrap());
}

/// Wrong bytes stream through `transfer` (a layout whose blob files were overwritten, same size); the
/// transfer refuses to commit, and the registry never shows the blob, monolithic or chunked.
#[tokio::test]
async fn digest_mismatch_never_becomes_visible() {
    let reg = Registry::start(Mode::Plain);
    let repo = Repository::new(client(&reg), &reg.host(), "ferry/mismatch");
    let layout = OciLayout::open_or_create(&reg.dir().join("layout")).unwrap();
    let image = fixtures::oci_image_sized(5, &[500, 3 * CHUNK as usize], "amd64");
    for blob in &image.blobs {
        let mut tampered = blob.bytes.to_vec();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0xff;
        std::fs::write(layout.blob_path(&desc(blob).digest), tampered).unwrap();
    }
    for blob in &image.blobs {
        let d = desc(blob);
        let writer = repo.blob_writer(&d).await.unwrap();
        let err = transfer(&layout, &d, vec![writer], &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!reg.blob_exists("ferry/mismatch", &blob.digest()).await);
        assert!(!repo.exists(&d).await.unwrap());
    }
}

#[tokio::test]
async fn manifest_with_missing_layer_is_recognisable() {
    let reg = Registry::start(Mode::Plain);
    let repo = Repository::new(client(&reg), &reg.host(), "ferry/missing");
    let image = fixtures::oci_image(6, 2, "amd64");
    // Everything but the last layer.
    for blob in &image.blobs[..image.blobs.len() - 1] {
        upload(&repo, blob).await;
    }
    let err = repo
        .put_manifest(&desc(&image.manifest), image.manifest.bytes.clone())
        .await
        .unwrap_err();
    // Retryable: the next attempt walks the image again and uploads what is missing (self-heal).
    assert!(err.is_transient());
    let found = RegistryError::find(&err).expect("a registry error");
    assert!(found.is_missing_references(), "{found}");
    let RegistryError::MissingReferences {
        registry,
        repository,
        digest,
        detail,
    } = found
    else {
        unreachable!()
    };
    assert_eq!(
        (registry.as_str(), repository.as_str()),
        (reg.host().as_str(), "ferry/missing")
    );
    assert_eq!(digest, &image.digest());
    assert!(detail.contains("MANIFEST_BLOB_UNKNOWN"), "{detail}");
    let message = err.to_string();
    assert!(
        message.contains(&image.digest()) && message.contains("ferry/missing"),
        "{message}"
    );
    assert!(
        reg.get_manifest("ferry/missing", &image.digest())
            .await
            .is_none()
    );
}

async fn mount_between_repositories(mode: Mode) {
    let reg = Registry::start(mode);
    let client = client(&reg);
    let a = Repository::new(client.clone(), &reg.host(), "ferry/a");
    let b = Repository::new(client.clone(), &reg.host(), "ferry/b");
    let blob = Blob::new(fixtures::OCI_LAYER_GZIP, vec![7u8; 4096]);
    assert!(
        !b.mount(&desc(&blob)).await.unwrap(),
        "never seen: no mount"
    );
    upload(&a, &blob).await;
    assert!(!reg.blob_exists("ferry/b", &blob.digest()).await);
    assert!(b.mount(&desc(&blob)).await.unwrap(), "{mode:?}");
    assert!(reg.blob_exists("ferry/b", &blob.digest()).await);
    if mode == Mode::Token {
        let both = [
            "repository:ferry/b:pull,push".to_string(),
            "repository:ferry/a:pull".to_string(),
        ];
        assert!(
            reg.token_scopes().iter().any(|s| s == &both),
            "{:?}",
            reg.token_scopes()
        );
    }
}

#[tokio::test]
async fn mount_plain() {
    mount_between_repositories(Mode::Plain).await;
}

#[tokio::test]
async fn mount_token() {
    mount_between_repositories(Mode::Token).await;
}

/// The registry opens an upload session instead of mounting (the source no longer has the blob):
/// `mount` says false and nothing appears.
#[tokio::test]
async fn mount_refused() {
    let reg = Registry::start(Mode::Plain);
    let client = client(&reg);
    let a = Repository::new(client.clone(), &reg.host(), "ferry/a");
    let b = Repository::new(client.clone(), &reg.host(), "ferry/b");
    let blob = Blob::new(fixtures::OCI_LAYER_GZIP, vec![9u8; 1024]);
    upload(&a, &blob).await;
    let url = format!("{}/v2/ferry/a/blobs/{}", reg.base_url(), blob.digest());
    let deleted = reg.client().delete(&url).send().await.unwrap().status();
    assert_eq!(deleted.as_u16(), 202, "DELETE {url}");
    assert!(!b.mount(&desc(&blob)).await.unwrap());
    assert!(!reg.blob_exists("ferry/b", &blob.digest()).await);
}

// ---------------------------------------------------------------------------------------------
// A fake upload endpoint: HTTP/1.1 by hand, one request per connection, just enough of the
// distribution upload API for one blob, with faults on demand.

#[derive(Default)]
struct FakeState {
    /// Which request breaks (method, 1-based count of that method), and how many of its body bytes the
    /// fake keeps before the connection dies without an answer.
    cut: Option<(&'static str, usize, usize)>,
    /// Status requests answer 404, as after a registry restart or a purged session.
    forget: bool,
    /// When not 0, every PATCH whose count is a multiple of it breaks as `cut` says.
    cut_every: usize,
    /// The main listener answers 401 to requests without Authorization.
    require_basic: bool,
    /// Absolute base URL for the Location of new sessions; relative when None.
    session_base: Option<String>,

    /// The current session's bytes.
    data: Vec<u8>,
    sessions: usize,
    /// Requests per method.
    counts: HashMap<String, usize>,
    /// Every PATCH as (first byte, length).
    patches: Vec<(u64, usize)>,
    status_requests: usize,
    /// The blob, when a closing PUT arrived and its digest matched.
    committed: Option<Vec<u8>>,
    /// (listener, method, had Authorization) of each request.
    log: Vec<(&'static str, String, bool)>,
}

struct Fake {
    main: SocketAddr,
    other: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl Fake {
    async fn start(state: FakeState) -> Fake {
        let state = Arc::new(Mutex::new(state));
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            main: main.local_addr().unwrap(),
            other: other.local_addr().unwrap(),
            state: state.clone(),
        };
        for (listener, name) in [(main, "main"), (other, "other")] {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(handle(stream, name, state.clone()));
                }
            });
        }
        fake
    }

    fn repository(&self, chunk: u64, credentials: Option<CredentialStore>) -> Repository {
        self.repository_with(options(chunk), credentials)
    }

    fn repository_with(
        &self,
        mut opts: ClientOptions,
        credentials: Option<CredentialStore>,
    ) -> Repository {
        opts.plain_http = true;
        if let Some(c) = credentials {
            opts.credentials = c;
        }
        let client = RegistryClient::new(opts).unwrap();
        Repository::new(client, &self.main.to_string(), "fake/repo")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

/// One request as the fake sees it.
struct Request {
    listener: &'static str,
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn authorized(&self) -> bool {
        self.headers.contains_key("authorization")
    }

    /// First byte of a PATCH (`Content-Range: <first>-<last>`).
    fn first_byte(&self) -> usize {
        let range = &self.headers["content-range"];
        range.split('-').next().unwrap().parse().unwrap()
    }
}

async fn handle(stream: TcpStream, listener: &'static str, state: Arc<Mutex<FakeState>>) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let mut req = Request {
        listener,
        method: parts.next().unwrap_or_default().to_string(),
        target: parts.next().unwrap_or_default().to_string(),
        headers: HashMap::new(),
        body: Vec::new(),
    };
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        req.headers
            .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let length: usize = req
        .headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let cut = {
        let mut s = state.lock().unwrap();
        s.log.push((listener, req.method.clone(), req.authorized()));
        if s.refuses(&req) {
            None
        } else {
            if req.method == "PATCH" {
                s.patches.push((req.first_byte() as u64, length));
            }
            let count = s.counts.entry(req.method.clone()).or_default();
            *count += 1;
            let count = *count;
            s.cut
                .filter(|(m, n, _)| {
                    *m == req.method
                        && (*n == count || (s.cut_every > 0 && count.is_multiple_of(s.cut_every)))
                })
                .map(|(_, _, keep)| keep)
        }
    };
    if let Some(keep) = cut {
        // Like a registry, the fake stored what arrived before the connection died.
        let mut kept = vec![0; keep];
        stream.read_exact(&mut kept).await.unwrap();
        state.lock().unwrap().data.extend_from_slice(&kept);
        return;
    }
    req.body = vec![0; length];
    stream.read_exact(&mut req.body).await.unwrap();
    let (status, extra) = state.lock().unwrap().answer(req);
    let mut head = format!("HTTP/1.1 {status} Fake\r\ncontent-length: 0\r\nconnection: close\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.get_mut().write_all(head.as_bytes()).await;
    let _ = stream.get_mut().shutdown().await;
}

impl FakeState {
    fn refuses(&self, req: &Request) -> bool {
        req.listener == "main" && self.require_basic && !req.authorized()
    }

    fn answer(&mut self, req: Request) -> (u16, Vec<(&'static str, String)>) {
        if self.refuses(&req) {
            return (
                401,
                vec![("www-authenticate", r#"Basic realm="fake""#.into())],
            );
        }
        let range = format!("0-{}", self.data.len().saturating_sub(1));
        match req.method.as_str() {
            "POST" => {
                self.sessions += 1;
                self.data.clear();
                let path = format!("/v2/fake/repo/blobs/uploads/s{}?n=0", self.sessions);
                let location = match &self.session_base {
                    Some(base) => format!("{base}{path}"),
                    None => path,
                };
                (202, vec![("location", location), ("range", "0-0".into())])
            }
            "PATCH" => {
                if req.first_byte() != self.data.len() {
                    return (416, vec![("range", range)]);
                }
                self.data.extend_from_slice(&req.body);
                let range = format!("0-{}", self.data.len() - 1);
                (202, vec![("location", self.here(&req)), ("range", range)])
            }
            "GET" => {
                self.status_requests += 1;
                if self.forget {
                    return (404, vec![]);
                }
                (204, vec![("location", self.here(&req)), ("range", range)])
            }
            "PUT" => {
                self.data.extend_from_slice(&req.body);
                let digest = req
                    .target
                    .split(['?', '&'])
                    .find_map(|p| p.strip_prefix("digest="))
                    .unwrap()
                    .replace("%3A", ":");
                if Digest::of(&self.data).to_string() != digest {
                    return (400, vec![]);
                }
                self.committed = Some(self.data.clone());
                (201, vec![("docker-content-digest", digest)])
            }
            "DELETE" => (204, vec![]),
            _ => (404, vec![]),
        }
    }

    /// An absolute Location on the host the request went to: registries send both kinds.
    fn here(&self, req: &Request) -> String {
        format!(
            "http://{}/v2/fake/repo/blobs/uploads/s{}?n={}",
            req.headers["host"],
            self.sessions,
            self.data.len()
        )
    }
}

/// 3500 bytes in 1000-byte chunks: PATCHes at 0, 1000 and 2000, the last 500 bytes with the PUT.
fn content() -> (Vec<u8>, Descriptor) {
    let bytes: Vec<u8> = (0..3500u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let d = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &bytes);
    (bytes, d)
}

/// Upload `bytes` through a transfer from an in-memory source (1 KiB pieces), so a writer that wants bytes
/// again gets them as a push would.
async fn write_all(repo: &Repository, bytes: &[u8], d: &Descriptor) -> Result<(), StoreError> {
    let source = MemoryStore::new("memory");
    assert_eq!(&source.add(&d.media_type, bytes.to_vec()), d);
    let writer = repo.blob_writer(d).await?;
    transfer(&source, d, vec![writer], &|_| {})
        .await
        .map(|_| ())
}

/// Start a fake with `state`, upload [`content`] through it with `opts`, and check exactly the content was
/// committed.
async fn committed_through(state: FakeState, opts: ClientOptions) -> Fake {
    let fake = Fake::start(state).await;
    let (bytes, d) = content();
    write_all(&fake.repository_with(opts, None), &bytes, &d)
        .await
        .unwrap();
    assert_eq!(fake.state().committed.as_deref(), Some(&bytes[..]));
    fake
}

/// The second PATCH dies after 400 of its 1000 bytes; the registry says it has 1400; the transfer reads
/// the source again and the upload goes on from byte 1400 in the same session; an empty PUT closes it.
#[tokio::test]
async fn broken_chunk_resumes_where_the_registry_stands() {
    let fake = committed_through(
        FakeState {
            cut: Some(("PATCH", 2, 400)),
            ..FakeState::default()
        },
        options(1000),
    )
    .await;
    let s = fake.state();
    assert_eq!(
        s.patches,
        vec![
            (0, 1000),
            (1000, 1000),
            (1400, 600),
            (2000, 1000),
            (3000, 500)
        ]
    );
    assert_eq!((s.sessions, s.status_requests), (1, 1));
}

/// One streamed PATCH for the whole blob (the default) dies after 300 bytes: the registry kept them, so
/// the rest follows from byte 300 in the same session.
#[tokio::test]
async fn broken_streamed_patch_resumes_in_the_same_session() {
    let streaming = ClientOptions {
        chunk_size: u64::MAX,
        ..options(1000)
    };
    let fake = committed_through(
        FakeState {
            cut: Some(("PATCH", 1, 300)),
            ..FakeState::default()
        },
        streaming,
    )
    .await;
    let s = fake.state();
    assert_eq!(s.patches, vec![(0, 3500), (300, 3200)]);
    assert_eq!((s.sessions, s.status_requests, s.counts["PUT"]), (1, 1, 1));
}

/// The closing PUT (empty: every byte went with the PATCHes) gets no answer: the registry says it holds
/// the whole blob, so the PUT is sent again.
#[tokio::test]
async fn broken_closing_put_is_sent_again() {
    let fake = committed_through(
        FakeState {
            cut: Some(("PUT", 1, 0)),
            ..FakeState::default()
        },
        options(1000),
    )
    .await;
    let s = fake.state();
    assert_eq!((s.sessions, s.status_requests, s.counts["PUT"]), (1, 1, 2));
}

/// A monolithic upload that breaks simply starts over in a new session.
#[tokio::test]
async fn broken_monolithic_upload_restarts() {
    let fake = committed_through(
        FakeState {
            cut: Some(("PUT", 1, 1000)),
            ..FakeState::default()
        },
        options(1 << 20),
    )
    .await;
    let s = fake.state();
    assert!(s.patches.is_empty());
    assert_eq!((s.sessions, s.status_requests, s.counts["PUT"]), (2, 0, 2));
}

/// The session is gone after a later chunk broke (as distribution 2.x cancels one whose stored size no
/// longer matches the URL): a new session starts from byte 0 within the same transfer, the source is read
/// again, and only the new session's bytes are committed.
#[tokio::test]
async fn lost_session_starts_over_in_a_new_session() {
    let fake = committed_through(
        FakeState {
            cut: Some(("PATCH", 2, 400)),
            forget: true,
            ..FakeState::default()
        },
        options(1000),
    )
    .await;
    let s = fake.state();
    assert_eq!(
        s.patches,
        vec![
            (0, 1000),
            (1000, 1000),
            (0, 1000),
            (1000, 1000),
            (2000, 1000),
            (3000, 500)
        ]
    );
    assert_eq!((s.sessions, s.status_requests), (2, 1));
}

/// A session lost every time: the transfer gives up after its rewinds with a transient error that names
/// the blob and the repository, and nothing is committed.
#[tokio::test]
async fn a_session_lost_every_time_is_a_transient_error() {
    let fake = Fake::start(FakeState {
        cut: Some(("PATCH", 2, 400)),
        forget: true,
        cut_every: 2,
        ..FakeState::default()
    })
    .await;
    let (bytes, d) = content();
    let err = write_all(&fake.repository(1000, None), &bytes, &d)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let message = ferry_oci::error_chain(&err);
    assert!(
        message.contains(&d.digest.to_string()) && message.contains("fake/repo"),
        "{message}"
    );
    assert!(fake.state().committed.is_none());
}

/// Credentials go to the registry's host only, never to an upload Location on another one.
#[tokio::test]
async fn no_credentials_for_another_host() {
    let fake = Fake::start(FakeState {
        require_basic: true,
        ..FakeState::default()
    })
    .await;
    fake.state().session_base = Some(format!("http://{}", fake.other));
    let (bytes, d) = content();
    let repo = fake.repository(1 << 20, Some(credentials()));
    write_all(&repo, &bytes, &d).await.unwrap();
    let s = fake.state();
    assert_eq!(s.committed.as_deref(), Some(&bytes[..]));
    let log: Vec<_> = s.log.iter().map(|(l, m, a)| (*l, m.as_str(), *a)).collect();
    assert_eq!(
        log,
        vec![
            ("main", "POST", false),
            ("main", "POST", true),
            ("other", "PUT", false)
        ]
    );
}
