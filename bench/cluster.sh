#!/usr/bin/env bash
# Cluster mode's cost on one node, measured in the same run on loopback: the same node configuration with and
# without `[cluster]` (a real redis-server of the script's own), both nodes pinned to CPU 0; wrk, the origin
# (nginx) and redis-server on CPU 1.
#
# 1. Throughput: wrk spreads X-Forwarded-For over ADDRS client addresses (from a trusted proxy on loopback),
#    each under the IP access limit (qps = 100, scope "cluster" on the cluster node) at the rates a 2-core
#    machine reaches, and the requests over PATHS paths (so normal mode sees no surge on one path and challenges
#    no one: the script warns if protection triggered), so every request is served and counted; requests/s with the cluster on and off (medians of
#    ROUNDS rounds), the share each node refused (the same, about 0, when both did the same work) and the ratio.
#    The requests are cache hits (the limit is decided before the cache): with misses, wrk, the origin and
#    redis-server saturated CPU 1 while the node used under 90% of CPU 0, so the ratio measured Redis's share of
#    the load generator's CPU, not the node. The script prints each node's use of its CPU: near 100% means the
#    node is what limits the throughput. `--miss` measures misses (cache off) all the same.
# 2. Redis commands per request under a flood of one key: wrk from one address at the cluster node, far over the
#    limit; from `redis-cli info commandstats` (reset before), the script calls the node made (EVALSHA) and every
#    command Redis ran (those inside the scripts included), each divided by the requests wrk made. The sync design
#    (docs/cluster.md) sends at most one script call per key and quantum or round, so both are far under 1.
#
# Usage: bash bench/cluster.sh [--rounds N] [--duration SECS] [--connections N] [--addrs N] [--paths N] [--pipeline N] [--miss] [--bin PATH]
# (--bin: an edgeguard binary to run instead of building the release one).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=5 CONNS=32 ADDRS=10000 PATHS=10000 PIPELINE=4 BIN= CACHE=true
while [ $# -gt 0 ]; do
    case "$1" in
        --miss) CACHE=false; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --addrs) ADDRS=$2; shift 2 ;;
        --paths) PATHS=$2; shift 2 ;;
        --pipeline) PIPELINE=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source bench/lib.sh
bench_need
command -v redis-server >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}
if [ -z "$BIN" ]; then
    cargo build --release -q -p edgeguard
    BIN=$PWD/target/release/edgeguard
fi

ORIGIN_PORT=$(free_port) REDIS_PORT=$(free_port) OFF_PORT=$(free_port) ON_PORT=$(free_port)
mkdir -p "$WORK/www"
head -c 100 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; expires 1h; location / { try_files /index.html =404; } }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" > "$WORK/redis.log" 2>&1 & PIDS+=($!)
REDIS_PID=$!

# node NAME PORT SCOPE [CLUSTER TABLE] -> config file
node_conf() {
    cat > "$WORK/$1.toml" <<TOML
[node]
name = "$1"
tier = "parent"
listen = ["127.0.0.1:$2"]
trusted_proxies = ["127.0.0.0/8"]
data_dir = "$WORK/$1-data"

[admin]
listen = "127.0.0.1:$5"
token = "bench"
$4

[[domain]]
name = "localhost"
origins = ["127.0.0.1:$ORIGIN_PORT"]

[domain.cache]
enabled = $CACHE

[domain.ip_access_limit]
enabled = true
qps = 100
scope = "$3"

[domain.rate_limiting]
enabled = true
mode = "normal"
TOML
}
ON_ADMIN=$(free_port)
node_conf off "$OFF_PORT" node "" 0
node_conf on "$ON_PORT" cluster "
[cluster]
redis_url = \"redis://127.0.0.1:$REDIS_PORT\"
sync_interval_ms = 100" "$ON_ADMIN"
declare -A NODE_PID
for n in off on; do
    taskset -c 0 "$BIN" run --config "$WORK/$n.toml" > "$WORK/$n.log" 2>&1 & PIDS+=($!)
    NODE_PID[$n]=$!
done
wait_port "$ORIGIN_PORT"; wait_port "$REDIS_PORT"; wait_port "$OFF_PORT"; wait_port "$ON_PORT"
if [ "$CACHE" = true ]; then
    for port in "$OFF_PORT" "$ON_PORT"; do
        curl -s -o /dev/null -H 'Host: localhost' "http://127.0.0.1:$port/index.html"
        curl -s -D - -o /dev/null -H 'Host: localhost' "http://127.0.0.1:$port/index.html" | grep -qi '^x-cache: hit' \
            || { echo "not a cache hit on port $port" >&2; exit 1; }
    done
fi

cat > "$WORK/spread.lua" <<LUA
-- Park-Miller (minstd): every product stays under 2^53, so LuaJIT's doubles compute it exactly. (The
-- glibc-style i * 1103515245 + 12345 mod 2^31 does not: its products lose their low bits and the sequence
-- fell onto 176 addresses, some far over the limit, so the nodes refused very different shares.) The
-- requests are made once, in init: wrk shares CPU 1 with redis-server, and formatting each request there
-- would leave the load generator, not the node, the limit.
local n = $ADDRS
local reqs, k = {}, 0
init = function(args)
    local i = 1
    for j = 1, 65536 do
        i = (i * 48271) % 2147483647
        local a = i % n
        local xff = string.format("10.%d.%d.%d", math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
        reqs[j] = wrk.format("GET", string.format("/p/%d", (j * 7919) % $PATHS), { ["Host"] = "localhost", ["X-Forwarded-For"] = xff })
    end
end
-- PIPELINE requests per write (wrk counts each response): wrk's cost per request falls, so the load generator
-- keeps ahead of the node on CPU 1, which it shares with redis-server.
local depth = $PIPELINE
request = function()
    if depth == 1 then
        k = k % #reqs + 1
        return reqs[k]
    end
    local batch = {}
    for d = 1, depth do
        k = k % #reqs + 1
        batch[d] = reqs[k]
    end
    return table.concat(batch)
end
LUA
cat > "$WORK/one.lua" <<LUA
request = function()
    return wrk.format("GET", "/index.html", { ["Host"] = "localhost", ["X-Forwarded-For"] = "192.0.2.9" })
end
LUA

# run PORT SCRIPT -> "req/s total non2xx"
run() {
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$2" "http://127.0.0.1:$1/index.html" > "$WORK/wrk.out" 2>&1
    local rps total non2xx
    rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out")
    total=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
    non2xx=$(awk '/Non-2xx/ { print $5 }' "$WORK/wrk.out")
    echo "$rps $total ${non2xx:-0}"
}

# Both nodes see the spread once before the rounds: every path is then in their caches.
for port in "$OFF_PORT" "$ON_PORT"; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$WORK/spread.lua" "http://127.0.0.1:$port/" > /dev/null 2>&1
done

kind=hits; [ "$CACHE" = true ] || kind=misses
echo "cluster: $kind, $ADDRS addresses over $PATHS paths, wrk 1 thread, $CONNS connections, $PIPELINE requests pipelined, ${DURATION}s x $ROUNDS rounds (medians); nodes on CPU 0; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: > "$WORK/off.rps"; : > "$WORK/on.rps"
declare -A TOTAL=([off]=0 [on]=0) REFUSED=([off]=0 [on]=0) CPU=([off]=0 [on]=0)
# Redis's figures count the measured cluster-on runs only: summed from `info commandstats` around each.
declare -A CMD=([evalsha]=0 [hgetall]=0)
calls_of() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { s += $3 } END { print s + 0 }'
}
redis_cpu=0
for r in $(seq 1 "$ROUNDS"); do
    for n in off on; do
        port=$OFF_PORT; [ "$n" = on ] && port=$ON_PORT
        # Three seconds of traffic first: a node idle through the other's run has dropped its clients' keys
        # (idle for two windows), and their first counts (due at once) are a restart, not the steady state.
        taskset -c 1 wrk -t1 -c"$CONNS" -d3s -s "$WORK/spread.lua" "http://127.0.0.1:$port/" > /dev/null 2>&1
        cpu0=$(cpu_secs "${NODE_PID[$n]}")
        if [ "$n" = on ]; then
            rcpu0=$(cpu_secs "$REDIS_PID")
            for c in "${!CMD[@]}"; do CMD[$c]=$((CMD[$c] - $(calls_of "$c"))); done
        fi
        read -r rps total non2xx < <(run "$port" "$WORK/spread.lua")
        if [ "$n" = on ]; then
            for c in "${!CMD[@]}"; do CMD[$c]=$((CMD[$c] + $(calls_of "$c"))); done
            redis_cpu=$(awk -v a="$redis_cpu" -v b="$(cpu_secs "$REDIS_PID")" -v c="$rcpu0" 'BEGIN { print a + b - c }')
        fi
        cpu1=$(cpu_secs "${NODE_PID[$n]}")
        CPU[$n]=$(awk -v a="${CPU[$n]}" -v b="$cpu1" -v c="$cpu0" 'BEGIN { print a + b - c }')
        busy=$(awk -v b="$cpu1" -v c="$cpu0" -v d="$DURATION" 'BEGIN { printf "%.0f%%", 100 * (b - c) / d }')
        echo "$rps" >> "$WORK/$n.rps"
        TOTAL[$n]=$((TOTAL[$n] + total)); REFUSED[$n]=$((REFUSED[$n] + non2xx))
        echo "  round $r, cluster $n: $rps req/s ($total requests, $non2xx not 2xx), node's CPU $busy" >&2
    done
done
share() { awk -v r="${REFUSED[$1]}" -v t="${TOTAL[$1]}" 'BEGIN { printf "%.2f%%", t ? 100 * r / t : 0 }'; }
off=$(median < "$WORK/off.rps") on=$(median < "$WORK/on.rps")
echo "throughput: cluster off $off req/s (refused $(share off)), on $on req/s (refused $(share on)), ratio on/off $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"
scalls=${CMD[evalsha]}
# Each key a script call carries reads its hash once (HGETALL).
skeys=${CMD[hgetall]}
# CPU time per request says the same on a machine shared with other work, where requests/s vary from round to
# round: the node's own, and Redis's for the cluster node.
awk -v a="${CPU[off]}" -v b="${TOTAL[off]}" -v c="${CPU[on]}" -v d="${TOTAL[on]}" -v r="$redis_cpu" \
    'BEGIN { x = 1e6 * a / b; y = 1e6 * c / d; z = 1e6 * r / d
             printf "cpu per request: cluster off %.1f us, on %.1f us (ratio %.2f) + redis %.1f us\n", x, y, y / x, z }'
awk -v c="$scalls" -v k="$skeys" -v t="${TOTAL[on]}" \
    'BEGIN { printf "spread, cluster on: script calls %.4f per request, keys sent %.4f per request\n", c / t, k / t }'
# The ratio is the cost of cluster mode only if both nodes did the same work: same share refused by the limit.
awk -v a="${REFUSED[off]}" -v b="${TOTAL[off]}" -v c="${REFUSED[on]}" -v d="${TOTAL[on]}" \
    'BEGIN { x = b ? a / b : 0; y = d ? c / d : 0; exit (x - y > 0.01 || y - x > 0.01) ? 1 : 0 }' \
    || echo "  warning: the refused shares differ by more than 1 point: the runs did not do the same work" >&2
curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$ON_ADMIN/metrics" | grep '^edgeguard_cluster_' | sed 's/^/  on node: /' >&2
# Challenged clients get a 200 page: wrk does not see them, the nodes' logs do.
for n in off on; do
    found=$(grep -c " triggered " "$WORK/$n.log" || true)
    [ "$found" = 0 ] || echo "  warning: protection triggered $found times on the $n node: it measured refusals too" >&2
done

# The spread's last counts are still sent for a while (unsent counts within a second, the previous window's
# after the window ends): they are not the flood's. Wait until Redis has read no counter for half a second.
reads() { redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | awk -F'[:=,]' '$1 == "cmdstat_hgetall" { print $3 }'; }
last=$(reads)
for _ in $(seq 1 20); do
    sleep 0.5
    now=$(reads)
    [ "$now" = "$last" ] && break
    last=$now
done
redis-cli -p "$REDIS_PORT" config resetstat > /dev/null
read -r rps total non2xx < <(run "$ON_PORT" "$WORK/one.lua")
sleep 0.3   # the last round of the sync task
stats=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r')
cmds=$(awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /^cmdstat_(info|config)/ { s += $3 } END { print s + 0 }' <<< "$stats")
calls=$(awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { s += $3 } END { print s + 0 }' <<< "$stats")
per() { awk -v c="$1" -v t="$total" 'BEGIN { printf "%.4f", c / t }'; }
echo "flood of one key: $total requests ($non2xx refused) at $rps req/s; script calls $calls ($(per "$calls") per request), commands run by redis $cmds ($(per "$cmds") per request)"
grep '^cmdstat_' <<< "$stats" | sed 's/^/  /' >&2
# A round that missed its deadline marks Redis down and reconnects: the figures above then include that.
downs=$(grep -c "redis unreachable" "$WORK/on.log" || true)
[ "$downs" = 0 ] || echo "  warning: the cluster node marked Redis unreachable $downs times (a round missed its deadline)" >&2
