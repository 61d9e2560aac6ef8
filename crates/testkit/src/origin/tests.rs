use super::*;
use crate::client::{get, send};

#[tokio::test]
async fn routes_answer_by_path_and_count() {
    let o = Origin::builder()
        .route(
            "/fixed",
            Route::text("hello").status(404).cache_control("no-store"),
        )
        .route(
            "/q",
            Route::path_and_query("ok ", "\n").cache_control("max-age=60"),
        )
        .route("/fav", Route::text("").uncounted())
        .route_prefix("/missing", Route::text("gone").status(410))
        .start()
        .await;
    let r = get(o.addr, "t", "/fixed", &[]).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (404, "hello"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(get(o.addr, "t", "/q?a=1", &[]).await.body, "ok /q?a=1\n");
    assert_eq!(get(o.addr, "t", "/q", &[]).await.body, "ok /q\n");
    assert_eq!(get(o.addr, "t", "/missing/x", &[]).await.status, 410);
    assert_eq!(get(o.addr, "t", "/else", &[]).await.body, "ok /else\n");
    get(o.addr, "t", "/fav", &[]).await;
    assert_eq!(o.hits(), 5, "the uncounted route is not a hit");
    assert_eq!((o.hits_of("/q"), o.hits_of("/fav")), (2, 1));
    assert_eq!(o.conns(), 6);
}

#[tokio::test]
async fn echo_sizes_and_received_bodies() {
    let o = Origin::builder()
        .route(
            "/echo",
            Route::echo(&[("host", "host"), ("xff", "x-forwarded-for")]),
        )
        .route("/cookies", Route::header_lines("cookie"))
        .route("/big", Route::sized("n", b'x'))
        .route("/stream", Route::sized_streamed("n", b'y', 3))
        .route("/upload", Route::received_len("got ", "\n"))
        .start()
        .await;
    let r = get(
        o.addr,
        "h.test",
        "/echo?z",
        &[("x-forwarded-for", "192.0.2.1")],
    )
    .await;
    assert_eq!(r.body, "uri=/echo?z\nhost=h.test\nxff=192.0.2.1\n");
    let r = get(
        o.addr,
        "t",
        "/cookies",
        &[("cookie", "a=1"), ("cookie", "b=2")],
    )
    .await;
    assert_eq!(r.body, "a=1\nb=2\n");
    let r = get(o.addr, "t", "/big?n=5", &[]).await;
    assert_eq!(
        (r.body.as_str(), r.header("content-length")),
        ("xxxxx", Some("5"))
    );
    let r = get(o.addr, "t", "/stream?n=7", &[]).await;
    assert_eq!(
        (r.body.as_str(), r.header("transfer-encoding")),
        ("yyyyyyy", Some("chunked"))
    );
    let r = send(o.addr, "POST", "t", "/upload", &[], "12345678").await;
    assert_eq!(r.body, "got 8\n");
}

#[tokio::test]
async fn gates_holds_failures_and_stop() {
    let o = Origin::builder()
        .route("/gate", Route::text("gated\n").gated())
        .route(
            "/chunks",
            Route::chunks(["one\n", "two\n"]).gate_before_chunk(1),
        )
        .route(
            "/ms",
            Route::text("late").delay_from_query("ms", Duration::from_millis(50)),
        )
        .start()
        .await;
    let addr = o.addr;
    let waiting = tokio::spawn(async move { get(addr, "t", "/gate", &[]).await.body });
    let chunks = tokio::spawn(async move { get(addr, "t", "/chunks", &[]).await.body });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished() && !chunks.is_finished());
    o.open_gate(2);
    assert_eq!(waiting.await.unwrap(), "gated\n");
    assert_eq!(chunks.await.unwrap(), "one\ntwo\n");
    // The delay is capped: a large value does not hang the test.
    assert_eq!(get(addr, "t", "/ms?ms=100000", &[]).await.body, "late");
    o.fail(true);
    let r = get(addr, "t", "/gate", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (503, "origin failing\n")
    );
    o.fail(false);
    o.stop();
    assert!(
        crate::eventually(|| std::net::TcpStream::connect(addr).is_err()).await,
        "a stopped origin refuses connections"
    );
}
