#!/usr/bin/env bash
# Soak run: the proxy under steady mixed load for SOAK_SECONDS (default 600) with RSS, heap,
# handles, sockets and descriptors sampled; prints the trend and PASS/FAIL (see bench/soak.ts).
# Never part of the tests. Knobs: SOAK_SECONDS, SOAK_RATE, SOAK_SAMPLE_SECONDS, SOAK_WORKERS,
# SOAK_MAX_SLOPE_MIB_PER_MIN.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source bench/group.sh
run_in_group cproxy-soak dist/bench/soak.js
