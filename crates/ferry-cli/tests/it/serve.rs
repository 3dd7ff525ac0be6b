//! `ferry serve`: real clients (ferry, skopeo, curl, the Docker Engine, containerd's ctr) pull from what
//! ferry serves; pushes go into a writable layout that stays valid; hostile requests get spec errors.

use std::path::Path;
use std::process::Stdio;

use ferry_test::zarf_package::{self, PackageSpec, ZarfPackage};
use ferry_test::{Mode, Registry, fixtures};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::support::{Env, entries};

/// A running `ferry serve`, stopped when dropped.
struct Served {
    child: tokio::process::Child,
    addr: String,
    /// What it printed after the start-up line (the access log at -v).
    log: tokio::task::JoinHandle<String>,
}

impl Served {
    async fn start(env: &Env, args: &[&str]) -> Served {
        let mut child = env
            .command()
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "-v"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run ferry serve");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .expect("ferry serve starts within a minute")
                .unwrap()
                .unwrap_or_else(|| panic!("ferry serve exited: {seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("://").nth(1).filter(|_| line.starts_with("serving ")) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        let log = tokio::spawn(async move {
            let mut out = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                out.push_str(&l);
                out.push('\n');
            }
            out
        });
        Served { child, addr, log }
    }

    /// Stop with SIGINT (Ctrl-C); returns the exit status and everything logged.
    async fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait())
            .await
            .expect("ferry serve stops within 20s of Ctrl-C")
            .unwrap();
        (status, self.log.await.unwrap())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn sample_package(dir: &Path) -> ZarfPackage {
    zarf_package::build(&PackageSpec::sample("serve", "amd64", 140), dir)
}

/// The digest a layout lists for `name`.
fn digest_of(layout: &Path, name: &str) -> String {
    entries(layout)
        .into_iter()
        .find(|(_, n)| n.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in {}", layout.display()))
        .0
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_package_tarball_is_served_in_place_to_ferry_skopeo_and_curl() {
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    let layout = pkg.dir.join("images");
    let web = digest_of(&layout, "ghcr.io/ferry-test/web:1.0");
    let nginx = digest_of(&layout, "docker.io/library/nginx:1.25");
    let served = Served::start(&env, &[pkg.tar.to_str().unwrap(), "--zarf-names"]).await;
    let host = served.addr.clone();

    // ferry pulls it (no cache: every byte comes from the server), by the served name.
    let out = env.path("pulled");
    env.ok(&["pull", "--no-cache", &format!("{host}/library/nginx:1.25"), "-o", out.to_str().unwrap()])
        .await;
    assert_eq!(digest_of(&out, &format!("{host}/library/nginx:1.25")), nginx);

    // skopeo copies the OCI image by its served name and by the name Zarf's push would give it.
    let crc = ferry_zarf::crc32(b"ghcr.io/ferry-test/web");
    for tag in ["1.0".to_string(), format!("1.0-zarf-{crc}")] {
        let dest = env.path(&format!("skopeo-{tag}"));
        ok("skopeo", &[
            "copy", "--src-tls-verify=false",
            &format!("docker://{host}/ferry-test/web:{tag}"),
            &format!("oci:{}:x", dest.display()),
        ]);
        let inspected = ok("skopeo", &["inspect", "--raw", &format!("oci:{}:x", dest.display())]);
        assert_eq!(ferry_test::encode::sha256_digest(inspected.as_bytes()), web, "{tag}");
    }

    // curl: a range of a layer is 206 with exactly those bytes; a HEAD gives the size.
    let layer = pkg.spec.images[0].artifact.blobs.iter().max_by_key(|b| b.size()).unwrap();
    let url = served.url(&format!("/v2/ferry-test/web/blobs/{}", layer.digest()));
    let part = run("curl", &["-sf", "-r", "10-19", &url]);
    assert_eq!(part.stdout, layer.bytes[10..20].to_vec());
    let head = ok("curl", &["-sfI", &url]);
    assert!(head.contains(&format!("content-length: {}", layer.size())), "{head}");
    let tags = ok("curl", &["-sf", &served.url("/v2/ferry-test/web/tags/list")]);
    assert!(tags.contains(&format!("1.0-zarf-{crc}")), "{tags}");

    let (status, log) = served.interrupt().await;
    assert!(status.success(), "Ctrl-C is a clean stop: {status:?}\n{log}");
    assert!(log.contains("GET /v2/library/nginx/manifests/1.25 200"), "access log:\n{log}");
    assert!(log.contains("stopped"), "{log}");
}

/// Docker and containerd are real clients on this machine; a test that needs one says so and skips when it
/// is absent (never silently).
fn docker_available() -> bool {
    let ok = run_quiet("docker", &["info", "--format", "{{.ServerVersion}}"]);
    if !ok {
        eprintln!("SKIPPED: no reachable Docker Engine (docker info failed)");
    }
    ok
}

fn run_quiet(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// containerd's socket: its own, or the one the Docker Engine runs.
fn containerd_socket() -> Option<&'static str> {
    let found = ["/run/containerd/containerd.sock", "/run/docker/containerd/containerd.sock"]
        .into_iter()
        .find(|s| Path::new(s).exists() && run_quiet("ctr", &["-a", s, "version"]));
    if found.is_none() {
        eprintln!("SKIPPED: no reachable containerd socket for ctr");
    }
    found
}

#[tokio::test]
async fn docker_and_containerd_pull_from_a_served_package_and_docker_pushes_into_a_writable_layout() {
    if !docker_available() {
        return;
    }
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    let layout = pkg.dir.join("images");
    let nginx = digest_of(&layout, "docker.io/library/nginx:1.25");
    let web = digest_of(&layout, "ghcr.io/ferry-test/web:1.0");
    let served = Served::start(&env, &[pkg.dir.to_str().unwrap()]).await;
    let host = served.addr.clone();

    // The Docker Engine treats loopback registries as insecure: plain HTTP.
    let image = format!("{host}/library/nginx:1.25");
    ok("docker", &["pull", &image]);
    let repo_digests = ok("docker", &["image", "inspect", "--format", "{{json .RepoDigests}}", &image]);
    assert!(repo_digests.contains(&format!("{host}/library/nginx@{nginx}")), "{repo_digests}");

    // docker push into a writable layout: chunked uploads, then the manifest under a new tag.
    let staging = env.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let writable = Served::start(&env, &[staging.to_str().unwrap(), "--writable"]).await;
    let pushed = format!("{}/pushed/nginx:1.25", writable.addr);
    ok("docker", &["tag", &image, &pushed]);
    ok("docker", &["push", &pushed]);
    let _ = run("docker", &["rmi", "-f", &image, &pushed]);
    // The layout stays valid for other tools, and holds the image Docker pushed under the name it used:
    // Docker writes its own manifest on push, for the same config (the image ID) and layers.
    let config = |layout: &Path, digest: &str| -> Value {
        let m: Value = serde_json::from_slice(&std::fs::read(crate::support::blob(layout, digest)).unwrap()).unwrap();
        m["config"]["digest"].clone()
    };
    assert_eq!(config(&staging, &digest_of(&staging, &pushed)), config(&layout, &nginx));
    assert!(writable.interrupt().await.1.contains("PATCH /v2/pushed/nginx/blobs/uploads/"), "Docker uploads in chunks");
    // (skopeo's oci: transport skips entries with Docker media types, so ferry and umoci read this one.)
    env.ok(&["inspect", &format!("oci:{}:{pushed}", staging.display())]).await;
    let listed = ok("umoci", &["ls", "--layout", staging.to_str().unwrap()]);
    assert!(listed.contains(&pushed), "{listed}");

    // containerd, the runtime a cluster uses.
    if let Some(socket) = containerd_socket() {
        let ns = format!("ferry-serve-{}", std::process::id());
        let reference = format!("{host}/ferry-test/web:1.0");
        let ctr = |args: &[&str]| {
            let mut all = vec!["-a", socket, "-n", ns.as_str()];
            all.extend_from_slice(args);
            run("ctr", &all)
        };
        let pulled = ctr(&["images", "pull", "--plain-http", "--platform", "linux/amd64", &reference]);
        let listed = ctr(&["images", "ls"]);
        let _ = ctr(&["images", "rm", &reference]);
        let _ = run("ctr", &["-a", socket, "namespaces", "rm", &ns]);
        assert!(
            pulled.status.success(),
            "ctr pull: {}{}",
            String::from_utf8_lossy(&pulled.stdout),
            String::from_utf8_lossy(&pulled.stderr)
        );
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains(&reference) && listed.contains(&web), "{listed}");
    }
    let (status, log) = served.interrupt().await;
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn skopeo_and_ferry_push_into_a_writable_layout_that_stays_valid() {
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    let layout = pkg.dir.join("images");
    let staging = env.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let served = Served::start(&env, &[staging.to_str().unwrap(), "--writable"]).await;
    let host = served.addr.clone();

    // ferry push: every image of the package, under Zarf's names (an index with its children by digest).
    env.ok(&["push", pkg.dir.to_str().unwrap(), "--registry", &host]).await;
    // skopeo: another client's upload flow, into another repository (blobs already there are skipped).
    ok("skopeo", &[
        "copy", "--dest-tls-verify=false",
        &format!("oci:{}:ghcr.io/ferry-test/tools:2.1", layout.display()),
        &format!("docker://{host}/skopeo/tools:2.1"),
    ]);
    let tools = digest_of(&layout, "ghcr.io/ferry-test/tools:2.1");
    assert_eq!(digest_of(&staging, &format!("{host}/skopeo/tools:2.1")), tools);
    let crc = ferry_zarf::crc32(b"ghcr.io/ferry-test/web");
    let web = digest_of(&layout, "ghcr.io/ferry-test/web:1.0");
    assert_eq!(digest_of(&staging, &format!("{host}/ferry-test/web:1.0-zarf-{crc}")), web);

    // The layout is valid: every blob is what its name says, skopeo and umoci read it, the pushes pull back.
    for blob in std::fs::read_dir(staging.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let bytes = std::fs::read(blob.path()).unwrap();
        assert_eq!(
            ferry_test::encode::sha256_digest(&bytes),
            format!("sha256:{}", blob.file_name().to_string_lossy())
        );
    }
    ok("skopeo", &["inspect", &format!("oci:{}:{host}/skopeo/tools:2.1", staging.display())]);
    ok("umoci", &["ls", "--layout", staging.to_str().unwrap()]);
    let back = env.path("back");
    env.ok(&["pull", "--no-cache", &format!("{host}/ferry-test/web:1.0"), "-o", back.to_str().unwrap()])
        .await;
    assert_eq!(digest_of(&back, &format!("{host}/ferry-test/web:1.0")), web);
    let (status, log) = served.interrupt().await;
    assert!(status.success(), "{log}");
    assert!(log.contains("POST /v2/ferry-test/tools/blobs/uploads/ 202"), "{log}");
    assert!(!staging.join("ingest").exists() || std::fs::read_dir(staging.join("ingest")).unwrap().count() == 0,
        "no spool files are left behind");
}
