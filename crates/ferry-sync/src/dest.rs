//! Where a sync writes, and what each image is called there.
//!
//! - a registry prefix (`registry.local/mirror`): `DEST/<last path component>:<tag>` as `skopeo sync`
//!   names it, the whole source name under DEST with `--scoped` (a port's `:` becomes `-`, as a repository
//!   path cannot hold it), or Zarf's names with `--zarf`;
//! - an OCI layout (`oci:DIR`, or a path), where images keep their full source names (as `ferry pull`
//!   records them);
//! - `oci-archive:FILE`, the same as a layout, written once at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_archive::OciArchiveWriter;
use ferry_oci::{Digest, Reference};
use ferry_registry::{RegistryClient, Repository};
use ferry_store::{OciLayout, Resolver, WriteTarget};

/// How images are named under a registry prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    /// `DEST/<last component>` (skopeo sync's default).
    #[default]
    LastComponent,
    /// `DEST/<registry>/<repository>` (`--scoped`).
    Scoped,
    /// Zarf's names: `DEST/<repository>:<tag>-zarf-<crc>` and `DEST/<repository>:<tag>`.
    Zarf,
}

/// Where a sync writes: a registry prefix, an OCI layout, or an oci-archive.
pub enum Destination {
    /// A registry, under a path prefix.
    Registry {
        /// The client that pushes.
        client: Arc<RegistryClient>,
        /// The registry host.
        registry: String,
        /// Path under the registry, no leading or trailing `/` (may be empty).
        prefix: String,
        /// How a source repository is named there.
        naming: Naming,
    },
    /// An OCI layout directory; images are named by their full source reference.
    Layout(OciLayout),
    /// An oci-archive file, written when the run ends.
    Archive {
        /// The archive's path.
        path: PathBuf,
        /// The writer that stages the content; shared by the run's copies.
        writer: Arc<OciArchiveWriter>,
    },
}

/// A destination that cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    /// The destination spelling cannot be used, or its archive cannot be finished.
    #[error("{dest:?}: {why}")]
    Invalid {
        /// The destination, as given.
        dest: String,
        /// What is wrong.
        why: String,
    },
    /// The layout (or the archive's staging layout) could not be opened.
    #[error("opening {dest}")]
    Store {
        /// The destination, as given.
        dest: String,
        /// Why.
        #[source]
        source: ferry_store::StoreError,
    },
    /// The archive could not be written at the end of the run.
    #[error("writing {dest}")]
    Archive {
        /// The destination, as given.
        dest: String,
        /// Why.
        #[source]
        source: Box<ferry_archive::ArchiveError>,
    },
}

/// Where one image goes: the target, the names it gets, and how to ask what the destination already has
/// under its first name.
pub struct Placement {
    /// Where the content is written.
    pub target: Arc<dyn WriteTarget>,
    /// Names given to the target's `tag` (registry: tags; layout: full names). Empty: by digest only.
    pub names: Vec<String>,
    /// The image as it is called at the destination, for reports and the lock file.
    pub shown: Vec<String>,
    /// How to learn what the destination has under the first name now.
    pub current: Current,
}

/// How to learn the digest the destination holds under the image's name.
pub enum Current {
    /// `HEAD` the tag.
    Registry(Repository, String),
    /// Look the name up in the layout's index.
    Layout(OciLayout, String),
    /// Nothing to ask (a new archive, a digest reference).
    Unknown,
}

impl Current {
    /// The digest the destination has under the name, if any. Errors other than "not there" count as
    /// "unknown": the copy then decides node by node.
    pub async fn digest(&self) -> Option<Digest> {
        match self {
            Current::Registry(repo, tag) => repo.head_manifest(tag).await.ok().map(|d| d.digest),
            Current::Layout(layout, name) => Resolver::resolve(layout, name)
                .await
                .ok()
                .map(|(d, _)| d.digest),
            Current::Unknown => None,
        }
    }
}

impl Destination {
    /// `oci-archive:FILE`, `oci:DIR`, a path (absolute, `./…`, or an existing directory), else a registry
    /// prefix `host[:port][/path]`.
    pub fn open(
        spec: &str,
        client: &Arc<RegistryClient>,
        naming: Naming,
    ) -> Result<Destination, DestError> {
        let invalid = |why: &str| DestError::Invalid {
            dest: spec.to_string(),
            why: why.to_string(),
        };
        if let Some(file) = spec.strip_prefix("oci-archive:") {
            if naming != Naming::LastComponent {
                return Err(invalid("--scoped and --zarf name images in a registry"));
            }
            let path = PathBuf::from(file);
            let writer = OciArchiveWriter::create(&path).map_err(|source| DestError::Archive {
                dest: spec.to_string(),
                source: Box::new(source),
            })?;
            return Ok(Destination::Archive {
                path,
                writer: Arc::new(writer),
            });
        }
        let dir = spec.strip_prefix("oci:").map(Path::new);
        let is_path = spec.starts_with('/') || spec.starts_with('.') || Path::new(spec).is_dir();
        if let Some(dir) = dir.or(is_path.then(|| Path::new(spec))) {
            if naming != Naming::LastComponent {
                return Err(invalid("--scoped and --zarf name images in a registry"));
            }
            let layout = OciLayout::open_or_create(dir).map_err(|source| DestError::Store {
                dest: spec.to_string(),
                source,
            })?;
            return Ok(Destination::Layout(layout));
        }
        let trimmed = spec.trim_end_matches('/');
        let (registry, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        let host_like = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !host_like {
            return Err(invalid(
                "not a registry (host[:port][/path]) — write oci:DIR for a layout or oci-archive:FILE",
            ));
        }
        // A prefix must make valid repository names; checked with a probe name.
        let probe = format!("{trimmed}/x:y");
        probe
            .parse::<Reference>()
            .map_err(|_| invalid("not a valid registry prefix"))?;
        Ok(Destination::Registry {
            client: client.clone(),
            registry: registry.to_string(),
            prefix: prefix.to_string(),
            naming,
        })
    }

    /// The destination for messages: `host[/prefix]`, or the layout's or archive's path.
    pub fn describe(&self) -> String {
        match self {
            Destination::Registry {
                registry, prefix, ..
            } if prefix.is_empty() => registry.clone(),
            Destination::Registry {
                registry, prefix, ..
            } => format!("{registry}/{prefix}"),
            Destination::Layout(l) => format!("oci:{}", l.root().display()),
            Destination::Archive { path, .. } => format!("oci-archive:{}", path.display()),
        }
    }

    /// Whether the destination is on this machine's disk (room is checked before a run).
    pub fn local_dir(&self) -> Option<PathBuf> {
        match self {
            Destination::Registry { .. } => None,
            Destination::Layout(l) => Some(l.root().to_path_buf()),
            Destination::Archive { path, .. } => Some(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            ),
        }
    }

    /// The layout or the archive as one target, every image named in it by the caller; `None` for a
    /// registry (a repository per image: see [`Destination::place`]).
    pub fn local_target(&self) -> Option<Arc<dyn WriteTarget>> {
        match self {
            Destination::Registry { .. } => None,
            Destination::Layout(layout) => Some(Arc::new(layout.clone())),
            Destination::Archive { writer, .. } => Some(writer.clone()),
        }
    }

    /// Where `source` goes; `rename` replaces the repository's last component (or the whole scoped name).
    pub fn place(&self, source: &Reference, rename: Option<&str>) -> Result<Placement, DestError> {
        let invalid = |why: String| DestError::Invalid {
            dest: self.describe(),
            why,
        };
        match self {
            Destination::Registry {
                client,
                registry,
                prefix,
                naming,
            } => {
                let (repository, tags) = match naming {
                    Naming::Zarf => {
                        let target = self.describe();
                        let names = ferry_zarf::push_names(source, &target, false);
                        let parsed: Vec<Reference> = names
                            .iter()
                            .map(|n| n.parse::<Reference>())
                            .collect::<Result<_, _>>()
                            .map_err(|e| invalid(format!("Zarf name of {source}: {e}")))?;
                        let repository = parsed[0].repository.clone();
                        (
                            repository,
                            parsed.iter().filter_map(|r| r.tag.clone()).collect(),
                        )
                    }
                    _ => {
                        let name = match (rename, naming) {
                            (Some(r), _) => r.to_string(),
                            (None, Naming::Scoped) => {
                                format!(
                                    "{}/{}",
                                    source.registry.replace(':', "-"),
                                    source.repository
                                )
                            }
                            _ => source
                                .repository
                                .rsplit('/')
                                .next()
                                .unwrap_or(&source.repository)
                                .to_string(),
                        };
                        let repository = if prefix.is_empty() {
                            name
                        } else {
                            format!("{prefix}/{name}")
                        };
                        let tags = match (&source.digest, &source.tag) {
                            (Some(_), _) => Vec::new(),
                            (None, t) => vec![t.clone().unwrap_or_else(|| "latest".into())],
                        };
                        (repository, tags)
                    }
                };
                let check = format!("{registry}/{repository}:x");
                check
                    .parse::<Reference>()
                    .map_err(|e| invalid(format!("{source} would be named {repository}: {e}")))?;
                let repo = Repository::new(client.clone(), registry, &repository);
                let shown = if tags.is_empty() {
                    vec![format!(
                        "{registry}/{repository}@{}",
                        source
                            .digest
                            .as_ref()
                            .map(Digest::to_string)
                            .unwrap_or_default()
                    )]
                } else {
                    tags.iter()
                        .map(|t| format!("{registry}/{repository}:{t}"))
                        .collect()
                };
                let current = match tags.first() {
                    Some(t) => Current::Registry(repo.clone(), t.clone()),
                    None => Current::Unknown,
                };
                Ok(Placement {
                    target: Arc::new(repo),
                    names: tags,
                    shown,
                    current,
                })
            }
            Destination::Layout(layout) => {
                let name = source.to_string();
                Ok(Placement {
                    target: Arc::new(layout.clone()),
                    names: vec![name.clone()],
                    shown: vec![format!("{}:{name}", self.describe())],
                    current: Current::Layout(layout.clone(), name),
                })
            }
            Destination::Archive { writer, .. } => {
                let name = source.to_string();
                Ok(Placement {
                    target: writer.clone(),
                    names: vec![name.clone()],
                    shown: vec![format!("{}:{name}", self.describe())],
                    current: Current::Unknown,
                })
            }
        }
    }

    /// Write the archive (a layout or registry has nothing left to do).
    pub fn finish(self) -> Result<(), DestError> {
        match self {
            Destination::Archive { path, writer } => {
                let writer = Arc::try_unwrap(writer).map_err(|_| DestError::Invalid {
                    dest: path.display().to_string(),
                    why: "internal error: the archive writer is still in use".into(),
                })?;
                writer.finish().map_err(|source| DestError::Archive {
                    dest: path.display().to_string(),
                    source: Box::new(source),
                })?;
            }
            Destination::Layout(layout) => layout.tidy(),
            Destination::Registry { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<RegistryClient> {
        RegistryClient::new(Default::default()).unwrap()
    }

    fn shown(dest: &str, naming: Naming, source: &str) -> Vec<String> {
        let d = Destination::open(dest, &client(), naming).unwrap();
        d.place(&source.parse().unwrap(), None).unwrap().shown
    }

    #[test]
    fn registry_names_follow_skopeo_and_zarf() {
        assert_eq!(
            shown(
                "registry.local/mirror",
                Naming::LastComponent,
                "quay.io/coreos/etcd:v3"
            ),
            ["registry.local/mirror/etcd:v3"]
        );
        assert_eq!(
            shown(
                "registry.local/mirror/",
                Naming::Scoped,
                "quay.io/coreos/etcd:v3"
            ),
            ["registry.local/mirror/quay.io/coreos/etcd:v3"]
        );
        assert_eq!(
            shown("127.0.0.1:5000", Naming::Scoped, "127.0.0.1:6000/a/b:1"),
            ["127.0.0.1:5000/127.0.0.1-6000/a/b:1"]
        );
        let z = shown(
            "127.0.0.1:5000",
            Naming::Zarf,
            "docker.io/library/nginx:1.25",
        );
        assert_eq!(z.len(), 2);
        assert!(
            z[0].starts_with("127.0.0.1:5000/library/nginx:1.25-zarf-"),
            "{z:?}"
        );
        assert_eq!(z[1], "127.0.0.1:5000/library/nginx:1.25");
        let d = format!("quay.io/a/b@sha256:{}", "0".repeat(64));
        assert_eq!(
            shown("r.local", Naming::LastComponent, &d),
            [format!("r.local/b@sha256:{}", "0".repeat(64))]
        );
    }

    #[test]
    fn destinations_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let c = client();
        let layout = format!("oci:{}", dir.path().join("l").display());
        assert!(matches!(
            Destination::open(&layout, &c, Naming::LastComponent).unwrap(),
            Destination::Layout(_)
        ));
        assert!(matches!(
            Destination::open(dir.path().to_str().unwrap(), &c, Naming::LastComponent).unwrap(),
            Destination::Layout(_)
        ));
        assert!(Destination::open("mirror", &c, Naming::LastComponent).is_err());
        assert!(Destination::open(&layout, &c, Naming::Zarf).is_err());
    }
}
