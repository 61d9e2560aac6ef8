//! The response body of a proxied exchange (the request's is in `request_body.rs`).
//!
//! [`ProxyBody`] is every response the node sends:
//! a short local answer or an upstream body. It carries the request's `limit_conn` counts, so they are released
//! exactly when the body has been sent or dropped (client gone, HTTP/2 stream reset), and the upstream
//! connection, which goes back to its pool only after the whole body was read.
//!
//! An upstream body of unknown length that the cache may store is teed ([`ProxyBody::fill`]): streamed to
//! the client while copied into a buffer up to the cache's object limit, and stored when it ends cleanly.
//! Bodies that are not being cached are never copied.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use edgeguard_cache::FillGuard;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::client_conns::StreamGuard;
use crate::limits::ConnGuard;
use crate::request_body::{BodyError, Idle};
use crate::upstream::Pooled;

/// The cache fill riding on a streamed body: the copy so far and what `FillGuard::complete` needs.
/// Dropping it (limit passed, upstream failed, client gone) drops the guard, so followers go upstream.
struct Tee {
    fill: FillGuard,
    parts: http::response::Parts,
    now: SystemTime,
    buf: BytesMut,
}

impl Tee {
    /// Copies `data`; `false` once the object would pass the cache's object limit.
    fn copy(&mut self, data: &Bytes) -> bool {
        if self.buf.len() + data.len() > self.fill.max_object_size() {
            return false;
        }
        self.buf.extend_from_slice(data);
        true
    }

    fn complete(self) {
        if let Err(why) = self.fill.complete(&self.parts, self.buf.freeze(), self.now) {
            tracing::debug!("streamed response not stored: {why}");
        }
    }
}

enum Inner {
    Full(Option<Bytes>),
    /// A local answer in shared pieces, last piece first (popped in order): the challenge page, whose 12 KB of
    /// fixed text is sent from the prebuilt buffers instead of being copied per request.
    Pieces(Vec<Bytes>),
    Upstream {
        body: Incoming,
        idle: Idle,
        done: bool,
        /// Boxed: a body that is not being cached carries one null pointer.
        tee: Option<Box<Tee>>,
    },
}

/// Every response body the node sends.
pub struct ProxyBody {
    inner: Inner,
    guard: Option<ConnGuard>,
    pooled: Option<Pooled>,
    /// The connection's count of open streams, for `http2_idle_timeout`.
    stream: Option<StreamGuard>,
}

impl ProxyBody {
    /// A complete body (local answers: errors, limits).
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
            guard: None,
            pooled: None,
            stream: None,
        }
    }

    /// A complete body sent as `pieces` in order, never copied into one buffer.
    pub(crate) fn pieces<const N: usize>(pieces: [Bytes; N]) -> Self {
        let mut v: Vec<Bytes> = pieces.into_iter().filter(|b| !b.is_empty()).collect();
        v.reverse();
        Self {
            inner: Inner::Pieces(v),
            guard: None,
            pooled: None,
            stream: None,
        }
    }

    /// An upstream's body; `pooled` goes back to its pool once the body has been read to the end.
    pub(crate) fn upstream(body: Incoming, pooled: Pooled, read_timeout: Duration) -> Self {
        Self {
            inner: Inner::Upstream {
                body,
                idle: Idle::new(read_timeout),
                done: false,
                tee: None,
            },
            guard: None,
            pooled: Some(pooled),
            stream: None,
        }
    }

    /// Stores this upstream body in the cache through `fill` as it streams: `parts` is the response head as
    /// received (before `X-Cache`/`Via`), `now` the fill's time. The copy stops, and the guard is dropped,
    /// when the body passes `fill.max_object_size()`; nothing is stored unless the body ends cleanly.
    pub(crate) fn fill(&mut self, fill: FillGuard, parts: http::response::Parts, now: SystemTime) {
        match &mut self.inner {
            Inner::Upstream { tee, .. } => {
                *tee = Some(Box::new(Tee {
                    fill,
                    parts,
                    now,
                    buf: BytesMut::new(),
                }));
            }
            Inner::Full(_) | Inner::Pieces(_) => drop(fill),
        }
    }

    /// Keeps `guard` (the request's limit_conn counts) until this body is finished or dropped.
    pub(crate) fn hold(&mut self, guard: ConnGuard) {
        self.guard = Some(guard);
    }

    /// Keeps the stream open (for the connection's idle timer) until this body is finished or dropped.
    pub(crate) fn hold_stream(&mut self, stream: StreamGuard) {
        self.stream = Some(stream);
    }

    fn finish(&mut self, reuse: bool) {
        self.guard = None;
        self.stream = None;
        if let Some(pooled) = self.pooled.take()
            && reuse
        {
            pooled.put_back();
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body hyper never polled because it was known empty (HEAD, 204, Content-Length: 0) still leaves its
        // upstream connection reusable.
        let reusable = match &mut self.inner {
            Inner::Upstream {
                body, done, tee, ..
            } => {
                let ended = *done || body.is_end_stream();
                // Such a body ended too, its last frame (if any) copied: its fill stands.
                if ended && let Some(t) = tee.take() {
                    t.complete();
                }
                ended
            }
            Inner::Full(_) | Inner::Pieces(_) => false,
        };
        self.finish(reusable);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let step = match &mut this.inner {
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Pieces(rest) => return Poll::Ready(rest.pop().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream {
                body,
                idle,
                done,
                tee,
            } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    idle.progress();
                    if let (Some(t), Some(data)) = (tee.as_mut(), frame.data_ref())
                        && !t.copy(data)
                    {
                        *tee = None;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    *tee = None;
                    Err(BodyError::Upstream(e))
                }
                Poll::Ready(None) => {
                    *done = true;
                    // Stored before the end reaches the client, so a request that follows this one's end
                    // finds the object.
                    if let Some(t) = tee.take() {
                        t.complete();
                    }
                    Ok(())
                }
                Poll::Pending if idle.expired(cx) => {
                    *tee = None;
                    Err(BodyError::UpstreamTimeout)
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        match step {
            Ok(()) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Err(e) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Pieces(rest) => rest.is_empty(),
            Inner::Upstream { body, done, .. } => *done || body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Pieces(rest) => SizeHint::with_exact(rest.iter().map(|b| b.len() as u64).sum()),
            Inner::Upstream { body, .. } => body.size_hint(),
        }
    }
}
