#!/usr/bin/env bash
# Installs, builds and starts the proxy on its embedded default: the manifests in
# examples/embedded, the tokens in examples/tokens.yaml, and the demo tool they point at.
#   proxy   http://127.0.0.1:8080      ops (metrics, /healthz, /readyz) http://127.0.0.1:9090
#   demo    http://127.0.0.1:8081      (git and an API that require credentials only the proxy has)
# Extra arguments go to the proxy, e.g. scripts/start.sh --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/tools/demo-upstream.js &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
cat <<'TXT'

  Try it (in another terminal):
    curl -u any:demo-client-token http://127.0.0.1:8080/namespaces/demo/connectors/git/demo.git/info/refs?service=git-upload-pack
    git clone http://any:demo-client-token@127.0.0.1:8080/namespaces/demo/connectors/git/demo.git /tmp/demo-clone
    curl -H 'Authorization: Bearer demo-client-token' http://c-api.demo.localhost:8080/whoami
    curl -H 'Authorization: Bearer demo-client-token' http://127.0.0.1:8080/connectors/v1alpha1/demo/api/path/http-api/whoami   # Connectors API
    curl -i http://127.0.0.1:8080/namespaces/demo/connectors/git/demo.git/info/refs   # no token: 401
    curl http://127.0.0.1:9090/status   # Connector and ConnectorClass conditions (probes)

TXT
node dist/src/main.js --listen 127.0.0.1:8080 --ops-listen 127.0.0.1:9090 --domain localhost --public-url http://127.0.0.1:8080 "$@"
