#!/usr/bin/env bash
# TLS cost, side by side on one broker serving PLAINTEXT and SASL_SSL
# (SCRAM-SHA-512) at once: `sluice perf produce` and `sluice perf consume`
# over each, alternating, ROUNDS rounds, with the broker's CPU seconds per
# run from /proc; then the connection set-up rate (connect, ApiVersions,
# close) for plaintext, TLS and TLS+SCRAM.
# Usage: scripts/perf_tls.sh [RECORDS] [RECORD_SIZE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
size=${2:-1024}
rounds=${3:-3}
bin=${SLUICE_BIN:-target/release/sluice}
work=$(mktemp -d)
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
"$bin" dev certs --dir "$work/certs" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
plain=127.0.0.1:$(port)
sasl_ssl=127.0.0.1:$(port)
"$bin" serve --listen "PLAINTEXT://$plain,SASL_SSL://$sasl_ssl" --data-dir "$work/data" \
  --set http.listeners= --set "ssl.keystore.location=$work/certs/broker.pem" \
  --add-scram 'SCRAM-SHA-512=[name=perf,password=perf-secret]' >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do grep -q '^Sluice broker listening' "$work/out" 2>/dev/null && break; sleep 0.1; done
cat >"$work/sasl_ssl.properties" <<END
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=perf
sasl.password=perf-secret
ssl.ca.location=$work/certs/ca.pem
END
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
run() { # name bootstrap config-args...
  local name=$1 bootstrap=$2; shift 2
  local topic="perf-$name-$RANDOM"
  "$bin" --bootstrap-server "$bootstrap" "$@" topic create "$topic" --partitions 6 >/dev/null
  local before after
  before=$(cpu)
  local produced
  produced=$("$bin" --bootstrap-server "$bootstrap" "$@" --output json perf produce --topic "$topic" \
    --num-records "$records" --record-size "$size" --acks 1)
  after=$(cpu)
  local consumed cbefore cafter
  cbefore=$(cpu)
  consumed=$("$bin" --bootstrap-server "$bootstrap" "$@" --output json perf consume --topic "$topic" \
    --messages "$records")
  cafter=$(cpu)
  python3 - "$name" "$produced" "$consumed" "$before" "$after" "$cbefore" "$cafter" "$hz" "$records" <<'PY'
import json, sys
name, p, c, b, a, cb, ca, hz, n = sys.argv[1:]
p, c, hz, n = json.loads(p), json.loads(c), int(hz), int(n)
pr = p.get("records_per_sec") or p.get("records_per_second")
cr = c.get("records_per_sec") or c.get("records_per_second")
print(f"{name:10} produce {pr:>10.0f} rec/s  broker {1e6*(int(a)-int(b))/hz/n:5.2f} us/rec   "
      f"consume {cr:>10.0f} rec/s  broker {1e6*(int(ca)-int(cb))/hz/n:5.2f} us/rec")
PY
}
echo "$records x $size B, acks=1, 6 partitions, $rounds rounds ($(nproc) cores)"
for r in $(seq 1 "$rounds"); do
  run plaintext "$plain"
  run sasl_ssl "$sasl_ssl" --command-config "$work/sasl_ssl.properties"
done
python3 - "$plain" "$sasl_ssl" "$work/certs/ca.pem" <<'PY'
import socket, ssl, struct, sys, time
plain, tls_addr, ca = sys.argv[1:]
def addr(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)
api_versions = struct.pack(">hhih", 18, 0, 1, -1)
frame = struct.pack(">i", len(api_versions)) + api_versions
context = ssl.create_default_context(cafile=ca)
def one(a, wrap):
    s = socket.create_connection(addr(a))
    if wrap:
        s = context.wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(frame)
    n = struct.unpack(">i", s.recv(4))[0]
    got = 0
    while got < n:
        got += len(s.recv(n - got))
    s.close()
for name, a, wrap in [("plaintext", plain, False), ("tls", tls_addr, True)]:
    start, count = time.time(), 300
    for _ in range(count):
        one(a, wrap)
    print(f"connection set-up ({name:9}): {count / (time.time() - start):7.0f} connections/s (connect, ApiVersions, close)")
PY
