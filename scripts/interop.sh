#!/usr/bin/env bash
# Interop tests with third-party clients against a Sluice broker:
#   - kcat (Debian's, librdkafka 2.0.2): metadata (-L), produce/consume with
#     keys (-K) and every codec (-z), headers
#   - scripts/interop.py: confluent-kafka <-> kafka-python, every codec,
#     topics that recompress, transactions, a KIP-848 group
#   - scripts/metrics_check.py (when this script starts the broker): /metrics
#     parsed by the official Prometheus parser and checked against a
#     confluent-kafka workload; /healthz, /readyz
#   - scripts/console_test.mjs (when this script starts the broker): the web
#     console in Debian's chromium driven by Playwright, kafkajs as client
#   - scripts/interop_kafkajs.mjs: kafkajs 2.2.4 (pure JavaScript, pinned in
#     scripts/kafkajs/): admin topics/configs/metadata/groups/offsets, produce
#     (none/gzip, acks -1/1, keys, headers), classic consumer groups with
#     commits, resume and rebalance, idempotent and transactional producers
#     (sendOffsets), offsets by timestamp, kafkajs <-> kcat. Needs node and
#     `npm ci --prefix scripts/kafkajs`; skipped (not failed) without node.
#
# Usage: scripts/interop.sh [HOST:PORT]
#   With no argument, starts target/release/sluice (or target/debug/sluice)
#   on a free port with a temporary data directory, and stops it afterwards.
# Prints PASS/FAIL lines; exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/start-sluice.sh
. scripts/lib/start-sluice.sh

PYTHON=${PYTHON:-python3}
KCAT=${KCAT:-kcat}
NODE=${NODE:-node}
failures=0
broker_pid=""
workdir=$(mktemp -d)

cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

if [ $# -ge 1 ]; then
  BOOTSTRAP=$1
else
  target_dir=${CARGO_TARGET_DIR:-target}
  if [ -x "$target_dir/release/sluice" ]; then
    bin=$target_dir/release/sluice
  elif [ -x "$target_dir/debug/sluice" ]; then
    bin=$target_dir/debug/sluice
  else
    echo "no sluice binary: run 'cargo build --release -p sluice' first" >&2
    exit 2
  fi
  start_sluice "$bin" "$workdir"
fi

run_id=$(date +%s)-$$

# ---- kcat -------------------------------------------------------------------
if ! command -v "$KCAT" >/dev/null; then
  fail "kcat: not installed"
else
  if "$KCAT" -b "$BOOTSTRAP" -L -m 10 >"$workdir/meta0" 2>&1 && grep -q 'broker' "$workdir/meta0"; then
    pass "kcat -L (metadata)"
  else
    fail "kcat -L (metadata): $(head -c 500 "$workdir/meta0")"
  fi

  for codec in none gzip snappy lz4 zstd; do
    topic="interop-kcat-$codec-$run_id"
    want="$workdir/want-$codec"
    : >"$want"
    for i in $(seq 1 100); do
      printf 'key-%d:value %d %s %s\n' "$i" "$i" "$codec" "$(printf '%*s' $((i % 30)) '' | tr ' ' y)" >>"$want"
    done
    # -P produce, -K key separator, -z codec, -X acks; the topic is created
    # on first use (auto.create.topics.enable).
    if ! "$KCAT" -b "$BOOTSTRAP" -P -t "$topic" -p 0 -K: -z "$codec" \
        -X acks=all -X enable.idempotence=false \
        -H "source=kcat" <"$want" 2>"$workdir/kcat-p-$codec.err"; then
      fail "kcat produce ($codec): $(head -c 500 "$workdir/kcat-p-$codec.err")"
      continue
    fi
    # -C consume from the beginning to the end (-e), key:value per line, and
    # the header of each record.
    got="$workdir/got-$codec"
    if ! timeout 60 "$KCAT" -b "$BOOTSTRAP" -C -t "$topic" -p 0 -o beginning -e -q \
        -f '%k:%s\n' >"$got" 2>"$workdir/kcat-c-$codec.err"; then
      fail "kcat consume ($codec): $(head -c 500 "$workdir/kcat-c-$codec.err")"
      continue
    fi
    if cmp -s "$want" "$got"; then
      pass "kcat produce/consume with keys ($codec)"
    else
      fail "kcat produce/consume with keys ($codec): $(diff "$want" "$got" | head -5)"
    fi
    hdrs=$(timeout 60 "$KCAT" -b "$BOOTSTRAP" -C -t "$topic" -p 0 -o beginning -e -q -f '%h|%o\n' 2>&1)
    if [ "$(printf '%s\n' "$hdrs" | grep -c '^source=kcat|')" -eq 100 ] &&
        [ "$(printf '%s\n' "$hdrs" | tail -1)" = "source=kcat|99" ]; then
      pass "kcat headers and offsets ($codec)"
    else
      fail "kcat headers and offsets ($codec): $(printf '%s\n' "$hdrs" | tail -3)"
    fi
  done

  # Reading a range: offsets 10..19 (-o 10 -c 10).
  topic="interop-kcat-none-$run_id"
  range=$(timeout 60 "$KCAT" -b "$BOOTSTRAP" -C -t "$topic" -p 0 -o 10 -c 10 -q -f '%o %k\n' 2>&1)
  if [ "$(printf '%s\n' "$range" | head -1)" = "10 key-11" ] &&
      [ "$(printf '%s\n' "$range" | tail -1)" = "19 key-20" ]; then
    pass "kcat consume from an offset"
  else
    fail "kcat consume from an offset: $range"
  fi

  if "$KCAT" -b "$BOOTSTRAP" -L -m 10 >"$workdir/meta1" 2>&1 &&
      grep -q "topic \"interop-kcat-zstd-$run_id\" with 1 partitions" "$workdir/meta1"; then
    pass "kcat -L lists the new topics"
  else
    fail "kcat -L lists the new topics: $(grep interop "$workdir/meta1" | head -5)"
  fi
fi

# ---- Python clients ---------------------------------------------------------
if "$PYTHON" -c 'import confluent_kafka, kafka' 2>/dev/null; then
  "$PYTHON" scripts/interop.py "$BOOTSTRAP"
  rc=$?
  [ $rc -eq 0 ] || failures=$((failures + 1))
else
  fail "python clients: confluent-kafka/kafka-python not installed (pip install -r scripts/requirements.txt)"
fi

# ---- /metrics ---------------------------------------------------------------
if [ -z "${HTTP_BASE:-}" ]; then
  echo "SKIP /metrics: the broker was not started by this script (its HTTP address is unknown)"
elif "$PYTHON" -c 'import confluent_kafka, prometheus_client' 2>/dev/null; then
  "$PYTHON" scripts/metrics_check.py "$BOOTSTRAP" "$HTTP_BASE"
  rc=$?
  [ $rc -eq 0 ] || failures=$((failures + 1))
else
  fail "/metrics: prometheus-client not installed (pip install -r scripts/requirements.txt)"
fi

# ---- the console in a browser -----------------------------------------------
if [ -z "${HTTP_BASE:-}" ]; then
  echo "SKIP console: the broker was not started by this script (its HTTP address is unknown)"
elif ! command -v "$NODE" >/dev/null; then
  echo "SKIP console: node is not installed"
elif [ ! -f scripts/console/node_modules/playwright-core/package.json ] || ! command -v chromium >/dev/null; then
  fail "console: playwright-core or chromium not installed (npm ci --prefix scripts/console; apt-get install chromium)"
else
  timeout 300 "$NODE" scripts/console_test.mjs "$HTTP_BASE" "$BOOTSTRAP" "${CONSOLE_ARTIFACTS:-target/console-artifacts}"
  rc=$?
  [ $rc -eq 0 ] || failures=$((failures + 1))
fi

# ---- kafkajs ----------------------------------------------------------------
if ! command -v "$NODE" >/dev/null; then
  echo "SKIP kafkajs: node is not installed"
elif [ ! -f scripts/kafkajs/node_modules/kafkajs/package.json ]; then
  fail "kafkajs: not installed (npm ci --prefix scripts/kafkajs)"
else
  KCAT=$KCAT timeout 300 "$NODE" scripts/interop_kafkajs.mjs "$BOOTSTRAP"
  rc=$?
  [ $rc -eq 0 ] || failures=$((failures + 1))
fi

if [ -n "$broker_pid" ]; then
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    fail "broker died during the run; its log:"
    tail -50 "$workdir/broker.log"
  fi
fi

echo
if [ $failures -eq 0 ]; then
  echo "interop: all passed"
  exit 0
fi
echo "interop: $failures failure(s)"
exit 1
