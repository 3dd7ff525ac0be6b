//! Response bodies: small ones in memory, blobs streamed from their store through a short channel, so a
//! slow client holds at most a few chunks in memory whatever the blob size.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ferry_store::ByteSource;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// Chunks buffered per streaming response (each up to 1 MiB, the stores' chunk size).
const IN_FLIGHT: usize = 2;

pub(crate) enum Body {
    Full(Option<Bytes>),
    Stream {
        rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
        remaining: u64,
    },
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body::Full((!b.is_empty()).then_some(b))
    }

    /// `len` bytes of `source`, read by a task that stops when the client goes away. A read error ends the
    /// body early, which aborts the connection: the client sees a broken transfer, never a short blob.
    pub fn stream(mut source: Box<dyn ByteSource>, len: u64, what: String) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
        tokio::spawn(async move {
            let mut left = len;
            while left > 0 {
                let chunk = match source.next_chunk().await {
                    Ok(Some(mut c)) => {
                        c.truncate(left.min(c.len() as u64) as usize);
                        c
                    }
                    Ok(None) => {
                        let _ = tx
                            .send(Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!("{what} ended {left} bytes early"),
                            )))
                            .await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("reading {what}: {e}");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                left -= chunk.len() as u64;
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Body::Stream { rx, remaining: len }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut *self {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { rx, remaining } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *remaining -= chunk.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Stream { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
