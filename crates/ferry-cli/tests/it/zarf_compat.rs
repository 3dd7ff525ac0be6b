//! Compatibility with layouts real Zarf releases and Docker wrote (`../shared/testdata/zarf-images`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_copy::{CopyOptions, PlatformChoice, copy};
use ferry_oci::{Descriptor, Manifest, PlatformSpec};
use ferry_store::{OciLayout, ReadTarget, WriteTarget};
use ferry_test::{Artifact, Blob, Mode, Registry};

use crate::support::Env;

/// The shared test data, or `None` with a loud note (set FERRY_REQUIRE_TESTDATA=1 to make absence fail).
pub fn testdata() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/zarf-images");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("FERRY_REQUIRE_TESTDATA").is_none(),
        "Zarf test data missing at {}",
        dir.display()
    );
    eprintln!("SKIPPED: Zarf test data not found at {}", dir.display());
    None
}

/// Build a seedable artifact from a layout: the manifest at `desc` and everything below it that the layout
/// holds.
fn artifact_from_layout(layout: &Path, desc: &Descriptor) -> Artifact {
    let read =
        |d: &Descriptor| std::fs::read(layout.join("blobs/sha256").join(d.digest.hex())).unwrap();
    let bytes = read(desc);
    let manifest = Manifest::parse(&desc.media_type, &bytes).unwrap();
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    for s in manifest.successors() {
        if ferry_oci::media_type::is_manifest_like(&s.media_type) {
            children.push(artifact_from_layout(layout, &s));
        } else {
            blobs.push(Blob::new(s.media_type.clone(), read(&s)));
        }
    }
    Artifact {
        manifest: Blob::new(desc.media_type.clone(), bytes),
        blobs,
        children,
    }
}

#[tokio::test]
async fn pull_writes_the_same_index_entries_as_zarf_oras_era() {
    let Some(data) = testdata() else { return };
    let oras = data.join("oras-oci-layout/images");
    let zarf_index = std::fs::read_to_string(oras.join("index.json")).unwrap();
    let layout = OciLayout::open(&oras).unwrap();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host();

    // Seed the registry with what Zarf pulled, under the original repository paths.
    let wanted = [
        (
            "ghcr.io/stefanprodan/charts/podinfo:6.4.0",
            "stefanprodan/charts/podinfo",
            Some("6.4.0"),
        ),
        (
            "ghcr.io/stefanprodan/podinfo:sha256-57a654ace69ec02ba8973093b6a786faa15640575fbf0dbb603db55aca2ccec8.sig",
            "stefanprodan/podinfo",
            Some("sha256-57a654ace69ec02ba8973093b6a786faa15640575fbf0dbb603db55aca2ccec8.sig"),
        ),
        (
            "docker.io/library/hello-world@sha256:03b62250a3cb1abd125271d393fc08bf0cc713391eda6b57c02d1ef85efcc25c",
            "library/hello-world",
            None,
        ),
    ];
    for (name, repo, tag) in wanted {
        let desc = layout.find(name).unwrap().remove(0);
        reg.seed(repo, tag, &artifact_from_layout(&oras, &desc))
            .await;
    }

    let env = Env::new();
    let out = env.path("images");
    let mut args = vec![
        "pull".to_string(),
        "-o".into(),
        out.display().to_string(),
        "-q".into(),
        "--registry-override".into(),
        format!("ghcr.io={host}"),
        "--registry-override".into(),
        format!("docker.io={host}"),
    ];
    args.extend(wanted.iter().map(|w| w.0.to_string()));
    env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    // Each entry ferry wrote appears byte for byte in the index.json Zarf wrote.
    let ours: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let written = std::fs::read_to_string(out.join("index.json")).unwrap();
    assert_eq!(ours["manifests"].as_array().unwrap().len(), 3);
    for entry in OciLayout::open(&out).unwrap().entries().unwrap() {
        let bytes = String::from_utf8(ferry_oci::gojson::to_vec(&entry).unwrap()).unwrap();
        assert!(written.contains(&bytes));
        assert!(
            zarf_index.contains(&bytes),
            "entry not as Zarf writes it:\n{bytes}\nZarf:\n{zarf_index}"
        );
    }
}

#[tokio::test]
async fn layouts_from_both_zarf_eras_and_docker_are_read_and_verified() {
    let Some(data) = testdata() else { return };
    let before = tree_digest(&data);
    for (dir, images) in [
        ("crane-oci-layout/images", 6),
        ("oras-oci-layout/images", 6),
        ("docker-graph-driver-image-store", 1),
        ("docker-containerd-image-store", 1),
    ] {
        let src = OciLayout::open(&data.join(dir)).unwrap();
        let source: Arc<dyn ReadTarget> = Arc::new(src.clone());
        let entries = src.entries().unwrap();
        assert_eq!(entries.len(), images, "{dir}");
        let out = tempfile::tempdir().unwrap();
        let dest = OciLayout::open_or_create(out.path()).unwrap();
        let dest_target: Arc<dyn WriteTarget> = Arc::new(dest.clone());
        // The containerd export holds only the local platform's blobs of its index: select like a pull.
        let opts = CopyOptions {
            platform: PlatformChoice::Auto(PlatformSpec::linux("amd64")),
            ..Default::default()
        };
        for entry in entries {
            let name = entry.image_name().unwrap();
            copy(
                &source,
                &name,
                &dest_target,
                std::slice::from_ref(&name),
                &opts,
            )
            .await
            .unwrap_or_else(|e| panic!("{dir}: {name}: {e:?}"));
            assert!(
                !dest.find(&name).unwrap().is_empty(),
                "{dir}: {name} recorded"
            );
        }
    }
    // Crane-era names without a registry normalize to the same references as ORAS-era ones.
    let crane = OciLayout::open(&data.join("crane-oci-layout/images")).unwrap();
    let names: Vec<String> = crane
        .entries()
        .unwrap()
        .iter()
        .map(|e| {
            ferry_oci::Reference::parse(&e.image_name().unwrap())
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        names.contains(&"docker.io/library/local-test:1.0.0".to_string()),
        "{names:?}"
    );
    assert_eq!(tree_digest(&data), before, "test data is never modified");
}

#[tokio::test]
async fn pulled_layout_entries_resolve_by_both_names() {
    let Some(data) = testdata() else { return };
    // Crane era: base.name only. Both eras must find every image by its name.
    for dir in ["crane-oci-layout/images", "oras-oci-layout/images"] {
        let layout = OciLayout::open(&data.join(dir)).unwrap();
        for e in layout.entries().unwrap() {
            let name = e.image_name().unwrap().to_string();
            let found = layout.find(&name).unwrap();
            assert!(found.iter().any(|f| f.digest == e.digest), "{dir}: {name}");
        }
    }
}

/// A digest of every file's path, size and bytes under `dir`.
pub fn tree_digest(dir: &Path) -> String {
    let mut h = ferry_oci::Hasher::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    files.sort();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(&std::fs::read(&f).unwrap());
    }
    h.finish().to_string()
}

/// Rename the (only) image of a layout: both name annotations of its `index.json` entry.
fn rename_only_image(layout: &Path, name: &str) {
    let path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    assert_eq!(entries.len(), 1);
    for key in [
        "org.opencontainers.image.ref.name",
        "org.opencontainers.image.base.name",
    ] {
        entries[0]["annotations"][key] = name.into();
    }
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Issue 12 item 8: Zarf's "already transformed" test is a raw string prefix, so an image on
/// `127.0.0.1:5099` counts as inside `127.0.0.1:50991` and `localhost/x` as inside `localhost:50991`.
/// ferry compares whole hosts: both go to the registry given (zarf-compat §2).
#[tokio::test]
async fn push_compares_registry_hosts_at_boundaries() {
    let reg = Registry::start(Mode::Plain);
    let host = reg.host();
    let port = host.rsplit_once(':').unwrap().1.to_string();
    let image = ferry_test::fixtures::oci_image(310, 1, "amd64");
    reg.seed("app/web", Some("1"), &image).await;
    let env = Env::new();
    // Another registry whose host:port is a string prefix of the target's.
    let shorter = format!("127.0.0.1:{}", &port[..port.len() - 1]);
    for (name, target) in [
        (format!("{shorter}/app/web:1"), host.clone()),
        (
            "localhost/myapp:dev".to_string(),
            format!("localhost:{port}"),
        ),
    ] {
        let layout = env.path(&format!("layout-{}", name.replace(['/', ':'], "_")));
        env.ok(&[
            "pull",
            &format!("{host}/app/web:1"),
            "-o",
            layout.to_str().unwrap(),
            "-q",
        ])
        .await;
        rename_only_image(&layout, &name);
        env.ok(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &target,
            "-q",
        ])
        .await;
        for pushed in ferry_zarf::push_names(&name.parse().unwrap(), &target, false) {
            let r: ferry_oci::Reference = pushed.parse().unwrap();
            assert_eq!(r.registry, target, "{name} goes to {target}");
            let (_, bytes) = reg
                .get_manifest(&r.repository, &r.target())
                .await
                .unwrap_or_else(|| panic!("{pushed} is not in {target}"));
            assert_eq!(bytes, image.manifest.bytes.as_ref());
        }
    }
}

/// Issue 13 item 3: a two-document zarf.yaml (v1alpha1, `---`, v1beta1) is read as Zarf reads it — the
/// v1beta1 document — with `selector.flavor` (`--flavor`) and `selector.architecture` (`-a`, else
/// `metadata.architecture`) choosing components, and `imageArchives` images taken from their archive.
#[tokio::test]
async fn pull_from_a_two_document_zarf_yaml_selects_what_zarf_would() {
    let reg = Registry::start(Mode::Plain);
    let host = reg.host();
    for (i, repo) in ["base", "up", "ib", "arm", "alpha-only"].iter().enumerate() {
        reg.seed(
            repo,
            Some("1"),
            &ferry_test::fixtures::helm_chart(320 + i as u64),
        )
        .await;
    }
    let env = Env::new();
    let pkg = env.path("pkg");
    std::fs::create_dir_all(pkg.join("archives")).unwrap();
    // An image only in the archive: its registry is gone once the archive is written.
    let archived = {
        let gone = Registry::start(Mode::Plain);
        gone.seed("x", Some("1"), &ferry_test::fixtures::helm_chart(330))
            .await;
        let name = format!("{}/x:1", gone.host());
        let archive = format!("oci-archive:{}", pkg.join("archives/app.tar").display());
        env.ok(&["pull", &name, "-o", &archive, "-q"]).await;
        name
    };
    let yaml = format!(
        "apiVersion: zarf.dev/v1alpha1
kind: ZarfPackageConfig
metadata:
  name: demo
  architecture: amd64
components:
- name: base
  required: true
  images: [{host}/alpha-only:1]
---
apiVersion: zarf.dev/v1beta1
kind: ZarfPackageConfig
metadata:
  name: demo
  architecture: amd64
components:
- name: base
  images:
  - name: {host}/base:1
- name: up
  optional: true
  selector:
    flavor: upstream
  images:
  - name: {host}/up:1
    source: registry
- name: ib
  selector:
    flavor: ironbank
  images:
  - name: {host}/ib:1
- name: arm
  selector:
    architecture: arm64
  images:
  - name: {host}/arm:1
- name: archived
  imageArchives:
  - path: archives/app.tar
    images:
    - {archived}
"
    );
    let zarf = pkg.join("zarf.yaml");
    std::fs::write(&zarf, yaml).unwrap();
    let cases: [(&[&str], Vec<String>); 3] = [
        (
            &["--flavor", "upstream"],
            vec![
                format!("{host}/base:1"),
                format!("{host}/up:1"),
                archived.clone(),
            ],
        ),
        (
            &["--flavor", "ironbank", "-a", "arm64"],
            vec![
                format!("{host}/base:1"),
                format!("{host}/ib:1"),
                format!("{host}/arm:1"),
                archived.clone(),
            ],
        ),
        (&[], vec![format!("{host}/base:1"), archived.clone()]),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let out = env.path(&format!("out-{i}"));
        let mut args = vec![
            "pull",
            "-f",
            zarf.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend(flags.iter());
        env.ok(&args).await;
        let mut names: Vec<String> = crate::support::entries(&out)
            .into_iter()
            .filter_map(|(_, n)| n)
            .collect();
        names.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(names, expected, "{flags:?}");
        // The package code reads the same file the same way.
        let def = ferry_zarf::Definition::parse("demo", &std::fs::read(&zarf).unwrap()).unwrap();
        let arch = if flags.contains(&"arm64") {
            "arm64"
        } else {
            "amd64"
        };
        let flavor = flags.get(1).copied().unwrap_or("");
        let mut from_model: Vec<String> = def
            .images_for(arch, flavor)
            .into_iter()
            .map(|s| s.name)
            .collect();
        from_model.sort();
        assert_eq!(from_model, expected);
    }
}
