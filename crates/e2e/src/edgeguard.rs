//! The edgeguard side of a row: a node started in-process from the row's TOML (through the same parser as
//! the binary), with `explain = true` so its responses carry `X-Limit-Req-Status` / `X-Limit-Conn-Status`.

use std::net::SocketAddr;
use std::time::Duration;

use edgeguard_proxy::{Node, RunningNode};

use crate::HarnessError;
use crate::scenario::Scenario;
use crate::script::{Outcome, Step, Target, run_script};

/// Requests still open after the script (none, normally) get this long at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// An edgeguard node serving one scenario, with its data directory under a temporary directory.
pub struct Edgeguard {
    node: RunningNode,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Edgeguard {
    /// Renders `scenario` as TOML, parses it with `edgeguard_config::parse` and starts a node on
    /// 127.0.0.1:0 forwarding to `origin`.
    pub async fn start(scenario: &Scenario, origin: SocketAddr) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("edgeguard-e2e-node-")
            .tempdir()
            .map_err(HarnessError::Io)?;
        let text = scenario.edgeguard_toml(origin, dir.path());
        let config = edgeguard_config::parse(&text).map_err(|errors| {
            HarnessError::Edgeguard(format!("configuration rejected: {errors}\n{text}"))
        })?;
        let node = Node::start(config)
            .await
            .map_err(|e| HarnessError::Edgeguard(format!("node did not start: {e}")))?;
        let addr = *node
            .local_addrs()
            .first()
            .ok_or_else(|| HarnessError::Edgeguard("node has no listener".into()))?;
        Ok(Self {
            node,
            addr,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> Target {
        Target {
            name: "edgeguard",
            addr: self.addr,
            lr_header: "X-Limit-Req-Status",
            lc_header: "X-Limit-Conn-Status",
        }
    }

    pub async fn shutdown(self) {
        self.node.shutdown_within(SHUTDOWN_GRACE).await;
    }
}

/// Starts edgeguard for `scenario` in front of `origin`, runs `steps` against it and shuts it down.
pub async fn run(
    scenario: &Scenario,
    steps: &[Step],
    origin: SocketAddr,
) -> Result<Vec<Outcome>, HarnessError> {
    let node = Edgeguard::start(scenario, origin).await?;
    let out = run_script(node.target(), steps).await;
    node.shutdown().await;
    Ok(out)
}
