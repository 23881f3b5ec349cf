#!/usr/bin/env bash
# Benchmarks connectors-proxy side by side with peers on loopback (see bench/README.md).
# Installs what it needs (wrk, nginx-light) and builds, then runs dist/bench/run.js.
# Knobs: BENCH_* environment variables, listed in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cproxy-bench.XXXXXX")
runner=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$runner" ]; then
    # The runner leads its own process group: every proxy, nginx, wrk and curl is in it.
    kill -TERM -- "-$runner" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Job control is off in a script, so setsid needs no fork: $! is the group leader.
setsid node dist/bench/run.js "$tmp" &
runner=$!
status=0
wait "$runner" || status=$?
exit "$status"
