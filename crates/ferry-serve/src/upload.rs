//! Blob uploads into a writable layout (monolithic, chunked, resumable across requests): the body is
//! spooled to a temp file in the layout's `ingest/` directory and hashed as it arrives; the blob is
//! committed (hard-linked into `blobs/`, read-only, through the layout's `WriteStore`) only when the
//! digest the client names at the end matches what arrived. Nothing else ever becomes visible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Hasher};
use ferry_store::{BoxFuture, ByteSource, ReadStore, Store};
use ferry_store::{OciLayout, WriteStore};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use crate::api_error::ApiError;

/// Uploads in progress at once; more wait for one to finish or expire.
const MAX_SESSIONS: usize = 256;
/// An upload nobody touched for this long is abandoned and its spool removed.
const IDLE: Duration = Duration::from_secs(3600);

pub(crate) struct Uploads {
    layout: OciLayout,
    max_bytes: u64,
    /// id → (repository, session).
    sessions: Mutex<HashMap<String, (String, SharedSession)>>,
}

type SharedSession = Arc<tokio::sync::Mutex<Session>>;

pub(crate) struct Session {
    file: tokio::io::BufWriter<tokio::fs::File>,
    spool: tempfile::TempPath,
    hasher: Hasher,
    touched: Instant,
}

impl Uploads {
    pub fn new(layout: OciLayout, max_bytes: u64) -> Uploads {
        Uploads {
            layout,
            max_bytes,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Start an upload into `repository`; returns its id.
    pub fn start(&self, repository: &str) -> Result<String, ApiError> {
        let mut sessions = self.sessions.lock().expect("uploads lock");
        sessions.retain(|_, (_, s)| s.try_lock().map_or(true, |s| s.touched.elapsed() < IDLE));
        if sessions.len() >= MAX_SESSIONS {
            return Err(ApiError::new(
                hyper::StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!("{MAX_SESSIONS} uploads are in progress; try again when one finishes"),
            ));
        }
        let ingest = self.layout.root().join("ingest");
        let spool = std::fs::create_dir_all(&ingest)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix(".ferry-upload-")
                    .tempfile_in(&ingest)
            })
            .map_err(|e| {
                ApiError::internal(format!(
                    "cannot spool an upload in {}: {e}",
                    ingest.display()
                ))
            })?;
        let (file, spool) = spool.into_parts();
        let id = random_id();
        sessions.insert(
            id.clone(),
            (
                repository.to_string(),
                Arc::new(tokio::sync::Mutex::new(Session {
                    file: tokio::io::BufWriter::with_capacity(
                        1 << 20,
                        tokio::fs::File::from_std(file),
                    ),
                    spool,
                    hasher: Hasher::new(),
                    touched: Instant::now(),
                })),
            ),
        );
        Ok(id)
    }

    fn session(
        &self,
        id: &str,
        repository: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Session>>, ApiError> {
        let sessions = self.sessions.lock().expect("uploads lock");
        match sessions.get(id) {
            Some((repo, s)) if repo == repository => Ok(s.clone()),
            _ => Err(ApiError::upload_unknown(id)),
        }
    }

    /// Bytes received so far.
    pub async fn offset(&self, id: &str, repository: &str) -> Result<u64, ApiError> {
        Ok(self.session(id, repository)?.lock().await.hasher.len())
    }

    /// Append `body` (which must start at `from`, when the client says where) and return the new size. A
    /// body that would pass the size limit ends the upload.
    pub async fn append(
        &self,
        id: &str,
        repository: &str,
        from: Option<u64>,
        body: Incoming,
    ) -> Result<u64, ApiError> {
        let session = self.session(id, repository)?;
        let mut s = session.lock().await;
        if let Some(from) = from
            && from != s.hasher.len()
        {
            return Err(ApiError::range_invalid(format!(
                "chunk starts at byte {from}, but {} bytes were received",
                s.hasher.len()
            )));
        }
        let result = s.receive(body, self.max_bytes).await;
        if result.is_err() {
            drop(s);
            self.cancel(id);
        }
        result
    }

    /// Append the last `body`, check the whole upload against `digest`, and commit it into the layout.
    pub async fn finish(
        &self,
        id: &str,
        repository: &str,
        digest: &Digest,
        body: Incoming,
    ) -> Result<Descriptor, ApiError> {
        let session = self.session(id, repository)?;
        let mut s = session.lock().await;
        let result = async {
            s.receive(body, self.max_bytes).await?;
            s.file
                .flush()
                .await
                .map_err(|e| ApiError::internal(format!("writing the upload spool: {e}")))?;
            let size = s.hasher.len();
            let actual = s.hasher.clone().finish();
            if &actual != digest {
                return Err(ApiError::digest_invalid(format!(
                    "the upload's {size} bytes hash to {actual}, not {digest}; nothing was stored"
                )));
            }
            let desc = Descriptor::new("application/octet-stream", digest.clone(), size);
            self.commit(&desc, &s.spool).await?;
            Ok(desc)
        }
        .await;
        drop(s);
        self.cancel(id);
        result
    }

    /// Abandon an upload; its spool is removed.
    pub fn cancel(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .expect("uploads lock")
            .remove(id)
            .is_some()
    }

    async fn commit(&self, desc: &Descriptor, spool: &std::path::Path) -> Result<(), ApiError> {
        let failed = |e: ferry_store::StoreError| {
            ApiError::internal(format!("storing {}: {e}", desc.digest))
        };
        if self.layout.exists(desc).await.map_err(failed)? {
            return Ok(());
        }
        ferry_store::file::set_read_only(spool).map_err(failed)?;
        if self.layout.link_blob(desc, spool).await.map_err(failed)? {
            return Ok(());
        }
        // No hard links on this filesystem: copy through the layout's writer, verified again on the way.
        let w = self.layout.blob_writer(desc).await.map_err(failed)?;
        let spool = Spool(spool.to_path_buf());
        ferry_store::transfer(&spool, desc, vec![w], &|_| {})
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

impl Session {
    async fn receive(&mut self, mut body: Incoming, max: u64) -> Result<u64, ApiError> {
        self.touched = Instant::now();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::upload_invalid(format!("reading the upload body: {e}")))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if self.hasher.len() + chunk.len() as u64 > max {
                drain(body).await;
                return Err(ApiError::too_large(format!(
                    "the upload passes {max} bytes, this registry's limit; it was discarded"
                )));
            }
            self.hasher.update(&chunk);
            self.file
                .write_all(&chunk)
                .await
                .map_err(|e| ApiError::internal(format!("writing the upload spool: {e}")))?;
        }
        Ok(self.hasher.len())
    }
}

/// A finished upload's spool file as a store, for the copying commit.
struct Spool(std::path::PathBuf);

impl Store for Spool {
    fn describe(&self) -> String {
        format!("upload {}", self.0.display())
    }
}

impl ReadStore for Spool {
    fn fetch_manifest<'a>(
        &'a self,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Bytes>> {
        Box::pin(async move {
            Err(ferry_store::StoreError::not_found(
                self.describe(),
                format!("manifest {}", desc.digest),
            ))
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        _desc: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, ferry_store::Result<(Box<dyn ByteSource>, u64)>> {
        Box::pin(async move { ferry_store::file::FileSource::blob(&self.0, offset).await })
    }
}

/// Read and drop what is left of a refused body, up to a bound, so the client reads the error instead of a
/// connection reset (a server that closes with unread input makes the kernel send RST).
pub(crate) async fn drain(mut body: Incoming) {
    const DRAIN_MAX: usize = 16 << 20;
    let mut drained = 0;
    while drained < DRAIN_MAX {
        match body.frame().await {
            Some(Ok(f)) => drained += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    ferry_oci::digest::to_hex(&bytes)
}
