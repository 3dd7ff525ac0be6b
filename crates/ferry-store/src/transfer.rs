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

/// Bytes between checkpoints of resumable writers.
const CHECKPOINT_EVERY: u64 = 8 << 20;

/// [`transfer`] continuing a blob whose first `start.len()` bytes the writers already hold (a partial
/// download left by an earlier process): the source is asked from that offset, and the hash carries on.
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
    let (mut body, from) = source.fetch_blob(desc, hasher.len()).await?;
    if from != hasher.len() {
        return Err(StoreError::RangeIgnored {
            store: source.describe(),
            digest: desc.digest.clone(),
            offset: hasher.len(),
        });
    }
    let result = loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => {
                if hasher.len() + chunk.len() as u64 > desc.size {
                    break Err(StoreError::SizeMismatch {
                        store: source.describe(),
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: hasher.len() + chunk.len() as u64,
                    });
                }
                hasher.update(&chunk);
                for w in writers.iter_mut() {
                    w.write(chunk.clone()).await?;
                }
                on_bytes(chunk.len() as u64);
                if hasher.len() - last_checkpoint >= CHECKPOINT_EVERY {
                    last_checkpoint = hasher.len();
                    for w in writers.iter_mut() {
                        w.checkpoint(&hasher).await?;
                    }
                }
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
            }
            Ok(None) => break Ok(()),
            Err(e) if e.is_transient() && resumes < MAX_RESUMES && hasher.len() < desc.size => {
                resumes += 1;
                match resume(source, desc, hasher.len(), resumes, &format!("broke ({e})")).await {
                    Ok(next) => body = next,
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
