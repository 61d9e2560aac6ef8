//! Fixtures of the proxy's tests: the two origins they forward to (a plain one and a CDN one, both
//! edgeguard-testkit origins), nodes from TOML text on a fake clock, and testkit's client.
#![allow(dead_code, unused_imports)] // Each test file uses its own part of these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgeguard_limit::FakeClock;
use edgeguard_proxy::{Node, RunningNode};
use tokio::net::TcpListener;

pub mod protection;
pub mod tls;

pub use edgeguard_testkit::{
    Origin, Reply, Route, WAIT, dead_addr, eventually, get, h2, raw, read_all, send, statuses,
};

/// The plain origin: nothing says whether it may be cached.
///
/// Paths: `/close` answers and closes the connection; `/hold` answers its head and a first chunk at once,
/// then one more chunk and the end only when [`Origin::release`] is called; `/slow` waits 2 s before its head;
/// `/echo` answers with what it received; `/upload` reads the whole body and answers its length; anything else
/// answers `ok <path>`.
pub async fn origin() -> Origin {
    Origin::builder()
        .route(
            "/close",
            Route::text("closing\n").header("connection", "close"),
        )
        .route(
            "/hold",
            Route::chunks(["first\n", "last\n"]).gate_before_chunk(1),
        )
        .route("/slow", Route::text("slow\n").delay(Duration::from_secs(2)))
        .route(
            "/echo",
            Route::echo(&[
                ("host", "host"),
                ("xff", "x-forwarded-for"),
                ("via", "via"),
                ("connection", "connection"),
                ("x-drop", "x-drop"),
            ]),
        )
        .route("/upload", Route::received_len("got ", "\n"))
        .fallback(Route::path("ok ", "\n"))
        .start()
        .await
}

/// The CDN origin, whose answers are cacheable unless said otherwise.
///
/// Paths: `/gate` answers only when [`Origin::open_gate`] lets it; `/big?n=N` answers N bytes; `/cookie`
/// sets a cookie; `/chunked` streams a body of unknown length; `/chunked-big?n=N` streams N bytes in chunks;
/// `/chunked-gate` streams `chunk1` and sends `chunk2` when the gate lets it; `/chunked-hold` streams
/// `chunk1` then `chunk2`, or never `chunk2` when the request carries `x-hold`; `/echo-cookie` answers the
/// `Cookie` headers it received, one a line; `/slow` waits 5 s; `/nocache` says `no-store`;
/// anything else answers `ok <path and query>`. Everything cacheable says `max-age=60`. While
/// [`Origin::fail`] is on, every request gets 503.
pub async fn test_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_origin(listener)
}

/// The CDN origin on a given listener (to bring one back on a known port).
pub fn serve_origin(listener: TcpListener) -> Origin {
    const CACHEABLE: &str = "max-age=60";
    Origin::builder()
        .route(
            "/gate",
            Route::text("gated\n").gated().cache_control(CACHEABLE),
        )
        .route("/big", Route::sized("n", b'x').cache_control(CACHEABLE))
        .route(
            "/cookie",
            Route::text("cookie\n")
                .cache_control(CACHEABLE)
                .header("set-cookie", "session=1"),
        )
        .route(
            "/chunked",
            Route::chunks(["chunk1\n", "chunk2\n"]).cache_control(CACHEABLE),
        )
        .route(
            "/chunked-big",
            Route::sized_streamed("n", b'x', 1000).cache_control(CACHEABLE),
        )
        .route(
            "/chunked-gate",
            Route::chunks(["chunk1\n", "chunk2\n"])
                .gate_before_chunk(1)
                .cache_control(CACHEABLE),
        )
        .route(
            "/chunked-hold",
            Route::chunks(["chunk1\n", "chunk2\n"])
                .hold_before_chunk_if(1, "x-hold")
                .cache_control(CACHEABLE),
        )
        .route(
            "/echo-cookie",
            Route::header_lines("cookie").cache_control("no-store"),
        )
        .route(
            "/slow",
            Route::text("slow\n")
                .delay(Duration::from_secs(5))
                .cache_control(CACHEABLE),
        )
        .route(
            "/nocache",
            Route::text("nocache\n").cache_control("no-store"),
        )
        .fallback(Route::path_and_query("ok ", "\n").cache_control(CACHEABLE))
        .when_failing(Route::text("origin failing\n").status(503))
        .serve(listener)
        .unwrap()
}

/// Node `name` with one cached domain `a.test` on `origin`; `cache` is the body of its `[domain.cache]`.
pub fn cache_site(name: &str, origin: SocketAddr, cache: &str) -> String {
    format!(
        "\n[node]\nname = \"{name}\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"a.test\"\n\
         origins = [\"{origin}\"]\n[domain.cache]\n{cache}\n"
    )
}

/// A config with `[node]` on 127.0.0.1:0 followed by `rest` (with `{origin}` replaced).
pub fn config(rest: &str, origin: SocketAddr) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"edge-t\"\nlisten = [\"127.0.0.1:0\"]\n{}",
        rest.replace("{origin}", &origin.to_string())
    );
    match edgeguard_config::parse(&text) {
        Ok(c) => isolated(c),
        Err(e) => panic!("test config does not parse: {e}\n{text}"),
    }
}

/// Starts a node on a fake clock at 1,000,000 ms.
pub async fn start(rest: &str, origin: SocketAddr) -> (RunningNode, SocketAddr, FakeClock) {
    let clock = FakeClock::new(1_000_000);
    let node = Node::start_with_clock(config(rest, origin), Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = node.local_addrs()[0];
    (node, addr, clock)
}

/// A node from whole TOML text, on a fake clock at 1,000,000 ms.
pub async fn node(text: &str) -> (RunningNode, FakeClock) {
    let clock = FakeClock::new(1_000_000);
    let node = Node::start_with_clock(parse(text), Arc::new(clock.clone()))
        .await
        .unwrap();
    (node, clock)
}

pub fn parse(text: &str) -> edgeguard_config::Config {
    isolated(edgeguard_config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

/// Every test node gets its own data directory (activity log, challenge key), never the working directory.
pub fn isolated(mut config: edgeguard_config::Config) -> edgeguard_config::Config {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if config.node.data_dir.is_relative() {
        config.node.data_dir = std::env::temp_dir().join(format!(
            "edgeguard-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    }
    config
}
