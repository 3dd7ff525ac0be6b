//! Reading response bodies, bounded twice: in size (what is held in memory has a named limit; the rest
//! streams) and in time (a minimum throughput, so a slow but honest link passes and a server that drips a
//! byte a second fails within one window).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::Response;
use tokio::time::Instant;

use crate::error::RegistryError;

/// Time and rate bounds for every request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A body must deliver at least this many bytes in every `window` of waiting for it.
    pub min_bytes: u64,
    /// The window over which `min_bytes` is measured.
    pub window: Duration,
    /// How long a request may wait for the response headers; requests with a body get more, as if the
    /// body were sent at the minimum throughput.
    pub headers: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // 32 KiB per 30 s is about 1 KiB/s: slower than any link a pull is worth trying over.
        Limits {
            min_bytes: 32 << 10,
            window: Duration::from_secs(30),
            headers: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The deadline for response headers to a request carrying `body_len` bytes.
    pub(crate) fn headers_deadline(&self, body_len: u64) -> Duration {
        let per_byte = self.window.as_secs_f64() / self.min_bytes.max(1) as f64;
        self.headers + Duration::from_secs_f64(per_byte * body_len as f64)
    }
}

/// Error bodies are read up to this size (registries explain themselves in a few hundred bytes).
pub(crate) const EXCERPT_BYTES: usize = 4 << 10;
/// A token response (a JWT and a few fields; Docker Hub's are about 4 KiB).
pub(crate) const TOKEN_BYTES: u64 = 256 << 10;
/// One page of tags or repositories.
pub(crate) const PAGE_BYTES: u64 = 8 << 20;

/// A response body read chunk by chunk under [`Limits`].
pub(crate) struct Body {
    resp: Response,
    limits: Limits,
    registry: String,
    what: String,
    /// Time spent waiting for the server in the current window, and the bytes it delivered meanwhile.
    /// Only waiting counts: a consumer that pauses between chunks does not make the server slow.
    waited: Duration,
    received: u64,
}

impl Body {
    pub fn new(resp: Response, limits: &Limits, registry: &str, what: &str) -> Body {
        Body {
            resp,
            limits: limits.clone(),
            registry: registry.to_string(),
            what: what.to_string(),
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// The next chunk; None at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        loop {
            let left = self.limits.window.saturating_sub(self.waited);
            let started = Instant::now();
            let got = tokio::time::timeout(left, self.resp.chunk()).await;
            self.waited += started.elapsed();
            let chunk = match got {
                Err(_elapsed) => None,
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(chunk))) => Some(chunk),
                Ok(Err(source)) => {
                    return Err(RegistryError::Transport {
                        registry: self.registry.clone(),
                        what: self.what.clone(),
                        source,
                    });
                }
            };
            self.received += chunk.as_ref().map_or(0, |c| c.len() as u64);
            if self.waited >= self.limits.window {
                if self.received < self.limits.min_bytes {
                    return Err(RegistryError::Stalled {
                        registry: self.registry.clone(),
                        what: self.what.clone(),
                        received: self.received,
                        minimum: self.limits.min_bytes,
                        window: self.limits.window,
                    });
                }
                self.waited = Duration::ZERO;
                self.received = 0;
            }
            if chunk.is_some() {
                return Ok(chunk);
            }
        }
    }

    /// The whole body, refused past `limit` bytes (before reading when the length is announced).
    /// `kind` names what the limit is for, in the error.
    pub async fn read_capped(
        mut self,
        limit: u64,
        kind: &'static str,
    ) -> Result<Bytes, RegistryError> {
        let too_large = |this: &Body| RegistryError::TooLarge {
            registry: this.registry.clone(),
            what: this.what.clone(),
            kind,
            limit,
        };
        if self.resp.content_length().is_some_and(|l| l > limit) {
            return Err(too_large(&self));
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(too_large(&self));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// At most `cap` bytes from the start of the body; the rest is never read. Errors end it early.
    pub async fn prefix(mut self, cap: usize) -> Bytes {
        let mut buf = BytesMut::new();
        while buf.len() < cap {
            match self.chunk().await {
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk[..chunk.len().min(cap - buf.len())])
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("error body cut short: {e}");
                    break;
                }
            }
        }
        buf.freeze()
    }
}

/// `": <first few hundred bytes>"` of an error body, or nothing when it is empty.
pub(crate) fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    format!(": {}", text.trim())
}
