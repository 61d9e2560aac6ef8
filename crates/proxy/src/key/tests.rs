use std::net::IpAddr;

use edgeguard_config::{KeyPart, KeyTemplate};
use http::{HeaderMap, HeaderValue, Uri};
use proptest::prelude::*;

use super::*;

fn norm(p: &str) -> String {
    let mut out = KeyBuf::new();
    push_normalized_path(p.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn valid(p: &str) -> bool {
    push_normalized_path(p.as_bytes(), &mut KeyBuf::new())
}

#[test]
fn uri_normalisation() {
    assert_eq!(norm("/a/b"), "/a/b");
    assert_eq!(norm("/a//b"), "/a/b");
    assert_eq!(norm("/a/./b"), "/a/b");
    assert_eq!(norm("/a/../b"), "/b");
    assert_eq!(norm("/../../b"), "/b");
    assert_eq!(norm("/a/%62"), "/a/b");
    assert_eq!(norm("/a/%2e%2e/c"), "/c");
    assert_eq!(norm("/a/b/"), "/a/b/");
    assert_eq!(norm("/a/b/.."), "/a/");
    assert_eq!(norm("/%zz"), "/%zz");
    assert_eq!(norm("/%4"), "/%4");
    assert_eq!(norm("/"), "/");
    assert_eq!(norm("*"), "/*");
    for ok in ["/", "/a/../b", "/a/%2e%2e/", "/%41", "/a/.."] {
        assert!(valid(ok), "{ok}");
    }
    for bad in [
        "/..",
        "/../../b",
        "/a/../../b",
        "/%zz",
        "/%4",
        "/a%00b",
        "/%2e%2e/x",
    ] {
        assert!(!valid(bad), "{bad}");
    }
}

#[test]
fn args() {
    assert_eq!(find_arg(b"a=1&b=2", b"b"), Some(&b"2"[..]));
    assert_eq!(find_arg(b"A=1&a=2", b"a"), Some(&b"1"[..]));
    assert_eq!(find_arg(b"x&y=", b"x"), Some(&b""[..]));
    assert_eq!(find_arg(b"ab=1", b"a"), None);
}

fn eval(parts: Vec<KeyPart>, ip: &str, uri: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let key = CompiledKey::compile(&KeyTemplate {
        source: String::new(),
        parts,
    });
    let uri: Uri = uri.parse().unwrap();
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let ip: IpAddr = ip.parse().unwrap();
    let text = ip.to_string();
    let input = KeyInput {
        client_ip: ip,
        client_text: text.as_bytes(),
        host: "a.test",
        uri: &uri,
        headers: &map,
    };
    let mut out = KeyBuf::new();
    key.append(&input, &mut out);
    out.to_vec()
}

#[test]
fn every_key_part() {
    use KeyPart::*;
    assert_eq!(
        eval(vec![BinaryRemoteAddr], "1.2.3.4", "/", &[]),
        [1, 2, 3, 4]
    );
    assert_eq!(eval(vec![BinaryRemoteAddr], "::1", "/", &[]).len(), 16);
    assert_eq!(eval(vec![RemoteAddr], "1.2.3.4", "/", &[]), b"1.2.3.4");
    assert_eq!(
        eval(vec![Host, Uri], "1.2.3.4", "/x//y?q=1", &[]),
        b"a.test/x/y"
    );
    assert_eq!(
        eval(vec![RequestUri], "1.2.3.4", "/x//y?q=1", &[]),
        b"/x//y?q=1"
    );
    let ua = vec![Literal("ua:".into()), Http("user_agent".into())];
    assert_eq!(
        eval(ua.clone(), "1.2.3.4", "/", &[("user-agent", "curl")]),
        b"ua:curl"
    );
    assert_eq!(eval(ua, "1.2.3.4", "/", &[]), b"ua:");
    assert_eq!(
        eval(
            vec![Http("x_a".into())],
            "1.2.3.4",
            "/",
            &[("x-a", "1"), ("x-a", "2")]
        ),
        b"1, 2"
    );
    assert_eq!(
        eval(vec![Arg("id".into())], "1.2.3.4", "/?ID=7&id=8", &[]),
        b"7"
    );
    assert_eq!(eval(vec![Arg("id".into())], "1.2.3.4", "/", &[]), b"");
    assert_eq!(
        eval(vec![Http("bad name".into())], "1.2.3.4", "/", &[]),
        b""
    );
}

proptest! {
    /// The result is rooted, free of empty and dot segments, and normalising it again changes nothing.
    #[test]
    fn normalisation_is_canonical(path in "/[a-z./%2eE0-9]{0,40}") {
        let once = norm(&path);
        prop_assert!(once.starts_with('/'));
        prop_assert!(!once.contains("//"), "{once}");
        prop_assert!(!once.contains("/./") && !once.contains("/../"), "{once}");
        if !once.contains('%') {
            prop_assert_eq!(norm(&once), once.clone());
        }
    }

    #[test]
    fn arguments_never_panic(query in proptest::collection::vec(any::<u8>(), 0..64), name in "[a-z]{1,4}") {
        if let Some(v) = find_arg(&query, name.as_bytes()) {
            prop_assert!(v.len() <= query.len());
        }
    }
}

proptest! {
    /// The hand-written address text is `Display`'s, for every address.
    #[test]
    fn addr_text_is_display(v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>()) {
        let a = IpAddr::from(v4);
        prop_assert_eq!(&super::addr_text(a)[..], a.to_string().into_bytes());
        let b = IpAddr::from(v6);
        prop_assert_eq!(&super::addr_text(b)[..], b.to_string().into_bytes());
    }
}
