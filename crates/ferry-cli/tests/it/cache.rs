//! `ferry cache`: listing, verification, pruning, and the lock that keeps prune away from running copies.

use std::os::unix::fs::PermissionsExt;

use ferry_test::{Mode, Registry, fixtures};

use crate::support::{Env, blob, json};

#[tokio::test]
async fn du_verify_prune_and_clean() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(300, 3, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let env = Env::new();
    env.ok(&[
        "pull",
        &format!("{}/app:1", reg.host()),
        "-o",
        env.path("out").to_str().unwrap(),
        "-q",
    ])
    .await;

    let du = json(&env.ok(&["cache", "du", "--json"]).await);
    assert_eq!(du["blobs"], 5, "manifest, config, three layers: {du}");
    let ls = json(&env.ok(&["cache", "ls", "--json"]).await);
    assert_eq!(ls.as_array().unwrap().len(), 5);

    // Bit rot: verify finds it and removes it.
    let victim = blob(&env.cache().join("images"), &image.blobs[1].digest());
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let report = json(&env.ok(&["cache", "verify", "--json"]).await);
    assert_eq!(report["checked"], 5);
    assert_eq!(report["evicted"].as_array().unwrap().len(), 1, "{report}");
    assert!(!victim.exists());

    // Nothing is older than a day; everything is over a 1-byte budget.
    let pruned = json(
        &env.ok(&["cache", "prune", "--older-than", "1d", "--json"])
            .await,
    );
    assert_eq!(pruned["removed"], 0);
    let pruned = json(
        &env.ok(&["cache", "prune", "--max-size", "1", "--json"])
            .await,
    );
    assert_eq!(pruned["removed"], 4, "{pruned}");
    env.ok(&[
        "pull",
        &format!("{}/app:1", reg.host()),
        "-o",
        env.path("again").to_str().unwrap(),
        "-q",
    ])
    .await;
    let cleaned = json(&env.ok(&["cache", "clean", "--json"]).await);
    assert_eq!(cleaned["removed"], 5);
    assert_eq!(json(&env.ok(&["cache", "du", "--json"]).await)["blobs"], 0);
}

#[tokio::test]
async fn clean_waits_for_running_processes_and_gives_up_visibly() {
    let env = Env::new();
    // A running ferry holds the cache's shared lock; this test process plays that part.
    let held = ferry_store::BlobCache::open(&env.cache()).unwrap();
    let out = env.ferry(&["cache", "clean", "--lock-timeout", "1s"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waiting up to") && stderr.contains("other ferry processes"),
        "{stderr}"
    );
    drop(held);
    env.ok(&["cache", "clean", "--lock-timeout", "1s"]).await;
}
