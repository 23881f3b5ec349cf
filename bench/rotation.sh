#!/usr/bin/env bash
# What a Secret rotation costs with BENCH_CONNECTORS (default 10,000) Connectors: see bench/rotation.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec node --expose-gc --max-semi-space-size=256 dist/bench/rotation.js "${BENCH_CONNECTORS:-10000}"
