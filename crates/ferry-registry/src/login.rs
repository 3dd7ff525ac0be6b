//! `ferry login` / `ferry logout`: checking credentials against a registry, and storing or erasing them
//! where the Docker tools (and ferry's own lookup, [`crate::credentials`]) find them: the Docker config's
//! `auths`, or the credential helper the config names for the host.

use std::path::{Path, PathBuf};

use reqwest::Method;
use std::io::Write;

use serde_json::{Map, Value};

use crate::client::{Call, RegistryClient};
use crate::credentials::{CredentialError, run_helper};
use crate::error::RegistryError;

impl RegistryClient {
    /// `GET /v2/` with this client's credentials, through the whole challenge (Basic, or a token from the
    /// token service): Ok when the registry accepts them.
    pub async fn check_access(&self, registry: &str) -> Result<(), RegistryError> {
        let host = self.host(registry);
        let what = format!("the API root of {registry}");
        let call = Call::new(Method::GET, "/v2/".into(), "", what.clone());
        let resp = self.send(&host, &call).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(RegistryError::Status {
            registry: registry.to_string(),
            what,
            status: resp.status().as_u16(),
            body: self.body_excerpt(resp).await,
        })
    }
}

/// Where credentials went, or were removed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialLocation {
    /// The `auths` section of this Docker config file.
    File(PathBuf),
    /// `docker-credential-<name>`, named by the config's `credHelpers` or `credsStore`.
    Helper(String),
}

impl std::fmt::Display for CredentialLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialLocation::File(p) => write!(f, "{}", p.display()),
            CredentialLocation::Helper(h) => write!(f, "docker-credential-{h}"),
        }
    }
}

/// As JSON: `store` (`file` or `helper`), `path` (the file) and `helper` (its name), the one that does not
/// apply `null`.
impl serde::Serialize for CredentialLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (store, path, helper) = match self {
            CredentialLocation::File(p) => ("file", Some(p.display().to_string()), None),
            CredentialLocation::Helper(h) => ("helper", None, Some(h.as_str())),
        };
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("store", store)?;
        m.serialize_entry("path", &path)?;
        m.serialize_entry("helper", &helper)?;
        m.end()
    }
}

/// Why a login or logout failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Neither `$DOCKER_CONFIG` nor `$HOME` says where the Docker config is.
    #[error("no Docker config location: set $DOCKER_CONFIG or $HOME")]
    NoConfig,
    /// An empty password was given.
    #[error("the password for {0} is empty")]
    EmptyPassword(String),
    /// The registry refused the credentials; nothing was stored.
    #[error("logging in to {host} as {username}: nothing was stored")]
    Refused {
        /// The registry host.
        host: String,
        /// The user.
        username: String,
        /// What the registry said.
        source: RegistryError,
    },
    /// The credentials could not be stored or removed.
    #[error("{action} the credentials for {host}")]
    Store {
        /// `storing` or `removing`.
        action: &'static str,
        /// The registry host.
        host: String,
        /// Why.
        source: CredentialError,
    },
}

/// `ferry login`: check `username`/`password` against `host` with `client` (built with exactly these
/// credentials), then store them where the Docker tools find them ([`store_credentials`] on
/// [`docker_config_path`]). Nothing is stored when the registry refuses them.
pub async fn login(
    client: &RegistryClient,
    host: &str,
    username: &str,
    password: &str,
) -> Result<CredentialLocation, LoginError> {
    if password.is_empty() {
        return Err(LoginError::EmptyPassword(host.to_string()));
    }
    let path = docker_config_path().ok_or(LoginError::NoConfig)?;
    client
        .check_access(host)
        .await
        .map_err(|source| LoginError::Refused {
            host: host.to_string(),
            username: username.to_string(),
            source,
        })?;
    let (h, user, password) = (host.to_string(), username.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || store_credentials(&path, &h, &user, &password))
        .await
        .expect("credential store task panicked")
        .map_err(|source| LoginError::Store {
            action: "storing",
            host: host.to_string(),
            source,
        })
}

/// `ferry logout`: [`erase_credentials`] for `host` from [`docker_config_path`]; `None` when nothing was
/// stored.
pub async fn logout(host: &str) -> Result<Option<CredentialLocation>, LoginError> {
    let path = docker_config_path().ok_or(LoginError::NoConfig)?;
    let h = host.to_string();
    tokio::task::spawn_blocking(move || erase_credentials(&path, &h))
        .await
        .expect("credential store task panicked")
        .map_err(|source| LoginError::Store {
            action: "removing",
            host: host.to_string(),
            source,
        })
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: the file `docker login` writes.
pub fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"))
}

/// The key Docker stores a host under: Docker Hub keeps its historical v1 URL.
pub fn server_key(host: &str) -> String {
    if is_docker_hub(host) {
        "https://index.docker.io/v1/".into()
    } else {
        host.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Whether an `auths` key names `host`: `host`, `https://host/v2/`, or one of Docker Hub's aliases.
fn key_names_host(key: &str, host: &str) -> bool {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let bare = bare.split('/').next().unwrap_or(bare);
    bare == host || (is_docker_hub(host) && is_docker_hub(bare))
}

/// Store `username`/`password` for `host`: through the credential helper the config at `path` names for it,
/// else as `auths[host].auth` in the file. Every other key of the file is kept; the file is replaced
/// atomically and is readable only by its owner.
pub fn store_credentials(
    path: &Path,
    host: &str,
    username: &str,
    password: &str,
) -> Result<CredentialLocation, CredentialError> {
    if username.contains(':') {
        return Err(CredentialError::Config {
            path: path.to_path_buf(),
            why: format!(
                "username {username:?} contains ':', which the auth field cannot represent"
            ),
        });
    }
    let mut config = read_config(path)?;
    let key = server_key(host);
    if let Some(helper) = helper_for(&config, host) {
        let input = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        run_helper(&helper, "store", &key, input.to_string().as_bytes())?;
        return Ok(CredentialLocation::Helper(helper));
    }
    let auths = object_at(&mut config, "auths", path)?;
    // Older spellings of the same host would shadow the new entry on lookup.
    auths.retain(|k, _| !key_names_host(k, host));
    let auth = ferry_oci::base64::encode(format!("{username}:{password}").as_bytes());
    auths.insert(key, serde_json::json!({ "auth": auth }));
    write_config(path, &config)?;
    Ok(CredentialLocation::File(path.to_path_buf()))
}

/// Remove what is stored for `host` (every spelling of it in `auths`, or the helper's entry). None when
/// nothing was stored.
pub fn erase_credentials(
    path: &Path,
    host: &str,
) -> Result<Option<CredentialLocation>, CredentialError> {
    let mut config = read_config(path)?;
    let key = server_key(host);
    let mut erased = None;
    if let Some(helper) = helper_for(&config, host) {
        match run_helper(&helper, "erase", &key, key.as_bytes()) {
            Ok(_) => erased = Some(CredentialLocation::Helper(helper)),
            Err(CredentialError::Helper { why, .. }) if why.contains("not found") => {}
            Err(e) => return Err(e),
        }
    }
    // An entry in the file would still be found after the helper forgot the host: remove it too.
    if let Some(Value::Object(auths)) = config.get_mut("auths") {
        let before = auths.len();
        auths.retain(|k, _| !key_names_host(k, host));
        if auths.len() != before {
            write_config(path, &config)?;
            erased.get_or_insert(CredentialLocation::File(path.to_path_buf()));
        }
    }
    Ok(erased)
}

/// The username stored in the file for `host` (for messages); None when absent or kept by a helper.
pub fn stored_username(path: &Path, host: &str) -> Option<String> {
    let config = read_config(path).ok()?;
    let auths = config.get("auths")?.as_object()?;
    auths
        .iter()
        .filter(|(k, _)| key_names_host(k, host))
        .find_map(|(_, v)| {
            let auth = v.get("auth")?.as_str()?;
            let decoded = String::from_utf8(ferry_oci::base64::decode(auth)?).ok()?;
            Some(decoded.split_once(':')?.0.to_string())
        })
}

/// `credHelpers[host]` (any spelling of the host), else `credsStore` — Docker's order.
fn helper_for(config: &Map<String, Value>, host: &str) -> Option<String> {
    let named = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(k, _)| key_names_host(k, host))
                .and_then(|(_, v)| v.as_str())
        });
    named
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn read_config(path: &Path) -> Result<Map<String, Value>, CredentialError> {
    let path = path.to_path_buf();
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(CredentialError::Config {
                path,
                why: "not a JSON object".into(),
            }),
            Err(source) => Err(CredentialError::Json { path, source }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(CredentialError::Io { path, source }),
    }
}

fn object_at<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, CredentialError> {
    let entry = config
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| CredentialError::Config {
            path: path.to_path_buf(),
            why: format!("{key:?} is not a JSON object"),
        })
}

/// Write the config as Docker does (tab-indented), to a 0600 temp file beside it, then rename. A symlinked
/// config (dotfile managers) is written through the link.
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<(), CredentialError> {
    let fail = |p: &Path, source: std::io::Error| CredentialError::Io {
        path: p.to_path_buf(),
        source,
    };
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| fail(dir, e))?;
    let mut bytes = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut bytes,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    serde::Serialize::serialize(config, &mut ser).expect("JSON values serialize");
    bytes.push(b'\n');
    let tmp = dir.join(format!(".config.json.ferry-{}", std::process::id()));
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        // A leftover temp file from a crash keeps its old mode; this one must be private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&target, e));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_location_shows_and_serializes_where_it_is() {
        let file = CredentialLocation::File(PathBuf::from("/home/u/.docker/config.json"));
        let helper = CredentialLocation::Helper("pass".into());
        assert_eq!(file.to_string(), "/home/u/.docker/config.json");
        assert_eq!(helper.to_string(), "docker-credential-pass");
        assert_eq!(
            serde_json::to_value(&file).unwrap(),
            serde_json::json!({"store": "file", "path": "/home/u/.docker/config.json", "helper": null})
        );
        assert_eq!(
            serde_json::to_value(&helper).unwrap(),
            serde_json::json!({"store": "helper", "path": null, "helper": "pass"})
        );
    }

    fn temp_config(contents: Option<&str>) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ferry-login-test-{}-{}",
            std::process::id(),
            contents.map_or(0, str::len)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        if let Some(c) = contents {
            std::fs::write(&path, c).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn stores_and_erases_keeping_other_keys() {
        let (dir, path) = temp_config(Some(
            r#"{"auths":{"https://reg.example:5000/v2/":{"auth":"b2xkOm9sZA=="},"other.example":{"auth":"eDp5"}},"psFormat":"table","proxies":{"default":{"httpProxy":"http://p"}}}"#,
        ));
        let stored = store_credentials(&path, "reg.example:5000", "u", "p:w").unwrap();
        assert_eq!(stored, CredentialLocation::File(path.clone()));
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p");
        assert_eq!(v["auths"]["other.example"]["auth"], "eDp5");
        assert_eq!(v["auths"]["reg.example:5000"]["auth"], "dTpwOnc=");
        assert!(
            v["auths"].get("https://reg.example:5000/v2/").is_none(),
            "the old spelling is replaced"
        );
        assert_eq!(
            stored_username(&path, "reg.example:5000").as_deref(),
            Some("u")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let lookup = crate::CredentialStore::with_files(None, vec![path.clone()]);
        assert_eq!(
            lookup.lookup("reg.example:5000").unwrap(),
            Some(crate::Credential::Basic {
                username: "u".into(),
                password: "p:w".into()
            })
        );

        assert_eq!(
            erase_credentials(&path, "reg.example:5000").unwrap(),
            Some(CredentialLocation::File(path.clone()))
        );
        assert_eq!(erase_credentials(&path, "reg.example:5000").unwrap(), None);
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["other.example"]["auth"], "eDp5");
        assert!(store_credentials(&path, "x", "a:b", "p").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn docker_hub_keys_and_fresh_files() {
        let (dir, path) = temp_config(None);
        store_credentials(&path, "docker.io", "hub", "pw").unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(v["auths"]["https://index.docker.io/v1/"]["auth"].is_string());
        assert!(key_names_host("index.docker.io", "docker.io"));
        assert!(!key_names_host("reg.example", "docker.io"));
        assert_eq!(
            helper_for(
                &serde_json::from_str(
                    r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#
                )
                .unwrap(),
                "gcr.io"
            )
            .as_deref(),
            Some("gcloud")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
