package proxy

# spec.proxy.authExtractor.rego (from connectors_proxy.mdx): clients such as glab send their
# ServiceAccount token in the `Private-Token` header instead of Authorization.
auth = {
  "token": input.request.headers["Private-Token"][0]
}
