use super::*;
use http::HeaderValue;

fn net(s: &str, prefix: u8) -> IpNet {
    IpNet {
        addr: s.parse().unwrap(),
        prefix,
    }
}

fn run(peer: &str, xff: &[&[u8]]) -> Option<IpAddr> {
    let mut h = HeaderMap::new();
    for v in xff {
        h.append(X_FORWARDED_FOR.clone(), HeaderValue::from_bytes(v).unwrap());
    }
    let trusted = [net("127.0.0.0", 8), net("10.0.0.0", 8)];
    forwarded_client(peer.parse().unwrap(), &h, &trusted)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn trust_rules() {
    assert_eq!(run("192.0.2.1", &[b"1.2.3.4"]), None, "untrusted peer");
    assert_eq!(run("127.0.0.1", &[]), None);
    assert_eq!(run("127.0.0.1", &[b"1.2.3.4"]), ip("1.2.3.4"));
    assert_eq!(
        run("127.0.0.1", &[b"5.6.7.8, 1.2.3.4 , 10.1.1.1"]),
        ip("1.2.3.4")
    );
    assert_eq!(
        run("127.0.0.1", &[b"5.6.7.8", b"1.2.3.4,10.0.0.2"]),
        ip("1.2.3.4")
    );
    assert_eq!(run("127.0.0.1", &[b"10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"));
    assert_eq!(
        run("127.0.0.1", &[b"1.2.3.4, junk, 10.0.0.2"]),
        ip("10.0.0.2")
    );
    assert_eq!(run("127.0.0.1", &[b"junk"]), None);
    assert_eq!(run("127.0.0.1", &[b"[2001:db8::1]"]), ip("2001:db8::1"));
    assert_eq!(run("127.0.0.1", &[b",,  ,"]), None);
    assert_eq!(run("::ffff:127.0.0.1", &[b"::ffff:1.2.3.4"]), ip("1.2.3.4"));
}

proptest::proptest! {
    /// Whatever the headers hold, the result is the peer or an address written in them, and an untrusted peer
    /// is never overridden.
    #[test]
    fn forwarded_address_comes_from_the_header(values in proptest::collection::vec("[0-9a-f.:, \\[\\]x]{0,40}", 0..4), trusted_peer in proptest::bool::ANY) {
        let peer = if trusted_peer { "127.0.0.1" } else { "192.0.2.7" };
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let got = run(peer, &refs);
        if !trusted_peer {
            proptest::prop_assert_eq!(got, None);
        }
        if let Some(ip) = got {
            let written = values.iter().flat_map(|v| v.split(',')).any(|e| {
                let e = e.trim().trim_start_matches('[').trim_end_matches(']');
                e.parse::<IpAddr>().map(canonical) == Ok(ip)
            });
            proptest::prop_assert!(written, "{ip} not in {values:?}");
        }
    }
}
