package proxy

# Corrected version of seed/time-based-auth.rego:
# - `import time` is not valid Rego (imports start with data, input, future or rego);
#   time.now_ns() is a builtin and needs no import.
# - time.now_ns() / 1000000000 is not a whole number; floor() makes "%d" well defined.
# hmac.sha256(key, message) is provided by connectors-proxy (OPA's own builtin is
# crypto.hmac.sha256(message, key)).

current_time := floor(time.now_ns() / 1000000000)

auth = {
  "position": "header",
  "auth": {
    "X-Timestamp": sprintf("%d", [current_time]),
    "X-Signature": hmac.sha256(input.api_secret, sprintf("%d", [current_time]))
  }
}
