//! The parts of a v1beta1 package definition (`src/api/v1beta1`) that choose images: metadata and build
//! for naming, and per component `optional`, `selector` and the images. Zarf writes a v1beta1-authored
//! package's `zarf.yaml` as a v1alpha1 document, `---`, and this document, and reads this one.

use serde::Deserialize;

use super::text::Text;

/// The v1beta1 document, as far as ferry reads it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `ZarfPackageConfig` or `ZarfInitConfig`.
    #[serde(default)]
    pub kind: Text,
    /// Name, version and what the package is for.
    #[serde(default)]
    pub metadata: Metadata,
    /// What the build recorded.
    #[serde(default)]
    pub build: Build,
    /// The components, in order.
    #[serde(default)]
    pub components: Vec<Component>,
}

/// The v1beta1 metadata ferry reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The package name.
    #[serde(default)]
    pub name: Text,
    /// Free-text description.
    #[serde(default)]
    pub description: Text,
    /// The author's version string.
    #[serde(default)]
    pub version: Text,
    /// The cluster architecture the package is for.
    #[serde(default)]
    pub architecture: Text,
    /// Whether the package tarball is written without compression.
    #[serde(default)]
    pub uncompressed: bool,
}

/// The v1beta1 build data ferry reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    /// The architecture it was built for.
    #[serde(default)]
    pub architecture: Text,
    /// When it was built.
    #[serde(default)]
    pub timestamp: Text,
    /// The Zarf version that built it.
    #[serde(default)]
    pub version: Text,
    /// The `--flavor` it was built with.
    #[serde(default)]
    pub flavor: Text,
    /// Whether it was signed.
    #[serde(default)]
    pub signed: Option<bool>,
    /// Files added after `checksums.txt` was written (signatures).
    #[serde(default)]
    pub provenance_files: Vec<Text>,
    /// The sha256 of `checksums.txt` (v1alpha1 keeps it in `metadata`).
    #[serde(default)]
    pub aggregate_checksum: Text,
}

/// A v1beta1 component, as far as ferry reads it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// The component's name.
    #[serde(default)]
    pub name: Text,
    /// Free-text description.
    #[serde(default)]
    pub description: Text,
    /// Components are required unless optional.
    #[serde(default)]
    pub optional: bool,
    /// When the component applies (v1alpha1's `only`).
    #[serde(default)]
    pub selector: Selector,
    /// The images it carries, each with where it comes from.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Image tarballs (OCI layouts) to take images from.
    #[serde(default)]
    pub image_archives: Vec<ImageArchive>,
}

/// `selector`: which builds and clusters a component is for.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Selector {
    /// Only for clusters of this architecture.
    #[serde(default)]
    pub architecture: Text,
    /// Only in packages built with this `--flavor`.
    #[serde(default)]
    pub flavor: Text,
}

/// `{name, source}`: `source` is `registry` (the default) or `daemon` (the local Docker Engine).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Image {
    /// The image reference.
    #[serde(default)]
    pub name: Text,
    /// `registry` (also when empty) or `daemon`.
    #[serde(default)]
    pub source: Text,
}

/// An image tarball a component takes images from.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ImageArchive {
    /// Path of the file holding an OCI layout.
    #[serde(default)]
    pub path: Text,
    /// The images to take from it.
    #[serde(default)]
    pub images: Vec<Text>,
}
