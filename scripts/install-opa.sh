#!/usr/bin/env bash
# Builds the pinned OPA release from the Go module proxy, once, into a cache outside the
# repository (so fresh clones on the same machine reuse it). Prints the binary's path.
# The proxy runs `opa build -t wasm` on generator and authExtractor policies.
set -euo pipefail
OPA_VERSION="${OPA_VERSION:-v1.22.2}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"
dest="$cache/opa/$OPA_VERSION"
if [ -x "$dest/opa" ] && "$dest/opa" version >/dev/null 2>&1; then
  echo "$dest/opa"; exit 0
fi
command -v go >/dev/null || { echo "install-opa: Go is required to build OPA $OPA_VERSION" >&2; exit 1; }
mkdir -p "$dest"
echo "install-opa: building OPA $OPA_VERSION (once; about a minute)" >&2
if ! GOBIN="$dest" GOFLAGS=-trimpath go install "github.com/open-policy-agent/opa@$OPA_VERSION" >&2; then
  # A replace directive in OPA's go.mod makes `go install pkg@version` refuse: build it
  # from a wrapper module that imports OPA's command instead.
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  cat > "$work/main.go" <<'GO'
package main

import (
	"os"

	"github.com/open-policy-agent/opa/cmd"
)

func main() {
	if err := cmd.RootCommand.Execute(); err != nil {
		os.Exit(1)
	}
}
GO
  (cd "$work" && go mod init opa-wrapper >/dev/null 2>&1 && go get "github.com/open-policy-agent/opa@$OPA_VERSION" >&2 && go build -trimpath -o "$dest/opa" . >&2)
fi
"$dest/opa" version >/dev/null
echo "$dest/opa"
