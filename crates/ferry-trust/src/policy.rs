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
//! Keyless, with the trusted root as one file (ferry's `trustedRootPath`), or as containers-policy.json
//! splits it (`fulcio.caPath`/`caData` and `rekorPublicKeyPath`/`rekorPublicKeyData`; no CT log, so no SCT
//! check):
//!
//! ```json
//! {"type": "sigstoreSigned",
//!  "trustedRootPath": "trusted_root.json",
//!  "fulcio": {"oidcIssuer": "https://token.actions.githubusercontent.com",
//!             "subjectIdentityRegexp": "^https://github\\.com/acme/"}}
//! ```
//!
//! `subjectEmail` (containers-policy.json's name) and `subjectIdentity` match exactly; `oidcIssuerRegexp`
//! and `subjectIdentityRegexp` by RE2 regexp (unanchored, as cosign's).
//!
//! Scopes are matched most specific first: `host/repo:tag`, `host/repo`, each parent namespace, `host`,
//! then `*.domain` wildcards; none matching means `default` (absent: reject). Every requirement of the
//! chosen scope must hold. Key paths are relative to the policy file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_oci::Reference;
use serde::Deserialize;

use crate::bundle::{Keyless, Match};
use crate::key::{KeyError, MAX_KEY_BYTES, PublicKey};
use crate::trusted_root::TrustedRoot;
use crate::x509::{Certificate, pem_certificates};

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
    /// A cosign signature or Sigstore bundle by one of `keys` or keyless as `keyless` says, its identity
    /// checked as `identity` says.
    SigstoreSigned {
        /// Any of these.
        keys: Vec<PublicKey>,
        /// Or keyless, from this root and identity.
        keyless: Option<Keyless>,
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
        fulcio: Option<Box<FulcioFile>>,
        trusted_root_path: Option<PathBuf>,
        rekor_public_key_path: Option<PathBuf>,
        rekor_public_key_data: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FulcioFile {
    ca_path: Option<PathBuf>,
    ca_data: Option<String>,
    oidc_issuer: Option<String>,
    oidc_issuer_regexp: Option<String>,
    subject_email: Option<String>,
    subject_identity: Option<String>,
    subject_identity_regexp: Option<String>,
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
        Policy::signed(vec![key], None)
    }

    /// Every image must be signed by one of `keys` or keyless as `keyless` says (`--verify-key`,
    /// `--trusted-root` with `--certificate-identity…`).
    pub fn signed(keys: Vec<PublicKey>, keyless: Option<Keyless>) -> Policy {
        Policy {
            default: Some(vec![Requirement::SigstoreSigned {
                keys,
                keyless,
                identity: SignedIdentity::Any,
            }]),
            scopes: BTreeMap::new(),
        }
    }

    /// Read a policy file, and the keys it names.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = crate::key::read_capped(path, MAX_POLICY_BYTES).map_err(|source| {
            PolicyError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
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
            fulcio,
            trusted_root_path,
            rekor_public_key_path,
            rekor_public_key_data,
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
            let rekor = Rekor {
                path: rekor_public_key_path,
                data: rekor_public_key_data,
            };
            let keyless = match fulcio {
                Some(f) => Some(keyless(*f, trusted_root_path, rekor, base).map_err(bad)?),
                None if trusted_root_path.is_some() => {
                    return Err(bad(
                        "trustedRootPath needs a fulcio section naming the identity".into(),
                    ));
                }
                None => None,
            };
            if keys.is_empty() && keyless.is_none() {
                return Err(bad(
                    "sigstoreSigned needs keyPath, keyPaths, keyData or a fulcio section".into(),
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
            Requirement::SigstoreSigned {
                keys,
                keyless,
                identity,
            }
        }
    })
}

struct Rekor {
    path: Option<PathBuf>,
    data: Option<String>,
}

/// A keyless requirement: the root from `trustedRootPath`, or from the CA and Rekor key pieces.
fn keyless(
    f: FulcioFile,
    trusted_root_path: Option<PathBuf>,
    rekor: Rekor,
    base: &Path,
) -> Result<Keyless, String> {
    let one = |exact: Option<String>, regexp: Option<String>, what: &str| match (exact, regexp) {
        (Some(e), None) => Ok(Match::Exact(e)),
        (None, Some(r)) => Match::regexp(&r),
        _ => Err(format!("fulcio needs exactly one {what}")),
    };
    let identity = match (f.subject_email, f.subject_identity) {
        (Some(_), Some(_)) => {
            return Err("fulcio: subjectEmail or subjectIdentity, not both".into());
        }
        (a, b) => one(
            a.or(b),
            f.subject_identity_regexp,
            "of subjectEmail, subjectIdentity, subjectIdentityRegexp",
        )?,
    };
    let issuer = one(
        f.oidc_issuer,
        f.oidc_issuer_regexp,
        "of oidcIssuer, oidcIssuerRegexp",
    )?;
    let read = |p: &Path| {
        let p = base.join(p);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let text_of =
        |path: &Option<PathBuf>, data: &Option<String>, what: &str| -> Result<Vec<u8>, String> {
            match (path, data) {
                (Some(p), None) => read(p),
                (None, Some(d)) => {
                    ferry_oci::base64::decode(d.trim()).ok_or(format!("{what} data is not base64"))
                }
                _ => Err(format!(
                    "exactly one of {what}Path and {what}Data is needed"
                )),
            }
        };
    let root = match trusted_root_path {
        Some(p) => {
            if f.ca_path.is_some()
                || f.ca_data.is_some()
                || rekor.path.is_some()
                || rekor.data.is_some()
            {
                return Err("trustedRootPath already holds the CA and Rekor keys: drop caPath/caData/rekorPublicKey*".into());
            }
            TrustedRoot::from_file(&base.join(p)).map_err(|e| error_chain(&e))?
        }
        None => {
            let ca = text_of(&f.ca_path, &f.ca_data, "fulcio.ca")?;
            let chain = pem_certificates(&String::from_utf8_lossy(&ca))
                .iter()
                .map(|der| Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err("fulcio.caPath/caData holds no PEM certificate".into());
            }
            let key = text_of(&rekor.path, &rekor.data, "rekorPublicKey")?;
            let key = PublicKey::from_pem(&key, "rekorPublicKey").map_err(|e| e.to_string())?;
            TrustedRoot::from_parts("fulcio.caPath", chain, key)
        }
    };
    Ok(Keyless {
        root: std::sync::Arc::new(root),
        identity,
        issuer,
    })
}

/// An error and its causes, `: `-joined (for messages that are strings).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
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
