//! Request coalescing: the leader of a miss fills the cache, followers wait for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, StatusCode};

use crate::entry::{self, CachedResponse, Entry, VarySnapshot};
use crate::policy::{self, RequestHead};
use crate::stats::Stats;
use crate::{NotStored, Shared};

/// What followers see on the flight's channel.
#[derive(Debug)]
pub(crate) enum FlightState {
    Pending,
    /// `None`: the leader brought nothing storable; each follower goes upstream on its own.
    Done(Option<Arc<Entry>>),
}

/// Held by the one request that fetches a missing object. [`complete`](Self::complete) stores the response
/// (if it may be stored) and wakes the followers; dropping the guard instead (upstream error, client gone,
/// panic, response streamed because too large) wakes them with nothing, so they go upstream themselves
/// rather than hang.
pub struct FillGuard {
    shared: Arc<Shared>,
    key: Box<str>,
    id: u64,
    tx: Option<tokio::sync::watch::Sender<FlightState>>,
    /// Boxed: keeps `Lookup` small on the hit path, which never builds one.
    req: Box<RequestHead>,
    /// The expired object this fill revalidates, when it has a validator.
    revalidating: Option<Arc<Entry>>,
}

impl FillGuard {
    pub(crate) fn new(
        shared: Arc<Shared>,
        key: Box<str>,
        id: u64,
        tx: tokio::sync::watch::Sender<FlightState>,
        req: RequestHead,
        revalidating: Option<Arc<Entry>>,
    ) -> Self {
        FillGuard {
            shared,
            key,
            id,
            tx: Some(tx),
            req: Box::new(req),
            revalidating,
        }
    }

    /// Whether this fill revalidates an expired object: its request then carries the object's validators
    /// ([`add_validators`](Self::add_validators)) and a 304 goes to [`refresh`](Self::refresh).
    pub fn is_revalidation(&self) -> bool {
        self.revalidating.is_some()
    }

    /// Adds `If-None-Match`/`If-Modified-Since` from the object being revalidated to the upstream request
    /// (whose own conditional headers the proxy has removed).
    pub fn add_validators(&self, headers: &mut HeaderMap) {
        let Some(entry) = &self.revalidating else {
            return;
        };
        if let Some(etag) = entry.etag() {
            headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = entry.last_modified() {
            headers.insert(IF_MODIFIED_SINCE, lm.clone());
        }
    }

    /// The upstream answered the revalidation with 304 (`parts`): the stored headers are updated with the
    /// 304's (RFC 9111 section 4.3.4), freshness is evaluated again, and the stored body is served. When the
    /// updated headers forbid storing, the object is dropped but still answers this request.
    ///
    /// Returns `None` when this fill revalidates nothing (the proxy then sends the 304 as it came).
    pub fn refresh(
        mut self,
        parts: &http::response::Parts,
        now: SystemTime,
    ) -> Option<CachedResponse> {
        let old = self.revalidating.take()?;
        let mut headers = old.headers.clone();
        let update = entry::stored_headers(&parts.headers, old.body.len());
        for name in update.keys() {
            if name != CONTENT_LENGTH {
                headers.remove(name);
            }
        }
        for (name, value) in &update {
            if name != CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        // Purge groups are not stored headers: keep the object's unless the 304 names new ones.
        let tags = entry::tags_of(&parts.headers);
        let tags = if tags.is_empty() {
            old.tags.clone()
        } else {
            tags
        };
        let result = self
            .build(old.status, &headers, old.body.clone(), now, Some(tags))
            .map(Arc::new);
        let head = self.req.method == http::Method::HEAD;
        match result {
            Ok(entry) => {
                Stats::bump(&self.shared.stats.revalidated);
                self.finish(Some(Arc::clone(&entry)));
                Some(CachedResponse::new(entry, now, head))
            }
            Err(_) => {
                Stats::bump(&self.shared.stats.not_stored);
                self.shared.remove_variant(&self.key, &old);
                self.finish(None);
                let fallback = Entry {
                    headers,
                    ..(*old).clone()
                };
                Some(CachedResponse::new(Arc::new(fallback), now, head))
            }
        }
    }

    fn finish(&mut self, stored: Option<Arc<Entry>>) {
        self.finish_from(stored, true);
    }

    fn finish_from(&mut self, stored: Option<Arc<Entry>>, persist: bool) {
        self.shared
            .finish_flight(&self.key, self.id, stored.clone(), persist);
        if let Some(tx) = self.tx.take() {
            // `send_replace` stores the value even when no follower is listening.
            tx.send_replace(FlightState::Done(stored));
        }
    }

    /// An object read back from the disk tier answers this fill: it is stored in memory and handed to the
    /// followers, as a completed fill would be (it is on disk already).
    pub(crate) fn promote(mut self, entry: Entry, now: SystemTime) -> CachedResponse {
        let entry = Arc::new(entry);
        Stats::bump(&self.shared.stats.hits);
        self.finish_from(Some(Arc::clone(&entry)), false);
        let head = self.req.method == http::Method::HEAD;
        CachedResponse::new(entry, now, head)
    }

    /// An expired object read back from the disk tier: this fill revalidates it.
    pub(crate) fn revalidate(&mut self, entry: Arc<Entry>) {
        self.revalidating = Some(entry);
    }

    /// Largest object that can be stored (see [`crate::Cache::max_object_size`]).
    pub fn max_object_size(&self) -> usize {
        self.shared.object_limit
    }

    /// Whether a response with this head would be stored, judged before its body is read: lets the proxy
    /// stream (and drop the guard) instead of buffering when it would not. `Content-Length`, when given,
    /// is checked against the per-object limit; [`complete`](Self::complete) checks the real size.
    pub fn check(&self, parts: &http::response::Parts, now: SystemTime) -> Result<(), NotStored> {
        let limit = self.shared.object_limit as u64;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(size) = declared.filter(|&len| len > limit) {
            self.shared.memo_uncacheable(&self.key, now);
            return Err(NotStored::TooLarge { size, limit });
        }
        let verdict = policy::evaluate(
            &self.req,
            parts.status,
            &parts.headers,
            now,
            self.shared.config.default_ttl,
        )
        .and_then(|_| self.vary_snapshot(&parts.headers).map(drop));
        if verdict.is_err()
            && !(self.revalidating.is_some() && parts.status == StatusCode::NOT_MODIFIED)
        {
            self.shared.memo_uncacheable(&self.key, now);
        }
        verdict
    }

    /// The request header values the response's `Vary` nominates, from the leading request.
    fn vary_snapshot(&self, headers: &http::HeaderMap) -> Result<VarySnapshot, NotStored> {
        policy::vary_names(headers)
            .map(|name| {
                let name = policy::vary_header_name(name)?;
                let value = self.req.headers().get(&name).map(crate::vary::owned_value);
                Ok((name, value))
            })
            .collect()
    }

    /// Stores the upstream response if it may be stored, and hands it to the followers. `now` is when the
    /// response arrived. The caller sends the response to its own client either way (`X-Cache: MISS`).
    pub fn complete(
        self,
        parts: &http::response::Parts,
        body: Bytes,
        now: SystemTime,
    ) -> Result<(), NotStored> {
        self.complete_with(parts, body, now).map(drop)
    }

    /// [`complete`](Self::complete), returning the stored object so the caller can answer its client's
    /// conditional or range request from it.
    pub fn complete_with(
        mut self,
        parts: &http::response::Parts,
        body: Bytes,
        now: SystemTime,
    ) -> Result<CachedResponse, NotStored> {
        let tags = entry::tags_of(&parts.headers);
        // Its own allocation: a body that arrived in one read is a slice of the connection's buffer.
        let body = Bytes::copy_from_slice(&body);
        let result = self
            .build(parts.status, &parts.headers, body, now, Some(tags))
            .map(Arc::new);
        let stats = &self.shared.stats;
        match &result {
            Ok(_) => Stats::bump(&stats.stored),
            Err(_) => Stats::bump(&stats.not_stored),
        }
        let stored = result.as_ref().ok().cloned();
        if stored.is_none() {
            self.shared.memo_uncacheable(&self.key, now);
        }
        if let Some(old) = self.revalidating.as_ref().filter(|_| stored.is_none()) {
            // The object changed into something not storable: the old copy must not be revalidated again.
            self.shared.remove_variant(&self.key, old);
        }
        self.finish(stored);
        let head = self.req.method == http::Method::HEAD;
        result.map(|e| CachedResponse::new(e, now, head))
    }

    fn build(
        &self,
        status: StatusCode,
        raw_headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
        tags: Option<Box<[Box<str>]>>,
    ) -> Result<Entry, NotStored> {
        let config = &self.shared.config;
        let limit = self.shared.object_limit;
        if body.len() > limit {
            return Err(NotStored::TooLarge {
                size: body.len() as u64,
                limit: limit as u64,
            });
        }
        let fresh = policy::evaluate(&self.req, status, raw_headers, now, config.default_ttl)?;
        let vary = self.vary_snapshot(raw_headers)?;
        let headers = entry::stored_headers(raw_headers, body.len());
        let tags = tags.unwrap_or_default();
        let size = entry::entry_size(&self.key, &headers, &vary, body.len())
            + tags.iter().map(|t| t.len() + 16).sum::<usize>();
        if size > limit {
            return Err(NotStored::TooLarge {
                size: size as u64,
                limit: limit as u64,
            });
        }
        let fresh_until = now.checked_add(fresh.ttl).unwrap_or(now);
        let after = |d: Duration| fresh_until.checked_add(d).unwrap_or(fresh_until);
        let grace_until = after(config.stale_grace.max(fresh.sie));
        let stale_until = if fresh.no_stale {
            fresh_until
        } else {
            grace_until
        };
        let has_validator = headers.contains_key(http::header::ETAG)
            || headers.contains_key(http::header::LAST_MODIFIED);
        let keep_until = if has_validator {
            grace_until
        } else {
            stale_until
        };
        let swr_until = if fresh.no_stale {
            fresh_until
        } else {
            after(fresh.swr)
        };
        Ok(Entry {
            status,
            headers,
            body,
            stored_at: now,
            initial_age: fresh.initial_age,
            fresh_until,
            stale_until,
            keep_until: keep_until.max(swr_until),
            swr_until,
            vary,
            tags,
            size,
        })
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if self.tx.is_some() {
            Stats::bump(&self.shared.stats.not_stored);
            self.shared.finish_flight(&self.key, self.id, None, false);
            // Dropping the sender closes the channel: waiting followers wake with nothing.
            self.tx = None;
        }
    }
}

impl std::fmt::Debug for FillGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillGuard").field("key", &self.key).finish()
    }
}

/// Held by a request that found a fill of its object in flight.
pub struct WaitHandle {
    shared: Arc<Shared>,
    rx: tokio::sync::watch::Receiver<FlightState>,
    head: bool,
}

impl WaitHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: tokio::sync::watch::Receiver<FlightState>,
        head: bool,
    ) -> Self {
        WaitHandle { shared, rx, head }
    }

    /// Waits up to `timeout` for the leader. `Some`: the object it stored, to send as a hit. `None`: the
    /// leader failed, brought a response that may not be shared (private, Set-Cookie, too large, ...), its
    /// variant does not match `req`'s `Vary` headers, or the wait timed out; go upstream yourself.
    pub async fn wait(
        mut self,
        req: &http::request::Parts,
        timeout: Duration,
    ) -> Option<CachedResponse> {
        let entry = match tokio::time::timeout(
            timeout,
            self.rx
                .wait_for(|state| matches!(state, FlightState::Done(_))),
        )
        .await
        {
            Ok(Ok(state)) => match &*state {
                FlightState::Done(Some(entry)) => Some(Arc::clone(entry)),
                _ => None,
            },
            // Closed without a result (leader dropped) or timed out.
            _ => None,
        };
        let stats = &self.shared.stats;
        match entry.filter(|e| e.vary_matches(&req.headers)) {
            Some(entry) => {
                Stats::bump(&stats.hits);
                let now = entry.stored_at;
                Some(CachedResponse::new(entry, now, self.head))
            }
            None => {
                Stats::bump(&stats.passes);
                None
            }
        }
    }
}

impl std::fmt::Debug for WaitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitHandle")
            .field("head", &self.head)
            .finish()
    }
}
