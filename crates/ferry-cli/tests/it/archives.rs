//! Archives and the Docker Engine as sources and destinations: docker-archive, oci-archive, docker-daemon.

use ferry_test::{Mode, Registry, fixtures};

use crate::support::{Env, assert_has_all, entries, json};

fn skopeo(args: &[&str]) {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn export_and_oci_archive_round_trip_deterministically() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(800, 2, "amd64");
    let chart = fixtures::helm_chart(801);
    reg.seed("app", Some("1"), &image).await;
    reg.seed("chart", Some("1"), &chart).await;
    let env = Env::new();
    let layout = env.path("images");
    let (a, c) = (
        format!("{}/app:1", reg.host()),
        format!("{}/chart:1", reg.host()),
    );
    env.ok(&["pull", &a, &c, "-o", layout.to_str().unwrap(), "-q"])
        .await;

    for ext in ["tar", "tar.zst", "tar.gz"] {
        let one = env.path(&format!("one.{ext}"));
        let two = env.path(&format!("two.{ext}"));
        env.ok(&[
            "export",
            layout.to_str().unwrap(),
            "-o",
            one.to_str().unwrap(),
            "-q",
        ])
        .await;
        env.ok(&[
            "export",
            layout.to_str().unwrap(),
            "-o",
            two.to_str().unwrap(),
            "-q",
        ])
        .await;
        assert_eq!(
            std::fs::read(&one).unwrap(),
            std::fs::read(&two).unwrap(),
            "{ext}: the same bytes every time"
        );
        let back = env.path(&format!("back-{ext}"));
        env.ok(&[
            "pull",
            &format!("oci-archive:{}", one.display()),
            "-o",
            back.to_str().unwrap(),
            "-q",
        ])
        .await;
        assert_eq!(
            entries(&back),
            entries(&layout),
            "{ext}: same names and digests"
        );
        assert_has_all(&back, &image);
        assert_has_all(&back, &chart);
    }

    // Straight to an archive, which skopeo reads.
    let direct = env.path("direct.tar");
    env.ok(&[
        "pull",
        &a,
        "-o",
        &format!("oci-archive:{}", direct.display()),
        "-q",
    ])
    .await;
    skopeo(&["inspect", &format!("oci-archive:{}:{a}", direct.display())]);
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ferry-archive-")
        })
        .collect();
    assert!(leftovers.is_empty(), "the staging layout is removed");
}

#[tokio::test]
async fn docker_archive_from_skopeo_converts_deterministically_and_pushes() {
    let reg = Registry::start(Mode::Plain);
    // OCI-typed: skopeo 1.9 only finds OCI entries in a layout.
    let image = fixtures::oci_image(810, 2, "amd64");
    reg.seed("legacy", Some("1"), &image).await;
    let env = Env::new();
    let layout = env.path("src");
    let name = format!("{}/legacy:1", reg.host());
    env.ok(&["pull", &name, "-o", layout.to_str().unwrap(), "-q"])
        .await;
    let tar = env.path("legacy.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:{name}", layout.display()),
        &format!("docker-archive:{}:legacy:local", tar.display()),
    ]);

    let first = json(
        &env.ok(&[
            "pull",
            &format!("docker-archive:{}", tar.display()),
            "-o",
            env.path("a").to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    let second = json(
        &env.ok(&[
            "pull",
            &format!("docker-archive:{}", tar.display()),
            "-o",
            env.path("b").to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    assert_eq!(
        first[0]["digest"], second[0]["digest"],
        "the conversion is deterministic"
    );
    assert_eq!(first[0]["reference"], "docker.io/library/legacy:local");

    // And on to a registry, named as given.
    env.ok(&[
        "copy",
        &format!("docker-archive:{}", tar.display()),
        &format!("{}/converted:1", reg.host()),
        "-q",
    ])
    .await;
    let (_, bytes) = reg.get_manifest("converted", "1").await.unwrap();
    assert_eq!(
        ferry_oci::Digest::of(&bytes).to_string(),
        first[0]["digest"].as_str().unwrap()
    );
}

/// The local Docker Engine, if this machine has one we may use.
fn docker_available() -> bool {
    let ok = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: no Docker Engine reachable");
    }
    ok
}

#[tokio::test]
async fn docker_daemon_source_and_daemon_fallback() {
    if !docker_available() {
        return;
    }
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(820, 1, "amd64");
    reg.seed("built", Some("1"), &image).await;
    let env = Env::new();
    let layout = env.path("src");
    let name = format!("{}/built:1", reg.host());
    env.ok(&["pull", &name, "-o", layout.to_str().unwrap(), "-q"])
        .await;
    let tar = env.path("built.tar");
    // A locally built image that never reached a registry.
    let local = format!("ferry-it/local-only:{}", std::process::id());
    skopeo(&[
        "copy",
        &format!("oci:{}:{name}", layout.display()),
        &format!("docker-archive:{}:{local}", tar.display()),
    ]);
    let load = std::process::Command::new("docker")
        .args(["load", "-i", tar.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", &self.0])
                .output();
        }
    }
    let _cleanup = Cleanup(local.clone());

    let out = env.path("daemon");
    let pulled = json(
        &env.ok(&[
            "pull",
            &format!("docker-daemon:{local}"),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    let expected_name = format!("docker.io/{local}");
    assert_eq!(pulled[0]["reference"], expected_name);
    assert_eq!(entries(&out).len(), 1);

    // --daemon-fallback: the registry does not have it; the Engine does; the name is the reference asked for.
    let missing = format!("{}/{local}", reg.host());
    let err = env
        .fails(&[
            "pull",
            &missing,
            "-o",
            env.path("nofallback").to_str().unwrap(),
        ])
        .await;
    assert!(err.contains("not found"), "{err}");
    let tagged = std::process::Command::new("docker")
        .args(["tag", &local, &missing])
        .output()
        .unwrap();
    assert!(tagged.status.success());
    let _cleanup2 = Cleanup(missing.clone());
    let fb = env.path("fallback");
    let res = json(
        &env.ok(&[
            "pull",
            &missing,
            "--daemon-fallback",
            "-o",
            fb.to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    assert_eq!(res[0]["reference"], missing);
    assert_eq!(
        res[0]["digest"], pulled[0]["digest"],
        "the same conversion either way"
    );
}

#[tokio::test]
async fn an_exported_archive_pushes_like_the_layout() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(830, 2, "amd64");
    src.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let layout = env.path("images");
    env.ok(&[
        "pull",
        &format!("{}/app:1", src.host()),
        "-o",
        layout.to_str().unwrap(),
        "-q",
    ])
    .await;
    let archive = env.path("images.tar.zst");
    env.ok(&[
        "export",
        layout.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
        "-q",
    ])
    .await;
    env.ok(&[
        "push",
        &format!("oci-archive:{}", archive.display()),
        "--registry",
        &dst.host(),
        "--no-checksum",
        "-q",
    ])
    .await;
    assert_eq!(
        dst.get_manifest("app", "1").await.unwrap().1,
        image.manifest.bytes.as_ref()
    );
    for b in image.all_blobs() {
        assert!(dst.blob_exists("app", &b.digest()).await);
    }
}

/// A layout tarball is pushed through its tar index: nothing is unpacked, so a push works with no usable
/// temp directory at all.
#[tokio::test]
async fn push_reads_a_layout_tarball_in_place() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(831, 2, "amd64");
    src.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let layout = env.path("images");
    let archive = env.path("images.tar");
    let (l, a) = (layout.to_str().unwrap(), archive.to_str().unwrap());
    env.ok(&["pull", &format!("{}/app:1", src.host()), "-o", l, "-q"])
        .await;
    env.ok(&["export", l, "-o", a, "-q"]).await;
    for (i, source) in [a.to_string(), format!("oci-archive:{a}")]
        .iter()
        .enumerate()
    {
        let dest = format!("{}/ns{i}", dst.host());
        let out = env
            .command()
            .env("TMPDIR", env.path("no-such-temp-dir"))
            .args(["push", source, "--registry", &dest, "--no-checksum", "-q"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let repo = format!("ns{i}/app");
        assert_eq!(
            dst.get_manifest(&repo, "1").await.unwrap().1,
            image.manifest.bytes.as_ref()
        );
    }
}

/// `ferry export` walks the images from index.json: a blob they need that the layout lacks fails the export,
/// naming the blob, and leaves no file behind.
#[tokio::test]
async fn export_of_a_layout_missing_a_blob_fails_naming_it() {
    let src = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(832, 2, "amd64");
    src.seed("app", Some("1"), &image).await;
    let env = Env::new();
    let layout = env.path("images");
    let l = layout.to_str().unwrap();
    env.ok(&["pull", &format!("{}/app:1", src.host()), "-o", l, "-q"])
        .await;
    let layer = image.all_blobs().into_iter().last().unwrap().digest();
    let hex = layer.strip_prefix("sha256:").unwrap();
    std::fs::remove_file(layout.join("blobs/sha256").join(hex)).unwrap();
    let archive = env.path("images.tar");
    let err = env
        .fails(&["export", l, "-o", archive.to_str().unwrap()])
        .await;
    assert!(err.contains(&layer) && err.contains("missing"), "{err}");
    assert!(!archive.exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ferry-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
