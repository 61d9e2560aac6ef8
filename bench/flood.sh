#!/usr/bin/env bash
# Refusal throughput under a distributed flood: edgeguard against nginx, measured in the same run on loopback.
#
# A flood from ADDRS client addresses (wrk with a Lua script that spreads X-Forwarded-For over them, from a trusted
# proxy on loopback) hits each proxy in turn, far over a per-client limit. nginx: real_ip from 127.0.0.0/8 and
# limit_req 10r/s burst 5 nodelay per $binary_remote_addr, one worker. edgeguard: the same trust, the same
# limit_req, the IP access limit at qps = 10 and rate limiting in normal mode. Both proxies are pinned to CPU 0;
# wrk, the origin and the legitimate client run on CPU 1.
#
# Printed per proxy (medians of ROUNDS rounds): requests/s answered under the flood, how many were refused, the
# worst and median latency of a legitimate client fetching one page every 200 ms beside the flood (from an
# address of its own, never over the limit), and how much the proxy's log grew during the flood. Then the ratios
# edgeguard/nginx.
#
# Usage: bash bench/flood.sh [--rounds N] [--duration SECS] [--connections N] [--addrs N]
# (--addrs 1000000 checks memory under a flood of a million addresses: wrk makes 4 requests per address in init.)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=8 CONNS=64 ADDRS=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --addrs) ADDRS=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source bench/lib.sh
bench_need
cargo build --release -q -p edgeguard
BIN=$PWD/target/release/edgeguard

ORIGIN_PORT=$(free_port) NGINX_PORT=$(free_port) EG_PORT=$(free_port)
mkdir -p "$WORK/www"
head -c 100 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"

nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; }"
taskset -c 1 /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -g 'daemon off;' & PIDS+=($!)

# nginx's limit_req logs every refusal at error level unless told otherwise; the log stays at its default
# (limit_req_log_level error) so both proxies are measured as an operator runs them.
nginx_conf "$WORK/proxy" "
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    limit_req_zone \$binary_remote_addr zone=perip:10m rate=10r/s;
    limit_req_status 429;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            limit_req zone=perip burst=5 nodelay;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
        }
    }"
taskset -c 0 /usr/sbin/nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)

cat > "$WORK/edgeguard.toml" <<TOML
[node]
name = "flood"
tier = "parent"
listen = ["127.0.0.1:$EG_PORT"]
trusted_proxies = ["127.0.0.0/8"]
data_dir = "$WORK/data"

[admin]
listen = "127.0.0.1:0"

[[limit_req_zone]]
name = "perip"
key = "\$binary_remote_addr"
size = "10m"
rate = "10r/s"

[[domain]]
name = "localhost"
origins = ["127.0.0.1:$ORIGIN_PORT"]
limit_req_status = 429
limit_req = [{ zone = "perip", burst = 5, nodelay = true }]

[domain.cache]
enabled = false

[domain.ip_access_limit]
enabled = true
qps = 10

[domain.rate_limiting]
enabled = true
mode = "normal"
TOML
taskset -c 0 "$BIN" run --config "$WORK/edgeguard.toml" > "$WORK/edgeguard.log" 2>&1 & EG_PID=$!; PIDS+=($EG_PID)
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"; wait_port "$EG_PORT"

# One address per request, drawn from ADDRS addresses in 10.0.0.0/8 in a shuffled order; the requests are made
# once by wrk's init, so wrk spends its CPU on sending, not on formatting.
cat > "$WORK/flood.lua" <<LUA
local n = $ADDRS
local reqs, i = {}, 0
init = function(args)
    local x = 0
    for k = 1, 4 * n do
        x = (x * 1103515245 + 12345) % 2147483648
        local a = math.floor(x / 16) % n
        local xff = string.format("10.%d.%d.%d", math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
        reqs[k] = wrk.format("GET", "/index.html", { ["Host"] = "localhost", ["X-Forwarded-For"] = xff })
    end
end
request = function()
    i = i % (4 * n) + 1
    return reqs[i]
end
LUA

# legit URL SECONDS -> "worst_ms median_ms failures": one page every 200 ms from 192.0.2.1.
legit() {
    local url=$1 n=$(( $2 * 5 )) out="$WORK/legit.txt" fails=0
    : > "$out"
    for _ in $(seq 1 "$n"); do
        local r
        r=$(taskset -c 1 curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'Host: localhost' \
            -H 'X-Forwarded-For: 192.0.2.1' --max-time 5 "$url" || echo "000 5")
        [ "${r%% *}" = 200 ] || fails=$((fails + 1))
        echo "${r#* }" >> "$out"
        sleep 0.2
    done
    local worst med
    worst=$(sort -g "$out" | tail -1 | awk '{ printf "%.1f", $1 * 1000 }')
    med=$(sort -g "$out" | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }')
    echo "$worst $med $fails"
}

# flood URL LOGFILE -> "rps refused_share worst_ms median_ms legit_failures log_bytes"
flood() {
    local url=$1 log=$2 before after
    before=$(stat -c %s "$log" 2>/dev/null || echo 0)
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/flood.lua" "$url" > "$WORK/wrk.out" 2>&1 &
    local wrk_pid=$!
    sleep 0.5
    local l; l=$(legit "$url" $(( DURATION - 1 )))
    wait "$wrk_pid"
    after=$(stat -c %s "$log" 2>/dev/null || echo 0)
    local rps total non2xx
    rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out")
    total=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
    non2xx=$(awk '/Non-2xx/ { print $5 }' "$WORK/wrk.out"); non2xx=${non2xx:-0}
    echo "$rps $(awk -v r="$non2xx" -v t="$total" 'BEGIN { printf "%.3f", (t > 0) ? r / t : 0 }') $l $(( after - before ))"
}

echo "flood: $ADDRS addresses, wrk 1 thread, $CONNS connections, ${DURATION}s x $ROUNDS rounds (medians); proxies on CPU 0" >&2
declare -A R
for i in $(seq 1 "$ROUNDS"); do
    read -r a b c d e f < <(flood "http://127.0.0.1:$NGINX_PORT/index.html" "$WORK/proxy/error.log")
    R[ng_rps]+="$a "; R[ng_ref]+="$b "; R[ng_worst]+="$c "; R[ng_med]+="$d "; R[ng_fail]+="$e "; R[ng_log]+="$f "
    read -r a b c d e f < <(flood "http://127.0.0.1:$EG_PORT/index.html" "$WORK/edgeguard.log")
    R[eg_rps]+="$a "; R[eg_ref]+="$b "; R[eg_worst]+="$c "; R[eg_med]+="$d "; R[eg_fail]+="$e "; R[eg_log]+="$f "
    last() { local v=${R[$1]% }; echo "${v##* }"; }
    echo "  round $i: nginx $(last ng_rps) req/s, edgeguard $(last eg_rps) req/s" >&2
done
m() { printf '%s\n' ${R[$1]} | median; }
printf '%-10s %10s %9s %10s %10s %6s %10s\n' proxy "req/s" refused "worst ms" "median ms" fails "log bytes"
printf '%-10s %10s %9s %10s %10s %6s %10s\n' nginx "$(m ng_rps)" "$(m ng_ref)" "$(m ng_worst)" "$(m ng_med)" "$(m ng_fail)" "$(m ng_log)"
printf '%-10s %10s %9s %10s %10s %6s %10s\n' edgeguard "$(m eg_rps)" "$(m eg_ref)" "$(m eg_worst)" "$(m eg_med)" "$(m eg_fail)" "$(m eg_log)"
printf 'ratio edgeguard/nginx: throughput %s, worst legitimate latency %s\n' \
    "$(awk -v e="$(m eg_rps)" -v n="$(m ng_rps)" 'BEGIN { printf "%.2f", e / n }')" \
    "$(awk -v e="$(m eg_worst)" -v n="$(m ng_worst)" 'BEGIN { printf "%.2f", (n > 0) ? e / n : 0 }')"
# Peak resident memory over the whole run: edgeguard's must stay within its configured table budgets (the IP
# access limit's and the rules' tables, 250 MiB by default) however many addresses the flood uses.
printf 'peak RSS: nginx worker %s MB, edgeguard %s MB\n' "$(peak_rss_mb "$(worker_pid "$NGINX_PID")")" "$(peak_rss_mb "$EG_PID")"
