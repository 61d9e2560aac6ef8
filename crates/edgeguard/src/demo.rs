//! `edgeguard demo`: a local origin, a parent (L2) and an edge (L1) in one process, with the IP access limit,
//! rate limiting and a limit_req on at the edge, and the curl lines to try. Runs until Ctrl-C or SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::control::NodeControl;
use crate::run::{init_logging, runtime};

/// The admin token of the demo's edge.
const DEMO_TOKEN: &str = "demo";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The edge listens on this port of 127.0.0.1, the parent on the next, the origin on the one after and the
    /// edge's admin API and console on the fourth; 0 picks free ports.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let _log = init_logging();
    let dir = std::env::temp_dir().join(format!("edgeguard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = runtime()?.block_on(serve(args, dir.clone()));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn port(base: u16, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base.saturating_add(offset)
    }
}

async fn serve(args: DemoArgs, dir: PathBuf) -> anyhow::Result<()> {
    let origin = TcpListener::bind(("127.0.0.1", port(args.port, 2)))
        .await
        .context("cannot bind the demo origin")?;
    let origin_addr = origin.local_addr()?;
    tokio::spawn(origin_loop(origin));

    let (parent_config, _) = node_config(
        "demo-parent",
        "parent",
        port(args.port, 1),
        &dir.join("parent"),
        "",
        &format!(r#"origins = ["{origin_addr}"]"#),
    )?;
    let parent = edgeguard_proxy::Node::start(parent_config)
        .await
        .context("cannot start the demo parent")?;
    let parent_addr = parent.local_addrs()[0];

    let (edge_config, edge_text) = node_config(
        "demo-edge",
        "edge",
        args.port,
        &dir.join("edge"),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{DEMO_TOKEN}\"",
            port(args.port, 3)
        ),
        &format!(
            r#"origins = ["{origin_addr}"]
parents = ["{parent_addr}"]
explain = true
limit_req_status = 429

[[domain.location]]
path = "/api/"
limit_req = [{{ zone = "perip", burst = 2, nodelay = true }}]

[domain.ip_access_limit]
enabled = true
qps = 10

[domain.rate_limiting]
enabled = true
mode = "normal""#
        ),
    )?;
    let edge_file = dir.join("edge.toml");
    std::fs::write(&edge_file, edge_text)
        .with_context(|| format!("cannot write {}", edge_file.display()))?;
    let admin_addr = edge_config.admin.listen;
    let edge = Arc::new(
        edgeguard_proxy::Node::start(edge_config.clone())
            .await
            .context("cannot start the demo edge")?,
    );
    let edge_addr = edge.local_addrs()[0];
    let control = Arc::new(NodeControl::new(
        edge.clone(),
        edge_config,
        &edge_file,
        None,
    ));
    let admin = edgeguard_admin::start(admin_addr, Some(DEMO_TOKEN.to_owned()), control.clone())
        .await
        .with_context(|| format!("cannot start the demo admin listener on {admin_addr}"))?;

    print_banner(edge_addr, parent_addr, origin_addr, admin.local_addr());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("stopping");
    admin.stop().await;
    drop(control);
    if let Ok(edge) = Arc::try_unwrap(edge) {
        edge.shutdown().await;
    }
    parent.shutdown().await;
    Ok(())
}

/// A node's configuration, and its text (the edge's is written to a file the admin API persists changes to).
fn node_config(
    name: &str,
    tier: &str,
    port: u16,
    data_dir: &std::path::Path,
    admin: &str,
    domain: &str,
) -> anyhow::Result<(edgeguard_config::Config, String)> {
    let text = format!(
        r#"[node]
name = "{name}"
tier = "{tier}"
listen = ["127.0.0.1:{port}"]
trusted_proxies = ["127.0.0.0/8"]
data_dir = "{dir}"
{admin}

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "5r/s"

[[domain]]
name = "localhost"
{domain}

[domain.cache]
enabled = true
default_ttl = "1m"
"#,
        dir = data_dir.display(),
    );
    let config = edgeguard_config::parse(&text)
        .map_err(|e| anyhow::anyhow!("demo configuration of {name}:\n{e}"))?;
    Ok((config, text))
}

fn print_banner(edge: SocketAddr, parent: SocketAddr, origin: SocketAddr, admin: SocketAddr) {
    let url = format!("http://localhost:{}", edge.port());
    println!(
        r#"edgeguard demo is running (Ctrl-C to stop)
  edge   (L1) {edge}   domain "localhost": IP access limit 10 qps, rate limiting in normal mode,
                                limit_req 5r/s burst=2 nodelay on /api/, cache on
  parent (L2) {parent}
  origin      {origin}
edge: {url}/
console: http://{admin}/console/ (token: {DEMO_TOKEN}); admin API: http://{admin}/api/v1/

Try:
  # a normal fetch (X-Cache: MISS), then the same again from the edge's cache (X-Cache: HIT)
  curl -si {url}/ | head -12
  curl -si {url}/ | grep -i x-cache
  # a burst on /api/ that trips limit_req: 429 once the burst of 2 is used (X-Limit-Req-Status says why)
  for i in $(seq 1 8); do curl -s -o /dev/null -w '%{{http_code}} ' {url}/api/time; done; echo
  # after a second's pause: 11 requests in one second trip the IP access limit (the 11th gets 514)
  sleep 1; for i in $(seq 1 11); do curl -s -o /dev/null -w '%{{http_code}} ' {url}/static.css; done; echo"#
    );
}

async fn origin_loop(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(origin))
                .await;
        });
    }
}

/// The demo origin: a cacheable home page and stylesheet, and an uncacheable clock.
async fn origin(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (body, content_type, cache) = match req.uri().path() {
        "/api/time" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (
                format!("{{\"unix_ms\":{}}}\n", now.as_millis()),
                "application/json",
                "no-store",
            )
        }
        "/static.css" => (
            "body { font-family: sans-serif; }\n".to_owned(),
            "text/css",
            "max-age=3600",
        ),
        _ => (
            "<!doctype html><title>demo origin</title><p>Hello from the demo origin.</p>\n"
                .to_owned(),
            "text/html; charset=utf-8",
            "max-age=60",
        ),
    };
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default();
    Ok(resp)
}
