//! Signing a package as `zarf package sign --signing-key` does (Zarf's `PackageLayout.SignPackage`):
//! `zarf.yaml` gains `build.signed: true`, `zarf.bundle.sig` in `build.provenanceFiles` (files outside
//! `checksums.txt`) and, in a v1alpha1 definition, the `v0.71.0` version requirement bundles need; then a
//! Sigstore bundle over the new `zarf.yaml` (a key signature, no transparency log: Zarf's air-gap default)
//! is written as `zarf.bundle.sig`, and a legacy `zarf.yaml.sig` is removed. `checksums.txt` and the
//! aggregate checksum do not change: neither covers `zarf.yaml` or the signature.

use std::path::Path;

use ferry_trust::PrivateKey;
use serde_yaml::Value;

use crate::definition::{MAX_ZARF_YAML, V1BETA1};
use crate::error::{PackageError, Result};
use crate::{SIGNATURES, ZARF_YAML};

/// The bundle file.
pub const BUNDLE: &str = SIGNATURES[0];
/// The legacy signature file.
pub const LEGACY: &str = SIGNATURES[1];
/// The version requirement Zarf records when it signs with a bundle.
pub const BUNDLE_VERSION: &str = "v0.71.0";
/// Its reason, as Zarf writes it.
pub const BUNDLE_REASON: &str =
    "This package contains a bundle format signature which requires Zarf v0.71.0 or later";

/// What signing did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Signed {
    /// The package directory.
    pub package: String,
    /// The key (its public half).
    pub key: String,
    /// Whether a legacy `zarf.yaml.sig` was removed.
    pub removed_legacy: bool,
}

/// Sign the package directory `dir` with `key`. An existing `zarf.bundle.sig` is replaced only when
/// `overwrite` (as Zarf's `--overwrite`).
pub fn sign_directory(dir: &Path, key: &PrivateKey, overwrite: bool) -> Result<Signed> {
    let label = dir.display().to_string();
    if !dir.is_dir() {
        return Err(PackageError::invalid(
            &label,
            "not a package directory (unpack a .tar/.tar.zst package first, e.g. `tar -xf PKG.tar.zst -C DIR`)",
        ));
    }
    let yaml_path = dir.join(ZARF_YAML);
    let meta = std::fs::metadata(&yaml_path).map_err(|e| PackageError::io(&yaml_path, e))?;
    if meta.len() > MAX_ZARF_YAML {
        return Err(PackageError::file(&label, ZARF_YAML, "too large"));
    }
    let bundle_path = dir.join(BUNDLE);
    if bundle_path.exists() && !overwrite {
        return Err(PackageError::file(
            &label,
            BUNDLE,
            "already exists (the package is signed; --overwrite replaces the signature)",
        ));
    }
    let yaml = std::fs::read(&yaml_path).map_err(|e| PackageError::io(&yaml_path, e))?;
    let signed_yaml = mark_signed(&label, &yaml)?;
    let bundle = ferry_trust::bundle::sign_message(key, &signed_yaml);
    ferry_store::file::write_atomic(&yaml_path, &signed_yaml)?;
    ferry_store::file::write_atomic(&bundle_path, &bundle)?;
    let legacy = dir.join(LEGACY);
    let removed_legacy = match std::fs::remove_file(&legacy) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(PackageError::io(&legacy, e)),
    };
    Ok(Signed {
        package: label,
        key: key.public_key().describe(),
        removed_legacy,
    })
}

/// `zarf.yaml` with the build data a bundle signature needs, every document edited, everything else kept.
pub fn mark_signed(label: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let bad = |why: String| PackageError::file(label, ZARF_YAML, why);
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_slice(bytes) {
        let mut value: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let Some(map) = value.as_mapping_mut() else {
            continue;
        };
        let beta = map.get("apiVersion").and_then(Value::as_str) == Some(V1BETA1);
        let build = crate::partial::section_mut(map, "build");
        build.insert("signed".into(), true.into());
        push_once(build, "provenanceFiles", Value::from(BUNDLE));
        if !beta {
            let mut req = serde_yaml::Mapping::new();
            req.insert("version".into(), BUNDLE_VERSION.into());
            req.insert("reason".into(), BUNDLE_REASON.into());
            push_once(build, "versionRequirements", Value::Mapping(req));
        }
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml::to_string(&value).map_err(|e| bad(format!("cannot be written: {e}")))?,
        );
    }
    if out.is_empty() {
        return Err(bad("no definition in it".into()));
    }
    Ok(out.into_bytes())
}

fn push_once(map: &mut serde_yaml::Mapping, key: &str, item: Value) {
    let entry = map
        .entry(key.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !entry.is_sequence() {
        *entry = Value::Sequence(Vec::new());
    }
    let list = entry.as_sequence_mut().expect("a sequence");
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_data_is_added_once_and_the_rest_kept() {
        let yaml = "kind: ZarfPackageConfig\nmetadata:\n  name: app\n  aggregateChecksum: abc\nbuild:\n  signed: false\n  provenanceFiles: [extra.json]\ncomponents:\n- name: one\n";
        let once = mark_signed("p", yaml.as_bytes()).unwrap();
        let twice = mark_signed("p", &once).unwrap();
        assert_eq!(once, twice);
        let d = crate::definition::Definition::parse("p", &once).unwrap();
        assert_eq!(d.build.signed, Some(true));
        assert_eq!(d.build.provenance_files, ["extra.json", BUNDLE]);
        let v: Value = serde_yaml::from_slice(&once).unwrap();
        assert_eq!(v["metadata"]["aggregateChecksum"], "abc");
        assert_eq!(
            v["build"]["versionRequirements"][0]["version"],
            BUNDLE_VERSION
        );
        assert_eq!(v["components"][0]["name"], "one");
    }
}
