//! The Docker Engine API over its unix socket: find the socket, check the image is there, stream its
//! `docker save` tar to a temp file (bounded memory), and read that with [`DockerArchive`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_oci::{Digest, PlatformSpec};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::docker::DockerArchive;
use crate::error::{ArchiveError, Result};
use crate::names::{ArchiveImage, normalize_name};
use crate::store::{ArchiveStore, OpenOptions};

/// Where the Docker Engine listens when neither `DOCKER_HOST` nor a docker context says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// The newest API version ferry speaks; older engines are spoken to in their own version.
const MAX_API: (u32, u32) = (1, 48);
/// `GET /images/get` takes a `platform` from this version on (Engine 28).
const PLATFORM_API: (u32, u32) = (1, 48);
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the Docker Engine listens, and how ferry found that out (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The engine's Unix socket.
    pub socket: PathBuf,
    /// What named that socket, for messages.
    pub origin: EndpointOrigin,
}

/// What gave ferry the Docker Engine's socket; messages say it, so a user who did not expect that engine
/// knows where to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointOrigin {
    /// `DOCKER_HOST`, with its value.
    DockerHost(String),
    /// A docker context: its name and the `meta.json` that gave the endpoint.
    Context {
        /// The context's name.
        name: String,
        /// Its `meta.json`.
        meta: PathBuf,
    },
    /// Nothing set: the default socket.
    Default,
    /// Given by the caller.
    Explicit,
}

impl std::fmt::Display for EndpointOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointOrigin::DockerHost(v) => write!(f, "DOCKER_HOST={v}"),
            EndpointOrigin::Context { name, meta } => {
                write!(f, "docker context {name:?} from {}", meta.display())
            }
            EndpointOrigin::Default => write!(
                f,
                "the default socket: DOCKER_HOST is not set and no docker context is selected"
            ),
            EndpointOrigin::Explicit => write!(f, "as given"),
        }
    }
}

impl Endpoint {
    /// The engine at the Unix socket `socket`, as given by the caller.
    pub fn unix(socket: impl Into<PathBuf>) -> Endpoint {
        Endpoint {
            socket: socket.into(),
            origin: EndpointOrigin::Explicit,
        }
    }

    /// `DOCKER_HOST=unix://…`, else the current docker context (`DOCKER_CONTEXT`, else `currentContext` in
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Result<Endpoint> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::discover(|k| std::env::var(k).ok(), home.as_deref())
    }

    /// [`from_env`](Self::from_env) with the environment and home directory given (for tests).
    pub fn discover(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Result<Endpoint> {
        if let Some(host) = env("DOCKER_HOST").filter(|h| !h.is_empty()) {
            return Ok(Endpoint {
                socket: unix_path(&host)
                    .map_err(|why| ArchiveError::Endpoint(format!("DOCKER_HOST={host}: {why}")))?,
                origin: EndpointOrigin::DockerHost(host),
            });
        }
        let config_dir = env("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".docker")));
        let context = match env("DOCKER_CONTEXT").filter(|c| !c.is_empty()) {
            Some(c) => Some(c),
            None => config_dir
                .as_ref()
                .and_then(|d| current_context(&d.join("config.json"))),
        };
        match (context, config_dir) {
            (Some(name), Some(dir)) if name != "default" => {
                let meta = dir
                    .join("contexts")
                    .join("meta")
                    .join(Digest::of(name.as_bytes()).hex())
                    .join("meta.json");
                let host = context_host(&meta).map_err(|why| {
                    ArchiveError::Endpoint(format!("docker context {name:?}: {why}"))
                })?;
                let socket = unix_path(&host).map_err(|why| {
                    ArchiveError::Endpoint(format!(
                        "docker context {name:?} ({}): endpoint {host}: {why}",
                        meta.display()
                    ))
                })?;
                Ok(Endpoint {
                    socket,
                    origin: EndpointOrigin::Context { name, meta },
                })
            }
            _ => Ok(Endpoint {
                socket: PathBuf::from(DEFAULT_SOCKET),
                origin: EndpointOrigin::Default,
            }),
        }
    }
}

fn unix_path(host: &str) -> std::result::Result<PathBuf, String> {
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(
            "ferry reaches the Docker Engine over a unix socket only (unix:///path/to/docker.sock)"
                .into(),
        ),
    }
}

fn current_context(config: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext")]
        current_context: Option<String>,
    }
    let bytes = std::fs::read(config).ok()?;
    serde_json::from_slice::<Config>(&bytes)
        .ok()?
        .current_context
        .filter(|c| !c.is_empty())
}

fn context_host(meta: &Path) -> std::result::Result<String, String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: std::collections::HashMap<String, MetaEndpoint>,
    }
    #[derive(Deserialize)]
    struct MetaEndpoint {
        #[serde(rename = "Host", default)]
        host: String,
    }
    let bytes = std::fs::read(meta).map_err(|e| format!("cannot read {}: {e}", meta.display()))?;
    let parsed: Meta =
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid {}: {e}", meta.display()))?;
    parsed
        .endpoints
        .get("docker")
        .map(|e| e.host.clone())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{} has no docker endpoint", meta.display()))
}

/// What `GET /images/{name}/json` says about an image (the parts ferry uses).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageInspect {
    /// The image ID (`sha256:<hex>` of its config).
    #[serde(rename = "Id", default)]
    pub id: String,
    /// `repo:tag` names the engine knows it by.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// `repo@digest` names of the registry manifests it was pulled from.
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Option<Vec<String>>,
    /// Operating system (`linux`).
    #[serde(rename = "Os", default)]
    pub os: String,
    /// Architecture (`amd64`).
    #[serde(rename = "Architecture", default)]
    pub architecture: String,
    /// Architecture variant (`v7`), if any; may be empty.
    #[serde(rename = "Variant", default)]
    pub variant: Option<String>,
    /// Size in bytes as the engine reports it (uncompressed layers).
    #[serde(rename = "Size", default)]
    pub size: u64,
}

impl ImageInspect {
    /// The image's platform (an empty variant is no variant).
    pub fn platform(&self) -> ferry_oci::Platform {
        ferry_oci::Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
            ..Default::default()
        }
    }
}

/// An image exported from the engine: the archive (a store; its temp file goes when it is dropped) and the
/// image in it, named by the reference it was asked for.
pub struct DaemonExport {
    /// The export, as a docker-save archive store.
    pub archive: DockerArchive,
    /// The image asked for, as the archive holds it.
    pub image: ArchiveImage,
}

/// A connection to the Docker Engine API.
pub struct DockerDaemon {
    client: reqwest::Client,
    endpoint: Endpoint,
    api: (u32, u32),
    server_version: String,
    opts: OpenOptions,
}

impl std::fmt::Debug for DockerDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDaemon")
            .field("endpoint", &self.endpoint)
            .field("api", &self.api_version())
            .finish()
    }
}

impl DockerDaemon {
    /// Connect to the engine [`Endpoint::from_env`] finds.
    pub async fn connect(opts: OpenOptions) -> Result<DockerDaemon> {
        Self::connect_to(Endpoint::from_env()?, opts).await
    }

    /// Ping the engine and learn its API version.
    pub async fn connect_to(endpoint: Endpoint, opts: OpenOptions) -> Result<DockerDaemon> {
        // reqwest is built without a default TLS provider; the socket speaks plain HTTP, but building a
        // client needs one installed (the registry client installs the same).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unreachable = |why: String| ArchiveError::DaemonUnreachable {
            socket: endpoint.socket.clone(),
            origin: endpoint.origin.to_string(),
            why,
        };
        if !endpoint.socket.exists() {
            return Err(unreachable("no such socket".into()));
        }
        let client = reqwest::Client::builder()
            .unix_socket(endpoint.socket.as_path())
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| unreachable(error_chain(&e)))?;
        let ping = client
            .get("http://docker/_ping")
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        if !ping.status().is_success() {
            return Err(unreachable(format!("/_ping answered {}", ping.status())));
        }
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "Version", default)]
            version: String,
            #[serde(rename = "ApiVersion", default)]
            api_version: String,
        }
        let resp = client
            .get("http://docker/version")
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let version: Version = json_response(resp, &endpoint.socket, "GET /version").await?;
        let server_api = parse_api(&version.api_version).ok_or_else(|| ArchiveError::Daemon {
            socket: endpoint.socket.clone(),
            what: "GET /version".into(),
            why: format!("unexpected ApiVersion {:?}", version.api_version),
        })?;
        Ok(DockerDaemon {
            client,
            endpoint,
            api: server_api.min(MAX_API),
            server_version: version.version,
            opts,
        })
    }

    /// Where the engine was found, and how.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The API version requests use: the engine's, capped at the newest ferry speaks.
    pub fn api_version(&self) -> String {
        format!("{}.{}", self.api.0, self.api.1)
    }

    /// The engine's version (e.g. `28.2.2`).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether `GET /images/get` can select a platform on this engine.
    pub fn can_export_platform(&self) -> bool {
        self.api >= PLATFORM_API
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://docker/v{}{path_and_query}", self.api_version())
    }

    fn daemon_error(&self, what: &str, why: String) -> ArchiveError {
        ArchiveError::Daemon {
            socket: self.endpoint.socket.clone(),
            what: what.to_string(),
            why,
        }
    }

    /// The image named `name` (a reference or an image ID), or `None` if the engine has no such image.
    pub async fn inspect(&self, name: &str) -> Result<Option<ImageInspect>> {
        check_name(name, &self.endpoint.socket)?;
        let what = format!("GET /images/{name}/json");
        let resp = self
            .client
            .get(self.url(&format!("/images/{name}/json")))
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.daemon_error(&what, error_chain(&e)))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        json_response(resp, &self.endpoint.socket, &what)
            .await
            .map(Some)
    }

    /// Export `name` with the engine's image-save endpoint, spooled to a temp file (never held in memory),
    /// then opened as a [`DockerArchive`]. `platform` is passed to engines that take it (API ≥ 1.48);
    /// older ones save the single platform they have, which must then be the one asked for.
    pub async fn export(
        &self,
        name: &str,
        platform: Option<&PlatformSpec>,
    ) -> Result<DaemonExport> {
        let info = self
            .inspect(name)
            .await?
            .ok_or_else(|| ArchiveError::DaemonImageNotFound {
                name: name.to_string(),
                socket: self.endpoint.socket.clone(),
            })?;
        let mut url = reqwest::Url::parse(&self.url("/images/get")).expect("static URL");
        url.query_pairs_mut().append_pair("names", name);
        if let Some(spec) = platform {
            if self.can_export_platform() {
                let mut p = serde_json::json!({"os": spec.os, "architecture": spec.architecture});
                if let Some(v) = &spec.variant {
                    p["variant"] = serde_json::json!(v);
                }
                url.query_pairs_mut()
                    .append_pair("platform", &p.to_string());
            } else if !spec.matches(&info.platform()) {
                return Err(self.daemon_error(
                    &format!("export {name}"),
                    format!(
                        "the image is {}, not {spec}, and this engine (API {}) cannot export another platform",
                        info.platform(),
                        self.api_version()
                    ),
                ));
            }
        }
        let what = format!("GET /images/get?names={name}");
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.daemon_error(&what, error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(self.daemon_error(&what, error_body(resp).await));
        }
        let temp_dir = self.opts.temp_dir();
        let (file, temp) = tempfile::Builder::new()
            .prefix(".ferry-docker-save-")
            .suffix(".tar")
            .tempfile_in(&temp_dir)
            .map_err(|e| ArchiveError::io(&temp_dir, e))?
            .into_parts();
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let mut received = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                self.daemon_error(
                    &what,
                    format!(
                        "the export broke after {received} bytes: {}",
                        error_chain(&e)
                    ),
                )
            })?;
            let Some(chunk) = chunk else { break };
            received += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| ArchiveError::io(&*temp, e))?;
        }
        out.flush().await.map_err(|e| ArchiveError::io(&*temp, e))?;
        drop(out);
        tracing::debug!(
            "exported {name} from the Docker Engine: {received} bytes spooled to {}",
            temp.display()
        );

        let describe = format!("docker-daemon {name} ({})", self.endpoint.socket.display());
        let label = PathBuf::from(format!("docker-daemon:{name}"));
        let archive = tokio::task::spawn_blocking(move || {
            DockerArchive::from_store(ArchiveStore::open_temp(temp, describe, &label)?)
        })
        .await
        .expect("archive indexing panicked")?;
        let found = match archive.resolve(name) {
            Ok(i) => i.clone(),
            // Saved by ID or digest: the export holds that one image, whatever it is called.
            Err(_) => archive.single()?.clone(),
        };
        let image = ArchiveImage {
            name: Some(normalize_name(name)),
            desc: found.desc,
        };
        Ok(DaemonExport { archive, image })
    }
}

/// Image names go into the URL path as they are: a reference or ID has no characters that need escaping,
/// and anything else is refused rather than sent.
fn check_name(name: &str, socket: &Path) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ArchiveError::Daemon {
            socket: socket.to_path_buf(),
            what: "image lookup".into(),
            why: format!("{name:?} is not an image reference or ID"),
        })
    }
}

fn parse_api(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

async fn json_response<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    socket: &Path,
    what: &str,
) -> Result<T> {
    let err = |why: String| ArchiveError::Daemon {
        socket: socket.to_path_buf(),
        what: what.to_string(),
        why,
    };
    if !resp.status().is_success() {
        return Err(err(error_body(resp).await));
    }
    let bytes = read_capped(resp, 4 << 20).await.map_err(err)?;
    serde_json::from_slice(&bytes).map_err(|e| err(format!("unexpected answer: {e}")))
}

/// `HTTP 404: No such image: x` from the engine's `{"message": …}`.
async fn error_body(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = read_capped(resp, 64 << 10).await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Msg {
        message: String,
    }
    let text = match serde_json::from_slice::<Msg>(&body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body).trim().to_string(),
    };
    format!("HTTP {}: {text}", status.as_u16())
}

async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > cap {
            return Err(format!("answer larger than {cap} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// reqwest's message alone ("error sending request") hides the cause (connection refused, permission
/// denied); the chain names it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn docker_host_wins_and_must_be_unix() {
        let e = Endpoint::discover(env(&[("DOCKER_HOST", "unix:///run/x.sock")]), None).unwrap();
        assert_eq!(e.socket, PathBuf::from("/run/x.sock"));
        assert_eq!(e.origin.to_string(), "DOCKER_HOST=unix:///run/x.sock");
        let err = Endpoint::discover(env(&[("DOCKER_HOST", "tcp://1.2.3.4:2375")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DOCKER_HOST=tcp://1.2.3.4:2375") && err.contains("unix socket"),
            "{err}"
        );
        let e = Endpoint::discover(env(&[]), None).unwrap();
        assert_eq!(e.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(e.origin, EndpointOrigin::Default);
    }

    #[test]
    fn current_context_gives_the_socket() {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        let name = "colima";
        let meta_dir = docker
            .join("contexts/meta")
            .join(Digest::of(name.as_bytes()).hex());
        std::fs::create_dir_all(&meta_dir).unwrap();
        std::fs::write(
            docker.join("config.json"),
            br#"{"auths":{},"currentContext":"colima"}"#,
        )
        .unwrap();
        std::fs::write(
            meta_dir.join("meta.json"),
            br#"{"Name":"colima","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///home/u/.colima/docker.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let e = Endpoint::discover(env(&[]), Some(home.path())).unwrap();
        assert_eq!(e.socket, PathBuf::from("/home/u/.colima/docker.sock"));
        assert!(e.origin.to_string().contains("docker context \"colima\""));
        // DOCKER_CONTEXT overrides config.json; "default" is the default socket.
        let e =
            Endpoint::discover(env(&[("DOCKER_CONTEXT", "default")]), Some(home.path())).unwrap();
        assert_eq!(e.socket, PathBuf::from(DEFAULT_SOCKET));
        let err = Endpoint::discover(env(&[("DOCKER_CONTEXT", "gone")]), Some(home.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker context \"gone\"") && err.contains("meta.json"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_named() {
        let err = DockerDaemon::connect_to(
            Endpoint {
                socket: PathBuf::from("/nonexistent/docker.sock"),
                origin: EndpointOrigin::DockerHost("unix:///nonexistent/docker.sock".into()),
            },
            OpenOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/nonexistent/docker.sock")
                && err.contains("DOCKER_HOST=unix:///nonexistent/docker.sock")
                && err.contains("no such socket"),
            "{err}"
        );
    }

    #[test]
    fn api_versions_compare() {
        assert!(parse_api("1.41").unwrap() < PLATFORM_API);
        assert!(parse_api("1.50").unwrap().min(MAX_API) == MAX_API);
        assert!(check_name("nginx:1.25", Path::new("/s")).is_ok());
        assert!(check_name("a b", Path::new("/s")).is_err());
        assert!(check_name("../../containers/json?", Path::new("/s")).is_err());
    }
}
