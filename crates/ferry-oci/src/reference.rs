//! Image references with Docker normalization, matching Zarf's `transform.ParseImageRef`.
//!
//! `nginx` → `docker.io/library/nginx:latest`; `oci://` is stripped; a reference may carry a tag and a digest
//! at once, and then keeps both in its string while the digest decides what is fetched.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, DigestError};

/// The registry a reference without a host names (Docker Hub).
pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The string breaks the reference grammar (empty, a URL, a bad tag or repository, too long).
    #[error("invalid image reference {reference:?}: {why}")]
    Invalid {
        /// The reference as given.
        reference: String,
        /// Which rule it breaks.
        why: String,
    },
    /// The part after `@` is not a digest ferry accepts.
    #[error("invalid image reference {reference:?}")]
    Digest {
        /// The whole reference as given.
        reference: String,
        /// Why its digest was refused.
        source: DigestError,
    },
}

/// A normalized reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), `docker.io` when none was written.
    pub registry: String,
    /// Repository path, `library/` added to single-name Docker Hub repositories.
    pub repository: String,
    /// The tag: as written, `latest` when neither tag nor digest was written, `None` with only a digest.
    pub tag: Option<String>,
    /// The digest, which decides what is fetched when present.
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository` without tag or digest (Zarf's `Name`, the input of the CRC push tag).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The same reference pointing at another registry (and repository prefix), used by
    /// `--registry-override`, which changes where bytes come from but never the recorded name.
    pub fn with_location(&self, registry: &str, repository: &str) -> Reference {
        Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// A reference to `digest` in the same repository (no tag).
    pub fn at_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository at `tag` (`1.4` or `:1.4`), no digest. Anything that is not a tag (a `/`,
    /// `@` or `:` in it: another repository, a digest) is refused.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        let bare = tag.strip_prefix(':').unwrap_or(tag);
        if bare.contains(['/', '@', ':']) {
            return Err(ReferenceError::Invalid {
                reference: tag.to_string(),
                why: format!(
                    "not a tag of {} (a tag names no repository or digest)",
                    self.name()
                ),
            });
        }
        format!("{}:{bare}", self.name()).parse()
    }

    /// A registry host as users write it (`registry.local:5000`, `https://registry.local/`,
    /// `https://index.docker.io/v1/`) normalized as references name it (`docker.io` for Docker Hub). A
    /// repository path, or a word that would silently mean Docker Hub (`nginx`), is refused.
    pub fn parse_host(input: &str) -> Result<String, ReferenceError> {
        let h = input
            .strip_prefix("https://")
            .or_else(|| input.strip_prefix("http://"))
            .unwrap_or(input)
            .trim_end_matches('/');
        let h = h
            .strip_suffix("/v1")
            .or_else(|| h.strip_suffix("/v2"))
            .unwrap_or(h);
        let not_a_host = || ReferenceError::Invalid {
            reference: input.to_string(),
            why: "not a registry host: give host[:port], e.g. registry.local:5000 or docker.io"
                .into(),
        };
        if h.is_empty() || h.contains('/') {
            return Err(not_a_host());
        }
        let parsed: Reference = format!("{h}/x").parse().map_err(|_| not_a_host())?;
        let hub_alias = parsed.registry == "docker.io"
            && matches!(h, "index.docker.io" | "registry-1.docker.io");
        if parsed.registry != h && !hub_alias {
            return Err(not_a_host());
        }
        Ok(parsed.registry)
    }

    /// Parse `s` as a reference, tolerating Crane-era names without a registry (`library/nginx:1.25`)
    /// by normalizing them the same way, so the two spellings compare equal.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        s.parse()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| ReferenceError::Invalid {
            reference: input.to_string(),
            why: why.to_string(),
        };
        let s = input.strip_prefix("oci://").unwrap_or(input);
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        if s.contains("://") {
            return Err(invalid(
                "a URL is not an image reference; write host/repository:tag without a scheme",
            ));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "a bare 64-character hex string is ambiguous; write repository@sha256:<hex>",
            ));
        }

        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::Digest {
                        reference: input.to_string(),
                        source,
                    })?;
                (n, Some(digest))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/', so `host:5000/repo` has no tag.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(&name_tag[at + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(t) = tag.filter(|t| !valid_tag(t)) {
            return Err(invalid(&format!(
                "tag {t:?} must be 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'"
            )));
        }

        let (mut registry, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(invalid(&format!(
                "registry host {registry:?} is not a valid host[:port]"
            )));
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DOCKER_HUB.into();
        }
        if registry == DOCKER_HUB && !path.contains('/') {
            path = format!("library/{path}");
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository path components must be lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        if registry.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid("repository name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository: path,
            tag,
            digest,
        })
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        // [ipv6]:port
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        let host = Reference::parse_host;
        assert_eq!(host("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(host("https://reg.example/").unwrap(), "reg.example");
        assert_eq!(host("index.docker.io").unwrap(), "docker.io");
        assert_eq!(host("https://index.docker.io/v1/").unwrap(), "docker.io");
        assert_eq!(host("localhost").unwrap(), "localhost");
        assert!(host("nginx").is_err());
        assert!(host("reg.example/ns").is_err());
        assert!(host("").is_err());
    }

    #[test]
    fn another_tag_of_the_same_repository() {
        let r: Reference = "reg.example/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            .parse()
            .unwrap();
        assert_eq!(
            r.with_tag("1.4").unwrap().to_string(),
            "reg.example/app:1.4"
        );
        assert_eq!(
            r.with_tag(":stable").unwrap().to_string(),
            "reg.example/app:stable"
        );
        for bad in ["other/app:1", "app@sha256:00", "a:b", "UPPER!"] {
            assert!(r.with_tag(bad).is_err(), "{bad}");
        }
    }

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.23.3"), "docker.io/library/nginx:1.23.3");
        assert_eq!(norm("library/nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(
            norm("zarf-dev/zarf-agent:v0.22.1"),
            "docker.io/zarf-dev/zarf-agent:v0.22.1"
        );
        assert_eq!(
            norm("index.docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("localhost/foo"), "localhost/foo:latest");
        assert_eq!(norm("localhost:5000/foo/bar:x"), "localhost:5000/foo/bar:x");
        assert_eq!(
            norm("oci://10.43.130.183:5000/stefanprodan/manifests/podinfo"),
            "10.43.130.183:5000/stefanprodan/manifests/podinfo:latest"
        );
    }

    #[test]
    fn tag_and_digest_together_keep_both() {
        let d = "sha256:57a654ace69ec02ba8973093b6a786faa15640575fbf0dbb603db55aca2ccec8";
        let r: Reference = format!("ghcr.io/stefanprodan/podinfo:6.4.0@{d}")
            .parse()
            .unwrap();
        assert_eq!(
            r.to_string(),
            format!("ghcr.io/stefanprodan/podinfo:6.4.0@{d}")
        );
        assert_eq!(r.target(), d);
        assert_eq!(r.name(), "ghcr.io/stefanprodan/podinfo");
        let r: Reference = format!("busybox@{d}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn bad_references_fail_with_reason() {
        for bad in [
            "i am not a ref at all",
            "C:\\Users\\zarf",
            "http://urls.are/not/refs",
            "03b62250a3cb1abd125271d393fc08bf0cc713391eda6b57c02d1ef85efcc25c",
            "ghcr.io/UPPER/case",
            "nginx:",
            "nginx@sha256:short",
            "ghcr.io/a//b",
            "",
        ] {
            let err = bad.parse::<Reference>().unwrap_err();
            assert!(
                err.to_string().contains("invalid image reference"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn path_components() {
        assert!(valid_path_component("a__b"));
        assert!(valid_path_component("a---b.c_d"));
        assert!(!valid_path_component("a___b"));
        assert!(!valid_path_component("-a"));
        assert!(!valid_path_component("a."));
    }
}
