//! A package as a command names it — a path (directory, `.tar`, `.tar.zst`) or `oci://REGISTRY/REPO:TAG` —
//! and what every package command does with it first: open it, summarize it, check its signature.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_oci::Reference;
use ferry_registry::{RegistryClient, Repository};
use ferry_trust::blob::MAX_SIGNATURE_BYTES;
use ferry_trust::zarf::{BUNDLE, LEGACY, PackageFiles, PackageSigned, verify_package};
use ferry_trust::{PublicKey, Trust};

use crate::definition::MAX_ZARF_YAML;
use crate::error::{PackageError, Result};
use crate::inspect::Summary;
use crate::local::{Extract, LocalPackage, OpenOptions};
use crate::{RemotePackage, ZARF_YAML};

/// Where a package is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageSource {
    /// A directory, `.tar` or `.tar.zst` on disk.
    Local(PathBuf),
    /// A package published to a registry.
    Remote(Reference),
}

impl PackageSource {
    /// `oci://…` is a package in a registry; anything else a path.
    pub fn parse(text: &str) -> Result<PackageSource> {
        match text.strip_prefix("oci://") {
            Some(rest) => Ok(PackageSource::Remote(reference(text, rest)?)),
            None => Ok(PackageSource::Local(PathBuf::from(text))),
        }
    }

    /// A package in a registry, named with or without `oci://`.
    pub fn parse_remote(text: &str) -> Result<Reference> {
        reference(text, text.strip_prefix("oci://").unwrap_or(text))
    }

    /// The path, or `oci://` and the normalized reference: what messages call the package.
    pub fn label(&self) -> String {
        match self {
            PackageSource::Local(p) => p.display().to_string(),
            PackageSource::Remote(r) => format!("oci://{r}"),
        }
    }

    /// The summary `ferry package inspect` shows; `arch` chooses from a published index (default: the only
    /// entry, else this machine's), `partial` allows absent files (a package pulled by component).
    pub async fn summary(
        &self,
        client: &Arc<RegistryClient>,
        arch: Option<&str>,
        partial: bool,
    ) -> Result<Summary> {
        match self {
            PackageSource::Remote(r) => {
                let remote = resolve(client, r.clone(), arch).await?;
                Summary::of_remote(&remote, partial).await
            }
            PackageSource::Local(p) => {
                let pkg = open_local(p, Extract::Nothing, true).await?;
                Summary::of_local(&pkg, partial).await
            }
        }
    }

    /// Refuse the package unless `key` signed its `zarf.yaml` (`zarf.bundle.sig`, else the legacy
    /// `zarf.yaml.sig`, as Zarf checks on load: a warning says when only the legacy one is there). Reads
    /// only `zarf.yaml` and the signatures, from the registry for a published package.
    pub async fn check_signature(
        &self,
        client: &Arc<RegistryClient>,
        arch: Option<&str>,
        key: &PublicKey,
    ) -> Result<PackageSigned> {
        let label = self.label();
        let [yaml, bundle, legacy] = match self {
            PackageSource::Remote(r) => {
                let remote = resolve(client, r.clone(), arch).await?;
                [
                    remote.fetch_small(ZARF_YAML, MAX_ZARF_YAML).await?,
                    remote.fetch_small(BUNDLE, MAX_SIGNATURE_BYTES).await?,
                    remote.fetch_small(LEGACY, MAX_SIGNATURE_BYTES).await?,
                ]
            }
            PackageSource::Local(p) => {
                let pkg = open_local(p, Extract::Nothing, false).await?;
                [
                    pkg.read(ZARF_YAML, MAX_ZARF_YAML)?,
                    pkg.read(BUNDLE, MAX_SIGNATURE_BYTES)?,
                    pkg.read(LEGACY, MAX_SIGNATURE_BYTES)?,
                ]
            }
        };
        let yaml = yaml.ok_or_else(|| PackageError::NotAPackage {
            package: label.clone(),
            why: format!("it has no {ZARF_YAML}"),
        })?;
        let files = PackageFiles {
            zarf_yaml: &yaml,
            bundle: bundle.as_deref(),
            legacy: legacy.as_deref(),
        };
        let keys = [key.clone()];
        let trust = Trust {
            keys: &keys,
            keyless: None,
        };
        let signed = verify_package(&label, &files, trust)?;
        if signed.file == LEGACY {
            tracing::warn!("{label}: only the legacy {LEGACY} signature (Zarf prefers {BUNDLE})");
        }
        Ok(signed)
    }
}

fn reference(text: &str, rest: &str) -> Result<Reference> {
    rest.parse().map_err(|source| PackageError::Reference {
        text: text.to_string(),
        source,
    })
}

/// The package `reference` names in a registry, resolved for `arch` (see [`RemotePackage::resolve`]).
pub async fn resolve(
    client: &Arc<RegistryClient>,
    reference: Reference,
    arch: Option<&str>,
) -> Result<RemotePackage> {
    let repo = Repository::new(client.clone(), &reference.registry, &reference.repository);
    let package = format!("oci://{reference}");
    RemotePackage::resolve(repo, reference, arch)
        .await
        .map_err(|e| PackageError::Resolve {
            package,
            source: Box::new(e),
        })
}

/// A package on disk opened on a blocking thread ([`LocalPackage::open`]): `extract` what is unpacked of a
/// compressed one, `hash` whether every file is hashed for its integrity.
pub async fn open_local(path: &Path, extract: Extract, hash: bool) -> Result<LocalPackage> {
    let p = path.to_path_buf();
    let opts = OpenOptions {
        extract,
        hash,
        temp_dir: None,
        stop_if_layout: false,
    };
    tokio::task::spawn_blocking(move || LocalPackage::open(&p, &opts))
        .await
        .expect("package task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_is_a_path_unless_it_says_oci() {
        assert_eq!(
            PackageSource::parse("build/demo.tar.zst").unwrap(),
            PackageSource::Local("build/demo.tar.zst".into())
        );
        let remote = PackageSource::parse("oci://registry.local/packages/demo:1.0.0").unwrap();
        assert_eq!(remote.label(), "oci://registry.local/packages/demo:1.0.0");
        assert_eq!(
            PackageSource::parse_remote("registry.local/packages/demo:1.0.0").unwrap(),
            PackageSource::parse_remote("oci://registry.local/packages/demo:1.0.0").unwrap()
        );
        let err = PackageSource::parse("oci://Not A Reference").unwrap_err();
        assert!(err.to_string().contains("oci://Not A Reference"), "{err}");
    }
}
