#!/usr/bin/env bash
# Benchmarks connectors-proxy side by side with peers on loopback (see bench/README.md).
# Installs what it needs (wrk, nginx-light) and builds, then runs dist/bench/run.js.
# Knobs: BENCH_* environment variables, listed in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench

source bench/group.sh
run_in_group cproxy-bench dist/bench/run.js
