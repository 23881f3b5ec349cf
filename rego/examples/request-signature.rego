package proxy

import rego.v1

# Signs each request: the signature covers the method, the path and a timestamp, so it
# uses input.request and is evaluated per request (request-independent policies are
# evaluated once per Secret version).
ts := sprintf("%d", [floor(time.now_ns() / 1000000)])

auth := {
  "position": "header",
  "auth": {
    "X-Key-Id": input.key_id,
    "X-Timestamp": ts,
    "X-Signature": crypto.hmac.sha256(concat("\n", [input.request.method, input.request.path, ts]), input.secret),
  },
}
