//! `edgeguard run`: a node from a configuration file, reloaded on SIGHUP, stopped gracefully on SIGTERM/Ctrl-C.

use std::path::Path;

use anyhow::Context;
use edgeguard_proxy::{Node, RunningNode};
use tokio::signal::unix::{SignalKind, signal};

pub fn run(path: &Path) -> anyhow::Result<()> {
    init_logging();
    let config =
        edgeguard_config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    runtime()?.block_on(async {
        let node = Node::start(config).await.context("cannot start the node")?;
        for addr in node.local_addrs() {
            tracing::info!(%addr, "listening");
        }
        serve_until_stopped(&node, path).await?;
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Waits for SIGTERM or Ctrl-C; on SIGHUP re-reads `path` and swaps it in, keeping the running configuration
/// when the new one is invalid.
pub async fn serve_until_stopped(node: &RunningNode, path: &Path) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(node, path),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    Ok(())
}

fn reload(node: &RunningNode, path: &Path) {
    match edgeguard_config::load(path) {
        Ok(config) => match node.reload(config) {
            Ok(()) => tracing::info!(path = %path.display(), "configuration reloaded"),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "reload refused; keeping the running configuration")
            }
        },
        Err(errors) => {
            for e in &errors {
                tracing::error!(path = %path.display(), line = e.line, key = %e.key, "{}", e.message);
            }
            tracing::error!(path = %path.display(), "invalid configuration; keeping the running one");
        }
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
