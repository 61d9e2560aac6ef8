//! Verified crawler address ranges (`[node] good_crawlers`): clients the learned-baseline detector never
//! challenges or blocks. Ranges are merged into sorted, disjoint intervals so a lookup is one binary search
//! however many prefixes the published lists hold (Googlebot's alone has hundreds).

use std::net::IpAddr;

use edgeguard_config::IpNet;

/// Sorted, disjoint address intervals, IPv4 and IPv6 apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlerRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn merge<T: Ord + Copy>(mut v: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if next(last.1).is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn find<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
    let i = v.partition_point(|&(lo, _)| lo <= x);
    i > 0 && v[i - 1].1 >= x
}

impl CrawlerRanges {
    pub fn new(nets: &[IpNet]) -> CrawlerRanges {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n.addr {
                IpAddr::V4(a) => {
                    let host = u32::MAX.checked_shr(u32::from(n.prefix)).unwrap_or(0);
                    let lo = u32::from(a) & !host;
                    v4.push((lo, lo | host));
                }
                IpAddr::V6(a) => {
                    let host = u128::MAX.checked_shr(u32::from(n.prefix)).unwrap_or(0);
                    let lo = u128::from(a) & !host;
                    v6.push((lo, lo | host));
                }
            }
        }
        CrawlerRanges {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u128| x.checked_add(1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 as IPv4) is in a range.
    ///
    /// Hot path: nothing when the list is empty, else one binary search.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.is_empty() {
            return false;
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        let (a, p) = s.split_once('/').unwrap();
        IpNet {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }

    #[test]
    fn ranges_match_like_the_prefixes() {
        let nets = [
            net("66.249.64.0/27"),
            net("66.249.64.32/27"),
            net("10.0.0.0/8"),
            net("10.1.0.0/16"),
            net("2001:4860:4801:10::/64"),
            net("0.0.0.0/0"),
        ];
        let r = CrawlerRanges::new(&nets[..5]);
        let all = CrawlerRanges::new(&nets);
        for ip in [
            "66.249.64.1",
            "66.249.64.63",
            "66.249.64.64",
            "10.255.0.1",
            "11.0.0.0",
            "9.255.255.255",
            "2001:4860:4801:10::1",
            "2001:4860:4801:11::1",
            "::ffff:66.249.64.5",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let want = nets[..5].iter().any(|n| n.contains(ip));
            assert_eq!(r.contains(ip), want, "{ip}");
            assert_eq!(
                all.contains(ip),
                want || ip.to_canonical().is_ipv4(),
                "{ip}"
            );
        }
        assert!(CrawlerRanges::default().is_empty());
    }
}
