#!/usr/bin/env bash
# Leaf certificates of TLS interception (bench/tls-mint.ts): CPU per minted leaf, and TLS
# handshakes per second with cached leaves next to a fixed certificate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/bench/tls-mint.js
