//! The thresholds of normal and emergency mode's detector ([`crate::anomaly`]): absolute floors, the factor over
//! the learned 99.9th percentile, shares and TTLs. The table and the reasons are in `docs/protection.md`
//! ("Learned baselines"); change both together.

use edgeguard_rules::{Action, Mode};

/// Thresholds of one mode: absolute floors, the factor over the learned 99.9th percentile, shares and TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Thresholds are `factor_pct` percent of the learned 99.9th percentile (never under the floor).
    pub factor_pct: u64,
    pub client_60s_floor: u64,
    pub client_10s_floor: u64,
    pub scanner_404_10s_floor: u64,
    /// Smallest 404 share of a client's responses (percent) that makes it a scanner.
    pub scanner_share_pct: u64,
    pub path_10s_floor: u64,
    /// A path's requests with a query string not seen before, in 10 s, that put it in surge when they are also
    /// at least `unseen_share_pct` percent of its requests.
    pub path_unseen_10s_floor: u64,
    pub unseen_share_pct: u64,
    /// Requests of one client with unseen query strings for a path in a query-string surge that get it
    /// challenged.
    pub query_repeats: u64,
    /// New clients in 10 s (whole domain) over which paths surge at half their threshold.
    pub new_clients_10s_floor: u64,
    /// Requests of one client for one path within 10 s that get it challenged while the path is in surge.
    pub surge_repeats: u64,
    pub login_fail_floor: u64,
    pub login_net_fail_floor: u64,
    pub login_share_pct: u64,
    /// What a client over the login-failure threshold gets: emergency's lower thresholds can be reached by
    /// people behind one NAT address, so there it is a challenge.
    pub stuffing_action: Action,
    pub challenge_ttl_s: u32,
    pub block_ttl_s: u32,
}

impl Limits {
    pub const NORMAL: Limits = Limits {
        factor_pct: 200,
        client_10s_floor: 150,
        client_60s_floor: 450,
        scanner_404_10s_floor: 12,
        scanner_share_pct: 70,
        path_10s_floor: 100,
        path_unseen_10s_floor: 40,
        unseen_share_pct: 50,
        query_repeats: 2,
        new_clients_10s_floor: 100,
        surge_repeats: 4,
        login_fail_floor: 10,
        login_net_fail_floor: 15,
        login_share_pct: 50,
        stuffing_action: Action::Block,
        challenge_ttl_s: 600,
        block_ttl_s: 600,
    };
    pub const EMERGENCY: Limits = Limits {
        factor_pct: 150,
        client_10s_floor: 80,
        client_60s_floor: 240,
        scanner_404_10s_floor: 6,
        scanner_share_pct: 50,
        path_10s_floor: 50,
        path_unseen_10s_floor: 20,
        unseen_share_pct: 40,
        query_repeats: 2,
        new_clients_10s_floor: 50,
        surge_repeats: 3,
        login_fail_floor: 5,
        login_net_fail_floor: 10,
        login_share_pct: 40,
        stuffing_action: Action::BotDetection,
        challenge_ttl_s: 1800,
        block_ttl_s: 1800,
    };

    pub fn of(mode: Mode) -> Limits {
        match mode {
            Mode::Normal => Limits::NORMAL,
            Mode::Emergency => Limits::EMERGENCY,
        }
    }
}
