#!/usr/bin/env bash
# Concurrent streams: N downloads or uploads through the proxy at once, the slow side at a
# fixed rate, every byte hash-checked, the proxy's RSS sampled (see bench/streams.ts and
# bench/README.md, "Concurrent streams"). Never part of the tests.
# Knobs: STREAMS_N, STREAMS_RATE_KIB, STREAMS_MIB, STREAMS_CASES, STREAMS_PEERS, ... (README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench
# A thousand streams hold two thousand sockets in the proxy: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
source bench/group.sh
run_in_group cproxy-streams dist/bench/streams.js
