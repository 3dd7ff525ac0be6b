//! Interrupted pulls: Ctrl-C and kill -9 leave the cache and layout consistent, and the next run continues
//! the partial download instead of starting over.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_test::faults::{Fault, FaultProxy, Rule};
use ferry_test::{Mode, Registry, fixtures};

use crate::support::{Env, assert_has_all, json};

const LAYER: usize = 24 << 20;

/// The cache's partial-download state file for `digest`, once it exists.
fn state_file(env: &Env, digest: &str) -> PathBuf {
    env.cache().join("images/ingest").join(format!(
        "{}.partial.state",
        digest.trim_start_matches("sha256:")
    ))
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A slow pull of one large layer, started in the background.
async fn slow_pull(seed: u64) -> (Registry, FaultProxy, ferry_test::Artifact, Env, String) {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(seed, &[LAYER], "amd64");
    reg.seed("big", Some("1"), &image).await;
    let proxy = FaultProxy::start(&reg.host());
    // About 8 MB/s: slow enough to interrupt after the first checkpoint (8 MiB), fast enough for CI.
    proxy.add(Rule::new(
        Some("GET"),
        &image.blobs[1].digest(),
        Fault::SlowBody {
            chunk: 256 << 10,
            pause: Duration::from_millis(30),
        },
        1,
    ));
    let reference = format!("{}/big:1", proxy.host());
    (reg, proxy, image, Env::new(), reference)
}

/// Wait until the partial's saved state vouches for at least `bytes`.
async fn wait_for_checkpoint(path: &Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let saved = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split(' ').nth(2).and_then(|n| n.parse::<u64>().ok()));
        if saved.is_some_and(|n| n >= bytes) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {bytes} bytes in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn kill_9_then_rerun_reuses_the_partial_bytes() {
    // Killed at different points: after the first checkpoint, and after the second.
    for (seed, at) in [(500, 8 << 20), (502, 16 << 20)] {
        let (_reg, proxy, image, env, reference) = slow_pull(seed).await;
        let layer = image.blobs[1].digest();
        let out = env.path("images");
        let mut child = env
            .command()
            .args([
                "pull",
                &reference,
                "-o",
                out.to_str().unwrap(),
                "--plain-http",
                "-q",
            ])
            .spawn()
            .unwrap();
        wait_for_checkpoint(&state_file(&env, &layer), at).await;
        child.start_kill().unwrap(); // SIGKILL: no cleanup at all
        child.wait().await.unwrap();
        assert!(!out.join("index.json").exists() || crate::support::entries(&out).is_empty());

        let res = env
            .ok(&[
                "pull",
                &reference,
                "-o",
                out.to_str().unwrap(),
                "--plain-http",
                "--json",
            ])
            .await;
        let summary = json(&res);
        let saved = summary[0]["blobs"]["resumedBytes"].as_u64().unwrap();
        assert!(saved >= at, "at least {at} bytes reused: {summary}");
        assert_has_all(&out, &image);
        let range = proxy
            .requests()
            .into_iter()
            .filter_map(|s| s.range)
            .next()
            .expect("the rerun asked for the rest only");
        assert_eq!(range, format!("bytes={saved}-"));
        eprintln!("kill -9 after {at} bytes: {saved} of {LAYER} bytes reused");
        assert!(
            !state_file(&env, &layer).exists(),
            "the partial became the blob"
        );
    }
}

#[tokio::test]
async fn ctrl_c_exits_130_and_keeps_the_partial_for_later() {
    let (_reg, _proxy, image, env, reference) = slow_pull(501).await;
    let layer = image.blobs[1].digest();
    let out = env.path("images");
    let child = env
        .command()
        .args([
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--plain-http",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&state_file(&env, &layer)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let res = child.wait_with_output().await.unwrap();
    assert_eq!(
        res.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("interrupted"));
    assert!(
        crate::support::entries(&out).is_empty(),
        "no entry for the unfinished image"
    );
    assert!(
        state_file(&env, &layer).exists(),
        "verified partial data kept for the next run"
    );
    let blobs = env.cache().join("images/blobs/sha256");
    assert!(
        !blobs.join(layer.trim_start_matches("sha256:")).exists(),
        "nothing unverified became a blob"
    );
}
