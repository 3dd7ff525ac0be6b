//! Archives and the Docker Engine as sources, end to end through the copy engine (which verifies every
//! byte): real Docker ≥ 25 exports from the shared test data, legacy docker-save tars built here from the
//! fixture images, hostile tars, oci-archive round trips, and the local Docker Engine when it runs.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_archive::{
    ArchiveError, Compression, DockerArchive, DockerDaemon, DockerFormat, Endpoint, OciArchive,
    OciArchiveWriter, OpenOptions, SourceOptions, SourceSpec, open_source,
};
use ferry_copy::{Budget, CopyFailed, CopyOptions, CopyStats, PlatformChoice, select_root};
use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, Hasher, Manifest, PlatformSpec, media_type};
use ferry_store::layout::record_image;
use ferry_store::{OciLayout, ReadStore, WriteStore, WriteTarget};
use ferry_test::Artifact;
use ferry_test::encode::gunzip_stored;
use ferry_test::fixtures;

// ---------------------------------------------------------------------------------------------
// Helpers.

fn testdata(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/zarf-images")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTE: {} is absent; skipping the part of this test that needs it",
            dir.display()
        );
        None
    }
}

/// `dir`'s contents as a tar (what `docker save` streamed), entries sorted.
fn tar_dir(dir: &Path, out: &Path) {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths);
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for p in paths {
        b.append_path_with_name(dir.join(&p), &p).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

/// The graph under `root` copied from `src` to `dst` (no names), four node copies at a time.
async fn graph<D: WriteTarget + 'static>(
    src: Arc<dyn ReadStore>,
    dst: Arc<D>,
    root: &Descriptor,
    known: HashMap<Digest, Bytes>,
) -> Result<CopyStats, CopyFailed> {
    let dst: Arc<dyn WriteTarget> = dst;
    let opts = CopyOptions {
        budget: Budget::new(4),
        ..Default::default()
    };
    ferry_copy::copy_graph(&src, &dst, root, &known, &opts).await
}

/// Copy `root` from `src` into a new layout at `dir` and name it there.
async fn copy_into(
    src: Arc<dyn ReadStore>,
    root: &Descriptor,
    name: &str,
    dir: &Path,
) -> OciLayout {
    let layout = OciLayout::open_or_create(dir).unwrap();
    graph(src, Arc::new(layout.clone()), root, HashMap::new())
        .await
        .unwrap();
    let mut named = root.clone();
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), name.into());
    named
        .annotations
        .insert(ANNOTATION_BASE_NAME.into(), name.into());
    layout
        .update_index(|e| record_image(e, named, vec![]))
        .unwrap();
    layout
}

fn blob_files(layout_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = layout_dir.join("blobs/sha256");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn put(layout: &OciLayout, media_type: &str, bytes: &Bytes) -> Descriptor {
    let desc = Descriptor::of(media_type, bytes);
    let mut w = layout.blob_writer(&desc).await.unwrap();
    w.write(bytes.clone()).await.unwrap();
    w.commit().await.unwrap();
    desc
}

/// Store a fixture artifact in a layout under `name`, as `ferry pull` would have.
async fn add_artifact(layout: &OciLayout, art: &Artifact, name: &str) -> Descriptor {
    for b in art.all_blobs() {
        put(layout, &b.media_type, &b.bytes).await;
    }
    for m in art.all_manifests() {
        put(layout, &m.media_type, &m.bytes).await;
    }
    let mut named = Descriptor::of(art.manifest.media_type.clone(), &art.manifest.bytes);
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), name.into());
    named
        .annotations
        .insert(ANNOTATION_BASE_NAME.into(), name.into());
    layout
        .update_index(|e| record_image(e, named.clone(), vec![]))
        .unwrap();
    named
}

/// A legacy `docker save` tar of fixture images: `<id>.json` configs named by a made-up image ID (not
/// their digest), `<layer id>/layer.tar` uncompressed, a shared layer saved once and symlinked from the
/// second image's directory, as Docker does.
struct Legacy {
    tar: Vec<u8>,
    configs: Vec<Bytes>,
    layers: Vec<Vec<Vec<u8>>>,
}

fn legacy_tar(images: &[(&Artifact, &[&str])]) -> Legacy {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let (mut configs, mut all_layers) = (Vec::new(), Vec::new());
    for (n, (art, tags)) in images.iter().enumerate() {
        let config = art
            .blobs
            .iter()
            .find(|b| b.media_type == fixtures::OCI_CONFIG)
            .unwrap();
        // Not the config digest: engines' "image IDs" are not to be trusted as one.
        let config_name = format!(
            "{}.json",
            Digest::of(format!("image-id-{n}").as_bytes()).hex()
        );
        append(&mut b, &config_name, &config.bytes);
        let mut layer_paths = Vec::new();
        let mut layers = Vec::new();
        for (i, blob) in art
            .blobs
            .iter()
            .filter(|b| b.media_type == fixtures::OCI_LAYER_GZIP)
            .enumerate()
        {
            let tar = gunzip_stored(&blob.bytes).unwrap();
            let id = Digest::of(format!("layer-id-{n}-{i}").as_bytes())
                .hex()
                .to_string();
            let path = format!("{id}/layer.tar");
            match seen.get(&Digest::of(&tar).to_string()) {
                Some(first) => symlink(&mut b, &path, &format!("../{first}")),
                None => {
                    append(&mut b, &format!("{id}/VERSION"), b"1.0");
                    append(&mut b, &path, &tar);
                    seen.insert(Digest::of(&tar).to_string(), path.clone());
                }
            }
            layer_paths.push(path);
            layers.push(tar);
        }
        manifest.push(
            serde_json::json!({"Config": config_name, "RepoTags": tags, "Layers": layer_paths}),
        );
        configs.push(config.bytes.clone());
        all_layers.push(layers);
    }
    append(
        &mut b,
        "manifest.json",
        serde_json::to_string(&manifest).unwrap().as_bytes(),
    );
    Legacy {
        tar: b.into_inner().unwrap(),
        configs,
        layers: all_layers,
    }
}

fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, name, data).unwrap();
}

fn symlink(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, name, target).unwrap();
}

/// An entry written with whatever name and link the test wants (the tar crate's own setters refuse `..`).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    let g = h.as_gnu_mut().unwrap();
    g.name[..name.len()].copy_from_slice(name.as_bytes());
    g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Docker ≥ 25 exports (real ones, from the shared test data).

#[tokio::test]
async fn graph_driver_export_copies_one_manifest_with_uncompressed_layers() {
    let Some(src) = testdata("docker-graph-driver-image-store") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("save.tar");
    tar_dir(&src, &tar);
    let archive = DockerArchive::open(&tar).unwrap();
    assert_eq!(archive.format(), DockerFormat::Oci);
    let images = archive.images().to_vec();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].name.as_deref(),
        Some("docker.io/library/hello-world:linux")
    );
    assert_eq!(
        images[0].desc.digest.to_string(),
        "sha256:40dac9b7451f24939ec924338c7f40d2f10cda3a20b80977a10825cd5a125845"
    );
    assert!(
        images[0].desc.annotations.is_empty(),
        "the export's annotations are not carried"
    );
    assert_eq!(archive.resolve("hello-world:linux").unwrap(), &images[0]);
    let err = archive.resolve("nginx:1.25").unwrap_err().to_string();
    assert!(
        err.contains("nginx:1.25") && err.contains("docker.io/library/hello-world:linux"),
        "{err}"
    );

    let dest = tmp.path().join("layout");
    copy_into(
        Arc::new(archive),
        &images[0].desc,
        "docker.io/library/hello-world:linux",
        &dest,
    )
    .await;
    // Every blob of the export (the config, the manifest, the 11776-byte uncompressed layer) arrived
    // byte-identical; the export's extra blob (its index of attestations, unreferenced) did not.
    for (hex, bytes) in blob_files(&dest) {
        assert_eq!(
            bytes,
            std::fs::read(src.join("blobs/sha256").join(&hex)).unwrap(),
            "{hex}"
        );
    }
    assert_eq!(blob_files(&dest).len(), 3);
}

#[tokio::test]
async fn containerd_export_selects_the_local_platform_of_the_upstream_index() {
    let Some(src) = testdata("docker-containerd-image-store") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("save.tar");
    tar_dir(&src, &tar);
    let archive = Arc::new(DockerArchive::open(&tar).unwrap());
    let image = archive.single().unwrap().clone();
    assert_eq!(
        image.name.as_deref(),
        Some("docker.io/library/hello-world:linux")
    );
    assert_eq!(image.desc.media_type, media_type::OCI_INDEX);

    // A tag that resolves to an index selects one platform (zarf-compat §3), the one whose blobs are here.
    let bytes = archive.fetch_manifest(&image.desc).await.unwrap();
    let amd64 = PlatformChoice::Exactly(PlatformSpec::linux("amd64"));
    let sel = select_root(
        archive.as_ref(),
        image.desc.clone(),
        bytes.clone(),
        false,
        &amd64,
    )
    .await
    .unwrap();
    assert_eq!(
        sel.root.digest.to_string(),
        "sha256:2771e37a12b7bcb2902456ecf3f29bf9ee11ec348e66e8eb322d9780ad7fc2df"
    );
    let dest = tmp.path().join("layout");
    let layout = OciLayout::open_or_create(&dest).unwrap();
    graph(archive.clone(), Arc::new(layout), &sel.root, sel.known)
        .await
        .unwrap();
    for (hex, bytes) in blob_files(&dest) {
        assert_eq!(
            bytes,
            std::fs::read(src.join("blobs/sha256").join(&hex)).unwrap(),
            "{hex}"
        );
    }
    // The whole index cannot be copied: the other platforms' blobs were never in the export.
    let dest2 = tempfile::tempdir().unwrap();
    let layout2 = OciLayout::open_or_create(dest2.path()).unwrap();
    let err = graph(
        archive.clone(),
        Arc::new(layout2),
        &image.desc,
        HashMap::new(),
    )
    .await
    .unwrap_err();
    let mut msg = err.to_string();
    let mut next = std::error::Error::source(&err);
    while let Some(cause) = next {
        msg = format!("{msg}: {cause}");
        next = cause.source();
    }
    assert!(msg.contains("not found in docker-archive"), "{msg}");
}

#[tokio::test]
async fn repo_tags_name_an_entry_without_containerd_annotations() {
    let Some(src) = testdata("docker-graph-driver-image-store") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("export");
    std::fs::create_dir_all(copy.join("blobs/sha256")).unwrap();
    for f in ["oci-layout", "manifest.json"] {
        std::fs::copy(src.join(f), copy.join(f)).unwrap();
    }
    for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    // Only ref.name (the bare tag, as Docker writes it): manifest.json's RepoTags win over it.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
    let mut entry = index["manifests"][0].clone();
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "linux"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(copy.join("index.json"), index.to_string()).unwrap();
    let tar = tmp.path().join("save.tar");
    tar_dir(&copy, &tar);
    let archive = DockerArchive::open(&tar).unwrap();
    assert_eq!(
        archive.images()[0].name.as_deref(),
        Some("docker.io/library/hello-world:linux")
    );
}

// ---------------------------------------------------------------------------------------------
// The legacy format.

#[tokio::test]
async fn legacy_archive_converts_to_a_reproducible_oci_image() {
    let a = fixtures::oci_image(41, 3, "amd64");
    let b = fixtures::oci_image(41, 3, "arm64"); // same layers, another config: the layers are shared
    let legacy = legacy_tar(&[(&a, &["example.com/app:1.0", "app:latest"]), (&b, &[])]);
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), "legacy.tar", &legacy.tar);

    let first = DockerArchive::open(&path).unwrap();
    let again = DockerArchive::open(&path).unwrap();
    assert_eq!(first.format(), DockerFormat::Legacy);
    assert_eq!(first.images(), again.images(), "same input, same digests");
    let names: Vec<_> = first.images().iter().map(|i| i.label()).collect();
    assert_eq!(
        names[..2],
        ["example.com/app:1.0", "docker.io/library/app:latest"]
    );
    assert!(names[2].starts_with("<unnamed sha256:"), "{names:?}");
    let err = first.single().unwrap_err().to_string();
    assert!(
        err.contains("3 images") && err.contains("example.com/app:1.0"),
        "{err}"
    );

    let image = first.resolve("app").unwrap().clone();
    let bytes = first.fetch_manifest(&image.desc).await.unwrap();
    let m = Manifest::parse(&image.desc.media_type, &bytes).unwrap();
    // Config as given (named by its own digest, not the file's image ID), layers as given, uncompressed.
    let config = m.config.clone().unwrap();
    assert_eq!(config.digest, Digest::of(&legacy.configs[0]));
    assert_eq!(config.media_type, media_type::OCI_CONFIG);
    let layer_digests: Vec<String> = m.layers.iter().map(|l| l.digest.to_string()).collect();
    let expected: Vec<String> = legacy.layers[0]
        .iter()
        .map(|t| Digest::of(t).to_string())
        .collect();
    assert_eq!(layer_digests, expected);
    assert!(
        m.layers
            .iter()
            .all(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar")
    );
    let cfg: serde_json::Value = serde_json::from_slice(&legacy.configs[0]).unwrap();
    let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(diff_ids, layer_digests, "diff_ids are the layer digests");
    // Compact, fixed field order.
    let layers_json: Vec<String> = m
        .layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                l.media_type, l.digest, l.size
            )
        })
        .collect();
    assert_eq!(
        String::from_utf8(bytes.to_vec()).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
            config.digest,
            config.size,
            layers_json.join(",")
        )
    );

    // Both images copy (the engine verifies every byte); the second reads its layers through symlinks.
    let dest = tmp.path().join("layout");
    let store: Arc<DockerArchive> = Arc::new(first);
    for img in store.images().to_vec() {
        copy_into(store.clone(), &img.desc, &img.label(), &dest).await;
    }
    let files = blob_files(&dest);
    assert_eq!(
        files.len(),
        2 + 2 + 3,
        "two configs, two manifests, three shared layers"
    );
}

#[tokio::test]
async fn compressed_docker_archives_open_too() {
    let a = fixtures::oci_image(42, 2, "amd64");
    let legacy = legacy_tar(&[(&a, &["app:gz"])]);
    let tmp = tempfile::tempdir().unwrap();
    let mut gz = flate2_gzip(&legacy.tar);
    let path = write_file(tmp.path(), "legacy.tar.gz", &gz);
    let opts = OpenOptions {
        temp_dir: Some(tmp.path().to_path_buf()),
    };
    let archive = DockerArchive::open_with(&path, &opts).unwrap();
    let img = archive.resolve("app:gz").unwrap().clone();
    copy_into(
        Arc::new(archive),
        &img.desc,
        "app:gz",
        &tmp.path().join("l"),
    )
    .await;
    // The decompressed copy went when the archive was dropped.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".ferry-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    gz.truncate(gz.len() - 100);
    std::fs::write(&path, &gz).unwrap();
    let err = DockerArchive::open_with(&path, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("legacy.tar.gz") && err.contains("gzip"),
        "{err}"
    );
}

fn flate2_gzip(data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let raw = write_file(dir.path(), "x.tar", data);
    let out = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&raw)
        .output();
    match out {
        Ok(o) if o.status.success() => o.stdout,
        // No gzip binary: the fixture encoder's stored blocks are valid gzip too.
        _ => ferry_test::encode::gzip_stored(data),
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken tars.

fn open_err(bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), "evil.tar", bytes);
    let err: ArchiveError = DockerArchive::open(&path).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("evil.tar"), "names the archive: {msg}");
    msg
}

fn with_manifest(mut b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    append(&mut b, "manifest.json", b"[]");
    b.into_inner().unwrap()
}

#[test]
fn traversal_absolute_paths_and_symlinks_out_are_refused() {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "../evil", tar::EntryType::Regular, "", b"x");
    let msg = open_err(&with_manifest(b));
    assert!(msg.contains("\"../evil\"") && msg.contains(".."), "{msg}");

    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "/etc/cron.d/evil",
        tar::EntryType::Regular,
        "",
        b"x",
    );
    let msg = open_err(&with_manifest(b));
    assert!(
        msg.contains("/etc/cron.d/evil") && msg.contains("absolute"),
        "{msg}"
    );

    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "blobs/sha256/aa",
        tar::EntryType::Symlink,
        "../../../etc/passwd",
        b"",
    );
    let msg = open_err(&with_manifest(b));
    assert!(
        msg.contains("blobs/sha256/aa") && msg.contains("points outside the archive"),
        "{msg}"
    );

    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "layer.tar",
        tar::EntryType::Symlink,
        "/etc/shadow",
        b"",
    );
    let msg = open_err(&with_manifest(b));
    assert!(msg.contains("points outside the archive"), "{msg}");

    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "manifest.json",
        tar::EntryType::Link,
        "../outside",
        b"",
    );
    let msg = open_err(&b.into_inner().unwrap());
    assert!(msg.contains("points outside the archive"), "{msg}");
}

#[test]
fn truncated_archives_name_the_entry() {
    let a = fixtures::oci_image(43, 2, "amd64");
    let legacy = legacy_tar(&[(&a, &["app:1"])]);
    // Cut inside the second layer's data.
    let msg = open_err(&legacy.tar[..legacy.tar.len() / 2 + 700]);
    assert!(msg.contains("truncated"), "{msg}");
    assert!(msg.contains("layer.tar") || msg.contains("header"), "{msg}");
    // Cut exactly between entries: no end-of-archive marker.
    let mut ar = tar::Archive::new(&legacy.tar[..]);
    let first_end = {
        let e = ar.entries().unwrap().next().unwrap().unwrap();
        (e.raw_file_position() + e.size()).div_ceil(512) * 512
    };
    let msg = open_err(&legacy.tar[..first_end as usize]);
    assert!(
        msg.contains("truncated") && msg.contains("end-of-archive"),
        "{msg}"
    );
}

#[test]
fn oversized_metadata_is_refused_before_it_is_read() {
    let mut b = tar::Builder::new(Vec::new());
    let mut huge = vec![b' '; 5 << 20];
    huge[0] = b'[';
    *huge.last_mut().unwrap() = b']';
    append(&mut b, "manifest.json", &huge);
    let msg = open_err(&b.into_inner().unwrap());
    assert!(
        msg.contains("manifest.json") && msg.contains("limit"),
        "{msg}"
    );
}

#[test]
fn a_tar_that_is_no_image_archive_says_so() {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, "hello.txt", b"hi");
    let msg = open_err(&b.into_inner().unwrap());
    assert!(msg.contains("not a docker save archive"), "{msg}");
    let mut b = tar::Builder::new(Vec::new());
    append(
        &mut b,
        "manifest.json",
        br#"[{"Config":"../c.json","Layers":[]}]"#,
    );
    let msg = open_err(&b.into_inner().unwrap());
    assert!(msg.contains("unsafe path"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// oci-archive.

async fn fixture_layout(dir: &Path) -> Vec<String> {
    let layout = OciLayout::open_or_create(dir).unwrap();
    let single = fixtures::oci_image(50, 2, "amd64");
    let index = fixtures::oci_index(vec![
        (fixtures::oci_image(51, 1, "amd64"), "linux", "amd64", None),
        (
            fixtures::docker_image(52, 2, "arm64"),
            "linux",
            "arm64",
            None,
        ),
    ]);
    add_artifact(&layout, &single, "registry.local/app:1.0").await;
    add_artifact(&layout, &index, "registry.local/multi:2").await;
    layout.tidy();
    vec![
        "registry.local/app:1.0".into(),
        "registry.local/multi:2".into(),
    ]
}

#[tokio::test]
async fn oci_archive_round_trips_byte_identical_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let names = fixture_layout(&src).await;

    for (file, compression) in [
        ("images.tar", Compression::None),
        ("images.tar.zst", Compression::Zstd),
        ("images.tar.gz", Compression::Gzip),
    ] {
        let out = tmp.path().join(file);
        let summary = OciArchive::write(&src, &out).unwrap();
        assert_eq!(summary.compression, compression);
        assert_eq!(summary.blobs, blob_files(&src).len());
        let first = std::fs::read(&out).unwrap();
        OciArchive::write(&src, &out).unwrap();
        assert_eq!(
            first,
            std::fs::read(&out).unwrap(),
            "{file}: written twice, same bytes"
        );

        let archive = Arc::new(OciArchive::open(&out).unwrap());
        let mut listed: Vec<_> = archive
            .images()
            .iter()
            .filter_map(|i| i.name.clone())
            .collect();
        listed.sort();
        assert_eq!(listed, names, "{file}");
        let dest = tmp.path().join(format!("dest-{file}"));
        for img in archive.images().to_vec() {
            copy_into(
                archive.clone(),
                &img.desc,
                img.name.as_deref().unwrap(),
                &dest,
            )
            .await;
        }
        assert_eq!(
            blob_files(&dest),
            blob_files(&src),
            "{file}: every blob byte-identical"
        );
        assert_eq!(
            OciLayout::open(&dest).unwrap().entries().unwrap(),
            OciLayout::open(&src).unwrap().entries().unwrap()
        );
    }

    // The compressed files hold exactly the plain tar, as the standard tools read them.
    let plain = std::fs::read(tmp.path().join("images.tar")).unwrap();
    for (tool, file) in [("zstd", "images.tar.zst"), ("gzip", "images.tar.gz")] {
        if which(tool).is_none() {
            eprintln!("NOTE: {tool} not installed; not checking {file} with it");
            continue;
        }
        let out = std::process::Command::new(tool)
            .arg("-dc")
            .arg(tmp.path().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == plain, "{tool} -dc {file} is the plain tar");
    }

    // The plain tar's order and metadata.
    let mut ar = tar::Archive::new(std::fs::File::open(tmp.path().join("images.tar")).unwrap());
    let entries: Vec<(String, u32, u64, u64)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap() + h.gid().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries[0].0, "oci-layout");
    assert_eq!(entries[1].0, "index.json");
    let blobs: Vec<_> = entries
        .iter()
        .filter(|e| e.0.starts_with("blobs/sha256/") && e.0.len() > 13)
        .collect();
    let mut sorted = blobs.clone();
    sorted.sort();
    assert_eq!(blobs, sorted);
    assert!(blobs.iter().all(|e| e.1 == 0o444));
    assert!(entries.iter().all(|e| e.2 == 0 && e.3 == 0));
}

#[tokio::test]
async fn oci_archive_from_zarf_oras_layout_and_skopeo_interop() {
    let Some(oras) = testdata("oras-oci-layout") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("zarf.tar.zst");
    OciArchive::write(&oras.join("images"), &out).unwrap();
    let archive = Arc::new(OciArchive::open(&out).unwrap());
    let dest = tmp.path().join("dest");
    let layout = OciLayout::open_or_create(&dest).unwrap();
    for img in archive.images() {
        graph(
            archive.clone(),
            Arc::new(layout.clone()),
            &img.desc,
            HashMap::new(),
        )
        .await
        .unwrap();
    }
    for (hex, bytes) in blob_files(&dest) {
        assert_eq!(
            bytes,
            std::fs::read(oras.join("images/blobs/sha256").join(&hex)).unwrap()
        );
    }

    if which("skopeo").is_none() {
        eprintln!("NOTE: skopeo not installed; skipping the skopeo half of this test");
        return;
    }
    // skopeo reads what ferry writes...
    let src = tmp.path().join("src");
    fixture_layout(&src).await;
    let plain = tmp.path().join("ferry.tar");
    OciArchive::write(&src, &plain).unwrap();
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!(
            "oci-archive:{}:registry.local/app:1.0",
            plain.display()
        ))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let ours = OciLayout::open(&src)
        .unwrap()
        .find("registry.local/app:1.0")
        .unwrap();
    assert_eq!(Digest::of(&inspect.stdout), ours[0].digest);
    // ...and ferry reads what skopeo writes, in both archive formats.
    for transport in ["docker-archive", "oci-archive"] {
        let out = tmp.path().join(format!("skopeo-{transport}.tar"));
        let copy = std::process::Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:registry.local/app:1.0", src.display()))
            .arg(format!(
                "{transport}:{}:registry.local/app:1.0",
                out.display()
            ))
            .output()
            .unwrap();
        assert!(
            copy.status.success(),
            "{}",
            String::from_utf8_lossy(&copy.stderr)
        );
        let spec = SourceSpec::parse(&format!(
            "{transport}:{}:registry.local/app:1.0",
            out.display()
        ))
        .unwrap();
        let source = open_source(&spec, &SourceOptions::default()).await.unwrap();
        assert_eq!(source.images.len(), 1, "{transport}");
        let d = tempfile::tempdir().unwrap();
        let l = copy_into(source.store.clone(), &source.images[0].desc, "x", d.path()).await;
        let m = source
            .store
            .fetch_manifest(&source.images[0].desc)
            .await
            .unwrap();
        let m = Manifest::parse(&source.images[0].desc.media_type, &m).unwrap();
        // skopeo's docker-archive holds the layers uncompressed: their digests are the diff_ids.
        if transport == "docker-archive" {
            let fixture = fixtures::oci_image(50, 2, "amd64");
            let want: Vec<Digest> = fixture
                .blobs
                .iter()
                .filter(|b| b.media_type == fixtures::OCI_LAYER_GZIP)
                .map(|b| Digest::of(&gunzip_stored(&b.bytes).unwrap()))
                .collect();
            assert_eq!(
                m.layers
                    .iter()
                    .map(|l| l.digest.clone())
                    .collect::<Vec<_>>(),
                want
            );
        }
        assert!(l.blob_path(&m.config.unwrap().digest).exists());
    }
}

#[tokio::test]
async fn archive_writer_is_a_destination_for_the_engine() {
    let a = fixtures::oci_image(44, 2, "amd64");
    let legacy = legacy_tar(&[(&a, &["app:w"])]);
    let tmp = tempfile::tempdir().unwrap();
    let path = write_file(tmp.path(), "in.tar", &legacy.tar);
    let src = Arc::new(DockerArchive::open(&path).unwrap());
    let img = src.resolve("app:w").unwrap().clone();
    let out = tmp.path().join("out.tar.zst");
    let writer = Arc::new(OciArchiveWriter::create(&out).unwrap());
    graph(src.clone(), writer.clone(), &img.desc, HashMap::new())
        .await
        .unwrap();
    let mut named = img.desc.clone();
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), "docker.io/library/app:w".into());
    writer
        .layout()
        .update_index(|e| record_image(e, named, vec![]))
        .unwrap();
    let writer = Arc::into_inner(writer).unwrap();
    let summary = writer.finish().unwrap();
    assert_eq!(summary.blobs, 4);
    let staging: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".ferry-")
        })
        .collect();
    assert!(staging.is_empty(), "staging removed: {staging:?}");
    let back = OciArchive::open(&out).unwrap();
    assert_eq!(back.resolve("app:w").unwrap().desc.digest, img.desc.digest);
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// The Docker Engine.

/// A connection to the local engine, or `None` (with a note) where there is none.
async fn local_daemon() -> Option<DockerDaemon> {
    let endpoint = match Endpoint::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("NOTE: no usable Docker endpoint ({e}); skipping");
            return None;
        }
    };
    if !endpoint.socket.exists() {
        eprintln!(
            "NOTE: no Docker socket at {}; skipping",
            endpoint.socket.display()
        );
        return None;
    }
    match DockerDaemon::connect_to(endpoint, OpenOptions::default()).await {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("NOTE: Docker Engine not reachable ({e}); skipping");
            None
        }
    }
}

/// A raw Engine API client for what ferry does not do itself (load, delete, info).
fn api(daemon: &DockerDaemon) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .unix_socket(daemon.endpoint().socket.as_path())
        .build()
        .unwrap()
}

async fn delete_image(daemon: &DockerDaemon, name: &str) {
    let _ = api(daemon)
        .delete(format!("http://docker/images/{name}?force=1"))
        .send()
        .await;
}

#[tokio::test]
async fn docker_daemon_export_copies_into_a_layout() {
    let Some(daemon) = local_daemon().await else {
        return;
    };
    let info: serde_json::Value = api(&daemon)
        .get("http://docker/info")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    eprintln!(
        "Docker Engine {} (API {}), storage driver {}, driver status {}",
        daemon.server_version(),
        daemon.api_version(),
        info["Driver"],
        info["DriverStatus"]
    );

    let name = format!("ferry-test/archive-it:{}", std::process::id());
    let art = fixtures::oci_image(45, 2, "amd64");
    let legacy = legacy_tar(&[(&art, &[name.as_str()])]);
    let resp = api(&daemon)
        .post("http://docker/images/load?quiet=1")
        .header("Content-Type", "application/x-tar")
        .body(legacy.tar.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(
        status.is_success() && !body.contains("errorDetail"),
        "load: {status} {body}"
    );

    let endpoint = daemon.endpoint().clone();
    let task_name = name.clone();
    let result = async move {
        let (daemon, name) = (
            DockerDaemon::connect_to(endpoint, OpenOptions::default())
                .await
                .unwrap(),
            task_name,
        );
        let export = daemon
            .export(&name, Some(&PlatformSpec::linux("amd64")))
            .await
            .unwrap();
        assert_eq!(
            export.image.name.as_deref(),
            Some(format!("docker.io/{name}").as_str())
        );
        let tmp = tempfile::tempdir().unwrap();
        let layout = copy_into(
            Arc::new(export.archive),
            &export.image.desc,
            &name,
            tmp.path(),
        )
        .await;
        let bytes = std::fs::read(layout.blob_path(&export.image.desc.digest)).unwrap();
        let m = Manifest::parse(media_type::OCI_MANIFEST, &bytes).unwrap();
        // Whatever format this engine saves in, the config is the one loaded and the layers are the same
        // uncompressed tars (their digests are the diff_ids).
        assert_eq!(m.config.unwrap().digest, Digest::of(&legacy.configs[0]));
        let want: Vec<Digest> = legacy.layers[0].iter().map(|t| Digest::of(t)).collect();
        assert_eq!(
            m.layers
                .iter()
                .map(|l| l.digest.clone())
                .collect::<Vec<_>>(),
            want
        );

        let err = daemon
            .export("ferry-test/absent:404", None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not found") && err.contains(".sock"), "{err}");
        if !daemon.can_export_platform() {
            let err = daemon
                .export(&name, Some(&PlatformSpec::linux("arm64")))
                .await
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("linux/amd64") && err.contains("linux/arm64"),
                "{err}"
            );
        }
    };
    let outcome = tokio::spawn(result).await;
    delete_image(&daemon, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements (ignored: they move hundreds of MB). Run with
// `cargo test --release -p ferry-archive --test archive -- --ignored --nocapture`.

/// A seeded byte stream: incompressible, and the same every run.
struct Noise {
    state: u64,
    left: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize / 8 * 8;
        let n = if n == 0 {
            (self.left as usize).min(buf.len())
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A legacy docker-save tar of `layers` layers of `layer_mb` MiB each, written as it is generated (never
/// in memory). Returns its path.
fn big_legacy_archive(dir: &Path, name: &str, layers: usize, layer_mb: u64) -> PathBuf {
    let mut diff_ids = Vec::new();
    let mut layer_files = Vec::new();
    for i in 0..layers {
        let path = dir.join(format!("layer{i}.tar"));
        let mut w = HashingWriter {
            inner: std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
            hasher: Hasher::new(),
        };
        {
            let mut b = tar::Builder::new(&mut w);
            let size = layer_mb << 20;
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(0o644);
            let noise = Noise {
                state: 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
                left: size,
            };
            b.append_data(&mut h, format!("data/blob-{i}.bin"), noise)
                .unwrap();
            b.finish().unwrap();
        }
        w.flush().unwrap();
        diff_ids.push(w.hasher.finish().to_string());
        layer_files.push(path);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/data"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let out = dir.join("big.tar");
    let mut b = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&out).unwrap(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(config.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "config.json", config.as_bytes())
        .unwrap();
    let mut paths = Vec::new();
    for (i, f) in layer_files.iter().enumerate() {
        let p = format!("l{i}/layer.tar");
        b.append_path_with_name(f, &p).unwrap();
        paths.push(p);
    }
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": [name], "Layers": paths}])
            .to_string();
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", manifest.as_bytes())
        .unwrap();
    b.into_inner().unwrap().flush().unwrap();
    for f in layer_files {
        std::fs::remove_file(f).unwrap();
    }
    out
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_daemon_import_peak_rss() {
    let Some(daemon) = local_daemon().await else {
        return;
    };
    let tmp = tempfile::tempdir_in(
        std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()),
    )
    .unwrap();
    let name = format!("ferry-test/big:{}", std::process::id());
    let mb: u64 = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let archive = big_legacy_archive(tmp.path(), &name, 3, mb / 3);
    let load = std::process::Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    std::fs::remove_file(&archive).unwrap();

    let endpoint = daemon.endpoint().clone();
    let task_name = name.clone();
    let dir = tmp.path().to_path_buf();
    let run = async move {
        let name = task_name;
        // Peak RSS from here on: writing "5" to clear_refs resets VmHWM.
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let before = peak_rss_kib();
        let t = std::time::Instant::now();
        let opts = OpenOptions {
            temp_dir: Some(dir.clone()),
        };
        let daemon = DockerDaemon::connect_to(endpoint, opts).await.unwrap();
        let export = daemon.export(&name, None).await.unwrap();
        let exported = t.elapsed();
        let layout_dir = dir.join("layout");
        let layout = copy_into(
            Arc::new(export.archive),
            &export.image.desc,
            &name,
            &layout_dir,
        )
        .await;
        let total: u64 = std::fs::read_dir(layout.root().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        let peak = peak_rss_kib();
        eprintln!(
            "daemon import of {} MB: export+index {:?}, total {:?}, peak RSS {} MiB (baseline {} MiB)",
            total >> 20,
            exported,
            t.elapsed(),
            peak / 1024,
            before / 1024
        );
        assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
    };
    let outcome = tokio::spawn(run).await;
    delete_image(&daemon, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// For a compressed oci-archive: decompress to one temp file and index it (what ferry does) vs. unpack to a
/// temp directory and open that as an `OciLayout`.
#[test]
#[ignore]
fn measure_temp_file_vs_temp_dir() {
    let tmp = tempfile::tempdir_in(
        std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()),
    )
    .unwrap();
    let mb: u64 = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // A layout with many small blobs and a few big ones, like real images.
    let src = tmp.path().join("src");
    let layout = OciLayout::open_or_create(&src).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..200u64 {
            let mut data = Vec::new();
            if i < 4 {
                // Big layers, already gzip-compressed as registries serve them (random after the magic).
                Noise {
                    state: i + 1,
                    left: (mb << 20) / 4,
                }
                .read_to_end(&mut data)
                .unwrap();
                data[..3].copy_from_slice(&[0x1f, 0x8b, 8]);
            } else {
                // Configs and manifests: small and compressible.
                data = format!(
                    "{{\"blob\":{i},\"pad\":\"{}\"}}",
                    "x".repeat(4096 + i as usize * 97)
                )
                .into_bytes();
            }
            put(&layout, "application/octet-stream", &Bytes::from(data)).await;
        }
    });
    layout.tidy();
    for file in ["bench.tar.zst", "bench.tar.gz"] {
        let archive = tmp.path().join(file);
        let t = std::time::Instant::now();
        OciArchive::write(&src, &archive).unwrap();
        let write = t.elapsed();

        let t = std::time::Instant::now();
        let opened = OciArchive::open_with(
            &archive,
            &OpenOptions {
                temp_dir: Some(tmp.path().to_path_buf()),
            },
        )
        .unwrap();
        let temp_file = t.elapsed();
        drop(opened);

        let t = std::time::Instant::now();
        let unpack = tmp.path().join("unpacked");
        let reader = Compression::open(&archive).unwrap();
        tar::Archive::new(reader).unpack(&unpack).unwrap();
        OciLayout::open(&unpack).unwrap().entries().unwrap();
        let temp_dir = t.elapsed();
        std::fs::remove_dir_all(&unpack).ok();
        eprintln!(
            "{file} ({} MiB, {} MiB of blobs): write {write:?}; open = decompress to temp file + index {temp_file:?}; \
             decompress + unpack to temp dir + open layout {temp_dir:?}",
            std::fs::metadata(&archive).unwrap().len() >> 20,
            mb
        );
    }
}

/// The engine writing straight into an `OciArchiveWriter` gives the archive a layout copy then `export`
/// gives, byte for byte; a blob corrupted in its staging is written again rather than trusted.
#[tokio::test]
async fn archive_writer_matches_layout_then_export() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("src");
    let names = fixture_layout(&src_dir).await;
    let src: Arc<dyn ReadStore> = Arc::new(OciLayout::open(&src_dir).unwrap());
    let entries = OciLayout::open(&src_dir).unwrap().entries().unwrap();

    let via_layout = tmp.path().join("via-layout");
    let layout = OciLayout::open_or_create(&via_layout).unwrap();
    let out_writer = tmp.path().join("writer.tar.zst");
    let writer = Arc::new(OciArchiveWriter::create(&out_writer).unwrap());
    for entry in &entries {
        let root = Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size);
        graph(src.clone(), Arc::new(layout.clone()), &root, HashMap::new())
            .await
            .unwrap();
        graph(src.clone(), writer.clone(), &root, HashMap::new())
            .await
            .unwrap();
        // The first blob written to the staging layout, corrupted in place: `exists` must not trust it.
        if entry == &entries[0] {
            let blob = writer.layout().blob_path(&entry.digest);
            std::fs::remove_file(&blob).unwrap();
            std::fs::write(&blob, vec![b'x'; entry.size as usize]).unwrap();
            assert!(!writer.exists(&root).await.unwrap());
            graph(src.clone(), writer.clone(), &root, HashMap::new())
                .await
                .unwrap();
        }
    }
    for l in [&layout, writer.layout()] {
        l.update_index(|e| e.extend(entries.iter().cloned()))
            .unwrap();
    }
    layout.tidy();
    let writer = Arc::into_inner(writer).unwrap();
    writer.finish().unwrap();
    let out_export = tmp.path().join("export.tar.zst");
    OciArchive::write(&via_layout, &out_export).unwrap();
    assert_eq!(
        std::fs::read(&out_writer).unwrap(),
        std::fs::read(&out_export).unwrap()
    );
    let back = OciArchive::open(&out_writer).unwrap();
    for n in &names {
        back.resolve(n).unwrap();
    }
}

#[tokio::test]
async fn a_layout_wrapped_in_one_directory_is_read_as_zarf_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let wrap = tmp.path().join("wrap");
    let names = fixture_layout(&wrap.join("images")).await;
    let out = tmp.path().join("wrapped.tar");
    // `tar -cf wrapped.tar images/`: every entry under one directory, as Zarf's imageArchives allow.
    tar_dir(&wrap, &out);
    let archive = Arc::new(OciArchive::open(&out).unwrap());
    let found: Vec<String> = archive
        .images()
        .iter()
        .filter_map(|i| i.name.clone())
        .collect();
    for n in &names {
        assert!(found.contains(n), "{n} in {found:?}");
    }
    let image = archive.resolve(&names[0]).unwrap().desc.clone();
    let dest = tmp.path().join("copied");
    copy_into(archive.clone(), &image, &names[0], &dest).await;
    assert!(!blob_files(&dest).is_empty());
}
