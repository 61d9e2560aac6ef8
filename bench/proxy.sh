#!/usr/bin/env bash
# Reverse-proxy throughput: edgeguard against nginx, measured in the same run on loopback.
#
# A fixed origin (nginx) sits behind two proxies: nginx, then edgeguard. wrk drives each in turn (same threads,
# connections, duration and requests), alternating for ROUNDS rounds; the medians of requests/s and p99 latency,
# the CPU seconds and peak RSS of each proxy are printed with the ratio edgeguard/nginx.
#
# Both proxies are pinned to CPU 0 (nginx: one worker; edgeguard: one runtime thread, as its runtime sizes itself
# from the CPUs it may use); the origin and wrk run on the other CPU, so each proxy gets one whole core.
#
# Cases:
# - `miss`: every request forwarded, with every protection on. Requests come from 100,000 client addresses
#   (X-Forwarded-For from a trusted proxy on loopback, believed by both) over 10,000 paths, so no client and no
#   path is over a limit: what a busy site's ordinary traffic costs. nginx: real_ip and limit_req (a rate
#   nothing reaches); edgeguard: the same limit_req, the IP access limit (qps 1000) and rate limiting in normal
#   mode (the learned-baseline detector and its rules counting every request). Both caches off.
# - `hit`: one object of 100 bytes answered from each proxy's cache (nginx proxy_cache, edgeguard's memory
#   cache; checked to be a hit on both first), from one client with limit_req on; then the same bytes from
#   nginx's `return 200` (answered from memory, the practical limit of any server here) and from nginx serving the
#   file itself, both printed against the same edgeguard hit figure.
#
# Usage: bash bench/proxy.sh [--rounds N] [--duration SECS] [--connections N] [--case miss|hit|all]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=10 CONNS=64 CASE=miss
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --case) CASE=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source bench/lib.sh
bench_need
cargo build --release -q -p edgeguard
BIN=$PWD/target/release/edgeguard

ORIGIN_PORT=$(free_port) NGINX_PORT=$(free_port) EG_PORT=$(free_port) RET_PORT=$(free_port) FILE_PORT=$(free_port)
mkdir -p "$WORK/www"
head -c 100 /dev/zero | tr '\0' 'x' > "$WORK/www/file.txt"

BODY=$(cat "$WORK/www/file.txt")
nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; location / { expires 1h; }
    location /p/ { return 200 '$BODY'; } }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)

nginx_conf "$WORK/proxy" "
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    limit_req_zone \$binary_remote_addr zone=perip:10m rate=1000000r/s;
    proxy_cache_path $WORK/proxy/cache keys_zone=c:10m;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            limit_req zone=perip burst=1000 nodelay;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_cache \$cache_on;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
    map \$arg_cache \$cache_on { default off; 1 c; }
    server { listen 127.0.0.1:$RET_PORT; location / { return 200 '$BODY'; } }
    server { listen 127.0.0.1:$FILE_PORT; root $WORK/www; }"
taskset -c 0 /usr/sbin/nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)

cat > "$WORK/edgeguard.toml" <<TOML
[node]
name = "bench"
tier = "parent"
listen = ["127.0.0.1:$EG_PORT"]
trusted_proxies = ["127.0.0.0/8"]
data_dir = "$WORK/data"

[[limit_req_zone]]
name = "perip"
key = "\$binary_remote_addr"
size = "10m"
rate = "1000000r/s"

[[domain]]
name = "localhost"
origins = ["127.0.0.1:$ORIGIN_PORT"]
limit_req = [{ zone = "perip", burst = 1000, nodelay = true }]

[domain.cache]
enabled = CACHE_ON
PROTECTION
TOML
EG_PID=
PROTECTION='[domain.ip_access_limit]\nenabled = true\nqps = 1000\n\n[domain.rate_limiting]\nenabled = true\nmode = "normal"'
start_edgeguard() { # cache on/off, protection on/off
    [ -n "$EG_PID" ] && { kill -TERM "$EG_PID" 2>/dev/null; wait "$EG_PID" 2>/dev/null || true; }
    local prot=""; [ "$2" = on ] && prot=$PROTECTION
    sed "s/CACHE_ON/$1/; s|PROTECTION|$prot|" "$WORK/edgeguard.toml" > "$WORK/eg-run.toml"
    taskset -c 0 "$BIN" run --config "$WORK/eg-run.toml" > "$WORK/edgeguard.log" 2>&1 & EG_PID=$!; PIDS+=($EG_PID)
    wait_port "$EG_PORT"
}
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"

# The miss case's requests, made once by wrk's init: 100,000 addresses in 10.0.0.0/8 over 10,000 paths.
cat > "$WORK/spread.lua" <<'LUA'
local reqs, n, i = {}, 100000, 0
init = function(args)
    for k = 1, n do
        local a = k - 1
        local xff = string.format("10.%d.%d.%d", math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
        reqs[k] = wrk.format("GET", string.format("/p/%d", (k * 7919) % 10000), { ["Host"] = "localhost", ["X-Forwarded-For"] = xff })
    end
end
request = function()
    i = i % n + 1
    return reqs[i]
end
LUA


echo "wrk: 1 thread, $CONNS connections, ${DURATION}s x $ROUNDS rounds (medians); proxies pinned to one CPU" >&2
printf '%-10s %-10s %12s %10s %8s %9s\n' case proxy "req/s" "p99 ms" "cpu s" "rss MB"
if [ "$CASE" = miss ] || [ "$CASE" = all ]; then
    start_edgeguard false on
    bench_case miss "http://127.0.0.1:$NGINX_PORT/" "http://127.0.0.1:$EG_PORT/" -s "$WORK/spread.lua"
fi
# expect_hit URL HEADER: the second of two requests must be answered from the proxy's cache.
expect_hit() {
    curl -s -o /dev/null -H "Host: localhost" "$1"
    curl -s -D - -o /dev/null -H "Host: localhost" "$1" | tr -d '\r' | grep -qi "^$2: HIT$" \
        || { echo "not a cache hit: $1 (no $2: HIT)" >&2; exit 1; }
}
if [ "$CASE" = hit ] || [ "$CASE" = all ]; then
    start_edgeguard true off
    expect_hit "http://127.0.0.1:$NGINX_PORT/file.txt?cache=1" X-Cache-Status
    expect_hit "http://127.0.0.1:$EG_PORT/file.txt?cache=1" X-Cache
    bench_case hit "http://127.0.0.1:$NGINX_PORT/file.txt?cache=1" "http://127.0.0.1:$EG_PORT/file.txt?cache=1" -H "Host: localhost"
    # The same edgeguard hit against nginx answering the same bytes from memory and from the file.
    bench_case return200 "http://127.0.0.1:$RET_PORT/file.txt" "http://127.0.0.1:$EG_PORT/file.txt?cache=1" -H "Host: localhost"
    bench_case static "http://127.0.0.1:$FILE_PORT/file.txt" "http://127.0.0.1:$EG_PORT/file.txt?cache=1" -H "Host: localhost"
fi
