//! The everyday commands against the real registry: login/logout, inspect, digest, ls, catalog, tag,
//! delete, layout ls/gc, completions, man and help.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use ferry_test::faults::FaultProxy;
use ferry_test::{Artifact, Mode, PASSWORD, Registry, USER, fixtures};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::{Env, assert_has_all, blob, json};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ferry ARGS` with `input` on standard input.
async fn with_stdin(env: &Env, args: &[&str], input: &str) -> std::process::Output {
    let mut child = env
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

fn config_path(env: &Env) -> std::path::PathBuf {
    env.path("home/.docker/config.json")
}

/// Two platforms: amd64 (2 layers) and arm64 (1 layer).
fn multi_arch() -> Artifact {
    fixtures::oci_index(vec![
        (fixtures::oci_image(301, 2, "amd64"), "linux", "amd64", None),
        (fixtures::oci_image(302, 1, "arm64"), "linux", "arm64", None),
    ])
}

/// Bytes of every distinct node of `a`: what `inspect` reports as the total size.
fn total_size(a: &Artifact) -> u64 {
    a.all_blobs()
        .iter()
        .chain(a.all_manifests().iter())
        .map(|b| b.size())
        .sum()
}

#[tokio::test]
async fn login_checks_and_stores_credentials_then_logout_removes_them() {
    for mode in [Mode::Basic, Mode::Token] {
        let reg = Registry::start(mode);
        let image = fixtures::oci_image(310, 1, "amd64");
        reg.seed("secure/app", Some("1"), &image).await;
        let host = reg.host();
        let reference = format!("{host}/secure/app:1");
        let env = Env::new();
        let config = config_path(&env);
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            r#"{"psFormat":"table {{.ID}}","auths":{"other.example":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let before = std::fs::read(&config).unwrap();

        // A wrong password is refused by the registry (or its token service) and nothing is stored.
        let out = with_stdin(
            &env,
            &["login", &host, "-u", USER, "--password-stdin"],
            "wrong\n",
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{mode:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&host) && err.contains("nothing was stored"),
            "{err}"
        );
        assert!(!err.contains("wrong"), "the password never appears: {err}");
        assert_eq!(
            std::fs::read(&config).unwrap(),
            before,
            "{mode:?}: config untouched"
        );

        let out = with_stdin(
            &env,
            &["login", &host, "-u", USER, "--password-stdin", "--json"],
            &format!("{PASSWORD}\n"),
        )
        .await;
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout(&out).contains(PASSWORD));
        let v = json(&out);
        assert_eq!(v["registry"], host.as_str());
        assert_eq!(v["store"], "file");
        assert_eq!(v["username"], USER);
        let written: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert_eq!(
            written["auths"][&host]["auth"],
            ferry_test::encode::base64(format!("{USER}:{PASSWORD}").as_bytes()).as_str()
        );
        assert_eq!(written["psFormat"], "table {{.ID}}", "other keys kept");
        assert_eq!(written["auths"]["other.example"]["auth"], "eDp5");
        let mode_bits = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode_bits, 0o600);

        // The stored credentials serve a pull without flags.
        let out_dir = env.path("images");
        env.ok(&["pull", &reference, "-o", out_dir.to_str().unwrap(), "-q"])
            .await;
        assert_has_all(&out_dir, &image);

        let out = env.ok(&["logout", &host]).await;
        assert!(stdout(&out).contains("Removed"), "{}", stdout(&out));
        let written: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert!(written["auths"].get(&host).is_none());
        assert_eq!(written["auths"]["other.example"]["auth"], "eDp5");
        let out = env.ok(&["logout", &host, "--json"]).await;
        assert_eq!(json(&out)["removed"], false);
        env.fails(&[
            "pull",
            &reference,
            "-o",
            env.path("again").to_str().unwrap(),
            "--no-cache",
        ])
        .await;
    }
}

#[tokio::test]
async fn login_through_a_credential_helper() {
    let reg = Registry::start(Mode::Basic);
    let image = fixtures::oci_image(311, 1, "amd64");
    reg.seed("app", Some("1"), &image).await;
    let host = reg.host();
    let env = Env::new();
    // A helper that keeps one credential in a file: `store` saves the JSON it is given, `get` returns it
    // for the same host, `erase` forgets it.
    let bin = env.path("bin");
    let store = env.path("helper-store.json");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("docker-credential-ferrytest");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
set -e
store='{store}'
case "$1" in
  store) cat > "$store" ;;
  get) host=$(cat); if [ -f "$store" ] && grep -q "\"ServerURL\":\"$host\"" "$store"; then cat "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) host=$(cat); if [ -f "$store" ]; then rm "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
            store = store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = config_path(&env);
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers":{{"{host}":"ferrytest"}}}}"#),
    )
    .unwrap();
    let before = std::fs::read(&config).unwrap();

    let out = env
        .command()
        .env("PATH", &path)
        .args(["login", &host, "-u", USER, "-p", PASSWORD])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("docker-credential-ferrytest"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(PASSWORD));
    let kept: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(kept["ServerURL"], host.as_str());
    assert_eq!(kept["Username"], USER);
    assert_eq!(kept["Secret"], PASSWORD);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "the helper keeps the secret, not the file"
    );

    let out_dir = env.path("images");
    let out = env
        .command()
        .env("PATH", &path)
        .args([
            "pull",
            &format!("{host}/app:1"),
            "-o",
            out_dir.to_str().unwrap(),
            "-q",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_has_all(&out_dir, &image);

    let out = env
        .command()
        .env("PATH", &path)
        .args(["logout", &host, "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(
        (v["removed"].clone(), v["helper"].clone()),
        (Value::Bool(true), "ferrytest".into())
    );
    assert!(!store.exists());
}

#[tokio::test]
async fn inspect_and_digest_of_an_index_and_a_manifest() {
    let reg = Registry::start(Mode::Plain);
    let index = multi_arch();
    let single = fixtures::docker_image(303, 2, "arm64");
    reg.seed("multi", Some("1"), &index).await;
    reg.seed("single", Some("1"), &single).await;
    let host = reg.host();
    let env = Env::new();
    let multi = format!("{host}/multi:1");

    let v = json(&env.ok(&["inspect", &multi, "--json"]).await);
    assert_eq!(v["kind"], "index");
    assert_eq!(v["digest"], index.digest().as_str());
    assert_eq!(v["mediaType"], fixtures::OCI_INDEX);
    assert_eq!(v["size"], index.manifest.size());
    assert_eq!(v["totalSize"], total_size(&index));
    assert_eq!(v["complete"], true);
    let children = v["manifests"].as_array().unwrap();
    let platforms: Vec<&str> = children
        .iter()
        .map(|c| c["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(children[1]["digest"], index.children[1].digest().as_str());
    assert_eq!(children[1]["totalSize"], total_size(&index.children[1]));

    let text = stdout(&env.ok(&["inspect", &multi]).await);
    for want in ["linux/amd64", "linux/arm64", "Total size", &index.digest()] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }

    // --raw: the bytes exactly, no newline added.
    let raw = env.ok(&["inspect", "--raw", &multi]).await;
    assert_eq!(raw.stdout, index.manifest.bytes.as_ref());
    let raw = env
        .ok(&["inspect", "--raw", &format!("{host}/single:1")])
        .await;
    assert_eq!(raw.stdout, single.manifest.bytes.as_ref());

    // --config: an index has none until a platform is chosen.
    let err = env.fails(&["inspect", "--config", &multi]).await;
    assert!(
        err.contains("--platform") && err.contains("linux/arm64"),
        "{err}"
    );
    let arm = &index.children[1];
    let config = env
        .ok(&["inspect", "--config", "--platform", "linux/arm64", &multi])
        .await;
    assert_eq!(
        config.stdout,
        arm.blobs[0].bytes.as_ref(),
        "the config blob, exactly"
    );

    let v = json(
        &env.ok(&["inspect", &format!("{host}/single:1"), "--json"])
            .await,
    );
    assert_eq!(v["kind"], "manifest");
    assert_eq!(v["mediaType"], fixtures::DOCKER_MANIFEST);
    assert_eq!(v["platform"], "linux/arm64", "read from the config");
    assert_eq!(v["config"]["mediaType"], fixtures::DOCKER_CONFIG);
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["totalSize"], total_size(&single));
    assert!(v["manifests"].as_array().unwrap().is_empty());

    let d = env.ok(&["digest", &multi]).await;
    assert_eq!(stdout(&d), format!("{}\n", index.digest()));
    let d = env
        .ok(&["digest", &multi, "--platform", "linux/arm64"])
        .await;
    assert_eq!(stdout(&d).trim(), arm.digest());
    let v = json(
        &env.ok(&["digest", &format!("{host}/single:1"), "--json"])
            .await,
    );
    assert_eq!(v["digest"], single.digest().as_str());
    assert_eq!(v["size"], single.manifest.size());

    let err = env.fails(&["inspect", &format!("{host}/multi:nope")]).await;
    assert!(err.contains("not found") && err.contains("multi"), "{err}");
}

#[tokio::test]
async fn ls_catalog_tag_and_delete() {
    let reg = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(320, 1, "amd64");
    reg.seed("app", Some("1"), &image).await;
    for repo in ["b", "c", "d", "e"] {
        reg.seed(repo, Some("1"), &image).await;
    }
    let gone = fixtures::oci_image(321, 1, "amd64");
    reg.seed("gone", Some("1"), &gone).await;
    // Through a recording proxy, to see the requests each command makes (plain HTTP: the proxy does not
    // speak TLS, and an HTTPS probe would wait for the connect timeout).
    let proxy = FaultProxy::start(&reg.host());
    let host = proxy.host();
    let env = Env::new();

    // tag: only manifest requests, and the bytes under the new tags are the original ones.
    let before = proxy.requests().len();
    let out = env
        .ok(&[
            "tag",
            "--plain-http",
            &format!("{host}/app:1"),
            "2",
            "3",
            "4",
            "5",
        ])
        .await;
    assert!(
        stdout(&out).contains(&format!("{host}/app:5")),
        "{}",
        stdout(&out)
    );
    let tag_requests = &proxy.requests()[before..];
    assert!(
        tag_requests.iter().all(|r| !r.path.contains("/blobs/")),
        "no blob traffic: {tag_requests:?}"
    );
    assert_eq!(
        tag_requests.iter().filter(|r| r.method == "PUT").count(),
        4,
        "{tag_requests:?}"
    );
    for t in ["2", "5"] {
        let (_, bytes) = reg.get_manifest("app", t).await.unwrap();
        assert_eq!(bytes, image.manifest.bytes.as_ref());
    }
    let err = env
        .fails(&[
            "tag",
            "--plain-http",
            &format!("{host}/app:1"),
            "other/repo:x",
        ])
        .await;
    assert!(err.contains("ferry copy"), "{err}");

    // ls: five tags, two per page.
    let before = proxy.requests().len();
    let v = json(
        &env.ok(&[
            "ls",
            "--plain-http",
            &format!("{host}/app"),
            "--page-size",
            "2",
            "--json",
        ])
        .await,
    );
    assert_eq!(v["repository"], format!("{host}/app"));
    let mut tags: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "2", "3", "4", "5"]);
    let pages = proxy.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/tags/list"))
        .count();
    // Distribution 2.8 answers every tag at once; the paging code is the catalog's, checked below.
    assert!(pages >= 1, "{pages}");
    let out = env
        .ok(&["ls", "--plain-http", &format!("{host}/app")])
        .await;
    assert_eq!(stdout(&out).lines().count(), 5);
    let err = env
        .fails(&["ls", "--plain-http", &format!("{host}/app:1")])
        .await;
    assert!(err.contains("without a tag"), "{err}");

    // catalog: registry 2.8 pages `_catalog` with Link headers.
    let before = proxy.requests().len();
    let v = json(
        &env.ok(&[
            "catalog",
            "--plain-http",
            &host,
            "--page-size",
            "2",
            "--json",
        ])
        .await,
    );
    assert_eq!(v["registry"], host.as_str());
    assert_eq!(
        v["repositories"],
        serde_json::json!(["app", "b", "c", "d", "e", "gone"])
    );
    let pages = proxy.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/_catalog"))
        .count();
    assert!(pages >= 3, "followed the Link pages: {pages}");
    let out = env.ok(&["catalog", "--plain-http", &host]).await;
    assert_eq!(stdout(&out).lines().count(), 6);

    // delete by tag: resolved first, and said so; the manifest and every tag on it are gone.
    let out = env
        .ok(&["delete", "--plain-http", &format!("{host}/app:3")])
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&image.digest()) && err.contains("app:3"),
        "{err}"
    );
    assert!(stdout(&out).contains(&format!("deleted {host}/app@{}", image.digest())));
    assert!(reg.get_manifest("app", &image.digest()).await.is_none());
    assert!(reg.get_manifest("app", "1").await.is_none());

    // delete by digest.
    let v = json(
        &env.ok(&[
            "delete",
            "--plain-http",
            &format!("{host}/gone@{}", gone.digest()),
            "--json",
        ])
        .await,
    );
    assert_eq!(v["digest"], gone.digest().as_str());
    assert_eq!(v["resolvedFrom"], Value::Null);
    assert!(reg.get_manifest("gone", &gone.digest()).await.is_none());
    let err = env
        .fails(&[
            "delete",
            "--plain-http",
            &format!("{host}/gone@{}", gone.digest()),
        ])
        .await;
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test]
async fn layouts_inspect_ls_and_gc() {
    let reg = Registry::start(Mode::Plain);
    let inner = multi_arch();
    let nested = fixtures::nested_index(
        inner.clone(),
        vec![(fixtures::oci_image(330, 1, "s390x"), "linux", "s390x", None)],
    );
    let single = fixtures::oci_image(331, 2, "amd64");
    reg.seed("nested", Some("1"), &nested).await;
    reg.seed("single", Some("1"), &single).await;
    let host = reg.host();
    let env = Env::new();
    let out = env.path("images");
    let pinned = format!("{host}/nested@{}", nested.digest());
    let single_ref = format!("{host}/single:1");
    env.ok(&[
        "pull",
        &pinned,
        &single_ref,
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .await;
    let dir = out.to_str().unwrap();

    // inspect by name, and by the digest of a manifest nested below an entry.
    let v = json(
        &env.ok(&["inspect", &format!("oci:{dir}:{pinned}"), "--json"])
            .await,
    );
    assert_eq!(v["digest"], nested.digest().as_str());
    assert_eq!(v["name"], pinned.as_str());
    assert_eq!(v["totalSize"], total_size(&nested));
    let raw = env
        .ok(&["inspect", "--raw", &format!("oci:{dir}:{single_ref}")])
        .await;
    assert_eq!(raw.stdout, single.manifest.bytes.as_ref());
    let arm = &inner.children[1];
    let v = json(
        &env.ok(&["inspect", &format!("oci:{dir}:{}", arm.digest()), "--json"])
            .await,
    );
    assert_eq!(v["platform"], "linux/arm64");
    let config = env
        .ok(&["inspect", "--config", &format!("oci:{dir}:{single_ref}")])
        .await;
    assert_eq!(config.stdout, single.blobs[0].bytes.as_ref());
    let d = env
        .ok(&["digest", &format!("oci:{dir}:{single_ref}")])
        .await;
    assert_eq!(stdout(&d).trim(), single.digest());
    let err = env
        .fails(&["inspect", &format!("oci:{dir}:{host}/absent:1")])
        .await;
    assert!(
        err.contains("no image named") && err.contains(&single_ref),
        "{err}"
    );

    // layout ls: names and platforms.
    let v = json(&env.ok(&["layout", "ls", dir, "--json"]).await);
    let entries = v.as_array().unwrap();
    let single_entry = entries
        .iter()
        .find(|e| e["name"] == single_ref.as_str())
        .unwrap();
    assert_eq!(single_entry["refName"], single_ref.as_str());
    assert_eq!(single_entry["baseName"], single_ref.as_str());
    assert_eq!(
        single_entry["platforms"],
        serde_json::json!(["linux/amd64"])
    );
    let text = stdout(&env.ok(&["layout", "ls", dir]).await);
    assert!(
        text.contains(&single_ref) && text.contains("linux/amd64"),
        "{text}"
    );

    // gc: keep only the named entries, so the nested manifests are reachable only through the walk; then
    // add an orphan.
    let layout = ferry_store::OciLayout::open(&out).unwrap();
    layout
        .update_index(|e| e.retain(|d| d.image_name().is_some()))
        .unwrap();
    let orphan = b"an orphan blob nothing references";
    let orphan_digest = ferry_test::encode::sha256_digest(orphan);
    std::fs::write(blob(&out, &orphan_digest), orphan).unwrap();

    // By default a just-written blob is kept: a running pull may not have recorded its image yet.
    let v = json(&env.ok(&["layout", "gc", dir, "--dry-run", "--json"]).await);
    assert_eq!(v["removed"], serde_json::json!([]));
    assert_eq!(v["keptRecent"], 1);
    let v = json(
        &env.ok(&[
            "layout",
            "gc",
            dir,
            "--min-age",
            "0s",
            "--dry-run",
            "--json",
        ])
        .await,
    );
    assert_eq!(v["removed"], serde_json::json!([orphan_digest]));
    assert!(
        blob(&out, &orphan_digest).exists(),
        "a dry run removes nothing"
    );
    let v = json(
        &env.ok(&["layout", "gc", dir, "--min-age", "0s", "--json"])
            .await,
    );
    assert_eq!(v["removed"], serde_json::json!([orphan_digest]));
    assert_eq!(v["removedBytes"], orphan.len());
    assert!(!blob(&out, &orphan_digest).exists());
    assert_has_all(&out, &nested);
    assert_has_all(&out, &single);
    let out_text = stdout(&env.ok(&["layout", "gc", dir, "--min-age", "0s"]).await);
    assert!(out_text.contains("removed 0 blobs"), "{out_text}");
    // The same image in an archive made from the layout.
    let archive = env.path("images.tar");
    env.ok(&["export", dir, "-o", archive.to_str().unwrap(), "-q"])
        .await;
    let v = json(
        &env.ok(&[
            "inspect",
            &format!("oci-archive:{}:{single_ref}", archive.display()),
            "--json",
        ])
        .await,
    );
    assert_eq!(v["digest"], single.digest().as_str());
    assert_eq!(v["totalSize"], total_size(&single));
    let err = env
        .fails(&["inspect", &format!("oci-archive:{}", archive.display())])
        .await;
    assert!(err.contains("name one"), "{err}");
}

#[tokio::test]
async fn zarf_era_layouts_inspect_by_name() {
    let Some(data) = crate::zarf_compat::testdata() else {
        return;
    };
    let env = Env::new();
    let crane = data.join("crane-oci-layout/images");
    let dir = crane.to_str().unwrap();
    // Crane era: base.name only, and `library/…` without a registry normalizes to the same image.
    for name in [
        "docker.io/library/local-test:1.0.0",
        "library/local-test:1.0.0",
        "localhost:9999/local-test:1.0.0",
    ] {
        let v = json(
            &env.ok(&["inspect", &format!("oci:{dir}:{name}"), "--json"])
                .await,
        );
        assert_eq!(
            v["digest"], "sha256:36d1d40a06b50801a6a61e0d77839ddcb1fad96236bc9bb0b054a0a88ddee6d2",
            "{name}"
        );
        assert_eq!(v["mediaType"], fixtures::DOCKER_MANIFEST);
    }
    let v = json(
        &env.ok(&[
            "inspect",
            &format!("oci:{dir}:ghcr.io/stefanprodan/charts/podinfo:6.4.0"),
            "--json",
        ])
        .await,
    );
    assert_eq!(v["config"]["mediaType"], fixtures::HELM_CONFIG);
    let v = json(&env.ok(&["layout", "ls", dir, "--json"]).await);
    assert_eq!(v.as_array().unwrap().len(), 6);
    // ORAS era: ref.name and base.name.
    let oras = data.join("oras-oci-layout/images");
    let v = json(
        &env.ok(&[
            "inspect",
            &format!(
                "oci:{}:ghcr.io/zarf-dev/images/hello-world:latest",
                oras.display()
            ),
            "--json",
        ])
        .await,
    );
    assert_eq!(
        v["digest"],
        "sha256:03b62250a3cb1abd125271d393fc08bf0cc713391eda6b57c02d1ef85efcc25c"
    );
}

/// Every subcommand, as `ferry --help` lists it.
const HELP_COMMANDS: &str = "\
Commands:
  pull         Pull images and artifacts from registries into an OCI image layout (a Zarf `images/` directory)
  push         Push the images of an OCI layout (or a Zarf package directory) into a registry, named as Zarf names them
  copy         Copy an image from any location to a registry or layout (a whole index unless a platform is chosen)
  sync         Mirror what a skopeo-sync YAML file names into a registry prefix, an OCI layout or an archive
  export       Write an OCI layout (or a Zarf package's images/) as one archive file that travels as a unit
  cache        Inspect and manage the shared blob cache
  login        Check credentials against a registry, then store them in the Docker config (or its credential helper)
  logout       Remove the credentials stored for a registry
  verify       Check an image's cosign signatures against a key or a policy, and print who signed what
  inspect      Show an image's descriptor, platforms, layers, total size and annotations (registry or OCI layout)
  digest       Print the digest of the manifest a reference names (a HEAD request when the registry allows)
  ls           List the tags of a repository
  catalog      List the repositories of a registry (`/v2/_catalog`)
  tag          Point more tags at the manifest a reference names (the manifest is sent again; no blob moves)
  delete       Delete a manifest by digest (a tag is resolved to its digest first: every tag on it goes too)
  layout       Look at and tidy an OCI image layout (a Zarf package's images/ directory)
  package      Inspect, verify, publish and pull Zarf packages (directory, .tar, .tar.zst or oci://)
  serve        Serve a layout, a Zarf package, an OCI archive or the blob cache as a registry (OCI distribution API)
  completions  Print a shell completion script
  man          Print the man page (roff), or write one page per command into a directory
  help         Print this message or the help of the given subcommand(s)
";

#[tokio::test]
async fn help_completions_and_man_pages() {
    let env = Env::new();
    let help = stdout(&env.ok(&["--help"]).await);
    let section: String = help
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with("Commands:"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(section, HELP_COMMANDS, "ferry --help changed:\n{help}");
    let names: Vec<&str> = HELP_COMMANDS
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .collect();

    for cmd in [
        &["login"][..],
        &["logout"],
        &["inspect"],
        &["digest"],
        &["ls"],
        &["catalog"],
        &["tag"],
        &["delete"],
        &["layout", "ls"],
        &["layout", "gc"],
        &["completions"],
        &["man"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let text = stdout(&env.ok(&args).await);
        assert!(
            text.contains("Examples:\n  ferry "),
            "{cmd:?} --help:\n{text}"
        );
    }
    // Usage errors exit 2.
    assert_eq!(env.ferry(&["ls"]).await.status.code(), Some(2));
    assert_eq!(
        env.ferry(&["inspect", "x", "--raw", "--json"])
            .await
            .status
            .code(),
        Some(2)
    );

    let bash = stdout(&env.ok(&["completions", "bash"]).await);
    assert!(bash.contains("pull") && bash.contains("inspect") && bash.contains("_ferry"));
    let zsh = stdout(&env.ok(&["completions", "zsh"]).await);
    assert!(zsh.contains("#compdef ferry"));

    let man = stdout(&env.ok(&["man"]).await);
    assert!(
        man.starts_with(".ie") || man.contains(".TH ferry"),
        "{}",
        &man[..200.min(man.len())]
    );
    for n in &names {
        assert!(man.contains(&format!("ferry\\-{n}")), "man page lists {n}");
    }
    let dir = env.path("man");
    env.ok(&["man", "--out", dir.to_str().unwrap(), "-q"]).await;
    for page in [
        "ferry.1",
        "ferry-pull.1",
        "ferry-inspect.1",
        "ferry-layout-gc.1",
    ] {
        assert!(Path::new(&dir.join(page)).is_file(), "{page}");
    }
}
