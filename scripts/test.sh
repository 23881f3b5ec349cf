#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole test suite (node:test).
# Extra arguments are test files to run instead of all, e.g. scripts/test.sh dist/test/units.test.js
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist/test   # no stale compiled tests from deleted sources
bash scripts/setup.sh --test
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find dist/test -maxdepth 1 -name '*.test.js' | sort); fi
exec node --test --test-reporter=spec "${files[@]}"
