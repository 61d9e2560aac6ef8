#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 20 s each), starting from the committed
# corpora; new inputs the fuzzer keeps go to a scratch folder, not into the repository. Needs a nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`). A crash fails the run and leaves its input under
# fuzz/artifacts/<target>/.
#
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in config access_log path cookie verify criteria; do
    mkdir -p "$scratch/$t"
    echo "fuzz $t: ${secs}s"
    rc=0
    cargo +nightly fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
        > "$scratch/$t.log" 2>&1 || rc=$?
    grep -E "^Done|SUMMARY|panicked|ERROR" "$scratch/$t.log" || true
    [ "$rc" -eq 0 ] || { tail -40 "$scratch/$t.log" >&2; echo "fuzz $t: crash, input in fuzz/artifacts/$t/" >&2; exit 1; }
done
