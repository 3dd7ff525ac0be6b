//! `ferry push` and `ferry copy` against the real registry.

use ferry_test::{Mode, PASSWORD, Registry, USER, fixtures};

use crate::support::{Env, assert_has_all, json};

/// Pull `refs` from `reg` into a fresh layout and return its path.
async fn pulled_layout(env: &Env, reg: &Registry, refs: &[&str]) -> std::path::PathBuf {
    let out = env.path("pulled");
    let mut args = vec!["pull", "-o", out.to_str().unwrap(), "-q", "-a", "amd64"];
    let full: Vec<String> = refs.iter().map(|r| format!("{}/{r}", reg.host())).collect();
    args.extend(full.iter().map(String::as_str));
    env.ok(&args).await;
    out
}

/// The Zarf names of `name` in `target` as (repository, tag-or-digest).
fn zarf_names(name: &str, target: &str) -> Vec<(String, String)> {
    ferry_zarf::push_names(&name.parse().unwrap(), target, false)
        .into_iter()
        .map(|n| {
            let r: ferry_oci::Reference = n.parse().unwrap();
            (r.repository.clone(), r.target())
        })
        .collect()
}

#[tokio::test]
async fn push_writes_both_zarf_names_and_is_idempotent() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(200, 3, "amd64");
    let chart = fixtures::helm_chart(201);
    src.seed("app", Some("1.0"), &image).await;
    src.seed("charts/app", Some("2.0"), &chart).await;
    let env = Env::new();
    let layout = pulled_layout(&env, &src, &["app:1.0", "charts/app:2.0"]).await;
    let before = std::fs::read(layout.join("index.json")).unwrap();

    let target = format!("{}/ns", dst.host());
    let first = json(
        &env.ok(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &target,
            "--json",
        ])
        .await,
    );
    assert_eq!(first.as_array().unwrap().len(), 2);
    for (artifact, name) in [
        (&image, format!("{}/app:1.0", src.host())),
        (&chart, format!("{}/charts/app:2.0", src.host())),
    ] {
        let names = zarf_names(&name, &target);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].1.contains("-zarf-"), "{names:?}");
        for (repo, reference) in names {
            let (ct, bytes) = dst
                .get_manifest(&repo, &reference)
                .await
                .unwrap_or_else(|| panic!("{repo}:{reference}"));
            assert_eq!(bytes, artifact.manifest.bytes.as_ref(), "byte for byte");
            assert_eq!(ct, artifact.manifest.media_type);
            for b in artifact.all_blobs() {
                assert!(dst.blob_exists(&repo, &b.digest()).await);
            }
        }
    }
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        before,
        "the layout is never modified"
    );

    let again = json(
        &env.ok(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &target,
            "--json",
        ])
        .await,
    );
    for img in again.as_array().unwrap() {
        assert_eq!(
            img["blobs"]["fetched"], 0,
            "second push sends nothing: {img}"
        );
    }
}

#[tokio::test]
async fn push_subsets_explicit_names_and_no_checksum() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let (a, b) = (
        fixtures::oci_image(210, 1, "amd64"),
        fixtures::docker_image(211, 1, "amd64"),
    );
    src.seed("a", Some("1"), &a).await;
    src.seed("b", Some("1"), &b).await;
    let env = Env::new();
    let layout = pulled_layout(&env, &src, &["a:1", "b:1"]).await;
    let l = layout.to_str().unwrap();
    let a_name = format!("{}/a:1", src.host());

    env.ok(&[
        "push",
        l,
        "--registry",
        &dst.host(),
        "--no-checksum",
        &a_name,
        "-q",
    ])
    .await;
    assert!(dst.get_manifest("a", "1").await.is_some());
    assert!(
        dst.get_manifest("b", "1").await.is_none(),
        "only the named subset"
    );
    let crc_tag = &zarf_names(&a_name, &dst.host())[0].1;
    assert!(
        dst.get_manifest("a", crc_tag).await.is_none(),
        "no checksum name"
    );

    let err = env
        .fails(&["push", l, "--registry", &dst.host(), "nothere:1"])
        .await;
    assert!(
        err.contains("docker.io/library/nothere:1") && err.contains(&a_name),
        "{err}"
    );

    env.ok(&[
        "push",
        l,
        &format!("{}/b:1", src.host()),
        &format!("{}/renamed/b:prod", dst.host()),
        "-q",
    ])
    .await;
    let (_, bytes) = dst.get_manifest("renamed/b", "prod").await.unwrap();
    assert_eq!(bytes, b.manifest.bytes.as_ref());
}

#[tokio::test]
async fn push_heals_an_interrupted_earlier_push() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(220, 3, "amd64");
    src.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let layout = pulled_layout(&env, &src, &["app:1"]).await;
    env.ok(&[
        "push",
        layout.to_str().unwrap(),
        "--registry",
        &dst.host(),
        "-q",
    ])
    .await;

    // Remove a layer from the repository, as an interrupted push (or a registry GC) would leave it.
    let layer = &image.blobs[2];
    let status = dst
        .client()
        .delete(format!(
            "{}/v2/app/blobs/{}",
            dst.base_url(),
            layer.digest()
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);
    assert!(!dst.blob_exists("app", &layer.digest()).await);

    let out = json(
        &env.ok(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &dst.host(),
            "--json",
        ])
        .await,
    );
    assert_eq!(
        out[0]["blobs"]["fetched"], 1,
        "exactly the missing layer is sent again: {out}"
    );
    assert!(dst.blob_exists("app", &layer.digest()).await);
}

#[tokio::test]
async fn keep_going_pushes_the_rest_and_reports_the_failure() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let (a, b) = (
        fixtures::oci_image(230, 1, "amd64"),
        fixtures::oci_image(231, 1, "amd64"),
    );
    src.seed("a", Some("1"), &a).await;
    src.seed("b", Some("1"), &b).await;
    let env = Env::new();
    let layout = pulled_layout(&env, &src, &["a:1", "b:1"]).await;
    // Break image a: its layer is gone from the layout.
    let layer = crate::support::blob(&layout, &a.blobs[1].digest());
    std::fs::remove_file(&layer).unwrap();

    let out = env
        .ferry(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &dst.host(),
            "--keep-going",
            "--retries",
            "1",
            "--json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}/a:1", src.host())) && stderr.contains("1 of 2 images failed"),
        "{stderr}"
    );
    let summary = json(&out);
    assert!(
        summary[0]["error"].is_string() || summary[1]["error"].is_string(),
        "{summary}"
    );
    assert!(dst.get_manifest("b", "1").await.is_some());
    assert!(
        dst.get_manifest("a", "1").await.is_none(),
        "a manifest is never pushed without its layers"
    );
}

#[tokio::test]
async fn zarf_layouts_of_both_eras_push_unchanged_into_a_namespace() {
    let Some(data) = crate::zarf_compat::testdata() else {
        return;
    };
    let dst = Registry::start(Mode::Token);
    let env = Env::new();
    let target = format!("{}/mirror", dst.host());
    for era in ["crane-oci-layout", "oras-oci-layout"] {
        let dir = data.join(era);
        let before = crate::zarf_compat::tree_digest(&dir);
        // A Zarf package directory: the layout is its images/.
        env.ok(&[
            "push",
            dir.to_str().unwrap(),
            "--registry",
            &target,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "-q",
        ])
        .await;
        assert_eq!(
            crate::zarf_compat::tree_digest(&dir),
            before,
            "{era} unchanged"
        );
        let layout = ferry_store::OciLayout::open(&dir.join("images")).unwrap();
        for e in layout.entries().unwrap() {
            let name = e.image_name().unwrap();
            for (repo, reference) in zarf_names(&name, &target) {
                let got = get_with_token(&dst, &repo, &reference).await;
                assert_eq!(
                    got.as_deref(),
                    Some(
                        std::fs::read(crate::support::blob(
                            &dir.join("images"),
                            &e.digest.to_string()
                        ))
                        .unwrap()
                        .as_slice()
                    ),
                    "{era}: {repo}:{reference}"
                );
            }
        }
    }
}

async fn get_with_token(reg: &Registry, repo: &str, reference: &str) -> Option<Vec<u8>> {
    reg.get_manifest(repo, reference).await.map(|(_, b)| b)
}

#[tokio::test]
async fn copy_between_registries_whole_index_platform_and_all_tags() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Basic);
    let amd = fixtures::oci_image(240, 2, "amd64");
    let arm = fixtures::oci_image(241, 2, "arm64");
    let index = fixtures::oci_index(vec![
        (amd.clone(), "linux", "amd64", None),
        (arm.clone(), "linux", "arm64", None),
    ]);
    src.seed("multi", Some("1"), &index).await;
    src.seed("multi", Some("2"), &amd).await;
    let env = Env::new();
    let (s, d) = (src.host(), dst.host());
    let creds = ["--dest-username", USER, "--dest-password", PASSWORD];

    let mut args = vec![
        "copy".to_string(),
        format!("{s}/multi:1"),
        format!("{d}/copy/multi:1"),
        "--json".into(),
    ];
    args.extend(creds.iter().map(|c| c.to_string()));
    let first = json(
        &env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await,
    );
    assert_eq!(
        first[0]["digest"],
        index.digest(),
        "the whole index by default"
    );
    let (_, bytes) = dst.get_manifest("copy/multi", "1").await.unwrap();
    assert_eq!(bytes, index.manifest.bytes.as_ref());
    for b in index.all_blobs() {
        assert!(dst.blob_exists("copy/multi", &b.digest()).await);
    }

    let mut args = vec![
        "copy".to_string(),
        format!("{s}/multi:1"),
        format!("{d}/arm/multi:1"),
        "-a".into(),
        "arm64".into(),
        "--json".into(),
    ];
    args.extend(creds.iter().map(|c| c.to_string()));
    let second = json(
        &env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await,
    );
    assert_eq!(second[0]["digest"], arm.digest());
    assert!(
        second[0]["blobs"]["fetched"].as_u64().unwrap() < 3,
        "served from the cache: {second}"
    );

    let mut args = vec![
        "copy".to_string(),
        format!("{s}/multi"),
        format!("{d}/all/multi"),
        "--all-tags".into(),
        "-q".into(),
    ];
    args.extend(creds.iter().map(|c| c.to_string()));
    env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(
        dst.get_manifest("all/multi", "1").await.unwrap().1,
        index.manifest.bytes.as_ref()
    );
    assert_eq!(
        dst.get_manifest("all/multi", "2").await.unwrap().1,
        amd.manifest.bytes.as_ref()
    );
}

#[tokio::test]
async fn zarf_push_set_from_ferry_and_hand_built_crane_era_layouts() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(250, 2, "amd64");
    let sig = fixtures::cosign_signature(&image.digest(), 251);
    let chart = fixtures::helm_chart(252);
    let pinned = fixtures::docker_image(253, 1, "amd64");
    let index = fixtures::oci_index(vec![
        (fixtures::oci_image(254, 1, "amd64"), "linux", "amd64", None),
        (fixtures::oci_image(255, 1, "arm64"), "linux", "arm64", None),
    ]);
    src.seed("podinfo", Some("6.4.0"), &image).await;
    src.seed(
        "podinfo",
        Some(&fixtures::cosign_tag(&image.digest())),
        &sig,
    )
    .await;
    src.seed("charts/podinfo", Some("6.4.0"), &chart).await;
    src.seed("busybox", Some("1.36"), &pinned).await;
    src.seed("multi", Some("1"), &index).await;
    let env = Env::new();
    let refs = [
        "podinfo:6.4.0".to_string(),
        format!("podinfo:{}", fixtures::cosign_tag(&image.digest())),
        "charts/podinfo:6.4.0".to_string(),
        format!("busybox:1.36@{}", pinned.digest()),
        format!("multi@{}", index.digest()),
    ];
    let layout = pulled_layout(
        &env,
        &src,
        &refs.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let expected: Vec<(String, &ferry_test::Artifact)> = refs
        .iter()
        .map(|r| format!("{}/{r}", src.host()))
        .zip([&image, &sig, &chart, &pinned, &index])
        .collect();

    // A Crane-era copy of the same layout: base.name only, pretty oci-layout, as Zarf ≤ v0.50 wrote it.
    let crane = env.path("crane");
    copy_dir(&layout, &crane);
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(crane.join("index.json")).unwrap()).unwrap();
    for m in idx["manifests"].as_array_mut().unwrap() {
        if let Some(a) = m.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            a.remove("org.opencontainers.image.ref.name");
        }
    }
    std::fs::write(crane.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    std::fs::write(
        crane.join("oci-layout"),
        "{\n    \"imageLayoutVersion\": \"1.0.0\"\n}",
    )
    .unwrap();

    for (dir, ns) in [(&layout, "oras"), (&crane, "crane")] {
        let target = format!("{}/{ns}", dst.host());
        env.ok(&["push", dir.to_str().unwrap(), "--registry", &target, "-q"])
            .await;
        for (name, artifact) in &expected {
            for (repo, reference) in zarf_names(name, &target) {
                let (_, bytes) = dst
                    .get_manifest(&repo, &reference)
                    .await
                    .unwrap_or_else(|| panic!("{ns}: {repo}:{reference}"));
                assert_eq!(
                    bytes,
                    artifact.manifest.bytes.as_ref(),
                    "{ns}: {repo}:{reference}"
                );
            }
            for b in artifact.all_blobs() {
                let repo = &zarf_names(name, &target)[0].0;
                assert!(
                    dst.blob_exists(repo, &b.digest()).await,
                    "{ns}: {repo} {}",
                    b.digest()
                );
            }
        }
    }

    // skopeo reads what ferry pushed, with the same digest.
    let (repo, reference) = zarf_names(&expected[0].0, &format!("{}/oras", dst.host())).remove(1);
    let res = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/{repo}:{reference}", dst.host()),
        ])
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(inspected["Digest"], image.digest());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[tokio::test]
async fn copy_an_artifact_with_subject_from_token_auth_to_basic_auth() {
    let src = Registry::start(Mode::Token);
    let dst = Registry::start(Mode::Basic);
    let image = fixtures::oci_image(260, 1, "amd64");
    let sbom = fixtures::artifact_with_subject(&image.manifest, "application/spdx+json", 261);
    src.seed("app", Some("1"), &image).await;
    src.seed("app", Some("sbom"), &sbom).await;
    let env = Env::new();
    env.ok(&[
        "copy",
        &format!("{}/app:sbom", src.host()),
        &format!("{}/mirror/app:sbom", dst.host()),
        "--src-username",
        USER,
        "--src-password",
        PASSWORD,
        "--dest-username",
        USER,
        "--dest-password",
        PASSWORD,
        "-q",
    ])
    .await;
    assert_eq!(
        dst.get_manifest("mirror/app", "sbom").await.unwrap().1,
        sbom.manifest.bytes.as_ref()
    );
    // The subject travels with it: the artifact is never left pointing at nothing.
    assert!(
        dst.get_manifest("mirror/app", &image.digest())
            .await
            .is_some()
    );
}

#[tokio::test]
async fn every_location_spelling_is_a_source_or_destination() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(270, 2, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let host = reg.host();
    let staging = env.path("staging");
    let staging_arg = format!("oci:{}:example.com/app:copied", staging.display());

    // registry → layout under a name of our choosing (oci:DIR:NAME), through the one copy.
    env.ok(&["copy", &format!("oci://{host}/app:1"), &staging_arg])
        .await;
    let layout = ferry_store::OciLayout::open(&staging).unwrap();
    let entry = &layout.find("example.com/app:copied").unwrap()[0];
    assert_eq!(entry.digest.to_string(), image.digest());
    assert_has_all(&staging, &image);

    // layout → layout: pull reads a layout like any source, names kept.
    let out = env.path("out");
    env.ok(&[
        "pull",
        &format!("oci:{}", staging.display()),
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    let layout = ferry_store::OciLayout::open(&out).unwrap();
    assert_eq!(layout.find("example.com/app:copied").unwrap().len(), 1);
    assert_has_all(&out, &image);

    // layout → registry by name.
    env.ok(&["copy", &staging_arg, &format!("{host}/back:1")])
        .await;
    let back = env.ok(&["digest", &format!("{host}/back:1")]).await;
    assert_eq!(String::from_utf8_lossy(&back.stdout).trim(), image.digest());

    // Archives are sources only: a clear error, nothing written.
    let err = env
        .ferry(&["copy", &format!("{host}/app:1"), "oci-archive:/tmp/x.tar"])
        .await;
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("can only be read"));
}
