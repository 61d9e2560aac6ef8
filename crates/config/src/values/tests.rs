use std::time::Duration;

use super::*;

fn s(v: &str) -> StrOrInt {
    StrOrInt::Str(v.to_string())
}

#[test]
fn durations() {
    let d = |v: &str| duration(&s(v));
    assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(d("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(d("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(d("30"), Ok(Duration::from_secs(30)));
    assert_eq!(duration(&StrOrInt::Int(7)), Ok(Duration::from_secs(7)));
    for bad in [
        "",
        "s",
        "10x",
        "1.5s",
        "-1s",
        "10 s",
        "m5",
        "99999999999999999999s",
    ] {
        assert!(d(bad).is_err(), "{bad}");
    }
    assert!(duration(&StrOrInt::Int(-1)).is_err());
    for ms in [
        0u64, 1, 999, 1000, 60_000, 90_000, 3_600_000, 86_400_000, 86_401_000,
    ] {
        let back = duration(&s(&format_duration(Duration::from_millis(ms))));
        assert_eq!(back, Ok(Duration::from_millis(ms)));
    }
}

#[test]
fn sizes() {
    assert_eq!(size(&s("16k")), Ok(16 * 1024));
    assert_eq!(size(&s("10m")), Ok(10 << 20));
    assert_eq!(size(&StrOrInt::Int(4096)), Ok(4096));
    assert!(size(&s("10q")).is_err());
    assert!(size(&StrOrInt::Int(-5)).is_err());
    for n in [0u64, 1, 1023, 1024, 32 * 1024, 10 << 20, 3 << 30, 5000] {
        assert_eq!(size(&s(&format_size(n))), Ok(n));
    }
}

#[test]
fn key_templates() {
    let k = |v: &str| key_template(v).map(|t| t.parts);
    assert_eq!(
        k("$binary_remote_addr"),
        Ok(vec![KeyPart::BinaryRemoteAddr])
    );
    assert_eq!(k("$host$uri"), Ok(vec![KeyPart::Host, KeyPart::Uri]));
    assert_eq!(
        k("user-$arg_id:${http_x_api_key}x"),
        Ok(vec![
            KeyPart::Literal("user-".into()),
            KeyPart::Arg("id".into()),
            KeyPart::Literal(":".into()),
            KeyPart::Http("x_api_key".into()),
            KeyPart::Literal("x".into()),
        ])
    );
    assert_eq!(k("$Remote_Addr"), Ok(vec![KeyPart::RemoteAddr]));
    assert_eq!(k("$request_uri"), Ok(vec![KeyPart::RequestUri]));
    assert_eq!(k("fixed"), Ok(vec![KeyPart::Literal("fixed".into())]));
    for bad in [
        "",
        "$",
        "$server_name",
        "${host",
        "${}",
        "$http_",
        "$arg_",
        "a$-b",
        "${ho st}",
    ] {
        assert!(k(bad).is_err(), "{bad}");
    }
    let e = key_template("$server_name").unwrap_err();
    assert!(e.contains("unknown variable $server_name"), "{e}");
}

#[test]
fn address_ranges() {
    let n = ip_net("10.0.0.0/8").unwrap();
    assert_eq!(n.prefix, 8);
    assert_eq!(ip_net("192.0.2.7").unwrap().prefix, 32);
    assert_eq!(ip_net("::1").unwrap().prefix, 128);
    assert_eq!(ip_net("2001:db8::/32").unwrap().prefix, 32);
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "host",
        "10.0.0.0/",
        "10.0.0.0/-1",
        "",
    ] {
        assert!(ip_net(bad).is_err(), "{bad}");
    }
}

#[test]
fn upstreams() {
    let u = upstream("Origin.Example.com:8080").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("origin.example.com", 8080));
    let u = upstream("[2001:db8::1]:80").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 80));
    assert_eq!(upstream("10.0.0.5:80").unwrap().host, "10.0.0.5");
    for bad in [
        "10.0.0.5",
        "10.0.0.5:0",
        "10.0.0.5:65536",
        "2001:db8::1:80",
        "http://a:80",
        "[zz]:80",
        ":80",
        "a_b:80",
        "[::1]80",
    ] {
        assert!(upstream(bad).is_err(), "{bad}");
    }
}

#[test]
fn host_names() {
    for good in [
        "example.com",
        "a",
        "xn--bcher-kva.example",
        "127.0.0.1",
        "a-b.c",
    ] {
        assert!(host_name(good).is_ok(), "{good}");
    }
    for bad in [
        "", "-a.com", "a-.com", "a..b", "a.com.", "*.a.com", "a.com:80", "a b", "a_b",
    ] {
        assert!(host_name(bad).is_err(), "{bad}");
    }
    assert!(host_name(&"a".repeat(64)).is_err());
}
