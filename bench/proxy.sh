#!/usr/bin/env bash
# Reverse-proxy throughput: edgeguard against nginx, measured in the same run on loopback.
#
# A fixed origin (nginx serving a 100-byte file) sits behind two proxies with the same limit_req (a rate so high
# nothing is rejected) and upstream keep-alive: nginx, then edgeguard. wrk drives each in turn (same threads,
# connections and duration), alternating for ROUNDS rounds; the medians of requests/s and p99 latency, the CPU seconds
# and peak RSS of each proxy are printed with the ratio edgeguard/nginx.
#
# Both proxies are pinned to CPU 0 (nginx: one worker; edgeguard: one runtime thread, as its runtime sizes itself
# from the CPUs it may use); the origin and wrk run on the other CPU, so each proxy gets one whole core.
#
# Cases: `miss` forwards every request (edgeguard's cache off, nginx's proxy_cache off); `hit` serves the same
# object from each proxy's cache (nginx proxy_cache on disk/page cache, edgeguard's memory cache), checked to be
# a hit on both before measuring.
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

ORIGIN_PORT=$(free_port) NGINX_PORT=$(free_port) EG_PORT=$(free_port)
mkdir -p "$WORK/www"
head -c 100 /dev/zero | tr '\0' 'x' > "$WORK/www/file.txt"

nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; location / { expires 1h; } }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)

nginx_conf "$WORK/proxy" "
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
    map \$arg_cache \$cache_on { default off; 1 c; }"
taskset -c 0 /usr/sbin/nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)

cat > "$WORK/edgeguard.toml" <<TOML
[node]
name = "bench"
tier = "parent"
listen = ["127.0.0.1:$EG_PORT"]
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
TOML
EG_PID=
start_edgeguard() { # cache on/off
    [ -n "$EG_PID" ] && { kill -TERM "$EG_PID" 2>/dev/null; wait "$EG_PID" 2>/dev/null || true; }
    sed "s/CACHE_ON/$1/" "$WORK/edgeguard.toml" > "$WORK/eg-run.toml"
    taskset -c 0 "$BIN" run --config "$WORK/eg-run.toml" > "$WORK/edgeguard.log" 2>&1 & EG_PID=$!; PIDS+=($EG_PID)
    wait_port "$EG_PORT"
}
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"


echo "wrk: 1 thread, $CONNS connections, ${DURATION}s x $ROUNDS rounds (medians); proxies pinned to one CPU" >&2
printf '%-10s %-10s %12s %10s %8s %9s\n' case proxy "req/s" "p99 ms" "cpu s" "rss MB"
if [ "$CASE" = miss ] || [ "$CASE" = all ]; then
    start_edgeguard false
    bench_case miss "http://127.0.0.1:$NGINX_PORT/file.txt" "http://127.0.0.1:$EG_PORT/file.txt" -H "Host: localhost"
fi
# expect_hit URL HEADER: the second of two requests must be answered from the proxy's cache.
expect_hit() {
    curl -s -o /dev/null -H "Host: localhost" "$1"
    curl -s -D - -o /dev/null -H "Host: localhost" "$1" | tr -d '\r' | grep -qi "^$2: HIT$" \
        || { echo "not a cache hit: $1 (no $2: HIT)" >&2; exit 1; }
}
if [ "$CASE" = hit ] || [ "$CASE" = all ]; then
    start_edgeguard true
    expect_hit "http://127.0.0.1:$NGINX_PORT/file.txt?cache=1" X-Cache-Status
    expect_hit "http://127.0.0.1:$EG_PORT/file.txt?cache=1" X-Cache
    bench_case hit "http://127.0.0.1:$NGINX_PORT/file.txt?cache=1" "http://127.0.0.1:$EG_PORT/file.txt?cache=1" -H "Host: localhost"
fi
