//! Where a limit or rule counts: on one node, or across the cluster (SPEC section 9.5).

/// Where a limit counts: on this node only, or across every node of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    Node,
    Cluster,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, String> {
        match s {
            "node" => Ok(Scope::Node),
            "cluster" => Ok(Scope::Cluster),
            other => Err(format!("expected \"node\" or \"cluster\", found {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::Cluster => "cluster",
        }
    }
}
