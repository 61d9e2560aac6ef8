//! `Vary` (RFC 9110 section 12.5.5, RFC 9111 section 4.1): which stored variant a request may be served.
//!
//! Values are compared as sent, except `Accept-Encoding`, which browsers spell in many equivalent ways
//! (`gzip, deflate, br`, `br;q=1.0, gzip;q=0.8`, ...): it is compared as the set of codings it accepts, so
//! clients that accept the same codings share one variant instead of fragmenting the cache.

use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Request header values a response's `Vary` nominated, as the leading request sent them.
pub(crate) type VarySnapshot = Box<[(HeaderName, Option<HeaderValue>)]>;

/// Whether a request with `headers` matches the recorded `snapshot`.
pub(crate) fn matches(snapshot: &[(HeaderName, Option<HeaderValue>)], headers: &HeaderMap) -> bool {
    snapshot
        .iter()
        .all(|(name, value)| same_value(name, value.as_ref(), headers.get(name)))
}

/// Whether two snapshots select the same variant (a new fill then replaces the stored one).
pub(crate) fn same_variant(
    a: &[(HeaderName, Option<HeaderValue>)],
    b: &[(HeaderName, Option<HeaderValue>)],
) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, va), (nb, vb))| na == nb && same_value(na, va.as_ref(), vb.as_ref()))
}

/// Feeds what identifies a variant to `feed`: names, and values as [`same_variant`] compares them, so two
/// snapshots that select the same variant feed the same bytes.
pub(crate) fn identity(
    snapshot: &[(HeaderName, Option<HeaderValue>)],
    mut feed: impl FnMut(&[u8]),
) {
    for (name, value) in snapshot {
        feed(name.as_str().as_bytes());
        feed(b"\0");
        if *name == ACCEPT_ENCODING {
            feed(&[codings(value.as_ref())]);
        } else if let Some(v) = value {
            feed(b"=");
            feed(v.as_bytes());
        }
        feed(b"\n");
    }
}

fn same_value(name: &HeaderName, a: Option<&HeaderValue>, b: Option<&HeaderValue>) -> bool {
    if name == ACCEPT_ENCODING {
        return codings(a) == codings(b);
    }
    a == b
}

/// The content codings an `Accept-Encoding` value accepts, as a bit set (absent header: none named).
fn codings(value: Option<&HeaderValue>) -> u8 {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return 0;
    };
    let mut set = 0u8;
    for item in text.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        // No allocation: this runs on every hit of an object that varies on Accept-Encoding.
        const KNOWN: [(&str, u8); 9] = [
            ("gzip", 1),
            ("x-gzip", 1),
            ("br", 2),
            ("zstd", 4),
            ("deflate", 8),
            ("compress", 16),
            ("x-compress", 16),
            ("*", 32),
            ("identity", 0),
        ];
        set |= match KNOWN
            .iter()
            .find(|(name, _)| coding.eq_ignore_ascii_case(name))
        {
            Some((_, bit)) => *bit,
            None if coding.is_empty() => 0,
            None => 64,
        };
    }
    set
}

/// A copy of `value` in its own allocation: values parsed by hyper are slices of its read buffer, and a
/// stored slice would keep the whole buffer alive while the budget charges only the slice.
pub(crate) fn owned_value(value: &HeaderValue) -> HeaderValue {
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn snap(name: &'static str, value: Option<&'static str>) -> VarySnapshot {
        vec![(
            HeaderName::from_static(name),
            value.map(HeaderValue::from_static),
        )]
        .into_boxed_slice()
    }

    #[test]
    fn accept_encoding_is_compared_as_a_set() {
        let s = snap("accept-encoding", Some("gzip, deflate, br"));
        assert!(matches(
            &s,
            &map(&[("accept-encoding", "br;q=1.0, gzip, deflate")])
        ));
        assert!(matches(
            &s,
            &map(&[("accept-encoding", "deflate,br,GZIP,identity")])
        ));
        assert!(!matches(&s, &map(&[("accept-encoding", "gzip")])));
        assert!(!matches(
            &s,
            &map(&[("accept-encoding", "gzip, deflate, br;q=0")])
        ));
        assert!(!matches(&s, &map(&[])));
        let none = snap("accept-encoding", None);
        assert!(matches(&none, &map(&[])));
        assert!(matches(&none, &map(&[("accept-encoding", "identity")])));
    }

    #[test]
    fn other_headers_compare_exactly() {
        let s = snap("accept-language", Some("en"));
        assert!(matches(&s, &map(&[("accept-language", "en")])));
        assert!(!matches(&s, &map(&[("accept-language", "EN")])));
        assert!(!matches(&s, &map(&[])));
        assert!(same_variant(&s, &snap("accept-language", Some("en"))));
        assert!(!same_variant(&s, &snap("accept-language", Some("de"))));
        assert!(!same_variant(&s, &snap("accept", Some("en"))));
    }
}
