#!/usr/bin/env bash
# Cluster mode's cost on one node, measured in the same run on loopback: the same node configuration with and
# without `[cluster]` (a real redis-server of the script's own), both nodes pinned to CPU 0; wrk, the origin
# (nginx) and redis-server on CPU 1.
#
# 1. Throughput: wrk spreads X-Forwarded-For over ADDRS client addresses (from a trusted proxy on loopback),
#    each under the IP access limit (qps = 100, scope "cluster" on the cluster node), so every request is
#    served and counted; requests/s with the cluster on and off (medians of ROUNDS rounds) and their ratio.
# 2. Redis commands per request under a flood of one key: wrk from one address at the cluster node, far over the
#    limit; from `redis-cli info commandstats` (reset before), the script calls the node made (EVALSHA) and every
#    command Redis ran (those inside the scripts included), each divided by the requests wrk made. The sync design
#    (docs/cluster.md) sends at most one script call per key and quantum or round, so both are far under 1.
#
# Usage: bash bench/cluster.sh [--rounds N] [--duration SECS] [--connections N] [--addrs N] [--bin PATH]
# (--bin: an edgeguard binary to run instead of building the release one).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=5 CONNS=32 ADDRS=1000 BIN=
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --addrs) ADDRS=$2; shift 2 ;;
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
nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" > "$WORK/redis.log" 2>&1 & PIDS+=($!)

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
listen = "127.0.0.1:0"
$4

[[domain]]
name = "localhost"
origins = ["127.0.0.1:$ORIGIN_PORT"]

[domain.cache]
enabled = false

[domain.ip_access_limit]
enabled = true
qps = 100
scope = "$3"
TOML
}
node_conf off "$OFF_PORT" node ""
node_conf on "$ON_PORT" cluster "
[cluster]
redis_url = \"redis://127.0.0.1:$REDIS_PORT\"
sync_interval_ms = 100"
for n in off on; do
    taskset -c 0 "$BIN" run --config "$WORK/$n.toml" > "$WORK/$n.log" 2>&1 & PIDS+=($!)
done
wait_port "$ORIGIN_PORT"; wait_port "$REDIS_PORT"; wait_port "$OFF_PORT"; wait_port "$ON_PORT"

cat > "$WORK/spread.lua" <<LUA
local n = $ADDRS
local i = 0
request = function()
    i = (i * 1103515245 + 12345) % 2147483648
    local a = i % n
    local xff = string.format("10.%d.%d.%d", math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
    return wrk.format("GET", "/index.html", { ["Host"] = "localhost", ["X-Forwarded-For"] = xff })
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

echo "cluster: $ADDRS addresses, wrk 1 thread, $CONNS connections, ${DURATION}s x $ROUNDS rounds (medians); nodes on CPU 0; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: > "$WORK/off.rps"; : > "$WORK/on.rps"
for r in $(seq 1 "$ROUNDS"); do
    for n in off on; do
        port=$OFF_PORT; [ "$n" = on ] && port=$ON_PORT
        read -r rps total non2xx < <(run "$port" "$WORK/spread.lua")
        echo "$rps" >> "$WORK/$n.rps"
        echo "  round $r, cluster $n: $rps req/s ($total requests, $non2xx not 2xx)" >&2
    done
done
off=$(median < "$WORK/off.rps") on=$(median < "$WORK/on.rps")
echo "throughput: cluster off $off req/s, on $on req/s, ratio on/off $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"

redis-cli -p "$REDIS_PORT" config resetstat > /dev/null
read -r rps total non2xx < <(run "$ON_PORT" "$WORK/one.lua")
sleep 0.3   # the last round of the sync task
stats=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r')
cmds=$(awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /^cmdstat_(info|config)/ { s += $3 } END { print s + 0 }' <<< "$stats")
calls=$(awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { s += $3 } END { print s + 0 }' <<< "$stats")
per() { awk -v c="$1" -v t="$total" 'BEGIN { printf "%.4f", c / t }'; }
echo "flood of one key: $total requests ($non2xx refused) at $rps req/s; script calls $calls ($(per "$calls") per request), commands run by redis $cmds ($(per "$cmds") per request)"
grep '^cmdstat_' <<< "$stats" | sed 's/^/  /' >&2
