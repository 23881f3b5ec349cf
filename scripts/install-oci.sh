#!/usr/bin/env bash
# The OCI tools test/oci.test.ts drives: Debian's docker-registry (CNCF distribution 2.8) and
# skopeo (installed by scripts/setup.sh --test), and the pinned crane (go-containerregistry),
# built here from the Go module proxy once into the cache outside the repository and linked
# as .cache/crane. oras is not in Debian. Idempotent. Prints the crane binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
CRANE_VERSION="${CRANE_VERSION:-v0.20.7}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"

# docker-registry and skopeo come from Debian (scripts/setup.sh --test installs them with apt).
for tool in docker-registry skopeo; do
  command -v "$tool" >/dev/null || { echo "install-oci: $tool is missing: run scripts/setup.sh --test (Debian packages docker-registry, skopeo)" >&2; exit 1; }
done

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
