//! A package's `zarf.yaml`: the few fields ferry acts on, read leniently (a number where a string is expected
//! is taken as its text), and the whole document kept for the OCI config.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::error::{PackageError, Result};

/// The largest `zarf.yaml` ferry reads; real ones are a few KiB, big ones a few hundred.
pub const MAX_ZARF_YAML: u64 = 16 << 20;

/// The parsed package definition.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The first YAML document, as written (key order kept).
    pub raw: Value,
    pub kind: String,
    pub metadata: Metadata,
    pub build: Build,
    pub components: Vec<Component>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub description: String,
    pub version: String,
    pub url: String,
    pub authors: String,
    pub documentation: String,
    pub source: String,
    pub vendor: String,
    pub architecture: String,
    pub aggregate_checksum: String,
    pub uncompressed: bool,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Build {
    pub architecture: String,
    pub timestamp: String,
    pub flavor: String,
    /// The Zarf (or ferry) version that built the package.
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub description: String,
    pub required: Option<bool>,
    /// `images`, then the images of `imageArchives`, in order, each once.
    pub images: Vec<String>,
}

impl Definition {
    /// Parse `bytes` (the `zarf.yaml` of `package`); errors name both.
    pub fn parse(package: &str, bytes: &[u8]) -> Result<Definition> {
        let bad = |why: String| PackageError::file(package, crate::ZARF_YAML, why);
        if bytes.len() as u64 > MAX_ZARF_YAML {
            return Err(bad(format!(
                "{} bytes, more than the {MAX_ZARF_YAML}-byte limit",
                bytes.len()
            )));
        }
        // Zarf reads the first document; later ones (if any) are not the package.
        let first = serde_yaml::Deserializer::from_slice(bytes)
            .next()
            .ok_or_else(|| bad("empty document".into()))?;
        let raw: Value = serde::Deserialize::deserialize(first)
            .map_err(|e| bad(format!("not valid YAML: {e}")))?;
        if !raw.is_mapping() {
            return Err(bad(
                "not a Zarf package definition (expected a mapping)".into()
            ));
        }
        let s = |path: &[&str]| text(get(&raw, path));
        let metadata = Metadata {
            name: s(&["metadata", "name"]),
            description: s(&["metadata", "description"]),
            version: s(&["metadata", "version"]),
            url: s(&["metadata", "url"]),
            authors: s(&["metadata", "authors"]),
            documentation: s(&["metadata", "documentation"]),
            source: s(&["metadata", "source"]),
            vendor: s(&["metadata", "vendor"]),
            architecture: s(&["metadata", "architecture"]),
            aggregate_checksum: s(&["metadata", "aggregateChecksum"]),
            uncompressed: get(&raw, &["metadata", "uncompressed"]).and_then(Value::as_bool)
                == Some(true),
            annotations: match get(&raw, &["metadata", "annotations"]) {
                Some(Value::Mapping(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some((text(Some(k)), scalar(v)?)))
                    .collect(),
                _ => BTreeMap::new(),
            },
        };
        let build = Build {
            architecture: s(&["build", "architecture"]),
            timestamp: s(&["build", "timestamp"]),
            flavor: s(&["build", "flavor"]),
            version: s(&["build", "version"]),
        };
        let mut components = Vec::new();
        if let Some(Value::Sequence(list)) = get(&raw, &["components"]) {
            for c in list {
                let mut images: Vec<String> = Vec::new();
                let mut add = |v: Option<&Value>| {
                    if let Some(Value::Sequence(seq)) = v {
                        for i in seq.iter().filter_map(scalar) {
                            if !images.contains(&i) {
                                images.push(i);
                            }
                        }
                    }
                };
                add(get(c, &["images"]));
                if let Some(Value::Sequence(archives)) = get(c, &["imageArchives"]) {
                    for a in archives {
                        add(get(a, &["images"]));
                    }
                }
                components.push(Component {
                    name: text(get(c, &["name"])),
                    description: text(get(c, &["description"])),
                    required: get(c, &["required"]).and_then(Value::as_bool),
                    images,
                });
            }
        }
        Ok(Definition {
            kind: s(&["kind"]),
            raw,
            metadata,
            build,
            components,
        })
    }

    /// The package's architecture: `build.architecture`, else `metadata.architecture`.
    pub fn architecture(&self) -> &str {
        if self.build.architecture.is_empty() {
            &self.metadata.architecture
        } else {
            &self.build.architecture
        }
    }

    /// The tag Zarf publishes under: `<version>[-<flavor>]`.
    pub fn tag(&self) -> Option<String> {
        if self.metadata.version.is_empty() {
            return None;
        }
        Some(if self.build.flavor.is_empty() {
            self.metadata.version.clone()
        } else {
            format!("{}-{}", self.metadata.version, self.build.flavor)
        })
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The OCI config Zarf publishes: the package definition as Go's `encoding/json` writes it. Zarf
    /// marshals its Go struct; the `zarf.yaml` it wrote came from the same struct and tags, so the document's
    /// own key order and omissions give the same bytes.
    pub fn config_json(&self) -> Result<Vec<u8>> {
        ferry_oci::gojson::to_vec(&self.raw).map_err(|e| {
            PackageError::file(
                &self.metadata.name,
                crate::ZARF_YAML,
                format!("cannot be written as JSON: {e}"),
            )
        })
    }

    /// The manifest annotations Zarf publishes: title and description always, url, authors, documentation,
    /// source and vendor when set, `metadata.annotations` over those, and `created` from the build timestamp
    /// (RFC 3339, UTC; the zero time when absent or unreadable, as Zarf does).
    pub fn manifest_annotations(&self) -> BTreeMap<String, String> {
        let m = &self.metadata;
        let mut a = BTreeMap::new();
        a.insert(ANNOTATION_TITLE.to_string(), m.name.clone());
        a.insert(ANNOTATION_DESCRIPTION.to_string(), m.description.clone());
        for (key, value) in [
            ("org.opencontainers.image.url", &m.url),
            ("org.opencontainers.image.authors", &m.authors),
            ("org.opencontainers.image.documentation", &m.documentation),
            ("org.opencontainers.image.source", &m.source),
            ("org.opencontainers.image.vendor", &m.vendor),
        ] {
            if !value.is_empty() {
                a.insert(key.to_string(), value.clone());
            }
        }
        a.extend(m.annotations.clone());
        a.insert(
            ANNOTATION_CREATED.to_string(),
            rfc1123z_to_rfc3339(&self.build.timestamp).unwrap_or_else(|| ZERO_TIME.to_string()),
        );
        a
    }
}

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Go's zero `time.Time` in RFC 3339.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_mapping()?.get(*key)?;
    }
    Some(cur)
}

/// A scalar as text (`1.0` written unquoted is still the version "1.0"); anything else is absent.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> String {
    v.and_then(scalar).unwrap_or_default()
}

/// `Mon, 02 Jan 2006 15:04:05 -0700` (Go's RFC1123Z, Zarf's build timestamp) → `2006-01-02T22:04:05Z`.
pub fn rfc1123z_to_rfc3339(ts: &str) -> Option<String> {
    ferry_oci::date::parse_rfc1123(ts).map(ferry_oci::date::rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "kind: ZarfPackageConfig
metadata:
  name: demo
  description: A <demo> & more
  version: 1.0
  url: https://example.com
  aggregateChecksum: abc
  annotations:
    org.opencontainers.image.vendor: Acme
    custom: x
build:
  architecture: amd64
  timestamp: Tue, 02 Jan 2024 15:04:05 -0700
  flavor: upstream
components:
- name: web
  required: true
  images:
  - nginx:1.25
  - ghcr.io/x/y:1
  imageArchives:
  - path: a.tar
    images: [nginx:1.25, busybox]
- name: tools
";

    #[test]
    fn reads_fields_leniently() {
        let d = Definition::parse("pkg", YAML.as_bytes()).unwrap();
        assert_eq!(d.kind, "ZarfPackageConfig");
        assert_eq!(d.metadata.name, "demo");
        assert_eq!(
            d.metadata.version, "1.0",
            "an unquoted number is still the version"
        );
        assert_eq!(d.architecture(), "amd64");
        assert_eq!(d.tag().as_deref(), Some("1.0-upstream"));
        assert_eq!(d.components.len(), 2);
        assert_eq!(d.components[0].required, Some(true));
        assert_eq!(
            d.components[0].images,
            vec!["nginx:1.25", "ghcr.io/x/y:1", "busybox"]
        );
        assert!(d.components[1].images.is_empty());
        let err = Definition::parse("pkg.tar.zst", b"- a\n- b\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pkg.tar.zst") && err.contains("zarf.yaml"),
            "{err}"
        );
    }

    #[test]
    fn config_keeps_document_order_and_go_escaping() {
        let d = Definition::parse("pkg", YAML.as_bytes()).unwrap();
        let json = String::from_utf8(d.config_json().unwrap()).unwrap();
        assert!(
            json.starts_with(r#"{"kind":"ZarfPackageConfig","metadata":{"name":"demo","description":"A \u003cdemo\u003e \u0026 more","#),
            "{json}"
        );
        assert!(json.ends_with(r#"{"name":"tools"}]}"#), "{json}");
    }

    #[test]
    fn annotations_as_zarf_publishes_them() {
        let d = Definition::parse("pkg", YAML.as_bytes()).unwrap();
        let a = d.manifest_annotations();
        assert_eq!(a[ANNOTATION_TITLE], "demo");
        assert_eq!(a[ANNOTATION_DESCRIPTION], "A <demo> & more");
        assert_eq!(a["org.opencontainers.image.url"], "https://example.com");
        assert_eq!(
            a["org.opencontainers.image.vendor"], "Acme",
            "metadata.annotations win"
        );
        assert_eq!(a["custom"], "x");
        assert_eq!(a[ANNOTATION_CREATED], "2024-01-02T22:04:05Z");
        assert!(!a.contains_key("org.opencontainers.image.source"));
        let bare =
            Definition::parse("pkg", b"kind: ZarfPackageConfig\nmetadata:\n  name: x\n").unwrap();
        let a = bare.manifest_annotations();
        assert_eq!(a[ANNOTATION_DESCRIPTION], "", "description is always there");
        assert_eq!(a[ANNOTATION_CREATED], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn rfc1123z() {
        assert_eq!(
            rfc1123z_to_rfc3339("Mon, 01 Jan 2024 00:30:00 +0100").as_deref(),
            Some("2023-12-31T23:30:00Z")
        );
        assert_eq!(
            rfc1123z_to_rfc3339("Thu, 29 Feb 2024 23:59:59 -0000").as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(rfc1123z_to_rfc3339("2024-01-01T00:00:00Z"), None);
        assert_eq!(rfc1123z_to_rfc3339(""), None);
    }
}
