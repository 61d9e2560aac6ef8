//! Redis: one multiplexed connection to a single instance, or a Redis Cluster connection from seed nodes, and
//! the server-side scripts. Every write is idempotent (max-merge of per-node cumulative counts, events numbered
//! by Redis itself), so a round that timed out can be sent again without counting anything twice.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

/// A connection to a single instance or to a Redis Cluster; cheap to clone (both are multiplexed).
#[derive(Clone)]
pub enum Conn {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The CA certificates of `rediss://` URLs (`ca`, PEM), for the client library.
fn certs(ca: Option<Vec<u8>>) -> Option<redis::TlsCertificates> {
    ca.map(|pem| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// Connects within `timeout`: one URL is a single instance, several are the seed nodes of a Redis Cluster.
/// `rediss://` URLs speak TLS (rustls), verified with the CA certificates `ca` (PEM), else the system's.
/// The `run_id` field of an `INFO server` reply.
pub fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub async fn connect(
    urls: &[String],
    ca: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Conn, String> {
    let tls = urls.iter().any(|u| u.starts_with("rediss://"));
    let certs = if tls { certs(ca) } else { None };
    let attempt = async {
        if let [url] = urls {
            let client = match certs {
                Some(c) => redis::Client::build_with_tls(url.as_str(), c),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(|e| e.to_string())?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Conn::One)
                .map_err(|e| e.to_string())
        } else {
            let mut builder =
                redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
            if let Some(c) = certs {
                builder = builder.certs(c);
            }
            let client = builder.build().map_err(|e| e.to_string())?;
            client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|e| e.to_string())
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no connection within {} ms", timeout.as_millis()))?
}

/// For each key, max-merges this node's cumulative counts of the current and the previous window into the
/// key's hash (one field per window and node, `<window index>:<node>`), moves the hash's expiry to the end of
/// the current window's use, drops the fields of older windows, and returns the other nodes' totals of both
/// windows and the number of nodes counting in the current one. One hash per key, read once (`HGETALL`) and
/// written at most once: a key costs Redis two or three commands. One call carries many keys on a single
/// instance; in a Redis Cluster a call carries one key (its hash tag is the whole key, so it lives in one slot).
///
/// KEYS: one per key. ARGV: node, then per key its window index, own count (current), own count (previous)
/// and the hash's expiry (Unix ms). Returns one string, per key `others others_prev nodes` (numbers separated
/// by spaces): one reply to parse instead of three per key.
pub static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local me = ARGV[1]
local out = {}
for i = 1, #KEYS do
  local k, a = KEYS[i], 4 * i - 2
  local win = tonumber(ARGV[a])
  local own, own_prev = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local t = redis.call('HGETALL', k)
  local c, p, nodes, mine, mine_prev = 0, 0, 0, 0, 0
  local stale = {}
  for j = 1, #t, 2 do
    local f = t[j]
    local at = string.find(f, ':', 1, true)
    local w = tonumber(string.sub(f, 1, at - 1))
    local v = tonumber(t[j + 1])
    local ours = string.sub(f, at + 1) == me
    if w == win then
      nodes = nodes + 1
      if ours then mine = v else c = c + v end
    elseif w == win - 1 then
      if ours then mine_prev = v else p = p + v end
    elseif w < win - 1 then
      stale[#stale + 1] = f
    end
  end
  local set = {}
  if own > mine then
    set[#set + 1] = ARGV[a] .. ':' .. me
    set[#set + 1] = own
  end
  if own_prev > mine_prev then
    set[#set + 1] = string.format('%d:', win - 1) .. me
    set[#set + 1] = own_prev
  end
  local first = own > mine and mine == 0
  if first then nodes = nodes + 1 end
  if #set > 0 then
    redis.call('HSET', k, unpack(set))
    -- A new hash gets its expiry; at this node's first count of a window the hash lives on until that
    -- window is read as the previous one. GT never shortens it (a node behind in time).
    if #t == 0 then redis.call('PEXPIREAT', k, ARGV[a + 3])
    elseif first then redis.call('PEXPIREAT', k, ARGV[a + 3], 'GT') end
  end
  if #stale > 0 then redis.call('HDEL', k, unpack(stale)) end
  out[#out + 1] = string.format('%d %d %d', c, p, nodes)
end
return table.concat(out, ' ')
",
    )
});

/// Appends an event (a block, a lift, a purge) under its own key with an expiry, numbered by Redis: the number
/// orders the events log (a sorted set) that every node reads from where it left off.
///
/// KEYS: the event's key, the log, the sequence. ARGV: payload, expiry (Unix ms).
pub static EVENT_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], v .. ' ' .. ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], v, KEYS[1])
return v
",
    )
});

/// The events numbered after ARGV[1] still alive, as `[key, number, payload, ...]` (at most 500 per call); the log's
/// entries whose key expired are dropped on the way.
///
/// KEYS: the log. ARGV: the last number read.
pub static EVENTS_SINCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 500)
local out = {}
for i = 1, #r, 2 do
  local v = redis.call('GET', r[i])
  if v then
    table.insert(out, r[i])
    table.insert(out, r[i + 1])
    table.insert(out, v)
  else
    redis.call('ZREM', KEYS[1], r[i])
  end
end
return out
",
    )
});

/// Publishes a configuration snapshot under the next version. KEYS: version, snapshot. ARGV: the snapshot.
pub static CONFIG_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], v .. '\n' .. ARGV[1])
return v
",
    )
});

/// Keys of the events log and the configuration snapshot (one hash tag each: one Cluster slot).
pub const EVENTS_LOG: &str = "eg:{ev}:log";
pub const EVENTS_SEQ: &str = "eg:{ev}:seq";
pub const CONFIG_VER: &str = "eg:{cfg}:ver";
pub const CONFIG_SNAP: &str = "eg:{cfg}:snap";

/// The key of an event.
pub fn event_key(name: &str) -> String {
    format!("eg:{{ev}}:{name}")
}

/// The hash of one key of one table: `eg:{<table id>/<key hex>}` (the fields name the windows).
pub fn counter_key(table: &str, key: &[u8]) -> String {
    let mut out = String::with_capacity(table.len() + key.len() * 2 + 24);
    out.push_str("eg:{");
    out.push_str(table);
    out.push('/');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in key {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out.push('}');
    out
}
