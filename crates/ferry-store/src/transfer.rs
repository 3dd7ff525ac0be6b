//! The one verified blob stream: source → hash → writers → commit.

use ferry_oci::{Descriptor, Hasher};

use crate::{BlobWriter, ReadStore, Result, StoreError};

/// How many times a broken body is resumed with a range request before the transfer gives up.
pub const MAX_RESUMES: u32 = 5;

/// Stream `desc` from `source` into every writer, hashing once. A broken body resumes from the last byte
/// received (the hash state carries on, nothing is re-read). The writers are committed, in order, only when
/// size and digest match; on any error they are dropped and nothing becomes visible.
///
/// Returns how many times the body was resumed.
pub async fn transfer(
    source: &dyn ReadStore,
    desc: &Descriptor,
    writers: Vec<Box<dyn BlobWriter>>,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<u32> {
    transfer_from(source, desc, writers, Hasher::new(), on_bytes).await
}

/// Bytes between saved hash states (in memory, for a rewind) and between checkpoints of resumable writers.
const CHECKPOINT_EVERY: u64 = 8 << 20;

/// The least time between two checkpoints of resumable writers. A checkpoint writes a state file and
/// renames it into place: cheap against a slow download, but on a fast one (hundreds of MB/s on a
/// LAN) a checkpoint every 8 MiB is dozens of metadata writes per blob, on the journal the blobs are
/// being written through. A download killed outright loses at most this long's bytes, or 8 MiB; one
/// that stops on an error still records everything it hashed.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// [`transfer`] continuing a blob whose first `start.len()` bytes the writers already hold (a partial
/// download left by an earlier process): the source is asked from that offset, and the hash carries on.
///
/// A single writer may ask for bytes again ([`StoreError::Resend`]: an upload whose registry lost part of
/// a cut body). The source is then read again from the last saved hash state at or before that offset
/// (one every [`CHECKPOINT_EVERY`] bytes), hashing from there, and the writer gets the bytes from its
/// offset on. The digest is still checked over one contiguous hash of the whole blob before anything is
/// committed; the few bytes between the saved state and the writer's offset that the writer kept from
/// the first read are covered by the registry's own digest check at commit.
pub async fn transfer_from(
    source: &dyn ReadStore,
    desc: &Descriptor,
    mut writers: Vec<Box<dyn BlobWriter>>,
    start: Hasher,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<u32> {
    let mut hasher = start;
    let mut resumes = 0;
    let mut last_checkpoint = hasher.len();
    let mut last_written = std::time::Instant::now();
    // Hash states to re-read from when a writer wants bytes again; a few hundred bytes each.
    let mut saved = vec![hasher.clone()];
    // Bytes before this offset are not sent again (only hashed) after a rewind; progress counts each
    // byte once.
    let mut send_from = hasher.len();
    let mut reported = hasher.len();
    let mut rewinds = 0u32;
    let (mut body, from) = source.fetch_blob(desc, hasher.len()).await?;
    if from != hasher.len() {
        return Err(StoreError::RangeIgnored {
            store: source.describe(),
            digest: desc.digest.clone(),
            offset: hasher.len(),
        });
    }
    let result = loop {
        let step = match body.next_chunk().await {
            Ok(Some(chunk)) => {
                let at = hasher.len();
                if at + chunk.len() as u64 > desc.size {
                    break Err(StoreError::SizeMismatch {
                        store: source.describe(),
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: at + chunk.len() as u64,
                    });
                }
                hasher.update(&chunk);
                let end = hasher.len();
                let fresh =
                    (end > send_from).then(|| chunk.slice((send_from.max(at) - at) as usize..));
                let step = match fresh {
                    Some(fresh) => write_all(&mut writers, fresh).await,
                    None => Ok(()),
                };
                if end > reported {
                    on_bytes(end - reported);
                    reported = end;
                }
                if step.is_ok() && end - last_checkpoint >= CHECKPOINT_EVERY {
                    last_checkpoint = end;
                    saved.push(hasher.clone());
                    if last_written.elapsed() >= CHECKPOINT_INTERVAL {
                        last_written = std::time::Instant::now();
                        for w in writers.iter_mut() {
                            w.checkpoint(&hasher).await?;
                        }
                    }
                }
                step
            }
            // A body that ends early (a proxy that truncates, a Content-Length that lies short) is a broken
            // body like any other: ask for the rest.
            Ok(None) if hasher.len() < desc.size && resumes < MAX_RESUMES => {
                resumes += 1;
                let why = format!("ended after {} of {} bytes", hasher.len(), desc.size);
                match resume(source, desc, hasher.len(), resumes, &why).await {
                    Ok(next) => body = next,
                    Err(e) => break Err(e),
                }
                Ok(())
            }
            Ok(None) if hasher.len() < desc.size => break Ok(()),
            Ok(None) => match finish_all(&mut writers).await {
                Ok(()) => break Ok(()),
                Err(e) => Err(e),
            },
            Err(e) if e.is_transient() && resumes < MAX_RESUMES && hasher.len() < desc.size => {
                resumes += 1;
                match resume(source, desc, hasher.len(), resumes, &format!("broke ({e})")).await {
                    Ok(next) => body = next,
                    Err(e) => break Err(e),
                }
                Ok(())
            }
            Err(e) => break Err(e),
        };
        // A writer wants bytes again: read the source again from the last saved state at or before them.
        match step {
            Ok(()) => {}
            Err(StoreError::Resend { offset, .. })
                if writers.len() == 1 && rewinds < MAX_RESUMES && offset <= hasher.len() =>
            {
                rewinds += 1;
                saved.retain(|h| h.len() <= offset);
                let Some(state) = saved.last().cloned() else {
                    break Err(StoreError::Resend {
                        store: source.describe(),
                        digest: desc.digest.clone(),
                        offset,
                    });
                };
                tracing::warn!(
                    digest = %desc.digest, offset, attempt = rewinds,
                    "the destination needs {} again from byte {offset}; reading {} again from byte {}",
                    desc.digest, source.describe(), state.len()
                );
                hasher = state;
                last_checkpoint = hasher.len();
                send_from = offset;
                match source.fetch_blob(desc, hasher.len()).await {
                    Ok((next, from)) if from == hasher.len() => body = next,
                    Ok(_) => {
                        break Err(StoreError::RangeIgnored {
                            store: source.describe(),
                            digest: desc.digest.clone(),
                            offset: hasher.len(),
                        });
                    }
                    Err(e) => break Err(e),
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = result {
        // Keep what arrived for a later run: resumable writers record where they stand.
        if !e.invalidates_partial() {
            for w in writers.iter_mut() {
                let _ = w.checkpoint(&hasher).await;
            }
        }
        return Err(e);
    }
    if hasher.len() != desc.size {
        return Err(StoreError::SizeMismatch {
            store: source.describe(),
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: hasher.len(),
        });
    }
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != desc.digest {
        return Err(StoreError::DigestMismatch {
            store: source.describe(),
            expected: desc.digest.clone(),
            actual,
            size,
        });
    }
    for w in writers {
        w.commit().await?;
    }
    Ok(resumes)
}

async fn write_all(writers: &mut [Box<dyn BlobWriter>], chunk: bytes::Bytes) -> Result<()> {
    for w in writers.iter_mut() {
        w.write(chunk.clone()).await?;
    }
    Ok(())
}

async fn finish_all(writers: &mut [Box<dyn BlobWriter>]) -> Result<()> {
    for w in writers.iter_mut() {
        w.finish().await?;
    }
    Ok(())
}

/// Ask `source` for the rest of a body from `offset`; a source that answers from the start is an error
/// ([`StoreError::RangeIgnored`]): the caller starts the blob over.
async fn resume(
    source: &dyn ReadStore,
    desc: &Descriptor,
    offset: u64,
    attempt: u32,
    why: &str,
) -> Result<Box<dyn crate::ByteSource>> {
    tracing::warn!(
        digest = %desc.digest, offset, attempt,
        "body of {} from {} {why}; resuming at byte {offset}",
        desc.digest, source.describe()
    );
    match source.fetch_blob(desc, offset).await? {
        (next, from) if from == offset => Ok(next),
        _ => Err(StoreError::RangeIgnored {
            store: source.describe(),
            digest: desc.digest.clone(),
            offset,
        }),
    }
}

/// Check bytes already in memory (a manifest) against their descriptor.
pub fn verify_bytes(store: &str, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != desc.size {
        return Err(StoreError::SizeMismatch {
            store: store.to_string(),
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = ferry_oci::Digest::of(bytes);
    if actual != desc.digest {
        return Err(StoreError::DigestMismatch {
            store: store.to_string(),
            expected: desc.digest.clone(),
            actual,
            size: bytes.len() as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxFuture;
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};

    /// Keeps nothing; records when it was asked to checkpoint.
    struct Sink(Arc<Mutex<Vec<std::time::Instant>>>);

    impl BlobWriter for Sink {
        fn write(&mut self, _chunk: Bytes) -> BoxFuture<'_, Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn checkpoint<'a>(&'a mut self, _state: &'a Hasher) -> BoxFuture<'a, Result<()>> {
            self.0.lock().unwrap().push(std::time::Instant::now());
            Box::pin(async { Ok(()) })
        }
        fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Resumable writers are checkpointed every 8 MiB, but never twice within CHECKPOINT_INTERVAL: a blob
    /// that arrives fast costs no state files.
    #[tokio::test]
    async fn checkpoints_are_spaced_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let source = crate::BlobCache::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 251) as u8).collect();
        let desc = Descriptor::of("application/octet-stream", &bytes);
        source.put_bytes(&desc, Bytes::from(bytes)).await.unwrap();
        let times = Arc::new(Mutex::new(Vec::new()));
        let started = std::time::Instant::now();
        transfer(&source, &desc, vec![Box::new(Sink(times.clone()))], &|_| {})
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let times = times.lock().unwrap();
        assert!(
            times.len() as u128 <= elapsed.as_millis() / CHECKPOINT_INTERVAL.as_millis(),
            "{} checkpoints in {elapsed:?}",
            times.len()
        );
        let mut last = started;
        for t in times.iter() {
            assert!(t.duration_since(last) >= CHECKPOINT_INTERVAL);
            last = *t;
        }
    }
}
