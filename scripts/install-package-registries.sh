#!/usr/bin/env bash
# The package registries test/package-registries.test.ts drives through the proxy: Verdaccio
# (npm, pinned, from the npm registry) and pypiserver (PyPI, pinned, from PyPI into a venv).
# Both go into the cache outside the repository, once, and are linked under .cache/. They are
# test tools, not dependencies of the proxy. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERDACCIO_VERSION="${VERDACCIO_VERSION:-6.7.4}"   # the newest 6.x that runs on Node 20
PYPISERVER_VERSION="${PYPISERVER_VERSION:-2.4.2}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"
mkdir -p .cache

v="$cache/verdaccio/$VERDACCIO_VERSION"
if [ ! -x "$v/node_modules/.bin/verdaccio" ]; then
  echo "install-package-registries: installing verdaccio $VERDACCIO_VERSION (once)" >&2
  rm -rf "$v.tmp" && mkdir -p "$v.tmp"
  # verdaccio-audit asks for node-fetch by the dist-tag "cjs", which registry mirrors may not
  # carry; the tag names node-fetch 2.x, pinned here.
  printf '{"name":"verdaccio-install","private":true,"dependencies":{"verdaccio":"%s"},"overrides":{"node-fetch":"2.7.0"}}\n' "$VERDACCIO_VERSION" > "$v.tmp/package.json"
  (cd "$v.tmp" && npm install --no-audit --no-fund --loglevel=error --omit=dev >&2)
  rm -rf "$v" && mv "$v.tmp" "$v"
fi
ln -sfn "$v/node_modules/.bin/verdaccio" .cache/verdaccio

p="$cache/pypiserver/$PYPISERVER_VERSION"
if ! [ -x "$p/bin/pypi-server" ]; then
  echo "install-package-registries: installing pypiserver $PYPISERVER_VERSION (once)" >&2
  rm -rf "$p" && python3 -m venv "$p"
  "$p/bin/pip" install -q --disable-pip-version-check "pypiserver[passlib]==$PYPISERVER_VERSION" >&2
fi
ln -sfn "$p/bin/pypi-server" .cache/pypi-server
