# Sourced by the interop scripts. `start_sluice BIN DIR [NAME=VALUE ...]`
# starts `BIN serve` on a free loopback port with DIR/data as its data
# directory and the settings given, waits for its "listening" line, and sets
# BOOTSTRAP, HTTP_BASE (its /metrics listener, on a free port too) and
# broker_pid (the caller stops it). Its output goes to
# DIR/broker.out and DIR/broker.log; if it does not start, prints the log and
# exits 2.
start_sluice() {
  local bin=$1 dir=$2 port kv
  shift 2
  local settings=()
  for kv in "$@"; do settings+=(--set "$kv"); done
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    --set http.listeners=http://127.0.0.1:0 "${settings[@]}" \
    >"$dir/broker.out" 2>"$dir/broker.log" &
  broker_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^Sluice broker listening on ' "$dir/broker.out" 2>/dev/null && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^Sluice broker listening on ' "$dir/broker.out" 2>/dev/null; then
    echo "broker did not start; its log:" >&2
    cat "$dir/broker.out" "$dir/broker.log" >&2
    exit 2
  fi
  BOOTSTRAP=$(sed -n 's/^Sluice broker listening on //p' "$dir/broker.out" | head -1)
  HTTP_BASE=$(sed -n 's#^  metrics at *\(http://[^/]*\)/metrics$#\1#p' "$dir/broker.out" | head -1)
  echo "started $bin on $BOOTSTRAP (pid $broker_pid)"
}
