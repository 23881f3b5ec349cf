#!/usr/bin/env bash
# Kubernetes mode at scale (bench/kube-scale.ts): sync time and memory with 10,000
# Connectors and Secrets on a real API server. BENCH_CONNECTORS=N changes the count.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec node dist/bench/kube-scale.js
