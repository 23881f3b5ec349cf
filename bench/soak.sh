#!/usr/bin/env bash
# Soak run: the proxy under steady mixed load for SOAK_SECONDS (default 600) with RSS, heap,
# handles, sockets and descriptors sampled; prints the trend and PASS/FAIL (see bench/soak.ts).
# Never part of the tests. Knobs: SOAK_SECONDS, SOAK_SAMPLE_SECONDS, SOAK_WORKERS,
# SOAK_MAX_SLOPE_MIB_PER_MIN.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cproxy-soak.XXXXXX")
runner=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$runner" ]; then
    # The runner leads its own process group: the proxy is in it.
    kill -TERM -- "-$runner" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

setsid node dist/bench/soak.js "$tmp" &
runner=$!
status=0
wait "$runner" || status=$?
exit "$status"
