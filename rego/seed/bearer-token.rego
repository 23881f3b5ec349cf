package proxy
auth = {
  "position": "header",
  "auth": {
    "Authorization": concat(" ", ["Bearer", input.token])
  }
}
