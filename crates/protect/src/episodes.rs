//! Attack episodes for the evaluation ([`crate::evaluate`]), generated from a seed and woven into legitimate
//! traffic on their own clock: a scanner, a single-address flood, a distributed flood on one URL, a flood with
//! random query strings, credential stuffing (one address or one /24). Also a synthetic legitimate audience
//! (browsers loading pages with their assets, shared NAT addresses, a polite crawler, a monitor, people who
//! mistype their password) for tests that cannot ship a real log.
//!
//! Addresses of attackers are drawn outside the legitimate clients' /24s, so a refusal is never ambiguous.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// A deterministic generator (xorshift64*): the same seed gives the same episodes on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }
}

/// The kinds of attack the evaluation weaves in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttackKind {
    Scanner,
    SingleFlood,
    UrlFlood,
    QueryFlood,
    Stuffing,
}

impl AttackKind {
    pub const ALL: [AttackKind; 5] = [
        AttackKind::Scanner,
        AttackKind::SingleFlood,
        AttackKind::UrlFlood,
        AttackKind::QueryFlood,
        AttackKind::Stuffing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Scanner => "scanner",
            AttackKind::SingleFlood => "single-ip flood",
            AttackKind::UrlFlood => "distributed flood, one URL",
            AttackKind::QueryFlood => "random-query-string flood",
            AttackKind::Stuffing => "credential stuffing",
        }
    }
}

/// One request of the evaluated traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalLine {
    pub time_ms: i64,
    pub client: IpAddr,
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// Index of the attack episode the line belongs to; `None` for legitimate traffic.
    pub episode: Option<usize>,
}

/// One generated attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub kind: AttackKind,
    pub start_ms: i64,
    pub end_ms: i64,
    pub clients: usize,
    pub requests: usize,
}

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

fn net24(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a) >> 8,
        IpAddr::V6(_) => u32::MAX,
    }
}

/// Random public-looking IPv4 /24s not used by legitimate clients nor by earlier attackers.
struct Addresses {
    taken: HashSet<u32>,
}

impl Addresses {
    fn net(&mut self, rng: &mut Rng) -> u32 {
        loop {
            // 11.0.0.0 to 223.255.255.0: away from 0/8 and 10/8, below multicast.
            let n = rng.range(11 << 16, (223 << 16) | 0xFFFF) as u32;
            if self.taken.insert(n) {
                return n;
            }
        }
    }

    fn ip(&mut self, rng: &mut Rng) -> IpAddr {
        let n = self.net(rng);
        v4((n << 8) | rng.range(1, 254) as u32)
    }
}

const SCAN_PATHS: [&str; 8] = [
    "/wp-admin/",
    "/phpmyadmin/",
    "/.env",
    "/backup",
    "/admin.php",
    "/cgi-bin/",
    "/.git/",
    "/config",
];

/// `count` episodes per kind (each kind in turn), spread over `[start_ms, end_ms)` of the legitimate traffic
/// so they never overlap, returned sorted by time with the episodes they belong to. `popular` are paths the
/// legitimate traffic requests (the floods aim at them), `legit` its clients.
pub fn generate(
    seed: u64,
    count: usize,
    start_ms: i64,
    end_ms: i64,
    popular: &[String],
    legit: &HashSet<IpAddr>,
) -> (Vec<EvalLine>, Vec<Episode>) {
    let mut rng = Rng::new(seed);
    let mut addrs = Addresses {
        taken: legit.iter().map(|&ip| net24(ip)).collect(),
    };
    let kinds: Vec<AttackKind> = (0..count).flat_map(|_| AttackKind::ALL).collect();
    let slot = (end_ms - start_ms).max(1) / kinds.len().max(1) as i64;
    let mut lines = Vec::new();
    let mut episodes = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        // Somewhere in the first half of its slot, so it ends before the next one starts.
        let start = start_ms + slot * i as i64 + rng.range(0, (slot / 2).max(1) as u64) as i64;
        let before = lines.len();
        let target = if popular.is_empty() {
            "/".to_owned()
        } else {
            popular[rng.range(0, popular.len() as u64 - 1) as usize].clone()
        };
        let push =
            |lines: &mut Vec<EvalLine>, t: i64, ip: IpAddr, method: &str, uri: String, status| {
                lines.push(EvalLine {
                    time_ms: t,
                    client: ip,
                    method: method.to_owned(),
                    uri,
                    status,
                    episode: Some(i),
                })
            };
        let (clients, end) = match kind {
            AttackKind::Scanner => {
                let ip = addrs.ip(&mut rng);
                let rate = rng.range(3, 10);
                let secs = rng.range(60, 180);
                for k in 0..rate * secs {
                    let t = start + (k * 1000 / rate) as i64;
                    let base = SCAN_PATHS[rng.range(0, 7) as usize];
                    let status = if rng.chance(4) { 200 } else { 404 };
                    push(
                        &mut lines,
                        t,
                        ip,
                        "GET",
                        format!("{base}{:x}.php", rng.next_u64() % 65_536),
                        status,
                    );
                }
                (1, start + secs as i64 * 1000)
            }
            AttackKind::SingleFlood => {
                let ip = addrs.ip(&mut rng);
                let rate = rng.range(30, 150);
                let secs = rng.range(60, 180);
                for k in 0..rate * secs {
                    let t = start + (k * 1000 / rate) as i64;
                    let uri = popular.get(rng.range(0, popular.len().max(1) as u64 - 1) as usize);
                    push(
                        &mut lines,
                        t,
                        ip,
                        "GET",
                        uri.cloned().unwrap_or_else(|| "/".into()),
                        200,
                    );
                }
                (1, start + secs as i64 * 1000)
            }
            AttackKind::UrlFlood | AttackKind::QueryFlood => {
                let bots = rng.range(100, 400) as usize;
                let ips: Vec<IpAddr> = (0..bots).map(|_| addrs.ip(&mut rng)).collect();
                let secs = rng.range(60, 180) as i64;
                for ip in &ips {
                    // Each bot at 1-3 r/s with its own phase.
                    let gap = 1000 / rng.range(1, 3) as i64;
                    let mut t = start + rng.range(0, 999) as i64;
                    while t < start + secs * 1000 {
                        let uri = match kind {
                            AttackKind::QueryFlood => {
                                format!("{target}?{:x}={:x}", rng.next_u64() % 4096, rng.next_u64())
                            }
                            _ => target.clone(),
                        };
                        push(&mut lines, t, *ip, "GET", uri, 200);
                        t += gap;
                    }
                }
                (bots, start + secs * 1000)
            }
            AttackKind::Stuffing => {
                let net = addrs.net(&mut rng);
                let one = rng.chance(50);
                let ips: Vec<IpAddr> = if one {
                    vec![v4((net << 8) | 7)]
                } else {
                    (1..=20).map(|h| v4((net << 8) | h)).collect()
                };
                let path = ["/wp-login.php", "/login", "/user/signin", "/api/auth/token"]
                    [rng.range(0, 3) as usize];
                let secs = rng.range(180, 420) as i64;
                let gap = 1000 / rng.range(1, 3) as i64;
                let mut t = start;
                while t < start + secs * 1000 {
                    let ip = ips[rng.range(0, ips.len() as u64 - 1) as usize];
                    let status = if rng.chance(3) { 302 } else { 401 };
                    push(&mut lines, t, ip, "POST", path.to_owned(), status);
                    t += gap;
                }
                (ips.len(), start + secs * 1000)
            }
        };
        episodes.push(Episode {
            kind,
            start_ms: start,
            end_ms: end,
            clients,
            requests: lines.len() - before,
        });
    }
    lines.sort_by_key(|l| l.time_ms);
    (lines, episodes)
}

/// Merges two time-sorted streams.
pub fn weave(legit: Vec<EvalLine>, attacks: Vec<EvalLine>) -> Vec<EvalLine> {
    let mut out = Vec::with_capacity(legit.len() + attacks.len());
    let (mut a, mut b) = (legit.into_iter().peekable(), attacks.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.time_ms <= y.time_ms,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

/// A synthetic legitimate audience over `hours` hours from `start_ms`: see the module comment.
pub fn synthetic_legit(seed: u64, start_ms: i64, hours: i64) -> Vec<EvalLine> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let mut out = Vec::new();
    let end = start_ms + hours * 3_600_000;
    let pages: Vec<String> = (0..40).map(|i| format!("/articles/{i}/")).collect();
    let line =
        |out: &mut Vec<EvalLine>, t: i64, ip: IpAddr, method: &str, uri: String, status: u16| {
            out.push(EvalLine {
                time_ms: t,
                client: ip,
                method: method.to_owned(),
                uri,
                status,
                episode: None,
            })
        };
    // Visitors: a session every few seconds, 1-8 pages each with 5-60 assets fetched within 2 s; some pages
    // miss an asset (404). A tenth of visitors sit behind a few shared NAT addresses.
    let nats: Vec<IpAddr> = (0..5).map(|i| v4(0x2D00_0000 | (i << 8) | 1)).collect();
    let mut t = start_ms;
    let mut n = 0u32;
    while t < end {
        n += 1;
        let ip = if rng.chance(10) {
            nats[rng.range(0, 4) as usize]
        } else {
            v4(0x1E00_0000 | (n % 0x00FF_FFFF))
        };
        let mut at = t;
        for _ in 0..rng.range(1, 8) {
            let page = &pages[rng.range(0, 39) as usize];
            line(&mut out, at, ip, "GET", page.clone(), 200);
            for a in 0..rng.range(5, 60) {
                let status = if rng.chance(2) { 404 } else { 200 };
                let dt = rng.range(20, 2000) as i64;
                line(
                    &mut out,
                    at + dt,
                    ip,
                    "GET",
                    format!("{page}asset{a}.png"),
                    status,
                );
            }
            at += rng.range(5_000, 60_000) as i64;
        }
        if rng.chance(5) {
            // Mistyped password, then in.
            for k in 0..rng.range(1, 3) {
                line(
                    &mut out,
                    at + k as i64 * 4000,
                    ip,
                    "POST",
                    "/login".into(),
                    401,
                );
            }
            line(&mut out, at + 15_000, ip, "POST", "/login".into(), 302);
        }
        t += rng.range(500, 6_000) as i64;
    }
    // A polite crawler at 1 r/s with a stale sitemap (10% 404), and a monitor every 10 s.
    let crawler = v4(0x4237_4001);
    let monitor = v4(0x0808_0808);
    let mut t = start_ms;
    while t < end {
        let status = if rng.chance(10) { 404 } else { 200 };
        line(
            &mut out,
            t,
            crawler,
            "GET",
            format!("/archive/{}", rng.range(0, 9999)),
            status,
        );
        if (t - start_ms) % 10_000 < 1000 {
            line(&mut out, t, monitor, "GET", "/health".into(), 200);
        }
        t += 1000;
    }
    out.sort_by_key(|l| l.time_ms);
    out
}
