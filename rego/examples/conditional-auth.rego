package proxy

# Corrected version of seed/conditional-auth.rego. In the seed two complete `auth` rules
# both produce a value when oauth_token is set, which OPA refuses at evaluation
# ("eval_conflict_error: complete rules must not produce multiple outputs").
# One rule with `else` says the same thing without a conflict.

# Use the OAuth token when the Secret has a non-empty one
auth = {
  "position": "header",
  "auth": {
    "Authorization": concat(" ", ["Bearer", input.oauth_token])
  }
} {
  input.oauth_token != ""
} else = {
  # otherwise the API key
  "position": "header",
  "auth": {
    "X-API-Key": input.apikey
  }
}
