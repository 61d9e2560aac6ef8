//! The clearance cookie is the edge's: origins get the request's other cookies, never it, over HTTP/1.1 and
//! HTTP/2 (one `cookie` header per cookie).

mod common;

use bytes::Bytes;
use common::*;
use edgeguard_challenge::COOKIE_NAME;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn site(origin: std::net::SocketAddr) -> String {
    format!(
        "[node]\nname = \"edge-k\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n"
    )
}

async fn echoed(addr: std::net::SocketAddr, cookie: &str) -> String {
    let r = send(
        addr,
        http::Method::GET,
        "a.test",
        "/echo-cookie",
        &[("cookie", cookie)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

#[tokio::test]
async fn origins_never_see_the_clearance_cookie() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr)).await;
    let addr = n.local_addrs()[0];
    let c = format!("{COOKIE_NAME}=abc");
    assert_eq!(echoed(addr, &format!("a=1; {c}; b=2")).await, "a=1; b=2\n");
    assert_eq!(echoed(addr, &c).await, "", "no Cookie header left");
    assert_eq!(echoed(addr, "a=1;b=2").await, "a=1;b=2\n", "untouched");
    let lookalike = format!("my{COOKIE_NAME}=1");
    assert_eq!(echoed(addr, &lookalike).await, format!("{lookalike}\n"));
}

#[tokio::test]
async fn http2_cookie_headers_are_stripped_too() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr)).await;
    let addr = n.local_addrs()[0];
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://a.test/echo-cookie")
        .header("cookie", "a=1")
        .header("cookie", format!("{COOKIE_NAME}=abc"))
        .header("cookie", "b=2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "a=1; b=2\n");
}
