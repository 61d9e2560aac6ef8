#!/usr/bin/env bash
# Soak: mixed traffic under wrk against one edgeguard node in front of an nginx origin, with a reload
# (SIGHUP) every minute (or every --reload seconds). Each minute prints the node's RSS and open file descriptors, the requests answered,
# and the 5xx edgeguard made itself (access-log records with a 5xx status and no upstream answer), so a leak
# or a reload that drops requests shows as a trend. The mix: cached hits, misses with random query strings
# (max_conns caps the origin sockets), uncacheable POSTs, a 404 host, and 1% of requests to an origin that is down.
#
# Usage: bash bench/soak.sh [--minutes N] [--connections N] [--reload SECONDS] [--no-cache]
#   --reload: seconds between two reloads (default 60); --no-cache: a.test uncached, to tell what the cache
#   holds from what the rest of the node does.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=10 CONNS=64 RELOAD=60 CACHE=true
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --reload) RELOAD=$2; shift 2 ;;
        --no-cache) CACHE=false; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source bench/lib.sh
bench_need
cargo build --release -q -p edgeguard
BIN=$PWD/target/release/edgeguard

ORIGIN_PORT=$(free_port) EG_PORT=$(free_port) ADMIN_PORT=$(free_port) DEAD_PORT=$(free_port)
mkdir -p "$WORK/www"
head -c 2000 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www;
    location /nocache { return 200 'dynamic'; }
    location / { add_header Cache-Control 'max-age=5'; } }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)

cat > "$WORK/edgeguard.toml" <<TOML
[node]
name = "soak-1"
listen = ["127.0.0.1:$EG_PORT"]
data_dir = "$WORK/data"
access_log = "$WORK/access.log"
max_connections = 10000
max_connections_per_ip = 0

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[domain]]
name = "a.test"
origins = ["127.0.0.1:$ORIGIN_PORT"]
[domain.upstream]
max_conns = 32
queue = 1000
[domain.health_check]
type = "http"
path = "/index.html"
[domain.cache]
enabled = $CACHE
default_ttl = "5s"

[[domain]]
name = "down.test"
origins = ["127.0.0.1:$DEAD_PORT", "127.0.0.1:$ORIGIN_PORT"]
[domain.cache]
enabled = false
TOML
"$BIN" run --config "$WORK/edgeguard.toml" > "$WORK/edgeguard.log" 2>&1 & EG_PID=$!; PIDS+=($EG_PID)
wait_port "$ORIGIN_PORT"; wait_port "$EG_PORT"

cat > "$WORK/mix.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    local r = n % 100
    if r < 60 then
        return wrk.format("GET", "/index.html", { Host = "a.test" })
    elseif r < 90 then
        return wrk.format("GET", "/index.html?r=" .. math.random(1, 1000000), { Host = "a.test" })
    elseif r < 95 then
        return wrk.format("POST", "/nocache", { Host = "a.test" }, "x=1")
    elseif r < 99 then
        return wrk.format("GET", "/", { Host = "unknown.test" })
    else
        return wrk.format("GET", "/index.html", { Host = "down.test" })
    end
end
LUA

# The 5xx edgeguard made itself (records with a 5xx status and no upstream answer) among the access-log lines
# written since the last call (the file grows by about a million lines a minute, too many to parse whole each
# minute). Running total and read offset in $WORK/own_5xx.
echo "0 0" > "$WORK/own_5xx"
own_5xx() {
    python3 - "$WORK/access.log" "$WORK/own_5xx" <<'PY'
import json, sys
log, state = sys.argv[1], sys.argv[2]
total, offset = map(int, open(state).read().split())
try:
    with open(log, "rb") as f:
        f.seek(offset)
        for line in f:
            if not line.endswith(b"\n"):
                break  # a record still being written: read it next time
            offset += len(line)
            if b'"status":5' not in line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if 500 <= int(r.get("status", 0)) <= 599 and r.get("upstream_time") is None:
                total += 1
except FileNotFoundError:
    pass
open(state, "w").write(f"{total} {offset}")
print(total)
PY
}

printf '%-6s %-10s %-8s %-12s %-10s\n' minute rss_kb fds requests own_5xx
taskset -c 1 wrk -t 2 -c "$CONNS" -d "$((MINUTES * 60))s" -s "$WORK/mix.lua" "http://127.0.0.1:$EG_PORT/" \
    > "$WORK/wrk.txt" 2>&1 & WRK_PID=$!; PIDS+=($WRK_PID)
START=$(date +%s)
( while sleep "$RELOAD"; do kill -HUP "$EG_PID" 2>/dev/null || exit 0; done ) & PIDS+=($!)
for m in $(seq 1 "$MINUTES"); do
    # On the minute from the start, whatever the previous sample cost.
    sleep "$(( START + m * 60 - $(date +%s) ))" 2>/dev/null || true
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$EG_PID/status")
    fds=$(ls "/proc/$EG_PID/fd" | wc -l)
    reqs=$(wc -l < "$WORK/access.log")
    printf '%-6s %-10s %-8s %-12s %-10s\n' "$m" "$rss" "$fds" "$reqs" "$(own_5xx)"
done
wait "$WRK_PID" || true
echo "--- wrk"
cat "$WORK/wrk.txt"
echo "--- edgeguard reloads logged: $(grep -c 'configuration reloaded path=' "$WORK/edgeguard.log" || true)"
