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
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub api_version: Text,
    #[serde(default)]
    pub kind: Text,
    #[serde(default)]
    pub metadata: ZarfMetadata,
    #[serde(default)]
    pub build: ZarfBuildData,
    /// Not `omitempty`: none is `null`.
    #[serde(default)]
    pub components: Option<Vec<ZarfComponent>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constants: Vec<Constant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<InteractiveVariable>,
    #[serde(default)]
    pub values: ZarfValues,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub documentation: BTreeMap<Text, Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfMetadata {
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub version: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub image: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub uncompressed: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub architecture: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub yolo: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub authors: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub documentation: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub source: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub vendor: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub aggregate_checksum: Text,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<Text, Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_namespace_override: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfBuildData {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub terminal: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub user: Text,
    #[serde(default)]
    pub architecture: Text,
    #[serde(default)]
    pub timestamp: Text,
    #[serde(default)]
    pub version: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Text>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_overrides: BTreeMap<Text, Text>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub differential: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub differential_package_version: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differential_missing: Vec<Text>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub flavor: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_requirements: Vec<VersionRequirement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance_files: Vec<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct VersionRequirement {
    #[serde(default)]
    pub version: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub reason: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfValues {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Text>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub schema: Text,
}

/// `Variable`; embedded in [`InteractiveVariable`], so its fields come first there.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_indent: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub pattern: Text,
    #[serde(default, rename = "type", skip_serializing_if = "Text::is_empty")]
    pub kind: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct InteractiveVariable {
    #[serde(flatten)]
    pub variable: Variable,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub default: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompt: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Constant {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub value: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_indent: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub pattern: Text,
}

/// `ZarfComponent`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponent {
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default)]
    pub only: ZarfComponentOnlyTarget,
    #[serde(default, rename = "group", skip_serializing_if = "Text::is_empty")]
    pub deprecated_group: Text,
    #[serde(default)]
    pub import: ZarfComponentImport,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ZarfManifest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ZarfChart>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_injections: Vec<ZarfDataInjection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ZarfFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_archives: Vec<ImageArchive>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<Text>,
    #[serde(default, rename = "scripts")]
    pub deprecated_scripts: DeprecatedScripts,
    #[serde(default)]
    pub actions: ZarfComponentActions,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<NamespacedObjectKindReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_access: Vec<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ImageArchive {
    #[serde(default)]
    pub path: Text,
    /// Not `omitempty`: absent is `null`, `[]` stays `[]`.
    #[serde(default)]
    pub images: Option<Vec<Text>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectKindReference {
    #[serde(default)]
    pub api_version: Text,
    #[serde(default)]
    pub kind: Text,
    #[serde(default)]
    pub namespace: Text,
    #[serde(default)]
    pub name: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentOnlyTarget {
    #[serde(default, rename = "localOS", skip_serializing_if = "Text::is_empty")]
    pub local_os: Text,
    #[serde(default)]
    pub cluster: ZarfComponentOnlyCluster,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub flavor: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentOnlyCluster {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub architecture: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distros: Vec<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfFile {
    #[serde(default)]
    pub source: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub shasum: Text,
    #[serde(default)]
    pub target: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub executable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<Text>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub extract_path: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfChart {
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub version: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub repo_name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub git_path: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub local_path: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub release_name: Text,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templated_values_files: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<ZarfChartVariable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ZarfChartValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_validation: Option<bool>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub server_side_apply: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfChartVariable {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub description: Text,
    #[serde(default)]
    pub path: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfChartValue {
    #[serde(default)]
    pub source_path: Text,
    #[serde(default)]
    pub target_path: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfManifest {
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Text>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub kustomize_allow_any_directory: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kustomizations: Vec<Text>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_kustomize_plugins: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_wait: bool,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub server_side_apply: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeprecatedScripts {
    #[serde(default, skip_serializing_if = "is_false")]
    pub show_output: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout_seconds: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub retry: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepare: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActions {
    #[serde(default)]
    pub on_create: ZarfComponentActionSet,
    #[serde(default)]
    pub on_deploy: ZarfComponentActionSet,
    #[serde(default)]
    pub on_remove: ZarfComponentActionSet,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActionSet {
    #[serde(default)]
    pub defaults: ZarfComponentActionDefaults,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<ZarfComponentAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<ZarfComponentAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<ZarfComponentAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<ZarfComponentAction>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentActionDefaults {
    #[serde(default, skip_serializing_if = "is_false")]
    pub mute: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_total_seconds: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_retries: i64,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub dir: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Text>,
    #[serde(default)]
    pub shell: Shell,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZarfComponentAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<Text>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub cmd: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Shell>,
    #[serde(
        default,
        rename = "setVariable",
        skip_serializing_if = "Text::is_empty"
    )]
    pub deprecated_set_variable: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_variables: Vec<Variable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_values: Vec<SetValue>,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub description: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<ZarfComponentActionWait>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<bool>,
}

/// `SetValue`: `value` is any YAML value (Go's `any`; maps come out with sorted keys).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct SetValue {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub key: Text,
    #[serde(default, skip_serializing_if = "is_empty_any")]
    pub value: serde_json::Value,
    #[serde(default, rename = "type", skip_serializing_if = "Text::is_empty")]
    pub kind: Text,
}

/// Go's `omitempty` on an interface: only a nil interface is empty.
fn is_empty_any(v: &serde_json::Value) -> bool {
    v.is_null()
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentActionWait {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<WaitCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<WaitNetwork>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct WaitCluster {
    #[serde(default)]
    pub kind: Text,
    #[serde(default)]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub namespace: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub condition: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct WaitNetwork {
    #[serde(default)]
    pub protocol: Text,
    #[serde(default)]
    pub address: Text,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfContainerTarget {
    #[serde(default)]
    pub namespace: Text,
    #[serde(default)]
    pub selector: Text,
    #[serde(default)]
    pub container: Text,
    #[serde(default)]
    pub path: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfDataInjection {
    #[serde(default)]
    pub source: Text,
    #[serde(default)]
    pub target: ZarfContainerTarget,
    #[serde(default, skip_serializing_if = "is_false")]
    pub compress: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ZarfComponentImport {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub name: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub path: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub url: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Shell {
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub windows: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub linux: Text,
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub darwin: Text,
}

/// `build.migrations` entries (`internal/api/v1alpha1/migrate.go`).
pub const SCRIPTS_TO_ACTIONS: &str = "scripts-to-actions";
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
