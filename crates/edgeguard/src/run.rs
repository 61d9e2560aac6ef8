//! `edgeguard run`: a node from a configuration file with its admin listener; SIGHUP reloads the file, SIGUSR1
//! reopens the access log (after rotation), SIGTERM or Ctrl-C stops gracefully.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use edgeguard_proxy::Node;
use tokio::signal::unix::{SignalKind, signal};

use crate::control::NodeControl;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let _log = init_logging();
    let config =
        edgeguard_config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    runtime()?.block_on(async {
        let admin_addr = config.admin.listen;
        let token = config.admin.token.clone();
        let node = Arc::new(
            Node::start(config.clone())
                .await
                .context("cannot start the node")?,
        );
        for addr in node.local_addrs() {
            tracing::info!(%addr, "listening");
        }
        for addr in node.local_tls_addrs() {
            tracing::info!(%addr, "serving HTTPS");
        }
        let cluster = crate::cluster::join(&node, &config)?;
        let control = Arc::new(NodeControl::new(node.clone(), config, path, cluster.clone()));
        if let Some(c) = &cluster {
            c.set_listener(Arc::new(crate::control::Relay(Arc::downgrade(&control))));
        }
        let admin = match edgeguard_admin::start(admin_addr, token, control.clone()).await {
            Ok(admin) => {
                tracing::info!(addr = %admin.local_addr(), "admin API and console listening");
                Some(admin)
            }
            // Several nodes on one machine (an edge and a parent, say) that leave `[admin]` out would all
            // want the default address; the data plane of the second must not fail for that.
            Err(e) if admin_addr == edgeguard_config::defaults::ADMIN_LISTEN => {
                tracing::error!(
                    addr = %admin_addr,
                    error = %e,
                    "admin API not started: the default admin address is taken; set [admin] listen to run it"
                );
                None
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot start the admin listener on {admin_addr}"));
            }
        };

        wait_for_stop(&control).await?;
        tracing::info!("shutting down: finishing requests in flight");
        if let Some(admin) = admin {
            admin.stop().await;
        }
        drop(control);
        if let Some(c) = cluster {
            c.stop();
        }
        match Arc::try_unwrap(node) {
            Ok(node) => node.shutdown().await,
            Err(_) => tracing::warn!("node still referenced at shutdown; stopping without waiting"),
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// Waits for SIGTERM or Ctrl-C, reloading the configuration file on every SIGHUP and reopening the access log
/// on every SIGUSR1 meanwhile.
async fn wait_for_stop(control: &NodeControl) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?;
    loop {
        tokio::select! {
            _ = hup.recv() => control.reload_from_file(),
            _ = usr1.recv() => control.reopen_logs(),
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The async runtime: one worker per CPU this process may use. With a single CPU (a container limit, or
/// `taskset` pinning), a current-thread runtime serves without the work-stealing machinery a one-worker
/// multi-thread runtime still pays for on every wake-up; blocking work (SQLite, file writes) goes to the blocking
/// pool either way.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Lines the log writer holds while stderr is slow; past that, lines are dropped rather than wait.
const LOG_BUFFER_LINES: usize = 16_384;

/// Logging to stderr through a writer thread (`tracing-appender`'s non-blocking writer): a worker never waits
/// for stderr; when the buffer is full, lines are dropped (lossy). Keep the guard for the life of the process:
/// dropping it flushes what is buffered and stops the writer.
pub fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    guard
}
