//! A package as Zarf publishes it to a registry (zarf-compat §7): one manifest per architecture — config
//! `application/vnd.zarf.config.v1+json` (the definition as JSON), one `application/vnd.zarf.layer.v1.blob`
//! layer per file titled by its path, layers sorted by digest — and the tag `<version>[-<flavor>]` on an
//! index with one `{os: multi, architecture}` entry per architecture.

use std::collections::BTreeMap;

use bytes::Bytes;
use ferry_oci::{Descriptor, Platform, Reference, gojson, media_type};
use ferry_registry::{RegistryError, Repository};
use serde::{Deserialize, Serialize};

use crate::definition::{ANNOTATION_TITLE, Definition};
use crate::error::{PackageError, Result};
use crate::local::LocalPackage;
use crate::store::FileStore;
use crate::{ZARF_CONFIG, ZARF_LAYER};

/// The OS of every entry of a package index.
pub const MULTI_OS: &str = "multi";

/// Everything a publish sends, ready for the copy engine: the store serves config, layers and manifest.
pub struct PublishPlan {
    /// Serves the config, the layers (the package's files) and the manifest.
    pub store: FileStore,
    /// The package manifest.
    pub manifest: Descriptor,
    /// Its bytes.
    pub manifest_bytes: Bytes,
    /// The Zarf config blob (the `zarf.yaml` as JSON).
    pub config: Descriptor,
    /// One layer per package file, titled by its path.
    pub layers: Vec<Descriptor>,
    /// The package's architecture, for its index entry.
    pub architecture: String,
}

/// The publish manifest for `pkg` (read with every file hashed and readable). Blocking only in that it may
/// read files kept in memory.
pub fn plan(pkg: &LocalPackage, def: &Definition) -> Result<PublishPlan> {
    let label = pkg.label();
    let architecture = def.publish_architecture().to_string();
    if architecture.is_empty() {
        return Err(PackageError::file(
            &label,
            crate::ZARF_YAML,
            "has no metadata.architecture (nor build.architecture): cannot publish",
        ));
    }
    let mut store = FileStore::new(format!("package {label}"));
    let mut layers = Vec::with_capacity(pkg.files.len());
    for (rel, entry) in &pkg.files {
        let digest = entry.digest.clone().ok_or_else(|| {
            PackageError::file(&label, rel, "was not hashed; cannot be published")
        })?;
        if !store.add_file(pkg, rel, entry, &digest) {
            return Err(PackageError::file(
                &label,
                rel,
                "was not unpacked; cannot be published",
            ));
        }
        let mut d = Descriptor::new(ZARF_LAYER, digest, entry.size);
        d.annotations
            .insert(ANNOTATION_TITLE.to_string(), rel.clone());
        layers.push(d);
    }
    // By digest, as Zarf sorts them; equal files (same digest) by title, so the bytes are stable.
    layers.sort_by(|a, b| {
        (a.digest.to_string(), a.annotation(ANNOTATION_TITLE))
            .cmp(&(b.digest.to_string(), b.annotation(ANNOTATION_TITLE)))
    });
    let config = store.add_bytes(ZARF_CONFIG, Bytes::from(def.config_json()?));
    let manifest_bytes = Bytes::from(manifest_bytes(
        &config,
        &layers,
        &def.manifest_annotations(),
    ));
    let manifest = store.add_bytes(media_type::OCI_MANIFEST, manifest_bytes.clone());
    Ok(PublishPlan {
        store,
        manifest,
        manifest_bytes,
        config,
        layers,
        architecture,
    })
}

/// An image manifest as oras-go packs it (`PackManifestVersion1_1`) and Go encodes it: schemaVersion,
/// mediaType, config, layers, annotations; no artifactType.
pub fn manifest_bytes(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest<'a> {
        schema_version: u32,
        media_type: &'a str,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: &'a BTreeMap<String, String>,
    }
    gojson::to_vec(&Manifest {
        schema_version: 2,
        media_type: media_type::OCI_MANIFEST,
        config,
        layers,
        annotations,
    })
    .expect("a manifest always serializes")
}

/// An OCI index as Go's `ocispec.Index` encodes it; unknown fields of an existing one are dropped, as
/// Zarf's read-modify-write drops them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// The package index after publishing `manifest` for `arch`: the entry whose platform has that architecture
/// is replaced (the first one, as Zarf does), or one is added. `existing` is the index the tag points at now.
pub fn index_with(
    existing: Option<&[u8]>,
    manifest: &Descriptor,
    arch: &str,
) -> Result<Vec<u8>, String> {
    let mut entry = Descriptor::new(
        media_type::OCI_MANIFEST,
        manifest.digest.clone(),
        manifest.size,
    );
    entry.platform = Some(Platform {
        architecture: arch.to_string(),
        os: MULTI_OS.to_string(),
        ..Platform::default()
    });
    let mut index = match existing {
        Some(bytes) => serde_json::from_slice::<Index>(bytes)
            .map_err(|e| format!("the index the tag points at is not valid JSON: {e}"))?,
        None => Index {
            schema_version: 2,
            media_type: media_type::OCI_INDEX.to_string(),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        },
    };
    match index
        .manifests
        .iter_mut()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.architecture == arch))
    {
        // Only digest, size and platform change: Zarf keeps the rest of the entry.
        Some(m) => {
            m.digest = entry.digest;
            m.size = entry.size;
            m.platform = entry.platform;
        }
        None => index.manifests.push(entry),
    }
    Ok(gojson::to_vec(&index).expect("an index always serializes"))
}

/// `oci://REGISTRY[/NS]` + the package name and tag → where the package goes.
pub fn destination(dest: &str, name: &str, tag: &str) -> Result<Reference> {
    let base = dest
        .strip_prefix("oci://")
        .unwrap_or(dest)
        .trim_end_matches('/');
    if base.is_empty() || name.is_empty() {
        return Err(PackageError::invalid(
            dest,
            "expected oci://REGISTRY[/NAMESPACE] and a package with metadata.name",
        ));
    }
    if base.contains('@')
        || base
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':') && base.contains('/'))
    {
        return Err(PackageError::invalid(
            dest,
            "give the registry and namespace only (oci://REGISTRY[/NAMESPACE]); the repository is the package name and the tag its version (or --tag)",
        ));
    }
    format!("{base}/{name}:{tag}")
        .parse::<Reference>()
        .map_err(|e| PackageError::invalid(dest, e.to_string()))
}

/// Point `tag` at the package index with `manifest` as `arch`'s entry (read, modify, write). Returns the
/// index descriptor. Two publishers of different architectures racing on one tag can lose an entry, as
/// with Zarf; publishing again restores it.
pub async fn tag_index(
    repo: &Repository,
    tag: &str,
    manifest: &Descriptor,
    arch: &str,
) -> Result<Descriptor> {
    let existing = match repo.resolve(tag).await {
        Ok((desc, bytes)) if media_type::is_index(&desc.media_type) => Some(bytes),
        Ok((desc, _)) => {
            tracing::warn!(
                "{}/{}:{tag} is a {} rather than a package index; replacing it with an index",
                repo.registry(),
                repo.repository(),
                desc.media_type
            );
            None
        }
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(e.into()),
    };
    let bytes = index_with(existing.as_deref(), manifest, arch).map_err(|why| {
        PackageError::invalid(
            format!("{}/{}:{tag}", repo.registry(), repo.repository()),
            why,
        )
    })?;
    let desc = Descriptor::of(media_type::OCI_INDEX, &bytes);
    repo.tag(&desc, Bytes::from(bytes), tag).await?;
    Ok(desc)
}

pub(crate) fn is_not_found(e: &RegistryError) -> bool {
    match e {
        RegistryError::NotFound { .. } => true,
        RegistryError::RetriesExhausted { last, .. } => is_not_found(last),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::Digest;

    #[test]
    fn manifest_is_what_oras_packs() {
        let config = Descriptor::of(ZARF_CONFIG, b"{}");
        let mut layer = Descriptor::of(ZARF_LAYER, b"x");
        layer
            .annotations
            .insert(ANNOTATION_TITLE.into(), "zarf.yaml".into());
        let mut ann = BTreeMap::new();
        ann.insert(
            "org.opencontainers.image.title".to_string(),
            "p&q".to_string(),
        );
        let bytes = String::from_utf8(manifest_bytes(&config, &[layer.clone()], &ann)).unwrap();
        assert_eq!(
            bytes,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.zarf.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.zarf.layer.v1.blob","digest":"{}","size":1,"annotations":{{"org.opencontainers.image.title":"zarf.yaml"}}}}],"annotations":{{"org.opencontainers.image.title":"p\u0026q"}}}}"#,
                config.digest, layer.digest
            )
        );
    }

    #[test]
    fn index_adds_and_replaces_architectures() {
        let a = Descriptor::of(media_type::OCI_MANIFEST, b"amd64 v1");
        let first = index_with(None, &a, "amd64").unwrap();
        assert_eq!(
            String::from_utf8(first.clone()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":8,"platform":{{"architecture":"amd64","os":"multi"}}}}]}}"#,
                a.digest
            )
        );
        let b = Descriptor::of(media_type::OCI_MANIFEST, b"arm64");
        let two = index_with(Some(&first), &b, "arm64").unwrap();
        let a2 = Descriptor::of(media_type::OCI_MANIFEST, b"amd64 v2!");
        let replaced = index_with(Some(&two), &a2, "amd64").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&replaced).unwrap();
        let m = v["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["digest"], a2.digest.to_string());
        assert_eq!(m[0]["size"], 9);
        assert_eq!(m[1]["platform"]["architecture"], "arm64");
        assert_eq!(
            index_with(Some(&replaced), &a2, "amd64").unwrap(),
            replaced,
            "publishing again changes nothing"
        );
        assert!(index_with(Some(b"<html>"), &a, "amd64").is_err());
        let _ = Digest::of(b"");
    }

    #[test]
    fn destinations() {
        assert_eq!(
            destination("oci://127.0.0.1:5000/ns", "demo", "1.0.0")
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/ns/demo:1.0.0"
        );
        assert_eq!(
            destination("oci://ghcr.io/org/", "demo", "1.0.0-flavor")
                .unwrap()
                .to_string(),
            "ghcr.io/org/demo:1.0.0-flavor"
        );
        assert!(destination("oci://ghcr.io/org/demo:1.0", "demo", "1").is_err());
        assert!(destination("oci://", "demo", "1").is_err());
    }
}

/// How [`publish_package`] treats the package.
#[derive(Clone, Debug, Default)]
pub struct PublishRequest {
    /// The tag (default: `<version>[-<flavor>]` from `zarf.yaml`).
    pub tag: Option<String>,
    /// Publish without checking the package against its `checksums.txt` (a warning says so).
    pub skip_verify: bool,
}

/// Publish the package at `path` (a directory, `.tar` or `.tar.zst`) to `to`
/// (`oci://REGISTRY[/NAMESPACE]`, the repository being the package name): opened with every file hashed,
/// verified against its `checksums.txt` (a failure is [`PackageError::Verification`] and nothing is sent),
/// then [`publish`]ed under the tag asked for or its own.
pub async fn publish_package(
    path: &std::path::Path,
    to: &str,
    request: &PublishRequest,
    client: &std::sync::Arc<ferry_registry::RegistryClient>,
    opts: &ferry_copy::CopyOptions,
) -> Result<Published> {
    let pkg = crate::source::open_local(path, crate::Extract::Everything, true).await?;
    let label = pkg.label();
    let def = pkg.definition()?.ok_or_else(|| PackageError::NotAPackage {
        package: label.clone(),
        why: format!("it has no {}", crate::ZARF_YAML),
    })?;
    if request.skip_verify {
        tracing::warn!(
            "not verifying {label} (--skip-verify): it is published without checking checksums.txt"
        );
    } else {
        let integrity = pkg.integrity(&def, false)?;
        if !integrity.ok {
            return Err(PackageError::Verification {
                package: label,
                summary: integrity.summary(),
            });
        }
    }
    let tag = match &request.tag {
        Some(t) => t.clone(),
        None => def.tag().ok_or_else(|| {
            PackageError::invalid(
                &label,
                "zarf.yaml has no metadata.version to tag the package with; give a tag",
            )
        })?,
    };
    let reference = destination(to, &def.metadata.name, &tag)?;
    let repo = Repository::new(client.clone(), &reference.registry, &reference.repository);
    let tag = reference.tag.clone().unwrap_or(tag);
    publish(&pkg, &def, &repo, &tag, opts).await
}

/// What [`publish`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// Where the package went.
    pub reference: String,
    /// The package manifest for this architecture.
    pub digest: String,
    /// The index the tag points at.
    pub index_digest: String,
    /// The package's architecture.
    pub architecture: String,
    /// Files sent as layers.
    pub layers: usize,
    /// Their bytes.
    pub bytes: u64,
    /// What the copy moved, and how.
    pub blobs: ferry_copy::CopyStats,
}

/// Publish `pkg` (its files hashed; verified by the caller) to `repo` under `tag`: the config, every file
/// as a layer and the manifest through the copy engine (`opts`: concurrency, retries, progress), then the
/// tag's index last, so the tag only ever names a complete package.
pub async fn publish(
    pkg: &LocalPackage,
    def: &Definition,
    repo: &Repository,
    tag: &str,
    opts: &ferry_copy::CopyOptions,
) -> Result<Published> {
    let plan = plan(pkg, def)?;
    let reference = format!("{}/{}:{tag}", repo.registry(), repo.repository());
    let selection =
        ferry_copy::Selection::of(plan.manifest.clone(), Some(plan.manifest_bytes.clone()));
    let source: std::sync::Arc<dyn ferry_store::ReadStore> =
        std::sync::Arc::new(plan.store.clone());
    let dest: std::sync::Arc<dyn ferry_store::WriteTarget> = std::sync::Arc::new(repo.clone());
    let copied = ferry_copy::copy_selected(&source, &selection, &dest, &[], opts)
        .await
        .map_err(|source| PackageError::Copy {
            package: pkg.label(),
            source: Box::new(source),
        })?;
    let index = tag_index(repo, tag, &plan.manifest, &plan.architecture).await?;
    Ok(Published {
        reference,
        digest: plan.manifest.digest.to_string(),
        index_digest: index.digest.to_string(),
        architecture: plan.architecture.clone(),
        layers: plan.layers.len(),
        bytes: plan.layers.iter().map(|l| l.size).sum(),
        blobs: copied.stats,
    })
}
