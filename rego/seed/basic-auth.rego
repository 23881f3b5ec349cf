package proxy
auth = {
  "position": "header",
  "auth": {
    "Authorization": concat(" ", ["Basic", base64.encode(concat(":", [input.username, input.password]))])
  }
}
