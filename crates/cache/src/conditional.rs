//! A client's conditional and range headers, answered from a stored object: 304 (RFC 9110 section 13),
//! 206 and 416 (RFC 9110 section 14).
//!
//! Only a stored 200 is answered this way; anything else is sent whole. `If-None-Match` takes precedence
//! over `If-Modified-Since` and is compared weakly; `If-Range` needs a strong ETag or the exact
//! `Last-Modified`. One `bytes=` range gets a 206; several get the whole 200 (allowed: a server may ignore
//! `Range`), as does a range that does not parse.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::entry::{CacheStatus, CachedResponse};

/// The headers of a client request that ask for less than the whole stored 200.
#[derive(Debug, Clone, Default)]
pub struct ClientConditions {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
    range: Option<HeaderValue>,
    if_range: Option<HeaderValue>,
}

impl ClientConditions {
    /// The conditions of a request, `None` when it has none (the usual case: one pass over the few names
    /// present, each compared as a number, and no lookup or allocation).
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let conditional = |n: &http::HeaderName| {
            n == IF_NONE_MATCH || n == IF_MODIFIED_SINCE || n == RANGE || n == IF_RANGE
        };
        if !headers.keys().any(conditional) {
            return None;
        }
        let c = ClientConditions {
            if_none_match: headers.get(IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(IF_MODIFIED_SINCE).cloned(),
            range: headers.get(RANGE).cloned(),
            if_range: headers.get(IF_RANGE).cloned(),
        };
        c.any().then_some(c)
    }

    /// Like [`of`](Self::of), and removes them from `headers`: the request that fills the cache must bring
    /// the whole object, not a 304 or 206 of the client's own state.
    pub fn take(headers: &mut HeaderMap) -> Option<Self> {
        let c = Self::of(headers)?;
        for name in [IF_NONE_MATCH, IF_MODIFIED_SINCE, RANGE, IF_RANGE] {
            headers.remove(name);
        }
        Some(c)
    }

    /// Puts them back on a request that goes upstream without filling the cache.
    pub fn restore(self, headers: &mut HeaderMap) {
        let fields = [
            (IF_NONE_MATCH, self.if_none_match),
            (IF_MODIFIED_SINCE, self.if_modified_since),
            (RANGE, self.range),
            (IF_RANGE, self.if_range),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                headers.insert(name, v);
            }
        }
    }

    fn any(&self) -> bool {
        self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.range.is_some()
            || self.if_range.is_some()
    }
}

impl CachedResponse {
    /// [`into_response`](Self::into_response), answering the client's conditions from the stored object.
    pub fn respond(self, status: CacheStatus, conds: Option<&ClientConditions>) -> Response<Bytes> {
        let Some(c) = conds.filter(|_| self.status() == StatusCode::OK) else {
            return self.into_response(status);
        };
        let entry = self.entry();
        let not_modified = match (&c.if_none_match, &c.if_modified_since) {
            (Some(inm), _) => entry.etag().is_some_and(|tag| weak_match(inm, tag)),
            (None, Some(ims)) => entry
                .last_modified()
                .is_some_and(|lm| not_modified_since(lm, ims)),
            (None, None) => false,
        };
        if not_modified {
            let mut r = self.into_response(status);
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.body_mut() = Bytes::new();
            r.headers_mut().remove(CONTENT_LENGTH);
            return r;
        }
        let Some(range) = c.range.as_ref().filter(|_| !self.is_head()) else {
            return self.into_response(status);
        };
        if let Some(if_range) = &c.if_range
            && !if_range_matches(if_range, entry.etag(), entry.last_modified())
        {
            return self.into_response(status);
        }
        let len = self.body().len() as u64;
        match parse_range(range.as_bytes(), len) {
            Range::Whole => self.into_response(status),
            Range::Unsatisfiable => {
                let mut r = self.into_response(status);
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                *r.body_mut() = Bytes::new();
                let headers = r.headers_mut();
                headers.remove(CONTENT_TYPE);
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                headers.insert(CONTENT_RANGE, content_range(None, len));
                r
            }
            Range::Bytes(first, last) => {
                let part = self.body().slice(first as usize..=last as usize);
                let mut r = self.into_response(status);
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                let headers = r.headers_mut();
                headers.insert(CONTENT_LENGTH, HeaderValue::from(part.len()));
                headers.insert(CONTENT_RANGE, content_range(Some((first, last)), len));
                *r.body_mut() = part;
                r
            }
        }
    }
}

/// RFC 9110 section 8.8.3.2 weak comparison against a list (or `*`).
fn weak_match(list: &HeaderValue, tag: &HeaderValue) -> bool {
    let bare = |t: &[u8]| -> Vec<u8> { t.strip_prefix(b"W/").unwrap_or(t).to_vec() };
    let tag = bare(tag.as_bytes());
    list.as_bytes()
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || bare(t) == tag)
}

/// `If-Range`: a strong ETag equal to the stored one, or the stored `Last-Modified` itself.
fn if_range_matches(
    if_range: &HeaderValue,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    let v = if_range.as_bytes();
    if v.starts_with(b"\"") {
        etag.is_some_and(|e| e.as_bytes() == v)
    } else {
        last_modified.is_some_and(|lm| lm.as_bytes() == v)
    }
}

fn date(v: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(v.to_str().ok()?).ok()
}

/// Not modified since `ims` when `Last-Modified` is no later than it; unparsable dates mean "modified".
fn not_modified_since(last_modified: &HeaderValue, ims: &HeaderValue) -> bool {
    match (date(last_modified), date(ims)) {
        (Some(lm), Some(ims)) => lm <= ims,
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Send the whole object: several ranges, another unit, or a malformed header.
    Whole,
    Unsatisfiable,
    /// First and last byte, inclusive.
    Bytes(u64, u64),
}

fn parse_range(v: &[u8], len: u64) -> Range {
    let Some(spec) = v.trim_ascii().strip_prefix(b"bytes=") else {
        return Range::Whole;
    };
    if spec.contains(&b',') {
        return Range::Whole;
    }
    let Ok(spec) = std::str::from_utf8(spec) else {
        return Range::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match num(last) {
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Bytes(len.saturating_sub(n), len - 1),
            None => Range::Whole,
        },
        (false, _) => {
            let Some(first) = num(first) else {
                return Range::Whole;
            };
            let last = if last.trim().is_empty() {
                None
            } else {
                match num(last) {
                    Some(l) if l >= first => Some(l),
                    _ => return Range::Whole,
                }
            };
            if first >= len {
                return Range::Unsatisfiable;
            }
            Range::Bytes(first, last.map_or(len - 1, |l| l.min(len - 1)))
        }
        (true, true) => Range::Whole,
    }
}

fn content_range(range: Option<(u64, u64)>, len: u64) -> HeaderValue {
    let text = match range {
        Some((first, last)) => format!("bytes {first}-{last}/{len}"),
        None => format!("bytes */{len}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-3", 10), Range::Bytes(0, 3));
        assert_eq!(parse_range(b"bytes=5-", 10), Range::Bytes(5, 9));
        assert_eq!(parse_range(b"bytes=-3", 10), Range::Bytes(7, 9));
        assert_eq!(parse_range(b"bytes=-30", 10), Range::Bytes(0, 9));
        assert_eq!(parse_range(b"bytes=8-100", 10), Range::Bytes(8, 9));
        assert_eq!(parse_range(b"bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,4-5", 10), Range::Whole);
        assert_eq!(parse_range(b"bytes=5-3", 10), Range::Whole);
        assert_eq!(parse_range(b"items=0-1", 10), Range::Whole);
    }

    #[test]
    fn weak_comparison() {
        let tag = HeaderValue::from_static("\"v1\"");
        assert!(weak_match(&HeaderValue::from_static("W/\"v1\""), &tag));
        assert!(weak_match(&HeaderValue::from_static("\"x\", \"v1\""), &tag));
        assert!(weak_match(&HeaderValue::from_static("*"), &tag));
        assert!(!weak_match(&HeaderValue::from_static("\"v2\""), &tag));
    }
}
