#!/usr/bin/env bash
# Installs the real Kubernetes control plane the Kubernetes-mode tests run against:
# Debian's etcd (apt) and kube-apiserver + kubectl built from the k8s.io/kubernetes Go module.
# Idempotent: the binaries are built once into a cache OUTSIDE the repository (fresh clones on
# the same machine reuse them) and linked into .cache/kube/; a second run takes a moment.
# Usage: scripts/install-kube.sh            (KUBE_VERSION=v1.x.y to build another version)
set -euo pipefail
cd "$(dirname "$0")/.."

# v1.34.10: a supported minor (go.mod says go 1.24, builds with Go 1.26) whose module and
# staging modules (k8s.io/api v0.34.10, ...) are all on the module proxy and in its checksum
# database (the later v1.34.11 and v1.34.12 are not in the checksum database we can reach).
KUBE_VERSION="${KUBE_VERSION:-v1.34.10}"
cache="${CONNECTORS_PROXY_CACHE:-$HOME/.cache/connectors-proxy}"
dest="$cache/kube/$KUBE_VERSION"
link=.cache/kube

log() { echo "install-kube: $*"; }

# --- etcd (and openssl, for the test certificates) from Debian ------------------------------
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  mkdir -p .cache
  if [ ! -f .cache/apt-updated ] || [ -n "$(find .cache/apt-updated -mmin +720 2>/dev/null)" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq && touch .cache/apt-updated
  fi
  # etcd-server enables a system etcd service where systemd runs; the tests start their own
  # etcd on free ports and do not use it.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
etcd_path=$(command -v etcd)

# --- kube-apiserver and kubectl from the Go module proxy ----------------------------------
built_ok() {
  [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kubectl" ] &&
    "$dest/kubectl" version --client >/dev/null 2>&1 &&
    "$dest/kube-apiserver" --version >/dev/null 2>&1
}

if built_ok; then
  log "kube-apiserver and kubectl $KUBE_VERSION already built in $dest"
else
  command -v go >/dev/null || { echo "install-kube: Go is required to build Kubernetes $KUBE_VERSION" >&2; exit 1; }
  mkdir -p "$dest"
  # One build at a time per version (parallel setups on one machine would race otherwise).
  exec 9>"$dest/.lock"
  flock 9
  if built_ok; then
    log "kube-apiserver and kubectl $KUBE_VERSION built meanwhile by another run"
  else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    minor_patch="${KUBE_VERSION#v1.}"          # 34.10
    staging_version="v0.$minor_patch"          # v0.34.10
    log "building kube-apiserver and kubectl $KUBE_VERSION from the Go module proxy (once; about 4 minutes and 2 GB of memory on 2 cores)"
    start=$(date +%s)
    # k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at
    # v0.0.0 and replaces them with ./staging/...; those replaces do not apply to a dependency,
    # so the wrapper module points each one at its published v0.<minor>.<patch>.
    (
      cd "$work"
      # A throw-away build cache: the binaries are what we keep, not 2.4 GB of objects.
      export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOCACHE="$work/gocache"
      go mod init kube-build >/dev/null 2>&1
      if ! go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" > download.json || grep -q '"Error"' download.json; then
        echo "install-kube: cannot download k8s.io/kubernetes@$KUBE_VERSION:" >&2; cat download.json >&2; exit 1
      fi
      modfile=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' download.json)
      [ -f "$modfile" ] || { echo "install-kube: cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
      go_line=$(grep -m1 '^go ' "$modfile")
      staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$modfile")
      [ -n "$staging" ] || { echo "install-kube: no staging replaces in k8s.io/kubernetes@$KUBE_VERSION go.mod" >&2; exit 1; }
      {
        echo "module kube-build"
        echo
        echo "$go_line"
        echo
        echo "require k8s.io/kubernetes $KUBE_VERSION"
        echo
        echo "replace ("
        for m in $staging; do echo "	$m => $m $staging_version"; done
        echo ")"
      } > go.mod
      log "wrapper go.mod: k8s.io/kubernetes $KUBE_VERSION, $(echo "$staging" | wc -l) staging modules at $staging_version"
      pkg=k8s.io/component-base/version
      ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor_patch%%.*}"
      ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
      ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
      mkdir out
      go build -trimpath -ldflags="$ldflags" -o out/ \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
    )
    # Copy beside, then rename: a concurrent reader never sees half a binary.
    for b in kube-apiserver kubectl; do cp "$work/out/$b" "$dest/.$b.new" && mv -f "$dest/.$b.new" "$dest/$b"; done
    log "built in $(( $(date +%s) - start )) s: kube-apiserver $(du -h "$dest/kube-apiserver" | cut -f1), kubectl $(du -h "$dest/kubectl" | cut -f1)"
    built_ok || { echo "install-kube: the built binaries do not run" >&2; exit 1; }
  fi
  flock -u 9
fi

# Links the tests use (test/support/kube.ts): .cache/kube/{kube-apiserver,kubectl,etcd}.
mkdir -p "$link"
ln -sfn "$dest/kube-apiserver" "$link/kube-apiserver"
ln -sfn "$dest/kubectl" "$link/kubectl"
ln -sfn "$etcd_path" "$link/etcd"
log "$("$link/kube-apiserver" --version), etcd $("$link/etcd" --version | sed -n 's/^etcd Version: //p'), linked in $link/"
