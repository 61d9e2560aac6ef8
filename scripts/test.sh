#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests start (nginx as the reference
# for limit decisions, Chromium for browser tests), then formatting, lints and every test of the workspace from one build.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# slowhttptest opens the slowloris connections of crates/proxy/tests/client_limits.rs.
[ -x /usr/bin/slowhttptest ] || need+=(slowhttptest)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
# Headless Chromium drives the challenge page and the console in browser tests.
[ -x /usr/bin/chromium ] || need+=(chromium)
# The cluster tests start their own redis-server (and read its figures with redis-cli).
[ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packaged services are not wanted: tests start their own nginx and redis-server on ports chosen at run time.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx redis-server >/dev/null 2>&1 || true; fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked
fi
