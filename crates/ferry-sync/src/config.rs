//! The sync file: `skopeo sync`'s YAML (registry → images with tag lists, `images-by-tag-regex`,
//! `images-by-semver`, `credentials`, `tls-verify`, `cert-dir`), so existing files work unchanged, plus
//! ferry's own optional keys per registry entry: `platform`, `referrers`, `rename`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::filter::TagFilter;
use crate::semver::Constraint;

/// Sync files are small; a bigger one is a mistake (or hostile).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// A whole sync file: registry host → what to take from it. Ordered by registry name, so runs are
/// repeatable (skopeo iterates a Go map, in random order).
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct SyncFile {
    /// Each registry host's entry.
    pub registries: BTreeMap<String, RegistryEntry>,
}

/// What to take from one registry, and how to reach it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryEntry {
    /// Repository → tags or digests; an empty list means every tag.
    #[serde(default)]
    pub images: BTreeMap<String, Vec<String>>,
    /// Repository → a regular expression; tags it matches are taken.
    #[serde(default)]
    pub images_by_tag_regex: BTreeMap<String, String>,
    /// Repository → a constraint; a list of constraints (as some skopeo documentation shows) means any of
    /// them.
    #[serde(default)]
    pub images_by_semver: BTreeMap<String, OneOrMany>,
    /// Credentials for this registry only.
    pub credentials: Option<Credentials>,
    /// `false`: accept any certificate from this registry (`--insecure-skip-tls-verify` for it alone).
    pub tls_verify: Option<bool>,
    /// A directory of CA certificates (`*.crt`) trusted for this registry; client certificates in it are
    /// refused, not ignored.
    pub cert_dir: Option<PathBuf>,
    /// ferry: the one platform to copy (`linux/amd64`); every platform when absent.
    pub platform: Option<String>,
    /// ferry: bring every referrer (signatures, SBOMs) of each image.
    #[serde(default)]
    pub referrers: bool,
    /// ferry: repository → the name it gets at the destination (instead of its last path component).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// A YAML scalar or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

/// A username and password for one registry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password. Secret: never logged.
    pub password: String,
}

/// A sync file that cannot be used; messages name the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The sync file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The sync file.
        path: PathBuf,
    },
    /// Not YAML of a sync file's shape (unknown keys are refused).
    #[error("{path} is not a sync file")]
    Yaml {
        /// The sync file.
        path: PathBuf,
        /// The parser's complaint, with its line.
        #[source]
        source: serde_yaml::Error,
    },
    /// An `images-by-tag-regex` that is not a regular expression.
    #[error("{path}: {registry}/{repository}: invalid tag regex")]
    Regex {
        /// The sync file.
        path: PathBuf,
        /// The registry entry.
        registry: String,
        /// The repository.
        repository: String,
        /// Why it does not compile.
        #[source]
        source: regex_lite::Error,
    },
    /// An `images-by-semver` constraint that cannot be read.
    #[error("{path}: {registry}/{repository}")]
    Semver {
        /// The sync file.
        path: PathBuf,
        /// The registry entry.
        registry: String,
        /// The repository.
        repository: String,
        /// Which part is wrong.
        #[source]
        source: crate::semver::ConstraintError,
    },
    /// The file parses but says something unusable (it is empty, a registry key is not a host).
    #[error("{path}: {what}")]
    Invalid {
        /// The sync file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// One repository to take from, with how its tags are chosen.
#[derive(Clone, Debug)]
pub struct RepoSpec {
    /// The registry host.
    pub registry: String,
    /// The repository path there.
    pub repository: String,
    /// Which tags to take.
    pub filter: TagFilter,
    /// The destination name when the file renames it.
    pub rename: Option<String>,
    /// The one platform to copy (`os/arch[/variant]`); `None`: the run's choice.
    pub platform: Option<String>,
    /// Whether every referrer of each image comes too.
    pub referrers: bool,
}

impl SyncFile {
    /// Read and parse the sync file at `path` (at most [`MAX_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<SyncFile, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Self::parse(&text, path)
    }

    /// Parse the text of a sync file; `path` only names it in errors. Empty files are refused.
    pub fn parse(text: &str, path: &Path) -> Result<SyncFile, ConfigError> {
        // An empty file is an empty mapping to serde_yaml's eyes only sometimes; say what is wrong.
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                what: "the file is empty".into(),
            });
        }
        serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Every repository of every registry with its filter, in file order (registries and repositories
    /// sorted by name). A repository named under several keys is taken once per key, as skopeo does.
    pub fn repositories(&self, path: &Path) -> Result<Vec<RepoSpec>, ConfigError> {
        let mut out = Vec::new();
        for (registry, entry) in &self.registries {
            if registry.contains('/') || registry.is_empty() {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    what: format!(
                        "{registry:?} is not a registry host (write repositories under it)"
                    ),
                });
            }
            let spec = |repository: &String, filter| RepoSpec {
                registry: registry.clone(),
                repository: repository.clone(),
                filter,
                rename: entry.rename.get(repository).cloned(),
                platform: entry.platform.clone(),
                referrers: entry.referrers,
            };
            for (repository, refs) in &entry.images {
                let filter = if refs.is_empty() {
                    TagFilter::All
                } else {
                    TagFilter::Listed(refs.clone())
                };
                out.push(spec(repository, filter));
            }
            for (repository, pattern) in &entry.images_by_tag_regex {
                let re = regex_lite::Regex::new(pattern).map_err(|source| ConfigError::Regex {
                    path: path.to_path_buf(),
                    registry: registry.clone(),
                    repository: repository.clone(),
                    source,
                })?;
                out.push(spec(repository, TagFilter::Regex(re)));
            }
            for (repository, constraint) in &entry.images_by_semver {
                let text = match constraint {
                    OneOrMany::One(s) => s.clone(),
                    OneOrMany::Many(v) if !v.is_empty() => v.join(" || "),
                    OneOrMany::Many(_) => String::new(),
                };
                let c = Constraint::parse(&text).map_err(|source| ConfigError::Semver {
                    path: path.to_path_buf(),
                    registry: registry.clone(),
                    repository: repository.clone(),
                    source,
                })?;
                out.push(spec(repository, TagFilter::Semver(c)));
            }
            for renamed in entry.rename.keys() {
                let known = entry.images.contains_key(renamed)
                    || entry.images_by_tag_regex.contains_key(renamed)
                    || entry.images_by_semver.contains_key(renamed);
                if !known {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        what: format!(
                            "{registry}: rename of {renamed:?}, which no images key names"
                        ),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of skopeo-sync(1), unchanged.
    const SKOPEO_EXAMPLE: &str = r#"
registry.example.com:
    images:
        busybox: []
        redis:
            - "1.0"
            - "2.0"
            - "sha256:0000000000000000000000000000000011111111111111111111111111111111"
    images-by-tag-regex:
        nginx: ^1\.13\.[12]-alpine-perl$
    images-by-semver:
        alpine: ">= 3.12.0"
    credentials:
        username: john
        password: this is a secret
    tls-verify: true
    cert-dir: /home/john/certs
quay.io:
    tls-verify: false
    images:
        coreos/etcd:
            - latest
"#;

    #[test]
    fn skopeo_documented_file_parses() {
        let path = Path::new("sync.yml");
        let file = SyncFile::parse(SKOPEO_EXAMPLE, path).unwrap();
        let repos = file.repositories(path).unwrap();
        let names: Vec<String> = repos
            .iter()
            .map(|r| format!("{}/{}", r.registry, r.repository))
            .collect();
        assert_eq!(
            names,
            [
                "quay.io/coreos/etcd",
                "registry.example.com/busybox",
                "registry.example.com/redis",
                "registry.example.com/nginx",
                "registry.example.com/alpine",
            ]
        );
        let e = &file.registries["registry.example.com"];
        assert_eq!(e.credentials.as_ref().unwrap().username, "john");
        assert_eq!(file.registries["quay.io"].tls_verify, Some(false));
        assert!(matches!(repos[1].filter, TagFilter::All));
        assert!(repos[3].filter.admits("1.13.2-alpine-perl"));
        assert!(!repos[3].filter.admits("1.13.3-alpine-perl"));
        assert!(repos[4].filter.admits("3.12.1"));
    }

    #[test]
    fn mistakes_are_named() {
        let path = Path::new("s.yml");
        let err = |text: &str| {
            let e = SyncFile::parse(text, path).and_then(|f| f.repositories(path).map(|_| ()));
            crate::chain(&e.unwrap_err())
        };
        assert!(err("r.io:\n  imagez: {}\n").contains("imagez"));
        assert!(err("r.io:\n  images-by-tag-regex:\n    a: \"(\"\n").contains("r.io/a"));
        assert!(err("r.io:\n  images-by-semver:\n    a: \">= x.y\"\n").contains("r.io/a"));
        assert!(err("r.io/ns:\n  images: {a: []}\n").contains("not a registry host"));
        assert!(err("r.io:\n  images: {a: []}\n  rename: {b: c}\n").contains("\"b\""));
        assert!(err("").contains("empty"));
    }
}
