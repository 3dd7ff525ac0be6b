//! A package in a registry: the tag's index, the manifest for one architecture, its layers by title.

use std::collections::BTreeMap;

use bytes::Bytes;
use ferry_oci::{
    Descriptor, Manifest, PlatformSpec, Reference, media_type, platform::normalize_arch,
};
use ferry_registry::Repository;
use ferry_store::ReadStore;

use crate::checksums::{self, Integrity};
use crate::definition::{ANNOTATION_TITLE, Definition, MAX_ZARF_YAML};
use crate::error::{PackageError, Result};
use crate::{CHECKSUMS, ZARF_CONFIG, ZARF_YAML};

/// See the module docs.
pub struct RemotePackage {
    /// The package's reference (the index or the manifest).
    pub reference: Reference,
    /// Its repository.
    pub repo: Repository,
    /// The package manifest (one architecture).
    pub manifest: Descriptor,
    /// Its bytes.
    pub manifest_bytes: Bytes,
    /// The architecture its index entry names (empty when the reference is the manifest itself).
    pub architecture: String,
    /// Layers by title (the file's path in the package).
    pub layers: BTreeMap<String, Descriptor>,
}

impl RemotePackage {
    /// Resolve `reference` (a tag or digest of a package index or manifest). From an index, the entry for
    /// `arch` is taken; without `arch`, the only entry, else this machine's architecture.
    pub async fn resolve(
        repo: Repository,
        reference: Reference,
        arch: Option<&str>,
    ) -> Result<RemotePackage> {
        let label = reference.to_string();
        let (mut desc, mut bytes) = repo.resolve(&reference.target()).await?;
        let mut architecture = String::new();
        if media_type::is_index(&desc.media_type) {
            let index = Manifest::parse(&desc.media_type, &bytes)
                .map_err(|e| PackageError::invalid(&label, ferry_oci::error_chain(&e)))?;
            let archs: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| p.architecture.clone()))
                .collect();
            let wanted = match arch {
                Some(a) => normalize_arch(a).to_string(),
                None if index.manifests.len() == 1 => archs.first().cloned().unwrap_or_default(),
                None => PlatformSpec::host().architecture,
            };
            let entry = index
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| normalize_arch(&p.architecture) == wanted))
                .or_else(|| (arch.is_none() && index.manifests.len() == 1).then(|| &index.manifests[0]))
                .ok_or_else(|| {
                    PackageError::invalid(
                        &label,
                        format!(
                            "has no package for architecture {wanted:?}; it has: {} (choose with -a)",
                            if archs.is_empty() { "none".to_string() } else { archs.join(", ") }
                        ),
                    )
                })?
                .clone();
            architecture = entry
                .platform
                .as_ref()
                .map(|p| p.architecture.clone())
                .unwrap_or_default();
            bytes = repo.fetch_manifest(&entry).await?;
            desc = Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size);
        }
        let manifest = Manifest::parse(&desc.media_type, &bytes)
            .map_err(|e| PackageError::invalid(&label, ferry_oci::error_chain(&e)))?;
        let config_type = manifest
            .config
            .as_ref()
            .map(|c| c.media_type.as_str())
            .unwrap_or("");
        if config_type != ZARF_CONFIG {
            return Err(PackageError::invalid(
                &label,
                format!("not a Zarf package: its config is {config_type:?}, not {ZARF_CONFIG}"),
            ));
        }
        let mut layers = BTreeMap::new();
        for layer in &manifest.layers {
            let title = layer.annotation(ANNOTATION_TITLE).unwrap_or("");
            // A title is a path written into the output directory: it must stay inside it.
            let rel = match ferry_archive::normalize_path(title) {
                Ok(Some(rel)) => rel,
                _ => {
                    return Err(PackageError::invalid(
                        &label,
                        format!("layer {} has an unusable title {title:?}", layer.digest),
                    ));
                }
            };
            if layers.insert(rel.clone(), layer.clone()).is_some() {
                return Err(PackageError::invalid(
                    &label,
                    format!("two layers are titled {rel:?}"),
                ));
            }
        }
        Ok(RemotePackage {
            reference,
            repo,
            manifest: desc,
            manifest_bytes: bytes,
            architecture,
            layers,
        })
    }

    /// The package's reference, for messages.
    pub fn label(&self) -> String {
        self.reference.to_string()
    }

    /// A small layer's bytes straight from the registry (verified against its descriptor), or `None`.
    pub async fn fetch_small(&self, title: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some(desc) = self.layers.get(title) else {
            return Ok(None);
        };
        let bytes = ferry_store::file::read_small(&self.repo, desc, cap).await?;
        Ok(Some(bytes.to_vec()))
    }

    /// The package's `zarf.yaml` (its layer, verified and at most [`MAX_ZARF_YAML`] bytes), parsed. `Err`
    /// when the package has none or it cannot be read or parsed.
    pub async fn definition(&self) -> Result<Definition> {
        let bytes = self
            .fetch_small(ZARF_YAML, MAX_ZARF_YAML)
            .await?
            .ok_or_else(|| PackageError::invalid(self.label(), "has no zarf.yaml layer"))?;
        Definition::parse(&self.label(), &bytes)
    }

    /// `checksums.txt` and the aggregate against the layers' digests: the registry serves every layer by
    /// its digest, so this checks the package without downloading it.
    pub async fn integrity(&self, def: &Definition) -> Result<Integrity> {
        let files = self
            .layers
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.digest.clone())))
            .collect();
        let checksums = self.fetch_small(CHECKSUMS, 64 << 20).await?;
        Ok(checksums::verify(
            &files,
            checksums.as_deref(),
            &def.metadata.aggregate_checksum,
            &def.provenance_files(self.layers.contains_key(crate::SIGNATURES[1])),
            false,
        ))
    }
}
