//! Which images must be signed by whom: a policy file in the spirit of containers-policy.json(5).
//!
//! ```json
//! {
//!   "default": [{"type": "reject"}],
//!   "transports": {
//!     "docker": {
//!       "registry.example.com/team": [{"type": "sigstoreSigned", "keyPath": "team.pub"}],
//!       "docker.io/library/busybox": [{"type": "insecureAcceptAnything"}]
//!     }
//!   }
//! }
//! ```
//!
//! Scopes are matched most specific first: `host/repo:tag`, `host/repo`, each parent namespace, `host`,
//! then `*.domain` wildcards; none matching means `default` (absent: reject). Every requirement of the
//! chosen scope must hold. Key paths are relative to the policy file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_oci::Reference;
use serde::Deserialize;

use crate::key::{KeyError, MAX_KEY_BYTES, PublicKey};

/// A policy file is small.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Why a policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a policy.
    #[error("{}: not a signature policy", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A requirement is incomplete or names a key that cannot be read.
    #[error("{}: scope {scope:?}: {why}", path.display())]
    Requirement {
        /// The file.
        path: PathBuf,
        /// The scope of the requirement.
        scope: String,
        /// What is wrong.
        why: String,
    },
    /// A key could not be read.
    #[error("reading a key")]
    Key(#[source] KeyError),
}

/// What a signature's `docker-reference` must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedIdentity {
    /// Not checked (cosign verify's behaviour).
    Any,
    /// The image's own name, tag included.
    MatchExact,
    /// The image's repository.
    MatchRepository,
    /// The repository when the image is named by digest, else the exact name.
    MatchRepoDigestOrExact,
    /// This reference.
    ExactReference(String),
    /// This repository.
    ExactRepository(String),
}

/// One requirement.
#[derive(Clone, Debug)]
pub enum Requirement {
    /// Anything passes.
    InsecureAcceptAnything,
    /// Nothing passes.
    Reject,
    /// A cosign signature by one of `keys`, its identity checked as `identity` says.
    SigstoreSigned {
        /// Any of these.
        keys: Vec<PublicKey>,
        /// The `docker-reference` rule.
        identity: SignedIdentity,
    },
}

/// Requirements by scope.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    default: Option<Vec<Requirement>>,
    scopes: BTreeMap<String, Vec<Requirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<Vec<RequirementFile>>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<RequirementFile>>>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RequirementFile {
    InsecureAcceptAnything,
    Reject,
    #[serde(rename_all = "camelCase")]
    SigstoreSigned {
        key_path: Option<PathBuf>,
        #[serde(default)]
        key_paths: Vec<PathBuf>,
        key_data: Option<String>,
        signed_identity: Option<IdentityFile>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum IdentityFile {
    MatchExact,
    MatchRepository,
    MatchRepoDigestOrExact,
    #[serde(rename_all = "camelCase")]
    ExactReference {
        docker_reference: String,
    },
    #[serde(rename_all = "camelCase")]
    ExactRepository {
        docker_repository: String,
    },
}

impl Policy {
    /// Every image must be signed by `key` (`--verify-key`).
    pub fn key(key: PublicKey) -> Policy {
        Policy {
            default: Some(vec![Requirement::SigstoreSigned {
                keys: vec![key],
                identity: SignedIdentity::Any,
            }]),
            scopes: BTreeMap::new(),
        }
    }

    /// Read a policy file, and the keys it names.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read;
        let read = |source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = Vec::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_POLICY_BYTES)
            .read_to_end(&mut text)
            .map_err(read)?;
        let file: PolicyFile =
            serde_json::from_slice(&text).map_err(|source| PolicyError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let load = |scope: &str, reqs: Vec<RequirementFile>| {
            reqs.into_iter()
                .map(|r| requirement(r, base, path, scope))
                .collect::<Result<Vec<_>, _>>()
        };
        let default = file.default.map(|d| load("default", d)).transpose()?;
        let mut scopes = BTreeMap::new();
        for (transport, entries) in file.transports {
            if transport != "docker" {
                return Err(PolicyError::Requirement {
                    path: path.to_path_buf(),
                    scope: transport,
                    why: "only the \"docker\" transport is known (it scopes images by name wherever they are read from)".into(),
                });
            }
            for (scope, reqs) in entries {
                let reqs = load(&scope, reqs)?;
                scopes.insert(scope, reqs);
            }
        }
        Ok(Policy { default, scopes })
    }

    /// The requirements for image `name`, and the scope that chose them.
    pub fn requirements(&self, name: &str) -> (String, &[Requirement]) {
        for scope in scopes_of(name) {
            if let Some(r) = self.scopes.get(&scope) {
                return (scope, r);
            }
        }
        match &self.default {
            Some(d) => ("default".into(), d),
            None => ("default (absent: reject)".into(), &[Requirement::Reject]),
        }
    }
}

fn requirement(
    r: RequirementFile,
    base: &Path,
    path: &Path,
    scope: &str,
) -> Result<Requirement, PolicyError> {
    let bad = |why: String| PolicyError::Requirement {
        path: path.to_path_buf(),
        scope: scope.to_string(),
        why,
    };
    Ok(match r {
        RequirementFile::InsecureAcceptAnything => Requirement::InsecureAcceptAnything,
        RequirementFile::Reject => Requirement::Reject,
        RequirementFile::SigstoreSigned {
            key_path,
            key_paths,
            key_data,
            signed_identity,
        } => {
            let mut keys = Vec::new();
            for p in key_path.into_iter().chain(key_paths) {
                let p = base.join(p);
                keys.push(
                    PublicKey::from_file(&p).map_err(|e| bad(format!("{}: {e}", p.display())))?,
                );
            }
            if let Some(data) = key_data {
                let pem = ferry_oci::base64::decode(data.trim())
                    .filter(|p| p.len() <= MAX_KEY_BYTES)
                    .ok_or_else(|| bad("keyData is not base64 of a PEM key".into()))?;
                keys.push(PublicKey::from_pem(&pem, "keyData").map_err(PolicyError::Key)?);
            }
            if keys.is_empty() {
                return Err(bad(
                    "sigstoreSigned needs keyPath, keyPaths or keyData (keyless is not supported)"
                        .into(),
                ));
            }
            let identity = match signed_identity {
                None => SignedIdentity::Any,
                Some(IdentityFile::MatchExact) => SignedIdentity::MatchExact,
                Some(IdentityFile::MatchRepository) => SignedIdentity::MatchRepository,
                Some(IdentityFile::MatchRepoDigestOrExact) => {
                    SignedIdentity::MatchRepoDigestOrExact
                }
                Some(IdentityFile::ExactReference { docker_reference }) => {
                    SignedIdentity::ExactReference(docker_reference)
                }
                Some(IdentityFile::ExactRepository { docker_repository }) => {
                    SignedIdentity::ExactRepository(docker_repository)
                }
            };
            Requirement::SigstoreSigned { keys, identity }
        }
    })
}

/// The scopes that can apply to `name`, most specific first.
fn scopes_of(name: &str) -> Vec<String> {
    let Ok(r) = Reference::parse(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let repo = format!("{}/{}", r.registry, r.repository);
    if let Some(tag) = &r.tag {
        out.push(format!("{repo}:{tag}"));
    }
    let mut prefix = repo.as_str();
    loop {
        out.push(prefix.to_string());
        match prefix.rfind('/') {
            Some(i) => prefix = &prefix[..i],
            None => break,
        }
    }
    // `*.example.com` matches `a.example.com` and `b.a.example.com`.
    let host = r.registry.split(':').next().unwrap_or(&r.registry);
    let mut domain = host;
    while let Some(i) = domain.find('.') {
        domain = &domain[i + 1..];
        out.push(format!("*.{domain}"));
    }
    out
}

/// Whether a signature's `docker-reference` satisfies `rule` for image `name`.
pub fn identity_matches(rule: &SignedIdentity, name: &str, signed: &str) -> Result<(), String> {
    let repo_of = |s: &str| Reference::parse(s).map(|r| format!("{}/{}", r.registry, r.repository));
    let exact_of = |s: &str| {
        Reference::parse(s).map(|r| match (&r.tag, &r.digest) {
            (Some(t), _) => format!("{}/{}:{t}", r.registry, r.repository),
            (None, Some(d)) => format!("{}/{}@{d}", r.registry, r.repository),
            (None, None) => format!("{}/{}", r.registry, r.repository),
        })
    };
    let (ok, wanted) = match rule {
        SignedIdentity::Any => return Ok(()),
        SignedIdentity::MatchRepository => (
            repo_of(name).ok() == repo_of(signed).ok(),
            repo_of(name).ok(),
        ),
        SignedIdentity::MatchExact => (
            exact_of(name).ok() == exact_of(signed).ok(),
            exact_of(name).ok(),
        ),
        SignedIdentity::MatchRepoDigestOrExact => {
            let by_digest =
                Reference::parse(name).is_ok_and(|r| r.tag.is_none() && r.digest.is_some());
            if by_digest {
                (
                    repo_of(name).ok() == repo_of(signed).ok(),
                    repo_of(name).ok(),
                )
            } else {
                (
                    exact_of(name).ok() == exact_of(signed).ok(),
                    exact_of(name).ok(),
                )
            }
        }
        SignedIdentity::ExactReference(r) => {
            (exact_of(r).ok() == exact_of(signed).ok(), Some(r.clone()))
        }
        SignedIdentity::ExactRepository(r) => {
            (repo_of(r).ok() == repo_of(signed).ok(), Some(r.clone()))
        }
    };
    if ok && wanted.is_some() {
        Ok(())
    } else {
        Err(format!(
            "signed as {signed:?}, the policy wants {}",
            wanted.unwrap_or_else(|| format!("a name matching {name:?}"))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_run_from_the_tag_to_wildcard_domains() {
        assert_eq!(
            scopes_of("reg.example.com:5000/team/app:1"),
            [
                "reg.example.com:5000/team/app:1",
                "reg.example.com:5000/team/app",
                "reg.example.com:5000/team",
                "reg.example.com:5000",
                "*.example.com",
                "*.com"
            ]
        );
    }

    #[test]
    fn identities_compare_normalized_names() {
        let name = "docker.io/library/nginx:1.25";
        assert!(identity_matches(&SignedIdentity::MatchExact, name, "nginx:1.25").is_ok());
        assert!(identity_matches(&SignedIdentity::MatchExact, name, "nginx:1.26").is_err());
        assert!(
            identity_matches(
                &SignedIdentity::MatchRepository,
                name,
                "docker.io/library/nginx"
            )
            .is_ok()
        );
        assert!(
            identity_matches(
                &SignedIdentity::MatchRepository,
                name,
                "docker.io/evil/nginx"
            )
            .is_err()
        );
        let pinned = "docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(identity_matches(&SignedIdentity::MatchRepoDigestOrExact, pinned, "nginx").is_ok());
        assert!(identity_matches(&SignedIdentity::Any, name, "anything").is_ok());
    }
}
