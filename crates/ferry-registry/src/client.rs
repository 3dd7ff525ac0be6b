//! The HTTP side: one reqwest client, per-host state (scheme, auth challenge, back-off), and `send`, the single
//! path every registry request takes (auth, retries, error mapping).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ferry_oci::Digest;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Challenge, Token, TokenCache, parse_challenge, token_lifetime};
use crate::credentials::{Credential, CredentialStore};
use crate::error::{RegistryError, chain};
use crate::retry::{Decision, Failure, RetryPolicy, jitter};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Talk plain HTTP to every registry (no HTTPS probe).
    pub plain_http: bool,
    pub insecure_skip_tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    pub credentials: CredentialStore,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Blobs up to this size are uploaded in one request; larger ones in chunks of `chunk_size`.
    pub chunk_threshold: u64,
    /// Bytes per upload chunk (`PATCH`), and the memory each large-blob upload buffers.
    pub chunk_size: u64,
    /// Requests per second and in flight, per registry host.
    pub limits: crate::budget::HostLimits,
    /// Mirrors, insecure and blocked registries (`registries.conf`).
    pub registries: crate::mirrors::RegistriesConf,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure_skip_tls_verify: false,
            ca_files: Vec::new(),
            credentials: CredentialStore::default(),
            retry: RetryPolicy::default(),
            user_agent: concat!("ferry/", env!("CARGO_PKG_VERSION")).to_string(),
            chunk_threshold: 4 << 20,
            chunk_size: 4 << 20,
            limits: crate::budget::HostLimits::default(),
            registries: crate::mirrors::RegistriesConf::default(),
        }
    }
}

/// A request to a registry, rebuilt for every try.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// `/v2/...` path and query, appended to the host's base URL; or an absolute URL (an upload
    /// `Location` resolved with [`RegistryClient::resolve`]).
    pub path: String,
    pub headers: HeaderMap,
    /// Sent with every try (cloning `Bytes` is cheap).
    pub body: Option<Bytes>,
    /// Token scope(s), space separated: `repository:library/nginx:pull`.
    pub scope: &'a str,
    /// For messages: `manifest docker.io/library/nginx:latest`.
    pub what: String,
    /// Whether `send` retries transport failures and retryable statuses. Off for requests the caller
    /// recovers itself: a broken upload `PATCH` may have stored part of its body, so sending it again
    /// as is would be wrong.
    pub retry: bool,
}

impl<'a> Call<'a> {
    /// A retried request without body or headers.
    pub fn new(method: Method, path: String, scope: &'a str, what: String) -> Call<'a> {
        Call {
            method,
            path,
            headers: HeaderMap::new(),
            body: None,
            scope,
            what,
            retry: true,
        }
    }
}

pub struct RegistryClient {
    http: reqwest::Client,
    opts: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    tokens: TokenCache,
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
    pub fn new(opts: ClientOptions) -> Result<Arc<RegistryClient>, RegistryError> {
        // ring, not aws-lc-rs: no cmake, half the build. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            // A stalled body fails after a minute of silence, then resumes; no limit on total time.
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .http2_adaptive_window(true)
            // reqwest drops Authorization on redirects to another host; cap the chain.
            .redirect(reqwest::redirect::Policy::limited(10));
        for path in &opts.ca_files {
            let pem = std::fs::read(path).map_err(|e| {
                RegistryError::Config(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RegistryError::Config(format!(
                    "{} is not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!(
                    "{} contains no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if opts.insecure_skip_tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if opts.chunk_size == 0 || opts.chunk_size > usize::MAX as u64 {
            return Err(RegistryError::Config(format!(
                "upload chunk size {} is out of range",
                opts.chunk_size
            )));
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::Config(chain(&e)))?;
        Ok(Arc::new(RegistryClient {
            http,
            opts,
            hosts: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
        }))
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
                    budget: crate::budget::HostBudget::new(&self.opts.limits),
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
                let err = match self.http.get(format!("{https}/v2/")).send().await {
                    Ok(_) => return Ok(https),
                    Err(e) => e,
                };
                tracing::debug!(registry = %host.name, "HTTPS probe failed: {err:?}");
                if let Some(detail) = certificate_problem(&err) {
                    return Err(RegistryError::Certificate {
                        registry: host.name.clone(),
                        detail,
                    });
                }
                let http = format!("http://{}", host.api_host);
                if is_local_or_private(&host.api_host)
                    || self.opts.registries.is_insecure_host(&host.name)
                {
                    let answered = self.http.get(format!("{http}/v2/")).send().await;
                    // Only a registry's answer counts: 200, or 401 asking for credentials. An HTTPS server
                    // answering a plain request with 400 is not proof.
                    if let Ok(resp) = answered.as_ref().map_err(|_| ()).and_then(|r| {
                        matches!(r.status().as_u16(), 200 | 401).then_some(r).ok_or(())
                    }) {
                        tracing::debug!(registry = %host.name, status = %resp.status(), "HTTPS failed ({}); the host answers plain HTTP", chain(&err));
                        return Ok(http);
                    }
                }
                Err(RegistryError::Unreachable {
                    registry: host.name.clone(),
                    detail: chain(&err),
                })
            })
            .await
            .cloned()
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

    /// The Authorization header for a request to `host` with `scope`, based on what the host asked for.
    async fn authorization(
        &self,
        host: &HostState,
        scope: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = host.challenge.lock().expect("challenge lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match self.credential(host).await? {
                Some(Credential::Basic { username, password }) => {
                    Some(basic_header(&username, &password))
                }
                _ => None,
            }),
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
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), scope)
                    .await?;
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
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: host.name.clone(),
            what: "token realm".into(),
            why: format!("{realm:?} is not a URL: {e}"),
        })?;
        let credential = self.credential(host).await?;
        let req = match &credential {
            Some(Credential::IdentityToken { token, .. }) => {
                // OAuth2 refresh-token grant, as Docker does for identity tokens.
                let mut form = reqwest::Url::parse("http://form/").expect("static URL");
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
                self.http
                    .post(url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or("").to_string())
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
                let req = self.http.get(url.clone());
                match &credential {
                    Some(Credential::Basic { username, password }) => {
                        req.header(AUTHORIZATION, basic_header(username, password))
                    }
                    _ => req,
                }
            }
        };
        tracing::debug!(registry = %host.name, scope, "fetching token");
        let resp = req.send().await.map_err(|e| RegistryError::Unreachable {
            registry: host.name.clone(),
            detail: format!(
                "token service {}: {}",
                url.host_str().unwrap_or(""),
                chain(&e)
            ),
        })?;
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
                what: "token request".into(),
                status: status.as_u16(),
                body: body_excerpt(resp).await,
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body = resp.bytes().await.map_err(|e| RegistryError::Transport {
            registry: host.name.clone(),
            what: "token response".into(),
            detail: chain(&e),
        })?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: host.name.clone(),
                what: "token response".into(),
                why: e.to_string(),
            })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: host.name.clone(),
                what: "token response".into(),
                why: "no token in the response".into(),
            })?;
        Ok(Token {
            value,
            expires: Instant::now() + token_lifetime(parsed.expires_in),
        })
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

    /// Send `call` to `host` with authentication and retries. Returns the final response for any status
    /// other than 401 and retryable ones; callers map 404 and friends to their own meaning.
    pub(crate) async fn send(
        &self,
        host: &HostState,
        call: &Call<'_>,
    ) -> Result<Response, RegistryError> {
        let base = self.base_url(host).await?;
        let bad_url = |e: String| RegistryError::Protocol {
            registry: host.name.clone(),
            what: call.what.clone(),
            why: format!("invalid URL {:?}: {e}", call.path),
        };
        let base = Url::parse(&base).map_err(|e| bad_url(e.to_string()))?;
        let url = if call.path.starts_with('/') {
            Url::parse(&format!(
                "{}{}",
                base.as_str().trim_end_matches('/'),
                call.path
            ))
        } else {
            Url::parse(&call.path)
        }
        .map_err(|e| bad_url(e.to_string()))?;
        // Credentials are for the registry's API host only: an upload Location may point elsewhere (a
        // storage front end, or a hostile server), and a downgrade to plain HTTP would expose them.
        let authenticate = url.origin() == base.origin();
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            self.wait_for_host(host).await;
            attempt += 1;
            let mut req = self
                .http
                .request(call.method.clone(), url.clone())
                .headers(call.headers.clone());
            if let Some(body) = &call.body {
                req = req.body(body.clone());
            }
            if authenticate && let Some(h) = self.authorization(host, call.scope).await? {
                req = req.header(AUTHORIZATION, h);
            }
            let turn = host.budget.turn().await;
            let result = req.send().await;
            drop(turn);
            // One line per request at -vv: what `bench/run` counts, and what a user debugging a registry wants.
            match &result {
                Ok(resp) => tracing::debug!(
                    "http {} {} -> {}",
                    call.method,
                    redact_query(resp.url().as_str()),
                    resp.status().as_u16()
                ),
                Err(e) => tracing::debug!("http {} {} -> error: {e}", call.method, call.what),
            }
            let (failure_error, retry_after) = match result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authenticate => {
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
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
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
                    if challenge == Some(Challenge::Basic) && self.credential(host).await?.is_none()
                    {
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
                Ok(resp) if resp.status() == StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Denied {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                    });
                }
                Ok(resp) if crate::retry::is_retryable_status(resp.status().as_u16()) => {
                    let status = resp.status().as_u16();
                    if status == 429 {
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
                        status,
                        body: body_excerpt(resp).await,
                    };
                    (err, Some((status, retry_after)))
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    if let Some(detail) = certificate_problem(&e) {
                        return Err(RegistryError::Certificate {
                            registry: host.name.clone(),
                            detail,
                        });
                    }
                    if crate::budget::is_enhance_your_calm(&e) {
                        host.budget.slow_down(&host.name);
                    }
                    let err = RegistryError::Transport {
                        registry: host.name.clone(),
                        what: call.what.clone(),
                        detail: chain(&e),
                    };
                    (err, None)
                }
            };
            let failure = match &retry_after {
                Some((code, ra)) => Failure::Status {
                    code: *code,
                    retry_after: ra.as_deref(),
                },
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
                        return Err(failure_error);
                    }
                    tracing::warn!(registry = %host.name, attempt, wait = ?wait, "{failure_error}; retrying");
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Decision::GiveUp if attempt > 1 => {
                    return Err(RegistryError::RetriesExhausted {
                        last: Box::new(failure_error),
                        attempts: attempt,
                        waited,
                    });
                }
                Decision::GiveUp => return Err(failure_error),
            }
        }
    }
}

/// Upload URLs carry the registry's session state in the query; it is noise in logs.
fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!(
        "Basic {}",
        crate::credentials::base64_encode(format!("{username}:{password}").as_bytes())
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

/// The first few hundred bytes of an error body: registries explain themselves there.
pub(crate) async fn body_excerpt(resp: Response) -> String {
    excerpt(&resp.bytes().await.unwrap_or_default())
}

/// [`body_excerpt`] of a body already read.
pub(crate) fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    format!(": {}", text.trim())
}

/// A description of the certificate problem if `err` was caused by one. rustls errors arrive wrapped in
/// io::Errors inside hyper's error, and io::Error's `source()` skips the error it wraps, so each io::Error is
/// unwrapped by hand.
fn certificate_problem(err: &reqwest::Error) -> Option<String> {
    fn find(e: &(dyn std::error::Error + 'static)) -> Option<String> {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{c:?}"));
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

    #[test]
    fn base64() {
        assert_eq!(
            crate::credentials::base64_encode(b"user:pass"),
            "dXNlcjpwYXNz"
        );
        assert_eq!(crate::credentials::base64_encode(b"a"), "YQ==");
        assert_eq!(crate::credentials::base64_encode(b"ab"), "YWI=");
    }
}
