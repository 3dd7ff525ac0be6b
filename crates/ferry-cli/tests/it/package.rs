//! `ferry package inspect|verify|publish|pull` and `ferry push` of packages, on packages the fixture
//! generator builds (`ferry_test::zarf_package`), against the real registry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry_test::faults::FaultProxy;
use ferry_test::zarf_package::{self, PackageSpec, ZarfPackage, normalize_name};
use ferry_test::{Artifact, Mode, Registry};
use serde_json::Value;

use crate::support::{Env, json};

const ZARF_CONFIG: &str = "application/vnd.zarf.config.v1+json";
const ZARF_LAYER: &str = "application/vnd.zarf.layer.v1.blob";
const TITLE: &str = "org.opencontainers.image.title";

fn sample(env: &Env, dir: &str, arch: &str) -> ZarfPackage {
    zarf_package::build(&PackageSpec::sample("demo", arch, 900), &env.path(dir))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Every file under `dir` by relative path, with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, data) in tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// The bytes of everything below an image (manifests included), each digest once.
fn image_bytes(a: &Artifact) -> u64 {
    a.all_blobs()
        .iter()
        .chain(a.all_manifests().iter())
        .map(|b| b.size())
        .sum()
}

/// Every digest of an image's graph.
fn digests(a: &Artifact) -> BTreeSet<String> {
    a.all_blobs()
        .iter()
        .chain(a.all_manifests().iter())
        .map(|b| b.digest())
        .collect()
}

/// `images/blobs/sha256/<hex>` for every digest of these images.
fn blob_files(images: &[&zarf_package::PackageImage]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|i| digests(&i.artifact))
        .map(|d| format!("images/blobs/sha256/{}", hex(&d)))
        .collect()
}

#[tokio::test]
async fn inspect_and_verify_every_form() {
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    for (path, format) in [
        (&pkg.dir, "directory"),
        (&pkg.tar, "tar"),
        (&pkg.tar_zst, "tar.zst"),
    ] {
        let v = json(&env.ok(&["package", "inspect", s(path), "--json"]).await);
        assert_eq!(v["format"], format);
        assert_eq!(v["name"], "demo");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["architecture"], "amd64");
        assert_eq!(v["files"], pkg.files.len());
        let comps: Vec<(&str, bool)> = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["required"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(comps, vec![("web", true), ("tools", false)]);
        let images = v["images"].as_array().unwrap();
        assert_eq!(images.len(), 4, "{v:#}");
        for i in &pkg.spec.images {
            let got = images
                .iter()
                .find(|x| x["name"] == normalize_name(&i.name))
                .unwrap_or_else(|| panic!("{} in {v:#}", i.name));
            assert_eq!(got["digest"], i.artifact.digest());
            assert_eq!(got["size"], image_bytes(&i.artifact), "{}", i.name);
        }
        let integrity = &v["integrity"];
        assert_eq!(integrity["ok"], true, "{integrity:#}");
        assert_eq!(integrity["checked"], pkg.files.len() - 2);
        assert_eq!(integrity["aggregateChecksum"], pkg.aggregate);

        let out = env.ok(&["package", "verify", s(path)]).await;
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok ("));
    }
    // Human-readable form names what matters.
    let out = env.ok(&["package", "inspect", s(&pkg.tar_zst)]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "demo",
        "1.0.0",
        "amd64",
        "web (required)",
        "docker.io/library/nginx:1.25",
        "Integrity:    ok",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
}

/// A way to break a package: its name, the edit, and words the error must contain.
type Tamper<'a> = (&'a str, &'a dyn Fn(&Path), &'a [&'a str]);

#[tokio::test]
async fn verify_names_the_file_that_is_wrong() {
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    let cases: [Tamper; 4] = [
        (
            "edited",
            &|d: &Path| std::fs::write(d.join("components/web.tar"), b"not the tar").unwrap(),
            &["components/web.tar", "content hashes to"],
        ),
        (
            "missing",
            &|d: &Path| std::fs::remove_file(d.join("sboms.tar")).unwrap(),
            &["sboms.tar", "missing"],
        ),
        (
            "extra",
            &|d: &Path| std::fs::write(d.join("notes.txt"), b"hi").unwrap(),
            &["notes.txt", "not listed"],
        ),
        (
            "aggregate",
            &|d: &Path| {
                let y = std::fs::read_to_string(d.join("zarf.yaml")).unwrap();
                let y = y.replace(&pkg.aggregate, &"0".repeat(64));
                std::fs::write(d.join("zarf.yaml"), y).unwrap();
            },
            &["aggregateChecksum", "checksums.txt"],
        ),
    ];
    for (name, tamper, words) in cases {
        let dir = env.path(&format!("bad-{name}/demo"));
        copy_dir(&pkg.dir, &dir);
        tamper(&dir);
        let zst = env.path(&format!("bad-{name}.tar.zst"));
        zarf_package::write_tar(&dir, &zst, true);
        for p in [&dir, &zst] {
            let err = env.fails(&["package", "verify", s(p)]).await;
            assert!(err.contains("failed verification"), "{name}: {err}");
            for w in words {
                assert!(err.contains(w), "{name}: {w:?} in {err}");
            }
            let out = env.ferry(&["package", "verify", s(p), "--json"]).await;
            assert_eq!(out.status.code(), Some(1));
            let v = json(&out);
            assert_eq!(v["ok"], false, "{name}");
            assert!(!v["problems"].as_array().unwrap().is_empty());
            // inspect reports, and still succeeds.
            let v = json(&env.ok(&["package", "inspect", s(p), "--json"]).await);
            assert_eq!(v["integrity"]["ok"], false, "{name}");
        }
    }
    // Absent files are fine for a partial package, but only then.
    let dir = env.path("partial/demo");
    copy_dir(&pkg.dir, &dir);
    std::fs::remove_file(dir.join("components/web.tar")).unwrap();
    env.ok(&["package", "verify", s(&dir), "--partial"]).await;
    env.fails(&["package", "verify", s(&dir)]).await;
}

/// The names Zarf pushes `image` under in `target`, as (repository, tag-or-digest).
fn zarf_names(image: &str, target: &str) -> Vec<(String, String)> {
    ferry_zarf::push_names(&image.parse().unwrap(), target, false)
        .into_iter()
        .map(|n| {
            let r: ferry_oci::Reference = n.parse().unwrap();
            (r.repository.clone(), r.target())
        })
        .collect()
}

async fn assert_pushed(reg: &Registry, pkg: &ZarfPackage, target: &str) {
    for i in &pkg.spec.images {
        for (repo, reference) in zarf_names(&i.name, target) {
            let (_, bytes) = reg
                .get_manifest(&repo, &reference)
                .await
                .unwrap_or_else(|| panic!("{repo}:{reference} ({})", i.name));
            assert_eq!(bytes, i.artifact.manifest.bytes.as_ref(), "{}", i.name);
            for b in i.artifact.all_blobs() {
                assert!(
                    reg.blob_exists(&repo, &b.digest()).await,
                    "{repo} {}",
                    b.digest()
                );
            }
        }
    }
}

#[tokio::test]
async fn push_from_a_directory_a_tar_and_a_tar_zst() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    for (i, path) in [&pkg.dir, &pkg.tar, &pkg.tar_zst].iter().enumerate() {
        let target = format!("{}/ns{i}", reg.host());
        let v = json(
            &env.ok(&["push", s(path), "--registry", &target, "--json"])
                .await,
        );
        assert_eq!(v.as_array().unwrap().len(), 4, "{v:#}");
        assert_pushed(&reg, &pkg, &target).await;
    }
    // Nothing is left behind beside the package: the unpacked images/ went with the push.
    let left: Vec<String> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A package that fails verification is not pushed, unless asked, and then with a warning.
    let dir = env.path("bad/demo");
    copy_dir(&pkg.dir, &dir);
    std::fs::write(dir.join("components/web.tar"), b"edited").unwrap();
    let zst = env.path("bad.tar.zst");
    zarf_package::write_tar(&dir, &zst, true);
    for (i, p) in [&dir, &zst].iter().enumerate() {
        let target = format!("{}/bad{i}", reg.host());
        let err = env.fails(&["push", s(p), "--registry", &target]).await;
        assert!(
            err.contains("failed verification")
                && err.contains("components/web.tar")
                && err.contains("--skip-verify"),
            "{err}"
        );
        let web = &pkg.spec.images[0];
        for (repo, reference) in zarf_names(&web.name, &target) {
            assert!(
                reg.get_manifest(&repo, &reference).await.is_none(),
                "nothing pushed"
            );
        }
        let out = env
            .ok(&["push", s(p), "--registry", &target, "--skip-verify"])
            .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not verifying"), "{err}");
        assert_pushed(&reg, &pkg, &target).await;
    }
}

async fn get_blob(reg: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let url = format!("{}/v2/{repo}/blobs/{digest}", reg.base_url());
    let resp = reg.client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

async fn index_of(reg: &Registry, repo: &str, tag: &str) -> Value {
    let (ct, bytes) = reg.get_manifest(repo, tag).await.expect("package index");
    assert_eq!(ct, "application/vnd.oci.image.index.v1+json");
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn publish_writes_zarfs_oci_format_and_pulls_back_byte_identical() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    let dest = format!("oci://{}/packages", reg.host());
    let v = json(
        &env.ok(&["package", "publish", s(&pkg.dir), &dest, "--json"])
            .await,
    );
    let digest = v["digest"].as_str().unwrap().to_string();
    assert_eq!(
        v["reference"],
        format!("{}/packages/demo:1.0.0", reg.host())
    );
    assert_eq!(v["layers"], pkg.files.len());

    // The tag names an index with this architecture's entry.
    let index = index_of(&reg, "packages/demo", "1.0.0").await;
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(entries[0]["digest"], digest);
    assert_eq!(
        entries[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "multi"})
    );

    // The manifest: config, one titled layer per file sorted by digest, Zarf's annotations.
    let (ct, bytes) = reg.get_manifest("packages/demo", &digest).await.unwrap();
    assert_eq!(ct, "application/vnd.oci.image.manifest.v1+json");
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.zarf.config.v1+json","#),
        "{text}"
    );
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(m.get("artifactType").is_none());
    let layers = m["layers"].as_array().unwrap();
    let mut titles = BTreeSet::new();
    let mut prev = String::new();
    for l in layers {
        assert_eq!(l["mediaType"], ZARF_LAYER);
        let title = l["annotations"][TITLE].as_str().unwrap().to_string();
        let data = &pkg.files[&title];
        assert_eq!(
            l["digest"],
            ferry_test::encode::sha256_digest(data),
            "{title}"
        );
        assert_eq!(l["size"], data.len());
        let d = l["digest"].as_str().unwrap().to_string();
        assert!(d >= prev, "layers sorted by digest");
        prev = d;
        titles.insert(title);
    }
    assert_eq!(titles, pkg.files.keys().cloned().collect::<BTreeSet<_>>());
    let ann = m["annotations"].as_object().unwrap();
    assert_eq!(ann[TITLE], "demo");
    assert_eq!(
        ann["org.opencontainers.image.description"],
        pkg.spec.description
    );
    assert_eq!(ann["org.opencontainers.image.authors"], "ferry");
    assert_eq!(
        ann["org.opencontainers.image.created"],
        "2024-01-01T11:00:00Z"
    );
    assert_eq!(m["config"]["mediaType"], ZARF_CONFIG);
    let config = get_blob(
        &reg,
        "packages/demo",
        m["config"]["digest"].as_str().unwrap(),
    )
    .await;
    let config_text = String::from_utf8(config.clone()).unwrap();
    assert!(
        config_text.starts_with(r#"{"kind":"ZarfPackageConfig","metadata":{"name":"demo","#),
        "{config_text}"
    );
    let c: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(c["metadata"]["aggregateChecksum"], pkg.aggregate);
    assert_eq!(c["components"].as_array().unwrap().len(), 2);

    // Idempotent, and the same package as a tarball is the same manifest.
    let again = json(
        &env.ok(&["package", "publish", s(&pkg.tar_zst), &dest, "--json"])
            .await,
    );
    assert_eq!(again["digest"], digest);
    assert_eq!(again["blobs"]["fetched"], 0, "{again:#}");
    assert_eq!(index_of(&reg, "packages/demo", "1.0.0").await, index);

    // Pulled back: every file byte for byte, nothing else; and as a .tar.zst that verifies.
    let reference = format!("oci://{}/packages/demo:1.0.0", reg.host());
    let out = env.path("pulled/demo");
    let v = json(
        &env.ok(&["package", "pull", &reference, "-o", s(&out), "--json"])
            .await,
    );
    assert_eq!(v["integrity"]["ok"], true, "{v:#}");
    assert_eq!(v["files"], pkg.files.len());
    assert_eq!(tree(&out), pkg.files);
    let zst = env.path("pulled/demo.tar.zst");
    env.ok(&["package", "pull", &reference, "-o", s(&zst), "-q"])
        .await;
    env.ok(&["package", "verify", s(&zst)]).await;
    let v = json(&env.ok(&["package", "inspect", s(&zst), "--json"]).await);
    assert_eq!(v["name"], "demo");
    // An existing directory is never overwritten: it receives the package file, named as Zarf names it.
    env.ok(&["package", "pull", &reference, "-o", s(&out), "-q"])
        .await;
    let mut files = tree(&out);
    assert!(
        files
            .remove("zarf-package-demo-amd64-1.0.0.tar.zst")
            .is_some()
    );
    assert_eq!(files, pkg.files);

    // A second architecture adds an entry; publishing the first again replaces its own.
    let arm = sample(&env, "out-arm", "arm64");
    let v = json(
        &env.ok(&["package", "publish", s(&arm.tar_zst), &dest, "--json"])
            .await,
    );
    let arm_digest = v["digest"].as_str().unwrap().to_string();
    assert_ne!(arm_digest, digest);
    let index = index_of(&reg, "packages/demo", "1.0.0").await;
    let archs: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["platform"]["architecture"].as_str().unwrap(),
                e["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        archs,
        vec![("amd64", digest.as_str()), ("arm64", arm_digest.as_str())]
    );
    env.ok(&["package", "publish", s(&pkg.dir), &dest, "-q"])
        .await;
    assert_eq!(index_of(&reg, "packages/demo", "1.0.0").await, index);
    // With two architectures, -a chooses; the remote package inspects and verifies without a download.
    let v = json(
        &env.ok(&["package", "inspect", &reference, "-a", "arm64", "--json"])
            .await,
    );
    assert_eq!(v["architecture"], "arm64");
    assert_eq!(v["digest"], arm_digest);
    assert_eq!(v["integrity"]["ok"], true);
    assert_eq!(v["images"].as_array().unwrap().len(), 4);
    env.ok(&["package", "verify", &reference, "-a", "amd64"])
        .await;
    let out = env.path("pulled-arm");
    let v = json(
        &env.ok(&[
            "package",
            "pull",
            &reference,
            "-a",
            "arm64",
            "-o",
            s(&out),
            "--json",
        ])
        .await,
    );
    assert_eq!(v["architecture"], "arm64");
    assert_eq!(tree(&out), arm.files);
    let err = env
        .fails(&[
            "package",
            "pull",
            &reference,
            "-a",
            "s390x",
            "-o",
            s(&env.path("x")),
        ])
        .await;
    assert!(
        err.contains("s390x") && err.contains("amd64, arm64"),
        "{err}"
    );

    // --tag overrides the version.
    env.ok(&[
        "package",
        "publish",
        s(&pkg.dir),
        &dest,
        "--tag",
        "stable",
        "-q",
    ])
    .await;
    assert_eq!(
        index_of(&reg, "packages/demo", "stable").await["manifests"][0]["digest"],
        digest
    );
}

#[tokio::test]
async fn partial_pull_fetches_only_the_chosen_components() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    // A signature (over the whole package's zarf.yaml): not listed in checksums.txt.
    std::fs::write(
        pkg.dir.join("zarf.bundle.sig"),
        b"{\"signature\":\"over the original\"}",
    )
    .unwrap();
    env.ok(&[
        "package",
        "publish",
        s(&pkg.dir),
        &format!("oci://{}", reg.host()),
        "-q",
    ])
    .await;
    let reference = format!("oci://{}/demo:1.0.0", reg.host());
    let out = env.path("web");
    let pulled = env
        .ok(&[
            "package",
            "pull",
            &reference,
            "--components",
            "web",
            "-o",
            s(&out),
            "--json",
        ])
        .await;
    let v = json(&pulled);
    let stderr = String::from_utf8_lossy(&pulled.stderr);
    assert!(
        stderr.contains("zarf.bundle.sig") && stderr.contains("no longer matches"),
        "{stderr}"
    );
    assert_eq!(v["integrity"]["ok"], true, "{v:#}");
    assert_eq!(
        v["integrity"]["partial"], false,
        "a whole package of its own"
    );
    let got: BTreeSet<String> = tree(&out).keys().cloned().collect();
    let web = pkg.images_of("web");
    let mut want: BTreeSet<String> = [
        "zarf.yaml",
        "checksums.txt",
        "components/web.tar",
        "images/index.json",
        "images/oci-layout",
        "sboms.tar",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.extend(blob_files(&web));
    assert_eq!(got, want);
    // The base layer tools shares with web is there; tools' own blobs are not.
    let tools_only: BTreeSet<String> = blob_files(&pkg.images_of("tools"))
        .difference(&blob_files(&web))
        .cloned()
        .collect();
    assert!(!tools_only.is_empty() && tools_only.is_disjoint(&got));
    let rewritten = ["zarf.yaml", "checksums.txt", "images/index.json"];
    for (rel, data) in tree(&out) {
        if !rewritten.contains(&rel.as_str()) {
            assert_eq!(&data, &pkg.files[&rel], "{rel}");
        }
    }
    // The definition keeps the chosen (and required) components; the index its images.
    let def = ferry_zarf::Definition::parse("web", &std::fs::read(out.join("zarf.yaml")).unwrap())
        .unwrap();
    assert_eq!(
        def.components
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["web"]
    );
    assert_eq!(def.build.signed, Some(false));
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("images/index.json")).unwrap()).unwrap();
    let names: BTreeSet<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        names,
        web.iter()
            .map(|i| normalize_name(&i.name))
            .collect::<BTreeSet<_>>()
    );

    // Zarf accepts it as a whole package; so do ferry's verify and push, without flags.
    zarf_validate_package_integrity(&out, false).unwrap();
    env.ok(&["package", "verify", s(&out)]).await;
    let dst = Registry::start(Mode::Plain);
    env.ok(&["push", s(&out), "--registry", &dst.host(), "-q"])
        .await;
    for image in &web {
        let name = normalize_name(&image.name);
        for pushed in ferry_zarf::push_names(&name.parse().unwrap(), &dst.host(), false) {
            let r: ferry_oci::Reference = pushed.parse().unwrap();
            assert!(
                dst.get_manifest(&r.repository, &r.target()).await.is_some(),
                "{pushed}"
            );
        }
    }
    // The original (unchanged) package fails Zarf's check when files are missing, as before.
    std::fs::remove_file(pkg.dir.join("sboms.tar")).unwrap();
    assert!(zarf_validate_package_integrity(&pkg.dir, false).is_err());
    assert!(zarf_validate_package_integrity(&pkg.dir, true).is_ok());

    // Choosing every optional component is the whole package, signature and all.
    let all = env.path("all");
    env.ok(&[
        "package",
        "pull",
        &reference,
        "--components",
        "tools",
        "-o",
        s(&all),
        "-q",
    ])
    .await;
    assert!(all.join("zarf.bundle.sig").is_file());
    env.ok(&["package", "verify", s(&all)]).await;

    let err = env
        .fails(&[
            "package",
            "pull",
            &reference,
            "--components",
            "nope",
            "-o",
            s(&env.path("n")),
        ])
        .await;
    assert!(
        err.contains("\"nope\"") && err.contains("web, tools"),
        "{err}"
    );
    assert!(!env.path("n").exists());
}

/// A port of Zarf's `validatePackageIntegrity` (v0.84, `src/pkg/packager/layout/package.go`), run on what
/// ferry writes: the aggregate over `checksums.txt`, every line (`<sha> <path>`, split on single spaces)
/// present and matching unless partial, no file left unlisted except the definition, the list, the two
/// signature names and, when signed, `build.provenanceFiles`; then the path checks on names.
pub(crate) fn zarf_validate_package_integrity(dir: &Path, is_partial: bool) -> Result<(), String> {
    let sha = |p: &Path| ferry_test::encode::sha256_digest(&std::fs::read(p).unwrap());
    let yaml = std::fs::read(dir.join("zarf.yaml")).map_err(|e| e.to_string())?;
    let checksums_path = dir.join("checksums.txt");
    let checksums = std::fs::read_to_string(&checksums_path).map_err(|e| e.to_string())?;
    // AsV1alpha1 of the document Zarf decodes: v1beta1 when present.
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_slice(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect();
    let beta = docs
        .iter()
        .find(|d| d["apiVersion"].as_str() == Some("zarf.dev/v1beta1"));
    let alpha = docs.iter().find(|d| {
        d.get("apiVersion")
            .is_none_or(|v| v.as_str() == Some("zarf.dev/v1alpha1"))
    });
    let pkg = beta.or(alpha).ok_or("no package definition")?;
    let aggregate = match beta {
        Some(b) => b["build"]["aggregateChecksum"].as_str(),
        None => pkg["metadata"]["aggregateChecksum"].as_str(),
    }
    .unwrap_or("");
    if hex(&sha(&checksums_path)) != aggregate {
        return Err(format!(
            "checksums.txt does not match the aggregate {aggregate}"
        ));
    }
    let mut files: BTreeSet<String> = tree(dir).keys().cloned().collect();
    for f in [
        "zarf.yaml",
        "checksums.txt",
        "zarf.yaml.sig",
        "zarf.bundle.sig",
    ] {
        files.remove(f);
    }
    let signed = match pkg["build"]["signed"].as_bool() {
        Some(s) => s,
        None => dir.join("zarf.yaml.sig").exists(),
    };
    if signed {
        for f in pkg["build"]["provenanceFiles"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            files.remove(f.as_str().unwrap_or(""));
        }
    }
    for line in checksums.split('\n') {
        if line.is_empty() {
            continue;
        }
        let split: Vec<&str> = line.split(' ').collect();
        if split.len() != 2 || split[0].is_empty() || split[1].is_empty() {
            return Err(format!("invalid checksum line: {line}"));
        }
        let (want, rel) = (split[0], split[1]);
        if !files.contains(rel) {
            if is_partial {
                continue;
            }
            return Err(format!("file {rel} from checksum missing in layout"));
        }
        if hex(&sha(&dir.join(rel))) != want {
            return Err(format!("{rel}: sha mismatch"));
        }
        files.remove(rel);
    }
    if !files.is_empty() {
        return Err(format!(
            "package contains additional files not present in the checksum {files:?}"
        ));
    }
    let clean = |s: &str| s != ".." && !s.contains(['/', '\\']);
    let text = |v: &serde_yaml::Value| v.as_str().map(str::to_string).unwrap_or_default();
    for name in [
        &pkg["metadata"]["name"],
        &pkg["metadata"]["version"],
        &pkg["build"]["flavor"],
    ] {
        if !clean(&text(name)) {
            return Err(format!("{name:?} would result in an invalid path"));
        }
    }
    for c in pkg["components"].as_sequence().into_iter().flatten() {
        if !clean(&text(&c["name"])) {
            return Err(format!(
                "component name {:?} would result in an invalid path",
                c["name"]
            ));
        }
    }
    Ok(())
}

/// GETs of blobs (not manifests) since request `from` whose digest is in `digests`.
fn blob_gets(proxy: &FaultProxy, from: usize, digests: &BTreeSet<String>) -> Vec<String> {
    proxy.requests()[from..]
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
        .filter_map(|r| {
            let d = r.path.rsplit('/').next().unwrap().to_string();
            digests.contains(&d).then_some(d)
        })
        .collect()
}

#[tokio::test]
async fn one_cache_for_images_and_packages_both_ways() {
    let reg = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&reg.host());
    let host = proxy.host();
    let env_setup = Env::new();
    let pkg = sample(&env_setup, "out", "amd64");
    let web = &pkg.spec.images[0];
    reg.seed("ferry-test/web", Some("1.0"), &web.artifact).await;
    env_setup
        .ok(&[
            "package",
            "publish",
            s(&pkg.dir),
            &format!("oci://{}", reg.host()),
            "-q",
        ])
        .await;
    let reference = format!("oci://{host}/demo:1.0.0");
    let image = format!("{host}/ferry-test/web:1.0");
    let web_digests = digests(&web.artifact);
    let web_blobs: BTreeSet<String> = web
        .artifact
        .all_blobs()
        .iter()
        .map(|b| b.digest())
        .collect();

    // Image first, then the package: none of the image's blobs is downloaded again.
    let env = Env::new();
    env.ok(&[
        "pull",
        &image,
        "-o",
        s(&env.path("images")),
        "--plain-http",
        "-a",
        "amd64",
        "-q",
    ])
    .await;
    assert_eq!(
        blob_gets(&proxy, 0, &web_blobs).len(),
        web_blobs.len(),
        "the image pull fetched its blobs"
    );
    let mark = proxy.requests().len();
    let v = json(
        &env.ok(&[
            "package",
            "pull",
            &reference,
            "-o",
            s(&env.path("pkg")),
            "--plain-http",
            "--json",
        ])
        .await,
    );
    assert_eq!(blob_gets(&proxy, mark, &web_digests), Vec::<String>::new());
    assert!(
        v["fromCache"].as_u64().unwrap() >= web_blobs.len() as u64,
        "{v:#}"
    );
    assert_eq!(
        v["fetched"].as_u64().unwrap() + v["fromCache"].as_u64().unwrap(),
        v["blobs"]["fetched"].as_u64().unwrap()
            + v["blobs"]["cached"].as_u64().unwrap()
            + v["blobs"]["linked"].as_u64().unwrap()
    );
    assert!(
        v["fetched"].as_u64().unwrap() > 0,
        "the rest of the package is fetched"
    );
    // And pulling it again downloads nothing at all.
    let mark = proxy.requests().len();
    let v = json(
        &env.ok(&[
            "package",
            "pull",
            &reference,
            "-o",
            s(&env.path("pkg2")),
            "--plain-http",
            "--json",
        ])
        .await,
    );
    assert_eq!(v["fetched"], 0, "{v:#}");
    assert!(
        proxy.requests()[mark..]
            .iter()
            .all(|r| !r.path.contains("/blobs/"))
    );

    // Package first, then the image: its config and layers come from the cache.
    let env = Env::new();
    env.ok(&[
        "package",
        "pull",
        &reference,
        "-o",
        s(&env.path("pkg")),
        "--plain-http",
        "-q",
    ])
    .await;
    let mark = proxy.requests().len();
    let v = json(
        &env.ok(&[
            "pull",
            &image,
            "-o",
            s(&env.path("images")),
            "--plain-http",
            "-a",
            "amd64",
            "--json",
        ])
        .await,
    );
    assert_eq!(blob_gets(&proxy, mark, &web_digests), Vec::<String>::new());
    let b = &v[0]["blobs"];
    assert_eq!(
        b["cached"].as_u64().unwrap() + b["linked"].as_u64().unwrap(),
        web_blobs.len() as u64,
        "{v:#}"
    );
}

#[tokio::test]
async fn a_package_failing_verification_is_never_published_unless_asked() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    let dir = env.path("bad/demo");
    copy_dir(&pkg.dir, &dir);
    std::fs::write(dir.join("notes.txt"), b"unexpected").unwrap();
    let dest = format!("oci://{}", reg.host());
    let err = env.fails(&["package", "publish", s(&dir), &dest]).await;
    assert!(
        err.contains("failed verification")
            && err.contains("notes.txt")
            && err.contains("--skip-verify"),
        "{err}"
    );
    assert!(reg.get_manifest("demo", "1.0.0").await.is_none());
    let out = env
        .ok(&[
            "package",
            "publish",
            s(&dir),
            &dest,
            "--skip-verify",
            "--json",
        ])
        .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("not verifying"));
    let digest = json(&out)["digest"].as_str().unwrap().to_string();
    let (_, bytes) = reg.get_manifest("demo", &digest).await.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("\"notes.txt\""));
}

#[tokio::test]
async fn crane_era_packages_work_like_oras_era_ones() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let mut spec = PackageSpec::sample("old", "amd64", 950);
    spec.crane_era = true;
    let pkg = zarf_package::build(&spec, &env.path("out"));
    let index = String::from_utf8(pkg.files["images/index.json"].clone()).unwrap();
    assert!(index.contains("\"library/nginx:1.25\"") && !index.contains("ref.name"));

    let v = json(
        &env.ok(&["package", "inspect", s(&pkg.tar_zst), "--json"])
            .await,
    );
    let names: BTreeSet<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains("library/nginx:1.25"), "{names:?}");
    assert_eq!(v["integrity"]["ok"], true);

    let target = format!("{}/crane", reg.host());
    env.ok(&["push", s(&pkg.tar), "--registry", &target, "-q"])
        .await;
    assert_pushed(&reg, &pkg, &target).await;

    env.ok(&[
        "package",
        "publish",
        s(&pkg.tar_zst),
        &format!("oci://{}", reg.host()),
        "-q",
    ])
    .await;
    let out = env.path("web");
    env.ok(&[
        "package",
        "pull",
        &format!("oci://{}/old:1.0.0", reg.host()),
        "--components",
        "web",
        "-o",
        s(&out),
        "-q",
    ])
    .await;
    let got: BTreeSet<String> = tree(&out).keys().cloned().collect();
    assert!(got.is_superset(&blob_files(&pkg.images_of("web"))));
    assert!(!got.contains("components/tools.tar"));
    env.ok(&["package", "verify", s(&out), "--partial"]).await;
}

/// Issue 13 item 1: the config is `json.Marshal` of Zarf's v1alpha1 structs after migrations, so the
/// manifest digest is the one `zarf package publish` gives. The config bytes below are written by hand from
/// Zarf's Go source (struct order, `omitempty`, never-omitted structs, `build.migrations`), the manifest
/// from oras-go's packing; publishing twice gives exactly that digest both times.
#[tokio::test]
async fn publish_twice_gives_the_manifest_digest_zarf_would() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    let spec = &pkg.spec;
    let images = |c: usize| {
        spec.components[c]
            .images
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let empty_actions = r#""actions":{"onCreate":{"defaults":{"shell":{}}},"onDeploy":{"defaults":{"shell":{}}},"onRemove":{"defaults":{"shell":{}}}}"#;
    let config = format!(
        concat!(
            r#"{{"kind":"ZarfPackageConfig","metadata":{{"name":"demo","description":"{desc}","version":"1.0.0","authors":"ferry","aggregateChecksum":"{agg}"}},"#,
            r#""build":{{"terminal":"ferry-test","user":"ferry","architecture":"amd64","timestamp":"Mon, 01 Jan 2024 12:00:00 +0100","version":"v0.51.0","migrations":["scripts-to-actions","pluralize-set-variable"]}},"#,
            r#""components":[{{"name":"web","required":true,"only":{{"cluster":{{}}}},"import":{{}},"images":[{web}],"scripts":{{}},{actions}}},"#,
            r#"{{"name":"tools","only":{{"cluster":{{}}}},"import":{{}},"images":[{tools}],"scripts":{{}},{actions}}}],"#,
            r#""values":{{}}}}"#
        ),
        desc = spec.description,
        agg = pkg.aggregate,
        web = images(0),
        tools = images(1),
        actions = empty_actions,
    );
    let sha = |b: &[u8]| ferry_test::encode::sha256_digest(b);
    let mut layers: Vec<(String, usize, &String)> = pkg
        .files
        .iter()
        .map(|(title, data)| (sha(data), data.len(), title))
        .collect();
    layers.sort();
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n, t)| {
            format!(r#"{{"mediaType":"{ZARF_LAYER}","digest":"{d}","size":{n},"annotations":{{"{TITLE}":"{t}"}}}}"#)
        })
        .collect();
    let manifest = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""config":{{"mediaType":"{ct}","digest":"{cd}","size":{cn}}},"layers":[{layers}],"#,
            r#""annotations":{{"org.opencontainers.image.authors":"ferry","org.opencontainers.image.created":"2024-01-01T11:00:00Z","org.opencontainers.image.description":"{desc}","{title}":"demo"}}}}"#
        ),
        ct = ZARF_CONFIG,
        cd = sha(config.as_bytes()),
        cn = config.len(),
        layers = layers.join(","),
        desc = spec.description,
        title = TITLE,
    );
    let predicted = sha(manifest.as_bytes());
    let dest = format!("oci://{}/packages", reg.host());
    for _ in 0..2 {
        let v = json(
            &env.ok(&["package", "publish", s(&pkg.dir), &dest, "--json"])
                .await,
        );
        assert_eq!(v["digest"], predicted);
    }
    let (_, bytes) = reg.get_manifest("packages/demo", &predicted).await.unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), manifest);
    assert_eq!(
        get_blob(&reg, "packages/demo", &sha(config.as_bytes())).await,
        config.as_bytes()
    );
}

/// Issue 13 item 4: `package pull -o DIR` into an existing directory writes the package file there, named
/// as Zarf names it.
#[tokio::test]
async fn pull_into_an_existing_directory_writes_zarfs_file_name() {
    let reg = Registry::start(Mode::Plain);
    let env = Env::new();
    let pkg = sample(&env, "out", "amd64");
    env.ok(&[
        "package",
        "publish",
        s(&pkg.dir),
        &format!("oci://{}", reg.host()),
        "-q",
    ])
    .await;
    let dir = env.path("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("other.txt"), b"already here").unwrap();
    let reference = format!("oci://{}/demo:1.0.0", reg.host());
    env.ok(&["package", "pull", &reference, "-o", s(&dir), "-q"])
        .await;
    let file = dir.join("zarf-package-demo-amd64-1.0.0.tar.zst");
    assert!(file.is_file());
    env.ok(&["package", "verify", s(&file)]).await;
    assert_eq!(
        std::fs::read(dir.join("other.txt")).unwrap(),
        b"already here"
    );
    // Again: the file is there, nothing is overwritten.
    let err = env
        .fails(&["package", "pull", &reference, "-o", s(&dir), "-q"])
        .await;
    assert!(
        err.contains("zarf-package-demo-amd64-1.0.0.tar.zst"),
        "{err}"
    );
}
