//! `WWW-Authenticate` challenges and the Bearer token cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a host wants to be authenticated, learned from its first 401.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: the credentials go with every request.
    Basic,
    /// A token service: credentials (or none) are exchanged at `realm` for a token per scope.
    Bearer {
        /// The token endpoint's URL.
        realm: String,
        /// The `service` parameter to send to it, if the challenge named one.
        service: Option<String>,
        /// The scope the challenge asked for, if any (ferry asks for the scope of the call instead).
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value. Unknown schemes yield `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="quoted \" value", key2=token` → map (keys lowercased).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// A Bearer token from a token service, and when to stop using it.
#[derive(Clone)]
pub struct Token {
    /// The token, sent as `Authorization: Bearer <value>`. Secret: never logged.
    pub value: String,
    /// When it is treated as expired (a little before the server's expiry; see [`token_lifetime`]).
    pub expires: Instant,
}

/// Tokens per (host, scope). Each key has its own async lock, so when many requests need the same token at
/// once exactly one fetches it and the others wait for that result.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

impl TokenCache {
    /// The slot for `host`'s token for `scope` (created empty on first use). Lock it before fetching a token,
    /// so concurrent requests fetch it once.
    pub fn slot(&self, host: &str, scope: &str) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        self.slots
            .lock()
            .expect("token cache lock")
            .entry(format!("{host} {scope}"))
            .or_default()
            .clone()
    }
}

/// Tokens are refreshed a little before they expire so a long transfer never starts with a dying one.
pub fn token_lifetime(expires_in: Option<u64>) -> Duration {
    let secs = expires_in.unwrap_or(60).max(60);
    Duration::from_secs(secs.saturating_sub(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "realm is required"
        );
        let c = parse_challenge(r#"bearer realm=http://h/t, service="a \"b\"""#).unwrap();
        assert!(
            matches!(c, Challenge::Bearer { ref service, .. } if service.as_deref() == Some("a \"b\""))
        );
    }

    #[test]
    fn token_lifetime_has_margin() {
        assert_eq!(token_lifetime(Some(300)), Duration::from_secs(290));
        assert_eq!(token_lifetime(None), Duration::from_secs(50));
    }
}
