//! The clearance cookie stays at the edge: it is removed from the `Cookie` headers of requests going upstream.
//! Origins never need it, and one that logged or echoed it would hand out a credential bound to its client.

use bytes::{BufMut, BytesMut};
use edgeguard_challenge::COOKIE_NAME;
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// Removes every `edgeguard_clearance` pair from the request's `Cookie` headers (HTTP/2 may send several),
/// keeping the other cookies in order, joined into one header (RFC 9113 8.2.3); no header is left when
/// nothing else was there. A request without the cookie is not touched and costs a scan, no allocation.
pub(crate) fn strip_clearance(headers: &mut HeaderMap) {
    let present = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| pairs(v.as_bytes()).any(|p| is_clearance(&p)));
    if !present {
        return;
    }
    let mut kept = BytesMut::new();
    for v in headers.get_all(header::COOKIE) {
        for pair in pairs(v.as_bytes()).filter(|p| !is_clearance(p)) {
            if !kept.is_empty() {
                kept.put_slice(b"; ");
            }
            kept.put_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    // The kept bytes come from valid header values, so this only fails if that stops being true.
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_maybe_shared(kept.freeze())
    {
        headers.insert(header::COOKIE, v);
    }
}

/// The `name=value` pairs of one `Cookie` header, trimmed, empty ones skipped.
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

fn is_clearance(pair: &&[u8]) -> bool {
    let name = pair
        .iter()
        .position(|&b| b == b'=')
        .map_or(*pair, |i| &pair[..i]);
    name.trim_ascii() == COOKIE_NAME.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(values: &[&str]) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        strip_clearance(&mut h);
        h.get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn only_the_clearance_goes() {
        let c = format!("{COOKIE_NAME}=abc");
        assert_eq!(strip(&[&format!("a=1; {c}; b=2")]), ["a=1; b=2"]);
        assert_eq!(strip(&[&format!("{c};a=1")]), ["a=1"]);
        assert_eq!(strip(&[&c]), Vec::<String>::new());
        assert_eq!(strip(&[&format!("{c}; {c}")]), Vec::<String>::new());
        // HTTP/2: one header per cookie.
        assert_eq!(strip(&["a=1", &c, "b=2"]), ["a=1; b=2"]);
        assert_eq!(strip(&[&c, " ; "]), Vec::<String>::new());
    }

    #[test]
    fn other_cookies_are_left_as_they_are() {
        let lookalike = format!("x{COOKIE_NAME}=1; {COOKIE_NAME}x=2; a={COOKIE_NAME}");
        assert_eq!(strip(&[&lookalike]), [lookalike]);
        assert_eq!(
            strip(&["a=1", "b=2"]),
            ["a=1", "b=2"],
            "not joined when untouched"
        );
        assert_eq!(strip(&[]), Vec::<String>::new());
    }

    proptest::proptest! {
        /// Any Cookie header bytes a client can send: no panic, no clearance pair left, every other pair kept
        /// in order.
        #[test]
        fn arbitrary_cookie_headers(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::strategy::Just(format!("{COOKIE_NAME}=v")),
                        proptest::strategy::Just(format!(" {COOKIE_NAME} = v ")),
                        "[a-z_]{0,6}(=[ -~]{0,6})?",
                    ],
                    0..5,
                ),
                0..4,
            )
        ) {
            let headers: Vec<String> = values.iter().map(|v| v.join(";")).collect();
            let mut h = HeaderMap::new();
            for v in &headers {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.append(header::COOKIE, v);
                }
            }
            let sent: Vec<Vec<u8>> = h
                .get_all(header::COOKIE)
                .iter()
                .flat_map(|v| pairs(v.as_bytes()).map(<[u8]>::to_vec).collect::<Vec<_>>())
                .collect();
            strip_clearance(&mut h);
            let left: Vec<Vec<u8>> = h
                .get_all(header::COOKIE)
                .iter()
                .flat_map(|v| pairs(v.as_bytes()).map(<[u8]>::to_vec).collect::<Vec<_>>())
                .collect();
            proptest::prop_assert!(left.iter().all(|p| !is_clearance(&p.as_slice())));
            let others: Vec<Vec<u8>> = sent.into_iter().filter(|p| !is_clearance(&p.as_slice())).collect();
            proptest::prop_assert_eq!(left, others);
        }
    }
}
