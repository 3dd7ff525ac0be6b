//! Running the ferry binary in an isolated environment, and reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A private HOME, cache and Docker config for one test, so nothing leaks between tests or from the machine.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("ferry-it-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The certs.d root ferry reads (`<root>/<host:port>/{*.crt,*.cert,*.key}`).
    pub fn certs_d(&self) -> PathBuf {
        self.path("certs.d")
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    pub fn command(&self) -> tokio::process::Command {
        self.command_with(tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry")))
    }

    /// Run ferry under `/usr/bin/time -v`: its output, and its peak resident set size in KiB.
    pub async fn measured(&self, args: &[&str]) -> (Output, u64) {
        let mut cmd = tokio::process::Command::new("/usr/bin/time");
        cmd.arg("-v").arg(env!("CARGO_BIN_EXE_ferry"));
        let out = self
            .command_with(cmd)
            .args(args)
            .output()
            .await
            .expect("run /usr/bin/time -v ferry (apt-get install -y time)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rss = stderr
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time -v:\n{stderr}"));
        (out, rss)
    }

    fn command_with(&self, mut cmd: tokio::process::Command) -> tokio::process::Command {
        cmd.env("HOME", self.path("home"))
            .env("FERRY_CACHE", self.cache())
            .env("DOCKER_CONFIG", self.path("home/.docker"))
            // Per-registry certificate directories live in the test, never in this machine's /etc.
            .env("FERRY_CERTS_D_ROOTS", self.certs_d())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("FERRY_PASSWORD")
            .kill_on_drop(true);
        cmd
    }

    pub async fn ferry(&self, args: &[&str]) -> Output {
        self.command().args(args).output().await.expect("run ferry")
    }

    /// Run ferry and insist it succeeds.
    pub async fn ok(&self, args: &[&str]) -> Output {
        let out = self.ferry(args).await;
        assert!(
            out.status.success(),
            "ferry {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run ferry and insist it fails; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.ferry(args).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "ferry {args:?} should fail\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn index(layout: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

/// The index entries as (digest, ref.name) pairs.
pub fn entries(layout: &Path) -> Vec<(String, Option<String>)> {
    index(layout)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

pub fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Every blob of `artifact` (manifests too) is in `layout` with the right bytes and mode 0444.
pub fn assert_has_all(layout: &Path, artifact: &ferry_test::Artifact) {
    use std::os::unix::fs::PermissionsExt;
    for b in artifact
        .all_blobs()
        .iter()
        .chain(artifact.all_manifests().iter())
    {
        let path = blob(layout, &b.digest());
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{} ({}) missing: {e}", b.digest(), b.media_type));
        assert_eq!(bytes, b.bytes.as_ref(), "{} differs", b.digest());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "{} mode", b.digest());
    }
}
