//! One typed model of `zarf.yaml`, used by every caller: `ferry pull -f`, package inspect/verify/publish/pull.
//!
//! A definition has a v1alpha1 document, a v1beta1 document, or both (Zarf writes a v1beta1-authored package
//! as v1alpha1, `---`, v1beta1). As in Zarf (`internal/pkgcfg`), the highest known version is the one read
//! for components and images; documents of unknown versions are skipped, and an absent `apiVersion` is
//! v1alpha1. The v1alpha1 document, shaped as Zarf's Go structs, is what Zarf publishes as the OCI config.

pub mod text;
pub mod v1alpha1;
pub mod v1beta1;

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::error::{PackageError, Result};
pub use text::Text;

/// The largest `zarf.yaml` ferry reads; real ones are a few KiB, big ones a few hundred.
pub const MAX_ZARF_YAML: u64 = 16 << 20;
/// The `apiVersion` of the v1alpha1 definition (every package Zarf builds carries a document of it).
pub const V1ALPHA1: &str = "zarf.dev/v1alpha1";
/// The `apiVersion` of the v1beta1 definition.
pub const V1BETA1: &str = "zarf.dev/v1beta1";

/// The parsed package definition.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The v1alpha1 view Zarf publishes: the v1alpha1 document as Zarf reads it (migrated when it is the
    /// document Zarf decodes, normalized as Zarf's conversions normalize it).
    pub package: v1alpha1::ZarfPackage,
    /// The v1beta1 document, when there is one (it is then the one read for components).
    pub v1beta1: Option<v1beta1::Package>,
    /// Whether `package` came from a v1alpha1 document (a v1beta1-only file has only a partial view).
    has_v1alpha1: bool,
    /// `ZarfPackageConfig` or `ZarfInitConfig`.
    pub kind: String,
    /// The package's metadata, from the v1alpha1 view.
    pub metadata: Metadata,
    /// What the build recorded, from the v1alpha1 view.
    pub build: Build,
    /// The components of the document Zarf reads, in order.
    pub components: Vec<Component>,
}

/// A package's metadata as ferry uses it, the same whichever document it was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The package name.
    pub name: String,
    /// Free-text description (the published `org.opencontainers.image.description`).
    pub description: String,
    /// The author's version string.
    pub version: String,
    /// A link to information about the package.
    pub url: String,
    /// The authors.
    pub authors: String,
    /// A link to the package's documentation.
    pub documentation: String,
    /// A link to the package's source.
    pub source: String,
    /// Who distributes the package.
    pub vendor: String,
    /// The cluster architecture the package is for (empty in a source definition that does not say).
    pub architecture: String,
    /// The sha256 of `checksums.txt` (v1beta1 keeps it under `build`, which wins when set).
    pub aggregate_checksum: String,
    /// Whether the package tarball is written without compression.
    pub uncompressed: bool,
    /// Free-form annotations, published over the standard ones.
    pub annotations: BTreeMap<String, String>,
}

/// What a package's build recorded, as ferry uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Build {
    /// The architecture it was built for.
    pub architecture: String,
    /// When it was built (Go's RFC 1123 with numeric zone, as Zarf writes it).
    pub timestamp: String,
    /// The `--flavor` it was built with (empty: none); part of the published tag.
    pub flavor: String,
    /// The Zarf (or ferry) version that built the package.
    pub version: String,
    /// Whether it was signed (`None` when not recorded).
    pub signed: Option<bool>,
    /// Files added after `checksums.txt` was written (signatures), which it does not list.
    pub provenance_files: Vec<String>,
}

/// A component as ferry uses it: its name, whether it is required, what selects it and its images, the same
/// whichever document it was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Component {
    /// The component's name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// v1alpha1 `required: true`; v1beta1 not `optional`.
    pub required: bool,
    /// `only.flavor` (v1beta1 `selector.flavor`): included only when the package is built with it.
    pub only_flavor: String,
    /// `only.cluster.architecture` (v1beta1 `selector.architecture`).
    pub only_architecture: String,
    /// Image names: `images`, then the images of `imageArchives`, in order, each once.
    pub images: Vec<String>,
    /// The same images with where Zarf takes each from.
    pub sources: Vec<ImageSource>,
}

/// An image of a component and where `zarf package create` takes it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSource {
    /// The image reference as written.
    pub name: String,
    /// Where `zarf package create` takes it from.
    pub origin: Origin,
}

/// Where an image of a component comes from at create time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A registry (the default).
    Registry,
    /// v1beta1 `source: daemon`: the local Docker Engine.
    Daemon,
    /// In the OCI-layout tarball at this path (relative to the `zarf.yaml`).
    Archive(String),
}

impl Component {
    /// Zarf's create-time filter (`compatibleComponent`): no architecture or this one, no flavor or this one.
    pub fn is_compatible(&self, architecture: &str, flavor: &str) -> bool {
        (self.only_architecture.is_empty() || self.only_architecture == architecture)
            && (self.only_flavor.is_empty() || self.only_flavor == flavor)
    }
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
        let mut alpha: Option<Value> = None;
        let mut beta: Option<Value> = None;
        for (i, doc) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
            let mut value: Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| bad(format!("not valid YAML: {e}")))?;
            if value.is_null() {
                continue; // an empty document, as after a trailing `---`
            }
            if !value.is_mapping() {
                return Err(bad(format!(
                    "document {} is not a Zarf package definition (expected a mapping)",
                    i + 1
                )));
            }
            value
                .apply_merge()
                .map_err(|e| bad(format!("document {}: {e}", i + 1)))?;
            strip_nulls(&mut value);
            let version = match value.get("apiVersion") {
                None => V1ALPHA1.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(bad(format!("document {}: apiVersion is not text", i + 1))),
            };
            let slot = match version.as_str() {
                V1ALPHA1 => &mut alpha,
                V1BETA1 => &mut beta,
                other => {
                    tracing::debug!("{package}: skipping a {other:?} document of zarf.yaml");
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(bad(format!("has two {version} documents")));
            }
        }
        let decode_error = |version: &str, e: serde_yaml::Error| {
            bad(format!(
                "its {version} document is not a Zarf package definition: {e}"
            ))
        };
        let v1beta1: Option<v1beta1::Package> = beta
            .map(serde_yaml::from_value)
            .transpose()
            .map_err(|e| decode_error(V1BETA1, e))?;
        let has_v1alpha1 = alpha.is_some();
        let package =
            match alpha {
                Some(v) => {
                    let mut p: v1alpha1::ZarfPackage =
                        serde_yaml::from_value(v).map_err(|e| decode_error(V1ALPHA1, e))?;
                    // Zarf migrates only the document it decodes; with a v1beta1 one beside it, that is not this.
                    if v1beta1.is_none() {
                        p.migrate();
                    }
                    p.round_trip();
                    p
                }
                None => match &v1beta1 {
                    Some(b) => alpha_view(b),
                    None => return Err(bad(
                        "has no Zarf package definition (no document of a supported apiVersion)"
                            .into(),
                    )),
                },
            };
        Ok(Definition::summarize(package, v1beta1, has_v1alpha1))
    }

    fn summarize(
        package: v1alpha1::ZarfPackage,
        beta: Option<v1beta1::Package>,
        has_v1alpha1: bool,
    ) -> Definition {
        let s = |t: &Text| t.to_string();
        let m = &package.metadata;
        let b = &package.build;
        let metadata = Metadata {
            name: s(&m.name),
            description: s(&m.description),
            version: s(&m.version),
            url: s(&m.url),
            authors: s(&m.authors),
            documentation: s(&m.documentation),
            source: s(&m.source),
            vendor: s(&m.vendor),
            architecture: s(&m.architecture),
            aggregate_checksum: match &beta {
                Some(b) if !b.build.aggregate_checksum.is_empty() => s(&b.build.aggregate_checksum),
                _ => s(&m.aggregate_checksum),
            },
            uncompressed: m.uncompressed,
            annotations: m.annotations.iter().map(|(k, v)| (s(k), s(v))).collect(),
        };
        let build = Build {
            architecture: s(&b.architecture),
            timestamp: s(&b.timestamp),
            flavor: s(&b.flavor),
            version: s(&b.version),
            signed: b.signed,
            provenance_files: b.provenance_files.iter().map(s).collect(),
        };
        let components = match &beta {
            Some(beta) => beta.components.iter().map(component_v1beta1).collect(),
            None => package
                .components
                .iter()
                .flatten()
                .map(component_v1alpha1)
                .collect(),
        };
        Definition {
            kind: s(&package.kind),
            metadata,
            build,
            components,
            package,
            v1beta1: beta,
            has_v1alpha1,
        }
    }

    /// The package's architecture: `build.architecture`, else `metadata.architecture`.
    pub fn architecture(&self) -> &str {
        if self.build.architecture.is_empty() {
            &self.metadata.architecture
        } else {
            &self.build.architecture
        }
    }

    /// The architecture a publish files the package under in the tag's index: `metadata.architecture`, as
    /// Zarf's `pushToRemote` takes it (ferry falls back to `build.architecture` where Zarf would use "").
    pub fn publish_architecture(&self) -> &str {
        if self.metadata.architecture.is_empty() {
            &self.build.architecture
        } else {
            &self.metadata.architecture
        }
    }

    /// Files `checksums.txt` does not list beyond the definition, the list and the signatures: a signed
    /// package's `build.provenanceFiles` (signed: `build.signed`, else a `zarf.yaml.sig` is present), as in
    /// Zarf's `validatePackageIntegrity`.
    pub fn provenance_files(&self, has_legacy_signature: bool) -> Vec<String> {
        if self.build.signed.unwrap_or(has_legacy_signature) {
            self.build.provenance_files.clone()
        } else {
            Vec::new()
        }
    }

    /// The file name Zarf gives the package (`PackageLayout.FileName`): `zarf-package-<name>-<arch>`
    /// (`zarf-init-<arch>` for an init package), `-<version>` (or `-<base>-differential-<version>`),
    /// `-<flavor>`, then `.tar` when `metadata.uncompressed`, else `.tar.zst`. `None` without
    /// `build.architecture`, or when a part would make it a path.
    pub fn file_name(&self) -> Option<String> {
        let arch = &self.build.architecture;
        if arch.is_empty() {
            return None;
        }
        let b = &self.package.build;
        let mut name = match self.kind.as_str() {
            "ZarfInitConfig" => format!("zarf-init-{arch}"),
            "ZarfPackageConfig" => format!("zarf-package-{}-{arch}", self.metadata.name),
            other => format!("zarf-{}-{arch}", other.to_lowercase()),
        };
        if b.differential {
            name = format!(
                "{name}-{}-differential-{}",
                b.differential_package_version, self.metadata.version
            );
        } else if !self.metadata.version.is_empty() {
            name = format!("{name}-{}", self.metadata.version);
        }
        if !self.build.flavor.is_empty() {
            name = format!("{name}-{}", self.build.flavor);
        }
        if name.contains(['/', '\\']) || name == ".." {
            return None;
        }
        let ext = if self.metadata.uncompressed {
            "tar"
        } else {
            "tar.zst"
        };
        Some(format!("{name}.{ext}"))
    }

    /// The architecture `zarf package create` builds for (`config.GetArch`): `-a` when given, else
    /// `metadata.architecture`, else this machine's.
    pub fn create_architecture(&self, cli: Option<&str>) -> String {
        match cli.filter(|a| !a.is_empty()) {
            Some(a) => ferry_oci::platform::normalize_arch(a).to_string(),
            None if !self.metadata.architecture.is_empty() => self.metadata.architecture.clone(),
            None => ferry_oci::PlatformSpec::host().architecture,
        }
    }

    /// The components `zarf package create` keeps for `architecture` and `flavor`.
    pub fn components_for<'a>(
        &'a self,
        architecture: &'a str,
        flavor: &'a str,
    ) -> impl Iterator<Item = &'a Component> + 'a {
        self.components
            .iter()
            .filter(move |c| c.is_compatible(architecture, flavor))
    }

    /// The images of those components, each name once (the first source wins), in order.
    pub fn images_for(&self, architecture: &str, flavor: &str) -> Vec<ImageSource> {
        let mut out: Vec<ImageSource> = Vec::new();
        for c in self.components_for(architecture, flavor) {
            for s in &c.sources {
                if !out.iter().any(|o| o.name == s.name) {
                    out.push(s.clone());
                }
            }
        }
        out
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

    /// The component named `name`, if the package has one.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The OCI config Zarf publishes: `json.Marshal` of the v1alpha1 view (see [`v1alpha1`]).
    pub fn config_json(&self) -> Result<Vec<u8>> {
        let bad = |why: String| PackageError::file(&self.metadata.name, crate::ZARF_YAML, why);
        if !self.has_v1alpha1 {
            return Err(bad(
                "has only a v1beta1 document; a package Zarf built carries a v1alpha1 one too, which its published config is made from".into(),
            ));
        }
        ferry_oci::gojson::to_vec(&self.package)
            .map_err(|e| bad(format!("cannot be written as JSON: {e}")))
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

/// Go's YAML decoding leaves a field at its zero value for `null`, as if it were absent.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Sequence(s) => s.iter_mut().for_each(strip_nulls),
        Value::Tagged(t) => strip_nulls(&mut t.value),
        _ => {}
    }
}

impl Component {
    /// A component whose images are `all` in order, each name once (the first source wins).
    fn new(
        name: &Text,
        description: &Text,
        required: bool,
        only: (&Text, &Text),
        all: impl IntoIterator<Item = ImageSource>,
    ) -> Component {
        let mut sources: Vec<ImageSource> = Vec::new();
        for s in all {
            if !sources.iter().any(|o| o.name == s.name) {
                sources.push(s);
            }
        }
        Component {
            name: name.to_string(),
            description: description.to_string(),
            required,
            only_flavor: only.0.to_string(),
            only_architecture: only.1.to_string(),
            images: sources.iter().map(|s| s.name.clone()).collect(),
            sources,
        }
    }
}

fn source(name: &Text, origin: Origin) -> ImageSource {
    ImageSource {
        name: name.to_string(),
        origin,
    }
}

fn component_v1alpha1(c: &v1alpha1::ZarfComponent) -> Component {
    let archived = c.image_archives.iter().flat_map(|a| {
        a.images
            .iter()
            .flatten()
            .map(|i| source(i, Origin::Archive(a.path.to_string())))
    });
    Component::new(
        &c.name,
        &c.description,
        c.required == Some(true),
        (&c.only.flavor, &c.only.cluster.architecture),
        c.images
            .iter()
            .map(|i| source(i, Origin::Registry))
            .chain(archived),
    )
}

fn component_v1beta1(c: &v1beta1::Component) -> Component {
    let pulled = c.images.iter().map(|i| {
        let origin = match i.source.as_str() {
            "daemon" => Origin::Daemon,
            _ => Origin::Registry,
        };
        source(&i.name, origin)
    });
    let archived = c.image_archives.iter().flat_map(|a| {
        a.images
            .iter()
            .map(|i| source(i, Origin::Archive(a.path.to_string())))
    });
    Component::new(
        &c.name,
        &c.description,
        !c.optional,
        (&c.selector.flavor, &c.selector.architecture),
        pulled.chain(archived),
    )
}

/// The v1alpha1 fields a v1beta1-only file gives (for names and summaries; not a publishable config).
fn alpha_view(b: &v1beta1::Package) -> v1alpha1::ZarfPackage {
    let mut p = v1alpha1::ZarfPackage {
        api_version: V1ALPHA1.into(),
        kind: if b.kind.is_empty() {
            "ZarfPackageConfig".into()
        } else {
            b.kind.clone()
        },
        ..Default::default()
    };
    p.metadata.name = b.metadata.name.clone();
    p.metadata.description = b.metadata.description.clone();
    p.metadata.version = b.metadata.version.clone();
    p.metadata.architecture = b.metadata.architecture.clone();
    p.metadata.uncompressed = b.metadata.uncompressed;
    p.metadata.aggregate_checksum = b.build.aggregate_checksum.clone();
    p.build.architecture = b.build.architecture.clone();
    p.build.timestamp = b.build.timestamp.clone();
    p.build.version = b.build.version.clone();
    p.build.flavor = b.build.flavor.clone();
    p.build.signed = b.build.signed;
    p.build.provenance_files = b.build.provenance_files.clone();
    p
}

/// The published manifest's title annotation: the package name.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The published manifest's description annotation: always written, empty when there is none.
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
/// The published manifest's creation time: the build timestamp in RFC 3339 (UTC).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Go's zero `time.Time` in RFC 3339.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

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
        assert!(d.components[0].required && !d.components[1].required);
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

    /// A v1beta1-authored package as Zarf writes it: v1alpha1, `---`, v1beta1.
    const TWO_DOCS: &str = "apiVersion: zarf.dev/v1alpha1
kind: ZarfPackageConfig
metadata:
  name: two
  architecture: amd64
components:
- name: base
  required: true
  images: [only-in-alpha:1]
---
apiVersion: zarf.dev/v1beta1
kind: ZarfPackageConfig
metadata:
  name: two
  architecture: amd64
build:
  aggregateChecksum: beta-sum
components:
- name: base
  images:
  - name: base:1
  - name: local/app:dev
    source: daemon
- name: up
  optional: true
  selector: {flavor: upstream}
  images: [{name: up:1}]
- name: ib
  selector: {flavor: ironbank}
  images: [{name: ib:1, source: registry}]
- name: arm
  selector: {architecture: arm64}
  images: [{name: arm:1}]
- name: archived
  optional: true
  imageArchives:
  - path: archives/app.tar
    images: [x:1, base:1]
";

    #[test]
    fn v1beta1_document_is_the_one_read_with_flavors_and_architectures() {
        let d = Definition::parse("two", TWO_DOCS.as_bytes()).unwrap();
        assert!(d.v1beta1.is_some());
        assert_eq!(d.metadata.aggregate_checksum, "beta-sum");
        let names = |arch: &str, flavor: &str| -> Vec<String> {
            d.images_for(arch, flavor)
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(
            names("amd64", "upstream"),
            vec!["base:1", "local/app:dev", "up:1", "x:1"]
        );
        assert_eq!(
            names("arm64", "ironbank"),
            vec!["base:1", "local/app:dev", "ib:1", "arm:1", "x:1"]
        );
        assert_eq!(names("amd64", ""), vec!["base:1", "local/app:dev", "x:1"]);
        let base = d.component("base").unwrap();
        assert!(base.required && !d.component("up").unwrap().required);
        assert_eq!(base.sources[1].origin, Origin::Daemon);
        assert_eq!(
            d.component("archived").unwrap().sources[0].origin,
            Origin::Archive("archives/app.tar".into())
        );
        assert_eq!(d.create_architecture(None), "amd64");
        assert_eq!(d.create_architecture(Some("aarch64")), "arm64");

        // A v1alpha1 file: `only.flavor` and `only.cluster.architecture`.
        let alpha = "components:
- name: a
  only: {flavor: upstream, cluster: {architecture: arm64}}
  images: [a:1]
- name: b
  images: [b:1]
";
        let d = Definition::parse("one", alpha.as_bytes()).unwrap();
        let names: Vec<String> = d
            .images_for("arm64", "upstream")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["a:1", "b:1"]);
        assert_eq!(d.images_for("amd64", "upstream").len(), 1);
    }

    #[test]
    fn documents_are_checked() {
        let err = |y: &str| {
            Definition::parse("p", y.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err("apiVersion: zarf.dev/v9\nkind: X\n").contains("no document of a supported"));
        assert!(
            err("kind: A\n---\napiVersion: zarf.dev/v1alpha1\n").contains("two zarf.dev/v1alpha1")
        );
        assert!(err("components: 3\n").contains("v1alpha1 document"));
        // Unknown versions beside a known one are skipped; empty documents too.
        let d = Definition::parse(
            "p",
            b"---\nmetadata: {name: a}\n---\napiVersion: zarf.dev/v2\nx: 1\n---\n",
        )
        .unwrap();
        assert_eq!(d.metadata.name, "a");
    }

    #[test]
    fn file_names_and_architectures_as_zarf_gives_them() {
        let d = Definition::parse("pkg", YAML.as_bytes()).unwrap();
        assert_eq!(
            d.file_name().as_deref(),
            Some("zarf-package-demo-amd64-1.0-upstream.tar.zst")
        );
        let init = "kind: ZarfInitConfig
metadata: {name: init, version: v0.84.0, uncompressed: true, architecture: arm64}
build: {architecture: amd64, signed: true, provenanceFiles: [zarf.bundle.sig, extra.json]}
components: []
";
        let d = Definition::parse("init", init.as_bytes()).unwrap();
        assert_eq!(
            d.file_name().as_deref(),
            Some("zarf-init-amd64-v0.84.0.tar")
        );
        assert_eq!(
            d.publish_architecture(),
            "arm64",
            "metadata.architecture, as Zarf publishes"
        );
        assert_eq!(
            d.provenance_files(false),
            vec!["zarf.bundle.sig", "extra.json"]
        );
        let unsigned =
            Definition::parse("u", b"metadata: {name: u}\nbuild: {provenanceFiles: [x]}\n")
                .unwrap();
        assert!(unsigned.provenance_files(false).is_empty());
        assert_eq!(
            unsigned.provenance_files(true),
            vec!["x"],
            "a legacy signature means signed"
        );
        assert_eq!(unsigned.file_name(), None, "no build.architecture");
    }
}
