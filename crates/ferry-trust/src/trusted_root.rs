//! A Sigstore trusted root as a file (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the Fulcio certificate authorities, the
//! Rekor transparency-log keys and the certificate-transparency log keys, each with the window it may be
//! used in. Read once, offline; nothing is fetched (TUF is for the connected side).

use std::path::{Path, PathBuf};

use ferry_oci::base64::decode;
use ferry_oci::date::parse_rfc3339;
use serde::Deserialize;

use crate::key::PublicKey;
use crate::x509::Certificate;

/// A trusted root is tens of kilobytes.
const MAX_TRUSTED_ROOT_BYTES: u64 = 4 * 1024 * 1024;

/// Why a trusted root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustedRootError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a trusted root.
    #[error("{origin}: not a Sigstore trusted root: {why}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        why: String,
    },
}

/// When a key or CA may be used (Unix seconds; no end: still in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first second.
    pub start: i64,
    /// The last second, if it ended.
    pub end: Option<i64>,
}

impl Window {
    /// Whether `unix` falls in the window.
    pub fn contains(&self, unix: i64) -> bool {
        unix >= self.start && self.end.is_none_or(|e| unix <= e)
    }
}

/// A transparency log's key (Rekor, or a CT log).
#[derive(Clone, Debug)]
pub struct LogKey {
    /// Its base URL, for messages.
    pub url: String,
    /// The log ID: SHA-256 of the key's DER.
    pub id: Vec<u8>,
    /// The key.
    pub key: PublicKey,
    /// When it signs.
    pub valid: Window,
}

/// A Fulcio CA: its chain, issuing certificate first, root last.
#[derive(Clone, Debug)]
pub struct CertificateAuthority {
    /// Its URI or subject, for messages.
    pub name: String,
    /// The chain.
    pub chain: Vec<Certificate>,
    /// When it issues.
    pub valid: Window,
}

/// What keyless verification trusts.
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    /// Where it came from.
    pub origin: String,
    /// Rekor's keys.
    pub tlogs: Vec<LogKey>,
    /// Certificate-transparency logs' keys.
    pub ctlogs: Vec<LogKey>,
    /// Fulcio's CAs.
    pub certificate_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<LogFile>,
    #[serde(default)]
    ctlogs: Vec<LogFile>,
    #[serde(default)]
    certificate_authorities: Vec<CaFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogFile {
    #[serde(default)]
    base_url: String,
    public_key: KeyFile,
    log_id: LogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    valid_for: Option<WindowFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
struct WindowFile {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaFile {
    #[serde(default)]
    uri: String,
    subject: Option<serde_json::Value>,
    cert_chain: Chain,
    valid_for: Option<WindowFile>,
}

/// A certificate chain as protobuf JSON writes it (trusted roots and bundles alike).
#[derive(Deserialize)]
pub(crate) struct Chain {
    pub(crate) certificates: Vec<RawBytes>,
}

/// `{"rawBytes": base64}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    pub(crate) raw_bytes: String,
}

impl TrustedRoot {
    /// Read a `trusted_root.json` file.
    pub fn from_file(path: &Path) -> Result<TrustedRoot, TrustedRootError> {
        let text = crate::key::read_capped(path, MAX_TRUSTED_ROOT_BYTES).map_err(|source| {
            TrustedRootError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
        TrustedRoot::from_json(&text, &path.display().to_string())
    }

    /// Parse `trusted_root.json` bytes; `origin` names them in messages.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<TrustedRoot, TrustedRootError> {
        let bad = |why: String| TrustedRootError::Invalid {
            origin: origin.to_string(),
            why,
        };
        let file: File = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if !file
            .media_type
            .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(bad(format!("media type {:?}", file.media_type)));
        }
        let logs = |logs: Vec<LogFile>, what: &str| {
            logs.into_iter()
                .map(|l| {
                    let der = decode(&l.public_key.raw_bytes)
                        .ok_or_else(|| bad(format!("{what} {}: key is not base64", l.base_url)))?;
                    let origin = format!("{what} {}", l.base_url);
                    let key = if l.public_key.key_details.starts_with("PKCS1_RSA") {
                        PublicKey::rsa_pkcs1(der, &origin)
                    } else {
                        PublicKey::from_spki(&der, &origin).map_err(|e| bad(e.to_string()))?
                    };
                    let id = decode(&l.log_id.key_id).ok_or_else(|| {
                        bad(format!("{what} {}: logId is not base64", l.base_url))
                    })?;
                    Ok(LogKey {
                        valid: window(l.public_key.valid_for.as_ref())
                            .ok_or_else(|| bad(format!("{what} {}: validFor", l.base_url)))?,
                        url: l.base_url,
                        id,
                        key,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let tlogs = logs(file.tlogs, "tlog")?;
        let ctlogs = logs(file.ctlogs, "ctlog")?;
        let mut cas = Vec::new();
        for ca in file.certificate_authorities {
            let name = if ca.uri.is_empty() {
                ca.subject.map(|s| s.to_string()).unwrap_or_default()
            } else {
                ca.uri
            };
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| {
                    let der = decode(&c.raw_bytes)
                        .ok_or_else(|| bad(format!("CA {name}: certificate is not base64")))?;
                    Certificate::from_der(&der).map_err(|e| bad(format!("CA {name}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err(bad(format!("CA {name}: an empty chain")));
            }
            cas.push(CertificateAuthority {
                valid: window(ca.valid_for.as_ref())
                    .ok_or_else(|| bad(format!("CA {name}: validFor")))?,
                name,
                chain,
            });
        }
        Ok(TrustedRoot {
            origin: origin.to_string(),
            tlogs,
            ctlogs,
            certificate_authorities: cas,
        })
    }

    /// A root from separate pieces, as containers-policy.json names them (`caPath`, `rekorPublicKeyPath`):
    /// one CA chain and one Rekor key, valid at all times, no CT logs.
    pub fn from_parts(origin: &str, chain: Vec<Certificate>, rekor: PublicKey) -> TrustedRoot {
        let always = Window {
            start: i64::MIN,
            end: None,
        };
        TrustedRoot {
            origin: origin.to_string(),
            tlogs: vec![LogKey {
                url: "rekor".into(),
                id: ferry_oci::digest::from_hex(rekor.id().hex()).unwrap_or_default(),
                key: rekor,
                valid: always,
            }],
            ctlogs: Vec::new(),
            certificate_authorities: vec![CertificateAuthority {
                name: origin.to_string(),
                chain,
                valid: always,
            }],
        }
    }
}

/// A window from the file; no start means none given (accepted from the beginning of time).
fn window(w: Option<&WindowFile>) -> Option<Window> {
    let Some(w) = w else {
        return Some(Window {
            start: i64::MIN,
            end: None,
        });
    };
    Some(Window {
        start: match &w.start {
            Some(s) => parse_rfc3339(s)?,
            None => i64::MIN,
        },
        end: match &w.end {
            Some(e) => Some(parse_rfc3339(e)?),
            None => None,
        },
    })
}
