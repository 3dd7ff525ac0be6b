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
            if let Some(rest) = line
                .split("://")
                .nth(1)
                .filter(|_| line.starts_with("serving "))
            {
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
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
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
    env.ok(&[
        "pull",
        "--no-cache",
        &format!("{host}/library/nginx:1.25"),
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        digest_of(&out, &format!("{host}/library/nginx:1.25")),
        nginx
    );

    // skopeo copies the OCI image by its served name and by the name Zarf's push would give it.
    let crc = ferry_zarf::crc32(b"ghcr.io/ferry-test/web");
    for tag in ["1.0".to_string(), format!("1.0-zarf-{crc}")] {
        let dest = env.path(&format!("skopeo-{tag}"));
        ok(
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{host}/ferry-test/web:{tag}"),
                &format!("oci:{}:x", dest.display()),
            ],
        );
        let inspected = ok(
            "skopeo",
            &["inspect", "--raw", &format!("oci:{}:x", dest.display())],
        );
        assert_eq!(
            ferry_test::encode::sha256_digest(inspected.as_bytes()),
            web,
            "{tag}"
        );
    }

    // curl: a range of a layer is 206 with exactly those bytes; a HEAD gives the size.
    let layer = pkg.spec.images[0]
        .artifact
        .blobs
        .iter()
        .max_by_key(|b| b.size())
        .unwrap();
    let url = served.url(&format!("/v2/ferry-test/web/blobs/{}", layer.digest()));
    let part = run("curl", &["-sf", "-r", "10-19", &url]);
    assert_eq!(part.stdout, layer.bytes[10..20].to_vec());
    let head = ok("curl", &["-sfI", &url]);
    assert!(
        head.contains(&format!("content-length: {}", layer.size())),
        "{head}"
    );
    let tags = ok(
        "curl",
        &["-sf", &served.url("/v2/ferry-test/web/tags/list")],
    );
    assert!(tags.contains(&format!("1.0-zarf-{crc}")), "{tags}");

    let (status, log) = served.interrupt().await;
    assert!(
        status.success(),
        "Ctrl-C is a clean stop: {status:?}\n{log}"
    );
    assert!(
        log.contains("GET /v2/library/nginx/manifests/1.25 200"),
        "access log:\n{log}"
    );
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
    let found = [
        "/run/containerd/containerd.sock",
        "/run/docker/containerd/containerd.sock",
    ]
    .into_iter()
    .find(|s| Path::new(s).exists() && run_quiet("ctr", &["-a", s, "version"]));
    if found.is_none() {
        eprintln!("SKIPPED: no reachable containerd socket for ctr");
    }
    found
}

#[tokio::test]
async fn docker_and_containerd_pull_from_a_served_package_and_docker_pushes_into_a_writable_layout()
{
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
    let repo_digests = ok(
        "docker",
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ],
    );
    assert!(
        repo_digests.contains(&format!("{host}/library/nginx@{nginx}")),
        "{repo_digests}"
    );

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
        let m: Value =
            serde_json::from_slice(&std::fs::read(crate::support::blob(layout, digest)).unwrap())
                .unwrap();
        m["config"]["digest"].clone()
    };
    assert_eq!(
        config(&staging, &digest_of(&staging, &pushed)),
        config(&layout, &nginx)
    );
    assert!(
        writable
            .interrupt()
            .await
            .1
            .contains("PATCH /v2/pushed/nginx/blobs/uploads/"),
        "Docker uploads in chunks"
    );
    // (skopeo's oci: transport skips entries with Docker media types, so ferry and umoci read this one.)
    env.ok(&["inspect", &format!("oci:{}:{pushed}", staging.display())])
        .await;
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
        let pulled = ctr(&[
            "images",
            "pull",
            "--plain-http",
            "--platform",
            "linux/amd64",
            &reference,
        ]);
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
        assert!(
            listed.contains(&reference) && listed.contains(&web),
            "{listed}"
        );
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
    env.ok(&["push", pkg.dir.to_str().unwrap(), "--registry", &host])
        .await;
    // skopeo: another client's upload flow, into another repository (blobs already there are skipped).
    ok(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:ghcr.io/ferry-test/tools:2.1", layout.display()),
            &format!("docker://{host}/skopeo/tools:2.1"),
        ],
    );
    let tools = digest_of(&layout, "ghcr.io/ferry-test/tools:2.1");
    assert_eq!(
        digest_of(&staging, &format!("{host}/skopeo/tools:2.1")),
        tools
    );
    let crc = ferry_zarf::crc32(b"ghcr.io/ferry-test/web");
    let web = digest_of(&layout, "ghcr.io/ferry-test/web:1.0");
    assert_eq!(
        digest_of(&staging, &format!("{host}/ferry-test/web:1.0-zarf-{crc}")),
        web
    );

    // The layout is valid: every blob is what its name says, skopeo and umoci read it, the pushes pull back.
    for blob in std::fs::read_dir(staging.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let bytes = std::fs::read(blob.path()).unwrap();
        assert_eq!(
            ferry_test::encode::sha256_digest(&bytes),
            format!("sha256:{}", blob.file_name().to_string_lossy())
        );
    }
    ok(
        "skopeo",
        &[
            "inspect",
            &format!("oci:{}:{host}/skopeo/tools:2.1", staging.display()),
        ],
    );
    ok("umoci", &["ls", "--layout", staging.to_str().unwrap()]);
    let back = env.path("back");
    env.ok(&[
        "pull",
        "--no-cache",
        &format!("{host}/ferry-test/web:1.0"),
        "-o",
        back.to_str().unwrap(),
    ])
    .await;
    assert_eq!(digest_of(&back, &format!("{host}/ferry-test/web:1.0")), web);
    let (status, log) = served.interrupt().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("POST /v2/ferry-test/tools/blobs/uploads/ 202"),
        "{log}"
    );
    assert!(
        !staging.join("ingest").exists()
            || std::fs::read_dir(staging.join("ingest")).unwrap().count() == 0,
        "no spool files are left behind"
    );
}

#[tokio::test]
async fn a_pull_by_another_process_is_served_without_restart_and_referrers_travel() {
    let reg = Registry::start(Mode::Plain);
    let f = crate::referrers::family(1400);
    crate::referrers::seed_with_fallback(&reg, &f).await;
    reg.seed("other", Some("1"), &fixtures::oci_image(1450, 1, "amd64"))
        .await;
    let env = Env::new();
    let layout = env.path("images");
    env.ok(&[
        "pull",
        &format!("{}/other:1", reg.host()),
        "-o",
        layout.to_str().unwrap(),
    ])
    .await;
    let served = Served::start(&env, &[layout.to_str().unwrap()]).await;
    let host = served.addr.clone();
    let catalog = |s: &Served| ok("curl", &["-sf", &s.url("/v2/_catalog")]);
    assert!(!catalog(&served).contains("\"app\""));

    // Another ferry process pulls the family into the served layout: it is served at once.
    env.ok(&[
        "pull",
        &format!("{}/app:1", reg.host()),
        "-o",
        layout.to_str().unwrap(),
        "--referrers",
    ])
    .await;
    assert!(catalog(&served).contains("\"app\""), "{}", catalog(&served));

    // The referrers API lists the subject-linked artifacts (filtered by artifactType when asked).
    let listed: Value = serde_json::from_str(&ok(
        "curl",
        &[
            "-sf",
            &served.url(&format!("/v2/app/referrers/{}", f.image.digest())),
        ],
    ))
    .unwrap();
    assert_eq!(
        listed["manifests"][0]["digest"],
        f.sbom.digest(),
        "{listed}"
    );
    assert_eq!(
        listed["manifests"][0]["artifactType"],
        crate::referrers::SBOM
    );
    let filtered = ok(
        "curl",
        &[
            "-sfi",
            &served.url(&format!(
                "/v2/app/referrers/{}?artifactType=x%2Fnone",
                f.image.digest()
            )),
        ],
    );
    assert!(
        filtered
            .to_ascii_lowercase()
            .contains("oci-filters-applied: artifacttype")
            && filtered.contains("\"manifests\":[]"),
        "{filtered}"
    );

    // ferry copy --referrers finds the SBOM and its signature through the API, with the cosign tag.
    let out = env.path("copied");
    env.ok(&[
        "copy",
        "--referrers",
        &format!("{host}/app:1"),
        &format!("oci:{}:copied/app:1", out.display()),
    ])
    .await;
    for a in [&f.image, &f.sbom, &f.sbom_sig] {
        crate::support::assert_has_all(&out, a);
    }
    drop(served);
}

/// One raw HTTP/1.1 request, so paths reach the server exactly as written (URL libraries normalize `..`).
async fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // A server may answer before it read the whole body (HTTP allows it): the answer is what counts.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out).await {
        panic!(
            "{method} {path}: {e} after {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn code(body: &str) -> String {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not a spec error ({e}): {body:?}"));
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

/// A request (method, path, headers) and the spec error it must get (status, code).
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn hostile_requests_get_spec_errors_and_bad_blobs_fail_alone() {
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    // A copy of the layout with one layer corrupted (same size) and one blob linked outside it.
    let layout = env.path("layout");
    ok(
        "cp",
        &[
            "-r",
            pkg.dir.join("images").to_str().unwrap(),
            layout.to_str().unwrap(),
        ],
    );
    let web = &pkg.spec.images[0].artifact;
    let (bad, good) = (&web.blobs[1], &web.blobs[2]);
    let bad_path = crate::support::blob(&layout, &bad.digest());
    std::fs::remove_file(&bad_path).unwrap();
    std::fs::write(&bad_path, vec![b'x'; bad.bytes.len()]).unwrap();
    let secret = env.path("secret");
    std::fs::write(&secret, b"secret").unwrap();
    let planted = format!("sha256:{}", ferry_test::encode::hex(&[7u8; 32]));
    std::os::unix::fs::symlink(&secret, crate::support::blob(&layout, &planted)).unwrap();

    let served = Served::start(&env, &[layout.to_str().unwrap()]).await;
    let a = served.addr.clone();
    let zero = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/v2/../../etc/manifests/passwd".into(),
            vec![],
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            "/v2/%2e%2e/tags/list".into(),
            vec![],
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            "/v2/a//b/tags/list".into(),
            vec![],
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            "/v2/ferry-test/web/blobs/sha256:..%2F..%2Fsecret".into(),
            vec![],
            400,
            "DIGEST_INVALID",
        ),
        (
            "GET",
            "/v2/ferry-test/web/blobs/../../../secret".into(),
            vec![],
            400,
            "DIGEST_INVALID",
        ),
        (
            "GET",
            "/v2/../blobs/x/../../../secret".into(),
            vec![],
            400,
            "NAME_INVALID",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{zero}"),
            vec![],
            404,
            "BLOB_UNKNOWN",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{planted}"),
            vec![],
            404,
            "BLOB_UNKNOWN",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/manifests/{zero}"),
            vec![],
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET",
            "/v2/ferry-test/web/manifests/nope".into(),
            vec![],
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET",
            "/v2/nobody/tags/list".into(),
            vec![],
            404,
            "NAME_UNKNOWN",
        ),
        (
            "GET",
            "/v2/_catalog?n=-1".into(),
            vec![],
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{}", good.digest()),
            vec![("Range", "bytes=99999999999999-")],
            416,
            "SIZE_INVALID",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{}", good.digest()),
            vec![("Range", "bytes=9-2")],
            416,
            "SIZE_INVALID",
        ),
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{}", good.digest()),
            vec![("Range", "bytes=0-1,5-6")],
            416,
            "SIZE_INVALID",
        ),
        // A client without OCI support gets a clear 404, not bytes it cannot read.
        (
            "GET",
            "/v2/ferry-test/web/manifests/1.0".into(),
            vec![(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )],
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "POST",
            "/v2/ferry-test/web/blobs/uploads/".into(),
            vec![],
            405,
            "UNSUPPORTED",
        ),
        (
            "DELETE",
            "/v2/ferry-test/web/manifests/1.0".into(),
            vec![],
            405,
            "UNSUPPORTED",
        ),
        // The corrupt layer: an error for this request only, never its bytes.
        (
            "GET",
            format!("/v2/ferry-test/web/blobs/{}", bad.digest()),
            vec![],
            500,
            "UNKNOWN",
        ),
    ];
    for (method, path, headers, status, want) in &cases {
        let (got, head, body) = raw(&a, method, path, headers, b"").await;
        assert_eq!(got, *status, "{method} {path}: {head}{body}");
        assert_eq!(code(&body), *want, "{method} {path}: {body}");
    }
    let good_bytes = run(
        "curl",
        &[
            "-sf",
            &served.url(&format!("/v2/ferry-test/web/blobs/{}", good.digest())),
        ],
    );
    assert_eq!(
        good_bytes.stdout,
        good.bytes.to_vec(),
        "the good blob next to it is served"
    );
    let (status, head, _) = raw(&a, "GET", "/v2/_catalog?n=1", &[], b"").await;
    assert!(
        status == 200 && head.contains("link: </v2/_catalog?n=1&last="),
        "{head}"
    );
    let (_, status_log) = served.interrupt().await;
    assert!(
        status_log.contains(&format!("not serving {}", bad.digest())),
        "logged: {status_log}"
    );
}

#[tokio::test]
async fn uploads_are_committed_only_when_verified_and_within_limits() {
    let env = Env::new();
    let staging = env.path("staging");
    let served = Served::start(
        &env,
        &[
            staging.to_str().unwrap(),
            "--writable",
            "--max-upload-size",
            "1K",
        ],
    )
    .await;
    let a = served.addr.clone();
    let data = b"0123456789abcdefghij";
    let digest = ferry_test::encode::sha256_digest(data);
    let present = || crate::support::blob(&staging, &digest).exists();

    // Oversized and mismatching uploads are refused, and nothing is written.
    let (s, h, b) = raw(
        &a,
        "POST",
        &format!("/v2/t/blobs/uploads/?digest={digest}"),
        &[],
        &[0u8; 2048],
    )
    .await;
    assert_eq!((s, code(&b).as_str()), (413, "SIZE_INVALID"), "{h}");
    let wrong = format!("sha256:{}", "1".repeat(64));
    let (s, _, b) = raw(
        &a,
        "POST",
        &format!("/v2/t/blobs/uploads/?digest={wrong}"),
        &[],
        data,
    )
    .await;
    assert_eq!((s, code(&b).as_str()), (400, "DIGEST_INVALID"));
    assert!(!present());

    // A chunked upload: a chunk that does not continue where the last ended is refused.
    let (s, head, _) = raw(&a, "POST", "/v2/t/blobs/uploads/", &[], b"").await;
    assert_eq!(s, 202);
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .to_string();
    let (s, head, _) = raw(
        &a,
        "PATCH",
        &location,
        &[("Content-Range", "0-9")],
        &data[..10],
    )
    .await;
    assert!(s == 202 && head.contains("range: 0-9"), "{head}");
    let (s, _, b) = raw(
        &a,
        "PATCH",
        &location,
        &[("Content-Range", "5-14")],
        &data[5..15],
    )
    .await;
    assert_eq!((s, code(&b).as_str()), (416, "BLOB_UPLOAD_INVALID"));
    let (s, head, _) = raw(
        &a,
        "PATCH",
        &location,
        &[("Content-Range", "10-19")],
        &data[10..],
    )
    .await;
    assert!(
        s == 202 && head.contains("range: 0-19"),
        "the refused chunk left the upload as it was: {head}"
    );
    let (s, head, _) = raw(&a, "GET", &location, &[], b"").await;
    assert!(s == 204 && head.contains("range: 0-19"), "{head}");
    assert!(
        !present(),
        "nothing is visible before the digest is checked"
    );
    let (s, _, _) = raw(&a, "PUT", &format!("{location}?digest={digest}"), &[], b"").await;
    assert_eq!(s, 201);
    let (s, _, b) = raw(&a, "PUT", &format!("{location}?digest={digest}"), &[], b"").await;
    assert_eq!(
        (s, code(&b).as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN"),
        "a finished upload is gone"
    );
    assert!(present());
    let (s, _, _) = raw(&a, "HEAD", &format!("/v2/t/blobs/{digest}"), &[], b"").await;
    assert_eq!(s, 200);
    // Cross-repository mount of a blob the layout holds: no upload needed.
    let (s, head, _) = raw(
        &a,
        "POST",
        &format!("/v2/u/blobs/uploads/?mount={digest}&from=t"),
        &[],
        b"",
    )
    .await;
    assert!(
        s == 201 && head.contains(&format!("docker-content-digest: {digest}")),
        "{head}"
    );

    // Manifests: one naming a blob never pushed is refused; an oversized one too.
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":20}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{wrong}","size":3}}]}}"#
    );
    let ct = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let (s, _, b) = raw(&a, "PUT", "/v2/t/manifests/1", &ct, manifest.as_bytes()).await;
    assert_eq!((s, code(&b).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    let (s, _, b) = raw(&a, "PUT", "/v2/t/manifests/1", &ct, &vec![b' '; 5 << 20]).await;
    assert_eq!((s, code(&b).as_str()), (413, "SIZE_INVALID"));
    let (s, _, b) = raw(&a, "PUT", "/v2/t/manifests/1", &ct, b"{not json").await;
    assert_eq!((s, code(&b).as_str()), (400, "MANIFEST_INVALID"));
    assert!(entries(&staging).is_empty(), "nothing recorded");
    let (status, log) = served.interrupt().await;
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn tls_and_htpasswd_protect_a_served_layout() {
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    let certs = env.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca, cert, key) = ferry_test::write_tls_files(&certs);
    let htpasswd = certs.join("htpasswd");
    std::fs::write(&htpasswd, ok("htpasswd", &["-nbB", "ferry", "s3cret"])).unwrap();
    let served = Served::start(
        &env,
        &[
            pkg.tar_zst.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--htpasswd",
            htpasswd.to_str().unwrap(),
        ],
    )
    .await;
    let reference = format!("{}/library/nginx:1.25", served.addr);
    let out = env.path("out");
    let anonymous = env
        .fails(&[
            "pull",
            "--ca-file",
            ca.to_str().unwrap(),
            &reference,
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(
        anonymous.contains("authentication to registry"),
        "{anonymous}"
    );
    env.ok(&[
        "pull",
        "--no-cache",
        "--ca-file",
        ca.to_str().unwrap(),
        "-u",
        "ferry",
        "-p",
        "s3cret",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        digest_of(&out, &reference),
        digest_of(&pkg.dir.join("images"), "docker.io/library/nginx:1.25")
    );
    let url = format!("https://{}/v2/", served.addr);
    let head = ok("curl", &["-si", "--cacert", ca.to_str().unwrap(), &url]);
    assert!(
        head.contains("401") && head.to_lowercase().contains("www-authenticate: basic"),
        "{head}"
    );
    // Basic credentials are not taken over plain HTTP beyond loopback.
    let refused = env
        .fails(&[
            "serve",
            pkg.dir.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
            "--htpasswd",
            htpasswd.to_str().unwrap(),
        ])
        .await;
    assert!(refused.contains("clear text"), "{refused}");
}

#[tokio::test]
async fn an_exported_archive_and_the_blob_cache_are_served() {
    let env = Env::new();
    let pkg = sample_package(&env.path("pkg"));
    let layout = pkg.dir.join("images");
    let web = digest_of(&layout, "ghcr.io/ferry-test/web:1.0");

    // oci-archive: what `ferry export` writes, served without unpacking.
    let archive = env.path("images.tar");
    env.ok(&[
        "export",
        layout.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
    ])
    .await;
    let served = Served::start(&env, &[&format!("oci-archive:{}", archive.display())]).await;
    let raw_manifest = ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/ferry-test/web:1.0", served.addr),
        ],
    );
    assert_eq!(
        ferry_test::encode::sha256_digest(raw_manifest.as_bytes()),
        web
    );
    // A pull from it through the blob cache fills the cache.
    let warm = env.path("warm");
    env.ok(&[
        "pull",
        &format!("{}/ferry-test/web:1.0", served.addr),
        "-o",
        warm.to_str().unwrap(),
    ])
    .await;
    drop(served);

    // The cache keeps no names: its content is served by digest, under any repository name.
    let served = Served::start(&env, &["--cache", env.cache().to_str().unwrap()]).await;
    let out = env.path("from-cache");
    let by_digest = format!("{}/any/name@{web}", served.addr);
    env.ok(&[
        "pull",
        "--no-cache",
        &by_digest,
        "-o",
        out.to_str().unwrap(),
    ])
    .await;
    crate::support::assert_has_all(&out, &pkg.spec.images[0].artifact);
    let (status, log) = served.interrupt().await;
    assert!(status.success(), "{log}");
}
