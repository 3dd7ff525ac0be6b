//! Bad input from registries, layouts and users: a clear error, a non-zero exit, nothing partial.

use ferry_test::faults::{Fault, FaultProxy, Rule};
use ferry_test::{Mode, PASSWORD, Registry, USER, fixtures};

use crate::support::{Env, assert_has_all, entries};

async fn proxied_image(seed: u64) -> (Registry, FaultProxy, ferry_test::Artifact) {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(seed, &[300_000, 100_000], "amd64");
    reg.seed("app", Some("1"), &image).await;
    let proxy = FaultProxy::start(&reg.host());
    (reg, proxy, image)
}

async fn pull_fails(env: &Env, proxy: &FaultProxy) -> String {
    let out = env.path("images");
    let err = env
        .fails(&[
            "pull",
            &format!("{}/app:1", proxy.host()),
            "-o",
            out.to_str().unwrap(),
            "--plain-http",
        ])
        .await;
    assert!(
        !out.exists(),
        "a failed pull into a new directory leaves nothing"
    );
    let blobs = env.cache().join("images/blobs/sha256");
    if blobs.exists() {
        for e in std::fs::read_dir(&blobs).unwrap() {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            assert_eq!(
                ferry_oci::Digest::of(&bytes).hex(),
                e.file_name().to_string_lossy(),
                "cache holds only verified blobs"
            );
        }
    }
    err
}

#[tokio::test]
async fn html_with_status_200_instead_of_a_manifest() {
    let (_reg, proxy, _) = proxied_image(600).await;
    let page = b"<html><body>Please log in to the corporate proxy</body></html>".to_vec();
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/",
        Fault::Respond {
            code: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: page,
        },
        100,
    ));
    let env = Env::new();
    let err = pull_fails(&env, &proxy).await;
    assert!(
        err.contains(&proxy.host()) && err.contains("invalid response"),
        "{err}"
    );
}

#[tokio::test]
async fn a_digest_header_that_disagrees_with_the_body() {
    let (_reg, proxy, _) = proxied_image(601).await;
    let lie = format!("sha256:{}", "0".repeat(64));
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/",
        Fault::SetHeader {
            name: "Docker-Content-Digest".into(),
            value: lie.clone(),
        },
        100,
    ));
    let env = Env::new();
    let err = pull_fails(&env, &proxy).await;
    assert!(err.contains(&lie) && err.contains("hash to"), "{err}");
}

#[tokio::test]
async fn corrupted_blob_bytes_fail_fast_and_are_never_stored() {
    let (_reg, proxy, image) = proxied_image(602).await;
    let layer = image.blobs[1].digest();
    proxy.add(Rule::new(
        Some("GET"),
        &layer,
        Fault::CorruptBody { at: 1000 },
        100,
    ));
    let env = Env::new();
    let err = pull_fails(&env, &proxy).await;
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    let gets = proxy
        .requests()
        .iter()
        .filter(|s| s.path.contains(&layer))
        .count();
    assert_eq!(
        gets, 1,
        "a correct-length body with the wrong digest is not retried"
    );
}

#[tokio::test]
async fn content_length_that_lies_short_or_long_is_survived() {
    let (_reg, proxy, image) = proxied_image(603).await;
    let layer = &image.blobs[1];
    let short = (layer.size() - 5000).to_string();
    let long = (layer.size() + 5000).to_string();
    proxy.add(Rule::new(
        Some("GET"),
        &layer.digest(),
        Fault::SetHeader {
            name: "Content-Length".into(),
            value: short,
        },
        1,
    ));
    proxy.add(Rule::new(
        Some("GET"),
        &layer.digest(),
        Fault::SetHeader {
            name: "Content-Length".into(),
            value: long,
        },
        1,
    ));
    let env = Env::new();
    let out = env.path("images");
    env.ok(&[
        "pull",
        &format!("{}/app:1", proxy.host()),
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
        "-q",
    ])
    .await;
    assert_has_all(&out, &image);
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_host() {
    // The registry needs Basic auth; its blob GETs redirect to storage (another host) that needs none.
    let reg = Registry::start(Mode::Basic);
    let storage = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(604, 2, "amd64");
    reg.seed("app", Some("1"), &image).await;
    storage.seed("app", Some("1"), &image).await;
    let front = FaultProxy::start(&reg.host());
    let cdn = FaultProxy::start(&storage.host());
    for b in image.all_blobs() {
        let location = format!("{}/v2/app/blobs/{}", cdn.base_url(), b.digest());
        front.add(Rule::new(
            Some("GET"),
            &format!("/blobs/{}", b.digest()),
            Fault::Respond {
                code: 307,
                headers: vec![("Location".into(), location)],
                body: Vec::new(),
            },
            1,
        ));
    }
    let env = Env::new();
    let out = env.path("images");
    env.ok(&[
        "pull",
        &format!("{}/app:1", front.host()),
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
        "--no-cache",
        "-q",
        "-u",
        USER,
        "-p",
        PASSWORD,
    ])
    .await;
    assert_has_all(&out, &image);
    let followed = cdn.requests();
    assert!(!followed.is_empty(), "the redirects were followed");
    assert!(
        followed.iter().all(|s| !s.authorization),
        "no credentials sent to the other host: {followed:?}"
    );
    assert!(
        front.requests().iter().any(|s| s.authorization),
        "the registry itself got them"
    );
}

#[tokio::test]
async fn bad_layouts_and_references_are_named_in_the_error() {
    let env = Env::new();
    let dst = Registry::start(Mode::Plain);
    let layout = env.path("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    // Missing, truncated, not JSON.
    for (contents, why) in [
        (None, "index.json"),
        (Some("{\"schemaVersion\":2,\"manif"), "index.json"),
        (Some("<html>"), "index.json"),
    ] {
        let _ = std::fs::remove_file(layout.join("index.json"));
        if let Some(c) = contents {
            std::fs::write(layout.join("index.json"), c).unwrap();
        }
        let err = env
            .fails(&["push", layout.to_str().unwrap(), "--registry", &dst.host()])
            .await;
        assert!(
            err.contains(why) || err.contains("no named images"),
            "{err}"
        );
    }
    let err = env
        .fails(&[
            "push",
            env.path("nothing").to_str().unwrap(),
            "--registry",
            &dst.host(),
        ])
        .await;
    assert!(err.contains("neither an OCI layout"), "{err}");
    let err = env
        .fails(&[
            "pull",
            &format!("x@sha512:{}", "a".repeat(128)),
            "-o",
            env.path("o").to_str().unwrap(),
        ])
        .await;
    assert!(err.contains("unsupported digest algorithm"), "{err}");
    // A manifest over 4 MiB is refused before it is stored.
    let big = ferry_test::Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        format!(
            "{{\"schemaVersion\":2,\"annotations\":{{\"pad\":\"{}\"}}}}",
            "x".repeat(4 << 20)
        )
        .into_bytes(),
    );
    let (status, _) = dst.put_manifest("huge", "1", &big).await;
    if (200..300).contains(&status) {
        let err = env
            .fails(&[
                "pull",
                &format!("{}/huge:1", dst.host()),
                "-o",
                env.path("h").to_str().unwrap(),
            ])
            .await;
        assert!(err.contains("4194304-byte limit"), "{err}");
        assert!(entries_or_none(&env.path("h")));
    }
}

fn entries_or_none(p: &std::path::Path) -> bool {
    !p.exists() || entries(p).is_empty()
}

#[tokio::test]
async fn docker_schema1_is_refused_with_a_clear_error() {
    // Registry 2.8 will not store schema 1 by default; an old registry serving it is played by the proxy.
    let (_reg, proxy, _) = proxied_image(605).await;
    let schema1 = fixtures::schema1_manifest();
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/",
        Fault::Respond {
            code: 200,
            headers: vec![("Content-Type".into(), schema1.media_type.clone())],
            body: schema1.bytes.to_vec(),
        },
        100,
    ));
    let env = Env::new();
    let err = pull_fails(&env, &proxy).await;
    assert!(err.contains("schema 1") && err.contains("re-push"), "{err}");
}

/// A small tmpfs, unmounted on drop; `None` (with a note) where mounting is not allowed (not root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: std::path::PathBuf, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn disk_full_during_a_pull_fails_cleanly() {
    let reg = Registry::start(Mode::Plain);
    let small = fixtures::oci_image(606, 1, "amd64");
    let big = fixtures::oci_image_sized(607, &[3 << 20], "amd64");
    reg.seed("small", Some("1"), &small).await;
    reg.seed("big", Some("1"), &big).await;
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(env.path("disk"), "1m") else {
        return;
    };
    let out = disk.0.join("images");
    env.ok(&[
        "pull",
        &format!("{}/small:1", reg.host()),
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
        "-q",
    ])
    .await;
    let before = std::fs::read(out.join("index.json")).unwrap();
    let err = env
        .fails(&[
            "pull",
            &format!("{}/big:1", reg.host()),
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
        ])
        .await;
    assert!(
        err.contains("No space left on device") && err.contains(out.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("index.json")).unwrap(),
        before,
        "the layout is as it was"
    );
    assert!(!crate::support::blob(&out, &big.blobs[1].digest()).exists());
    assert!(
        !out.join("ingest").exists() || std::fs::read_dir(out.join("ingest")).unwrap().count() == 0,
        "no temp files left"
    );
    assert_has_all(&out, &small);
}

#[tokio::test]
async fn a_full_cache_disk_falls_back_to_the_layout_with_a_warning() {
    let reg = Registry::start(Mode::Plain);
    let big = fixtures::oci_image_sized(608, &[3 << 20], "amd64");
    reg.seed("big", Some("1"), &big).await;
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(env.path("cachedisk"), "1m") else {
        return;
    };
    let out = env.path("images");
    let cache = disk.0.join("cache");
    let res = env
        .command()
        .args([
            "pull",
            &format!("{}/big:1", reg.host()),
            "-o",
            out.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(stderr.contains("cache's disk is full"), "{stderr}");
    assert_has_all(&out, &big);
    let partials = std::fs::read_dir(cache.join("images/ingest"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(partials, 0, "no partial left in the full cache");
}
