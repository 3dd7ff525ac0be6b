//! What a package is: name, version, architecture, components, images (digest, size) and integrity — the
//! same summary for a package on disk and one in a registry.

use std::collections::HashSet;
use std::future::Future;

use ferry_oci::{Descriptor, Manifest, media_type};
use serde::Serialize;

use crate::checksums::Integrity;
use crate::definition::Definition;
use crate::{IMAGES_INDEX, LocalPackage, PackageError, RemotePackage, Result};

/// What `ferry package inspect` shows about a package, on disk or in a registry.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The path or reference inspected.
    pub package: String,
    /// `directory`, `tar`, `tar.zst`, `tar.gz` or `oci`.
    pub format: String,
    /// `ZarfPackageConfig` or `ZarfInitConfig`.
    pub kind: String,
    /// The package name.
    pub name: String,
    /// The author's version string.
    pub version: String,
    /// The architecture it is for.
    pub architecture: String,
    /// The flavor it was built with (empty: none).
    pub flavor: String,
    /// Free-text description.
    pub description: String,
    /// For a package in a registry: the digest of its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its components, in order.
    pub components: Vec<ComponentSummary>,
    /// The images its `images/` layout holds.
    pub images: Vec<ImageSummary>,
    /// Files in the package and their bytes.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// What checking the files against `checksums.txt` found.
    pub integrity: Integrity,
}

/// One component, for [`Summary`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSummary {
    /// The component's name.
    pub name: String,
    /// Whether it is always deployed.
    pub required: bool,
    /// Free-text description.
    pub description: String,
    /// The image references it carries.
    pub images: Vec<String>,
}

/// One image of the package's layout, for [`Summary`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The image name the layout knows it by.
    pub name: String,
    /// The digest of its manifest or index.
    pub digest: String,
    /// The media type of that manifest or index.
    pub media_type: String,
    /// Bytes of the manifest (or index) and everything below it that the package stores.
    pub size: u64,
    /// `os/arch[/variant]`, when the layout entry names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Summary {
    /// The summary of `package` (as the user named it) in `format`, from its definition and files; `digest`
    /// and `images` are for the caller to fill.
    pub fn new(
        package: String,
        format: &str,
        def: &Definition,
        files: usize,
        bytes: u64,
        integrity: Integrity,
    ) -> Summary {
        Summary {
            package,
            format: format.to_string(),
            kind: def.kind.clone(),
            name: def.metadata.name.clone(),
            version: def.metadata.version.clone(),
            architecture: def.architecture().to_string(),
            flavor: def.build.flavor.clone(),
            description: def.metadata.description.clone(),
            digest: None,
            components: def
                .components
                .iter()
                .map(|c| ComponentSummary {
                    name: c.name.clone(),
                    required: c.required,
                    description: c.description.clone(),
                    images: c.images.clone(),
                })
                .collect(),
            images: Vec::new(),
            files,
            bytes,
            integrity,
        }
    }
}

/// The named entries of `images/index.json` with their sizes; `read` gives a blob's bytes (`None` when the
/// package cannot say, which leaves that manifest's children out of the size).
pub async fn images<F, Fut>(entries: &[Descriptor], read: F) -> Vec<ImageSummary>
where
    F: Fn(Descriptor) -> Fut,
    Fut: Future<Output = Option<Vec<u8>>>,
{
    let mut out = Vec::new();
    for e in entries {
        let Some(name) = e.image_name() else { continue };
        let mut seen: HashSet<ferry_oci::Digest> = HashSet::new();
        let mut size = 0;
        let mut stack = vec![e.clone()];
        while let Some(d) = stack.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            size += d.size;
            if media_type::is_manifest_like(&d.media_type)
                && let Some(bytes) = read(d.clone()).await
                && let Ok(m) = Manifest::parse(&d.media_type, &bytes)
            {
                stack.extend(m.successors());
            }
        }
        out.push(ImageSummary {
            name,
            digest: e.digest.to_string(),
            media_type: e.media_type.clone(),
            size,
            platform: e.platform.as_ref().map(|p| p.to_string()),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl Summary {
    /// The summary of a package on disk; `partial` allows absent files (a package pulled by component).
    pub async fn of_local(pkg: &LocalPackage, partial: bool) -> Result<Summary> {
        let def = pkg.definition()?.ok_or_else(|| PackageError::NotAPackage {
            package: pkg.label(),
            why: "it has no zarf.yaml".into(),
        })?;
        let integrity = pkg.integrity(&def, partial)?;
        let bytes = pkg.files.values().map(|f| f.size).sum();
        let summary = Summary::new(
            pkg.label(),
            pkg.format.name(),
            &def,
            pkg.files.len(),
            bytes,
            integrity,
        );
        let index = pkg.read(IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)?;
        summary
            .with_images(index, |rel| async move {
                pkg.read(&rel, ferry_oci::MAX_MANIFEST_BYTES).ok().flatten()
            })
            .await
    }

    /// The summary of a package in a registry (the manifest `remote` resolved); `partial` as above.
    pub async fn of_remote(remote: &RemotePackage, partial: bool) -> Result<Summary> {
        let def = remote.definition().await?;
        let mut integrity = remote.integrity(&def).await?;
        integrity.partial = partial;
        let bytes = remote.layers.values().map(|d| d.size).sum();
        let mut summary = Summary::new(
            format!("oci://{}", remote.reference),
            "oci",
            &def,
            remote.layers.len(),
            bytes,
            integrity,
        );
        summary.digest = Some(remote.manifest.digest.to_string());
        let index = remote
            .fetch_small(IMAGES_INDEX, ferry_oci::MAX_MANIFEST_BYTES)
            .await?;
        summary
            .with_images(index, |rel| async move {
                remote
                    .fetch_small(&rel, ferry_oci::MAX_MANIFEST_BYTES)
                    .await
                    .ok()
                    .flatten()
            })
            .await
    }

    /// The images `images/index.json` (when the package has one) names; `read` gives a file of the package
    /// by its relative name.
    async fn with_images<F, Fut>(mut self, index: Option<Vec<u8>>, read: F) -> Result<Summary>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Option<Vec<u8>>>,
    {
        if let Some(index) = index {
            let entries = crate::images::parse_index(&self.package, &index)?;
            self.images = images(&entries, |d: Descriptor| {
                read(format!("images/blobs/sha256/{}", d.digest.hex()))
            })
            .await;
        }
        Ok(self)
    }
}
