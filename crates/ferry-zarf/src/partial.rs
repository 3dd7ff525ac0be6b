//! A package pulled with some components made whole again (issue 13 item 2): its definition keeps only
//! those components, `images/index.json` only the images whose manifests it holds, `checksums.txt` lists
//! exactly its files and `aggregateChecksum` is that list's digest — so Zarf's integrity check (not partial),
//! `ferry package verify` and `ferry push` accept it. A signature over the original `zarf.yaml` no longer
//! matches and is removed (`build.signed: false`), with a warning.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use ferry_oci::{Descriptor, Digest};
use serde_yaml::Value;

use crate::definition::{MAX_ZARF_YAML, V1BETA1};
use crate::error::{PackageError, Result};
use crate::{CHECKSUMS, IMAGES_INDEX, SIGNATURES, ZARF_YAML};

/// Rewrite the package in `root` (files by path with their digests in `files`, updated here) to hold the
/// components `keep`. Returns what was dropped, for warnings.
pub fn make_whole(
    root: &Path,
    label: &str,
    keep: &[String],
    files: &mut BTreeMap<String, Digest>,
) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    if files.contains_key(IMAGES_INDEX) {
        let path = root.join(IMAGES_INDEX);
        let bytes = std::fs::read(&path).map_err(|e| PackageError::io(&path, e))?;
        let present: HashSet<String> = files.values().map(|d| d.to_string()).collect();
        let trimmed = trim_index(label, &bytes, |d| present.contains(&d.to_string()))?;
        write(root, IMAGES_INDEX, &trimmed, files)?;
    }
    let mut signed = false;
    for sig in SIGNATURES {
        if files.remove(sig).is_some() {
            let path = root.join(sig);
            std::fs::remove_file(&path).map_err(|e| PackageError::io(&path, e))?;
            dropped.push(sig.to_string());
            signed = true;
        }
    }
    let checksums = crate::checksums::render(files);
    write(root, CHECKSUMS, checksums.as_bytes(), files)?;
    let aggregate = Digest::of(checksums.as_bytes()).hex().to_string();
    let path = root.join(ZARF_YAML);
    let bytes = std::fs::read(&path).map_err(|e| PackageError::io(&path, e))?;
    let definition = trim_definition(label, &bytes, keep, &aggregate, signed)?;
    write(root, ZARF_YAML, &definition, files)?;
    Ok(dropped)
}

fn write(root: &Path, rel: &str, bytes: &[u8], files: &mut BTreeMap<String, Digest>) -> Result<()> {
    ferry_store::file::write_atomic(&root.join(rel), bytes)?;
    files.insert(rel.to_string(), Digest::of(bytes));
    Ok(())
}

/// `zarf.yaml` with only the components named in `keep` in every document, the new aggregate checksum
/// (v1alpha1 `metadata.aggregateChecksum`, v1beta1 `build.aggregateChecksum`), and, when `unsign`,
/// `build.signed: false`. Everything else is kept as written.
pub fn trim_definition(
    label: &str,
    bytes: &[u8],
    keep: &[String],
    aggregate: &str,
    unsign: bool,
) -> Result<Vec<u8>> {
    let bad = |why: String| PackageError::file(label, ZARF_YAML, why);
    if bytes.len() as u64 > MAX_ZARF_YAML {
        return Err(bad(format!("more than the {MAX_ZARF_YAML}-byte limit")));
    }
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_slice(bytes) {
        let mut value: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| bad(format!("not valid YAML: {e}")))?;
        let Some(map) = value.as_mapping_mut() else {
            continue; // empty documents
        };
        let beta = map.get("apiVersion").and_then(Value::as_str) == Some(V1BETA1);
        if let Some(Value::Sequence(components)) = map.get_mut("components") {
            components.retain(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| keep.iter().any(|k| k == n))
            });
        }
        let (section, key) = if beta {
            ("build", "aggregateChecksum")
        } else {
            ("metadata", "aggregateChecksum")
        };
        section_mut(map, section).insert(key.into(), aggregate.into());
        if unsign {
            section_mut(map, "build").insert("signed".into(), false.into());
        }
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml::to_string(&value).map_err(|e| bad(format!("cannot be written: {e}")))?,
        );
    }
    Ok(out.into_bytes())
}

pub(crate) fn section_mut<'a>(
    map: &'a mut serde_yaml::Mapping,
    key: &str,
) -> &'a mut serde_yaml::Mapping {
    let entry = map
        .entry(key.into())
        .or_insert_with(|| Value::Mapping(Default::default()));
    if !entry.is_mapping() {
        *entry = Value::Mapping(Default::default());
    }
    entry.as_mapping_mut().expect("a mapping")
}

/// `index.json` with only the entries `keep` accepts, written as Go writes an OCI index.
pub fn trim_index(label: &str, bytes: &[u8], keep: impl Fn(&Digest) -> bool) -> Result<Vec<u8>> {
    let mut index: crate::publish::Index = serde_json::from_slice(bytes)
        .map_err(|e| PackageError::file(label, IMAGES_INDEX, format!("invalid: {e}")))?;
    index.manifests.retain(|d: &Descriptor| keep(&d.digest));
    Ok(ferry_oci::gojson::to_vec(&index).expect("an index always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_keeps_chosen_components_in_both_documents() {
        let yaml = "apiVersion: zarf.dev/v1alpha1
kind: ZarfPackageConfig
metadata:
  name: p
  aggregateChecksum: old
build:
  signed: true
components:
- name: a
  required: true
- name: b
- name: c
---
apiVersion: zarf.dev/v1beta1
kind: ZarfPackageConfig
metadata:
  name: p
build:
  aggregateChecksum: old
components:
- name: a
- name: b
  optional: true
- name: c
  optional: true
";
        let keep = vec!["a".to_string(), "c".to_string()];
        let out = trim_definition("p", yaml.as_bytes(), &keep, "new", true).unwrap();
        let d = crate::Definition::parse("p", &out).unwrap();
        let names: Vec<&str> = d.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a", "c"]);
        assert_eq!(d.metadata.aggregate_checksum, "new");
        assert_eq!(d.package.metadata.aggregate_checksum.as_str(), "new");
        assert_eq!(d.build.signed, Some(false));
        let alpha: Vec<&str> = d
            .package
            .components
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(alpha, vec!["a", "c"]);
    }

    #[test]
    fn index_keeps_present_entries_in_go_form() {
        let a = Descriptor::of(ferry_oci::media_type::OCI_MANIFEST, b"a");
        let b = Descriptor::of(ferry_oci::media_type::OCI_MANIFEST, b"b");
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let out = trim_index("p", index.as_bytes(), |d| *d == b.digest).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
                serde_json::to_string(&b).unwrap()
            )
        );
    }
}
