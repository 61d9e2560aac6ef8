//! The client's request body on its way upstream ([`RequestBody`]), enforcing `max_body_size` (a chunked body is
//! cut when it passes the limit) and `body_timeout` between reads, and the idle timer both body types use.
//! Apart from [`crate::body`] so that the upstream pool, which sends these, and the response body, which holds a
//! pooled connection, do not import each other.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Why a body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than max_body_size")]
    TooLarge,
    #[error("client sent no body data within body_timeout")]
    ClientTimeout,
    #[error("client body: {0}")]
    Client(#[source] hyper::Error),
    #[error("upstream sent no body data within read_timeout")]
    UpstreamTimeout,
    #[error("upstream body: {0}")]
    Upstream(#[source] hyper::Error),
}

/// A timer that fires when a stream makes no progress for `limit`. Armed lazily on the first `Pending`, so a
/// body that is always ready never creates one.
pub(crate) struct Idle {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Idle {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            armed: false,
        }
    }

    pub(crate) fn progress(&mut self) {
        self.armed = false;
    }

    /// Called when the stream is pending: whether the idle limit has passed.
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        match &mut self.sleep {
            Some(sleep) if !self.armed => sleep.as_mut().reset(deadline),
            Some(_) => {}
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

/// The client's request body on its way upstream.
pub struct RequestBody {
    /// `None`: a request the node makes itself (a background refresh, a batch of counts for a parent).
    inner: Option<Incoming>,
    /// The whole body of a request the node makes itself, until sent.
    fixed: Option<Bytes>,
    max: u64,
    seen: u64,
    idle: Idle,
    /// Told when the whole body has been read, so the upstream's response timer can start then (a long
    /// upload is timed by `body_timeout`, not by the upstream's `read_timeout`). `None` for bodiless requests.
    sent: Option<Arc<Notify>>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, max: u64, body_timeout: Duration) -> Self {
        let sent = (!inner.is_end_stream()).then(|| Arc::new(Notify::new()));
        Self {
            inner: Some(inner),
            fixed: None,
            max,
            seen: 0,
            idle: Idle::new(body_timeout),
            sent,
        }
    }

    /// No body at all.
    pub(crate) fn empty() -> Self {
        Self {
            inner: None,
            fixed: None,
            max: 0,
            seen: 0,
            idle: Idle::new(Duration::from_secs(1)),
            sent: None,
        }
    }

    /// A body the node sends itself, whole.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            fixed: (!bytes.is_empty()).then_some(bytes),
            ..Self::empty()
        }
    }

    /// What to wait on before timing the response head; `None`: time it from the start.
    pub(crate) fn sent_signal(&self) -> Option<Arc<Notify>> {
        self.sent.clone()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(this.fixed.take().map(|b| Ok(Frame::data(b))));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.progress();
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.max {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            Poll::Ready(None) => {
                if let Some(sent) = &this.sent {
                    sent.notify_one();
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.idle.expired(cx) {
                    Poll::Ready(Some(Err(BodyError::ClientTimeout)))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.fixed.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.fixed.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
