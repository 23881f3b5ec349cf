package proxy

import time

# 获取当前时间
current_time := time.now_ns() / 1000000000

auth = {
  "position": "header",
  "auth": {
    "X-Timestamp": sprintf("%d", [current_time]),
    "X-Signature": hmac.sha256(input.api_secret, sprintf("%d", [current_time]))
  }
}
