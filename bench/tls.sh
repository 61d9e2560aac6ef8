#!/usr/bin/env bash
# HTTPS at the edge: edgeguard against nginx, measured in the same run on loopback, with the same certificate
# (ECDSA P-256, made here with openssl) and the same TLS 1.3 cipher suite (TLS_AES_128_GCM_SHA256, forced on both).
#
# Cases, each a cache hit of one 100-byte object (nginx proxy_cache, edgeguard's memory cache) so the origin is out
# of the measurement:
#   keepalive  wrk over keep-alive TLS connections: requests/s and p99 latency;
#   handshake  wrk with `Connection: close`: every request is a new TCP connection and a full TLS handshake (wrk
#              keeps no client session cache), so requests/s is handshakes/s.
# Both proxies are pinned to CPU 0 (nginx: one worker; edgeguard: one runtime thread); wrk and the origin run on
# CPU 1. ROUNDS rounds alternate the two proxies; medians are printed with the ratio edgeguard/nginx.
#
# Usage: bash bench/tls.sh [--rounds N] [--duration SECS] [--connections N] [--case keepalive|handshake|all]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=8 CONNS=64 CASE=all
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
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
cargo build --release -q -p edgeguard
BIN=$PWD/target/release/edgeguard

ORIGIN_PORT=$(free_port) NGINX_PORT=$(free_port) EG_PORT=$(free_port) EG_TLS_PORT=$(free_port)
mkdir -p "$WORK/www" "$WORK/certs"
head -c 100 /dev/zero | tr '\0' 'x' > "$WORK/www/file.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" 2>/dev/null
chmod 644 "$WORK/certs/key.pem"

nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; location / { expires 1h; } }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)

nginx_conf "$WORK/proxy" "
    proxy_cache_path $WORK/proxy/cache keys_zone=c:10m;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        server_name localhost;
        ssl_certificate $WORK/certs/cert.pem;
        ssl_certificate_key $WORK/certs/key.pem;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        ssl_session_cache shared:SSL:10m;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_cache c;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }"
taskset -c 0 /usr/sbin/nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)

cat > "$WORK/edgeguard.toml" <<TOML
[node]
name = "bench"
tier = "parent"
listen = ["127.0.0.1:$EG_PORT"]
listen_tls = ["127.0.0.1:$EG_TLS_PORT"]
data_dir = "$WORK/data"

[[domain]]
name = "localhost"
origins = ["127.0.0.1:$ORIGIN_PORT"]

[domain.tls]
cert = "$WORK/certs/cert.pem"
key = "$WORK/certs/key.pem"

[domain.cache]
enabled = true
TOML
# The TLS 1.3 suite is forced on the client side for edgeguard (wrk offers what OpenSSL's defaults allow; the
# server follows the client's order), and checked below for both proxies.
taskset -c 0 "$BIN" run --config "$WORK/edgeguard.toml" > "$WORK/edgeguard.log" 2>&1 & EG_PID=$!; PIDS+=($EG_PID)
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"; wait_port "$EG_TLS_PORT"

suite_of() { # port -> negotiated protocol and cipher suite
    echo | openssl s_client -connect "127.0.0.1:$1" -servername localhost -ciphersuites TLS_AES_128_GCM_SHA256 2>/dev/null \
        | awk '/^New, / { print $2, $NF }'
}
echo "nginx: $(suite_of "$NGINX_PORT"); edgeguard: $(suite_of "$EG_TLS_PORT")" >&2

# expect_hit URL HEADER: the second of two requests must be answered from the proxy's cache.
expect_hit() {
    curl -sk -o /dev/null "$1"
    curl -sk -D - -o /dev/null "$1" | grep -qi "^$2: HIT" || { echo "not a cache hit: $1 (no $2: HIT)" >&2; exit 1; }
}
expect_hit "https://localhost:$NGINX_PORT/file.txt" X-Cache-Status
expect_hit "https://localhost:$EG_TLS_PORT/file.txt" X-Cache

# wrk's OpenSSL client picks the suite from its defaults; an openssl.cnf limiting TLS 1.3 suites makes it offer
# only TLS_AES_128_GCM_SHA256 to both proxies.
cat > "$WORK/openssl.cnf" <<CNF
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
Ciphersuites = TLS_AES_128_GCM_SHA256
MinProtocol = TLSv1.3
CNF
export OPENSSL_CONF=$WORK/openssl.cnf


echo "wrk: 1 thread, $CONNS connections, ${DURATION}s x $ROUNDS rounds (medians); proxies pinned to one CPU" >&2
printf '%-10s %-10s %12s %10s %8s %9s\n' case proxy "req/s" "p99 ms" "cpu s" "rss MB"
N="https://localhost:$NGINX_PORT/file.txt" E="https://localhost:$EG_TLS_PORT/file.txt"
if [ "$CASE" = keepalive ] || [ "$CASE" = all ]; then bench_case keepalive "$N" "$E"; fi
if [ "$CASE" = handshake ] || [ "$CASE" = all ]; then bench_case handshake "$N" "$E" -H "Connection: close"; fi
