//! Registry mirrors, as containers' `registries.conf` (v2) describes them, and reading through them.
//!
//! ```toml
//! [[registry]]
//! location = "docker.io"
//! insecure = false
//! blocked = false
//!
//! [[registry.mirror]]
//! location = "mirror-a.local:5000/hub"
//! insecure = true
//! ```
//!
//! The file is read by a small parser for exactly these tables and keys (plus `prefix`); anything else —
//! another table, key, or TOML construct — is refused with its line number rather than ignored, so a file
//! that says more than ferry understands never half-works. Reads of a repository try its mirrors in order,
//! then the registry itself; the first that answers wins and is tried first from then on. Names never
//! change: an image read from a mirror is recorded under the name it was asked by.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ferry_oci::Descriptor;
use ferry_store::{
    BoxFuture, ByteSource, ReadStore, ReadTarget, Referrer, Resolver, Store, StoreError,
};

use crate::client::RegistryClient;
use crate::repository::Repository;

/// `registries.conf` is a few lines; a large one is not one.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One `[[registry]]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryRule {
    /// What names it applies to: `host[:port][/path]` (`prefix` when given, else `location`).
    pub prefix: String,
    /// Where those names really are (usually the prefix itself).
    pub location: String,
    /// Plain HTTP is allowed for `location`.
    pub insecure: bool,
    /// Names under `prefix` must not be pulled at all.
    pub blocked: bool,
    /// `[[registry.mirror]]` tables: tried in order before `location`.
    pub mirrors: Vec<Mirror>,
}

/// One `[[registry.mirror]]` table: another place the content of a rule's names can be read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port][/path]` of the mirror; the part of a name after the rule's prefix is appended to it.
    pub location: String,
    /// Plain HTTP is allowed for the mirror.
    pub insecure: bool,
}

/// Every rule of one or more `registries.conf` files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Every rule, a later file's first (see [`RegistriesConf::merge`]); [`RegistriesConf::rule_for`] picks
    /// the longest matching prefix.
    pub rules: Vec<RegistryRule>,
}

/// Why a `registries.conf` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The file exists but could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line ferry does not understand, or a file too large to be one; nothing of the file is used.
    #[error("{path}:{line}: {why}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// An endpoint to read a repository from: its registry name and repository path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The registry host (and port).
    pub registry: String,
    /// The repository path there.
    pub repository: String,
    /// Plain HTTP is allowed for it.
    pub insecure: bool,
}

impl RegistriesConf {
    /// The file `given` (which must exist), else ferry's own `~/.config/ferry/registries.conf` if present.
    /// Containers' system files are not read implicitly: they usually hold settings ferry does not
    /// understand and refuses.
    pub fn load_given_or_own(given: Option<&Path>) -> Result<RegistriesConf, ConfError> {
        let path = match given {
            Some(p) if !p.exists() => {
                return Err(ConfError::Read {
                    path: p.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "it does not exist"),
                });
            }
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".config/ferry/registries.conf"),
                None => return Ok(RegistriesConf::default()),
            },
        };
        RegistriesConf::load(&path)
    }

    /// Read a file (missing: an empty configuration, as containers treat it).
    pub fn load(path: &Path) -> Result<RegistriesConf, ConfError> {
        use std::io::Read;
        let read = |source| ConfError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistriesConf::default());
            }
            Err(e) => return Err(read(e)),
        };
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfError::Syntax {
                path: path.to_path_buf(),
                line: 0,
                why: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        Self::parse(&text, path)
    }

    /// Parse the text of a `registries.conf` (the TOML subset containers use); `path` only names it in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<RegistriesConf, ConfError> {
        let mut rules: Vec<RegistryRule> = Vec::new();
        let mut in_mirror = false;
        for (i, raw) in text.lines().enumerate() {
            let err = |why: String| ConfError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why,
            };
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            match line {
                "[[registry]]" => {
                    rules.push(RegistryRule::default());
                    in_mirror = false;
                    continue;
                }
                "[[registry.mirror]]" => {
                    let rule = rules
                        .last_mut()
                        .ok_or_else(|| err("[[registry.mirror]] before any [[registry]]".into()))?;
                    rule.mirrors.push(Mirror::default());
                    in_mirror = true;
                    continue;
                }
                _ if line.starts_with('[') => {
                    return Err(err(format!(
                        "{line} is not understood here (ferry reads [[registry]] and [[registry.mirror]] only)"
                    )));
                }
                _ => {}
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("expected key = value, found {line:?}")))?;
            let key = key.trim();
            let value = value.trim();
            let Some(rule) = rules.last_mut() else {
                return Err(err(format!(
                    "{key} outside [[registry]] is not understood (ferry reads [[registry]] tables only)"
                )));
            };
            match (in_mirror, key) {
                (false, "location") => rule.location = string(value).map_err(err)?,
                (false, "prefix") => rule.prefix = string(value).map_err(err)?,
                (false, "insecure") => rule.insecure = boolean(value).map_err(err)?,
                (false, "blocked") => rule.blocked = boolean(value).map_err(err)?,
                (true, "location") => {
                    rule.mirrors.last_mut().expect("a mirror").location =
                        string(value).map_err(err)?
                }
                (true, "insecure") => {
                    rule.mirrors.last_mut().expect("a mirror").insecure =
                        boolean(value).map_err(err)?
                }
                (_, other) => {
                    return Err(err(format!("key {other:?} is not understood here")));
                }
            }
        }
        for rule in &mut rules {
            if rule.location.is_empty() && rule.prefix.is_empty() {
                return Err(ConfError::Syntax {
                    path: path.to_path_buf(),
                    line: 0,
                    why: "a [[registry]] without location or prefix".into(),
                });
            }
            if rule.prefix.is_empty() {
                rule.prefix = rule.location.clone();
            }
            if rule.location.is_empty() {
                rule.location = rule.prefix.clone();
            }
            if let Some(m) = rule.mirrors.iter().find(|m| m.location.is_empty()) {
                return Err(ConfError::Syntax {
                    path: path.to_path_buf(),
                    line: 0,
                    why: format!("a mirror of {} without location ({m:?})", rule.prefix),
                });
            }
        }
        Ok(RegistriesConf { rules })
    }

    /// Rules of several files, later files first (a user's file before the system's).
    pub fn merge(files: Vec<RegistriesConf>) -> RegistriesConf {
        RegistriesConf {
            rules: files.into_iter().rev().flat_map(|f| f.rules).collect(),
        }
    }

    /// The rule for `registry/repository`: the longest matching prefix.
    pub fn rule_for(&self, registry: &str, repository: &str) -> Option<&RegistryRule> {
        let name = format!("{registry}/{repository}");
        self.rules
            .iter()
            .filter(|r| {
                name == r.prefix
                    || name
                        .strip_prefix(r.prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|r| r.prefix.len())
    }

    /// Whether `host` is marked insecure (plain HTTP allowed) by a rule or one of its mirrors.
    pub fn is_insecure_host(&self, host: &str) -> bool {
        let host_of = |l: &str| l.split('/').next().unwrap_or("").to_string();
        self.rules.iter().any(|r| {
            (r.insecure && host_of(&r.location) == host)
                || r.mirrors
                    .iter()
                    .any(|m| m.insecure && host_of(&m.location) == host)
        })
    }

    /// Where to read `registry/repository` from, in order: mirrors, then the location. `None` when a
    /// rule blocks it.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Option<Vec<Endpoint>> {
        let name = format!("{registry}/{repository}");
        let Some(rule) = self.rule_for(registry, repository) else {
            return Some(vec![Endpoint {
                registry: registry.to_string(),
                repository: repository.to_string(),
                insecure: false,
            }]);
        };
        if rule.blocked {
            return None;
        }
        let rest = &name[rule.prefix.len()..];
        let place = |location: &str, insecure| {
            let full = format!("{location}{rest}");
            let (host, path) = full.split_once('/').unwrap_or((full.as_str(), ""));
            Endpoint {
                registry: host.to_string(),
                repository: path.to_string(),
                insecure,
            }
        };
        let mut out: Vec<Endpoint> = rule
            .mirrors
            .iter()
            .map(|m| place(&m.location, m.insecure))
            .collect();
        out.push(place(&rule.location, rule.insecure));
        Some(out)
    }
}

fn strip_comment(line: &str) -> &str {
    // A `#` inside a quoted string is not a comment.
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn string(value: &str) -> Result<String, String> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("expected a \"quoted string\", found {value}"))?;
    if inner.contains(['"', '\\']) {
        return Err(format!("escapes are not understood in {value}"));
    }
    Ok(inner.to_string())
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, found {value}")),
    }
}

/// A repository read through its mirrors: each read tries the endpoints in order, starting at the one
/// that answered last, and moves on when one fails. Only reads: pushes go to the named registry.
pub struct Mirrored {
    name: String,
    endpoints: Vec<Repository>,
    current: AtomicUsize,
}

/// `registry/repository` opened for reading, through the mirrors the client's `registries.conf` lists.
pub fn open_read(
    client: &Arc<RegistryClient>,
    registry: &str,
    repository: &str,
) -> Result<Arc<dyn ReadTarget>, StoreError> {
    let conf = &client.options().registries;
    let endpoints = conf.endpoints(registry, repository).ok_or_else(|| {
        StoreError::remote(
            format!(
                "{registry}/{repository} is blocked by registries.conf ({})",
                conf.rule_for(registry, repository)
                    .map(|r| r.prefix.as_str())
                    .unwrap_or("")
            ),
            false,
        )
    })?;
    let mut repos: Vec<Repository> = endpoints
        .iter()
        .map(|e| Repository::new(client.clone(), &e.registry, &e.repository))
        .collect();
    if repos.len() == 1 {
        return Ok(Arc::new(repos.remove(0)));
    }
    Ok(Arc::new(Mirrored {
        name: format!("{registry}/{repository}"),
        endpoints: repos,
        current: AtomicUsize::new(0),
    }))
}

impl Mirrored {
    /// Run `op` against each endpoint from the current one on; the first success becomes current.
    async fn first<'a, T, F>(&'a self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(&'a Repository) -> BoxFuture<'a, Result<T, StoreError>>,
    {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let endpoint = &self.endpoints[i];
            match op(endpoint).await {
                Ok(v) => {
                    if i != start {
                        tracing::info!(
                            "{}: reading through {}/{}",
                            self.name,
                            endpoint.registry(),
                            endpoint.repository()
                        );
                    }
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => {
                    tracing::warn!(
                        "{what} of {} via {}/{} failed ({e}); trying the next",
                        self.name,
                        endpoint.registry(),
                        endpoint.repository()
                    );
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one endpoint"))
    }
}

impl Store for Mirrored {
    fn describe(&self) -> String {
        format!("registry {} (through mirrors)", self.name)
    }
}

impl ReadStore for Mirrored {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, StoreError>> {
        Box::pin(self.first("manifest", move |r| r.fetch_manifest(desc)))
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<(Box<dyn ByteSource>, u64), StoreError>> {
        Box::pin(self.first("blob", move |r| r.fetch_blob(desc, offset)))
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<Referrer>, StoreError>> {
        Box::pin(self.first("referrers", move |r| r.referrers(subject)))
    }

    fn subject_referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Vec<Referrer>, StoreError>> {
        Box::pin(self.first("referrers", move |r| r.subject_referrers(subject)))
    }
}

impl Resolver for Mirrored {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(Descriptor, Bytes), StoreError>> {
        Box::pin(self.first("resolve", move |r| Resolver::resolve(r, reference)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
# mirrors for the hub
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror-a.local:5000/hub"   # first
insecure = true

[[registry.mirror]]
location = "mirror-b.local"

[[registry]]
location = "evil.example.com"
blocked = true
"#;

    #[test]
    fn endpoints_follow_the_rules() {
        let conf = RegistriesConf::parse(CONF, Path::new("r.conf")).unwrap();
        let e = conf.endpoints("docker.io", "library/nginx").unwrap();
        let names: Vec<String> = e
            .iter()
            .map(|e| format!("{}/{}", e.registry, e.repository))
            .collect();
        assert_eq!(
            names,
            [
                "mirror-a.local:5000/hub/library/nginx",
                "mirror-b.local/library/nginx",
                "docker.io/library/nginx"
            ]
        );
        assert!(e[0].insecure && !e[1].insecure);
        assert!(conf.endpoints("evil.example.com", "x").is_none());
        assert_eq!(conf.endpoints("ghcr.io", "a/b").unwrap().len(), 1);
        // A prefix matches whole path components only.
        assert_eq!(conf.endpoints("docker.iox", "a").unwrap().len(), 1);
        assert!(conf.is_insecure_host("mirror-a.local:5000"));
        assert!(!conf.is_insecure_host("mirror-b.local"));
    }

    #[test]
    fn what_is_not_understood_is_refused_with_its_line() {
        for (text, line) in [
            ("unqualified-search-registries = [\"docker.io\"]\n", 1),
            (
                "[[registry]]\nlocation = \"a\"\nmirror-by-digest-only = true\n",
                3,
            ),
            ("[aliases]\n\"x\" = \"y\"\n", 1),
            ("[[registry]]\nlocation = 'single'\n", 2),
            ("[[registry]]\nblocked = yes\n", 2),
            ("[[registry.mirror]]\nlocation = \"m\"\n", 1),
        ] {
            match RegistriesConf::parse(text, Path::new("r.conf")) {
                Err(ConfError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
