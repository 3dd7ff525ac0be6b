use std::time::Duration;

use ferry_store::StoreError;

use crate::credentials::CredentialError;

/// Registry errors. Each names the registry and what was asked of it; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{what} not found on registry {registry}")]
    NotFound { registry: String, what: String },

    #[error(
        "authentication to registry {registry} failed{detail}: check the username and password \
         (--username/--password, or `docker login {registry}`)"
    )]
    Unauthorized { registry: String, detail: String },

    #[error(
        "registry {registry} denied access to {what} (HTTP 403): the credentials lack permission"
    )]
    Denied { registry: String, what: String },

    /// The server's certificate was refused; the source names the certificate and why.
    #[error("the TLS certificate of registry {registry} is not trusted{hint}")]
    Certificate {
        registry: String,
        hint: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "registry {registry} wants a client certificate it trusts: {why}; put NAME.cert and NAME.key in \
         its certs.d directory (/etc/containers/certs.d/HOST:PORT/) or give a directory with --cert-dir"
    )]
    ClientCertificate {
        registry: String,
        why: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("cannot reach registry {registry}")]
    Unreachable {
        registry: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error("registry {registry} answered HTTP {status} for {what}{body}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        body: String,
    },

    #[error("{what} on registry {registry} failed")]
    Transport {
        registry: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },

    /// Broken off for a reason ferry found itself (an upload session lost); worth another attempt.
    #[error("{what} on registry {registry}: {why}")]
    Interrupted {
        registry: String,
        what: String,
        why: String,
    },

    #[error(
        "registry {registry} sent no response headers for {what} within {after:?}; it is too slow or \
         not answering"
    )]
    NoResponse {
        registry: String,
        what: String,
        after: Duration,
    },

    #[error(
        "{what} from registry {registry} stalled: {received} bytes in {window:?}, under the minimum \
         of {minimum} bytes per {window:?}"
    )]
    Stalled {
        registry: String,
        what: String,
        received: u64,
        minimum: u64,
        window: Duration,
    },

    #[error("{what} from registry {registry} is larger than the {limit}-byte limit for {kind}")]
    TooLarge {
        registry: String,
        what: String,
        kind: &'static str,
        limit: u64,
    },

    #[error(
        "refusing to send the credentials for registry {registry} to {url} over plain HTTP, where \
         anyone on the network can read them: only loopback addresses get credentials over plain HTTP, \
         unless --plain-http says the network is trusted"
    )]
    InsecureCredentials { registry: String, url: String },

    #[error("gave up after {attempts} attempts ({waited:.1?} waiting)")]
    RetriesExhausted {
        #[source]
        last: Box<RegistryError>,
        attempts: u32,
        waited: Duration,
    },

    #[error("invalid response from registry {registry} for {what}: {why}")]
    Protocol {
        registry: String,
        what: String,
        why: String,
    },

    /// The registry refused a manifest because blobs or manifests it references are not in the repository
    /// (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`): pushing them first fixes it.
    #[error(
        "registry {registry} refused manifest {digest} for repository {repository}: it references \
         content the repository does not have ({detail})"
    )]
    MissingReferences {
        registry: String,
        repository: String,
        digest: String,
        detail: String,
    },

    #[error(transparent)]
    Credentials(#[from] CredentialError),

    #[error("invalid client configuration: {why}")]
    Config {
        why: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl RegistryError {
    /// Broken connections and overloaded servers; used by callers that resume (a broken blob body).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. }
            | RegistryError::Unreachable { .. }
            | RegistryError::Interrupted { .. }
            | RegistryError::NoResponse { .. }
            | RegistryError::Stalled { .. } => true,
            // The registry lost (or has not yet committed) a blob the manifest needs: walking the image
            // again uploads it (self-heal), so another attempt is worth it.
            RegistryError::MissingReferences { .. } => true,
            RegistryError::Status { status, .. } => crate::retry::is_retryable_status(*status),
            RegistryError::RetriesExhausted { .. } => false,
            _ => false,
        }
    }

    /// HTTP 429, possibly after retries: Zarf's daemon fallback must not hide a rate limit.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => *status == 429,
            RegistryError::RetriesExhausted { last, .. } => last.is_rate_limited(),
            _ => false,
        }
    }

    /// A manifest push refused for missing references; see [`RegistryError::MissingReferences`].
    pub fn is_missing_references(&self) -> bool {
        matches!(self, RegistryError::MissingReferences { .. })
    }

    /// The registry error in `err` or its causes: store errors carry registry errors inside
    /// `StoreError::Remote` (which reads as its cause), and callers wrap those in turn.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a RegistryError> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(r) = e.downcast_ref::<RegistryError>() {
                return Some(r);
            }
            if let Some(r) = e
                .downcast_ref::<StoreError>()
                .and_then(StoreError::remote_cause)
                .and_then(|c| c.downcast_ref::<RegistryError>())
            {
                return Some(r);
            }
            cur = e.source();
        }
        None
    }
}

impl From<RegistryError> for StoreError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound { registry, what } => StoreError::NotFound {
                store: format!("registry {registry}"),
                what,
            },
            other => {
                let transient = other.is_transient();
                StoreError::remote(other, transient)
            }
        }
    }
}
