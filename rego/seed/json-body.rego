package proxy
auth = {
  "position": "body",
  "contentType": "application/json",
  "auth": {
    "username": input.username,
    "password": input.password,
    "client_id": input.client_id
  }
}
