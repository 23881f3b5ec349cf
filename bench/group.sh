# Sourced by bench/run.sh and bench/soak.sh: runs `node <script> <temp dir>` as the leader of
# its own process group and, on any exit (Ctrl-C included), stops the whole group (every
# proxy, server and client it started) and removes the temp folder. Exits with its status.
run_in_group() {
  local name=$1 script=$2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  runner=""
  cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$runner" ]; then
      kill -TERM -- "-$runner" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 -- "-$runner" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$runner" 2>/dev/null || true
    fi
    rm -rf "$tmp"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM HUP
  # Job control is off in a script, so setsid needs no fork: $! is the group leader.
  setsid node "$script" "$tmp" &
  runner=$!
  local status=0
  wait "$runner" || status=$?
  exit "$status"
}
