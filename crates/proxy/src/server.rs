//! Listeners and connections: one accept loop per `node.listen` and `node.listen_tls` address, each connection
//! served by hyper-util's auto builder (HTTP/1.1 with keep-alive and pipelining, or HTTP/2: with prior
//! knowledge on plain ports, told apart by the connection preface, and by ALPN over TLS), graceful shutdown
//! through hyper-util's watcher. A TLS connection is handshaken first (within `header_timeout`, see `tls.rs`)
//! and then served by the same builder and pipeline as a plain one.

mod console;
pub(crate) mod parents;
pub(crate) mod purge;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use edgeguard_config::Config;
use edgeguard_limit::{Clock, MonotonicClock};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::client::canonical;
use crate::ctx::{ConnInfo, Epoch};
use crate::error::ProxyError;
use crate::pipeline;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::tls::SniResolver;
use edgeguard_protect::summary::{self, Summaries};
use edgeguard_protect::{FLUSH_EVERY, NodeProtection, StartChallengeError};
use edgeguard_store::{ActivityLog, BlockRecord, Recommendation, StoreError, TrafficStats};

/// How long [`RunningNode::shutdown`] lets requests in flight finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Entry point: builds the runtime state from a configuration and serves it.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Binds every `node.listen` address (port 0 picks a free port) and serves until shut down. Limits read
    /// time from the machine's monotonic clock.
    pub async fn start(config: Config) -> Result<RunningNode, ProxyError> {
        Self::start_with_clock(config, Arc::new(MonotonicClock)).await
    }

    /// As [`Node::start`], with the limiters reading `clock` (tests drive a `FakeClock`). Delays ordered by
    /// limit_req still wait in real time.
    pub async fn start_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningNode, ProxyError> {
        if config.node.listen.is_empty() && config.node.listen_tls.is_empty() {
            return Err(ProxyError::NoListener);
        }
        let resolver = Arc::new(SniResolver {
            certs: ArcSwap::from_pointee(crate::tls::load_certs(&config)?),
        });
        let acceptor = TlsAcceptor::from(crate::tls::server_config(resolver.clone())?);
        let protection =
            Arc::new(NodeProtection::open(&config, clock.clone()).map_err(ProxyError::Protection)?);
        let mut runtime =
            Runtime::build(&config, None, protection.summaries(), protection.cluster())?;
        runtime.protect = protection
            .guards(&config, None)
            .map_err(ProxyError::Guard)?;
        let mut listeners = Vec::new();
        let (mut addrs, mut tls_addrs) = (Vec::new(), Vec::new());
        let all = config.node.listen.iter().map(|a| (a, false));
        for (&addr, tls) in all.chain(config.node.listen_tls.iter().map(|a| (a, true))) {
            let bind = |source| ProxyError::Bind { addr, source };
            let listener = TcpListener::bind(addr).await.map_err(bind)?;
            let bound = listener.local_addr().map_err(bind)?;
            if tls {
                tls_addrs.push(bound);
            } else {
                addrs.push(bound);
            }
            listeners.push((listener, tls.then(|| acceptor.clone())));
        }
        // Where https_redirect sends plain-HTTP clients: the first TLS port actually bound.
        runtime.https_port = tls_addrs.first().map(|a| a.port());
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            epoch: Epoch::new(&*clock),
            clock,
            stats: Default::default(),
            access_log: Default::default(),
            summaries: protection.summaries().clone(),
            edge_counts: OnceLock::new(),
        });
        shared.access_log.configure(
            config.node.access_log.as_deref(),
            config.node.access_log_format,
        )?;
        let health = crate::health::spawn(shared.clone());
        let summaries = spawn_summaries(shared.summaries.clone());
        let (stop, stop_rx) = watch::channel(None);
        let tasks = listeners
            .into_iter()
            .map(|(l, tls)| tokio::spawn(accept_loop(l, tls, shared.clone(), stop_rx.clone())))
            .collect();
        tracing::info!(?addrs, ?tls_addrs, node = %config.node.name, "edgeguard node serving");
        Ok(RunningNode {
            addrs,
            tls_addrs,
            resolver,
            shared,
            stop,
            tasks,
            reload_lock: Mutex::new(()),
            health,
            protect_task: spawn_protection(&protection),
            summaries,
            protection,
        })
    }
}

/// A serving node. Dropping it stops the listeners without waiting (use [`RunningNode::shutdown`] to wait).
pub struct RunningNode {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    /// The certificates TLS handshakes pick from; swapped whole by a reload.
    resolver: Arc<SniResolver>,
    shared: Arc<Shared>,
    stop: watch::Sender<Option<Duration>>,
    tasks: Vec<JoinHandle<()>>,
    reload_lock: Mutex<()>,
    /// Store, statistics, challenger and blocks in force; `protect_task` flushes and sweeps them.
    protection: Arc<NodeProtection>,
    protect_task: JoinHandle<()>,
    /// Active upstream health checks.
    health: JoinHandle<()>,
    /// Writes the refusal summaries every [`summary::PERIOD`].
    summaries: JoinHandle<()>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("addrs", &self.addrs)
            .field("tls_addrs", &self.tls_addrs)
            .finish_non_exhaustive()
    }
}

impl RunningNode {
    /// The bound addresses, in `node.listen` order (with real ports where 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound HTTPS addresses, in `node.listen_tls` order (with real ports where 0 was asked).
    pub fn local_tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Applies `config` to every request that starts after this returns. Zones whose name, key, rate and size
    /// are unchanged keep their counters. On error the running configuration stays in force. Listen addresses
    /// are not changed by a reload (a new `node.listen` needs a restart). Certificates are read again: new
    /// handshakes use the new ones, open connections keep theirs; one that cannot be served refuses the
    /// whole reload.
    pub fn reload(&self, config: Config) -> Result<(), ProxyError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.shared.runtime.load_full();
        let mut next = Runtime::build(
            &config,
            Some(&current),
            self.protection.summaries(),
            self.protection.cluster(),
        )?;
        next.https_port = current.https_port;
        let certs = crate::tls::load_certs(&config)?;
        next.protect = self
            .protection
            .guards(&config, Some(&current.protect))
            .map_err(ProxyError::Guard)?;
        // Also the log rotation point: an unchanged access log reopens its file.
        self.shared.access_log.configure(
            config.node.access_log.as_deref(),
            config.node.access_log_format,
        )?;
        self.shared.runtime.store(Arc::new(next));
        self.resolver.certs.store(Arc::new(certs));
        tracing::info!(node = %config.node.name, "configuration reloaded");
        Ok(())
    }

    /// Reopens the access log file (after log rotation), within about a second.
    pub fn reopen_logs(&self) {
        self.shared.access_log.reopen();
    }

    /// The node's metrics in the Prometheus text format: requests by domain and status class, decisions,
    /// limit zone capacity and use, upstream health, cache counters per domain, request latency.
    pub fn metrics_text(&self) -> String {
        let rt = self.shared.runtime.load();
        let mut out = crate::metrics::render(&rt, &self.shared.stats, &self.shared.access_log);
        if let Some(ep) = self.shared.edge_counts.get() {
            out.push_str(&ep.metrics());
        }
        out
    }

    /// Makes this node answer its edges' counts at [`crate::COUNTS_PATH`] (a parent, tiered counting); the
    /// first call wins.
    pub fn set_edge_counts(&self, counts: Arc<dyn crate::EdgeCounts>) {
        let _ = self
            .shared
            .edge_counts
            .set(crate::counts::CountsEndpoint::new(counts));
    }

    /// The way to this node's parents (an edge's tiered counting).
    pub fn parent_client(&self) -> crate::ParentClient {
        crate::ParentClient {
            shared: self.shared.clone(),
        }
    }

    /// Capacity, use, evictions and admission refusals of each protection table of `domain` (the IP access
    /// limit's, then each rule's); `None` when the node does not serve it.
    pub fn protection_tables(&self, domain: &str) -> Option<Vec<edgeguard_protect::TableStats>> {
        let rt = self.shared.runtime.load();
        rt.protect
            .get(&domain.to_ascii_lowercase())
            .map(|g| g.table_stats())
    }

    /// What normal or emergency mode learned of `domain`, with the thresholds in force and the detector's
    /// flags (`None`: the domain runs neither).
    pub fn baseline(&self, domain: &str) -> Option<edgeguard_protect::DetectorReport> {
        let rt = self.shared.runtime.load();
        let now = rt.protect.node().map_or(0, |n| n.now_ms());
        rt.protect
            .get(&domain.to_ascii_lowercase())
            .and_then(|g| g.detector().map(|d| d.report(now)))
    }

    /// Runs one round of upstream health checks now (they also run in the background every `interval`):
    /// each probe counts towards the domain's `fails` (down) or `passes` (up) run of probes in a row.
    pub async fn check_upstreams(&self) {
        crate::health::check_all(&self.shared).await;
    }

    /// Stops accepting, lets requests in flight finish for up to [`DEFAULT_SHUTDOWN_GRACE`], then cuts the rest.
    pub async fn shutdown(self) {
        self.shutdown_within(DEFAULT_SHUTDOWN_GRACE).await
    }

    /// As [`RunningNode::shutdown`] with a chosen grace period.
    pub async fn shutdown_within(mut self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.health.abort();
        self.summaries.abort();
        // What was refused since the last summary is not lost at a stop.
        self.shared.summaries.write(summary::PERIOD.as_secs());
        self.shared.access_log.close();
        // Objects stored just before the stop reach the caches' disk tiers.
        let caches: Vec<_> = (self.shared.runtime.load().domains.values())
            .filter_map(|d| d.cache.clone())
            .collect();
        let _ =
            tokio::task::spawn_blocking(move || caches.iter().for_each(|c| c.flush_disk())).await;
        self.protect_task.abort();
        let protection = self.protection.clone();
        let _ = tokio::task::spawn_blocking(move || protection.close()).await;
    }

    /// The node's protection services (store, blocks, challenger), for a cluster backend to join.
    pub fn protection(&self) -> &Arc<NodeProtection> {
        &self.protection
    }

    /// Blocks and challenges in force now, on every domain (unexpired; Unix milliseconds in `until_ms`).
    pub fn blocks_in_force(&self) -> Vec<BlockRecord> {
        self.protection.blocks_in_force()
    }

    /// Lifts a block or challenge before its TTL, here and in the store; `object_type` as listed (`ip`,
    /// `header:NAME`, `domain`, `param:NAME`). Returns whether one was in force.
    pub fn lift_block(&self, domain: &str, object_type: &str, object_value: &str) -> bool {
        self.protection.lift(domain, object_type, object_value)
    }

    /// The node's activity log (rule triggers, challenge passes), in `data_dir/edgeguard.db`.
    pub fn activity_log(&self) -> &ActivityLog {
        self.protection.activity_log()
    }

    /// The node's five-minute traffic statistics.
    pub fn traffic_stats(&self) -> &TrafficStats {
        self.protection.traffic_stats()
    }

    /// The IP access limit recommended for `domain` from this node's statistics (SPEC section 3). Disk I/O.
    pub fn recommended_qps(&self, domain: &str) -> Result<Recommendation, StoreError> {
        self.protection.recommend(domain)
    }

    /// Starts a timed challenge of the whole `domain` (`path` absent) or of a path prefix for `ttl`, as an
    /// operator's action: every request there without a valid clearance gets the challenge page until it ends
    /// or is lifted ([`RunningNode::lift_block`] with the listed object type, `domain` or `prefix:/path`).
    /// Listed with the blocks, stored across restarts, written to the activity log.
    pub fn start_challenge(
        &self,
        domain: &str,
        ttl: Duration,
        path: Option<&str>,
    ) -> Result<BlockRecord, StartChallengeError> {
        let name = domain.to_ascii_lowercase();
        if self.shared.runtime.load().protect.get(&name).is_none() {
            return Err(StartChallengeError::UnknownDomain(domain.to_owned()));
        }
        self.protection.start_challenge(&name, ttl, path)
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            let _ = self.stop.send(Some(Duration::ZERO));
        }
        self.health.abort();
        self.summaries.abort();
        self.protect_task.abort();
    }
}

fn server_builder(rt: &Runtime) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // hyper starts this timer whenever it waits for a request head, idle keep-alive included, so it is
        // both the slow-header limit and the idle limit.
        .header_read_timeout(rt.header_timeout.min(rt.keepalive_timeout))
        // hyper's smallest buffer is 8 KiB; a head that does not fit gets 431.
        .max_buf_size(rt.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        // A peer that stops answering pings within keepalive_timeout is gone: the connection is closed.
        .keep_alive_interval(rt.keepalive_timeout)
        .keep_alive_timeout(rt.header_timeout)
        // `http2_max_streams`, default 128 as nginx's http2_max_concurrent_streams.
        .max_concurrent_streams(rt.http2_max_streams)
        // Rapid reset (CVE-2023-44487): streams the client opens and resets before they are served, and
        // streams we had to reset for its errors, beyond these counts end the connection with GOAWAY.
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        // CONTINUATION flood: h2 refuses a header block over this size as it arrives, not after.
        .max_header_list_size(u32::try_from(rt.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// Client-reset streams not yet accepted that an HTTP/2 connection may hold (h2's default is 20).
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams reset for the client's protocol errors before the connection is closed (h2's default: 1024).
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let rt = shared.runtime.load();
                    let admitted = shared.stats.clients.admit(
                        canonical(peer.ip()),
                        rt.max_connections,
                        rt.max_connections_per_ip,
                    );
                    // Past max_connections or max_connections_per_ip: closed before a byte is read.
                    let Some(slot) = admitted else {
                        tracing::debug!(%peer, "connection refused by max_connections(_per_ip)");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let stop = stop.clone();
                    match &tls {
                        None => conns.spawn(async move {
                            let _slot = slot;
                            serve(stream, peer, false, shared, stop).await
                        }),
                        Some(tls) => {
                            let tls = tls.clone();
                            conns.spawn(async move {
                                let _slot = slot;
                                serve_tls(tls, stream, peer, shared, stop).await
                            })
                        }
                    };
                }
                Err(e) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = stop.borrow().unwrap_or(Duration::ZERO);
    // Every connection saw the stop and is closing gracefully (`serve`); past the grace the rest are cut.
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            open = conns.len(),
            "shutdown grace period over, closing connections"
        );
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// The TLS handshake, bounded by `header_timeout` (a client that opens connections and never finishes the
/// handshake holds no more than a slow header would), then the connection as a plain one.
async fn serve_tls(
    tls: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<Option<Duration>>,
) {
    let timeout = shared.runtime.load().header_timeout;
    match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve(stream, peer, true, shared, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not finished within header_timeout"),
    }
}

/// One connection until it ends: closed gracefully (GOAWAY for HTTP/2, `Connection: close` for HTTP/1.1) when
/// the node stops or when an HTTP/2 connection has had no open stream for `http2_idle_timeout`.
async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer_ip = canonical(peer.ip());
    let activity = Arc::new(crate::client_conns::Activity::default());
    let conn = Arc::new(ConnInfo {
        peer_ip,
        peer_text: Bytes::from(peer_ip.to_string()),
        https,
        activity: activity.clone(),
    });
    let rt = shared.runtime.load_full();
    let builder = server_builder(&rt);
    let idle_limit = rt.http2_idle_timeout;
    drop(rt);
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let conn = conn.clone();
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(pipeline::handle(req, conn, shared).await) }
    });
    // With upgrades, so a 101 from an upstream (WebSocket, `upgrade.rs`) can take the connection over.
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle_ms = u64::try_from(idle_limit.as_millis()).unwrap_or(u64::MAX);
    let mut closing = false;
    let mut next_look = tokio::time::Instant::now() + idle_limit;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(next_look), if !closing => {
                match activity.idle_for_ms() {
                    Some(idle) if idle >= idle_ms => {
                        tracing::debug!(%peer, "HTTP/2 connection idle for http2_idle_timeout, closing");
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Some(idle) => {
                        next_look = tokio::time::Instant::now() + Duration::from_millis(idle_ms - idle);
                    }
                    None => next_look = tokio::time::Instant::now() + idle_limit,
                }
            }
        }
    }
}

/// Writes the refusal summaries (one line per zone, rule or limit that refused something) every
/// [`summary::PERIOD`], until aborted. The first tick is skipped: nothing has been counted yet.
fn spawn_summaries(summaries: Arc<Summaries>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(summary::PERIOD);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            summaries.write(summary::PERIOD.as_secs());
        }
    })
}

/// Runs the protection engine's periodic step ([`NodeProtection::tick`]: statistics flush, block sweep,
/// recommendations, pruning) every [`FLUSH_EVERY`] on a blocking thread, until aborted.
fn spawn_protection(node: &Arc<NodeProtection>) -> tokio::task::JoinHandle<()> {
    let me = node.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0u64;
        loop {
            every.tick().await;
            let p = me.clone();
            let _ = tokio::task::spawn_blocking(move || p.tick(round)).await;
            round += 1;
        }
    })
}
