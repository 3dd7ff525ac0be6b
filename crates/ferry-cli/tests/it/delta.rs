//! Deltas against the real registry: `export --since` carries every manifest and only the blobs the base
//! lacks; `push` and `pull --base` complete the graph from what the far side has, or fail naming the first
//! missing blob before anything is tagged.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_test::{Artifact, Mode, Registry, fixtures};
use serde_json::Value;

use crate::support::{Env, index, json};

/// Two base layers every image shares (a distribution), then each image's own layer.
const BASE: [usize; 2] = [300_000, 200_000];

fn app(seed: u64) -> Artifact {
    fixtures::image_on_base(0xD157, &BASE, seed, &[30_000], "amd64")
}

/// Version 1: web and api. Version 2: web rebuilt, api unchanged, worker new (its base layers are at the
/// far side only in the other repositories).
/// Images by repository.
type Version = Vec<(&'static str, Artifact)>;

fn versions() -> (Version, Version) {
    let v1 = vec![("apps/web", app(1)), ("apps/api", app(2))];
    let v2 = vec![
        ("apps/web", app(11)),
        ("apps/api", app(2)),
        ("apps/worker", app(13)),
    ];
    (v1, v2)
}

/// Pull `images` (seeded at `src` under `tag`) into a layout at `dir`.
async fn layout_of(env: &Env, src: &Registry, images: &[(&str, Artifact)], tag: &str, dir: &Path) {
    let mut args = vec!["pull".to_string()];
    for (repo, image) in images {
        src.seed(repo, Some(tag), image).await;
        args.push(format!("{}/{repo}:{tag}", src.host()));
    }
    args.extend(["-o".into(), dir.to_str().unwrap().into(), "-q".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&refs).await;
}

fn export(args: &[&str]) -> Vec<String> {
    let mut all = vec!["export".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("--json".into());
    all
}

async fn run_json(env: &Env, args: Vec<String>) -> Value {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&env.ok(&refs).await)
}

/// The files of a tar archive (decompressed by ferry's own reader would hide a bug; `tar` reads it).
fn archive_blobs(archive: &Path) -> BTreeSet<String> {
    let out = std::process::Command::new("tar")
        .args(["--zstd", "-tf", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("blobs/sha256/"))
        .filter(|h| !h.is_empty())
        .map(|h| format!("sha256:{h}"))
        .collect()
}

fn index_of_archive(archive: &Path) -> Value {
    let out = std::process::Command::new("tar")
        .args(["--zstd", "-xOf", archive.to_str().unwrap(), "index.json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_delta_pushes_onto_the_old_version_like_a_full_push_and_pulls_over_its_base() {
    let src = Registry::start(Mode::Plain);
    let env = Env::new();
    let (v1, v2) = versions();
    let (l1, l2) = (env.path("v1"), env.path("v2"));
    layout_of(&env, &src, &v1, "1", &l1).await;
    layout_of(&env, &src, &v2, "2", &l2).await;
    let (full1, full2) = (env.path("v1.tar.zst"), env.path("v2.tar.zst"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run_json(&env, export(&[&s(&l1), "-o", &s(&full1)])).await;
    let full = run_json(&env, export(&[&s(&l2), "-o", &s(&full2)])).await;

    // The same delta whatever names the base: an archive, a layout, or a sync lock file of v1.
    let lock = env.path("v1.lock");
    let sync_file = env.path("sync.yaml");
    std::fs::write(
        &sync_file,
        format!(
            "{}:\n  images:\n    apps/web: [\"1\"]\n    apps/api: [\"1\"]\n",
            src.host()
        ),
    )
    .unwrap();
    env.ok(&[
        "sync",
        "-f",
        &s(&sync_file),
        &format!("oci:{}", s(&env.path("synced"))),
        "--lock",
        &s(&lock),
        "--plain-http",
        "-q",
    ])
    .await;
    let delta = env.path("delta.tar.zst");
    let mut blob_sets = Vec::new();
    for (i, base) in [s(&full1), s(&l1), s(&lock)].iter().enumerate() {
        let out = if i == 0 {
            delta.clone()
        } else {
            env.path(&format!("delta{i}.tar.zst"))
        };
        let report = run_json(&env, export(&[&s(&l2), "-o", &s(&out), "--since", base])).await;
        // Left out: exactly the blobs v1 has (the shared base layers, api's config and own layer).
        assert_eq!(report["omittedBlobs"], shared_blobs(&v1, &v2), "{report:#}");
        assert_eq!(shared_blobs(&v1, &v2), BASE.len() + 2);
        blob_sets.push(archive_blobs(&out));
    }
    assert!(
        blob_sets.windows(2).all(|w| w[0] == w[1]),
        "same content whatever the base"
    );
    let full_bytes = full["archiveBytes"].as_u64().unwrap();
    let delta_bytes = std::fs::metadata(&delta).unwrap().len();
    eprintln!("v2 full export {full_bytes} bytes, delta on v1 {delta_bytes} bytes");
    assert!(
        delta_bytes * 3 < full_bytes,
        "{delta_bytes} vs {full_bytes}"
    );

    // Every manifest is in the delta; of the blobs, only what v1 lacks; index.json names the base.
    let in_v1 = digests(&v1);
    let carried = &blob_sets[0];
    for (_, image) in &v2 {
        assert!(carried.contains(&image.digest()));
        for b in image.all_blobs() {
            assert_eq!(
                carried.contains(&b.digest()),
                !in_v1.contains(&b.digest()),
                "{}",
                b.digest()
            );
        }
    }
    let idx = index_of_archive(&delta);
    assert_eq!(idx["annotations"]["dev.ferry.delta.base"], "v1.tar.zst");
    assert_eq!(
        idx["manifests"],
        index(&l2)["manifests"],
        "names as in the layout"
    );

    // A registry holding v1 takes the delta; the result equals a direct push of v2 by digest.
    let (far, direct) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let push = |archive: &Path, reg: &Registry| {
        vec![
            "push".to_string(),
            format!("oci-archive:{}", archive.display()),
            "--registry".into(),
            reg.host(),
            "--no-checksum".into(),
            "-q".into(),
        ]
    };
    for args in [
        push(&full1, &far),
        push(&delta, &far),
        push(&full2, &direct),
    ] {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.ok(&refs).await;
    }
    for (repo, image) in &v2 {
        let got = far.get_manifest(repo, "2").await.expect("tagged");
        let want = direct.get_manifest(repo, "2").await.expect("tagged");
        assert_eq!(got, want, "{repo}");
        assert_eq!(got.1, image.manifest.bytes.as_ref(), "{repo}");
        for b in image.all_blobs() {
            assert!(
                far.blob_exists(repo, &b.digest()).await,
                "{repo} {}",
                b.digest()
            );
        }
    }

    // The far side without a registry: the delta over the v1 archive gives the v2 layout.
    let out = env.path("completed");
    env.ok(&[
        "pull",
        &format!("oci-archive:{}", s(&delta)),
        "--base",
        &s(&full1),
        "-o",
        &s(&out),
        "-q",
    ])
    .await;
    for (_, image) in &v2 {
        crate::support::assert_has_all(&out, image);
    }
}

#[tokio::test]
async fn a_delta_onto_a_far_side_missing_a_base_blob_fails_naming_it_with_nothing_tagged() {
    let src = Registry::start(Mode::Plain);
    let env = Env::new();
    let (v1, v2) = versions();
    let (l1, l2) = (env.path("v1"), env.path("v2"));
    layout_of(&env, &src, &v1, "1", &l1).await;
    layout_of(&env, &src, &v2, "2", &l2).await;
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let delta = env.path("delta.tar.zst");
    env.ok(&[
        "export",
        &s(&l2),
        "-o",
        &s(&delta),
        "--since",
        &s(&l1),
        "-q",
    ])
    .await;
    let base_blobs = digests(&v1);

    // An empty registry: the first blob the delta lacks is named, with its image; nothing is tagged.
    let empty = Registry::start(Mode::Plain);
    let err = env
        .fails(&[
            "push",
            &format!("oci-archive:{}", s(&delta)),
            "--registry",
            &empty.host(),
            "--no-checksum",
        ])
        .await;
    let named: Vec<&String> = base_blobs
        .iter()
        .filter(|d| err.contains(d.as_str()))
        .collect();
    assert_eq!(named.len(), 1, "one missing blob named: {err}");
    assert!(
        err.contains("nothing was tagged") && err.contains("apps/"),
        "{err}"
    );
    for (repo, image) in &v2 {
        assert!(
            empty.get_manifest(repo, "2").await.is_none(),
            "{repo} tagged"
        );
        assert!(
            empty.get_manifest(repo, &image.digest()).await.is_none(),
            "{repo} manifest written"
        );
    }

    // A registry holding v1 but for one base layer (web's repository and api's lack it): still refused.
    let partial = Registry::start(Mode::Plain);
    let shared_layer = v1[0]
        .1
        .all_blobs()
        .into_iter()
        .find(|b| b.bytes.len() > 250_000)
        .unwrap();
    for (repo, image) in &v1 {
        for b in image.all_blobs() {
            if b.digest() != shared_layer.digest() {
                partial.push_blob(repo, &b).await;
            }
        }
    }
    let err = env
        .fails(&[
            "push",
            &format!("oci-archive:{}", s(&delta)),
            "--registry",
            &partial.host(),
            "--no-checksum",
        ])
        .await;
    assert!(err.contains(&shared_layer.digest()), "{err}");
    for (repo, _) in &v2 {
        assert!(
            partial.get_manifest(repo, "2").await.is_none(),
            "{repo} tagged"
        );
    }

    // Into a layout: without the base, and over a base missing that layer, the pull fails naming it and
    // records no image.
    let out = env.path("out");
    let err = env
        .fails(&[
            "pull",
            &format!("oci-archive:{}", s(&delta)),
            "--base",
            &s(&env.path("v1-broken")),
            "-o",
            &s(&out),
        ])
        .await;
    assert!(err.contains("v1-broken"), "{err}");
    let broken = env.path("v1-broken");
    copy_dir(&l1, &broken);
    let hex = shared_layer
        .digest()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    std::fs::remove_file(broken.join("blobs/sha256").join(hex)).unwrap();
    let err = env
        .fails(&[
            "pull",
            &format!("oci-archive:{}", s(&delta)),
            "--base",
            &s(&broken),
            "-o",
            &s(&out),
        ])
        .await;
    assert!(
        err.contains(&shared_layer.digest()) && err.contains("nothing was tagged"),
        "{err}"
    );
    assert!(
        !out.join("index.json").exists() || index(&out)["manifests"].as_array().unwrap().is_empty()
    );
}

/// Blobs (configs and layers) of `v2` that `v1` has.
fn shared_blobs(v1: &[(&str, Artifact)], v2: &[(&str, Artifact)]) -> usize {
    let old = digests(v1);
    digests(v2).intersection(&old).count()
}

fn digests(images: &[(&str, Artifact)]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|(_, a)| a.all_blobs())
        .map(|b| b.digest())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}
