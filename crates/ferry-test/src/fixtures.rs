//! Deterministic fixture images, indexes and artifacts, shaped like what real tools push.
//!
//! Nothing here reads the clock or the network: the same arguments always give the same bytes, and
//! different seeds give different layer contents.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::artifact::{Artifact, Blob};
use crate::encode::{base64, base64url, gzip_stored, sha256_digest};

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzipped OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// An uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The OCI empty descriptor's type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// A Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A Docker (gzipped) layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A Docker foreign layer: referenced, never uploaded.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// A signed Docker schema 1 manifest, which ferry must refuse.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// A Helm chart's config.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// A Helm chart's content layer.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The layer type of a cosign signature (the signed payload).
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation of a cosign signature layer holding the base64 signature.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Every fixture timestamp; a fixed instant keeps bytes reproducible.
const CREATED: &str = "2024-01-01T00:00:00Z";
/// tar mtime of every entry (2024-01-01T00:00:00Z).
const TAR_MTIME: u64 = 1_704_067_200;

// ---------------------------------------------------------------------------------------------
// JSON shapes. Structs (not serde_json::Value, whose map sorts keys) keep the field order real
// tools write.

/// image-spec descriptor field order, as containerd, BuildKit and oras write it.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

/// Docker distribution (and go-containerregistry, hence cosign) order: size before digest.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SizeFirstDescriptor {
    media_type: String,
    size: u64,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Serialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest<D> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: D,
    layers: Vec<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageIndex<D> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<D>,
}

#[derive(Clone, Copy)]
enum Style {
    /// One line, like containerd, BuildKit, oras and go-containerregistry.
    Compact,
    /// `json.MarshalIndent(m, "", "   ")`, which docker uses for schema2 manifests and lists.
    Docker,
}

fn to_json<T: Serialize>(value: &T, style: Style) -> Vec<u8> {
    match style {
        Style::Compact => serde_json::to_vec(value).expect("fixture JSON"),
        Style::Docker => {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            value.serialize(&mut ser).expect("fixture JSON");
            out
        }
    }
}

fn oci_desc(blob: &Blob) -> OciDescriptor {
    OciDescriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest(),
        size: blob.size(),
        urls: None,
        annotations: None,
        data: None,
        platform: None,
    }
}

fn size_first_desc(blob: &Blob) -> SizeFirstDescriptor {
    SizeFirstDescriptor {
        media_type: blob.media_type.clone(),
        size: blob.size(),
        digest: blob.digest(),
        urls: None,
        annotations: None,
        platform: None,
    }
}

fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    Platform {
        architecture: arch.to_string(),
        os: os.to_string(),
        variant: variant.map(str::to_string),
    }
}

/// Splits `"arm/v7"` into `("arm", Some("v7"))`; a plain `"amd64"` has no variant.
fn split_arch(arch: &str) -> (&str, Option<&str>) {
    match arch.split_once('/') {
        Some((arch, variant)) => (arch, Some(variant)),
        None => (arch, None),
    }
}

fn annotations(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Keeps the first blob of each digest: a manifest may list a layer twice, but it is uploaded once.
fn dedup(blobs: Vec<Blob>) -> Vec<Blob> {
    let mut seen = std::collections::HashSet::new();
    blobs
        .into_iter()
        .filter(|b| seen.insert(b.digest()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Layer content.

/// SplitMix64: tiny, fast, and good enough to make layers incompressible and seed-dependent.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Builds a tar archive from (path, contents) pairs; `None` contents make a directory.
/// Fixed mtime, owner and modes so the archive depends only on its entries.
pub fn tar_archive(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(TAR_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match contents {
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, *data)
                    .expect("tar entry");
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .expect("tar entry");
            }
        }
    }
    builder.into_inner().expect("tar archive")
}

/// A layer: the uncompressed tar (for the diff_id) and its gzip.
struct Layer {
    tar: Vec<u8>,
    gz: Vec<u8>,
}

impl Layer {
    fn diff_id(&self) -> String {
        sha256_digest(&self.tar)
    }
}

/// Layer `index` of image `seed`: a directory with a note naming the seed and `size` random bytes.
fn make_layer(seed: u64, index: usize, size: usize) -> Layer {
    let dir = format!("layer-{index}/");
    let note_path = format!("layer-{index}/seed.txt");
    let data_path = format!("layer-{index}/data-{seed}.bin");
    let note = format!("ferry-test seed {seed} layer {index}\n");
    let data = Rng::new(seed, index as u64 + 1).bytes(size);
    let tar = tar_archive(&[
        (&dir, None),
        (&note_path, Some(note.as_bytes())),
        (&data_path, Some(&data)),
    ]);
    let gz = gzip_stored(&tar);
    Layer { tar, gz }
}

/// Default layer sizes for [`oci_image`]/[`docker_image`]: small but not all equal.
fn default_sizes(layers: usize) -> Vec<usize> {
    (0..layers).map(|i| 1024 + 512 * i).collect()
}

// ---------------------------------------------------------------------------------------------
// Images.

/// Which family of media types an image uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Oci,
    Docker,
}

/// Image config JSON. OCI uses image-spec field order; Docker's daemon writes keys sorted, which a
/// `serde_json::Value` (sorted map) reproduces.
fn image_config(flavor: Flavor, seed: u64, arch: &str, diff_ids: &[String]) -> Vec<u8> {
    let (arch, variant) = split_arch(arch);
    let history: Vec<_> = (0..diff_ids.len())
        .map(|i| json!({"created": CREATED, "created_by": format!("ferry-test seed {seed} layer {i}")}))
        .collect();
    let runtime = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/bin/sh"],
        "Labels": {"dev.ferry.test.seed": seed.to_string()},
    });
    let rootfs = json!({"type": "layers", "diff_ids": diff_ids});
    match flavor {
        Flavor::Oci => {
            #[derive(Serialize)]
            struct OciConfig<'a> {
                created: &'a str,
                architecture: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                variant: Option<&'a str>,
                os: &'a str,
                config: serde_json::Value,
                rootfs: serde_json::Value,
                history: Vec<serde_json::Value>,
            }
            let config = OciConfig {
                created: CREATED,
                architecture: arch,
                variant,
                os: "linux",
                config: runtime,
                rootfs,
                history,
            };
            to_json(&config, Style::Compact)
        }
        Flavor::Docker => {
            let mut config = json!({
                "architecture": arch, "config": runtime, "created": CREATED,
                "history": history, "os": "linux", "rootfs": rootfs,
            });
            if let Some(variant) = variant {
                config["variant"] = json!(variant);
            }
            to_json(&config, Style::Compact)
        }
    }
}

/// An image from already-built layers. `foreign` layers are listed (with `urls`) but not uploaded.
fn build_image(flavor: Flavor, seed: u64, arch: &str, layers: &[(Layer, bool)]) -> Artifact {
    let diff_ids: Vec<String> = layers.iter().map(|(layer, _)| layer.diff_id()).collect();
    let (config_type, layer_type, manifest_type) = match flavor {
        Flavor::Oci => (OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST),
        Flavor::Docker => (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST),
    };
    let config = Blob::new(config_type, image_config(flavor, seed, arch, &diff_ids));
    let mut blobs = vec![config.clone()];
    let mut descs = Vec::new();
    for (i, (layer, foreign)) in layers.iter().enumerate() {
        let media_type = if *foreign {
            DOCKER_FOREIGN_LAYER
        } else {
            layer_type
        };
        let blob = Blob::new(media_type, layer.gz.clone());
        let mut desc = size_first_desc(&blob);
        if *foreign {
            desc.urls = Some(vec![format!(
                "https://foreign.example.invalid/ferry-test/{seed}/layer-{i}.tar.gz"
            )]);
        } else {
            blobs.push(blob);
        }
        descs.push(desc);
    }
    let bytes = match flavor {
        Flavor::Oci => to_json(
            &ImageManifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST),
                artifact_type: None,
                config: oci_desc(&config),
                layers: descs
                    .iter()
                    .map(|d| OciDescriptor {
                        media_type: d.media_type.clone(),
                        digest: d.digest.clone(),
                        size: d.size,
                        urls: d.urls.clone(),
                        annotations: None,
                        data: None,
                        platform: None,
                    })
                    .collect(),
                subject: None,
                annotations: None,
            },
            Style::Compact,
        ),
        Flavor::Docker => to_json(
            &ImageManifest {
                schema_version: 2,
                media_type: Some(DOCKER_MANIFEST),
                artifact_type: None,
                config: size_first_desc(&config),
                layers: descs,
                subject: None,
                annotations: None,
            },
            Style::Docker,
        ),
    };
    Artifact {
        manifest: Blob::new(manifest_type, bytes),
        blobs: dedup(blobs),
        children: Vec::new(),
    }
}

/// OCI image: gzip tar layers, config with matching `rootfs.diff_ids`, architecture and os linux.
/// `arch` may carry a variant (`"arm/v7"`), which goes into the config's `variant`.
pub fn oci_image(seed: u64, layers: usize, arch: &str) -> Artifact {
    oci_image_sized(seed, &default_sizes(layers), arch)
}

/// Like [`oci_image`] with one layer per entry of `layer_sizes`, each holding that many bytes of
/// seed-derived random data (the gzip is stored, so blob size ≈ that size plus ~1.5 KiB).
pub fn oci_image_sized(seed: u64, layer_sizes: &[usize], arch: &str) -> Artifact {
    let layers: Vec<_> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (make_layer(seed, i, size), false))
        .collect();
    build_image(Flavor::Oci, seed, arch, &layers)
}

/// An OCI image on a shared base: its first layers (one per entry of `base_sizes`) derive from `base_seed`
/// alone, so every image built on the same base shares them byte for byte (two versions of an application,
/// or several applications on one distribution); the rest (`own_sizes`) and the config derive from `seed`.
pub fn image_on_base(
    base_seed: u64,
    base_sizes: &[usize],
    seed: u64,
    own_sizes: &[usize],
    arch: &str,
) -> Artifact {
    let base = base_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (make_layer(base_seed, i, size), false));
    let own = own_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (make_layer(seed, base_sizes.len() + i, size), false));
    let layers: Vec<_> = base.chain(own).collect();
    build_image(Flavor::Oci, seed, arch, &layers)
}

/// Docker schema2 image (v2s2 media types, docker's 3-space indented manifest).
pub fn docker_image(seed: u64, layers: usize, arch: &str) -> Artifact {
    let layers: Vec<_> = default_sizes(layers)
        .iter()
        .enumerate()
        .map(|(i, &size)| (make_layer(seed, i, size), false))
        .collect();
    build_image(Flavor::Docker, seed, arch, &layers)
}

/// Docker schema2 image whose first layer is foreign (`urls`, foreign media type, not in `blobs`,
/// so nothing uploads it), followed by one ordinary layer. Distribution 2.8 refuses manifests with
/// `urls` unless `validation.manifests.urls.allow` is set (the test registries allow `^https?://`),
/// and never checks that a foreign blob exists.
pub fn image_with_foreign_layer(seed: u64) -> Artifact {
    let layers = [
        (make_layer(seed, 0, 2048), true),
        (make_layer(seed, 1, 1024), false),
    ];
    build_image(Flavor::Docker, seed, "amd64", &layers)
}

/// OCI image listing `[base, own, own]`: `base` is identical for every seed (shared between
/// images), and `own` appears twice in one manifest. `blobs` holds each digest once.
pub fn image_with_shared_and_duplicate_layers(seed: u64) -> Artifact {
    const SHARED_BASE_SEED: u64 = 0xBA5E;
    let layers = [
        (make_layer(SHARED_BASE_SEED, 0, 1536), false),
        (make_layer(seed, 1, 1024), false),
        (make_layer(seed, 1, 1024), false),
    ];
    build_image(Flavor::Oci, seed, "amd64", &layers)
}

// ---------------------------------------------------------------------------------------------
// Indexes.

/// A child descriptor for an index. Child `(artifact, os, arch, variant)`.
type Child<'a> = (Artifact, &'a str, &'a str, Option<&'a str>);

/// OCI image index listing each child with its platform.
pub fn oci_index(children: Vec<Child<'_>>) -> Artifact {
    let manifests = children
        .iter()
        .map(|(child, os, arch, variant)| OciDescriptor {
            platform: Some(platform(os, arch, *variant)),
            ..oci_desc(&child.manifest)
        })
        .collect();
    let index = ImageIndex {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    };
    Artifact {
        manifest: Blob::new(OCI_INDEX, to_json(&index, Style::Compact)),
        blobs: Vec::new(),
        children: children.into_iter().map(|c| c.0).collect(),
    }
}

/// Docker manifest list (docker's indentation and descriptor field order).
pub fn docker_manifest_list(children: Vec<Child<'_>>) -> Artifact {
    let manifests = children
        .iter()
        .map(|(child, os, arch, variant)| SizeFirstDescriptor {
            platform: Some(platform(os, arch, *variant)),
            ..size_first_desc(&child.manifest)
        })
        .collect();
    let list = ImageIndex {
        schema_version: 2,
        media_type: DOCKER_MANIFEST_LIST,
        manifests,
    };
    Artifact {
        manifest: Blob::new(DOCKER_MANIFEST_LIST, to_json(&list, Style::Docker)),
        blobs: Vec::new(),
        children: children.into_iter().map(|c| c.0).collect(),
    }
}

/// OCI index whose first entry is `inner` (an index, listed without a platform, as
/// `docker buildx imagetools create` does) followed by `extra` platform-specific manifests.
pub fn nested_index(inner: Artifact, extra: Vec<Child<'_>>) -> Artifact {
    let mut manifests = vec![oci_desc(&inner.manifest)];
    manifests.extend(
        extra
            .iter()
            .map(|(child, os, arch, variant)| OciDescriptor {
                platform: Some(platform(os, arch, *variant)),
                ..oci_desc(&child.manifest)
            }),
    );
    let index = ImageIndex {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    };
    let mut children = vec![inner];
    children.extend(extra.into_iter().map(|c| c.0));
    Artifact {
        manifest: Blob::new(OCI_INDEX, to_json(&index, Style::Compact)),
        blobs: Vec::new(),
        children,
    }
}

// ---------------------------------------------------------------------------------------------
// Artifacts.

/// A Helm chart as `helm push` (Helm 3, oras-go v1) writes it: helm config and chart layer, OCI
/// manifest **without** a `mediaType` field and without `artifactType`, annotations from
/// Chart.yaml. The missing `mediaType` is deliberate: clients must take the type from Content-Type.
pub fn helm_chart(seed: u64) -> Artifact {
    let name = format!("ferry-chart-{seed}");
    let version = format!("0.1.{seed}");
    let description = "A ferry-test fixture chart";
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\ndescription: {description}\ntype: application\nversion: {version}\nappVersion: \"1.0.0\"\n"
    );
    let values_yaml = format!("message: hello from seed {seed}\n");
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  message: {{ .Values.message | quote }}\n";
    let dir = format!("{name}/");
    let templates_dir = format!("{name}/templates/");
    let (chart_path, values_path, template_path) = (
        format!("{name}/Chart.yaml"),
        format!("{name}/values.yaml"),
        format!("{name}/templates/configmap.yaml"),
    );
    let tgz = gzip_stored(&tar_archive(&[
        (&dir, None),
        (&chart_path, Some(chart_yaml.as_bytes())),
        (&values_path, Some(values_yaml.as_bytes())),
        (&templates_dir, None),
        (&template_path, Some(template.as_bytes())),
    ]));
    // Helm serialises chart.Metadata: this is its field order with empty fields omitted.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct HelmConfig<'a> {
        name: &'a str,
        version: &'a str,
        description: &'a str,
        api_version: &'a str,
        app_version: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    let config = Blob::new(
        HELM_CONFIG,
        to_json(
            &HelmConfig {
                name: &name,
                version: &version,
                description,
                api_version: "v2",
                app_version: "1.0.0",
                kind: "application",
            },
            Style::Compact,
        ),
    );
    let layer = Blob::new(HELM_CHART_LAYER, tgz);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: None,
        artifact_type: None,
        config: oci_desc(&config),
        layers: vec![oci_desc(&layer)],
        subject: None,
        annotations: annotations(&[
            ("org.opencontainers.image.created", CREATED),
            ("org.opencontainers.image.description", description),
            ("org.opencontainers.image.title", &name),
            ("org.opencontainers.image.version", &version),
        ]),
    };
    Artifact {
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest, Style::Compact)),
        blobs: vec![config, layer],
        children: Vec::new(),
    }
}

/// The tag cosign stores a signature under: `sha256-<hex>.sig`.
pub fn cosign_tag(subject_digest: &str) -> String {
    format!("{}.sig", subject_digest.replace(':', "-"))
}

/// A cosign (tag-based, pre-referrers) signature manifest for `subject_digest`, as cosign writes it
/// through go-containerregistry: size-before-digest descriptors, a simplesigning payload layer with
/// the signature annotation, and cosign's near-empty config. The signature itself is random bytes.
pub fn cosign_signature(subject_digest: &str, seed: u64) -> Artifact {
    let payload = cosign_payload("ferry.test/signed", subject_digest);
    cosign_signature_of(payload, &base64(&Rng::new(seed, 0xC05161).bytes(71)))
}

/// The simple-signing payload cosign signs for `subject_digest` named `reference`.
pub fn cosign_payload(reference: &str, subject_digest: &str) -> Vec<u8> {
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"{reference}\"}},\"image\":{{\"docker-manifest-digest\":\"{subject_digest}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
    )
    .into_bytes()
}

/// A cosign signature manifest carrying `payload` and `signature` (base64), as [`cosign_signature`] lays
/// it out.
pub fn cosign_signature_of(payload: Vec<u8>, signature: &str) -> Artifact {
    cosign_signature_with(payload, signature, &[])
}

/// [`cosign_signature_of`] with more layer annotations (a keyless signature's certificate, chain and
/// Rekor bundle).
pub fn cosign_signature_with(
    payload: Vec<u8>,
    signature: &str,
    extra: &[(String, String)],
) -> Artifact {
    let layer = Blob::new(COSIGN_SIMPLESIGNING, payload);
    let config = format!(
        "{{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\",\"history\":[{{\"created\":\"0001-01-01T00:00:00Z\"}}],\"os\":\"\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{}\"]}},\"config\":{{}}}}",
        layer.digest()
    );
    let config = Blob::new(OCI_CONFIG, config.into_bytes());
    let mut layer_desc = size_first_desc(&layer);
    let mut pairs = vec![(COSIGN_SIGNATURE_ANNOTATION, signature)];
    pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    layer_desc.annotations = annotations(&pairs);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST),
        artifact_type: None,
        config: size_first_desc(&config),
        layers: vec![layer_desc],
        subject: None,
        annotations: None,
    };
    Artifact {
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest, Style::Compact)),
        blobs: vec![config, layer],
        children: Vec::new(),
    }
}

/// An OCI 1.1 artifact as `oras attach` writes it: `artifactType`, the empty config (`{}`, inlined
/// as `data`), one payload layer, `subject` pointing at `subject`. Distribution 2.8 stores it but has
/// no referrers API, so it is only reachable by digest or tag.
pub fn artifact_with_subject(subject: &Blob, artifact_type: &str, seed: u64) -> Artifact {
    let empty = Blob::new(OCI_EMPTY, &b"{}"[..]);
    let payload = format!(
        "{{\"ferry-test\":\"attached artifact\",\"seed\":{seed},\"subject\":\"{}\"}}\n",
        subject.digest()
    );
    let layer = Blob::new(OCI_LAYER_TAR, payload.into_bytes());
    let mut layer_desc = oci_desc(&layer);
    layer_desc.annotations = annotations(&[(
        "org.opencontainers.image.title",
        &format!("attachment-{seed}.json"),
    )]);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST),
        artifact_type: Some(artifact_type.to_string()),
        config: OciDescriptor {
            data: Some(base64(&empty.bytes)),
            ..oci_desc(&empty)
        },
        layers: vec![layer_desc],
        subject: Some(oci_desc(subject)),
        annotations: annotations(&[("org.opencontainers.image.created", CREATED)]),
    };
    Artifact {
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest, Style::Compact)),
        blobs: vec![empty, layer],
        children: Vec::new(),
    }
}

/// The artifactType (and layer media type) of a Sigstore bundle stored as an OCI referrer.
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A Sigstore bundle stored as an OCI 1.1 referrer of `subject`, as `cosign sign --new-bundle-format`
/// writes it (`WriteAttestationNewBundleFormat`): artifactType and one layer of the bundle media type,
/// the empty config, cosign's bundle annotations.
pub fn bundle_referrer(subject: &Blob, bundle: Vec<u8>) -> Artifact {
    let empty = Blob::new(OCI_EMPTY, &b"{}"[..]);
    let layer = Blob::new(SIGSTORE_BUNDLE_V03, bundle);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST),
        artifact_type: Some(SIGSTORE_BUNDLE_V03.to_string()),
        config: oci_desc(&empty),
        layers: vec![oci_desc(&layer)],
        subject: Some(oci_desc(subject)),
        annotations: annotations(&[
            ("dev.sigstore.bundle.content", "dsse-envelope"),
            (
                "dev.sigstore.bundle.predicateType",
                "https://sigstore.dev/cosign/sign/v1",
            ),
            ("org.opencontainers.image.created", CREATED),
        ]),
    };
    Artifact {
        manifest: Blob::new(OCI_MANIFEST, to_json(&manifest, Style::Compact)),
        blobs: vec![empty, layer],
        children: Vec::new(),
    }
}

/// The in-toto statement `cosign sign --new-bundle-format` signs for an image: its digest as the subject,
/// predicate type `https://sigstore.dev/cosign/sign/v1`.
pub fn cosign_sign_statement(subject_digest: &str) -> Vec<u8> {
    let (alg, hex) = subject_digest.split_once(':').expect("a digest");
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {alg: hex}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {}
    }))
    .expect("json")
}

/// A key-signed v0.3 bundle holding a DSSE envelope of `statement` with `signature` (made over
/// [`dsse_pae`]), no transparency-log entry (`--tlog-upload=false`).
pub fn key_dsse_bundle(statement: &[u8], signature: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "mediaType": SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": {
            "payload": base64(statement),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64(signature), "keyid": ""}]
        }
    }))
    .expect("json")
}

/// DSSE's pre-authentication encoding of an in-toto `payload`.
pub fn dsse_pae(payload: &[u8]) -> Vec<u8> {
    let t = "application/vnd.in-toto+json";
    let mut out = format!("DSSEv1 {} {t} {} ", t.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// An OCI index listing `referrers` as the referrers API (or its `sha256-<hex>` fallback tag) lists them.
pub fn referrers_index(referrers: &[(&Artifact, &str)]) -> Blob {
    let manifests: Vec<_> = referrers
        .iter()
        .map(|(a, t)| json!({"mediaType": a.manifest.media_type, "digest": a.digest(), "size": a.manifest.size(), "artifactType": t}))
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    Blob::new(OCI_INDEX, serde_json::to_vec(&index).expect("json"))
}

/// A Docker schema1 signed manifest (`application/vnd.docker.distribution.manifest.v1+prettyjws`)
/// for refusal tests. Well-formed JWS JSON (the protected header's `formatLength`/`formatTail` are
/// right) but the signature is NOT cryptographically valid.
///
/// Distribution 2.8 refuses to store schema1 unless `compatibility.schema1.enabled` is set (which
/// [`crate::Registry`] does not), so this cannot be seeded into a test registry: serve it from a
/// stub or write it into an OCI layout instead.
pub fn schema1_manifest() -> Blob {
    let v1_compat = r#"{"id":"5f2f0a8d7d2a7a2b56c6f0e6e1d3c6c0a1b2c3d4e5f60718293a4b5c6d7e8f90","created":"2016-01-01T00:00:00Z","container_config":{"Cmd":["/bin/sh"]},"architecture":"amd64","os":"linux"}"#;
    let body = format!(
        "{{\n   \"schemaVersion\": 1,\n   \"name\": \"ferry/legacy\",\n   \"tag\": \"latest\",\n   \"architecture\": \"amd64\",\n   \"fsLayers\": [\n      {{\n         \"blobSum\": \"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4\"\n      }}\n   ],\n   \"history\": [\n      {{\n         \"v1Compatibility\": {}\n      }}\n   ]",
        serde_json::to_string(v1_compat).expect("string")
    );
    // libtrust signs `body` + "\n}" and records how to rebuild it from the signed document.
    let protected = format!(
        "{{\"formatLength\":{},\"formatTail\":\"{}\",\"time\":\"2016-01-01T00:00:00Z\"}}",
        body.len(),
        base64url(b"\n}")
    );
    let mut rng = Rng::new(1, 0x5C4E3A1);
    let signature = base64url(&rng.bytes(64));
    let (x, y) = (base64url(&rng.bytes(32)), base64url(&rng.bytes(32)));
    let document = format!(
        "{body},\n   \"signatures\": [\n      {{\n         \"header\": {{\n            \"jwk\": {{\n               \"crv\": \"P-256\",\n               \"kid\": \"FERR:YTES:TFIX:TURE:NOTR:EALK:EYAA:AAAA:AAAA:AAAA:AAAA:AAAA\",\n               \"kty\": \"EC\",\n               \"x\": \"{x}\",\n               \"y\": \"{y}\"\n            }},\n            \"alg\": \"ES256\"\n         }},\n         \"signature\": \"{signature}\",\n         \"protected\": \"{}\"\n      }}\n   ]\n}}",
        base64url(protected.as_bytes())
    );
    Blob::new(DOCKER_SCHEMA1_SIGNED, document.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::gunzip_stored;
    use serde_json::Value;

    fn parse(blob: &Blob) -> Value {
        serde_json::from_slice(&blob.bytes).unwrap()
    }

    fn all_fixtures(seed: u64) -> Vec<Artifact> {
        let image = oci_image(seed, 2, "amd64");
        vec![
            oci_image(seed, 3, "arm/v7"),
            oci_image_sized(seed, &[70_000, 10], "amd64"),
            docker_image(seed, 2, "amd64"),
            oci_index(vec![
                (oci_image(seed, 1, "amd64"), "linux", "amd64", None),
                (
                    oci_image(seed + 1, 1, "arm64/v8"),
                    "linux",
                    "arm64",
                    Some("v8"),
                ),
            ]),
            docker_manifest_list(vec![(
                docker_image(seed, 1, "amd64"),
                "linux",
                "amd64",
                None,
            )]),
            nested_index(
                oci_index(vec![(oci_image(seed, 1, "amd64"), "linux", "amd64", None)]),
                vec![(oci_image(seed + 2, 1, "ppc64le"), "linux", "ppc64le", None)],
            ),
            helm_chart(seed),
            cosign_signature(&image.digest(), seed),
            artifact_with_subject(&image.manifest, "application/vnd.example.sbom", seed),
            image_with_foreign_layer(seed),
            image_with_shared_and_duplicate_layers(seed),
            image,
        ]
    }

    #[test]
    fn fixtures_are_deterministic_and_seed_dependent() {
        let a = all_fixtures(7);
        assert_eq!(a, all_fixtures(7));
        assert_eq!(schema1_manifest(), schema1_manifest());
        for (x, y) in a.iter().zip(all_fixtures(8)) {
            assert_ne!(x.digest(), y.digest());
        }
        let layers = |artifact: &Artifact| -> Vec<String> {
            artifact
                .blobs
                .iter()
                .filter(|b| b.media_type != OCI_CONFIG)
                .map(Blob::digest)
                .collect()
        };
        let (one, two) = (oci_image(1, 2, "amd64"), oci_image(2, 2, "amd64"));
        assert!(
            layers(&one).iter().all(|d| !layers(&two).contains(d)),
            "no layer shared across seeds"
        );
    }

    #[test]
    fn digests_are_sha256_of_the_bytes() {
        let blob = Blob::new(OCI_EMPTY, &b"{}"[..]);
        assert_eq!(
            blob.digest(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(blob.size(), 2);
        for artifact in all_fixtures(3) {
            let digest = artifact.digest();
            assert_eq!(digest.len(), "sha256:".len() + 64);
            assert!(digest.starts_with("sha256:"));
            assert!(
                digest[7..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }

    /// Every descriptor in a manifest matches a blob (or child manifest) by digest, size and media type.
    fn check_descriptors(artifact: &Artifact) {
        let json = parse(&artifact.manifest);
        assert_eq!(json["schemaVersion"], 2);
        let known: Vec<&Blob> = artifact
            .blobs
            .iter()
            .chain(artifact.children.iter().map(|c| &c.manifest))
            .collect();
        let mut descs: Vec<&Value> = Vec::new();
        descs.extend(json.get("config"));
        for key in ["layers", "manifests"] {
            descs.extend(
                json.get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
        }
        for desc in descs {
            if desc["mediaType"] == DOCKER_FOREIGN_LAYER {
                assert!(desc["urls"].is_array());
                assert!(
                    !artifact
                        .blobs
                        .iter()
                        .any(|b| desc["digest"] == b.digest().as_str()),
                    "foreign blob not uploaded"
                );
                continue;
            }
            let blob = known
                .iter()
                .find(|b| desc["digest"] == b.digest().as_str())
                .expect("descriptor has a blob");
            assert_eq!(desc["size"], blob.size());
            assert_eq!(desc["mediaType"], blob.media_type.as_str());
        }
        for child in &artifact.children {
            check_descriptors(child);
        }
    }

    #[test]
    fn descriptors_match_blobs() {
        for artifact in all_fixtures(5) {
            check_descriptors(&artifact);
        }
    }

    #[test]
    fn config_diff_ids_are_sha256_of_uncompressed_layers() {
        for image in [
            oci_image(9, 3, "amd64"),
            docker_image(9, 2, "arm/v7"),
            oci_image_sized(9, &[200_000], "amd64"),
        ] {
            let manifest = parse(&image.manifest);
            let config_digest = manifest["config"]["digest"].as_str().unwrap();
            let config = image
                .blobs
                .iter()
                .find(|b| b.digest() == config_digest)
                .unwrap();
            let config = parse(config);
            let diff_ids: Vec<String> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|layer| {
                    let blob = image
                        .blobs
                        .iter()
                        .find(|b| layer["digest"] == b.digest().as_str())
                        .unwrap();
                    let tar = gunzip_stored(&blob.bytes).expect("stored gzip");
                    let mut archive = tar::Archive::new(&tar[..]);
                    assert_eq!(archive.entries().unwrap().count(), 3, "dir, note, data");
                    sha256_digest(&tar)
                })
                .collect();
            assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
            assert_eq!(config["os"], "linux");
        }
        let arm = parse(&docker_image(1, 1, "arm/v7").blobs[0]);
        assert_eq!(
            (arm["architecture"].as_str(), arm["variant"].as_str()),
            (Some("arm"), Some("v7"))
        );
    }

    #[test]
    fn manifests_look_like_real_tools_wrote_them() {
        let oci = String::from_utf8(oci_image(1, 1, "amd64").manifest.bytes.to_vec()).unwrap();
        assert!(
            oci.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:"#),
            "{oci}"
        );
        let docker =
            String::from_utf8(docker_image(1, 1, "amd64").manifest.bytes.to_vec()).unwrap();
        assert!(docker.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": "), "{docker}");

        let helm = helm_chart(1);
        let json = parse(&helm.manifest);
        assert!(json.get("mediaType").is_none(), "helm 3 omits mediaType");
        assert_eq!(json["config"]["mediaType"], HELM_CONFIG);
        assert_eq!(json["layers"][0]["mediaType"], HELM_CHART_LAYER);
        assert_eq!(
            json["annotations"]["org.opencontainers.image.title"],
            "ferry-chart-1"
        );
        assert_eq!(helm.manifest.media_type, OCI_MANIFEST);

        let subject = oci_image(2, 1, "amd64");
        let sig = parse(&cosign_signature(&subject.digest(), 1).manifest);
        assert!(sig["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION].is_string());
        assert_eq!(sig["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(cosign_tag("sha256:abc"), "sha256-abc.sig");

        let attached =
            parse(&artifact_with_subject(&subject.manifest, "application/spdx+json", 1).manifest);
        assert_eq!(attached["artifactType"], "application/spdx+json");
        assert_eq!(attached["config"]["mediaType"], OCI_EMPTY);
        assert_eq!(attached["config"]["data"], "e30=");
        assert_eq!(attached["subject"]["digest"], subject.digest().as_str());

        let index = parse(
            &nested_index(
                oci_index(vec![]),
                vec![(subject.clone(), "linux", "amd64", None)],
            )
            .manifest,
        );
        assert_eq!(index["manifests"][0]["mediaType"], OCI_INDEX);
        assert!(index["manifests"][0].get("platform").is_none());
        assert_eq!(
            index["manifests"][1]["platform"],
            serde_json::json!({"architecture": "amd64", "os": "linux"})
        );
    }

    #[test]
    fn shared_and_duplicate_layers() {
        let (a, b) = (
            image_with_shared_and_duplicate_layers(1),
            image_with_shared_and_duplicate_layers(2),
        );
        let layers = |x: &Artifact| -> Vec<String> {
            parse(&x.manifest)["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect()
        };
        let (la, lb) = (layers(&a), layers(&b));
        assert_eq!(la.len(), 3);
        assert_eq!(la[1], la[2], "duplicate within one manifest");
        assert_eq!(la[0], lb[0], "base shared across seeds");
        assert_ne!(la[1], lb[1]);
        assert_eq!(a.blobs.len(), 3, "config + base + own, each once");
        let index = oci_index(vec![
            (a, "linux", "amd64", None),
            (b, "linux", "arm64", None),
        ]);
        assert_eq!(index.all_blobs().len(), 5, "shared base counted once");
        assert_eq!(index.all_manifests().len(), 3);
        assert_eq!(index.all_manifests().last().unwrap(), &index.manifest);
    }

    #[test]
    fn foreign_layer_is_listed_but_not_uploaded() {
        let image = image_with_foreign_layer(4);
        let json = parse(&image.manifest);
        assert_eq!(json["layers"][0]["mediaType"], DOCKER_FOREIGN_LAYER);
        assert!(
            json["layers"][0]["urls"][0]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
        assert_eq!(image.blobs.len(), 2, "config + the ordinary layer");
        let config = parse(&image.blobs[0]);
        assert_eq!(
            config["rootfs"]["diff_ids"].as_array().unwrap().len(),
            2,
            "foreign layer still has a diff_id"
        );
    }

    #[test]
    fn schema1_is_well_formed_jws() {
        let blob = schema1_manifest();
        assert_eq!(blob.media_type, DOCKER_SCHEMA1_SIGNED);
        let json = parse(&blob);
        assert_eq!(json["schemaVersion"], 1);
        let protected =
            crate::encode::base64_decode(json["signatures"][0]["protected"].as_str().unwrap())
                .unwrap();
        let protected: Value = serde_json::from_slice(&protected).unwrap();
        let len = protected["formatLength"].as_u64().unwrap() as usize;
        let tail = crate::encode::base64_decode(protected["formatTail"].as_str().unwrap()).unwrap();
        // The signed payload is the document up to `signatures`, closed by formatTail.
        let mut payload = blob.bytes[..len].to_vec();
        payload.extend_from_slice(&tail);
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload.get("signatures").is_none());
        assert_eq!(payload["fsLayers"], json["fsLayers"]);
    }
}
