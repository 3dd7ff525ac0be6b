//! Blob uploads: one `PUT` for small blobs; for large ones the body streams in one `PATCH` (or one per
//! `chunk_size` bytes) while the source is read, so a long link's window stays full, then an empty closing
//! `PUT ?digest=`. Memory per upload is a few queued pieces, whatever the blob's size.
//!
//! A `PATCH` that breaks is recovered without starting the blob over when the registry allows it: the
//! session is asked where it stands (`GET` on it, `Range: 0-<last>`), and the writer asks the transfer
//! for the bytes again from there ([`StoreError::Resend`]); a registry that lost the session (distribution
//! 2.x cancels one whose stored size no longer matches the URL's state, which a cut body causes) gets a new
//! session from byte 0, still within the same transfer.
//!
//! Nothing becomes visible before the closing `PUT ?digest=`, which only `commit` sends, after the transfer
//! verified the digest; a writer dropped without it abandons its session (deleted best-effort, else the
//! registry purges it).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use ferry_oci::Descriptor;
use ferry_store::{BlobWriter, BoxFuture, StoreError};
use http_body::{Frame, SizeHint};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{Call, StreamedBody};
use crate::error::RegistryError;
use crate::repository::{Repository, check_digest_header};
use crate::retry::{Decision, Failure, jitter};

pub(crate) struct Upload {
    repo: Repository,
    desc: Descriptor,
    what: String,
    /// The session's URL, updated from every answer; `None` once finished or abandoned.
    location: Option<Url>,
    /// Bytes of the blob the registry has acknowledged.
    acked: u64,
    /// Bytes of the blob handed to this writer since `acked` was last set back: where the next write
    /// starts.
    written: u64,
    /// A monolithic upload collects the whole blob here for the closing `PUT`.
    whole: Option<BytesMut>,
    /// Bytes per streamed `PATCH` (at most the blob: one request).
    segment: u64,
    /// The `PATCH` being streamed.
    patch: Option<Patch>,
    /// Failed requests since the registry last acknowledged bytes, and the time waited after them.
    failures: u32,
    waited: Duration,
}

/// A `PATCH` in flight: its body is fed through `tx` while the request runs in its own task.
struct Patch {
    /// `None` once the body is complete.
    tx: Option<mpsc::Sender<Bytes>>,
    /// The blob's offset just past this request's body.
    end: u64,
    task: JoinHandle<Result<Response, RegistryError>>,
}

/// Pieces of a streamed body queued ahead of the socket: with the transfer's 1 MiB reads, a few MiB
/// per upload at most.
const QUEUED_PIECES: usize = 2;

impl Upload {
    /// Open an upload session for `desc` (`POST /v2/<repo>/blobs/uploads/`). Opening before any byte
    /// arrives surfaces a missing push permission before the source is read.
    pub(crate) async fn start(repo: Repository, desc: Descriptor) -> Result<Upload, RegistryError> {
        let opts = repo.client.options();
        // Monolithic blobs are at most `chunk_threshold` bytes: the transfer never writes more than
        // `desc.size`.
        let whole = (desc.size <= opts.chunk_threshold)
            .then(|| BytesMut::with_capacity(desc.size as usize));
        let segment = opts.chunk_size.max(1);
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
            written: 0,
            whole,
            segment,
            patch: None,
            failures: 0,
            waited: Duration::ZERO,
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

    /// Start streaming the next `PATCH`: the blob's bytes from `written` to the end of its segment (a
    /// resumed one completes the segment it broke in).
    /// `Content-Range` and `Content-Length` name them (the chunked form of the spec, which registries
    /// that ignore `Content-Range` treat as a streamed `PATCH`).
    fn begin_patch(&mut self) -> Result<(), RegistryError> {
        let start = self.written;
        let end = (start / self.segment + 1)
            .saturating_mul(self.segment)
            .min(self.desc.size);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&format!("{start}-{}", end - 1)).expect("ascii"),
        );
        let (tx, rx) = mpsc::channel(QUEUED_PIECES);
        let body = reqwest::Body::wrap(ChannelBody {
            rx,
            remaining: end - start,
        });
        let (repo, url, what) = (self.repo.clone(), self.session()?, self.what.clone());
        let task = tokio::spawn(async move {
            let call = Call {
                headers,
                stream: Some(StreamedBody::new(body, end - start)),
                // A broken PATCH may have stored part of its body: `recover` asks before sending again.
                retry: false,
                ..Call::new(Method::PATCH, url.to_string(), &repo.push_scope, what)
            };
            repo.client.send(&repo.host, &call).await
        });
        self.patch = Some(Patch {
            tx: Some(tx),
            end,
            task,
        });
        Ok(())
    }

    /// Wait for the answer to the `PATCH` whose body is complete. Returns how many bytes the registry
    /// now has.
    async fn end_patch(&mut self) -> Result<u64, RegistryError> {
        let Some(Patch { tx, end, task }) = self.patch.take() else {
            return Ok(self.acked);
        };
        drop(tx);
        let resp = task
            .await
            .map_err(|e| self.interrupted(format!("the PATCH task failed: {e}")))??;
        if !resp.status().is_success() {
            return Err(self.unexpected(resp).await);
        }
        if let Some(location) = self.location_in(&resp).await? {
            self.location = Some(location);
        }
        Ok(received(&resp).unwrap_or(end))
    }

    /// Take the answer to the current `PATCH` and make it the registry's acknowledged offset; after a
    /// failure, recover the session and say from where the bytes are needed again.
    async fn settle(&mut self) -> Result<(), StoreError> {
        let start = self.acked;
        let end = self.patch.as_ref().map_or(self.written, |p| p.end);
        let failed = match self.end_patch().await {
            Ok(received) if received == end => {
                self.acked = end;
                self.failures = 0;
                return Ok(());
            }
            // The registry kept only part of it: send the rest.
            Ok(received) if received >= start && received < end => {
                return Err(self.resend(received));
            }
            Ok(received) => {
                return Err(self
                    .protocol(format!(
                        "after bytes {start}-{} the registry reports {received} bytes",
                        end - 1
                    ))
                    .into());
            }
            Err(e) => e,
        };
        let offset = self.recover(failed).await?;
        if offset == self.desc.size {
            self.acked = offset;
            return Ok(());
        }
        Err(self.resend(offset))
    }

    /// The writer continues from `offset` in the current session: the transfer sends the bytes again.
    fn resend(&mut self, offset: u64) -> StoreError {
        self.acked = offset;
        self.written = offset;
        StoreError::Resend {
            store: ferry_store::Store::describe(&self.repo),
            digest: self.desc.digest.clone(),
            offset,
        }
    }

    /// After a failed request: wait as the retry policy says, then find where the upload can go on — the
    /// registry's offset in this session (`GET` on the session; only offsets ferry has sent count), or
    /// byte 0 of a new session when the registry lost it or never had a byte of it.
    async fn recover(&mut self, err: RegistryError) -> Result<u64, RegistryError> {
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
        self.failures += 1;
        let policy = &self.repo.client.options().retry;
        match policy.decide(
            self.failures,
            &Failure::Transport,
            SystemTime::now(),
            jitter(),
        ) {
            Decision::Retry { wait, .. } => {
                tracing::warn!("{}; resuming the upload", ferry_oci::error_chain(&err));
                if !session_problem {
                    tokio::time::sleep(wait).await;
                    self.waited += wait;
                }
            }
            Decision::GiveUp if self.failures > 1 => {
                return Err(RegistryError::RetriesExhausted {
                    last: Box::new(err),
                    attempts: self.failures,
                    waited: self.waited,
                });
            }
            Decision::GiveUp => return Err(err),
        }
        if self.whole.is_none() && self.written > 0 && self.location.is_some() {
            match self.status().await? {
                // Distribution answers `0-0` for an empty session as for a one-byte one: only a
                // longer range is an offset to go on from.
                Some(received)
                    if received > 1 && (self.acked..=self.written).contains(&received) =>
                {
                    return Ok(received);
                }
                Some(received) => tracing::warn!(
                    "{}: the registry reports {received} bytes received, ferry had sent {} and {} \
                     were acknowledged; starting over in a new session",
                    self.what,
                    self.written,
                    self.acked
                ),
                None => tracing::warn!(
                    "{}: the registry no longer knows the session; starting over in a new one",
                    self.what
                ),
            }
        }
        self.abandon();
        self.open().await?;
        Ok(0)
    }

    /// The closing `PUT <location>?digest=` (with the whole blob when monolithic): the blob becomes
    /// visible. Recovers a broken one: a monolithic upload starts over in a new session; a streamed one
    /// asks where the session stands (the `PUT` may have landed before its answer was lost).
    async fn close(&mut self) -> Result<(), RegistryError> {
        loop {
            let body = self
                .whole
                .as_ref()
                .map_or_else(Bytes::new, |b| b.clone().freeze());
            let err = match self.put(body).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if self.whole.is_some() {
                self.written = 0;
                self.recover(err).await?;
                continue;
            }
            match self.recover(err).await? {
                received if received == self.desc.size => continue,
                _ if self.repo.has(&self.desc).await? => {
                    self.location = None;
                    return Ok(());
                }
                _ => {
                    return Err(self.interrupted(
                        "the registry lost the upload session before the closing PUT".into(),
                    ));
                }
            }
        }
    }

    /// The closing `PUT <location>?digest=` with `part`, the bytes not yet sent.
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
            // Sent again only after a new session or a status check (`close`).
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
        // 404: gone (distribution 2.x cancels a session whose stored size no longer matches the URL's
        // state, as after a cut PATCH); 416: distribution 3 says the URL's offset is stale.
        if matches!(
            resp.status(),
            StatusCode::NOT_FOUND | StatusCode::RANGE_NOT_SATISFIABLE
        ) {
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
            if let Some(whole) = &mut self.whole {
                whole.extend_from_slice(&chunk);
                self.written += chunk.len() as u64;
                return Ok(());
            }
            let mut chunk = chunk;
            while !chunk.is_empty() {
                if self.patch.is_none() {
                    self.begin_patch()?;
                }
                let patch = self.patch.as_mut().expect("a PATCH in flight");
                let n = (patch.end - self.written).min(chunk.len() as u64) as usize;
                let piece = chunk.split_to(n);
                let tx = patch.tx.as_ref().expect("the body is still open");
                let queued = tx.send(piece).await.is_ok();
                self.written += n as u64;
                if !queued {
                    // The request ended before its body did: its answer says why.
                    return self.settle().await;
                }
                if self.written == patch.end {
                    patch.tx = None;
                    // The last PATCH is answered in `finish`, while the transfer checks the digest.
                    if patch.end < self.desc.size {
                        self.settle().await?;
                    }
                }
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.whole.is_some() || self.acked == self.desc.size {
                return Ok(());
            }
            if self.patch.is_none() {
                // An empty blob above the threshold cannot be; a resend may leave nothing in flight.
                return Err(self.resend(self.acked));
            }
            self.settle().await
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            let mut this = self;
            if this.whole.is_none() && this.acked != this.desc.size {
                // Committed without `finish`: wait for the last PATCH; bytes wanted again cannot be had.
                if let Err(e) = BlobWriter::finish(this.as_mut()).await {
                    return Err(this.interrupted(e.to_string()).into());
                }
            }
            this.close().await?;
            this.repo
                .host
                .saw_blob(&this.desc.digest, &this.repo.repository);
            Ok(())
        })
    }
}

/// A request body fed from a channel, of a known length (`Content-Length`); one that ends early fails
/// the request rather than sending a short body.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(piece)) => {
                self.remaining = self.remaining.saturating_sub(piece.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the upload's source stopped before the body was complete",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
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
