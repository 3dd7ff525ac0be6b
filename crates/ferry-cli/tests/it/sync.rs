//! `ferry sync` against real registries: tag filters, plans, incremental runs, lock files, mirrors and
//! request budgets (requests counted and timed at a proxy in front of the registry).

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_test::faults::FaultProxy;
use ferry_test::{Artifact, Mode, Registry, fixtures};
use serde_json::Value;

use crate::support::{Env, json};

/// A source registry with repositories holding many tags; returns the images by tag.
async fn source() -> (Registry, Vec<(&'static str, &'static str, Artifact)>) {
    let reg = Registry::start(Mode::Plain);
    let img = |seed| fixtures::oci_image_sized(seed, &[40_000, 20_000], "amd64");
    let (a, b, c, d, e) = (img(1), img(2), img(3), img(4), img(5));
    let tags = vec![
        ("apps/web", "1.0.0", a),
        ("apps/web", "1.1.0", b.clone()),
        ("apps/web", "1.2.0", c.clone()),
        ("apps/web", "1.2.1-rc.1", c),
        ("apps/web", "2.0.0", d.clone()),
        ("apps/web", "v2.1.0", d.clone()),
        ("apps/web", "latest", d),
        ("apps/web", "nightly", e),
        ("tools/cli", "1.13.1-alpine-perl", img(6)),
        ("tools/cli", "1.13.2-alpine-perl", img(7)),
        ("tools/cli", "1.13.3-alpine-perl", img(8)),
        ("tools/cli", "1.13.1", b),
    ];
    for (repo, tag, image) in &tags {
        reg.seed(repo, Some(tag), image).await;
    }
    (reg, tags)
}

fn sync_file(env: &Env, registry: &str) -> String {
    let text = format!(
        r#"{registry}:
  images-by-semver:
    apps/web: ">=1.1.0, <2.1"
  images-by-tag-regex:
    tools/cli: ^1\.13\.[12]-alpine-perl$
"#
    );
    let path = env.path("sync.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn sources(report: &Value) -> BTreeSet<String> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap().to_string())
        .collect()
}

fn writes(proxy: &FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|s| matches!(s.method.as_str(), "POST" | "PUT" | "PATCH"))
        .count()
}

#[tokio::test]
async fn filters_plan_run_lock_and_a_second_run_that_moves_nothing() {
    let (src, tags) = source().await;
    let dst = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&dst.host());
    let env = Env::new();
    let file = sync_file(&env, &src.host());
    let dest = format!("{}/mirror", proxy.host());
    let lock = env.path("sync.lock");
    let run = |extra: &'static [&'static str]| {
        let mut args = vec![
            "sync".to_string(),
            "-f".into(),
            file.clone(),
            dest.clone(),
            "--plain-http".into(),
            "--no-cache".into(),
            "--json".into(),
            "--lock".into(),
            lock.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let ok = |args: Vec<String>| {
        let env = &env;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            json(&env.ok(&refs).await)
        }
    };

    // The filters choose exactly these tags (a prerelease and v2.1.0 are outside the semver range).
    let h = src.host();
    let expected: BTreeSet<String> = [
        "apps/web:1.1.0",
        "apps/web:1.2.0",
        "apps/web:2.0.0",
        "tools/cli:1.13.1-alpine-perl",
        "tools/cli:1.13.2-alpine-perl",
    ]
    .iter()
    .map(|t| format!("{h}/{t}"))
    .collect();

    let plan = ok(run(&["--plan"])).await;
    assert_eq!(sources(&plan), expected);
    assert_eq!(writes(&proxy), 0, "a plan writes nothing");
    assert!(!lock.exists(), "a plan writes no lock file");
    let planned = plan["totals"]["bytes"]["moving"].as_u64().unwrap();
    assert!(planned > 0);

    let first = ok(run(&[])).await;
    assert_eq!(sources(&first), expected);
    assert_eq!(
        first["totals"]["bytes"]["moving"].as_u64().unwrap(),
        planned,
        "the plan's total is what the run moved: {first:#}"
    );
    for (repo, tag, image) in &tags {
        let wanted = expected.contains(&format!("{h}/{repo}:{tag}"));
        let name = repo.rsplit('/').next().unwrap();
        let got = dst.get_manifest(&format!("mirror/{name}"), tag).await;
        assert_eq!(got.is_some(), wanted, "{repo}:{tag}");
        if wanted {
            assert_eq!(
                got.unwrap().1,
                image.manifest.bytes.to_vec(),
                "{repo}:{tag}"
            );
        }
    }

    // The lock lists every image with its digest, destination and every digest of its graph.
    let locked: Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    let entries = locked["images"].as_array().unwrap();
    assert_eq!(entries.len(), expected.len());
    for entry in entries {
        let source = entry["source"].as_str().unwrap();
        let (_, image) = tags
            .iter()
            .find(|(r, t, _)| format!("{h}/{r}:{t}") == source)
            .map(|(_, _, i)| ((), i))
            .unwrap();
        assert_eq!(entry["digest"], image.digest());
        let digests: BTreeSet<&str> = entry["digests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        for blob in image.all_blobs() {
            assert!(digests.contains(blob.digest().as_str()), "{source}");
        }
        assert!(digests.contains(image.digest().as_str()));
    }

    // Second run: every tag is up to date (one HEAD each), nothing is written.
    let before = proxy.requests().len();
    let writes_before = writes(&proxy);
    let second = ok(run(&[])).await;
    assert_eq!(second["totals"]["upToDate"], expected.len());
    assert_eq!(second["totals"]["bytes"]["moving"], 0);
    assert_eq!(writes(&proxy), writes_before, "a second run writes nothing");
    let seen = &proxy.requests()[before..];
    assert!(
        seen.iter()
            .all(|s| s.method == "HEAD" && s.path.contains("/manifests/") || s.path == "/v2/"),
        "{seen:#?}"
    );
    // And the lock still lists every digest (taken over from the first run).
    let again: Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(again, locked);
}

#[tokio::test]
async fn a_down_mirror_fails_over_and_the_request_budget_holds() {
    let (src, _tags) = source().await;
    let mirror = FaultProxy::start(&src.host());
    let env = Env::new();
    let file = sync_file(&env, &src.host());
    // A mirror nobody listens on, then a working one; the recorded names stay the source's.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_host = dead.local_addr().unwrap().to_string();
    drop(dead);
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\n\n[[registry.mirror]]\nlocation = \"{dead_host}\"\n\n[[registry.mirror]]\nlocation = \"{}\"\n",
            src.host(),
            mirror.host()
        ),
    )
    .unwrap();
    let out = env.path("layout");
    let rate = 10.0;
    let report = json(
        &env.ok(&[
            "sync",
            "-f",
            &file,
            &format!("oci:{}", out.display()),
            "--plain-http",
            "--no-cache",
            "--json",
            "--registries-conf",
            conf.to_str().unwrap(),
            "--max-requests-per-second",
            "10",
        ])
        .await,
    );
    assert_eq!(report["totals"]["copied"], 5, "{report:#}");
    let names = crate::support::index(&out);
    let recorded: Vec<&str> = names["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.base.name"].as_str())
        .collect();
    assert_eq!(recorded.len(), 5, "{names:#}");
    assert!(
        recorded.iter().all(|n| n.starts_with(&src.host())),
        "names stay the source's: {recorded:?}"
    );
    // Manifests and blobs came through the working mirror.
    let seen = mirror.requests();
    assert!(seen.iter().any(|s| s.path.contains("/blobs/sha256:")));
    assert!(seen.iter().any(|s| s.path.contains("/manifests/")));
    // The budget: at most `rate` requests start in any one second (pacing, so +1 for the window's edge).
    let times: Vec<_> = seen.iter().map(|s| s.at).collect();
    assert!(
        times.len() > 15,
        "enough requests to measure: {}",
        times.len()
    );
    let most = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && t.duration_since(*t0) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most as f64 <= rate + 1.0,
        "{most} requests within one second"
    );
}
