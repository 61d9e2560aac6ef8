//! The secret key and the `Challenger` that signs tokens and cookies with it.

use crate::replay::{DEFAULT_REPLAY_CAPACITY, ReplayCache, ReplayStats};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "challenge.key";

/// Life of a clearance cookie unless [`Challenger::with_clearance_ttl`] says otherwise.
pub const DEFAULT_CLEARANCE_TTL: Duration = Duration::from_secs(3600);

/// Shortest and longest clearance life accepted; outside it the value is clamped.
const MIN_CLEARANCE_TTL_S: u64 = 60;
const MAX_CLEARANCE_TTL_S: u64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("challenge key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("challenge key {path}: holds {len} bytes, expected exactly 32 random bytes")]
    BadLength { path: PathBuf, len: u64 },
    #[error("challenge key {path}: mode {mode:o} lets other users read it; chmod 600 it")]
    Permissions { path: PathBuf, mode: u32 },
}

/// Issues and checks challenge tokens and clearance cookies. Cheap to share behind an `Arc`; every method takes
/// `&self` and allocates only for the strings it returns.
///
/// Two keys are derived from the secret, one for tokens and one for cookies, so a value of one kind can never pass
/// as the other. It holds the replay cache that makes each solved token good for one cookie (8 MiB by default,
/// allocated when the challenger is made; see [`Challenger::with_replay_capacity`]).
pub struct Challenger {
    pub(crate) token_mac: HmacSha256,
    pub(crate) cookie_mac: HmacSha256,
    pub(crate) clearance_ttl_s: u64,
    /// Feeds the fallback token nonce when the OS random source fails; shared by clones, so two clones never
    /// derive the same fallback from the same count.
    pub(crate) counter: Arc<AtomicU64>,
    /// Tokens already redeemed; shared by clones, so a token answered at one clone is spent at all of them.
    pub(crate) replay: Arc<ReplayCache>,
}

/// Same keys, same counter, same replay cache: a clone with another clearance TTL (one per domain) accepts and
/// signs exactly what the original does, apart from the cookie's life.
impl Clone for Challenger {
    fn clone(&self) -> Self {
        Challenger {
            token_mac: self.token_mac.clone(),
            cookie_mac: self.cookie_mac.clone(),
            clearance_ttl_s: self.clearance_ttl_s,
            counter: self.counter.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl std::fmt::Debug for Challenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Challenger")
            .field("clearance_ttl_s", &self.clearance_ttl_s)
            .field("replay_capacity", &self.replay.capacity())
            .finish_non_exhaustive()
    }
}

fn derive(key: &[u8; 32], label: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(label);
    let sub = m.finalize().into_bytes();
    HmacSha256::new_from_slice(&sub).expect("HMAC takes keys of any length")
}

impl Challenger {
    pub fn from_key(key: [u8; 32]) -> Challenger {
        Challenger {
            token_mac: derive(&key, b"edgeguard challenge token v1"),
            cookie_mac: derive(&key, b"edgeguard clearance cookie v1"),
            clearance_ttl_s: DEFAULT_CLEARANCE_TTL.as_secs(),
            counter: Arc::new(AtomicU64::new(0)),
            replay: Arc::new(ReplayCache::new(DEFAULT_REPLAY_CAPACITY)),
        }
    }

    /// Reads `dir/challenge.key`, or creates it (mode 0600, 32 bytes from the OS random source) when absent.
    /// Nodes given the same file accept each other's tokens and cookies.
    pub fn load_or_create(dir: &Path) -> Result<Challenger, KeyError> {
        let path = dir.join(KEY_FILE);
        let io_err = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match read_key(&path) {
            Ok(key) => return Ok(Challenger::from_key(key)),
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io_err(io::Error::other(e.to_string())))?;
        // Write a private temporary file and hard-link it into place: the link fails if another process created
        // the key meanwhile, and nobody ever sees a half-written key.
        let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
        let written = write_private(&tmp, &key).and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(Challenger::from_key(key)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                read_key(&path).map(Challenger::from_key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Sets how long a clearance lasts (clamped to 1 minute ..= 7 days). Cookies claiming a longer life than this
    /// are refused, so shortening it takes effect at once.
    pub fn with_clearance_ttl(mut self, ttl: Duration) -> Challenger {
        self.clearance_ttl_s = ttl
            .as_secs()
            .clamp(MIN_CLEARANCE_TTL_S, MAX_CLEARANCE_TTL_S);
        self
    }

    pub fn clearance_ttl(&self) -> Duration {
        Duration::from_secs(self.clearance_ttl_s)
    }

    /// Gives this challenger a new, empty replay cache of at least `slots` entries (8 bytes each; rounded up to a
    /// power of two, clamped to 1,024 ..= 2^30), allocated now. Call it before cloning: clones made earlier keep
    /// the old cache. The cache holds each redeemed token for the rest of its 5-minute life, so `slots` bounds
    /// the solved challenges a node accepts per 5 minutes (busy refusals start at about three quarters full:
    /// docs/challenge.md).
    pub fn with_replay_capacity(mut self, slots: usize) -> Challenger {
        self.replay = Arc::new(ReplayCache::new(slots));
        self
    }

    /// Capacity, occupancy and counters of the replay cache. Walks the whole cache (about 1 ms per 2^20 slots):
    /// call it from a metrics scrape, not per request.
    pub fn replay_stats(&self, now_unix_ms: u64) -> ReplayStats {
        self.replay.stats(now_unix_ms)
    }

    pub(crate) fn fallback_random(&self, now_unix_ms: u64, out: &mut [u8; 16]) {
        let mut m = self.token_mac.clone();
        m.update(b"nonce");
        m.update(&self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        m.update(&now_unix_ms.to_be_bytes());
        out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
}

fn read_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let meta = f.metadata().map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() != 32 {
        return Err(KeyError::BadLength {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut key = [0u8; 32];
    f.read_exact(&mut key).map_err(io_err)?;
    Ok(key)
}

fn write_private(path: &Path, key: &[u8; 32]) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(key)?;
    f.sync_all()
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) count as the IPv4 address they carry.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The address as 16 bytes; IPv4 in its mapped form so the two families never collide.
pub(crate) fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// What a clearance is bound to: the whole IPv4 address, or the /64 of an IPv6 one (privacy addresses rotate
/// inside the /64 a host is given).
pub(crate) fn ip_scope(ip: IpAddr) -> [u8; 16] {
    let mut b = ip_bytes(ip);
    if canonical_ip(ip).is_ipv6() {
        b[8..].fill(0);
    }
    b
}

/// Hosts compare case-insensitively and with or without the root dot.
pub(crate) fn domain_tag(domain: &str) -> [u8; 8] {
    use sha2::Digest;
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let mut h = Sha256::new();
    h.update(b"edgeguard domain\0");
    for chunk in d.as_bytes().chunks(64) {
        let mut lower = [0u8; 64];
        for (o, b) in lower.iter_mut().zip(chunk) {
            *o = b.to_ascii_lowercase();
        }
        h.update(&lower[..chunk.len()]);
    }
    let full = h.finalize();
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&full[..8]);
    tag
}
