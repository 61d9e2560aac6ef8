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
# The fuzz targets' corpora run in the suite below (crates/e2e/tests/fuzz_corpus.rs); where a nightly toolchain and
# cargo-fuzz are already installed, each target also fuzzes for a bounded time.
if rustup toolchain list 2>/dev/null | grep -q '^nightly' && command -v cargo-fuzz >/dev/null 2>&1; then
    bash scripts/fuzz.sh "${EDGEGUARD_FUZZ_SECONDS:-15}"
else
    echo "fuzzing skipped (needs a nightly toolchain and cargo-fuzz); the corpora run in the test suite"
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked
fi
