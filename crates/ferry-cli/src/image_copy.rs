//! One image through the engine, with progress and whole-image retries — the step pull, push and copy share.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use ferry_copy::{CopyStats, Engine};
use ferry_oci::{Descriptor, Digest};
use ferry_store::{BlobCache, ReadStore, WriteStore};

use crate::progress::{ImageProgress, Mode};

pub struct ImageCopy<'a> {
    pub label: &'a str,
    pub mode: Mode,
    pub cache: Option<BlobCache>,
    pub concurrency: usize,
    /// Attempts in all; retries run with one node copy at a time (Zarf's rule: a flaky link does better
    /// with less in flight).
    pub attempts: u32,
}

impl ImageCopy<'_> {
    pub async fn run(
        &self,
        source: Arc<dyn ReadStore>,
        dest: Arc<dyn WriteStore>,
        root: &Descriptor,
        known: &HashMap<Digest, Bytes>,
    ) -> anyhow::Result<CopyStats> {
        let mut attempt = 1;
        loop {
            let concurrency = if attempt == 1 { self.concurrency } else { 1 };
            let progress = ImageProgress::new(self.mode, self.label);
            let engine = Engine::new(self.cache.clone(), concurrency, progress.sink());
            let result = engine
                .copy(source.clone(), dest.clone(), root, known.clone())
                .await;
            progress.finish(result.is_ok());
            match result {
                Ok(stats) => return Ok(stats),
                // Wrong or missing content fails at once: another attempt would fetch the same bytes.
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    tracing::warn!(
                        "{}: attempt {attempt} of {} failed ({e}); retrying with one copy at a time",
                        self.label,
                        self.attempts
                    );
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        if self.attempts > 1 {
                            format!("after {attempt} attempts")
                        } else {
                            "copy failed".to_string()
                        }
                    });
                }
            }
        }
    }
}
