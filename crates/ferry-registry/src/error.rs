use std::time::Duration;

use ferry_store::StoreError;

use crate::credentials::CredentialError;

/// Registry errors. Each names the registry and what was asked of it; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no such repository, manifest, blob or tag (HTTP 404).
    #[error("{what} not found on registry {registry}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// What was asked for, described.
        what: String,
    },

    #[error(
        "authentication to registry {registry} failed{detail}: check the username and password \
         (--username/--password, or `docker login {registry}`)"
    )]
    /// The registry (or its token service) refused the credentials, or wants some and none were found.
    Unauthorized {
        /// The registry host.
        registry: String,
        /// Which of those it was, as a parenthesised clause for the message (may be empty).
        detail: String,
    },

    #[error(
        "registry {registry} denied access to {what} (HTTP 403): the credentials lack permission"
    )]
    /// HTTP 403: the credentials are valid but lack permission for the request.
    Denied {
        /// The registry host.
        registry: String,
        /// The request, described.
        what: String,
    },

    /// The server's certificate was refused; the source names the certificate and why.
    #[error("the TLS certificate of registry {registry} is not trusted{hint}")]
    Certificate {
        /// The registry host.
        registry: String,
        /// What the user can do about it (empty when nothing would help).
        hint: &'static str,
        /// The refusal, naming the certificate ([`crate::tls::CertificateRefused`] when ferry's verifier
        /// refused it).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The registry asked for a client certificate (TLS handshake refused) and ferry had none it accepts.
    #[error(
        "registry {registry} wants a client certificate it trusts: {why}; put NAME.cert and NAME.key in \
         its certs.d directory (/etc/containers/certs.d/HOST:PORT/) or give a directory with --cert-dir"
    )]
    ClientCertificate {
        /// The registry host.
        registry: String,
        /// What the handshake failure said.
        why: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// Neither HTTPS nor (where allowed) plain HTTP reached the registry on its first request.
    #[error("cannot reach registry {registry}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The failure of the last scheme tried.
        #[source]
        source: Box<RegistryError>,
    },

    /// An HTTP status that no other variant explains (a 5xx after retries, an unexpected 4xx).
    #[error("registry {registry} answered HTTP {status} for {what}{body}")]
    Status {
        /// The registry host.
        registry: String,
        /// The request, described (`GET manifest sha256:…`).
        what: String,
        /// The HTTP status code.
        status: u16,
        /// An excerpt of the response body (empty, or starting with `: `), for the registry's own message.
        body: String,
    },

    /// The connection failed, timed out or broke mid-body; transient.
    #[error("{what} on registry {registry} failed")]
    Transport {
        /// The registry host.
        registry: String,
        /// The request, described.
        what: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },

    /// Broken off for a reason ferry found itself (an upload session lost); worth another attempt.
    #[error("{what} on registry {registry}: {why}")]
    Interrupted {
        /// The registry host.
        registry: String,
        /// The request, described.
        what: String,
        /// What broke.
        why: String,
    },

    /// No response headers within the deadline of [`crate::Limits`]; transient.
    #[error(
        "registry {registry} sent no response headers for {what} within {after:?}; it is too slow or \
         not answering"
    )]
    NoResponse {
        /// The registry host.
        registry: String,
        /// The request, described.
        what: String,
        /// How long ferry waited.
        after: Duration,
    },

    /// A body arrived slower than the minimum throughput of [`crate::Limits`]; transient.
    #[error(
        "{what} from registry {registry} stalled: {received} bytes in {window:?}, under the minimum \
         of {minimum} bytes per {window:?}"
    )]
    Stalled {
        /// The registry host.
        registry: String,
        /// The body, described.
        what: String,
        /// Bytes received in the last window.
        received: u64,
        /// Bytes required per window.
        minimum: u64,
        /// The window.
        window: Duration,
    },

    /// A body read into memory (a manifest, a token, a tag list) passed its size limit; refused, not
    /// truncated.
    #[error("{what} from registry {registry} is larger than the {limit}-byte limit for {kind}")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// The body, described.
        what: String,
        /// What the limit is for (`a manifest`, `a token response`).
        kind: &'static str,
        /// The limit in bytes.
        limit: u64,
    },

    #[error(
        "refusing to send the credentials for registry {registry} to {url} over plain HTTP, where \
         anyone on the network can read them: only loopback addresses get credentials over plain HTTP, \
         unless --plain-http says the network is trusted"
    )]
    /// Credentials would go over plain HTTP to a non-loopback address without `--plain-http`; refused.
    InsecureCredentials {
        /// The registry host.
        registry: String,
        /// Where they would have been sent.
        url: String,
    },

    /// Every attempt of a request failed with a retryable error; not transient itself, as retrying is done.
    #[error("gave up after {attempts} attempts ({waited:.1?} waiting)")]
    RetriesExhausted {
        /// The last attempt's error.
        #[source]
        last: Box<RegistryError>,
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting between them.
        waited: Duration,
    },

    /// The registry answered something the distribution API does not allow (a missing or bad header, an
    /// unreadable JSON body, a digest that does not match).
    #[error("invalid response from registry {registry} for {what}: {why}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// The request, described.
        what: String,
        /// What was wrong with the answer.
        why: String,
    },

    /// The registry refused a manifest because blobs or manifests it references are not in the repository
    /// (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`): pushing them first fixes it.
    #[error(
        "registry {registry} refused manifest {digest} for repository {repository}: it references \
         content the repository does not have ({detail})"
    )]
    MissingReferences {
        /// The registry host.
        registry: String,
        /// The repository pushed to.
        repository: String,
        /// The manifest's digest.
        digest: String,
        /// The registry's error code and message.
        detail: String,
    },

    /// Credentials could not be looked up (a failing helper, an unreadable auth file).
    #[error(transparent)]
    Credentials(#[from] CredentialError),

    /// [`crate::ClientOptions`] that cannot work (a chunk size out of range, an unreadable CA or client
    /// certificate).
    #[error("invalid client configuration: {why}")]
    Config {
        /// What is wrong.
        why: String,
        /// The underlying error, if any.
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
