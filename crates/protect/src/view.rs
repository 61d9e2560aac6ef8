//! The request view the engine counts with: the data plane's view plus the node's IPv6 prefix, so an `ip`
//! object is a client's network rather than its full address.

use std::net::IpAddr;

use edgeguard_rules::RequestView;

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
