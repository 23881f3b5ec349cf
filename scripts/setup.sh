#!/usr/bin/env bash
# Installs what the proxy needs to run and builds it. Idempotent: a second run only
# rebuilds what changed. Usage: scripts/setup.sh [--test] [--bench]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache

want_test=0; want_bench=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --bench) want_test=1; want_bench=1 ;;
  esac
done

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ ! -f .cache/apt-updated ] || [ -n "$(find .cache/apt-updated -mmin +720 2>/dev/null)" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq && touch .cache/apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

command -v node >/dev/null || { echo "setup: Node.js 20 or newer is required" >&2; exit 1; }
command -v git >/dev/null || apt_install git

# npm ci only when the lock file changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat .cache/npm-lock.sha256 2>/dev/null)" != "$lock_sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > .cache/npm-lock.sha256
fi
npx --no-install tsc -p tsconfig.json
# The real OPA compiler: the proxy compiles Rego policies to wasm with it at run time.
bash scripts/install-opa.sh >/dev/null

if [ $want_test -eq 1 ]; then
  apt_install git curl openssl
  # Real etcd + kube-apiserver + kubectl for the Kubernetes-mode tests (built once, cached).
  bash scripts/install-kube.sh
  # hadolint for the Dockerfile lint in test/image.test.ts (linked in .cache/).
  bash scripts/install-hadolint.sh >/dev/null
  # A real registry (distribution 2.8) and OCI clients for test/oci.test.ts; crane from the Go proxy.
  apt_install docker-registry skopeo
  bash scripts/install-oci.sh >/dev/null
  # Verdaccio (npm) and pypiserver (PyPI) for test/package-registries.test.ts (pinned, cached).
  command -v python3 >/dev/null || apt_install python3 python3-venv
  bash scripts/install-package-registries.sh
  # HTTPS tools for the interception tests: nginx (TLS) in front of git http-backend via fcgiwrap.
  apt_install nginx-light fcgiwrap
fi
if [ $want_bench -eq 1 ]; then
  apt_install wrk nginx-light
fi
