package proxy
auth = {
  "position": "query",
  "auth": {
    "api_key": input.apikey
  }
}
