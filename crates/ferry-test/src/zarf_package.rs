//! A realistic Zarf package, built deterministically: `zarf.yaml` with components and images, component
//! tars, the `images/` OCI layout (ORAS era: `ref.name` + `base.name`; or Crane era: `base.name` only, Docker
//! Hub names without `docker.io/`), `sboms.tar`, `checksums.txt` and the aggregate checksum — as a directory,
//! a `.tar` and a `.tar.zst`, entries in the order Zarf's archiver writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::artifact::Artifact;
use crate::encode::sha256_digest;
use crate::fixtures;

/// One image of the package: the name `zarf.yaml` lists, and its content.
#[derive(Clone, Debug)]
pub struct PackageImage {
    /// The name as `zarf.yaml` lists it.
    pub name: String,
    /// The image's content.
    pub artifact: Artifact,
}

/// One component of a [`PackageSpec`].
#[derive(Clone, Debug)]
pub struct ComponentSpec {
    /// The component's name.
    pub name: String,
    /// Whether it is `required: true`.
    pub required: bool,
    /// Names of [`PackageSpec::images`] this component deploys.
    pub images: Vec<String>,
    /// Files inside `components/<name>.tar`, below `<name>/`.
    pub files: Vec<(String, Vec<u8>)>,
}

/// What package to build: metadata, components, images, layout era.
#[derive(Clone, Debug)]
pub struct PackageSpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.version`.
    pub version: String,
    /// `metadata.description`.
    pub description: String,
    /// `build.architecture`.
    pub architecture: String,
    /// `build.flavor`, if any.
    pub flavor: Option<String>,
    /// The components, in order.
    pub components: Vec<ComponentSpec>,
    /// Every image the components name, with content.
    pub images: Vec<PackageImage>,
    /// Write `images/` as Zarf ≤ v0.50 did: only `base.name`, Docker Hub names without `docker.io/`,
    /// `oci-layout` pretty-printed.
    pub crane_era: bool,
}

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct ZarfPackage {
    /// The package as a directory.
    pub dir: PathBuf,
    /// The same package as a `.tar`.
    pub tar: PathBuf,
    /// The same package as a `.tar.zst`.
    pub tar_zst: PathBuf,
    /// Every file of the package by relative path, with its content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The aggregate checksum: the sha256 (hex) of `checksums.txt`, as `zarf.yaml` records it.
    pub aggregate: String,
    /// What it was built from.
    pub spec: PackageSpec,
}

impl ZarfPackage {
    /// The images a component deploys, with their content.
    pub fn images_of(&self, component: &str) -> Vec<&PackageImage> {
        let c = self
            .spec
            .components
            .iter()
            .find(|c| c.name == component)
            .expect("component in spec");
        c.images
            .iter()
            .map(|n| {
                self.spec
                    .images
                    .iter()
                    .find(|i| &i.name == n)
                    .expect("image in spec")
            })
            .collect()
    }
}

/// The reference docker normalization gives `name` (`nginx:1.25` → `docker.io/library/nginx:1.25`).
pub fn normalize_name(name: &str) -> String {
    let first = name.split('/').next().unwrap_or("");
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// How Crane-era Zarf recorded a name: Docker Hub images without `docker.io/`.
fn crane_name(name: &str) -> String {
    let n = normalize_name(name);
    n.strip_prefix("docker.io/")
        .map(str::to_string)
        .unwrap_or(n)
}

impl PackageSpec {
    /// Two components and four images: `web` (required) deploys an OCI image and a Docker v2s2 image;
    /// `tools` an OCI image sharing a base layer with `web`'s, and a two-platform index pinned by digest
    /// (kept whole, its children listed unnamed). `seed` varies the image content.
    pub fn sample(name: &str, architecture: &str, seed: u64) -> PackageSpec {
        let web = fixtures::image_with_shared_and_duplicate_layers(seed);
        let nginx = fixtures::docker_image(seed + 1, 2, "amd64");
        let tools = fixtures::image_with_shared_and_duplicate_layers(seed + 2);
        let multi = fixtures::oci_index(vec![
            (
                fixtures::oci_image(seed + 3, 1, "amd64"),
                "linux",
                "amd64",
                None,
            ),
            (
                fixtures::oci_image(seed + 4, 1, "arm64"),
                "linux",
                "arm64",
                None,
            ),
        ]);
        let multi_name = format!("ghcr.io/ferry-test/multi@{}", multi.digest());
        let images = vec![
            PackageImage {
                name: "ghcr.io/ferry-test/web:1.0".into(),
                artifact: web,
            },
            PackageImage {
                name: "nginx:1.25".into(),
                artifact: nginx,
            },
            PackageImage {
                name: "ghcr.io/ferry-test/tools:2.1".into(),
                artifact: tools,
            },
            PackageImage {
                name: multi_name.clone(),
                artifact: multi,
            },
        ];
        PackageSpec {
            name: name.to_string(),
            version: "1.0.0".into(),
            description: "A package ferry's tests build".into(),
            architecture: architecture.to_string(),
            flavor: None,
            components: vec![
                ComponentSpec {
                    name: "web".into(),
                    required: true,
                    images: vec!["ghcr.io/ferry-test/web:1.0".into(), "nginx:1.25".into()],
                    files: vec![(
                        "manifests/deployment-0.yaml".into(),
                        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n".to_vec(),
                    )],
                },
                ComponentSpec {
                    name: "tools".into(),
                    required: false,
                    images: vec!["ghcr.io/ferry-test/tools:2.1".into(), multi_name],
                    files: vec![
                        ("files/0/tool.sh".into(), b"#!/bin/sh\necho tool\n".to_vec()),
                        (
                            "manifests/job-0.yaml".into(),
                            b"apiVersion: batch/v1\nkind: Job\n".to_vec(),
                        ),
                    ],
                },
            ],
            images,
            crane_era: false,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Desc>,
}

/// Write the package as `<out>/<name>/` (a directory), `<out>/zarf-package-<name>-<arch>-<version>.tar`
/// and `.tar.zst`.
pub fn build(spec: &PackageSpec, out: &Path) -> ZarfPackage {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    // images/: every blob, index.json naming each image.
    let mut entries: Vec<Desc> = Vec::new();
    for image in &spec.images {
        let a = &image.artifact;
        for b in a.all_blobs().iter().chain(a.all_manifests().iter()) {
            files.insert(
                format!("images/blobs/sha256/{}", &b.digest()["sha256:".len()..]),
                b.bytes.to_vec(),
            );
        }
        let mut annotations = BTreeMap::new();
        if spec.crane_era {
            annotations.insert(
                "org.opencontainers.image.base.name".to_string(),
                crane_name(&image.name),
            );
        } else {
            let n = normalize_name(&image.name);
            annotations.insert("org.opencontainers.image.base.name".to_string(), n.clone());
            annotations.insert("org.opencontainers.image.ref.name".to_string(), n);
        }
        entries.push(Desc {
            media_type: a.manifest.media_type.clone(),
            digest: a.digest(),
            size: a.manifest.size(),
            annotations,
        });
        // An index kept whole: its children are listed too, unnamed (as oras-go writes them).
        if !spec.crane_era {
            for child in &a.children {
                entries.push(Desc {
                    media_type: child.manifest.media_type.clone(),
                    digest: child.digest(),
                    size: child.manifest.size(),
                    annotations: BTreeMap::new(),
                });
            }
        }
    }
    entries.sort_by(|a, b| a.digest.cmp(&b.digest));
    let index = Index {
        schema_version: 2,
        media_type: fixtures::OCI_INDEX,
        manifests: entries,
    };
    files.insert(
        "images/index.json".into(),
        serde_json::to_vec(&index).expect("index JSON"),
    );
    files.insert(
        "images/oci-layout".into(),
        if spec.crane_era {
            b"{\n    \"imageLayoutVersion\": \"1.0.0\"\n}".to_vec()
        } else {
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
        },
    );

    // components/<name>.tar: the component's directory.
    for c in &spec.components {
        let mut tar_entries: Vec<(String, Option<&[u8]>)> = vec![(format!("{}/", c.name), None)];
        let mut dirs: Vec<String> = Vec::new();
        for (path, _) in &c.files {
            let mut acc = c.name.clone();
            for part in path.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
                acc = format!("{acc}/{part}");
                if !dirs.contains(&acc) {
                    dirs.push(acc.clone());
                }
            }
        }
        for d in &dirs {
            tar_entries.push((format!("{d}/"), None));
        }
        for (path, data) in &c.files {
            tar_entries.push((format!("{}/{path}", c.name), Some(data.as_slice())));
        }
        let borrowed: Vec<(&str, Option<&[u8]>)> =
            tar_entries.iter().map(|(p, d)| (p.as_str(), *d)).collect();
        files.insert(
            format!("components/{}.tar", c.name),
            fixtures::tar_archive(&borrowed),
        );
    }

    // sboms.tar: one SBOM per image and the viewer page.
    let sboms: Vec<(String, Vec<u8>)> = spec
        .images
        .iter()
        .map(|i| {
            let safe: String = i
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                format!("{safe}.json"),
                format!(
                    "{{\"artifacts\":[],\"source\":{{\"name\":\"{}\"}}}}",
                    i.name
                )
                .into_bytes(),
            )
        })
        .chain(std::iter::once((
            "sbom-viewer.html".to_string(),
            b"<html><body>SBOMs</body></html>".to_vec(),
        )))
        .collect();
    let borrowed: Vec<(&str, Option<&[u8]>)> = sboms
        .iter()
        .map(|(p, d)| (p.as_str(), Some(d.as_slice())))
        .collect();
    files.insert("sboms.tar".into(), fixtures::tar_archive(&borrowed));

    // checksums.txt and the aggregate, then zarf.yaml (listed in neither).
    let mut lines: Vec<String> = files
        .iter()
        .map(|(p, b)| format!("{} {p}", &sha256_digest(b)["sha256:".len()..]))
        .collect();
    lines.sort();
    let checksums: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let aggregate = sha256_digest(checksums.as_bytes())["sha256:".len()..].to_string();
    files.insert("checksums.txt".into(), checksums.into_bytes());
    files.insert("zarf.yaml".into(), zarf_yaml(spec, &aggregate).into_bytes());

    let dir = out.join(&spec.name);
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, data) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let base = format!(
        "zarf-package-{}-{}-{}{}",
        spec.name,
        spec.architecture,
        spec.version,
        spec.flavor
            .as_ref()
            .map(|f| format!("-{f}"))
            .unwrap_or_default()
    );
    let tar = out.join(format!("{base}.tar"));
    let tar_zst = out.join(format!("{base}.tar.zst"));
    write_tar(&dir, &tar, false);
    write_tar(&dir, &tar_zst, true);
    ZarfPackage {
        dir,
        tar,
        tar_zst,
        files,
        aggregate,
        spec: spec.clone(),
    }
}

fn zarf_yaml(spec: &PackageSpec, aggregate: &str) -> String {
    let mut y = String::new();
    y.push_str("kind: ZarfPackageConfig\nmetadata:\n");
    y.push_str(&format!("  name: {}\n", spec.name));
    y.push_str(&format!("  description: {}\n", spec.description));
    y.push_str(&format!("  version: {}\n", spec.version));
    y.push_str("  authors: ferry\n");
    y.push_str(&format!("  aggregateChecksum: {aggregate}\n"));
    y.push_str("build:\n  terminal: ferry-test\n  user: ferry\n");
    y.push_str(&format!("  architecture: {}\n", spec.architecture));
    y.push_str("  timestamp: Mon, 01 Jan 2024 12:00:00 +0100\n  version: v0.51.0\n");
    if let Some(f) = &spec.flavor {
        y.push_str(&format!("  flavor: {f}\n"));
    }
    y.push_str("components:\n");
    for c in &spec.components {
        y.push_str(&format!("- name: {}\n", c.name));
        if c.required {
            y.push_str("  required: true\n");
        }
        if !c.images.is_empty() {
            y.push_str("  images:\n");
            for i in &c.images {
                y.push_str(&format!("  - {i}\n"));
            }
        }
    }
    y
}

/// Tar `dir` as Zarf's archiver does (names sorted, each directory before its contents, `dir/` names for
/// directories), optionally zstd-compressed. Used by [`build`], and by tests that edit a package directory.
pub fn write_tar(dir: &Path, out: &Path, zstd: bool) {
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, dir, dir);
    let tar = builder.into_inner().expect("tar");
    let bytes = if zstd {
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest)
    } else {
        tar
    };
    std::fs::write(out, bytes).expect("write package tarball");
}

fn append(builder: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_704_067_200);
        h.set_uid(0);
        h.set_gid(0);
        if path.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            builder
                .append_data(&mut h, format!("{rel}/"), std::io::empty())
                .unwrap();
            append(builder, root, &path);
        } else {
            let data = std::fs::read(&path).unwrap();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            builder.append_data(&mut h, &rel, &data[..]).unwrap();
        }
    }
}
