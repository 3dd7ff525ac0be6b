//! The HTTP side: HTTP clients (one per distinct TLS configuration, built in one place), per-host state
//! (scheme, auth challenge, back-off), and `send`, the single path every registry request takes — API
//! calls, token fetches and the HTTPS/HTTP probe alike (auth, retries, the 429 host pause, deadlines,
//! error mapping).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ferry_oci::Digest;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Challenge, Token, TokenCache, parse_challenge, token_lifetime};
use crate::body::{Body, EXCERPT_BYTES, Limits, TOKEN_BYTES, excerpt};
use crate::credentials::{Credential, CredentialStore};
use crate::error::RegistryError;
use crate::retry::{Decision, Failure, RetryPolicy, jitter};
use crate::tls::{CertificateRefused, TlsSettings};

/// How a [`RegistryClient`] talks to registries: transport security, credentials, retries, limits. The
/// defaults are HTTPS with the system roots and certs.d directories, no credentials, and ferry's retry
/// policy and limits.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Talk plain HTTP to every registry (no HTTPS probe); also the user's word that the network is
    /// trusted with credentials.
    pub plain_http: bool,
    /// Accept any server certificate (`--insecure-skip-tls-verify`): the connection is encrypted but not
    /// authenticated.
    pub insecure_skip_tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system roots, for every registry.
    pub ca_files: Vec<PathBuf>,
    /// `--cert-dir`: CAs (`*.crt`) and a client certificate (`*.cert` + `*.key`) for every registry,
    /// instead of the certs.d directories.
    pub cert_dir: Option<PathBuf>,
    /// Where per-registry `<host[:port]>/` certificate directories are looked up (Docker's and podman's
    /// certs.d; see [`crate::tls::default_certs_d_roots`]).
    pub certs_d_roots: Vec<PathBuf>,
    /// Where credentials for each registry come from.
    pub credentials: CredentialStore,
    /// When and how long to wait before trying a request again.
    pub retry: RetryPolicy,
    /// Deadlines and the minimum throughput of every request.
    pub limits: Limits,
    /// The `User-Agent` header of every request.
    pub user_agent: String,
    /// Blobs up to this size are uploaded in one `PUT` (and buffered for it); larger ones stream.
    pub chunk_threshold: u64,
    /// Bytes per streamed upload `PATCH`; the default (`u64::MAX`) sends a blob's body in one. Smaller
    /// values cost one round trip per chunk; memory does not depend on it.
    pub chunk_size: u64,
    /// Requests per second and in flight, per registry host.
    pub host_limits: crate::budget::HostLimits,
    /// Mirrors, insecure and blocked registries (`registries.conf`).
    pub registries: crate::mirrors::RegistriesConf,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure_skip_tls_verify: false,
            ca_files: Vec::new(),
            cert_dir: None,
            certs_d_roots: crate::tls::default_certs_d_roots(),
            credentials: CredentialStore::default(),
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            user_agent: concat!("ferry/", env!("CARGO_PKG_VERSION")).to_string(),
            chunk_threshold: 4 << 20,
            chunk_size: u64::MAX,
            host_limits: crate::budget::HostLimits::default(),
            registries: crate::mirrors::RegistriesConf::default(),
        }
    }
}

/// What a request authenticates with.
#[derive(Clone)]
pub(crate) enum Auth {
    /// The registry's own scheme (Basic or a Bearer token for the call's scope), sent only to the
    /// registry's API host; a 401 there is answered by authenticating.
    Registry,
    /// Nothing, and every status is the caller's to interpret (the scheme probe).
    Anonymous,
    /// This header (Basic credentials to a token service); statuses are the caller's to interpret.
    Header(HeaderValue),
}

/// A request to a registry, rebuilt for every try.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// `/v2/...` path and query, appended to the host's base URL; or an absolute URL (an upload
    /// `Location` resolved with [`RegistryClient::resolve`], a token realm, the probe).
    pub path: String,
    pub headers: HeaderMap,
    /// Sent with every try (cloning `Bytes` is cheap).
    pub body: Option<Bytes>,
    /// A body produced while it is sent (an upload streamed from its source): sent once, so the call
    /// must not be retried; a second try fails as interrupted.
    pub stream: Option<StreamedBody>,
    /// Token scope(s), space separated: `repository:library/nginx:pull`.
    pub scope: &'a str,
    /// For messages: `manifest docker.io/library/nginx:latest`.
    pub what: String,
    /// Whether `send` retries transport failures and retryable statuses. Off for requests the caller
    /// recovers itself: a broken upload `PATCH` may have stored part of its body, so sending it again
    /// as is would be wrong.
    pub retry: bool,
    pub auth: Auth,
}

impl<'a> Call<'a> {
    /// A retried request without body or headers, authenticated as the registry asks.
    pub fn new(method: Method, path: String, scope: &'a str, what: String) -> Call<'a> {
        Call {
            method,
            path,
            headers: HeaderMap::new(),
            body: None,
            stream: None,
            scope,
            what,
            retry: true,
            auth: Auth::Registry,
        }
    }
}

/// A request body that can be sent once, and its length (for the deadline of the answer).
pub(crate) struct StreamedBody {
    body: Mutex<Option<reqwest::Body>>,
    len: u64,
}

impl StreamedBody {
    pub(crate) fn new(body: reqwest::Body, len: u64) -> StreamedBody {
        StreamedBody {
            body: Mutex::new(Some(body)),
            len,
        }
    }
}

/// The one HTTP client of a run, shared (as `Arc`) by every [`Repository`](crate::Repository): per-host
/// state (scheme, auth challenge, budgets, pauses), the token cache, and the one `send` path every request
/// takes.
pub struct RegistryClient {
    opts: ClientOptions,
    http: Mutex<HttpClients>,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    tokens: TokenCache,
}

/// HTTP clients: one per distinct TLS configuration (CAs, client certificate), and which one each
/// `host[:port]` uses (its certs.d directory decides).
#[derive(Default)]
struct HttpClients {
    by_settings: HashMap<TlsSettings, HttpClient>,
    by_authority: HashMap<String, HttpClient>,
}

#[derive(Clone)]
struct HttpClient {
    http: reqwest::Client,
    /// Whether a server asked this client for a certificate during a handshake, and whether it has one:
    /// a server that asks and gets none often just closes the connection (TLS 1.3 sends its alert after
    /// the client believes the handshake done), and this is how that gets explained.
    client_cert_asked: Arc<AtomicBool>,
    has_client_cert: bool,
}

pub(crate) struct HostState {
    /// The name in references (`docker.io`).
    pub name: String,
    /// Where the API lives (`registry-1.docker.io` for Docker Hub).
    api_host: String,
    base: tokio::sync::OnceCell<String>,
    challenge: Mutex<Option<Challenge>>,
    credential: tokio::sync::OnceCell<Option<Credential>>,
    paused_until: Mutex<Option<Instant>>,
    seen: Mutex<SeenBlobs>,
    budget: crate::budget::HostBudget,
}

/// How many blob locations a host remembers for mounts: enough for a large push, bounded for a long run.
const SEEN_BLOBS_CAP: usize = 10_000;

/// Digest → a repository of the host where this process saw the blob (pushed, mounted, found or read
/// it), so another repository of the same registry can mount it instead of receiving the bytes again.
#[derive(Default)]
struct SeenBlobs {
    repos: HashMap<Digest, String>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Digest>,
}

impl HostState {
    /// Remember that `repository` holds blob `digest`.
    pub(crate) fn saw_blob(&self, digest: &Digest, repository: &str) {
        let mut seen = self.seen.lock().expect("seen lock");
        if seen
            .repos
            .insert(digest.clone(), repository.to_string())
            .is_none()
        {
            seen.order.push_back(digest.clone());
            while seen.order.len() > SEEN_BLOBS_CAP {
                if let Some(old) = seen.order.pop_front() {
                    seen.repos.remove(&old);
                }
            }
        }
    }

    /// A repository other than `repository` known to hold blob `digest`.
    pub(crate) fn blob_elsewhere(&self, digest: &Digest, repository: &str) -> Option<String> {
        let seen = self.seen.lock().expect("seen lock");
        seen.repos.get(digest).filter(|r| *r != repository).cloned()
    }
}

impl RegistryClient {
    /// A client configured by `opts`. `Err` when the options cannot work (a chunk size out of range, a CA or
    /// client certificate file that cannot be read); nothing is contacted yet.
    pub fn new(opts: ClientOptions) -> Result<Arc<RegistryClient>, RegistryError> {
        // ring, not aws-lc-rs: no cmake, half the build. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if opts.chunk_size == 0 || opts.chunk_threshold > usize::MAX as u64 {
            return Err(RegistryError::Config {
                why: format!(
                    "upload chunk size {} or threshold {} is out of range",
                    opts.chunk_size, opts.chunk_threshold
                ),
                source: None,
            });
        }
        let client = RegistryClient {
            opts,
            http: Mutex::new(HttpClients::default()),
            hosts: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
        };
        // Bad CA files and a bad --cert-dir are reported now, not at the first request.
        let settings = TlsSettings::for_host(
            &client.opts.ca_files,
            client.opts.cert_dir.as_deref(),
            &[],
            "",
        )?;
        let http = client.build_http(&settings)?;
        client
            .http
            .lock()
            .expect("http clients lock")
            .by_settings
            .insert(settings, http);
        Ok(Arc::new(client))
    }

    /// The one place a reqwest client for registries is built.
    fn build_http(&self, settings: &TlsSettings) -> Result<HttpClient, RegistryError> {
        let client_cert_asked = Arc::new(AtomicBool::new(false));
        let tls = settings.client_config(
            self.opts.insecure_skip_tls_verify,
            client_cert_asked.clone(),
        )?;
        let http = reqwest::Client::builder()
            .user_agent(self.opts.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            // Silence ends a body after a minute; the minimum throughput (`body.rs`) ends a trickle.
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .http2_adaptive_window(true)
            // reqwest drops Authorization on redirects to another host; cap the chain.
            .redirect(reqwest::redirect::Policy::limited(10))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| RegistryError::Config {
                why: "cannot build the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(HttpClient {
            http,
            client_cert_asked,
            has_client_cert: settings.identity.is_some(),
        })
    }

    /// The HTTP client for requests to `url`'s host and port.
    fn http_for(&self, url: &Url) -> Result<HttpClient, RegistryError> {
        let host = url.host_str().unwrap_or("");
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let mut clients = self.http.lock().expect("http clients lock");
        if let Some(client) = clients.by_authority.get(&authority) {
            return Ok(client.clone());
        }
        let settings = TlsSettings::for_host(
            &self.opts.ca_files,
            self.opts.cert_dir.as_deref(),
            &self.opts.certs_d_roots,
            &authority,
        )?;
        let client = match clients.by_settings.get(&settings) {
            Some(client) => client.clone(),
            None => {
                let client = self.build_http(&settings)?;
                clients.by_settings.insert(settings, client.clone());
                client
            }
        };
        clients.by_authority.insert(authority, client.clone());
        Ok(client)
    }

    pub(crate) fn host(&self, name: &str) -> Arc<HostState> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        hosts
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(HostState {
                    name: name.to_string(),
                    api_host: if name == "docker.io" {
                        "registry-1.docker.io".into()
                    } else {
                        name.to_string()
                    },
                    base: tokio::sync::OnceCell::new(),
                    challenge: Mutex::new(None),
                    credential: tokio::sync::OnceCell::new(),
                    paused_until: Mutex::new(None),
                    seen: Mutex::new(SeenBlobs::default()),
                    budget: crate::budget::HostBudget::new(&self.opts.host_limits),
                })
            })
            .clone()
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// An upload `Location` as an absolute URL: registries send absolute or relative ones, and relative
    /// ones are relative to the host's base URL.
    pub(crate) async fn resolve(
        &self,
        host: &HostState,
        location: &str,
        what: &str,
    ) -> Result<Url, RegistryError> {
        let base = self.base_url(host).await?;
        Url::parse(&base)
            .and_then(|b| b.join(location))
            .map_err(|e| RegistryError::Protocol {
                registry: host.name.clone(),
                what: what.to_string(),
                why: format!("invalid Location {location:?}: {e}"),
            })
    }

    /// `https://host` or `http://host`, decided once per host (zarf-compat §5): HTTPS unless `--plain-http`,
    /// or the host is local/private and answers plain HTTP after HTTPS failed for a reason other than its
    /// certificate.
    async fn base_url(&self, host: &HostState) -> Result<String, RegistryError> {
        host.base
            .get_or_try_init(|| async {
                if self.opts.plain_http {
                    return Ok(format!("http://{}", host.api_host));
                }
                let https = format!("https://{}", host.api_host);
                // Hosts registries.conf marks insecure may answer plain HTTP too.
                let local = is_local_or_private(&host.api_host)
                    || self.opts.registries.is_insecure_host(&host.name);
                // Where plain HTTP is a possible answer, one try each way before the retry policy.
                match self.probe(host, &https, !local).await {
                    Ok(_) => return Ok(https),
                    Err(e) if answered(&e) => return Ok(https),
                    Err(e) if is_tls_refusal(&e) => return Err(e),
                    Err(e) if !local => return Err(unreachable(host, e)),
                    Err(e) => tracing::debug!(registry = %host.name, "HTTPS probe failed: {e:?}"),
                }
                let http = format!("http://{}", host.api_host);
                // Only a registry's answer counts: 200, or 401 asking for credentials. An HTTPS server
                // answering a plain request with 400 is not proof.
                if let Ok(resp) = self.probe(host, &http, false).await
                    && matches!(resp.status().as_u16(), 200 | 401)
                {
                    tracing::debug!(registry = %host.name, status = %resp.status(), "the host answers plain HTTP");
                    return Ok(http);
                }
                match self.probe(host, &https, true).await {
                    Ok(_) => Ok(https),
                    Err(e) if answered(&e) => Ok(https),
                    Err(e) if is_tls_refusal(&e) => Err(e),
                    Err(e) => Err(unreachable(host, e)),
                }
            })
            .await
            .cloned()
    }

    /// `GET <base>/v2/` without credentials, through `send`.
    async fn probe(
        &self,
        host: &HostState,
        base: &str,
        retry: bool,
    ) -> Result<Response, RegistryError> {
        let call = Call {
            retry,
            auth: Auth::Anonymous,
            ..Call::new(
                Method::GET,
                format!("{base}/v2/"),
                "",
                format!("the API root {base}/v2/"),
            )
        };
        // Boxed: `send` resolves the base URL, which probes through `send` (with an absolute URL, so
        // it never comes back here).
        Box::pin(self.send(host, &call)).await
    }

    async fn credential(&self, host: &HostState) -> Result<Option<Credential>, RegistryError> {
        let creds = self.opts.credentials.clone();
        let name = host.name.clone();
        host.credential
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || creds.lookup(&name))
                    .await
                    .expect("credential lookup panicked")
            })
            .await
            .cloned()
            .map_err(RegistryError::from)
    }

    /// Credentials (Basic, or a refresh token) go over plain HTTP only to loopback, or with `--plain-http`
    /// (the user's word that the network is trusted).
    fn may_send_credentials(&self, host: &HostState, url: &Url) -> Result<(), RegistryError> {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if url.scheme() == "https" || loopback || self.opts.plain_http {
            return Ok(());
        }
        Err(RegistryError::InsecureCredentials {
            registry: host.name.clone(),
            url: url.origin().ascii_serialization(),
        })
    }

    /// The Authorization header for a request to `host` with `scope`, based on what the host asked for.
    async fn authorization(
        &self,
        host: &HostState,
        scope: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = host.challenge.lock().expect("challenge lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credential(host).await? {
                Some(Credential::Basic { username, password }) => {
                    let base = Url::parse(&self.base_url(host).await?).map_err(|e| {
                        RegistryError::Protocol {
                            registry: host.name.clone(),
                            what: "base URL".into(),
                            why: e.to_string(),
                        }
                    })?;
                    self.may_send_credentials(host, &base)?;
                    Ok(Some(basic_header(&username, &password)))
                }
                _ => Ok(None),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope: _,
            }) => {
                let slot = self.tokens.slot(&host.name, scope);
                let mut guard = slot.lock().await;
                if let Some(t) = guard.as_ref().filter(|t| t.expires > Instant::now()) {
                    return Ok(Some(bearer_header(&t.value)));
                }
                // Boxed: the token request goes through `send`, which comes here for registry calls.
                let token =
                    Box::pin(self.fetch_token(host, &realm, service.as_deref(), scope)).await?;
                let header = bearer_header(&token.value);
                *guard = Some(token);
                Ok(Some(header))
            }
        }
    }

    fn forget_token(&self, host: &HostState, scope: &str) {
        if let Ok(mut g) = self.tokens.slot(&host.name, scope).try_lock() {
            *g = None;
        }
    }

    async fn fetch_token(
        &self,
        host: &HostState,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: host.name.clone(),
            what: "token realm".into(),
            why: format!("{realm:?} is not a URL: {e}"),
        })?;
        let what = format!("token request to {}", url.origin().ascii_serialization());
        let credential = self.credential(host).await?;
        let mut call = Call {
            auth: Auth::Anonymous,
            ..Call::new(Method::GET, String::new(), scope, what.clone())
        };
        match &credential {
            Some(Credential::IdentityToken { token, .. }) => {
                self.may_send_credentials(host, &url)?;
                // OAuth2 refresh-token grant, as Docker does for identity tokens.
                let mut form = Url::parse("http://form/").expect("static URL");
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", token)
                        .append_pair("client_id", "ferry");
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scope.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", s);
                    }
                }
                call.method = Method::POST;
                call.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                call.body = Some(Bytes::from(form.query().unwrap_or("").to_string()));
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scope.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", s);
                    }
                }
                if let Some(Credential::Basic { username, password }) = &credential {
                    self.may_send_credentials(host, &url)?;
                    call.auth = Auth::Header(basic_header(username, password));
                }
            }
        }
        call.path = url.to_string();
        tracing::debug!(registry = %host.name, scope, "fetching token");
        let resp = self.send(host, &call).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: host.name.clone(),
                detail: if credential.is_some() {
                    " (the token service rejected the credentials)".into()
                } else {
                    " (the token service requires credentials and none were found)".into()
                },
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: host.name.clone(),
                what,
                status: status.as_u16(),
                body: self.body_excerpt(resp).await,
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body = self
            .body(resp, &host.name, &what)
            .read_capped(TOKEN_BYTES, "token responses")
            .await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: host.name.clone(),
                what: what.clone(),
                why: e.to_string(),
            })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: host.name.clone(),
                what,
                why: "no token in the response".into(),
            })?;
        Ok(Token {
            value,
            expires: Instant::now() + token_lifetime(parsed.expires_in),
        })
    }

    /// A response body to read under this client's limits.
    pub(crate) fn body(&self, resp: Response, registry: &str, what: &str) -> Body {
        Body::new(resp, &self.opts.limits, registry, what)
    }

    /// The first bytes of an error body: registries explain themselves there.
    pub(crate) async fn body_excerpt(&self, resp: Response) -> String {
        excerpt(&self.error_body(resp).await)
    }

    /// At most [`EXCERPT_BYTES`] of an error body.
    pub(crate) async fn error_body(&self, resp: Response) -> Bytes {
        let origin = resp.url().origin().ascii_serialization();
        self.body(resp, &origin, "error body")
            .prefix(EXCERPT_BYTES)
            .await
    }

    /// Wait out a host-wide pause (a 429 or Retry-After seen by any request to this host).
    async fn wait_for_host(&self, host: &HostState) {
        let until = *host.paused_until.lock().expect("pause lock");
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
    }

    fn pause_host(&self, host: &HostState, wait: Duration) {
        let mut g = host.paused_until.lock().expect("pause lock");
        let until = Instant::now() + wait;
        if g.is_none_or(|u| u < until) {
            *g = Some(until);
        }
    }

    /// The absolute URL of `call`, and the registry's API origin when the call needs it (relative paths
    /// and registry-authenticated calls).
    async fn call_url(
        &self,
        host: &HostState,
        call: &Call<'_>,
    ) -> Result<(Url, Option<url::Origin>), RegistryError> {
        let bad_url = |e: url::ParseError| RegistryError::Protocol {
            registry: host.name.clone(),
            what: call.what.clone(),
            why: format!("invalid URL {:?}: {e}", call.path),
        };
        let relative = call.path.starts_with('/');
        let base = if relative || matches!(call.auth, Auth::Registry) {
            Some(Url::parse(&self.base_url(host).await?).map_err(bad_url)?)
        } else {
            None
        };
        let url = match &base {
            Some(base) if relative => Url::parse(&format!(
                "{}{}",
                base.as_str().trim_end_matches('/'),
                call.path
            )),
            _ => Url::parse(&call.path),
        }
        .map_err(bad_url)?;
        Ok((url, base.map(|b| b.origin())))
    }

    /// Send `call` to `host` with authentication and retries. Returns the final response for any status
    /// other than 401 and retryable ones; callers map 404 and friends to their own meaning.
    pub(crate) async fn send(
        &self,
        host: &HostState,
        call: &Call<'_>,
    ) -> Result<Response, RegistryError> {
        let (url, registry_origin) = self.call_url(host, call).await?;
        let by_registry = matches!(call.auth, Auth::Registry);
        // Credentials are for the registry's API host only: an upload Location may point elsewhere (a
        // storage front end, or a hostile server), and a downgrade to plain HTTP would expose them.
        let authenticate = by_registry && registry_origin.as_ref() == Some(&url.origin());
        let http = self.http_for(&url)?;
        let deadline = self
            .opts
            .limits
            .headers_deadline(match (&call.body, &call.stream) {
                (Some(b), _) => b.len() as u64,
                (None, Some(s)) => s.len,
                (None, None) => 0,
            });
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            self.wait_for_host(host).await;
            attempt += 1;
            let mut req = http
                .http
                .request(call.method.clone(), url.clone())
                .headers(call.headers.clone());
            if let Some(body) = &call.body {
                req = req.body(body.clone());
            }
            if let Some(stream) = &call.stream {
                let Some(body) = stream.body.lock().expect("stream lock").take() else {
                    return Err(RegistryError::Interrupted {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                        why: "a streamed body cannot be sent a second time".into(),
                    });
                };
                req = req.body(body);
            }
            match &call.auth {
                Auth::Registry if authenticate => {
                    if let Some(h) = self.authorization(host, call.scope).await? {
                        req = req.header(AUTHORIZATION, h);
                    }
                }
                Auth::Header(h) => req = req.header(AUTHORIZATION, h.clone()),
                _ => {}
            }
            let turn = host.budget.turn().await;
            let result = tokio::time::timeout(deadline, req.send()).await;
            drop(turn);
            // One line per request at -vv: what `bench/run` counts, and what a user debugging a registry wants.
            match &result {
                Ok(Ok(resp)) => tracing::debug!(
                    "http {} {} -> {}",
                    call.method,
                    redact_query(resp.url().as_str()),
                    resp.status().as_u16()
                ),
                Ok(Err(e)) => tracing::debug!("http {} {} -> error: {e}", call.method, call.what),
                Err(_) => tracing::debug!("http {} {} -> no response", call.method, call.what),
            }
            let resp = match result {
                Err(_) => {
                    let err = RegistryError::NoResponse {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                        after: deadline,
                    };
                    self.after_failure(host, call, attempt, &mut waited, err, None)
                        .await?;
                    continue;
                }
                Ok(Err(e)) => {
                    match tls_problem(&e) {
                        Some(TlsProblem::ServerCertificate(refused)) => {
                            let trust_would_help =
                                refused.as_ref().is_none_or(|r| r.trust_would_help);
                            return Err(RegistryError::Certificate {
                                registry: host.name.clone(),
                                hint: if trust_would_help {
                                    "; pass --ca-file with the CA's PEM (or put it in the registry's \
                                     certs.d directory), or --insecure-skip-tls-verify if you accept \
                                     the risk"
                                } else {
                                    ""
                                },
                                source: match refused {
                                    Some(r) => Box::new(r),
                                    None => Box::new(e),
                                },
                            });
                        }
                        Some(TlsProblem::ClientCertificate(alert)) => {
                            return Err(RegistryError::ClientCertificate {
                                registry: host.name.clone(),
                                why: format!("it refused the TLS connection ({alert:?})"),
                                source: e,
                            });
                        }
                        None if !http.has_client_cert
                            && http.client_cert_asked.load(Ordering::Relaxed) =>
                        {
                            return Err(RegistryError::ClientCertificate {
                                registry: host.name.clone(),
                                why:
                                    "it asked for a client certificate, ferry has none for it, and \
                                      the connection failed"
                                        .into(),
                                source: e,
                            });
                        }
                        None => {}
                    }
                    if crate::budget::is_enhance_your_calm(&e) {
                        host.budget.slow_down(&host.name);
                    }
                    let err = RegistryError::Transport {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                        source: e,
                    };
                    self.after_failure(host, call, attempt, &mut waited, err, None)
                        .await?;
                    continue;
                }
                Ok(Ok(resp)) => resp,
            };
            let status = resp.status();
            if by_registry && status == StatusCode::UNAUTHORIZED {
                if !authenticate {
                    // Another host's challenge says nothing about the registry's: never adopt it.
                    return Err(RegistryError::Protocol {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                        why: format!(
                            "{} asks for credentials, which ferry sends only to the registry's own host",
                            url.origin().ascii_serialization()
                        ),
                    });
                }
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                let known = host.challenge.lock().expect("challenge lock").clone();
                if reauthenticated || challenge.is_none() {
                    return Err(RegistryError::Unauthorized {
                        registry: host.name.clone(),
                        detail: match (&known, self.credential(host).await?) {
                            (_, None) => " (no credentials found for it)".into(),
                            (Some(Challenge::Bearer { .. }), _) => {
                                " (the registry rejected the token)".into()
                            }
                            _ => String::new(),
                        },
                    });
                }
                if challenge == Some(Challenge::Basic) && self.credential(host).await?.is_none() {
                    return Err(RegistryError::Unauthorized {
                        registry: host.name.clone(),
                        detail: " (it requires credentials and none were found)".into(),
                    });
                }
                tracing::debug!(registry = %host.name, ?challenge, "authenticating");
                *host.challenge.lock().expect("challenge lock") = challenge;
                self.forget_token(host, call.scope);
                reauthenticated = true;
                attempt -= 1;
                continue;
            }
            if by_registry && status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Denied {
                    registry: host.name.clone(),
                    what: call.what.clone(),
                });
            }
            if !crate::retry::is_retryable_status(status.as_u16()) {
                return Ok(resp);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                host.budget.slow_down(&host.name);
            }
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let err = RegistryError::Status {
                registry: host.name.clone(),
                what: call.what.clone(),
                status: status.as_u16(),
                body: self.body_excerpt(resp).await,
            };
            self.after_failure(
                host,
                call,
                attempt,
                &mut waited,
                err,
                Some((status.as_u16(), retry_after.as_deref())),
            )
            .await?;
        }
    }

    /// The retry decision after a failed try: Ok after waiting when the call is to be sent again, the
    /// error otherwise. A 429 or a Retry-After pauses every request to the host.
    async fn after_failure(
        &self,
        host: &HostState,
        call: &Call<'_>,
        attempt: u32,
        waited: &mut Duration,
        err: RegistryError,
        status: Option<(u16, Option<&str>)>,
    ) -> Result<(), RegistryError> {
        let failure = match status {
            Some((code, retry_after)) => Failure::Status { code, retry_after },
            None => Failure::Transport,
        };
        match self
            .opts
            .retry
            .decide(attempt, &failure, SystemTime::now(), jitter())
        {
            Decision::Retry { wait, host_wide } => {
                if host_wide {
                    // Even when this call is not retried here: the caller's next request waits.
                    self.pause_host(host, wait);
                }
                if !call.retry {
                    return Err(err);
                }
                tracing::warn!(registry = %host.name, attempt, wait = ?wait, "{}; retrying", ferry_oci::error_chain(&err));
                *waited += wait;
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Decision::GiveUp if attempt > 1 => Err(RegistryError::RetriesExhausted {
                last: Box::new(err),
                attempts: attempt,
                waited: *waited,
            }),
            Decision::GiveUp => Err(err),
        }
    }
}

/// Whether a probe's error is still an HTTP answer (an error status, after retries or not): the scheme
/// works.
fn answered(e: &RegistryError) -> bool {
    match e {
        RegistryError::Status { .. } => true,
        RegistryError::RetriesExhausted { last, .. } => answered(last),
        _ => false,
    }
}

/// The server's certificate refused, or ours: TLS works there, plain HTTP is no way around it.
fn is_tls_refusal(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Certificate { .. } | RegistryError::ClientCertificate { .. }
    )
}

fn unreachable(host: &HostState, e: RegistryError) -> RegistryError {
    RegistryError::Unreachable {
        registry: host.name.clone(),
        source: Box::new(e),
    }
}

/// Upload URLs carry the registry's session state in the query; it is noise in logs.
fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!(
        "Basic {}",
        ferry_oci::base64::encode(format!("{username}:{password}").as_bytes())
    ))
    .expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}

/// A TLS failure ferry can explain: the server's certificate refused (with ferry's description of it
/// when its verifier made one), or the server refusing ours.
enum TlsProblem {
    ServerCertificate(Option<CertificateRefused>),
    ClientCertificate(rustls::AlertDescription),
}

/// The TLS problem behind `err`, if that is what it is. rustls errors arrive wrapped in io::Errors inside
/// hyper's error, and io::Error's `source()` skips the error it wraps, so each io::Error is unwrapped by
/// hand.
fn tls_problem(err: &reqwest::Error) -> Option<TlsProblem> {
    fn find(e: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
        use rustls::AlertDescription as Alert;
        match e.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(c)) => {
                return Some(TlsProblem::ServerCertificate(match c {
                    rustls::CertificateError::Other(other) => {
                        other.0.downcast_ref::<CertificateRefused>().cloned()
                    }
                    _ => None,
                }));
            }
            // What servers answer a missing or untrusted client certificate with.
            Some(rustls::Error::AlertReceived(
                alert @ (Alert::CertificateRequired
                | Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateUnknown),
            )) => return Some(TlsProblem::ClientCertificate(*alert)),
            _ => {}
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find(inner)
        {
            return Some(found);
        }
        e.source().and_then(find)
    }
    find(err)
}

/// Hosts where plain HTTP may be negotiated: loopback, private and link-local addresses, `localhost`,
/// `*.local` (zarf-compat §5). Public hosts always need `--plain-http`.
pub fn is_local_or_private(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    if host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_plain_http_only_to_loopback_or_with_plain_http() {
        let check = |plain_http: bool, url: &str| {
            let client = RegistryClient::new(ClientOptions {
                plain_http,
                certs_d_roots: Vec::new(),
                ..ClientOptions::default()
            })
            .unwrap();
            let url = Url::parse(url).unwrap();
            let host = client.host(&format!(
                "{}:{}",
                url.host_str().unwrap(),
                url.port_or_known_default().unwrap()
            ));
            client.may_send_credentials(&host, &url)
        };
        // A private range gets plain HTTP automatically, but not the credentials.
        let err = check(false, "http://10.43.130.183:5000").unwrap_err();
        assert!(
            matches!(err, RegistryError::InsecureCredentials { .. })
                && err.to_string().contains("--plain-http"),
            "{err}"
        );
        assert!(check(false, "http://192.168.1.2/").is_err());
        assert!(check(false, "http://zarf.local/").is_err());
        for ok in [
            "http://127.0.0.1:5000",
            "http://[::1]:5000",
            "http://localhost:5000",
            "https://10.43.130.183:5000",
        ] {
            assert!(check(false, ok).is_ok(), "{ok}");
        }
        assert!(
            check(true, "http://10.43.130.183:5000").is_ok(),
            "--plain-http trusts the network"
        );
    }

    #[test]
    fn local_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "10.43.130.183:5000",
            "[::1]:5000",
            "zarf.local",
            "192.168.1.2",
        ] {
            assert!(is_local_or_private(h), "{h}");
        }
        for h in ["ghcr.io", "8.8.8.8", "registry.example.com:5000"] {
            assert!(!is_local_or_private(h), "{h}");
        }
    }
}
