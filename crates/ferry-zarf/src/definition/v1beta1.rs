//! The parts of a v1beta1 package definition (`src/api/v1beta1`) that choose images: metadata and build
//! for naming, and per component `optional`, `selector` and the images. Zarf writes a v1beta1-authored
//! package's `zarf.yaml` as a v1alpha1 document, `---`, and this document, and reads this one.

use serde::Deserialize;

use super::text::Text;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(default)]
    pub kind: Text,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub components: Vec<Component>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub description: Text,
    #[serde(default)]
    pub version: Text,
    #[serde(default)]
    pub architecture: Text,
    #[serde(default)]
    pub uncompressed: bool,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    #[serde(default)]
    pub architecture: Text,
    #[serde(default)]
    pub timestamp: Text,
    #[serde(default)]
    pub version: Text,
    #[serde(default)]
    pub flavor: Text,
    #[serde(default)]
    pub signed: Option<bool>,
    #[serde(default)]
    pub provenance_files: Vec<Text>,
    #[serde(default)]
    pub aggregate_checksum: Text,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub description: Text,
    /// Components are required unless optional.
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub image_archives: Vec<ImageArchive>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Selector {
    #[serde(default)]
    pub architecture: Text,
    #[serde(default)]
    pub flavor: Text,
}

/// `{name, source}`: `source` is `registry` (the default) or `daemon` (the local Docker Engine).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Image {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub source: Text,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ImageArchive {
    #[serde(default)]
    pub path: Text,
    #[serde(default)]
    pub images: Vec<Text>,
}
