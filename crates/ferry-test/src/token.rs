//! The token half of Docker's token auth: JWT minting and a tiny token server.
//!
//! Distribution 2.8 (`registry/auth/token`) checks, in order: `iss` is the configured issuer, `aud` is
//! the configured service, `exp`/`nbf` within 60 s leeway, a non-empty signature, then finds the key
//! from the header: `x5c` first (leaf certificate verified against `rootcertbundle` with any key
//! usage; a self-signed leaf that is itself in the bundle verifies), else `jwk`, else `kid` as a
//! libtrust fingerprint. ES256 signatures are raw `r || s` (64 bytes), which is what ring's
//! `*_FIXED_SIGNING` produces. `aud` must be a plain string in 2.8.

use crate::server::BackgroundServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::encode::{base64, base64_decode, base64url, percent_decode, rfc3339};
use crate::pki;
use crate::{PASSWORD, USER};

/// The `service` the token server answers for, and the audience of its tokens.
pub const SERVICE: &str = "ferry-test";
/// The issuer its tokens name (the registry is configured to trust it).
pub const ISSUER: &str = "ferry-test-issuer";
/// Lifetime of minted tokens, also reported as `expires_in`.
pub const TOKEN_TTL_SECS: u64 = 300;

/// One `access` entry of a token: `type:name:actions` from a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The resource type (`repository`, `registry`).
    pub kind: String,
    /// The resource name (`library/nginx`, `catalog`).
    pub name: String,
    /// The actions granted (`pull`, `push`, `*`).
    pub actions: Vec<String>,
}

impl Access {
    /// An entry granting `actions` on `kind:name`.
    pub fn new(kind: &str, name: &str, actions: &[&str]) -> Access {
        Access {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Parses `type:name:actions`. The name may itself contain `:` (`repository:host:5000/x:pull`),
    /// so type ends at the first colon and actions start after the last.
    pub fn parse(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let actions = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        Some(Access {
            kind: kind.to_string(),
            name: name.to_string(),
            actions,
        })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn key_pair() -> &'static EcdsaKeyPair {
    static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pki::signing().key_pkcs8_der,
            &SystemRandom::new(),
        )
        .expect("token signing key is PKCS#8 P-256")
    })
}

/// Signs a registry token granting `access` to `subject`, valid now for [`TOKEN_TTL_SECS`].
pub fn mint(subject: &str, access: &[Access]) -> String {
    static JTI: AtomicUsize = AtomicUsize::new(0);
    let now = now();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [base64(&pki::signing().cert_der)]});
    let access: Vec<_> = access
        .iter()
        .map(|a| json!({"type": a.kind, "name": a.name, "actions": a.actions}))
        .collect();
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + TOKEN_TTL_SECS,
        "nbf": now,
        "iat": now,
        "jti": format!("ferry-test-{}-{}-{now}", std::process::id(), JTI.fetch_add(1, Ordering::Relaxed)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = key_pair()
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("ECDSA signing");
    format!("{signing_input}.{}", base64url(signature.as_ref()))
}

#[derive(Default)]
struct Stats {
    requests: AtomicUsize,
    issued: AtomicUsize,
    scopes: Mutex<Vec<Vec<String>>>,
}

/// HTTP token server on 127.0.0.1, on its own thread and runtime so it works under `#[test]` and
/// `#[tokio::test]` alike and keeps answering while a test blocks its own runtime.
pub struct TokenServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    /// Stops the server when the TokenServer is dropped.
    _server: BackgroundServer,
}

impl TokenServer {
    /// Start a token server on a free loopback port; it stops when dropped.
    pub fn start() -> TokenServer {
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let listener = BackgroundServer::bind("ferry-test-token-server");
        let server = BackgroundServer::start("ferry-test-token-server", listener, move |stream| {
            handle_connection(stream, thread_stats.clone())
        });
        TokenServer {
            addr: server.addr,
            stats,
            _server: server,
        }
    }

    /// The realm to configure in the registry.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Every request that reached `/token`, including refused ones.
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Requests that got a token.
    pub fn issued(&self) -> usize {
        self.stats.issued.load(Ordering::SeqCst)
    }

    /// Scopes of each issued token, in arrival order.
    pub fn scopes(&self) -> Vec<Vec<String>> {
        self.stats.scopes.lock().expect("scopes lock").clone()
    }
}

struct Response {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn json(status: &'static str, body: serde_json::Value) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn error(status: &'static str, code: &str, message: &str) -> Response {
        Response::json(
            status,
            json!({"errors": [{"code": code, "message": message}]}),
        )
    }
}

/// One request per connection (`Connection: close`): plenty for tests, and no keep-alive state.
async fn handle_connection(mut stream: tokio::net::TcpStream, stats: Arc<Stats>) {
    const MAX_REQUEST: usize = 64 * 1024;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_REQUEST {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let content_length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < header_end + content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[header_end..header_end + content_length]).into_owned();
    let response = respond(&method, &target, header("authorization"), &body, &stats);

    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn parse_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = authorization?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// GET with Basic credentials (the docker token flow) or POST form `grant_type=password` (the
/// OAuth2 flow containerd prefers); both need USER/PASSWORD and get every scope they ask for.
fn respond(
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: &str,
    stats: &Stats,
) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return Response::error("404 Not Found", "NOT_FOUND", "only /token lives here");
    }
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let mut params = parse_params(query);
    let credentials = match method {
        "GET" => basic_credentials(authorization),
        "POST" => {
            params.extend(parse_params(body));
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            match (
                param("grant_type").as_deref(),
                param("username"),
                param("password"),
            ) {
                (Some("password"), Some(user), Some(password)) => Some((user, password)),
                _ => basic_credentials(authorization),
            }
        }
        _ => return Response::error("405 Method Not Allowed", "UNSUPPORTED", "GET or POST"),
    };
    if credentials
        .as_ref()
        .is_none_or(|(u, p)| u != USER || p != PASSWORD)
    {
        let mut response = Response::error(
            "401 Unauthorized",
            "UNAUTHORIZED",
            "authentication required",
        );
        response.headers.push((
            "WWW-Authenticate",
            "Basic realm=\"ferry-test-token\"".to_string(),
        ));
        return response;
    }
    let wrong_service = params.iter().find(|(k, v)| k == "service" && v != SERVICE);
    if let Some((_, service)) = wrong_service {
        return Response::error(
            "400 Bad Request",
            "INVALID_SERVICE",
            &format!("unknown service {service:?}"),
        );
    }
    // Several `scope` parameters, and some clients pack several scopes into one, space-separated.
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let access: Vec<Access> = scopes.iter().filter_map(|s| Access::parse(s)).collect();
    let token = mint(USER, &access);
    stats.issued.fetch_add(1, Ordering::SeqCst);
    stats
        .scopes
        .lock()
        .expect("scopes lock")
        .push(scopes.clone());
    Response::json(
        "200 OK",
        json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL_SECS,
            "issued_at": rfc3339(now()),
            "scope": scopes.join(" "),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_colons_in_names() {
        assert_eq!(
            Access::parse("repository:localhost:5000/a/b:pull,push"),
            Some(Access::new(
                "repository",
                "localhost:5000/a/b",
                &["pull", "push"]
            ))
        );
        assert_eq!(
            Access::parse("registry:catalog:*"),
            Some(Access::new("registry", "catalog", &["*"]))
        );
        assert_eq!(Access::parse("nonsense"), None);
    }

    #[test]
    fn minted_token_verifies_with_the_certificate_key() {
        let token = mint("alice", &[Access::new("repository", "a/b", &["pull"])]);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&base64_decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["x5c"][0], base64(&pki::signing().cert_der));
        let claims: serde_json::Value =
            serde_json::from_slice(&base64_decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], SERVICE);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["access"][0]["actions"][0], "pull");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            ring::signature::KeyPair::public_key(key_pair())
                .as_ref()
                .to_vec(),
        );
        let signature = base64_decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 64);
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn responds_401_without_credentials_and_grants_scopes_with_them() {
        let stats = Stats::default();
        let refused = respond(
            "GET",
            "/token?service=ferry-test&scope=repository%3Aa%3Apull",
            None,
            "",
            &stats,
        );
        assert_eq!(refused.status, "401 Unauthorized");
        let basic = format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()));
        let ok = respond(
            "GET",
            "/token?service=ferry-test&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull%2Cpush",
            Some(&basic),
            "",
            &stats,
        );
        assert_eq!(ok.status, "200 OK");
        let body: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
        assert_eq!(body["expires_in"], 300);
        assert_eq!(body["token"], body["access_token"]);
        let form = format!(
            "grant_type=password&username={USER}&password={PASSWORD}&service=ferry-test&scope=repository%3Aa%3Apull"
        );
        assert_eq!(
            respond("POST", "/token", None, &form, &stats).status,
            "200 OK"
        );
        assert_eq!(stats.requests.load(Ordering::SeqCst), 3);
        assert_eq!(stats.issued.load(Ordering::SeqCst), 2);
        assert_eq!(
            stats.scopes.lock().unwrap()[0],
            vec!["repository:a:pull", "repository:b:pull,push"]
        );
    }
}
