# Shared by the bench scripts: installing the peers, ports chosen at run time, nginx configurations, and stopping
# whatever a script started. Source it after `cd` to the repository root; it sets WORK to a fresh folder.

bench_need() { # commands or files -> Debian packages to install when missing
    local need=()
    [ -x /usr/sbin/nginx ] || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v curl >/dev/null || need+=(curl)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}

WORK=$(mktemp -d /tmp/edgeguard-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as an unprivileged user and must read the served files
PIDS=()
bench_cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -QUIT "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

nginx_conf() { # dir, body of http{}, error log level (default error)
    mkdir -p "$1"
    cat > "$1/nginx.conf" <<NGX
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log ${3:-error};
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi;
    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    $2
}
NGX
}

cpu_secs() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }      # pid -> user+system CPU seconds
peak_rss_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }  # pid -> peak resident MB
worker_pid() { pgrep -P "$1" | head -1; }                                      # nginx master -> its worker

# run_wrk URL [extra wrk args] -> "rps p99_ms"
run_wrk() {
    local url=$1; shift
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" > "$WORK/wrk.out" 2>&1
    local rps p99 non2xx errs
    rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }; print v }' "$WORK/wrk.out")
    non2xx=$(awk '/Non-2xx/ { print $5 }' "$WORK/wrk.out")
    errs=$(awk '/Socket errors/' "$WORK/wrk.out")
    [ -z "$non2xx" ] || echo "  warning: $non2xx non-2xx responses from $url" >&2
    [ -z "$errs" ] || echo "  $url: $errs" >&2
    echo "$rps $p99"
}

# bench_case NAME NGINX_URL EDGEGUARD_URL [extra wrk args]: a warm-up of each, then ROUNDS alternating rounds;
# prints medians of req/s and p99, CPU seconds and peak RSS of nginx's worker (NGINX_PID) and edgeguard (EG_PID),
# and the ratio.
bench_case() {
    local name=$1 nurl=$2 eurl=$3; shift 3
    local ng_rps=() ng_p99=() eg_rps=() eg_p99=() rps p99
    local nw; nw=$(worker_pid "$NGINX_PID")
    local ng_cpu0 eg_cpu0; ng_cpu0=$(cpu_secs "$nw"); eg_cpu0=$(cpu_secs "$EG_PID")
    taskset -c 1 wrk -t1 -c8 -d1s "$@" "$nurl" > /dev/null; taskset -c 1 wrk -t1 -c8 -d1s "$@" "$eurl" > /dev/null
    for i in $(seq 1 "$ROUNDS"); do
        read -r rps p99 < <(run_wrk "$nurl" "$@"); ng_rps+=("$rps"); ng_p99+=("$p99")
        read -r rps p99 < <(run_wrk "$eurl" "$@"); eg_rps+=("$rps"); eg_p99+=("$p99")
        echo "  round $i: nginx ${ng_rps[-1]} req/s, edgeguard ${eg_rps[-1]} req/s" >&2
    done
    local ng_cpu eg_cpu nr np er ep
    ng_cpu=$(awk -v a="$(cpu_secs "$nw")" -v b="$ng_cpu0" 'BEGIN { printf "%.1f", a - b }')
    eg_cpu=$(awk -v a="$(cpu_secs "$EG_PID")" -v b="$eg_cpu0" 'BEGIN { printf "%.1f", a - b }')
    nr=$(printf '%s\n' "${ng_rps[@]}" | median); np=$(printf '%s\n' "${ng_p99[@]}" | median)
    er=$(printf '%s\n' "${eg_rps[@]}" | median); ep=$(printf '%s\n' "${eg_p99[@]}" | median)
    printf '%-10s %-10s %12s %10s %8s %9s\n' "$name" nginx "$nr" "$np" "$ng_cpu" "$(peak_rss_mb "$nw")"
    printf '%-10s %-10s %12s %10s %8s %9s\n' "$name" edgeguard "$er" "$ep" "$eg_cpu" "$(peak_rss_mb "$EG_PID")"
    printf '%-10s %-10s %12s\n' "$name" "ratio" "$(awk -v e="$er" -v n="$nr" 'BEGIN { printf "%.2f", e / n }')"
}
