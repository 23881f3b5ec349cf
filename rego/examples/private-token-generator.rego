package proxy

# auth.types[].generator.rego (from connectors_proxy.mdx): the tool's own token goes upstream
# in the same header; the client's token in it is removed first.
auth = {
  "position": "header",
  "auth": {
    "Private-Token": input.data.token
  }
}
