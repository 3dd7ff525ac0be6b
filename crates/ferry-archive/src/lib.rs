#![warn(missing_docs)]
//! Image archives and the Docker Engine as ferry stores: more places content lives, read by the one copy
//! engine like any other.
//!
//! - [`DockerArchive`]: a `docker save` tarball, Engine ≥ 25 (OCI layout inside) or legacy
//!   (`manifest.json` + `<id>/layer.tar`, converted to an OCI image deterministically).
//! - [`OciArchive`]: an OCI layout in a `.tar`, `.tar.gz` or `.tar.zst`; [`OciArchive::write`] exports a
//!   layout as one deterministic file, and [`OciArchiveWriter`] is a `WriteStore` that ends as one.
//! - [`DockerDaemon`]: the Engine API over its unix socket; an export is spooled to a temp file and read as
//!   a [`DockerArchive`].
//!
//! Nothing is extracted: a tar is indexed once (entry → byte range), and blobs are served by reading those
//! ranges, so memory stays bounded whatever the image size. Compressed archives are decompressed once to a
//! temp file first. Entry names with `..` or a leading `/`, symlinks that leave the archive and oversized
//! metadata files are refused.
//!
//! [`SourceSpec`] and [`open_source`] turn `docker-daemon:IMAGE`, `docker-archive:FILE[:REF]` and
//! `oci-archive:FILE[:REF]` into a store and the images to copy from it.

mod compress;
mod daemon;
mod docker;
mod error;
mod names;
mod oci;
mod ocitar;
mod store;
mod target;
mod tarindex;
mod tarwriter;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_oci::PlatformSpec;
use ferry_store::{ReadStore, ReadTarget};

pub use compress::Compression;
pub use daemon::{
    DEFAULT_SOCKET, DaemonExport, DockerDaemon, Endpoint, EndpointOrigin, ImageInspect,
};
pub use docker::{DockerArchive, DockerFormat};
pub use error::{ArchiveError, Result};
pub use names::ArchiveImage;
pub use oci::{
    ANNOTATION_DELTA_BASE, ANNOTATION_DELTA_BASE_DIGEST, DeltaBase, OciArchive, OciArchiveWriter,
    WriteSummary,
};
pub use store::{BlobMap, BlobSource, OpenOptions};
pub use target::ArchiveTarget;
pub use tarindex::{
    EntryKind, MAX_METADATA_BYTES, TarEntries, TarEntry, normalize as normalize_path,
};
pub use tarwriter::{BLOB_MODE, DIR_MODE, FILE_MODE, TarWriter};

/// A source written as a transport-prefixed string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `docker-daemon:IMAGE[:TAG]` (or `@digest`, or an image ID).
    DockerDaemon {
        /// The image: a name, `name@digest` or an image ID.
        name: String,
    },
    /// `docker-archive:FILE[:REF]`.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// The image in it, if the spec named one.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The image in it, if the spec named one.
        reference: Option<String>,
    },
}

impl SourceSpec {
    /// `None` when `spec` has none of the three prefixes (it is then a registry reference or a layout).
    ///
    /// `FILE[:REF]` is split at the first `:` whose left side is an existing file, unless the whole string
    /// is one, so `a.tar:nginx:1.25` is `a.tar` + `nginx:1.25`; a path that does not exist is kept whole
    /// (opening it then says so).
    pub fn parse(spec: &str) -> Option<SourceSpec> {
        if let Some(name) = spec.strip_prefix("docker-daemon:") {
            return Some(SourceSpec::DockerDaemon {
                name: name.to_string(),
            });
        }
        if let Some(rest) = spec.strip_prefix("docker-archive:") {
            let (path, reference) = split_file_ref(rest);
            return Some(SourceSpec::DockerArchive { path, reference });
        }
        if let Some(rest) = spec.strip_prefix("oci-archive:") {
            let (path, reference) = split_file_ref(rest);
            return Some(SourceSpec::OciArchive { path, reference });
        }
        None
    }
}

fn split_file_ref(rest: &str) -> (PathBuf, Option<String>) {
    if Path::new(rest).is_file() {
        return (PathBuf::from(rest), None);
    }
    for (i, _) in rest.match_indices(':') {
        let (file, reference) = (&rest[..i], &rest[i + 1..]);
        if !reference.is_empty() && Path::new(file).is_file() {
            return (PathBuf::from(file), Some(reference.to_string()));
        }
    }
    (PathBuf::from(rest), None)
}

/// What [`open_source`] needs beyond the spec.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// How archives are opened (limits, where a compressed archive is spooled).
    pub open: OpenOptions,
    /// Passed to the engine's export where its API takes it (≥ 1.48). Archives are not filtered here:
    /// apply `ferry_copy::select_root` to what they hold, as for a registry.
    pub platform: Option<PlatformSpec>,
}

/// An opened source: the store to copy from (names resolve to its images), and the images to copy.
pub struct Source {
    /// The archive or export as a store; names resolve to its images.
    pub store: Arc<dyn ReadTarget>,
    /// The image the spec names, or, without a reference, every named image of the archive (every image,
    /// if none is named).
    pub images: Vec<ArchiveImage>,
}

impl Source {
    /// `images` of `archive`, whose names resolve to them.
    fn of(archive: Arc<dyn ReadStore>, images: Vec<ArchiveImage>) -> Source {
        Source {
            store: Arc::new(ArchiveTarget::new(archive, images.clone())),
            images,
        }
    }
}

/// Open `spec` as a store. Archives are indexed on a blocking thread; the daemon's export is streamed to a
/// temp file first.
pub async fn open_source(spec: &SourceSpec, opts: &SourceOptions) -> Result<Source> {
    match spec {
        SourceSpec::DockerDaemon { name } => {
            if name.is_empty() {
                return Err(ArchiveError::Endpoint(
                    "docker-daemon: needs an image name, e.g. docker-daemon:nginx:1.25".into(),
                ));
            }
            let daemon = DockerDaemon::connect(opts.open.clone()).await?;
            let export = daemon.export(name, opts.platform.as_ref()).await?;
            Ok(Source::of(Arc::new(export.archive), vec![export.image]))
        }
        SourceSpec::DockerArchive { path, reference } => {
            let (path, o) = (path.clone(), opts.open.clone());
            let archive = blocking(move || DockerArchive::open_with(&path, &o)).await?;
            let images = chosen(archive.images(), reference.as_deref(), |r| {
                archive.resolve(r)
            })?;
            Ok(Source::of(Arc::new(archive), images))
        }
        SourceSpec::OciArchive { path, reference } => {
            let (path, o) = (path.clone(), opts.open.clone());
            let archive = blocking(move || OciArchive::open_with(&path, &o)).await?;
            let images = chosen(archive.images(), reference.as_deref(), |r| {
                archive.resolve(r)
            })?;
            Ok(Source::of(Arc::new(archive), images))
        }
    }
}

fn chosen<'a>(
    all: &'a [ArchiveImage],
    reference: Option<&str>,
    resolve: impl Fn(&str) -> Result<&'a ArchiveImage>,
) -> Result<Vec<ArchiveImage>> {
    if let Some(r) = reference {
        return Ok(vec![resolve(r)?.clone()]);
    }
    let named: Vec<ArchiveImage> = all.iter().filter(|i| i.name.is_some()).cloned().collect();
    Ok(if named.is_empty() {
        all.to_vec()
    } else {
        named
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("archive task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_file_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        std::fs::write(&file, b"").unwrap();
        let f = file.display().to_string();
        assert_eq!(
            SourceSpec::parse(&format!("docker-archive:{f}:nginx:1.25")),
            Some(SourceSpec::DockerArchive {
                path: file.clone(),
                reference: Some("nginx:1.25".into())
            })
        );
        assert_eq!(
            SourceSpec::parse(&format!("oci-archive:{f}")),
            Some(SourceSpec::OciArchive {
                path: file.clone(),
                reference: None
            })
        );
        assert_eq!(
            SourceSpec::parse("docker-daemon:nginx:1.25"),
            Some(SourceSpec::DockerDaemon {
                name: "nginx:1.25".into()
            })
        );
        assert_eq!(SourceSpec::parse("nginx:1.25"), None);
        assert_eq!(
            SourceSpec::parse("oci-archive:/nope/x.tar:a"),
            Some(SourceSpec::OciArchive {
                path: "/nope/x.tar:a".into(),
                reference: None
            })
        );
    }
}
