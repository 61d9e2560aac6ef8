//! The request view the engine counts with: the data plane's view plus the node's IPv6 prefix, so an `ip`
//! object is a client's network rather than its full address; and a window's counts as the criteria read them.

use std::net::IpAddr;

use edgeguard_limit::window::{StatusSel as WinSel, WindowCounts};
use edgeguard_rules::{Comparison, Criteria, Op, RequestView, StatusSel, Term, WindowView};

/// A request as the protection sees it: the same view, with the node's IPv6 prefix for `ip` objects.
pub(crate) struct Counted6<'a, R> {
    pub(crate) req: &'a R,
    pub(crate) ipv6_prefix: u8,
}

impl<R: RequestView> RequestView for Counted6<'_, R> {
    #[inline]
    fn client_ip(&self) -> IpAddr {
        self.req.client_ip()
    }
    #[inline]
    fn ipv6_prefix(&self) -> u8 {
        self.ipv6_prefix
    }
    #[inline]
    fn host(&self) -> &str {
        self.req.host()
    }
    #[inline]
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.req.header(name)
    }
    #[inline]
    fn query(&self) -> Option<&str> {
        self.req.query()
    }
}

/// A window's counts as the criteria language reads them.
pub(crate) struct View<'a> {
    pub(crate) counts: &'a WindowCounts,
    pub(crate) tracked: &'a [StatusSel],
}

impl WindowView for View<'_> {
    fn requests(&self) -> u64 {
        self.counts.requests
    }
    fn responses(&self) -> u64 {
        self.counts.responses
    }
    fn status(&self, sel: StatusSel) -> u64 {
        self.tracked
            .iter()
            .position(|&t| t == sel)
            .and_then(|i| self.counts.status().get(i).copied())
            .unwrap_or(0)
    }
}

pub(crate) fn win_sel(s: StatusSel) -> WinSel {
    match s {
        StatusSel::Code(c) => WinSel::Code(c),
        StatusSel::Class(k) => WinSel::Class(k),
    }
}

/// The smallest request count at which `criteria` can turn true on its `"count"` comparisons (`"count">100`
/// gives 101), when it has one: the limit a cluster backend paces its sending by.
pub(crate) fn count_threshold(criteria: &Criteria) -> Option<u64> {
    match criteria {
        Criteria::Cmp(Comparison {
            term: Term::Count,
            op,
            value,
        }) => match op {
            Op::Gt => Some(value + 1),
            Op::Ge | Op::Eq => Some(*value),
            _ => None,
        },
        Criteria::Cmp(_) => None,
        Criteria::And(a, b) | Criteria::Or(a, b) => {
            match (count_threshold(a), count_threshold(b)) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            }
        }
    }
}
