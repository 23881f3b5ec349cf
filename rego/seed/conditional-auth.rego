package proxy

# 默认使用 API key
auth = {
  "position": "header",
  "auth": {
    "X-API-Key": input.apikey
  }
}

# 如果存在 OAuth token,则使用它
auth = {
  "position": "header",
  "auth": {
    "Authorization": concat(" ", ["Bearer", input.oauth_token])
  }
} {
  input.oauth_token != ""
}
