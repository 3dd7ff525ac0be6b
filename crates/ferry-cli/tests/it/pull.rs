//! `ferry pull` against the real CNCF registry.

use ferry_test::{Mode, Registry, fixtures};

use crate::support::{Env, assert_has_all, blob, entries, index, json};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const BASE_NAME: &str = "org.opencontainers.image.base.name";

#[tokio::test]
async fn single_image_layout_is_byte_compatible_with_zarf() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(1, 3, "amd64");
    reg.seed("app/web", Some("1.0"), &image).await;
    let env = Env::new();
    let out = env.path("images");
    let reference = format!("{}/app/web:1.0", reg.host());
    env.ok(&["pull", &reference, "-o", out.to_str().unwrap(), "-q"])
        .await;

    assert_eq!(
        std::fs::read(out.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let expected = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"{BASE_NAME}":"{reference}","{REF_NAME}":"{reference}"}}}}]}}"#,
        image.digest(),
        image.manifest.size()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("index.json")).unwrap(),
        expected
    );
    assert_has_all(&out, &image);
    assert!(
        !out.join("ingest").exists(),
        "no temp directory left behind"
    );
    // Every blob went into the cache as well.
    assert_has_all(&env.cache().join("images"), &image);
}

#[tokio::test]
async fn repull_is_idempotent_and_adding_images_reuses_blobs() {
    let reg = Registry::start(Mode::Plain);
    let a = fixtures::image_with_shared_and_duplicate_layers(1);
    let b = fixtures::image_with_shared_and_duplicate_layers(2);
    reg.seed("a", Some("1"), &a).await;
    reg.seed("b", Some("1"), &b).await;
    let env = Env::new();
    let out = env.path("images");
    let o = out.to_str().unwrap();
    let ra = format!("{}/a:1", reg.host());
    let rb = format!("{}/b:1", reg.host());
    env.ok(&["pull", &ra, "-o", o, "-q"]).await;
    let first = std::fs::read(out.join("index.json")).unwrap();
    let again = json(&env.ok(&["pull", &ra, "-o", o, "--json"]).await);
    assert_eq!(
        std::fs::read(out.join("index.json")).unwrap(),
        first,
        "re-pull changes nothing"
    );
    assert_eq!(again[0]["blobs"]["fetched"], 0, "{again}");
    assert_eq!(
        again[0]["blobs"]["existing"], 4,
        "config, base, own layer, manifest: {again}"
    );

    let added = json(&env.ok(&["pull", &rb, "-o", o, "--json"]).await);
    assert_eq!(
        added[0]["blobs"]["existing"], 1,
        "the shared base layer is reused: {added}"
    );
    let names: Vec<_> = entries(&out).into_iter().map(|(_, n)| n.unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&ra) && names.contains(&rb));
    assert_has_all(&out, &a);
    assert_has_all(&out, &b);
}

#[tokio::test]
async fn tag_selects_platform_and_digest_keeps_the_whole_index() {
    let reg = Registry::start(Mode::Plain);
    let amd = fixtures::oci_image(10, 2, "amd64");
    let arm = fixtures::oci_image(11, 2, "arm64");
    let armv7 = fixtures::oci_image(12, 1, "arm");
    let index = fixtures::oci_index(vec![
        (amd.clone(), "linux", "amd64", None),
        (arm.clone(), "linux", "arm64", None),
        (armv7.clone(), "linux", "arm", Some("v7")),
    ]);
    reg.seed("multi", Some("1"), &index).await;
    let env = Env::new();
    let host = reg.host();

    // Tag + -a: the child, with its platform.
    let out = env.path("by-tag");
    let o = out.to_str().unwrap();
    env.ok(&[
        "pull",
        &format!("{host}/multi:1"),
        "-a",
        "arm64",
        "-o",
        o,
        "-q",
    ])
    .await;
    let idx = index_of(&out);
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0]["digest"], arm.digest());
    assert_eq!(idx[0]["platform"]["architecture"], "arm64");
    assert_has_all(&out, &arm);
    assert!(
        !blob(&out, &amd.digest()).exists(),
        "other platforms are not pulled"
    );

    // --platform with a variant.
    let out = env.path("variant");
    env.ok(&[
        "pull",
        &format!("{host}/multi:1"),
        "--platform",
        "linux/arm/v7",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(index_of(&out)[0]["digest"], armv7.digest());

    // Digest of the index: kept whole; children listed without a name.
    let out = env.path("by-digest");
    let by_digest = format!("{host}/multi@{}", index.digest());
    env.ok(&[
        "pull",
        &by_digest,
        "-a",
        "arm64",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    let e = entries(&out);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e.contains(&(index.digest(), Some(by_digest.clone()))));
    for child in [&amd, &arm, &armv7] {
        assert!(e.contains(&(child.digest(), None)), "{e:?}");
    }
    assert_has_all(&out, &index);

    // --all-platforms on a tag keeps everything too.
    let out = env.path("all");
    env.ok(&[
        "pull",
        &format!("{host}/multi:1"),
        "--all-platforms",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_has_all(&out, &index);

    // No such platform: a clear error naming what exists, and no layout.
    let out = env.path("none");
    let err = env
        .fails(&[
            "pull",
            &format!("{host}/multi:1"),
            "-a",
            "s390x",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(!out.exists());
}

fn index_of(layout: &std::path::Path) -> Vec<serde_json::Value> {
    index(layout)["manifests"].as_array().unwrap().clone()
}

#[tokio::test]
async fn docker_media_types_nested_indexes_and_foreign_layers() {
    let reg = Registry::start(Mode::Plain);
    let d1 = fixtures::docker_image(20, 2, "amd64");
    let d2 = fixtures::docker_image(21, 1, "arm64");
    let list = fixtures::docker_manifest_list(vec![
        (d1.clone(), "linux", "amd64", None),
        (d2.clone(), "linux", "arm64", None),
    ]);
    let inner = fixtures::oci_index(vec![(
        fixtures::oci_image(22, 1, "amd64"),
        "linux",
        "amd64",
        None,
    )]);
    let nested = fixtures::nested_index(
        inner.clone(),
        vec![(fixtures::oci_image(23, 1, "arm64"), "linux", "arm64", None)],
    );
    let foreign = fixtures::image_with_foreign_layer(24);
    reg.seed("list", Some("1"), &list).await;
    reg.seed("nested", None, &nested).await;
    reg.seed("foreign", Some("1"), &foreign).await;
    let env = Env::new();
    let out = env.path("images");
    let o = out.to_str().unwrap();
    let host = reg.host();
    let list_ref = format!("{host}/list@{}", list.digest());
    let nested_ref = format!("{host}/nested@{}", nested.digest());
    let foreign_ref = format!("{host}/foreign:1");
    env.ok(&[
        "pull",
        &list_ref,
        &nested_ref,
        &foreign_ref,
        &format!("{host}/list:1"),
        "-a",
        "amd64",
        "-o",
        o,
        "-q",
    ])
    .await;
    assert_has_all(&out, &list);
    assert_has_all(&out, &nested);
    assert_has_all(&out, &inner);
    assert_has_all(&out, &foreign);
    let e = entries(&out);
    assert!(e.contains(&(list.digest(), Some(list_ref))));
    assert!(e.contains(&(nested.digest(), Some(nested_ref))));
    assert!(
        e.contains(&(inner.digest(), None)),
        "nested index listed: {e:?}"
    );
    assert!(
        e.contains(&(d1.digest(), Some(format!("{host}/list:1")))),
        "tag selects amd64: {e:?}"
    );
    assert!(
        !e.contains(&(d1.digest(), None)),
        "a named entry replaces the untagged one: {e:?}"
    );
    // Manifests are stored byte for byte: Docker's indentation survives.
    assert_eq!(
        std::fs::read(blob(&out, &d1.digest())).unwrap(),
        d1.manifest.bytes.as_ref()
    );
}

#[tokio::test]
async fn zarf_mixed_set_lands_in_layout_and_cache() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(30, 2, "amd64");
    let sig = fixtures::cosign_signature(&image.digest(), 31);
    let chart = fixtures::helm_chart(32);
    let pinned = fixtures::docker_image(33, 1, "amd64");
    let sbom = fixtures::artifact_with_subject(&image.manifest, "application/spdx+json", 34);
    reg.seed("podinfo", Some("6.4.0"), &image).await;
    reg.seed(
        "podinfo",
        Some(&fixtures::cosign_tag(&image.digest())),
        &sig,
    )
    .await;
    reg.seed("charts/podinfo", Some("6.4.0"), &chart).await;
    reg.seed("busybox", Some("1.36"), &pinned).await;
    reg.seed("podinfo", None, &sbom).await;
    let env = Env::new();
    let out = env.path("images");
    let host = reg.host();
    let refs = [
        format!("{host}/podinfo:6.4.0"),
        format!("{host}/podinfo:{}", fixtures::cosign_tag(&image.digest())),
        format!("oci://{host}/charts/podinfo:6.4.0"),
        format!("{host}/busybox:1.36@{}", pinned.digest()),
        format!("{host}/podinfo@{}", sbom.digest()),
    ];
    let mut args = vec!["pull", "-o", out.to_str().unwrap(), "--json"];
    args.extend(refs.iter().map(String::as_str));
    let summary = json(&env.ok(&args).await);
    assert_eq!(summary.as_array().unwrap().len(), 5);
    for a in [&image, &sig, &chart, &pinned, &sbom] {
        assert_has_all(&out, a);
        assert_has_all(&env.cache().join("images"), a);
    }
    // Annotations are exactly ref.name and base.name, both the normalized original reference.
    for m in index_of(&out) {
        let ann = m["annotations"].as_object().unwrap();
        assert_eq!(ann.len(), 2, "{m}");
        assert_eq!(ann[REF_NAME], ann[BASE_NAME]);
    }
    let names: Vec<_> = entries(&out).into_iter().filter_map(|(_, n)| n).collect();
    assert!(
        names.contains(&format!("{host}/charts/podinfo:6.4.0")),
        "oci:// stripped: {names:?}"
    );
    assert!(
        names.contains(&format!("{host}/busybox:1.36@{}", pinned.digest())),
        "tag and digest kept: {names:?}"
    );
    // The helm chart's manifest has no mediaType field: the registry's Content-Type decided it.
    let chart_entry = index_of(&out)
        .into_iter()
        .find(|m| m["digest"] == chart.digest())
        .unwrap();
    assert_eq!(
        chart_entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[tokio::test]
async fn corrupt_cache_blob_is_replaced_and_the_pull_succeeds() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(40, 2, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let reference = format!("{}/app:1", reg.host());
    env.ok(&[
        "pull",
        &reference,
        "-o",
        env.path("one").to_str().unwrap(),
        "-q",
    ])
    .await;

    // Flip bytes of a cached layer, keeping its size.
    let layer = image
        .blobs
        .iter()
        .find(|b| b.media_type.contains("layer"))
        .unwrap();
    let cached = blob(&env.cache().join("images"), &layer.digest());
    std::fs::set_permissions(&cached, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&cached).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&cached, bytes).unwrap();

    let two = env.path("two");
    let summary = json(
        &env.ok(&["pull", &reference, "-o", two.to_str().unwrap(), "--json"])
            .await,
    );
    assert_eq!(
        summary[0]["blobs"]["fetched"], 2,
        "the corrupt layer and the manifest are fetched: {summary}"
    );
    assert_has_all(&two, &image);
    assert_has_all(&env.cache().join("images"), &image);
}

#[tokio::test]
async fn warm_pull_links_from_the_cache() {
    use std::os::unix::fs::MetadataExt;
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(45, 3, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let reference = format!("{}/app:1", reg.host());
    env.ok(&[
        "pull",
        &reference,
        "-o",
        env.path("cold").to_str().unwrap(),
        "-q",
    ])
    .await;
    let warm = env.path("warm");
    let summary = json(
        &env.ok(&["pull", &reference, "-o", warm.to_str().unwrap(), "--json"])
            .await,
    );
    assert_eq!(
        summary[0]["blobs"]["linked"], 4,
        "config and three layers: {summary}"
    );
    let layer = &image.blobs[1];
    let a = std::fs::metadata(blob(&warm, &layer.digest())).unwrap();
    let b = std::fs::metadata(blob(&env.cache().join("images"), &layer.digest())).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link, not a copy");
    assert_has_all(&warm, &image);
}

#[tokio::test]
async fn concurrent_pulls_share_one_cache() {
    let reg = Registry::start(Mode::Plain);
    let a = fixtures::image_with_shared_and_duplicate_layers(50);
    let b = fixtures::image_with_shared_and_duplicate_layers(51);
    reg.seed("a", Some("1"), &a).await;
    reg.seed("b", Some("1"), &b).await;
    let env = Env::new();
    let (ra, rb) = (format!("{}/a:1", reg.host()), format!("{}/b:1", reg.host()));
    // Four processes, overlapping images, one cache.
    let outs: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|d| env.path(d).display().to_string())
        .collect();
    let one = ["pull", &ra, &rb, "-o", &outs[0], "-q"];
    let two = ["pull", &rb, &ra, "-o", &outs[1], "-q"];
    let three = ["pull", &ra, "-o", &outs[2], "-q"];
    let four = ["pull", &rb, "-o", &outs[3], "-q"];
    let (x, y, z, w) = tokio::join!(
        env.ferry(&one),
        env.ferry(&two),
        env.ferry(&three),
        env.ferry(&four)
    );
    for out in [&x, &y, &z, &w] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (oa, ob) = (env.path("a"), env.path("b"));
    for layout in [&oa, &ob] {
        assert_has_all(layout, &a);
        assert_has_all(layout, &b);
    }
    assert_has_all(&env.cache().join("images"), &a);
    assert!(
        std::fs::read_dir(env.cache().join("images/ingest"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[tokio::test]
async fn two_processes_adding_to_one_layout_lose_no_entries() {
    let reg = Registry::start(Mode::Plain);
    let mut refs = Vec::new();
    for i in 0..6u64 {
        reg.seed(
            &format!("img{i}"),
            Some("1"),
            &fixtures::oci_image(60 + i, 1, "amd64"),
        )
        .await;
        refs.push(format!("{}/img{i}:1", reg.host()));
    }
    let env = Env::new();
    let out = env.path("shared");
    let o = out.to_str().unwrap();
    let first = ["pull", &refs[0], &refs[1], &refs[2], "-o", o, "-q"];
    let second = ["pull", &refs[3], &refs[4], &refs[5], "-o", o, "-q"];
    let (x, y) = tokio::join!(env.ferry(&first), env.ferry(&second));
    for r in [&x, &y] {
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert_eq!(entries(&out).len(), 6);
}

#[tokio::test]
async fn registry_override_changes_the_source_not_the_name() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(70, 1, "amd64");
    reg.seed("library/nginx", Some("1.25"), &image).await;
    let env = Env::new();
    let out = env.path("images");
    env.ok(&[
        "pull",
        "nginx:1.25",
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--registry-override",
        "ghcr.io=nowhere.invalid",
        "--registry-override",
        &format!("docker.io={}", reg.host()),
    ])
    .await;
    assert_eq!(
        entries(&out),
        vec![(
            image.digest(),
            Some("docker.io/library/nginx:1.25".to_string())
        )]
    );
}

#[tokio::test]
async fn references_from_files_and_zarf_yaml() {
    let reg = Registry::start(Mode::Plain);
    let (a, b) = (
        fixtures::oci_image(80, 1, "amd64"),
        fixtures::helm_chart(81),
    );
    reg.seed("a", Some("1"), &a).await;
    reg.seed("charts/b", Some("2"), &b).await;
    let env = Env::new();
    let host = reg.host();
    let list = env.path("images.txt");
    std::fs::write(
        &list,
        format!("# images\n\n{host}/a:1\n  {host}/charts/b:2  \n"),
    )
    .unwrap();
    let out = env.path("from-list");
    env.ok(&[
        "pull",
        "-f",
        list.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(entries(&out).len(), 2);

    let zarf = env.path("pkg/zarf.yaml");
    std::fs::create_dir_all(zarf.parent().unwrap()).unwrap();
    std::fs::write(
        &zarf,
        format!("kind: ZarfPackageConfig\nmetadata:\n  name: demo\ncomponents:\n  - name: one\n    images:\n      - {host}/a:1\n  - name: two\n    images:\n      - oci://{host}/charts/b:2\n      - {host}/a:1\n"),
    )
    .unwrap();
    let out = env.path("from-zarf");
    env.ok(&[
        "pull",
        "-f",
        zarf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    let names: Vec<_> = entries(&out).into_iter().map(|(_, n)| n.unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&format!("{host}/charts/b:2")));
}

#[tokio::test]
async fn failures_name_the_reference_and_leave_the_layout_unchanged() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(90, 1, "amd64");
    reg.seed("ok", Some("1"), &image).await;
    let env = Env::new();
    let out = env.path("images");
    let o = out.to_str().unwrap();
    let host = reg.host();
    env.ok(&["pull", &format!("{host}/ok:1"), "-o", o, "-q"])
        .await;
    let before = std::fs::read(out.join("index.json")).unwrap();

    let err = env
        .fails(&[
            "pull",
            &format!("{host}/ok:1"),
            &format!("{host}/missing:2"),
            "-o",
            o,
        ])
        .await;
    assert!(
        err.contains(&format!("{host}/missing:2")) && err.contains("not found"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(std::fs::read(out.join("index.json")).unwrap(), before);

    for bad in [
        "i am not a ref at all",
        "C:\\Users\\zarf",
        "http://urls.are/not/refs",
    ] {
        let err = env.fails(&["pull", bad, "-o", o]).await;
        assert!(err.contains("invalid image reference"), "{err}");
    }
    let err = env
        .fails(&[
            "pull",
            "127.0.0.1:1/nothing:1",
            "-o",
            env.path("x").to_str().unwrap(),
        ])
        .await;
    assert!(
        err.contains("127.0.0.1:1") && err.contains("cannot reach"),
        "{err}"
    );
    assert!(!env.path("x").exists());
    assert_eq!(std::fs::read(out.join("index.json")).unwrap(), before);
}

#[tokio::test]
async fn layouts_are_readable_by_skopeo_and_umoci() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(95, 2, "amd64");
    let docker = fixtures::docker_image(96, 1, "amd64");
    reg.seed("app", Some("1"), &image).await;
    reg.seed("legacy", Some("1"), &docker).await;
    let env = Env::new();
    let out = env.path("images");
    let (ra, rb) = (
        format!("{}/app:1", reg.host()),
        format!("{}/legacy:1", reg.host()),
    );
    env.ok(&["pull", &ra, &rb, "-o", out.to_str().unwrap(), "-q"])
        .await;
    // skopeo 1.9 only looks up OCI-typed entries by name (Docker v2s2 entries, which Zarf writes too,
    // are skipped by its lookup), so it checks the OCI image; umoci lists both.
    let res = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}:{ra}", out.display())])
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(
        res.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(res.stdout, image.manifest.bytes.as_ref());
    let res = std::process::Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:{ra}", out.display())])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "skopeo reads config and layers: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let res = std::process::Command::new("umoci")
        .args(["ls", "--layout", out.to_str().unwrap()])
        .output()
        .expect("umoci is installed (scripts/test installs it)");
    assert!(
        res.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let listed = String::from_utf8_lossy(&res.stdout);
    assert!(listed.contains(&ra) && listed.contains(&rb), "{listed}");
}

#[tokio::test]
async fn a_zarf_cache_directory_is_used_as_is() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(110, 2, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    // What Zarf leaves in ~/.zarf-cache: an OCI layout of blobs under images/, written without ferry's stamps.
    let zarf_cache = env.path("zarf-cache");
    let blobs = zarf_cache.join("images/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(zarf_cache.join("images/ingest")).unwrap();
    std::fs::write(
        zarf_cache.join("images/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    for b in image.all_blobs() {
        std::fs::write(
            blobs.join(b.digest().strip_prefix("sha256:").unwrap()),
            &b.bytes,
        )
        .unwrap();
    }
    let out = env.path("images");
    let summary = json(
        &env.ok(&[
            "pull",
            &format!("{}/app:1", reg.host()),
            "-o",
            out.to_str().unwrap(),
            "--cache",
            zarf_cache.to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    assert_eq!(
        summary[0]["blobs"]["fetched"], 1,
        "only the manifest comes from the registry: {summary}"
    );
    assert_eq!(summary[0]["blobs"]["linked"], 3, "{summary}");
    assert_has_all(&out, &image);
    assert!(!env.cache().exists(), "the default cache was not touched");
}
