//! HTTPS at the edge (SPEC 9.3): certificates picked by SNI, ALPN h2, reloads that swap certificates under
//! open connections, `https_redirect`, `X-Forwarded-Proto`, and HTTPS towards an origin with its own CA.
//! Every certificate is made here with rcgen, under a throwaway CA.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::tls::Ca;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn connector(ca: &Ca, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(cfg))
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &Ca,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    connector(ca, alpn).connect(name, tcp).await
}

fn peer_cert(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 keep-alive GET on `s`; returns the head and body text (the body is read by length).
async fn get_on(s: &mut TlsStream<TcpStream>, host: &str, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    exchange(s, &req).await
}

async fn exchange(s: &mut TlsStream<TcpStream>, req: &str) -> String {
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// A folder with certificates for `a.test` and `b.test` (`a.pem`/`a.key`, `b.pem`/`b.key`) from one new CA;
/// returns their DER too.
fn two_sites() -> (tempfile::TempDir, Ca, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let a = ca.issue(dir.path(), "a", "a.test");
    let b = ca.issue(dir.path(), "b", "b.test");
    (dir, ca, a, b)
}

fn site(dir: &Path, origin: SocketAddr, extra: &str) -> String {
    let d = dir.display();
    format!(
        "[node]\nname = \"edge-t\"\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n\n\
         [[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n{extra}\n[domain.tls]\ncert = \"{d}/a.pem\"\nkey = \"{d}/a.key\"\n\n\
         [[domain]]\nname = \"b.test\"\norigins = [\"{origin}\"]\n\n[domain.tls]\ncert = \"{d}/b.pem\"\nkey = \"{d}/b.key\"\n"
    )
}

async fn proto_origin() -> Origin {
    Origin::builder()
        .route("/proto", Route::echo(&[("proto", "x-forwarded-proto")]))
        .fallback(Route::path("ok ", "\n"))
        .start()
        .await
}

#[tokio::test]
async fn sni_picks_each_domains_certificate_and_the_pipeline_serves_over_tls() {
    let (dir, ca, a, b) = two_sites();
    let o = proto_origin().await;
    let (node, _) = node(&site(dir.path(), o.addr, "")).await;
    let tls = node.local_tls_addrs()[0];

    let mut sa = tls_connect(tls, &ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(peer_cert(&sa), a);
    let sb = tls_connect(tls, &ca, "b.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(peer_cert(&sb), b);

    let text = get_on(&mut sa, "a.test", "/proto").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("proto=https"), "{text}");
    // The same connection again (keep-alive), then plain HTTP says http.
    let text = get_on(&mut sa, "a.test", "/x").await;
    assert!(text.contains("ok /x"), "{text}");
    let plain = get(node.local_addrs()[0], "a.test", "/proto?plain", &[]).await;
    assert!(plain.body.contains("proto=http\n"), "{}", plain.body);
}

#[tokio::test]
async fn unknown_or_missing_sni_fails_the_handshake_and_the_node_serves_on() {
    let (dir, ca, _, _) = two_sites();
    let o = proto_origin().await;
    let (node, _) = node(&site(dir.path(), o.addr, "")).await;
    let tls = node.local_tls_addrs()[0];
    let err = tls_connect(tls, &ca, "c.test", &[]).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("alert"), "{err}");
    // An IP address as the name: rustls sends no SNI at all.
    let err = tls_connect(tls, &ca, "127.0.0.1", &[]).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("alert"), "{err}");
    let mut s = tls_connect(tls, &ca, "a.test", &[]).await.unwrap();
    assert!(get_on(&mut s, "a.test", "/y").await.contains("ok /y"));
}

#[tokio::test]
async fn alpn_negotiates_h2_and_a_request_is_served_over_it() {
    let (dir, ca, _, _) = two_sites();
    let o = proto_origin().await;
    let (node, _) = node(&site(dir.path(), o.addr, "")).await;
    let s = tls_connect(
        node.local_tls_addrs()[0],
        &ca,
        "a.test",
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/proto", "/z"] {
        let req = http::Request::get(format!("https://a.test{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("proto=https") || body.contains("ok /z"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn reload_swaps_a_certificate_without_dropping_an_open_connection() {
    let (dir, ca, old, _) = two_sites();
    let o = proto_origin().await;
    let text = site(dir.path(), o.addr, "");
    let (node, _) = node(&text).await;
    let tls = node.local_tls_addrs()[0];
    let mut open = tls_connect(tls, &ca, "a.test", &[]).await.unwrap();
    assert!(get_on(&mut open, "a.test", "/1").await.contains("ok /1"));

    // A file broken after the check (which would refuse it) refuses the reload; the old certificate stays.
    let config = parse(&text);
    std::fs::write(
        dir.path().join("a.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = node.reload(config).unwrap_err();
    assert!(err.to_string().contains("a.test"), "{err}");
    let s = tls_connect(tls, &ca, "a.test", &[]).await.unwrap();
    assert_eq!(peer_cert(&s), old);

    let new = ca.issue(dir.path(), "a", "a.test");
    node.reload(parse(&text)).unwrap();
    let s = tls_connect(tls, &ca, "a.test", &[]).await.unwrap();
    assert_eq!(peer_cert(&s), new);
    assert_ne!(old, new);
    assert_eq!(peer_cert(&open), old);
    assert!(get_on(&mut open, "a.test", "/2").await.contains("ok /2"));
}

#[tokio::test]
async fn https_redirect_answers_plain_http_with_308_to_the_tls_port() {
    let (dir, ca, _, _) = two_sites();
    let o = proto_origin().await;
    let (node, _) = node(&site(dir.path(), o.addr, "https_redirect = true\n")).await;
    let port = node.local_tls_addrs()[0].port();
    let r = get(node.local_addrs()[0], "a.test", "/p/q?x=1&y=2", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.test:{port}/p/q?x=1&y=2").as_str())
    );
    assert_eq!(o.hits(), 0);
    // b.test did not ask for it; over HTTPS a.test is served.
    assert_eq!(
        get(node.local_addrs()[0], "b.test", "/p", &[]).await.status,
        200
    );
    let mut s = tls_connect(node.local_tls_addrs()[0], &ca, "a.test", &[])
        .await
        .unwrap();
    assert!(get_on(&mut s, "a.test", "/p").await.contains("ok /p"));
}

/// An HTTPS origin with the certificate `stem` in `dir`: answers `secure <path>` to every request.
async fn tls_origin(dir: &Path, stem: &str) -> SocketAddr {
    let chain = edgeguard_config::certs::read_chain(&dir.join(format!("{stem}.pem"))).unwrap();
    let key_pem = std::fs::read(dir.join(format!("{stem}.key"))).unwrap();
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let body = format!("secure {}\n", req.uri().path());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn upstream_site(origin: SocketAddr, ca: &Path) -> String {
    format!(
        "[node]\nname = \"edge-t\"\nlisten = [\"127.0.0.1:0\"]\n\n[[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n\n\
         [domain.upstream_tls]\nenabled = true\nca = \"{}\"\nserver_name = \"origin.test\"\n",
        ca.display()
    )
}

#[tokio::test]
async fn an_origin_over_https_is_verified_against_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin ca");
    ca.issue(dir.path(), "origin", "origin.test");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    let other = Ca::new("another ca");
    std::fs::write(dir.path().join("other.pem"), &other.pem).unwrap();
    let origin = tls_origin(dir.path(), "origin").await;

    let (good, _) = node(&upstream_site(origin, &dir.path().join("ca.pem"))).await;
    let addr = good.local_addrs()[0];
    for path in ["/one", "/two"] {
        let r = get(addr, "a.test", path, &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, format!("secure {path}\n"));
    }

    let (bad, _) = node(&upstream_site(origin, &dir.path().join("other.pem"))).await;
    let r = get(bad.local_addrs()[0], "a.test", "/three", &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.body.contains("upstream certificate not trusted"),
        "{}",
        r.body
    );
}

fn attr<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + page[start..].find('"').unwrap();
    &page[start..end]
}

/// The nonce the challenge page's worker would find: SHA-256(challenge || nonce) with `bits` leading zeros.
fn solve(challenge: &str, bits: u32) -> u64 {
    use sha2::{Digest, Sha256};
    (0..1u64 << 24)
        .find(|n| {
            let h = Sha256::digest(format!("{challenge}{n}").as_bytes());
            let zeros = h
                .iter()
                .position(|&b| b != 0)
                .map_or(256, |i| i as u32 * 8 + h[i].leading_zeros());
            zeros >= bits
        })
        .expect("a nonce within 2^24 tries")
}

#[tokio::test]
async fn the_clearance_cookie_is_secure_over_https() {
    let (dir, ca, _, _) = two_sites();
    let o = proto_origin().await;
    let extra = "\n[domain.challenge]\ndifficulty = 8\npaths = [\"/login\"]\n";
    let (node, _) = node(&site(dir.path(), o.addr, extra)).await;
    let mut s = tls_connect(node.local_tls_addrs()[0], &ca, "a.test", &[])
        .await
        .unwrap();
    let page = get_on(&mut s, "a.test", "/login").await;
    assert!(page.contains("data-token="), "{page}");
    let nonce = solve(
        attr(&page, "data-challenge"),
        attr(&page, "data-difficulty").parse().unwrap(),
    );
    let form = format!(
        "token={}&nonce={nonce}&elapsed_ms=42&return_to=%2Flogin",
        attr(&page, "data-token")
    );
    let req = format!(
        "POST /.edgeguard/challenge/verify HTTP/1.1\r\nHost: a.test\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let verified = exchange(&mut s, &req).await;
    assert!(verified.starts_with("HTTP/1.1 200"), "{verified}");
    let cookie = verified
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(cookie.trim_end().ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn the_cache_keeps_http_and_https_answers_apart() {
    let (dir, ca, _, _) = two_sites();
    // An origin whose answer depends on the scheme, cacheable (as an HTTP-to-HTTPS 301 would be).
    let o = Origin::builder()
        .fallback(Route::echo(&[("proto", "x-forwarded-proto")]).cache_control("max-age=60"))
        .start()
        .await;
    let (node, _) = node(&site(
        dir.path(),
        o.addr,
        "[domain.cache]\nenabled = true\n",
    ))
    .await;
    let plain = get(node.local_addrs()[0], "a.test", "/p", &[]).await;
    assert_eq!(
        (plain.x_cache(), plain.body.as_str()),
        ("MISS", "uri=/p\nproto=http\n")
    );
    let mut s = tls_connect(node.local_tls_addrs()[0], &ca, "a.test", &[])
        .await
        .unwrap();
    for want in ["MISS", "HIT"] {
        let text = get_on(&mut s, "a.test", "/p").await;
        assert!(text.contains("proto=https"), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains(&format!("x-cache: {}", want.to_ascii_lowercase())),
            "{text}"
        );
    }
    let plain = get(node.local_addrs()[0], "a.test", "/p", &[]).await;
    assert_eq!(
        (plain.x_cache(), plain.body.as_str()),
        ("HIT", "uri=/p\nproto=http\n")
    );
    // A purge of the URL drops both.
    let purged = node.purge("a.test", &edgeguard_proxy::Purge::Urls(vec!["/p".into()]));
    assert_eq!(purged, Some(2));
    assert_eq!(o.hits(), 2);
}
