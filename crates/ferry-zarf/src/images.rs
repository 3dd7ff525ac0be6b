//! The `images/` layout of a package, whatever form the package has, as what `ferry push` reads: the
//! entries of `images/index.json` and a store serving their blobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_archive::{OciArchive, OpenOptions as ArchiveOptions};
use ferry_oci::{Descriptor, Digest, media_type};
use ferry_store::{
    BoxFuture, ByteSource, OciLayout, ReadStore, Referrer, Resolver, Store, StoreError,
};

use crate::IMAGES_INDEX;
use crate::error::{PackageError, Result};
use crate::local::LocalPackage;
use crate::store::FileStore;

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct PackageImages {
    /// What messages name: the layout directory, or the package tarball.
    root: PathBuf,
    inner: Arc<Inner>,
}

enum Inner {
    /// A layout on disk: a package directory's, or one unpacked from a compressed tarball (kept alive).
    Layout {
        layout: OciLayout,
        _temp: Option<Arc<tempfile::TempDir>>,
    },
    /// Blobs served from the package in place (a plain tar, by byte ranges).
    Files {
        store: FileStore,
        entries: Vec<Descriptor>,
    },
    /// An OCI layout archive (`oci-archive:FILE`, a `.tar`/`.tar.gz`/`.tar.zst` of a layout), served by
    /// byte ranges of the tar (a compressed one decompressed once to a temp file that lives as long as it).
    Archive(Box<OciArchive>),
}

impl PackageImages {
    /// The images of the package `source` names, for a push, or `None` when `source` is not a Zarf
    /// package (a layout directory, an OCI layout archive). A package is verified against its
    /// `checksums.txt` first unless `skip_verify` (then a warning says so); a directory is read in place, a
    /// `.tar` by byte ranges, a `.tar.zst` has its `images/` unpacked beside it during the one pass that
    /// verifies it. A package that fails verification is [`PackageError::Verification`].
    pub async fn for_push(source: &Path, skip_verify: bool) -> Result<Option<PackageImages>> {
        let is_package_dir = source.is_dir() && source.join(crate::ZARF_YAML).is_file();
        if !(is_package_dir || source.is_file()) {
            return Ok(None);
        }
        let warn = || {
            tracing::warn!(
                "not verifying {} (--skip-verify): its images are pushed without checking checksums.txt",
                source.display()
            )
        };
        if is_package_dir && skip_verify {
            warn();
            return Ok(Some(PackageImages::from_layout(OciLayout::open(
                &source.join("images"),
            )?)));
        }
        let extract = if is_package_dir {
            crate::Extract::Nothing
        } else {
            crate::Extract::Images
        };
        let opts = crate::OpenOptions {
            extract,
            hash: !skip_verify,
            temp_dir: None,
            stop_if_layout: true,
        };
        let path = source.to_path_buf();
        let pkg = match tokio::task::spawn_blocking(move || LocalPackage::open(&path, &opts))
            .await
            .expect("package task panicked")
        {
            Ok(p) => p,
            Err(PackageError::NotAPackage { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(def) = pkg.definition()? else {
            return Ok(None);
        };
        if skip_verify {
            warn();
        } else {
            let integrity = pkg.integrity(&def, false)?;
            if !integrity.ok {
                return Err(PackageError::Verification {
                    package: pkg.label(),
                    summary: integrity.summary(),
                });
            }
        }
        let images = tokio::task::spawn_blocking(move || PackageImages::from_package(&pkg))
            .await
            .expect("package task panicked")?;
        Ok(Some(images))
    }

    /// A plain OCI layout directory.
    pub fn from_layout(layout: OciLayout) -> PackageImages {
        PackageImages {
            root: layout.root().to_path_buf(),
            inner: Arc::new(Inner::Layout {
                layout,
                _temp: None,
            }),
        }
    }

    /// The images of a package read with [`crate::local::Extract::Images`].
    pub fn from_package(pkg: &LocalPackage) -> Result<PackageImages> {
        if let Some(dir) = pkg.images_dir() {
            let layout = OciLayout::open(&dir)?;
            return Ok(PackageImages {
                root: if pkg.temp().is_some() {
                    pkg.path.clone()
                } else {
                    dir
                },
                inner: Arc::new(Inner::Layout {
                    layout,
                    _temp: pkg.temp(),
                }),
            });
        }
        let index = pkg
            .read(IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)?
            .ok_or_else(|| {
                PackageError::invalid(pkg.label(), "has no images/index.json: no images to push")
            })?;
        let entries = parse_index(&pkg.label(), &index)?;
        let mut store = FileStore::new(format!("package {}", pkg.label()));
        for (rel, entry) in &pkg.files {
            let Some(hex) = rel.strip_prefix("images/blobs/sha256/") else {
                continue;
            };
            // Named by content: a file whose name is no digest is not a blob.
            if let Ok(d) = format!("sha256:{hex}").parse::<Digest>() {
                store.add_file(pkg, rel, entry, &d);
            }
        }
        Ok(PackageImages {
            root: pkg.path.clone(),
            inner: Arc::new(Inner::Files { store, entries }),
        })
    }

    /// An OCI layout archive, indexed in place (never unpacked). Blocking: call it from
    /// `spawn_blocking` in async code.
    pub fn from_oci_archive(path: &Path, opts: &ArchiveOptions) -> Result<PackageImages> {
        let archive = OciArchive::open_with(path, opts)?;
        Ok(PackageImages {
            root: path.to_path_buf(),
            inner: Arc::new(Inner::Archive(Box::new(archive))),
        })
    }

    /// The entries of `images/index.json`.
    pub fn entries(&self) -> Result<Vec<Descriptor>, StoreError> {
        match &*self.inner {
            Inner::Layout { layout, .. } => layout.entries(),
            Inner::Files { entries, .. } => Ok(entries.clone()),
            Inner::Archive(archive) => Ok(archive.entries().to_vec()),
        }
    }

    /// The layout directory or the package file, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn store(&self) -> &dyn ReadStore {
        match &*self.inner {
            Inner::Layout { layout, .. } => layout,
            Inner::Files { store, .. } => store,
            Inner::Archive(archive) => archive.as_ref(),
        }
    }
}

/// The entries of a package's `images/index.json`.
pub fn parse_index(package: &str, bytes: &[u8]) -> Result<Vec<Descriptor>> {
    ferry_store::layout::decode_index(bytes)
        .map_err(|why| PackageError::file(package, IMAGES_INDEX, why))
}

impl Store for PackageImages {
    fn describe(&self) -> String {
        match &*self.inner {
            Inner::Layout {
                layout,
                _temp: None,
            } => layout.describe(),
            Inner::Archive(archive) => archive.describe(),
            _ => format!("package {}", self.root.display()),
        }
    }
}

impl ReadStore for PackageImages {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Bytes>> {
        self.store().fetch_manifest(desc)
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, ferry_store::Result<(Box<dyn ByteSource>, u64)>> {
        self.store().fetch_blob(desc, offset)
    }

    fn holds(&self, digest: &ferry_oci::Digest) -> Option<bool> {
        self.store().holds(digest)
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Vec<Referrer>>> {
        match &*self.inner {
            Inner::Layout { layout, .. } => layout.referrers(subject),
            Inner::Files { store, entries } => Box::pin(referrers_in(store, entries, subject)),
            Inner::Archive(archive) => {
                Box::pin(referrers_in(archive.as_ref(), archive.entries(), subject))
            }
        }
    }
}

/// Names as the layout (or the package's `index.json`) records them; the signature tags beside an image
/// are how `push --verify-key` finds its signatures.
impl Resolver for PackageImages {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<(Descriptor, Bytes)>> {
        Box::pin(async move {
            let entries = self.entries()?;
            ferry_store::resolve_entry(self, entries, reference).await
        })
    }
}

/// What a layout lists about `subject`, as the layout store finds it: entries named with a cosign tag for
/// it, and manifests whose `subject` it is.
async fn referrers_in(
    store: &dyn ReadStore,
    entries: &[Descriptor],
    subject: &Descriptor,
) -> ferry_store::Result<Vec<Referrer>> {
    let tag_prefix = format!(":{}.", subject.digest.tag_form());
    let mut out: Vec<Referrer> = Vec::new();
    for entry in entries {
        if entry.digest == subject.digest
            || out.iter().any(|r| r.desc.digest == entry.digest)
            || !media_type::is_manifest_like(&entry.media_type)
        {
            continue;
        }
        let plain = Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size);
        let cosign = entry.image_name().and_then(|n| {
            let tag = &n[n.rfind(&tag_prefix)? + 1..];
            ferry_store::COSIGN_SUFFIXES
                .iter()
                .any(|s| tag.ends_with(&format!(".{s}")))
                .then(|| tag.to_string())
        });
        if let Some(tag) = cosign {
            out.push(Referrer {
                desc: plain,
                tag: Some(tag),
            });
            continue;
        }
        let bytes = store.fetch_manifest(&plain).await?;
        if let Ok(m) = ferry_oci::Manifest::parse(&plain.media_type, &bytes)
            && m.subject
                .as_ref()
                .is_some_and(|s| s.digest == subject.digest)
        {
            out.push(Referrer {
                desc: m.referrer_descriptor(&plain),
                tag: None,
            });
        }
    }
    Ok(out)
}
