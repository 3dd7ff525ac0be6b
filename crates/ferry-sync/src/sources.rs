//! A registry client per source registry entry: the entry's `credentials`, `tls-verify` and `cert-dir`
//! apply to that registry only; entries without them share one client.

use std::path::Path;
use std::sync::Arc;

use ferry_registry::{ClientOptions, Credential, CredentialStore, RegistryClient, RegistryError};

use crate::config::RegistryEntry;

/// A source registry entry whose client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The entry's `cert-dir` cannot be used.
    #[error("{registry}: cert-dir {dir}: {why}")]
    CertDir {
        /// The registry host.
        registry: String,
        /// The directory.
        dir: String,
        /// What is wrong.
        why: String,
    },
    /// The client rejected the entry's settings.
    #[error("{registry}: building the client")]
    Client {
        /// The registry host.
        registry: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
}

/// The client for `registry`'s entry: `shared` unless the entry asks for its own settings.
pub fn client_for(
    registry: &str,
    entry: &RegistryEntry,
    base: &ClientOptions,
    shared: &Arc<RegistryClient>,
) -> Result<Arc<RegistryClient>, SourceError> {
    if entry.credentials.is_none() && entry.tls_verify.is_none() && entry.cert_dir.is_none() {
        return Ok(shared.clone());
    }
    let mut opts = base.clone();
    if let Some(c) = &entry.credentials {
        // Only this client talks to this registry, so "explicit" means "for this registry".
        opts.credentials = CredentialStore::from_env(Some(Credential::Basic {
            username: c.username.clone(),
            password: c.password.clone(),
        }));
    }
    if let Some(verify) = entry.tls_verify {
        opts.insecure_skip_tls_verify = !verify;
    }
    if let Some(dir) = &entry.cert_dir {
        opts.ca_files.extend(ca_files(registry, dir)?);
    }
    RegistryClient::new(opts).map_err(|source| SourceError::Client {
        registry: registry.to_string(),
        source,
    })
}

/// The CA certificates of a containers-style cert directory (`*.crt`). Client certificates (`*.cert`,
/// `*.key`) are refused rather than silently not sent.
fn ca_files(registry: &str, dir: &Path) -> Result<Vec<std::path::PathBuf>, SourceError> {
    let err = |why: String| SourceError::CertDir {
        registry: registry.to_string(),
        dir: dir.display().to_string(),
        why,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
        let path = entry.map_err(|e| err(e.to_string()))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => out.push(path),
            Some("cert" | "key") => {
                return Err(err(format!(
                    "{} is a client certificate or key, which ferry sync does not send yet",
                    path.display()
                )));
            }
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}
