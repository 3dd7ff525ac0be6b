//! The fault matrix: ferry against a real registry behind a misbehaving proxy. Every case either completes
//! with every blob verified, or fails with a clear error and nothing partial visible.
//!
//! With FERRY_FAULT_MATRIX=FILE set, each case appends a Markdown row to FILE (`scripts/fault-matrix`
//! assembles docs/fault-matrix.md from them).

use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_test::faults::{Fault, FaultProxy, Rule};
use ferry_test::hostile::{HostileServer, Hostility};
use ferry_test::{Artifact, Mode, Registry, fixtures};

use crate::support::{Env, assert_has_all, entries, json};

const LAYERS: [usize; 3] = [600_000, 400_000, 200_000];

async fn setup(seed: u64) -> (Registry, FaultProxy, Artifact) {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(seed, &LAYERS, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let proxy = FaultProxy::start(&reg.host());
    (reg, proxy, image)
}

fn blob_get(fault: Fault, times: usize) -> Rule {
    Rule::new(Some("GET"), "/blobs/sha256:", fault, times)
}

/// Pull through the proxy, without the cache so every byte crosses it.
async fn pull(env: &Env, proxy: &FaultProxy, out: &Path) -> std::process::Output {
    env.ferry(&[
        "pull",
        &format!("{}/app:1", proxy.host()),
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
        "--no-cache",
        "--json",
    ])
    .await
}

fn record(fault: &str, outcome: &str, proxy: &FaultProxy) {
    let Some(file) = std::env::var_os("FERRY_FAULT_MATRIX") else {
        return;
    };
    let seen = proxy.requests();
    let ranges = seen.iter().filter(|s| s.range.is_some()).count();
    let row = format!(
        "| {fault} | {outcome} | {} | {} | {ranges} |\n",
        proxy.injected(),
        seen.len()
    );
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    f.write_all(row.as_bytes()).unwrap();
}

/// No temp or partial file is left where a reader could mistake it for content.
fn assert_nothing_partial(layout: &Path, image: &Artifact) {
    if layout.exists() {
        assert!(
            !layout.join("ingest").exists()
                || std::fs::read_dir(layout.join("ingest")).unwrap().count() == 0
        );
        for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            assert_eq!(
                ferry_oci::Digest::of(&bytes).hex(),
                name,
                "a blob file is exactly its digest"
            );
        }
    }
    let _ = image;
}

#[tokio::test]
async fn body_cut_several_times_resumes_with_range() {
    let (_reg, proxy, image) = setup(400).await;
    proxy.add(blob_get(Fault::CutBody { after: 150_000 }, 4));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    let resumed = proxy
        .requests()
        .iter()
        .filter(|s| s.range.is_some())
        .count();
    assert!(
        resumed >= 3,
        "broken bodies continue with Range requests: {:?}",
        proxy.requests()
    );
    record(
        "body cut after 150 KB (up to 4 times)",
        "completed; bodies resumed from the last byte",
        &proxy,
    );
}

#[tokio::test]
async fn slow_body_then_cut_resumes() {
    let (_reg, proxy, image) = setup(401).await;
    proxy.add(blob_get(
        Fault::SlowBody {
            chunk: 50_000,
            pause: Duration::from_millis(50),
        },
        1,
    ));
    proxy.add(blob_get(Fault::CutBody { after: 10_000 }, 2));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    record("slow body, then two cuts", "completed", &proxy);
}

#[tokio::test]
async fn rate_limits_and_unavailable_with_retry_after() {
    let (_reg, proxy, image) = setup(402).await;
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/",
        Fault::Status {
            code: 429,
            retry_after: Some("1".into()),
        },
        1,
    ));
    let date = http_date(SystemTime::now() + Duration::from_secs(1));
    proxy.add(blob_get(
        Fault::Status {
            code: 503,
            retry_after: Some(date),
        },
        2,
    ));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    assert_eq!(proxy.injected(), 3);
    record(
        "429 Retry-After: 1 s; 503 Retry-After: HTTP-date",
        "completed after waiting",
        &proxy,
    );
}

#[tokio::test]
async fn resets_before_any_response() {
    let (_reg, proxy, image) = setup(403).await;
    proxy.add(blob_get(Fault::Reset, 3));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    record(
        "connection reset before the response, 3 times",
        "completed",
        &proxy,
    );
}

#[tokio::test]
async fn a_server_that_ignores_range_restarts_the_blob() {
    let (_reg, proxy, image) = setup(404).await;
    proxy.add(blob_get(Fault::CutBody { after: 100_000 }, 1));
    proxy.add(blob_get(Fault::IgnoreRange, 1));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    record(
        "body cut, then Range ignored (200)",
        "completed; that blob restarted from 0",
        &proxy,
    );
}

#[tokio::test]
async fn a_blob_that_never_arrives_fails_cleanly() {
    let (_reg, proxy, image) = setup(405).await;
    let layer = image.blobs[1].digest();
    proxy.add(Rule::new(
        Some("GET"),
        &layer,
        Fault::Status {
            code: 500,
            retry_after: None,
        },
        1000,
    ));
    let env = Env::new();
    let out = env.path("images");
    let res = pull(&env, &proxy, &out).await;
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&layer) && err.contains("500") && err.contains("attempts"),
        "{err}"
    );
    assert!(
        !out.exists() || entries(&out).is_empty(),
        "no entry for an image that did not complete"
    );
    assert_nothing_partial(&out, &image);
    record(
        "HTTP 500 on every GET of one layer",
        "failed after retries, naming the blob; nothing partial",
        &proxy,
    );
}

/// An image pulled into a layout, and an empty destination registry behind a fault proxy to push it to.
async fn layout_to_push(seed: u64) -> (Env, std::path::PathBuf, Registry, FaultProxy, Artifact) {
    let (src, _unused, image) = setup(seed).await;
    let dst = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&dst.host());
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
    (env, layout, dst, proxy, image)
}

#[tokio::test]
async fn push_resumes_a_broken_chunked_upload_and_retries_a_503() {
    let (env, layout, dst, proxy, image) = layout_to_push(406).await;

    // One upload at a time, each streamed in 100 KiB PATCHes: the first two PATCHes pass, the third is
    // reset before the registry sees it (the registry then answers `Range: 0-0` or its last offset, and
    // the upload goes on from there or in a new session). The first manifest PUT gets a 503.
    proxy.add(Rule::new(
        Some("PATCH"),
        "/blobs/uploads/",
        Fault::Delay(Duration::ZERO),
        2,
    ));
    proxy.add(Rule::new(Some("PATCH"), "/blobs/uploads/", Fault::Reset, 1));
    proxy.add(Rule::new(
        Some("PUT"),
        "/manifests/",
        Fault::Status {
            code: 503,
            retry_after: Some("0".into()),
        },
        1,
    ));
    let res = env
        .ferry(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &proxy.host(),
            "--plain-http",
            "--chunk-threshold",
            "100K",
            "--chunk-size",
            "100K",
            // One upload at a time, so "the second PATCH" is the second chunk of one blob.
            "--oci-concurrency",
            "1",
            "--json",
        ])
        .await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let summary = json(&res);
    assert!(summary[0]["error"].is_null(), "{summary}");
    for b in image.all_blobs() {
        assert!(dst.blob_exists("app", &b.digest()).await);
    }
    assert!(dst.get_manifest("app", "1").await.is_some());
    let status_queries = proxy
        .requests()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/uploads/"))
        .count();
    assert!(
        status_queries >= 1,
        "asked the registry where the upload stands: {:?}",
        proxy.requests()
    );
    record(
        "upload PATCH reset mid-upload; manifest PUT 503",
        "completed; upload resumed at the registry's offset",
        &proxy,
    );
}

/// Large blobs stream in one PATCH each (no chunking by default). A PATCH cut on the wire after 300 KB
/// of its body (the registry keeps what arrived, then cancels the session whose size no longer matches
/// its URL's state) is recovered inside the same run: ferry asks where the session stands, opens a new
/// one, reads the layer again from the layout and sends it again; the registry checks the digest at
/// the closing PUT and ferry pulls the result back, verifying every byte.
#[tokio::test]
async fn push_streams_large_blobs_and_survives_a_cut_mid_body() {
    let (env, layout, dst, proxy, image) = layout_to_push(407).await;
    proxy.add(Rule::new(
        Some("PATCH"),
        "/blobs/uploads/",
        // Below the smallest layer, so whichever PATCH comes first is cut.
        Fault::CutRequestBody { after: 100_000 },
        1,
    ));
    let res = env
        .ferry(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &proxy.host(),
            "--plain-http",
            "--chunk-threshold",
            "100K",
            "--oci-concurrency",
            "1",
            "--json",
        ])
        .await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(proxy.injected(), 1, "{:?}", proxy.requests());
    let seen = proxy.requests();
    let count = |method: &str| {
        seen.iter()
            .filter(|s| s.method == method && s.path.contains("/blobs/uploads/"))
            .count()
    };
    // Three layers above the threshold: one PATCH each, plus the one sent again after the cut.
    assert_eq!(count("PATCH"), LAYERS.len() + 1, "{seen:?}");
    assert!(
        count("GET") >= 1,
        "asked where the session stands: {seen:?}"
    );
    let out = env.path("back");
    env.ok(&[
        "pull",
        &format!("{}/app:1", dst.host()),
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
        "--no-cache",
        "-q",
    ])
    .await;
    for b in image.all_blobs() {
        assert!(dst.blob_exists("app", &b.digest()).await, "{}", b.digest());
    }
    assert_has_all(&out, &image);
    record(
        "upload PATCH cut on the wire after 300 KB of its body",
        "completed; status asked, new session, layer read again and verified",
        &proxy,
    );
}

#[tokio::test]
async fn cross_repository_mount_sends_no_bytes() {
    let src = Registry::start(Mode::Plain);
    let a = fixtures::image_with_shared_and_duplicate_layers(410);
    let b = fixtures::image_with_shared_and_duplicate_layers(411);
    src.seed("a", Some("1"), &a).await;
    src.seed("b", Some("1"), &b).await;
    let dst = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&dst.host());
    let env = Env::new();
    let layout = env.path("images");
    env.ok(&[
        "pull",
        &format!("{}/a:1", src.host()),
        &format!("{}/b:1", src.host()),
        "-o",
        layout.to_str().unwrap(),
        "-q",
    ])
    .await;
    let res = env
        .ok(&[
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &proxy.host(),
            "--plain-http",
            "--no-checksum",
            "--json",
        ])
        .await;
    let summary = json(&res);
    let mounted: u64 = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["blobs"]["mounted"].as_u64().unwrap())
        .sum();
    assert_eq!(
        mounted, 1,
        "the shared base layer is mounted into the second repository: {summary}"
    );
    let mounts = proxy
        .requests()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.contains("mount="))
        .filter(|s| s.status == 201)
        .count();
    assert_eq!(mounts, 1, "{:?}", proxy.requests());
    let base = &a.blobs[1];
    let uploads_of_base = proxy
        .requests()
        .into_iter()
        .filter(|s| {
            s.method == "PUT" && s.path.contains(base.digest().trim_start_matches("sha256:"))
        })
        .count();
    assert_eq!(uploads_of_base, 1, "uploaded once, mounted once");
}

/// IMF-fixdate for a time.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    ferry_oci::date::http_date(secs as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_killed_and_restarted_mid_push() {
    let src = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(420, &[3 << 20, 2 << 20, 1 << 20], "amd64");
    src.seed("app", Some("1"), &image).await;
    let mut dst = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&dst.host());
    // Slow every upload chunk down so the restart lands in the middle of the push.
    proxy.add(Rule::new(
        Some("PATCH"),
        "/blobs/uploads/",
        Fault::Delay(Duration::from_millis(150)),
        1000,
    ));
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
    let push = env
        .command()
        .args([
            "push",
            layout.to_str().unwrap(),
            "--registry",
            &proxy.host(),
            "--plain-http",
            "--chunk-threshold",
            "256K",
            "--chunk-size",
            "256K",
            "--json",
        ])
        .output();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokio::task::block_in_place(|| dst.restart(Duration::from_millis(300)));
    };
    let (res, ()) = tokio::join!(push, restart);
    let res = res.unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for b in image.all_blobs() {
        assert!(dst.blob_exists("app", &b.digest()).await, "{}", b.digest());
    }
    assert_eq!(
        dst.get_manifest("app", "1").await.unwrap().1,
        image.manifest.bytes.as_ref()
    );
    let failed = proxy
        .requests()
        .iter()
        .filter(|s| s.status == 502 || s.status == 0)
        .count();
    record(
        "registry killed and restarted mid-push",
        "completed; requests during the outage retried",
        &proxy,
    );
    eprintln!("{failed} requests failed during the outage");
}

/// Pull through the proxy and the cache, large blobs (here: above 256 KiB) in 64 KiB ranges.
async fn pull_ranged(env: &Env, proxy: &FaultProxy, out: &Path) -> std::process::Output {
    env.ferry(&[
        "pull",
        &format!("{}/app:1", proxy.host()),
        "-o",
        out.to_str().unwrap(),
        "--plain-http",
        "--range-threshold",
        "256K",
        "--range-size",
        "64K",
        "--json",
    ])
    .await
}

#[tokio::test]
async fn large_blobs_arrive_as_parallel_ranges_and_survive_cuts() {
    let (_reg, proxy, image) = setup(405).await;
    // One range is cut short and must resume within its part.
    proxy.add(Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Fault::CutBody { after: 20_000 },
        1,
    ));
    let env = Env::new();
    let out = env.path("images");
    let res = pull_ranged(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    // The two large layers (600 KB, 400 KB) went as 10 + 7 ranges (the last of each open-ended); the
    // 200 KB one in one stream.
    let ranges: Vec<String> = proxy
        .requests()
        .iter()
        .filter_map(|s| s.range.clone())
        .collect();
    let bounded = ranges.iter().filter(|r| !r.ends_with('-')).count();
    assert!(
        ranges.len() >= 17 && bounded >= 15,
        "ranges asked: {ranges:?}"
    );
    record(
        "large blobs as parallel 64 KiB ranges, one range cut",
        "completed; the cut range resumed within its part",
        &proxy,
    );
}

#[tokio::test]
async fn a_server_that_ignores_ranges_gets_one_stream_per_blob() {
    let (_reg, proxy, image) = setup(406).await;
    proxy.add(blob_get(Fault::IgnoreRange, 100));
    let env = Env::new();
    let out = env.path("images");
    let res = pull_ranged(&env, &proxy, &out).await;
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_has_all(&out, &image);
    // Each large blob: one probe (answered 200 from byte 0), then one whole stream.
    let blob_gets = proxy
        .requests()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
        .count();
    assert!(blob_gets <= 2 + 2 + 1 + 1, "blob requests: {blob_gets}");
    record(
        "parallel ranges asked, Range ignored (200)",
        "completed; each large blob fetched in one stream",
        &proxy,
    );
}

/// A hostile registry, not a faulty proxy: ferry ends with a clear error, its peak RSS measured with
/// `/usr/bin/time -v` (reported, and held under 64 MiB; the time it takes is not asserted).
async fn against_hostile(hostility: Hostility, fault: &str, args: &[&str], expect: &str) {
    let server = HostileServer::start(hostility);
    let env = Env::new();
    let reference = format!("{}/app:1", server.host());
    let repository = format!("{}/app", server.host());
    let out = env.path("out");
    let mut argv: Vec<&str> = args
        .iter()
        .map(|a| match *a {
            "REF" => reference.as_str(),
            "REPO" => repository.as_str(),
            "OUT" => out.to_str().unwrap(),
            a => a,
        })
        .collect();
    argv.push("--plain-http");
    let started = std::time::Instant::now();
    let (output, rss_kib) = env.measured(&argv).await;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "ferry {argv:?}: {stderr}");
    assert!(stderr.contains(expect), "{expect:?} missing in: {stderr}");
    eprintln!("{fault}: peak RSS {} KiB, {took:.1?}", rss_kib);
    assert!(rss_kib < 64 << 10, "{fault}: peak RSS {rss_kib} KiB");
    let Some(file) = std::env::var_os("FERRY_FAULT_MATRIX") else {
        return;
    };
    let row = format!(
        "| hostile server: {fault} | failed: {expect}; peak RSS {} MiB | every response | {} | 0 |\n",
        rss_kib.div_ceil(1024),
        server.requests()
    );
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap()
        .write_all(row.as_bytes())
        .unwrap();
}

#[tokio::test]
async fn hostile_endless_error_bodies() {
    against_hostile(
        Hostility::EndlessError,
        "HTTP 500 with an endless body",
        &["pull", "REF", "-o", "OUT", "--no-cache"],
        "answered HTTP 500",
    )
    .await;
}

#[tokio::test]
async fn hostile_endless_token() {
    against_hostile(
        Hostility::EndlessToken,
        "endless token response",
        &["pull", "REF", "-o", "OUT", "--no-cache"],
        "262144-byte limit for token responses",
    )
    .await;
}

#[tokio::test]
async fn hostile_endless_manifest() {
    against_hostile(
        Hostility::EndlessManifest,
        "endless manifest",
        &["pull", "REF", "-o", "OUT", "--no-cache"],
        "byte limit for manifests",
    )
    .await;
}

#[tokio::test]
async fn hostile_endless_tags_page() {
    against_hostile(
        Hostility::EndlessPage,
        "endless tags page",
        &["ls", "REPO"],
        "8388608-byte limit for a page of a listing",
    )
    .await;
}

#[tokio::test]
async fn hostile_link_cycle() {
    against_hostile(
        Hostility::LinkCycle,
        "tags Link cycle over two pages",
        &["ls", "REPO"],
        "loop back",
    )
    .await;
}
