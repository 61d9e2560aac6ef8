//! What the node decided about a request ([`Decision`]), for the access log, `edgeguard_decisions_total` and
//! the refusal summaries. A leaf: [`Decision::of`], which reads the request context, lives in `ctx.rs`.

/// What the node decided about a request, for the access log and `edgeguard_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Served (from the cache or an upstream), no limit in the way.
    Pass,
    /// Served after a limit_req delay.
    Delay,
    LimitReq,
    LimitConn,
    /// SPEC section 3 (514).
    IpAccessLimit,
    /// A custom rule's block in force (403).
    Block,
    /// A challenge page was sent.
    Challenge,
    /// The node answered on its own: bad request, unknown host, body too large.
    Refused,
}

pub(crate) const DECISIONS: [Decision; 8] = [
    Decision::Pass,
    Decision::Delay,
    Decision::LimitReq,
    Decision::LimitConn,
    Decision::IpAccessLimit,
    Decision::Block,
    Decision::Challenge,
    Decision::Refused,
];

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Delay => "delay",
            Decision::LimitReq => "limit_req",
            Decision::LimitConn => "limit_conn",
            Decision::IpAccessLimit => "ip_access_limit",
            Decision::Block => "block",
            Decision::Challenge => "challenge",
            Decision::Refused => "refused",
        }
    }

    pub(crate) fn index(self) -> usize {
        DECISIONS.iter().position(|&d| d == self).unwrap_or(0)
    }
}
