//! Blob uploads: one `PUT` for small blobs, `PATCH` chunks for large ones, resumed from where the registry
//! says an upload stands when a chunk breaks.
//!
//! Nothing becomes visible before the closing `PUT ?digest=`, which only `commit` sends; a writer dropped
//! without it abandons its session (deleted best-effort, else the registry purges it).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use ferry_oci::Descriptor;
use ferry_store::{BlobWriter, BoxFuture, StoreError};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::client::Call;
use crate::error::RegistryError;
use crate::repository::{Repository, check_digest_header};
use crate::retry::{Decision, Failure, jitter};

pub(crate) struct Upload {
    repo: Repository,
    desc: Descriptor,
    what: String,
    /// The session's URL, updated from every answer; `None` once finished or abandoned.
    location: Option<Url>,
    /// Bytes of the blob the registry has acknowledged; `buf` holds the ones after them.
    acked: u64,
    buf: BytesMut,
    /// `None`: monolithic, `buf` collects the whole blob for `commit`.
    chunk_size: Option<usize>,
}

impl Upload {
    /// Open an upload session for `desc` (`POST /v2/<repo>/blobs/uploads/`). Opening before any byte
    /// arrives surfaces a missing push permission before the source is read.
    pub(crate) async fn start(repo: Repository, desc: Descriptor) -> Result<Upload, RegistryError> {
        let opts = repo.client.options();
        let chunk_size = (desc.size > opts.chunk_threshold).then_some(opts.chunk_size as usize);
        // Monolithic blobs are at most `chunk_threshold` bytes: the transfer never writes more than
        // `desc.size`.
        let capacity = chunk_size.unwrap_or(desc.size as usize);
        let what = format!(
            "blob upload {}/{}@{}",
            repo.host.name, repo.repository, desc.digest
        );
        let mut upload = Upload {
            repo,
            desc,
            what,
            location: None,
            acked: 0,
            buf: BytesMut::with_capacity(capacity),
            chunk_size,
        };
        upload.open().await?;
        Ok(upload)
    }

    async fn open(&mut self) -> Result<(), RegistryError> {
        let call = Call {
            body: Some(Bytes::new()),
            ..Call::new(
                Method::POST,
                format!("/v2/{}/blobs/uploads/", self.repo.repository),
                &self.repo.push_scope,
                self.what.clone(),
            )
        };
        let resp = self.repo.client.send(&self.repo.host, &call).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(resp).await);
        }
        let location = self.location_in(&resp).await?;
        self.location = Some(location.ok_or_else(|| RegistryError::Protocol {
            registry: self.repo.host.name.clone(),
            what: self.what.clone(),
            why: "no Location header in the answer to POST .../blobs/uploads/".into(),
        })?);
        self.acked = 0;
        Ok(())
    }

    /// Send `data`, the blob's bytes from `self.acked` on: a `PATCH`, or with `last` the closing `PUT`.
    /// After a failure, an upload whose bytes are all in `data` (it starts at 0) simply starts over;
    /// otherwise the registry is asked how much it has (always within `data`, since the bytes before
    /// were acknowledged) and the rest is sent again.
    async fn send_part(&mut self, data: Bytes, last: bool) -> Result<(), RegistryError> {
        let start = self.acked;
        let end = start + data.len() as u64;
        let mut offset = start;
        let mut failures = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            let part = data.slice((offset - start) as usize..);
            let err = if last {
                match self.put(part).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                }
            } else if part.is_empty() {
                self.acked = end;
                return Ok(());
            } else {
                match self.patch(part, offset).await {
                    Ok(received) if received == end => {
                        self.acked = end;
                        return Ok(());
                    }
                    // The registry kept only part of it: send the rest.
                    Ok(received) if received > offset && received < end => {
                        offset = received;
                        continue;
                    }
                    Ok(received) => {
                        return Err(self.protocol(format!(
                            "after bytes {offset}-{} the registry reports {received} bytes",
                            end - 1
                        )));
                    }
                    Err(e) => e,
                }
            };
            // 404: the session is gone; 416: the registry's offset is not ours.
            let session_problem = matches!(
                err,
                RegistryError::Status {
                    status: 404 | 416,
                    ..
                }
            );
            if !err.is_transient() && !session_problem {
                return Err(err);
            }
            failures += 1;
            let policy = &self.repo.client.options().retry;
            match policy.decide(failures, &Failure::Transport, SystemTime::now(), jitter()) {
                Decision::Retry { wait, .. } => {
                    tracing::warn!("{}; resuming the upload", ferry_oci::error_chain(&err));
                    if !session_problem {
                        tokio::time::sleep(wait).await;
                        waited += wait;
                    }
                }
                Decision::GiveUp if failures > 1 => {
                    return Err(RegistryError::RetriesExhausted {
                        last: Box::new(err),
                        attempts: failures,
                        waited,
                    });
                }
                Decision::GiveUp => return Err(err),
            }
            if start == 0 {
                self.abandon();
                self.open().await?;
                offset = 0;
                continue;
            }
            match self.status().await? {
                Some(received) if (start..=end).contains(&received) => offset = received,
                Some(received) => {
                    return Err(self.interrupted(format!(
                        "the registry reports {received} bytes received, ferry had sent {end} \
                         and {start} were acknowledged"
                    )));
                }
                // The closing PUT may have landed before its answer was lost.
                None if last && self.repo.has(&self.desc).await? => {
                    self.location = None;
                    return Ok(());
                }
                None => return Err(self.interrupted("the registry lost the upload session".into())),
            }
        }
    }

    /// `PATCH` `part`, the blob's bytes from `offset`. Returns how many bytes the registry now has.
    async fn patch(&mut self, part: Bytes, offset: u64) -> Result<u64, RegistryError> {
        let end = offset + part.len() as u64;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&format!("{offset}-{}", end - 1)).expect("ascii"),
        );
        let call = Call {
            headers,
            body: Some(part),
            // A broken PATCH may have stored part of its body: `send_part` asks before sending again.
            retry: false,
            ..Call::new(
                Method::PATCH,
                self.session()?.to_string(),
                &self.repo.push_scope,
                self.what.clone(),
            )
        };
        let resp = self.repo.client.send(&self.repo.host, &call).await?;
        if !resp.status().is_success() {
            return Err(self.unexpected(resp).await);
        }
        if let Some(location) = self.location_in(&resp).await? {
            self.location = Some(location);
        }
        Ok(received(&resp).unwrap_or(end))
    }

    /// The closing `PUT <location>?digest=` with the last bytes: the blob becomes visible.
    async fn put(&mut self, part: Bytes) -> Result<(), RegistryError> {
        let mut url = self.session()?;
        url.query_pairs_mut()
            .append_pair("digest", &self.desc.digest.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let call = Call {
            headers,
            body: Some(part),
            // Sent again only after a new session or a status check (`send_part`).
            retry: false,
            ..Call::new(
                Method::PUT,
                url.to_string(),
                &self.repo.push_scope,
                self.what.clone(),
            )
        };
        let resp = self.repo.client.send(&self.repo.host, &call).await?;
        if !resp.status().is_success() {
            return Err(self.unexpected(resp).await);
        }
        self.location = None;
        check_digest_header(&resp, &self.desc.digest, &self.repo.host.name, &self.what)
    }

    /// How many bytes the session holds (`GET <location>` → 204 with `Range: 0-<last>`), or `None` when
    /// the registry no longer knows it.
    async fn status(&mut self) -> Result<Option<u64>, RegistryError> {
        let call = Call::new(
            Method::GET,
            self.session()?.to_string(),
            &self.repo.push_scope,
            self.what.clone(),
        );
        let resp = self.repo.client.send(&self.repo.host, &call).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.unexpected(resp).await);
        }
        if let Some(location) = self.location_in(&resp).await? {
            self.location = Some(location);
        }
        Ok(Some(received(&resp).unwrap_or(0)))
    }

    fn session(&self) -> Result<Url, RegistryError> {
        self.location
            .clone()
            .ok_or_else(|| self.protocol("the upload session is already closed".into()))
    }

    async fn location_in(&self, resp: &Response) -> Result<Option<Url>, RegistryError> {
        match resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(location) => Ok(Some(
                self.repo
                    .client
                    .resolve(&self.repo.host, location, &self.what)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn unexpected(&self, resp: Response) -> RegistryError {
        RegistryError::Status {
            registry: self.repo.host.name.clone(),
            what: self.what.clone(),
            status: resp.status().as_u16(),
            body: self.repo.client.body_excerpt(resp).await,
        }
    }

    fn protocol(&self, why: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.repo.host.name.clone(),
            what: self.what.clone(),
            why,
        }
    }

    /// A transient error: the caller starts the blob over, which is all that is left to do.
    fn interrupted(&self, detail: String) -> RegistryError {
        RegistryError::Interrupted {
            registry: self.repo.host.name.clone(),
            what: self.what.clone(),
            why: format!("{detail}; the blob has to be uploaded again"),
        }
    }

    /// Give up the open session, if any.
    fn abandon(&mut self) {
        if let Some(url) = self.location.take() {
            Upload::abandon_session(self.repo.clone(), url, self.what.clone());
        }
    }

    /// `DELETE` an upload session in the background, best-effort: it only frees the registry's scratch
    /// space sooner, and a writer is dropped in places that cannot wait.
    pub(crate) fn abandon_session(repo: Repository, url: Url, what: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let call = Call {
                retry: false,
                ..Call::new(Method::DELETE, url.to_string(), &repo.push_scope, what)
            };
            match repo.client.send(&repo.host, &call).await {
                Ok(resp) => tracing::debug!("{}: abandoned, HTTP {}", call.what, resp.status()),
                Err(e) => tracing::debug!("{}: cannot abandon it: {e}", call.what),
            }
        });
    }
}

/// Bytes received according to a `Range: 0-<last>` header (some registries write `bytes=0-<last>`).
fn received(resp: &Response) -> Option<u64> {
    parse_range(resp.headers().get(RANGE)?.to_str().ok()?)
}

fn parse_range(v: &str) -> Option<u64> {
    let v = v.trim();
    let (first, last) = v.strip_prefix("bytes=").unwrap_or(v).split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse::<u64>().ok().map(|l| l + 1)
}

impl BlobWriter for Upload {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(chunk_size) = self.chunk_size else {
                self.buf.extend_from_slice(&chunk);
                return Ok(());
            };
            // Never more than one chunk in memory: fill it, send it, go on with the rest.
            let mut chunk = chunk;
            while !chunk.is_empty() {
                let room = chunk_size - self.buf.len();
                self.buf
                    .extend_from_slice(&chunk.split_to(room.min(chunk.len())));
                if self.buf.len() == chunk_size {
                    let data = self.buf.split().freeze();
                    self.send_part(data, false).await?;
                    self.buf.reserve(chunk_size);
                }
            }
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            let mut this = self;
            let rest = this.buf.split().freeze();
            this.send_part(rest, true).await?;
            this.repo
                .host
                .saw_blob(&this.desc.digest, &this.repo.repository);
            Ok(())
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-99"), Some(100));
        assert_eq!(parse_range("bytes=0-1023"), Some(1024));
        assert_eq!(parse_range("5-9"), None);
        assert_eq!(parse_range("junk"), None);
    }
}
