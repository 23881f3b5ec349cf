#!/usr/bin/env bash
# Installs the OCI tools test/oci.test.ts drives, once: Debian's docker-registry (CNCF
# distribution 2.8) and skopeo, and the pinned crane (go-containerregistry) built from the Go
# module proxy into the cache outside the repository, linked as .cache/crane. oras is not in
# Debian. Idempotent. Prints the crane binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
CRANE_VERSION="${CRANE_VERSION:-v0.20.7}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"

missing=()
for pkg in docker-registry skopeo; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-oci: installing Debian packages: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  mkdir -p .cache
  if [ ! -f .cache/apt-updated ] || [ -n "$(find .cache/apt-updated -mmin +720 2>/dev/null)" ]; then
    $sudo apt-get update -qq && touch .cache/apt-updated
  fi
  # The package's postinst starts a registry service where systemd runs; none is wanted here.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dest="$cache/crane/$CRANE_VERSION"
if ! { [ -x "$dest/crane" ] && "$dest/crane" version >/dev/null 2>&1; }; then
  command -v go >/dev/null || { echo "install-oci: Go is required to build crane $CRANE_VERSION" >&2; exit 1; }
  mkdir -p "$dest"
  echo "install-oci: building crane $CRANE_VERSION (once)" >&2
  GOBIN="$dest" GOFLAGS=-trimpath CGO_ENABLED=0 \
    go install -ldflags "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION" \
    "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" >&2
  "$dest/crane" version >/dev/null
fi
mkdir -p .cache
ln -sfn "$dest/crane" .cache/crane
echo "$dest/crane"
