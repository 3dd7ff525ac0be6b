#![warn(missing_docs)]
//! Where content is. Every command names its sources and destinations in one grammar, parsed once here
//! into a [`Location`], and opened here into the targets [`ferry_copy`](../ferry_copy) copies between:
//!
//! | written | is |
//! |---|---|
//! | `REF`, `oci://REF` | a registry reference (`nginx:1.25`, `ghcr.io/org/app@sha256:…`) |
//! | `oci:DIR[:NAME]` | an OCI image layout (or a Zarf package directory's `images/`) and an image in it |
//! | `oci-archive:FILE[:REF]` | a tar of an OCI layout (`.tar`, `.tar.gz`, `.tar.zst`) |
//! | `docker-archive:FILE[:REF]` | `docker save` output, either format |
//! | `docker-daemon:IMAGE` | an image in the local Docker Engine |

pub mod inspect;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_archive::SourceSpec;
use ferry_oci::{Digest, Reference};
use ferry_registry::{RegistryClient, Repository};
use ferry_store::{OciLayout, ReadTarget, WriteTarget};

/// A source or destination as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `REF` or `oci://REF`.
    Registry(Reference),
    /// `oci:DIR[:NAME]`: NAME is everything after the first `:` (a name has colons of its own), as
    /// skopeo splits it.
    Layout {
        /// The layout directory (or a Zarf package directory).
        dir: PathBuf,
        /// The image in it, when one is named.
        name: Option<String>,
    },
    /// `oci-archive:`, `docker-archive:` or `docker-daemon:`.
    Archive(SourceSpec),
}

/// Why a location cannot be parsed or opened. Messages name the location.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The location is not one of the spellings, or cannot be used this way.
    #[error("{location:?}: {why}")]
    Invalid {
        /// As written.
        location: String,
        /// What is wrong and what to write instead.
        why: String,
    },
    /// A registry reference that does not parse.
    #[error("invalid reference {location:?}")]
    Reference {
        /// As written.
        location: String,
        /// Why.
        #[source]
        source: ferry_oci::ReferenceError,
    },
    /// A layout that cannot be opened.
    #[error("opening {location}")]
    Store {
        /// The location.
        location: String,
        /// Why.
        #[source]
        source: ferry_store::StoreError,
    },
    /// An archive or the Docker Engine that cannot be opened.
    #[error("opening {location}")]
    Archive {
        /// The location.
        location: String,
        /// Why.
        #[source]
        source: ferry_archive::ArchiveError,
    },
}

impl Location {
    /// Parse any of the spellings in the crate documentation.
    pub fn parse(s: &str) -> Result<Location, TargetError> {
        if let Some(spec) = SourceSpec::parse(s) {
            return Ok(Location::Archive(spec));
        }
        if let Some(rest) = s.strip_prefix("oci:").filter(|_| !s.starts_with("oci://")) {
            let (dir, name) = match rest.split_once(':') {
                Some((d, n)) => (d, Some(n.to_string()).filter(|n| !n.is_empty())),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(TargetError::Invalid {
                    location: s.to_string(),
                    why: "the layout form is oci:DIR[:NAME]".into(),
                });
            }
            return Ok(Location::Layout {
                dir: PathBuf::from(dir),
                name,
            });
        }
        let reference = s.strip_prefix("oci://").unwrap_or(s);
        reference
            .parse()
            .map(Location::Registry)
            .map_err(|source| TargetError::Reference {
                location: s.to_string(),
                source,
            })
    }

    /// Open for reading: the target, and the images this location names in it.
    pub async fn open_source(&self, ctx: &OpenContext) -> Result<Source, TargetError> {
        match self {
            Location::Registry(r) => Ok(Source {
                // Through the mirrors registries.conf lists, if any; the name stays the one asked for.
                target: ferry_registry::open_read(&ctx.client, &r.registry, &r.repository)
                    .map_err(|source| TargetError::Store {
                        location: self.to_string(),
                        source,
                    })?,
                images: vec![Named {
                    key: r.target(),
                    name: Some(r.to_string()),
                    pinned: r.digest.is_some(),
                }],
            }),
            Location::Layout { dir, name } => {
                let layout = OciLayout::open_in(dir).map_err(|source| TargetError::Store {
                    location: self.to_string(),
                    source,
                })?;
                let images = match name {
                    Some(n) => vec![Named {
                        key: n.clone(),
                        name: n.parse::<Reference>().ok().map(|r| r.to_string()),
                        pinned: n.parse::<Digest>().is_ok(),
                    }],
                    None => layout_images(&layout).map_err(|source| TargetError::Store {
                        location: self.to_string(),
                        source,
                    })?,
                };
                Ok(Source {
                    target: Arc::new(layout),
                    images,
                })
            }
            Location::Archive(spec) => {
                let source = ferry_archive::open_source(spec, &ctx.archive)
                    .await
                    .map_err(|source| TargetError::Archive {
                        location: self.to_string(),
                        source,
                    })?;
                let given = match spec {
                    SourceSpec::DockerDaemon { name } => Some(name.clone()),
                    SourceSpec::DockerArchive { reference, .. }
                    | SourceSpec::OciArchive { reference, .. } => reference.clone(),
                };
                let images = source
                    .images
                    .iter()
                    .map(|i| Named {
                        key: i.desc.digest.to_string(),
                        // Names that are references are normalized; a bare tag (Docker's `linux`) is kept.
                        name: given
                            .clone()
                            .or(i.name.clone())
                            .map(|n| n.parse::<Reference>().map_or(n, |r| r.to_string())),
                        // An archive's index is chosen from like a tagged one (it is not a digest pin).
                        pinned: false,
                    })
                    .collect();
                Ok(Source {
                    target: source.store,
                    images,
                })
            }
        }
    }

    /// Open for writing. Archives and the Engine are sources only; an archive is written by `ferry pull -o
    /// oci-archive:FILE` or `ferry export`.
    pub fn open_destination(
        &self,
        ctx: &OpenContext,
    ) -> Result<(Arc<dyn WriteTarget>, Option<String>), TargetError> {
        match self {
            Location::Registry(r) => Ok((
                Arc::new(Repository::new(
                    ctx.client.clone(),
                    &r.registry,
                    &r.repository,
                )),
                match &r.digest {
                    Some(_) => None,
                    None => Some(r.tag.clone().unwrap_or_else(|| "latest".into())),
                },
            )),
            Location::Layout { dir, name } => {
                let layout =
                    OciLayout::open_or_create(dir).map_err(|source| TargetError::Store {
                        location: self.to_string(),
                        source,
                    })?;
                Ok((Arc::new(layout), name.clone()))
            }
            Location::Archive(_) => Err(TargetError::Invalid {
                location: self.to_string(),
                why: "archives and the Docker Engine can only be read here; write an archive with \
                      `ferry pull … -o oci-archive:FILE` or `ferry export`"
                    .into(),
            }),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry(r) => write!(f, "{r}"),
            Location::Layout { dir, name: None } => write!(f, "oci:{}", dir.display()),
            Location::Layout { dir, name: Some(n) } => write!(f, "oci:{}:{n}", dir.display()),
            Location::Archive(SourceSpec::DockerDaemon { name }) => {
                write!(f, "docker-daemon:{name}")
            }
            Location::Archive(
                spec @ (SourceSpec::DockerArchive { path, reference }
                | SourceSpec::OciArchive { path, reference }),
            ) => {
                let kind = match spec {
                    SourceSpec::DockerArchive { .. } => "docker-archive",
                    _ => "oci-archive",
                };
                write!(f, "{kind}:{}", path.display())?;
                match reference {
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What opening needs besides the location.
#[derive(Clone)]
pub struct OpenContext {
    /// The registry client (credentials, TLS) for registry locations.
    pub client: Arc<RegistryClient>,
    /// Temp directory and platform for archives and the Docker Engine.
    pub archive: ferry_archive::SourceOptions,
}

/// A location opened for reading.
pub struct Source {
    /// Where the content is read from.
    pub target: Arc<dyn ReadTarget>,
    /// The images the location names, in order.
    pub images: Vec<Named>,
}

/// An image of a [`Source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// What the target resolves: a tag or digest (registry), a name or digest (layout, archive).
    pub key: String,
    /// The image's name, normalized, when it has one (an image saved by ID has none).
    pub name: Option<String>,
    /// Whether the location pins a digest: a pinned index is kept whole (zarf-compat §3).
    pub pinned: bool,
}

/// Every named image of a layout, each name once.
fn layout_images(layout: &OciLayout) -> Result<Vec<Named>, ferry_store::StoreError> {
    let mut out: Vec<Named> = Vec::new();
    for entry in layout.entries()? {
        let Some(name) = entry.image_name() else {
            continue;
        };
        let name = name.parse::<Reference>().map_or(name, |r| r.to_string());
        if !out.iter().any(|n| n.name.as_deref() == Some(name.as_str())) {
            out.push(Named {
                key: name.clone(),
                name: Some(name),
                pinned: false,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_and_prints_back() {
        for s in [
            "docker.io/library/nginx:1.25",
            "oci:images",
            "oci:images:docker.io/library/nginx:1.25",
            "docker-daemon:myapp:dev",
            "oci-archive:/nope/x.tar",
        ] {
            assert_eq!(Location::parse(s).unwrap().to_string(), s, "{s}");
        }
        assert_eq!(
            Location::parse("oci://ghcr.io/org/chart:1.0").unwrap(),
            Location::Registry("ghcr.io/org/chart:1.0".parse().unwrap())
        );
        assert_eq!(
            Location::parse("nginx").unwrap().to_string(),
            "docker.io/library/nginx:latest"
        );
        assert!(Location::parse("oci:").is_err());
        assert!(Location::parse("oci::x").is_err());
        assert_eq!(
            Location::parse("oci:images:docker.io/library/nginx:1.25").unwrap(),
            Location::Layout {
                dir: "images".into(),
                name: Some("docker.io/library/nginx:1.25".into())
            }
        );
        assert!(matches!(
            Location::parse("docker-daemon:nginx:1.25").unwrap(),
            Location::Archive(SourceSpec::DockerDaemon { .. })
        ));
        assert!(Location::parse("docker.io/UPPER:1").is_err());
        assert!(Location::parse("bad ref").is_err());
    }

    #[tokio::test]
    async fn a_layout_names_its_images_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(dir.path()).unwrap();
        let d = ferry_oci::Descriptor::of(ferry_oci::media_type::OCI_MANIFEST, b"{}");
        layout
            .update_index(|e| {
                let mut a = d.clone();
                a.annotations.insert(
                    ferry_oci::descriptor::ANNOTATION_BASE_NAME.into(),
                    "library/nginx:1.25".into(),
                );
                e.push(a);
                e.push(d.clone());
            })
            .unwrap();
        let names = layout_images(&layout).unwrap();
        assert_eq!(names.len(), 1);
        assert_eq!(
            names[0].name.as_deref(),
            Some("docker.io/library/nginx:1.25")
        );
    }
}
