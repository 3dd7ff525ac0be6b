//! The v1alpha1 package definition, shaped as Zarf's Go structs (`src/api/v1alpha1`, Zarf v0.84): fields in
//! struct order, `omitempty` where the Go tag has it. Serialized through [`ferry_oci::gojson`] this gives
//! the bytes of Go's `json.Marshal`, which is what Zarf publishes as the package config:
//!
//! - `omitempty` drops empty strings, `false`, `0`, empty slices and maps and nil pointers, but never a
//!   struct, so `only`, `import`, `scripts`, `actions` (with `defaults` and `shell`) and `values` always appear;
//! - a slice without `omitempty` that is nil is `null` (`components`, `imageArchives[].images`);
//! - map keys are sorted; `<`, `>`, `&` are escaped.
//!
//! Fields Zarf does not know are dropped, as its YAML decoder drops them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::text::Text;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `ZarfPackage`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfPackage {
    /// `zarf.dev/v1alpha1`, or empty (older packages do not write it).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub api_version: Text,
    /// `ZarfPackageConfig`, or `ZarfInitConfig` for an init package.
    #[serde(default)]
    pub kind: Text,
    /// Name, version and descriptive fields of the package.
    #[serde(default)]
    pub metadata: ZarfMetadata,
    /// What `zarf package create` recorded (empty in a source `zarf.yaml`).
    #[serde(default)]
    pub build: ZarfBuildData,
    /// Not `omitempty`: none is `null`.
    #[serde(default)]
    pub components: Option<Vec<ZarfComponent>>,
    /// Values fixed at create time, templated into resources and actions on deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constants: Vec<Constant>,
    /// Values set (or prompted for) at deploy time, templated into resources and actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<InteractiveVariable>,
    /// The package's values files and their schema.
    #[serde(default)]
    pub values: ZarfValues,
    /// Documentation files carried in the package, by key (`readme`, `license`) to path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub documentation: BTreeMap<Text, Text>,
}

/// `ZarfMetadata`: what identifies and describes a package.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfMetadata {
    /// The package name (lowercase letters, digits, `-`); part of its file and OCI names.
    #[serde(default)]
    pub name: Text,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    /// The author's version string; part of the package's file and OCI tag.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub version: Text,
    /// A link to information about the package.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
    /// An image URL for the package (reserved by Zarf for a UI).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub image: Text,
    /// Whether the package tarball is written without zstd compression.
    #[serde(default, skip_serializing_if = "is_false")]
    pub uncompressed: bool,
    /// The cluster architecture the package is for (`amd64`, `arm64`, `skeleton`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub architecture: Text,
    /// Deprecated: deploy without `zarf init` (YOLO mode).
    #[serde(default, skip_serializing_if = "is_false")]
    pub yolo: bool,
    /// The authors, comma-separated, with contact information.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub authors: Text,
    /// A link to the package's documentation.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub documentation: Text,
    /// A link to the package's source.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub source: Text,
    /// Who distributes the package.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub vendor: Text,
    /// The sha256 of the package's `checksums.txt`, which lists every other file's digest.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub aggregate_checksum: Text,
    /// Free-form annotations (OCI annotation keys encouraged), sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<Text, Text>,
    /// Whether a deploy may move the package to another namespace (absent: allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_namespace_override: Option<bool>,
}

/// `ZarfBuildData`: what `zarf package create` records about the build.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfBuildData {
    /// The host name of the machine that built the package.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub terminal: Text,
    /// The user who built it.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub user: Text,
    /// The architecture it was built for.
    #[serde(default)]
    pub architecture: Text,
    /// When it was built, in Go's RFC 1123 format with numeric zone.
    #[serde(default)]
    pub timestamp: Text,
    /// The Zarf version that built it.
    #[serde(default)]
    pub version: Text,
    /// The migrations applied to the definition (see [`ZarfPackage::migrate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Text>,
    /// Registry hosts replaced when images were pulled at create time, original to replacement.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_overrides: BTreeMap<Text, Text>,
    /// Whether the package is differential: it leaves out what an earlier package already carried.
    #[serde(default, skip_serializing_if = "is_false")]
    pub differential: bool,
    /// The version of the package a differential package was built against.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub differential_package_version: Text,
    /// Components left out of a differential package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differential_missing: Vec<Text>,
    /// The `--flavor` the package was built with (selects components by `only.flavor`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub flavor: Text,
    /// Whether the package was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    /// Minimum Zarf versions needed for operations on the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_requirements: Vec<VersionRequirement>,
    /// Package files added after `checksums.txt` was written (signatures), so not listed in it; the signed
    /// `zarf.yaml` vouches for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance_files: Vec<Text>,
}

/// A minimum Zarf version a package needs, and why.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct VersionRequirement {
    /// The minimum version.
    #[serde(default)]
    pub version: Text,
    /// Why it is needed.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub reason: Text,
}

/// `ZarfValues`: package-level values files for templating and Helm overrides.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfValues {
    /// Paths of the values files, relative to the definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Text>,
    /// Path of a JSON schema the values files must satisfy.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub schema: Text,
}

/// `Variable`; embedded in [`InteractiveVariable`], so its fields come first there.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// The variable's name (uppercase letters, digits, `_`), templated as `###ZARF_VAR_<name>###`.
    #[serde(default)]
    pub name: Text,
    /// Whether its value is kept out of logs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sensitive: bool,
    /// Whether a multi-line value is indented to the column where it is templated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_indent: bool,
    /// A regular expression the value must match before deploy continues.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub pattern: Text,
    /// `type`: `raw` (the default) or `file` (the value is a path whose content is used).
    #[serde(default, rename = "type", skip_serializing_if = "Text::is_empty")]
    pub kind: Text,
}

/// `InteractiveVariable`: a package variable, with how to ask the user for it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct InteractiveVariable {
    /// The variable itself; its fields are inlined before the ones below.
    #[serde(flatten)]
    pub variable: Variable,
    /// Shown when prompting for the value.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    /// The value when none is given.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub default: Text,
    /// Whether to ask the user for the value on deploy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompt: bool,
}

/// `Constant`: a value fixed when the package is created, templated as `###ZARF_CONST_<name>###`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Constant {
    /// The constant's name (uppercase letters, digits, `_`).
    #[serde(default)]
    pub name: Text,
    /// Its value.
    #[serde(default)]
    pub value: Text,
    /// Shown on create and deploy confirmations.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    /// Whether a multi-line value is indented to the column where it is templated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_indent: bool,
    /// A regular expression the value must match before the package can be created.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub pattern: Text,
}

/// `ZarfComponent`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponent {
    /// The component's name (lowercase letters, digits, `-`); `ferry package pull` selects by it.
    #[serde(default)]
    pub name: Text,
    /// Shown on deploy, saying what the component is for.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    /// The default answer when a deploy asks whether to include it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Whether it is always deployed, without asking (absent: not required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// When the component applies (OS, cluster architecture, flavor).
    #[serde(default)]
    pub only: ZarfComponentOnlyTarget,
    /// `group`, deprecated: pick one component of those sharing a group.
    #[serde(default, rename = "group", skip_serializing_if = "Text::is_empty")]
    pub deprecated_group: Text,
    /// A component of another package (by path or `oci://` URL) to take this one from.
    #[serde(default)]
    pub import: ZarfComponentImport,
    /// Kubernetes manifests and kustomizations, deployed as generated Helm charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ZarfManifest>,
    /// Helm charts to install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ZarfChart>,
    /// Deprecated: data to copy into a container in the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_injections: Vec<ZarfDataInjection>,
    /// Files or directories to place on disk on deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ZarfFile>,
    /// The image references the component carries: what ferry pulls into the package's `images/` and pushes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Text>,
    /// Image tarballs (OCI layouts) to take images from instead of a registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_archives: Vec<ImageArchive>,
    /// Git repositories to carry (`url[@ref]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<Text>,
    /// `scripts`, deprecated: commands before and after deploy, migrated into `actions`.
    #[serde(default, rename = "scripts")]
    pub deprecated_scripts: DeprecatedScripts,
    /// Commands and waits to run on create, deploy and remove.
    #[serde(default)]
    pub actions: ZarfComponentActions,
    /// Resources whose readiness is checked after deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<NamespacedObjectKindReference>,
    /// Groups of sensitive Zarf state the component's templates may read (`registryCredentials`,
    /// `gitCredentials`, `agentCerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_access: Vec<Text>,
}

/// `ImageArchive`: an image tarball a component takes images from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ImageArchive {
    /// Path of the file holding an OCI layout.
    #[serde(default)]
    pub path: Text,
    /// Not `omitempty`: absent is `null`, `[]` stays `[]`.
    #[serde(default)]
    pub images: Option<Vec<Text>>,
}

/// `NamespacedObjectKindReference`: one Kubernetes resource, for health checks.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectKindReference {
    /// The resource's API version.
    #[serde(default)]
    pub api_version: Text,
    /// Its kind.
    #[serde(default)]
    pub kind: Text,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Text,
    /// Its name.
    #[serde(default)]
    pub name: Text,
}

/// `ZarfComponentOnlyTarget`: conditions under which a component is included.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentOnlyTarget {
    /// `localOS`: only on this OS of the deploying machine (`linux`, `darwin`, `windows`).
    #[serde(default, rename = "localOS", skip_serializing_if = "Text::is_empty")]
    pub local_os: Text,
    /// Only on clusters like this.
    #[serde(default)]
    pub cluster: ZarfComponentOnlyCluster,
    /// Only in packages created with this `--flavor`.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub flavor: Text,
}

/// `ZarfComponentOnlyCluster`: which clusters a component is for.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentOnlyCluster {
    /// Only for clusters of this architecture (`amd64`, `arm64`); ferry selects images by it.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub architecture: Text,
    /// Kubernetes distributions it works with (reserved by Zarf).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distros: Vec<Text>,
}

/// `ZarfFile`: a file or directory a component places on disk.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfFile {
    /// A local path or a URL to take it from at create time.
    #[serde(default)]
    pub source: Text,
    /// The file's expected sha256 (files only).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub shasum: Text,
    /// Where it goes on deploy.
    #[serde(default)]
    pub target: Text,
    /// Whether the file is made executable (files only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub executable: bool,
    /// Symlinks to it created on deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<Text>,
    /// A path inside a `source` archive to take instead of the whole archive.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub extract_path: Text,
    /// Whether Go templates in the file are rendered on deploy (absent: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// `ZarfChart`: a Helm chart a component installs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfChart {
    /// The chart's name in the package (unique; need not be its name in the repository).
    #[serde(default)]
    pub name: Text,
    /// The chart version (for a git chart, also the default tag).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub version: Text,
    /// Where the chart is: an `oci://` reference, a Helm repository or a git repository.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
    /// The chart's name in a Helm repository (default: `name`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub repo_name: Text,
    /// The chart's directory in a git repository.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub git_path: Text,
    /// A local chart directory or `.tgz`.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub local_path: Text,
    /// The namespace it is installed into.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    /// The Helm release name (default: `name`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub release_name: Text,
    /// Whether to go on without waiting for its resources to be ready.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    /// Values files (paths or URLs), merged in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<Text>,
    /// Values files rendered as Go templates on deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templated_values_files: Vec<Text>,
    /// Variables that set chart values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<ZarfChartVariable>,
    /// Package values mapped onto chart values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ZarfChartValue>,
    /// Whether the chart's values schema is checked (absent: yes; off helps when the schema refers to the
    /// internet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_validation: Option<bool>,
    /// `true`, `false` or `auto` (absent: `auto`): whether Helm uses server-side apply.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub server_side_apply: Text,
}

/// `ZarfChartVariable`: a variable that sets one chart value.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfChartVariable {
    /// The variable's name (uppercase letters, digits, `_`).
    #[serde(default)]
    pub name: Text,
    /// What it controls.
    #[serde(default)]
    pub description: Text,
    /// The chart value it sets.
    #[serde(default)]
    pub path: Text,
}

/// `ZarfChartValue`: a package value copied onto a chart value.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfChartValue {
    /// The package value's path (`.` is the root).
    #[serde(default)]
    pub source_path: Text,
    /// The chart value's path (`.` is the root).
    #[serde(default)]
    pub target_path: Text,
    /// Paths under `source_path` not copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<Text>,
}

/// `ZarfManifest`: Kubernetes manifests deployed together as one generated chart.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfManifest {
    /// The name of the generated chart.
    #[serde(default)]
    pub name: Text,
    /// The namespace they are deployed into.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    /// Manifest files (paths or URLs), applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Text>,
    /// Whether kustomizations may reach above their directory.
    #[serde(default, skip_serializing_if = "is_false")]
    pub kustomize_allow_any_directory: bool,
    /// Kustomizations (paths or URLs) built into manifests at create time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kustomizations: Vec<Text>,
    /// Whether kustomize plugins are enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_kustomize_plugins: bool,
    /// Whether to go on without waiting for the resources to be ready.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    /// `true`, `false` or `auto` (absent: `auto`): whether server-side apply is used.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub server_side_apply: Text,
    /// Whether Go templates in the manifests are rendered on deploy (absent: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// `DeprecatedZarfComponentScripts` (`scripts`): the commands `actions` replaced.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeprecatedScripts {
    /// Whether their output is shown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub show_output: bool,
    /// Timeout per script, in seconds (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout_seconds: i64,
    /// Whether a failed script is retried.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retry: bool,
    /// Run before the component is added, at create time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepare: Vec<Text>,
    /// Run before the component is deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Text>,
    /// Run after it deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Text>,
}

/// `ZarfComponentActions`: a component's actions, by lifecycle stage.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActions {
    /// Run by `zarf package create`.
    #[serde(default)]
    pub on_create: ZarfComponentActionSet,
    /// Run on deploy.
    #[serde(default)]
    pub on_deploy: ZarfComponentActionSet,
    /// Run on remove.
    #[serde(default)]
    pub on_remove: ZarfComponentActionSet,
}

/// `ZarfComponentActionSet`: the actions of one stage, and their defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActionSet {
    /// Settings for every action of the set that does not set them itself.
    #[serde(default)]
    pub defaults: ZarfComponentActionDefaults,
    /// Run at the start of the stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<ZarfComponentAction>,
    /// Run at the end of the stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<ZarfComponentAction>,
    /// Run when the stage succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<ZarfComponentAction>,
    /// Run when the stage failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<ZarfComponentAction>,
}

/// `ZarfComponentActionDefaults`: settings shared by the actions of a set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActionDefaults {
    /// Whether command output is hidden.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mute: bool,
    /// Timeout per command, in seconds (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_total_seconds: i64,
    /// How many times a failed command is retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_retries: i64,
    /// The working directory (empty: the current one).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub dir: Text,
    /// Extra environment variables, `NAME=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Text>,
    /// The shell per OS.
    #[serde(default)]
    pub shell: Shell,
}

/// `ZarfComponentAction`: one command or wait. Unset settings come from the set's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentAction {
    /// Whether its output is hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute: Option<bool>,
    /// Timeout in seconds (Zarf's default: none for a command, 300 for a wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_seconds: Option<i64>,
    /// How many times it is retried on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    /// Its working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Text>,
    /// Extra environment variables, `NAME=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Text>,
    /// The command (an action has a `cmd` or a `wait`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub cmd: Text,
    /// The shell per OS for `cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Shell>,
    /// `setVariable`, deprecated: a variable set to the command's output; migrated into `setVariables`.
    #[serde(
        default,
        rename = "setVariable",
        skip_serializing_if = "Text::is_empty"
    )]
    pub deprecated_set_variable: Text,
    /// Variables set to the command's output, for later actions and components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_variables: Vec<Variable>,
    /// Package values set from the command's output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_values: Vec<SetValue>,
    /// Shown instead of the command while it runs.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    /// A condition to wait for (an action has a `cmd` or a `wait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<ZarfComponentActionWait>,
    /// Whether Go templates in `cmd` are rendered (absent: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// `SetValue`: `value` is any YAML value (Go's `any`; maps come out with sorted keys).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct SetValue {
    /// The value's path.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub key: Text,
    /// The value (`null` when unset).
    #[serde(default, skip_serializing_if = "is_empty_any")]
    pub value: serde_json::Value,
    /// `type`: how the command's output is parsed (`string`, `json`, `yaml`; empty: as a string).
    #[serde(default, rename = "type", skip_serializing_if = "Text::is_empty")]
    pub kind: Text,
}

/// Go's `omitempty` on an interface: only a nil interface is empty.
fn is_empty_any(v: &serde_json::Value) -> bool {
    v.is_null()
}

/// `ZarfComponentActionWait`: a condition to wait for, in the cluster or on the network (one of the two).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentActionWait {
    /// Wait for a cluster resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<WaitCluster>,
    /// Wait for a network endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<WaitNetwork>,
}

/// `ZarfComponentActionWaitCluster`: a resource condition to wait for.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct WaitCluster {
    /// The resource kind (`Pod`, `Deployment`).
    #[serde(default)]
    pub kind: Text,
    /// Its name, or a label selector.
    #[serde(default)]
    pub name: Text,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    /// The condition or JSONPath state to wait for (empty: that it exists).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub condition: Text,
}

/// `ZarfComponentActionWaitNetwork`: a network endpoint to wait for.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct WaitNetwork {
    /// `tcp`, `http` or `https`.
    #[serde(default)]
    pub protocol: Text,
    /// The address (`host:port`, a host).
    #[serde(default)]
    pub address: Text,
    /// The HTTP status to wait for (http and https only; 0: any success).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i64,
}

/// `ZarfContainerTarget`: where a data injection goes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfContainerTarget {
    /// The pod's namespace.
    #[serde(default)]
    pub namespace: Text,
    /// A label selector for the pod.
    #[serde(default)]
    pub selector: Text,
    /// The container's name.
    #[serde(default)]
    pub container: Text,
    /// The path in the container the data is copied to.
    #[serde(default)]
    pub path: Text,
}

/// `ZarfDataInjection` (deprecated): data copied into a running container.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfDataInjection {
    /// A local path or a file URL.
    #[serde(default)]
    pub source: Text,
    /// The container and path.
    #[serde(default)]
    pub target: ZarfContainerTarget,
    /// Whether the data is gzipped in transit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

/// `ZarfComponentImport`: another package's component a component is taken from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentImport {
    /// The component's name there (empty: the importing component's name).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub name: Text,
    /// The directory of the `zarf.yaml` to import from.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub path: Text,
    /// An `oci://` Zarf package to import from.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
}

/// `Shell`: the shell a command runs in, per OS of the deploying machine (empty: Zarf's default).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Shell {
    /// On Windows (Zarf's default: `powershell`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub windows: Text,
    /// On Linux (Zarf's default: `sh`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub linux: Text,
    /// On macOS (Zarf's default: `sh`).
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub darwin: Text,
}

/// `build.migrations` entries (`internal/api/v1alpha1/migrate.go`).
pub const SCRIPTS_TO_ACTIONS: &str = "scripts-to-actions";
/// The migration of `setVariable` into `setVariables`.
pub const PLURALIZE_SET_VARIABLE: &str = "pluralize-set-variable";
/// Zarf caps a migrated `retry: true` at this many retries.
const LEGACY_SCRIPTS_MAX_RETRIES: i64 = 10_000;

impl ZarfPackage {
    /// Zarf's `ApplyMigrations`, run whenever it reads a v1alpha1 document: deprecated `scripts` become
    /// actions (or are cleared once migrated), `setVariable` becomes `setVariables` (or is cleared), and
    /// `build.migrations` lists both.
    pub fn migrate(&mut self) {
        let done = |m: &str| self.build.migrations.iter().any(|x| x.as_str() == m);
        let (scripts_done, set_variable_done) =
            (done(SCRIPTS_TO_ACTIONS), done(PLURALIZE_SET_VARIABLE));
        for c in self.components.iter_mut().flatten() {
            if scripts_done {
                c.deprecated_scripts = DeprecatedScripts::default();
            } else {
                c.scripts_to_actions();
            }
            for set in [
                &mut c.actions.on_create,
                &mut c.actions.on_deploy,
                &mut c.actions.on_remove,
            ] {
                for a in set.all_mut() {
                    if set_variable_done {
                        a.deprecated_set_variable = Text::default();
                    } else if !a.deprecated_set_variable.is_empty() && a.set_variables.is_empty() {
                        a.set_variables = vec![Variable {
                            name: a.deprecated_set_variable.clone(),
                            ..Variable::default()
                        }];
                    }
                }
            }
        }
        self.build.migrations = vec![SCRIPTS_TO_ACTIONS.into(), PLURALIZE_SET_VARIABLE.into()];
    }

    /// What Zarf's conversion to its internal model and back changes in a v1alpha1 document: the
    /// `apiVersion` is spelled out when present, an empty `kind` becomes `ZarfPackageConfig`, the
    /// `metadata.*` annotations that v1beta1 uses for v1alpha1-only fields fill those fields, and an empty
    /// component list is nil.
    pub fn round_trip(&mut self) {
        if !self.api_version.is_empty() {
            self.api_version = super::V1ALPHA1.into();
        }
        if self.kind.is_empty() {
            self.kind = "ZarfPackageConfig".into();
        }
        let m = &mut self.metadata;
        let annotations = std::mem::take(&mut m.annotations);
        for (k, v) in annotations {
            let field = match k.as_str() {
                "metadata.url" => &mut m.url,
                "metadata.image" => &mut m.image,
                "metadata.authors" => &mut m.authors,
                "metadata.documentation" => &mut m.documentation,
                "metadata.source" => &mut m.source,
                "metadata.vendor" => &mut m.vendor,
                _ => {
                    m.annotations.insert(k, v);
                    continue;
                }
            };
            if field.is_empty() {
                *field = v;
            }
        }
        if self.components.as_ref().is_some_and(Vec::is_empty) {
            self.components = None;
        }
    }
}

impl ZarfComponent {
    /// `migrateScriptsToActions`: `prepare` → `onCreate.before`, `before` → `onDeploy.before`, `after` →
    /// `onDeploy.after`, with defaults from `showOutput`, `timeoutSeconds` and `retry`. The scripts stay.
    fn scripts_to_actions(&mut self) {
        let s = &self.deprecated_scripts;
        let defaults = ZarfComponentActionDefaults {
            mute: !s.show_output,
            max_total_seconds: s.timeout_seconds,
            max_retries: if s.retry {
                LEGACY_SCRIPTS_MAX_RETRIES
            } else {
                0
            },
            ..ZarfComponentActionDefaults::default()
        };
        let cmds = |list: &[Text]| -> Vec<ZarfComponentAction> {
            list.iter()
                .map(|c| ZarfComponentAction {
                    cmd: c.clone(),
                    ..ZarfComponentAction::default()
                })
                .collect()
        };
        let (prepare, before, after) = (cmds(&s.prepare), cmds(&s.before), cmds(&s.after));
        if !prepare.is_empty() {
            self.actions.on_create.defaults = defaults.clone();
            self.actions.on_create.before.extend(prepare);
        }
        if !before.is_empty() {
            self.actions.on_deploy.defaults = defaults.clone();
            self.actions.on_deploy.before.extend(before);
        }
        if !after.is_empty() {
            self.actions.on_deploy.defaults = defaults;
            self.actions.on_deploy.after.extend(after);
        }
    }
}

impl ZarfComponentActionSet {
    fn all_mut(&mut self) -> impl Iterator<Item = &mut ZarfComponentAction> {
        self.after
            .iter_mut()
            .chain(self.before.iter_mut())
            .chain(self.on_success.iter_mut())
            .chain(self.on_failure.iter_mut())
    }
}

/// Test vectors written by hand from Zarf's Go source (v0.84, `src/api/v1alpha1`,
/// `internal/api/v1alpha1/migrate.go` and `convert.go`, `pkgcfg`): struct order, `omitempty`, migrations,
/// conversions, Go's escaping.
#[cfg(test)]
mod vectors {
    use crate::definition::Definition;

    fn config(yaml: &str) -> String {
        let d = Definition::parse("vector", yaml.as_bytes()).unwrap();
        String::from_utf8(d.config_json().unwrap()).unwrap()
    }

    /// Structs are never omitted: every component has `only.cluster`, `import`, `scripts` and the three
    /// action sets with `defaults.shell`; the package has `values`; `build` has its three always-written
    /// fields and the migrations Zarf records on reading.
    #[test]
    fn minimal() {
        assert_eq!(
            config("kind: ZarfPackageConfig\nmetadata:\n  name: demo\ncomponents:\n- name: web\n"),
            concat!(
                r#"{"kind":"ZarfPackageConfig","metadata":{"name":"demo"},"#,
                r#""build":{"architecture":"","timestamp":"","version":"","migrations":["scripts-to-actions","pluralize-set-variable"]},"#,
                r#""components":[{"name":"web","only":{"cluster":{}},"import":{},"scripts":{},"#,
                r#""actions":{"onCreate":{"defaults":{"shell":{}}},"onDeploy":{"defaults":{"shell":{}}},"onRemove":{"defaults":{"shell":{}}}}}],"#,
                r#""values":{}}"#
            )
        );
        // No components: a nil slice, `null` (the field has no omitempty); no kind: ZarfPackageConfig.
        assert_eq!(
            config("metadata:\n  name: none\ncomponents: []\n"),
            concat!(
                r#"{"kind":"ZarfPackageConfig","metadata":{"name":"none"},"#,
                r#""build":{"architecture":"","timestamp":"","version":"","migrations":["scripts-to-actions","pluralize-set-variable"]},"#,
                r#""components":null,"values":{}}"#
            )
        );
    }

    /// Every optional section: metadata in struct order with `metadata.url` restored from the annotations,
    /// maps sorted, unknown fields dropped, HTML-safe escaping, variables with the embedded `Variable`'s
    /// fields first, charts, manifests, an image archive without images (`null`), scripts migrated into
    /// `onDeploy` (and kept), `setVariable` migrated to `setVariables` (and kept), a wait action.
    #[test]
    fn everything() {
        let yaml = r#"apiVersion: zarf.dev/v1alpha1
kind: ZarfPackageConfig
metadata:
  name: full
  description: A <full> & "quoted" one
  version: 1.0.0
  annotations:
    metadata.url: https://example.com
    z-key: last
    a-key: first
  aggregateChecksum: abc123
  uncompressed: true
build:
  terminal: host
  user: me
  architecture: amd64
  timestamp: Tue, 02 Jan 2024 15:04:05 -0700
  version: v0.84.0
  flavor: upstream
  signed: false
  registryOverrides:
    docker.io: mirror:5000
  unknownField: dropped
variables:
- name: DOMAIN
  default: example.com
  prompt: true
  sensitive: true
constants:
- name: VERSION
  value: "1"
components:
- name: web
  required: true
  only:
    flavor: upstream
    cluster:
      architecture: amd64
  charts:
  - name: podinfo
    version: 6.4.0
    url: oci://ghcr.io/stefanprodan/charts/podinfo
    namespace: podinfo
    valuesFiles: [values.yaml]
    schemaValidation: false
  manifests:
  - name: extra
    files: [a.yaml]
    noWait: true
  images:
  - ghcr.io/stefanprodan/podinfo:6.4.0
  imageArchives:
  - path: app.tar
  scripts:
    retry: true
    timeoutSeconds: 60
    before: [echo hi]
  actions:
    onDeploy:
      after:
      - cmd: echo done
        setVariable: OUT
      - wait:
          cluster:
            kind: Pod
            name: app=web
documentation:
  readme: README.md
  license: LICENSE
"#;
        assert_eq!(
            config(yaml),
            concat!(
                r#"{"apiVersion":"zarf.dev/v1alpha1","kind":"ZarfPackageConfig","#,
                r#""metadata":{"name":"full","description":"A \u003cfull\u003e \u0026 \"quoted\" one","version":"1.0.0","url":"https://example.com","uncompressed":true,"aggregateChecksum":"abc123","annotations":{"a-key":"first","z-key":"last"}},"#,
                r#""build":{"terminal":"host","user":"me","architecture":"amd64","timestamp":"Tue, 02 Jan 2024 15:04:05 -0700","version":"v0.84.0","migrations":["scripts-to-actions","pluralize-set-variable"],"registryOverrides":{"docker.io":"mirror:5000"},"flavor":"upstream","signed":false},"#,
                r#""components":[{"name":"web","required":true,"only":{"cluster":{"architecture":"amd64"},"flavor":"upstream"},"import":{},"#,
                r#""manifests":[{"name":"extra","files":["a.yaml"],"noWait":true}],"#,
                r#""charts":[{"name":"podinfo","version":"6.4.0","url":"oci://ghcr.io/stefanprodan/charts/podinfo","namespace":"podinfo","valuesFiles":["values.yaml"],"schemaValidation":false}],"#,
                r#""images":["ghcr.io/stefanprodan/podinfo:6.4.0"],"imageArchives":[{"path":"app.tar","images":null}],"#,
                r#""scripts":{"timeoutSeconds":60,"retry":true,"before":["echo hi"]},"#,
                r#""actions":{"onCreate":{"defaults":{"shell":{}}},"#,
                r#""onDeploy":{"defaults":{"mute":true,"maxTotalSeconds":60,"maxRetries":10000,"shell":{}},"before":[{"cmd":"echo hi"}],"after":[{"cmd":"echo done","setVariable":"OUT","setVariables":[{"name":"OUT"}]},{"wait":{"cluster":{"kind":"Pod","name":"app=web"}}}]},"#,
                r#""onRemove":{"defaults":{"shell":{}}}}}],"#,
                r#""constants":[{"name":"VERSION","value":"1"}],"#,
                r#""variables":[{"name":"DOMAIN","sensitive":true,"default":"example.com","prompt":true}],"#,
                r#""values":{},"documentation":{"license":"LICENSE","readme":"README.md"}}"#
            )
        );
    }

    /// Migrations already recorded: the scripts and `setVariable` are cleared instead of migrated.
    #[test]
    fn already_migrated() {
        let yaml = "kind: ZarfInitConfig
metadata:
  name: init
build:
  architecture: amd64
  timestamp: x
  version: v0.84.0
  migrations: [scripts-to-actions, pluralize-set-variable]
components:
- name: legacy
  repos: [https://github.com/x/y.git]
  scripts:
    before: [echo old]
  actions:
    onRemove:
      onFailure:
      - cmd: echo f
        setVariable: GONE
        setVariables: [{name: KEPT}]
";
        assert_eq!(
            config(yaml),
            concat!(
                r#"{"kind":"ZarfInitConfig","metadata":{"name":"init"},"#,
                r#""build":{"architecture":"amd64","timestamp":"x","version":"v0.84.0","migrations":["scripts-to-actions","pluralize-set-variable"]},"#,
                r#""components":[{"name":"legacy","only":{"cluster":{}},"import":{},"repos":["https://github.com/x/y.git"],"scripts":{},"#,
                r#""actions":{"onCreate":{"defaults":{"shell":{}}},"onDeploy":{"defaults":{"shell":{}}},"#,
                r#""onRemove":{"defaults":{"shell":{}},"onFailure":[{"cmd":"echo f","setVariables":[{"name":"KEPT"}]}]}}}],"#,
                r#""values":{}}"#
            )
        );
    }

    /// A v1beta1-authored package: Zarf decodes the v1beta1 document, which it does not migrate, and
    /// publishes its v1alpha1 form, which is the v1alpha1 document it wrote beside it — so no migrations
    /// are added and `setVariable` stays as written.
    #[test]
    fn two_documents() {
        let yaml = "apiVersion: zarf.dev/v1alpha1
kind: ZarfPackageConfig
metadata:
  name: beta-authored
  version: 0.1.0
build:
  architecture: arm64
  timestamp: Mon, 01 Jan 2024 12:00:00 +0100
  version: v0.84.0
components:
- name: app
  required: true
  images:
  - nginx:1.25
  actions:
    onDeploy:
      before:
      - cmd: echo x
        setVariable: LEGACY
---
apiVersion: zarf.dev/v1beta1
kind: ZarfPackageConfig
metadata:
  name: beta-authored
  version: 0.1.0
build:
  architecture: arm64
  timestamp: Mon, 01 Jan 2024 12:00:00 +0100
  version: v0.84.0
components:
- name: app
  images:
  - name: nginx:1.25
";
        assert_eq!(
            config(yaml),
            concat!(
                r#"{"apiVersion":"zarf.dev/v1alpha1","kind":"ZarfPackageConfig","metadata":{"name":"beta-authored","version":"0.1.0"},"#,
                r#""build":{"architecture":"arm64","timestamp":"Mon, 01 Jan 2024 12:00:00 +0100","version":"v0.84.0"},"#,
                r#""components":[{"name":"app","required":true,"only":{"cluster":{}},"import":{},"images":["nginx:1.25"],"scripts":{},"#,
                r#""actions":{"onCreate":{"defaults":{"shell":{}}},"onDeploy":{"defaults":{"shell":{}},"before":[{"cmd":"echo x","setVariable":"LEGACY"}]},"onRemove":{"defaults":{"shell":{}}}}}],"#,
                r#""values":{}}"#
            )
        );
        // A file with only a v1beta1 document is a source definition, not a built package: no config.
        let beta_only = yaml.split("---\n").nth(1).unwrap();
        let d = Definition::parse("vector", beta_only.as_bytes()).unwrap();
        assert!(d.config_json().is_err());
    }
}
