//! A real `docker-registry` (CNCF distribution 2.8) process per test.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::artifact::{Artifact, Blob};
use crate::encode::{base64, percent_encode};
use crate::pki::{self, INSTALL_HINT};
use crate::token::{self, Access, TokenServer};
use crate::{Mode, PASSWORD, USER};

/// Every manifest media type, for `Accept` so the registry never converts or refuses.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v1+prettyjws, \
    application/vnd.docker.distribution.manifest.v1+json";

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A real `docker-registry` process on 127.0.0.1 with an ephemeral port and its own temp storage
/// dir. Killed (and temp dirs removed) on Drop.
///
/// TLS: only [`Mode::Tls`]. Distribution 2.8 serves htpasswd auth over plain HTTP without complaint
/// (the docs only recommend TLS), so [`Mode::Basic`] and [`Mode::Token`] (registry and token server)
/// are plain HTTP, which keeps auth and TLS failures apart.
pub struct Registry {
    mode: Mode,
    port: u16,
    child: Child,
    storage: PathBuf,
    log_file: PathBuf,
    ca_file: Option<PathBuf>,
    client_identity: Option<(PathBuf, PathBuf)>,
    token_server: Option<TokenServer>,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

enum StartError {
    PortTaken,
    Failed(String),
}

fn yaml_str(path: &Path) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(&path.to_string_lossy()).expect("path string")
}

fn free_port() -> u16 {
    // Bind-and-release can race with other processes; a conflict is detected and retried.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

/// Runs `fut` to completion on a fresh runtime in a scoped thread: works whether or not the caller
/// is already inside a tokio runtime.
fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(fut)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The reqwest client tests should use for a registry: trusts the test CA (when `ca_pem` is set),
/// no proxies (a CI `HTTP_PROXY` must not intercept 127.0.0.1).
pub fn client(ca_pem: Option<&[u8]>) -> reqwest::Client {
    client_builder(ca_pem).build().expect("reqwest client")
}

fn client_builder(ca_pem: Option<&[u8]>) -> reqwest::ClientBuilder {
    // reqwest is built without a default crypto provider; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().no_proxy();
    if let Some(pem) = ca_pem {
        builder =
            builder.tls_certs_only([reqwest::Certificate::from_pem(pem).expect("test CA PEM")]);
    }
    builder
}

/// The harness's own client for a registry in `mode` (seeding, readiness): the test CA, the client
/// certificate for [`Mode::Mtls`]; the self-signed certificate is accepted as is (webpki would not take it
/// as a trust anchor for itself, and the harness is not what is under test).
fn mode_client(mode: Mode) -> reqwest::Client {
    let material = pki::tls();
    match mode {
        Mode::Tls => client(Some(&material.ca_pem)),
        Mode::Mtls => {
            let mut pem = material.client_cert_pem.clone();
            pem.extend_from_slice(&material.client_key_pem);
            client_builder(Some(&material.ca_pem))
                .identity(reqwest::Identity::from_pem(&pem).expect("test client identity"))
                .build()
                .expect("reqwest client")
        }
        Mode::SelfSigned => client_builder(None)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("reqwest client"),
        Mode::Plain | Mode::Basic | Mode::Token => client(None),
    }
}

impl Registry {
    /// Starts a registry in `mode` and blocks until `/v2/` answers. Synchronous: usable from
    /// `#[test]` and `#[tokio::test]`.
    pub fn start(mode: Mode) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("ferry-test-registry-")
            .tempdir()
            .expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage dir");
        let log_file = dir.path().join("registry.log");
        let mut auth = String::new();
        let mut tls = String::new();
        let mut ca_file = None;
        let mut client_identity = None;
        let mut token_server = None;
        match mode {
            Mode::Plain => {}
            Mode::Tls | Mode::Mtls | Mode::SelfSigned => {
                let material = pki::tls();
                let (ca, cert, key) = (
                    dir.path().join("ca.pem"),
                    dir.path().join("server.pem"),
                    dir.path().join("server.key"),
                );
                let (served_cert, served_key, trusted) = if mode == Mode::SelfSigned {
                    let c = &material.self_signed_cert_pem;
                    (c, &material.self_signed_key_pem, c)
                } else {
                    (
                        &material.server_cert_pem,
                        &material.server_key_pem,
                        &material.ca_pem,
                    )
                };
                std::fs::write(&ca, trusted).expect("write CA");
                std::fs::write(&cert, served_cert).expect("write server cert");
                std::fs::write(&key, served_key).expect("write server key");
                tls = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    yaml_str(&cert),
                    yaml_str(&key)
                );
                if mode == Mode::Mtls {
                    // Distribution then requires and verifies a client certificate from these CAs.
                    tls.push_str(&format!("    clientcas:\n      - {}\n", yaml_str(&ca)));
                    let (client_cert, client_key) = (
                        dir.path().join("client.cert"),
                        dir.path().join("client.key"),
                    );
                    std::fs::write(&client_cert, &material.client_cert_pem)
                        .expect("write client cert");
                    std::fs::write(&client_key, &material.client_key_pem)
                        .expect("write client key");
                    client_identity = Some((client_cert, client_key));
                }
                ca_file = Some(ca);
            }
            Mode::Basic => {
                // Distribution only understands bcrypt entries.
                let entry = pki::run("htpasswd", &["-Bbn", USER, PASSWORD], dir.path());
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, entry).expect("write htpasswd");
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    yaml_str(&path)
                );
            }
            Mode::Token => {
                let bundle = dir.path().join("token-signer.pem");
                std::fs::write(&bundle, &pki::signing().cert_pem).expect("write rootcertbundle");
                let server = TokenServer::start();
                auth = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    yaml_str(&bundle)
                );
                token_server = Some(server);
            }
        }

        let config_file = dir.path().join("config.yml");
        // Without a `validation.manifests.urls.allow` list, 2.8 refuses every manifest with `urls`
        // (foreign layers); allowing any http(s) URL matches what public registries accept.
        let harness = mode_client(mode);
        let scheme = if ca_file.is_some() { "https" } else { "http" };
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nvalidation:\n  manifests:\n    urls:\n      allow: ['^https?://']\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: ferry-test-http-secret\n{tls}{auth}",
                yaml_str(&storage)
            );
            std::fs::write(&config_file, config).expect("write registry config");
            let mut child = spawn_registry(&config_file, &log_file);
            let base = format!("{scheme}://127.0.0.1:{port}");
            match wait_ready(&mut child, &base, &harness, &log_file) {
                Ok(()) => {
                    return Registry {
                        mode,
                        port,
                        child,
                        storage,
                        log_file,
                        ca_file,
                        client_identity,
                        token_server,
                        dir,
                    };
                }
                Err(StartError::PortTaken) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(StartError::Failed(why)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "docker-registry ({mode:?}) did not start: {why}\n--- log tail ---\n{}",
                        log_tail(&log_file)
                    );
                }
            }
        }
        panic!(
            "docker-registry ({mode:?}): no free port after {START_ATTEMPTS} attempts\n{}",
            log_tail(&log_file)
        );
    }

    /// Kill the registry process and start it again on the same port and storage (the fixed
    /// `http.secret` keeps upload sessions valid across the restart), for faults no proxy can fake.
    /// `down` is how long it stays away.
    pub fn restart(&mut self, down: std::time::Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let config_file = self.dir.path().join("config.yml");
        let base = self.base_url();
        let mut child = spawn_registry(&config_file, &self.log_file);
        match wait_ready(&mut child, &base, &mode_client(self.mode), &self.log_file) {
            Ok(()) => self.child = child,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "docker-registry did not come back:\n{}",
                    log_tail(&self.log_file)
                );
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its [`Mode`]: plain or TLS, and which authentication.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// PEM of the self-signed test CA that signed the registry's certificate ([`Mode::Tls`],
    /// [`Mode::Mtls`]; shared by every registry in the process), or for [`Mode::SelfSigned`] the
    /// registry's own certificate.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The client certificate and key files [`Mode::Mtls`] accepts.
    pub fn client_identity(&self) -> Option<(&Path, &Path)> {
        self.client_identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// `"https"` for [`Mode::Tls`], `"http"` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `scheme://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.host())
    }

    /// The filesystem driver's `rootdirectory`.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry's combined stdout/stderr (warnings, errors, access log).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The registry's temp dir (config, certificates, htpasswd, log, storage).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the registry log, for assertion messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_file)
    }

    /// USER/PASSWORD for [`Mode::Basic`] and [`Mode::Token`] (the token server's credentials).
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        matches!(self.mode, Mode::Basic | Mode::Token).then_some((USER, PASSWORD))
    }

    /// The token server's realm URL ([`Mode::Token`] only).
    pub fn token_realm(&self) -> Option<String> {
        self.token_server.as_ref().map(TokenServer::realm)
    }

    /// Requests that reached the token server, refused ones included; 0 outside [`Mode::Token`].
    /// Tokens minted by this crate's own helpers (`seed`, `get_manifest`, …) are not counted.
    pub fn token_requests(&self) -> usize {
        self.token_server.as_ref().map_or(0, TokenServer::requests)
    }

    /// Requests the token server answered with a token.
    pub fn tokens_issued(&self) -> usize {
        self.token_server.as_ref().map_or(0, TokenServer::issued)
    }

    /// The scopes of every issued token, in order.
    pub fn token_scopes(&self) -> Vec<Vec<String>> {
        self.token_server
            .as_ref()
            .map_or_else(Vec::new, TokenServer::scopes)
    }

    /// A token for `access`, signed like the token server's ([`Mode::Token`] only).
    pub fn mint_token(&self, access: &[Access]) -> String {
        assert_eq!(self.mode, Mode::Token, "tokens only exist in Mode::Token");
        token::mint(USER, access)
    }

    /// A reqwest client that can talk to this registry (its CA, its client certificate) and ignores
    /// proxies.
    pub fn client(&self) -> reqwest::Client {
        mode_client(self.mode)
    }

    /// An `Authorization` value with full access to `repo` (Basic, or a freshly minted Bearer token),
    /// None when the mode has no auth.
    pub fn authorization(&self, repo: &str) -> Option<String> {
        match self.mode {
            Mode::Plain | Mode::Tls | Mode::Mtls | Mode::SelfSigned => None,
            Mode::Basic => Some(format!(
                "Basic {}",
                base64(format!("{USER}:{PASSWORD}").as_bytes())
            )),
            Mode::Token => Some(format!(
                "Bearer {}",
                self.mint_token(&[Access::new("repository", repo, &["pull", "push", "delete"])])
            )),
        }
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        repo: &str,
    ) -> reqwest::RequestBuilder {
        let request = client.request(method, url);
        match self.authorization(repo) {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }

    /// Uploads `artifact` (all blobs, then child manifests by digest, then the root) and tags the
    /// root `repo:tag`; `tag` None pushes the root by digest only. Panics on any failure.
    pub async fn seed(&self, repo: &str, tag: Option<&str>, artifact: &Artifact) {
        let client = self.client();
        for blob in artifact.all_blobs() {
            self.upload_blob(&client, repo, &blob).await;
        }
        let manifests = artifact.all_manifests();
        let (root, children) = manifests.split_last().expect("at least the root manifest");
        for child in children {
            let (status, body) = self
                .put_manifest_with(&client, repo, &child.digest(), child)
                .await;
            assert_eq!(
                status,
                201,
                "pushing child manifest {} to {repo}: {body}",
                child.digest()
            );
        }
        let reference = tag.map_or_else(|| root.digest(), str::to_string);
        let (status, body) = self
            .put_manifest_with(&client, repo, &reference, root)
            .await;
        assert_eq!(
            status,
            201,
            "pushing {repo}:{reference}: {body}\n{}",
            self.log_tail()
        );
    }

    /// Uploads one blob (POST then PUT with the digest), skipping it if the repository has it.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) {
        self.upload_blob(&self.client(), repo, blob).await;
    }

    async fn upload_blob(&self, client: &reqwest::Client, repo: &str, blob: &Blob) {
        let digest = blob.digest();
        if self.blob_exists_with(client, repo, &digest).await {
            return;
        }
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base_url());
        let response = self
            .request(client, reqwest::Method::POST, &start, repo)
            .send()
            .await
            .expect("start upload");
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(location) = location.filter(|_| status == 202) else {
            panic!(
                "starting upload to {repo}: {status} {}",
                response.text().await.unwrap_or_default()
            );
        };
        // Distribution answers with an absolute URL, but relative ones are legal.
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base_url())
        } else {
            location
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", percent_encode(&digest)));
        let response = self
            .request(client, reqwest::Method::PUT, &url, repo)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(blob.bytes.clone())
            .send()
            .await
            .expect("finish upload");
        let status = response.status();
        assert_eq!(
            status,
            201,
            "uploading {digest} to {repo}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// PUTs raw manifest bytes with `manifest.media_type` as Content-Type and returns the status
    /// and body instead of asserting, for tests of what the registry refuses.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Blob,
    ) -> (u16, String) {
        self.put_manifest_with(&self.client(), repo, reference, manifest)
            .await
    }

    async fn put_manifest_with(
        &self,
        client: &reqwest::Client,
        repo: &str,
        reference: &str,
        manifest: &Blob,
    ) -> (u16, String) {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url());
        let response = self
            .request(client, reqwest::Method::PUT, &url, repo)
            .header(reqwest::header::CONTENT_TYPE, &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await
            .expect("PUT manifest");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Fetches a manifest by tag or digest: `(Content-Type, raw bytes)`, None on 404.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url());
        let response = self
            .request(&self.client(), reqwest::Method::GET, &url, repo)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .expect("GET manifest");
        match response.status().as_u16() {
            404 => None,
            200 => {
                let content_type = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                Some((
                    content_type,
                    response.bytes().await.expect("manifest body").to_vec(),
                ))
            }
            status => panic!(
                "GET {url}: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }

    /// Whether `repo` has blob `digest` (HEAD; 404 is false, anything but 200/404 panics).
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        self.blob_exists_with(&self.client(), repo, digest).await
    }

    async fn blob_exists_with(&self, client: &reqwest::Client, repo: &str, digest: &str) -> bool {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base_url());
        let response = self
            .request(client, reqwest::Method::HEAD, &url, repo)
            .send()
            .await
            .expect("HEAD blob");
        match response.status().as_u16() {
            200 => true,
            404 => false,
            status => panic!("HEAD {url}: {status}"),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_registry(config: &Path, log_file: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .expect("registry log file");
    let mut command = Command::new("docker-registry");
    command
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log);
    // REGISTRY_* variables override the config file; the environment must not leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("docker-registry not found; install it with: {INSTALL_HINT}")
        }
        Err(e) => panic!("cannot start docker-registry: {e}"),
    }
}

/// Polls `/v2/` until the registry answers with its API version header. The header matters: if the
/// port was grabbed by someone else between bind-and-release and our start, that someone answers.
fn wait_ready(
    child: &mut Child,
    base: &str,
    client: &reqwest::Client,
    log_file: &Path,
) -> Result<(), StartError> {
    let url = format!("{base}/v2/");
    let deadline = Instant::now() + START_TIMEOUT;
    block_on(async {
        loop {
            if let Some(status) = child.try_wait().expect("poll registry process") {
                return Err(if log_tail(log_file).contains("address already in use") {
                    StartError::PortTaken
                } else {
                    StartError::Failed(format!("exited with {status}"))
                });
            }
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok_and(|r| r.headers().contains_key("docker-distribution-api-version")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Failed(format!(
                    "{url} did not answer within {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn log_tail(log_file: &Path) -> String {
    const TAIL: u64 = 8 * 1024;
    let Ok(mut file) = std::fs::File::open(log_file) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}
