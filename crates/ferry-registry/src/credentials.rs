//! Where credentials come from: explicit flags, then `REGISTRY_AUTH_FILE`, the Docker config
//! (`DOCKER_CONFIG` or `~/.docker/config.json`: `credHelpers`, `credsStore`, `auths`), then podman's
//! `auth.json`. Secrets are never logged.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What to authenticate to a registry with. Its `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or a token used as one).
    Basic {
        /// The username.
        username: String,
        /// The password. Secret: never logged.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in the Docker config), exchanged at the token endpoint.
    IdentityToken {
        /// The username it belongs to (often `<token>`).
        username: String,
        /// The refresh token. Secret: never logged.
        token: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, <redacted>)")
            }
        }
    }
}

/// Why credentials could not be looked up or stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A `docker-credential-<helper>` the Docker config names could not be started.
    #[error(
        "cannot run docker-credential-{helper} for {host} (install it, or remove it from the Docker config)"
    )]
    HelperRun {
        /// The helper's name (without `docker-credential-`).
        helper: String,
        /// The registry host asked about.
        host: String,
        /// Why it could not be run.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper ran but failed or answered something unreadable.
    #[error("credential helper docker-credential-{helper} failed for {host}: {why}")]
    Helper {
        /// The helper's name (without `docker-credential-`).
        helper: String,
        /// The registry host asked about.
        host: String,
        /// What went wrong (its exit status and output, without secrets).
        why: String,
    },
    /// An auth file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An auth file is not JSON.
    #[error("{} is not valid JSON", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An auth file's content is unusable (a bad `auth` entry, not a JSON object where one belongs), or a
    /// login cannot be stored in it (a username with `:`).
    #[error("{}: {why}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Looks up credentials per registry host.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    /// From `--username/--password`: used for every registry this run talks to.
    explicit: Option<Credential>,
    files: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl CredentialStore {
    /// The standard search path, taken from the environment.
    pub fn from_env(explicit: Option<Credential>) -> Self {
        let mut files = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(p));
        }
        let docker_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        if let Some(d) = docker_dir {
            files.push(d.join("config.json"));
        }
        if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(run).join("containers").join("auth.json"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            files.push(PathBuf::from(h).join(".config/containers/auth.json"));
        }
        CredentialStore { explicit, files }
    }

    /// A store that searches `files` (in order) after `explicit`, ignoring the environment; for tests and
    /// callers that know their files.
    pub fn with_files(explicit: Option<Credential>, files: Vec<PathBuf>) -> Self {
        CredentialStore { explicit, files }
    }

    /// Credentials for `host` (a registry name as in references: `docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some(c) = &self.explicit {
            return Ok(Some(c.clone()));
        }
        for file in &self.files {
            if let Some(c) = lookup_file(file, host)? {
                tracing::debug!(host, file = %file.display(), "using stored credentials");
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The keys a host may be stored under. Docker Hub has historical aliases.
fn candidate_keys(host: &str) -> Vec<String> {
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![host.to_string()]
    }
}

/// `https://host/v1/` → `host`: Docker writes URLs as keys.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn lookup_file(path: &Path, host: &str) -> Result<Option<Credential>, CredentialError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let config: ConfigFile =
        serde_json::from_slice(&bytes).map_err(|source| CredentialError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let keys = candidate_keys(host);
    for key in &keys {
        if let Some(helper) = config.cred_helpers.get(key) {
            return helper_get(helper, key);
        }
    }
    for (stored, entry) in &config.auths {
        if keys
            .iter()
            .any(|k| k == stored || normalize_key(stored) == normalize_key(k))
            && let Some(c) = decode_entry(path, stored, entry)?
        {
            return Ok(Some(c));
        }
    }
    if let Some(helper) = &config.creds_store {
        // The store is asked under the same key Docker uses when logging in.
        return helper_get(helper, &keys[0]);
    }
    Ok(None)
}

fn decode_entry(
    path: &Path,
    key: &str,
    e: &AuthEntry,
) -> Result<Option<Credential>, CredentialError> {
    let (username, password) = match (&e.auth, &e.username, &e.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let decoded = ferry_oci::base64::decode(auth)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| CredentialError::Config {
                    path: path.to_path_buf(),
                    why: format!("auths[{key:?}].auth is not base64 of user:password"),
                })?;
            let (u, p) = decoded
                .split_once(':')
                .ok_or_else(|| CredentialError::Config {
                    path: path.to_path_buf(),
                    why: format!("auths[{key:?}].auth is not base64 of user:password"),
                })?;
            (u.to_string(), p.to_string())
        }
        (_, Some(u), Some(p)) => (u.clone(), p.clone()),
        _ => (String::new(), String::new()),
    };
    if let Some(token) = e.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken {
            username,
            token: token.clone(),
        }));
    }
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::Basic { username, password }))
}

/// `docker-credential-<helper> get`, host on stdin, JSON `{"Username","Secret"}` on stdout.
fn helper_get(helper: &str, key: &str) -> Result<Option<Credential>, CredentialError> {
    let out = match run_helper(helper, "get", key, key.as_bytes()) {
        Ok(out) => out,
        Err(CredentialError::Helper { why, .. }) if why.contains("credentials not found") => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    #[derive(Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let parsed: HelperOut = serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
        helper: helper.to_string(),
        host: key.to_string(),
        why: format!("invalid output (expected JSON with Username and Secret): {e}"),
    })?;
    Ok(Some(if parsed.username == "<token>" {
        Credential::IdentityToken {
            username: parsed.username,
            token: parsed.secret,
        }
    } else {
        Credential::Basic {
            username: parsed.username,
            password: parsed.secret,
        }
    }))
}

/// `docker-credential-<helper> <action>` with `input` on stdin (the credential-helper protocol): its
/// standard output when it succeeds. What a failed `store` printed is never shown: a helper may echo
/// what it was given.
pub(crate) fn run_helper(
    helper: &str,
    action: &str,
    key: &str,
    input: &[u8],
) -> Result<Vec<u8>, CredentialError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let run_failed = |source| CredentialError::HelperRun {
        helper: helper.to_string(),
        host: key.to_string(),
        source,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(run_failed)?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .map_err(run_failed)?;
    let out = child.wait_with_output().map_err(run_failed)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let said = if action == "store" {
        String::new()
    } else {
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        format!(": {text}")
    };
    Err(CredentialError::Helper {
        helper: helper.to_string(),
        host: key.to_string(),
        why: format!("{action} failed ({}){said}", out.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_with_url_keys_and_hub_aliases() {
        let dir = tempfile_dir();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"https://reg.example:5000/v2/":{"username":"u","password":"p"},"tok.example":{"identitytoken":"rt"}}}"#,
        )
        .unwrap();
        let store = CredentialStore::with_files(None, vec![path]);
        assert_eq!(
            store.lookup("docker.io").unwrap(),
            Some(Credential::Basic {
                username: "hub".into(),
                password: "secret".into()
            })
        );
        assert_eq!(
            store.lookup("reg.example:5000").unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(matches!(
            store.lookup("tok.example").unwrap(),
            Some(Credential::IdentityToken { .. })
        ));
        assert_eq!(store.lookup("other.example").unwrap(), None);
        let explicit = Credential::Basic {
            username: "x".into(),
            password: "hunter2".into(),
        };
        let store = CredentialStore::with_files(Some(explicit.clone()), vec![]);
        assert_eq!(store.lookup("any").unwrap(), Some(explicit));
        assert!(
            !format!("{:?}", store).contains("hunter2"),
            "secrets are redacted in Debug"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("ferry-cred-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
