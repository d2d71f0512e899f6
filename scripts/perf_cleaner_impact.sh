#!/usr/bin/env bash
# Produce throughput to a plain topic while the log cleaner works, for
# docs/PERFORMANCE.md. A rate-limited librdkafka producer keeps a compacted
# topic (1 partition, 4 MiB segments, 10k keys, 200 B text values) dirty at
# 50k or 200k records/s (10 or 40 MB/s); with the cleaner enabled
# (log.cleaner.backoff.ms=100, so it never waits long) and disabled
# (log.cleaner.enable=false), the load generator sends 10M x 100 B and
# then 1M x 1 KiB to a 6-partition topic at acks=1. A baseline runs
# without the dirtying producer. Three rounds; a fresh broker per case.
#
# Needs: cargo build --release -p sluice --bench rdkafka_load
# Usage: scripts/perf_cleaner_impact.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
sluice=$target/release/sluice
load=$(ls -t "$target"/release/deps/rdkafka_load-* | grep -v '\.d$' | head -1)
bootstrap=127.0.0.1:${1:-29193}
work=$(mktemp -d)
broker="" dirtier=""
cleanup() {
  local status=$?
  if [ -n "$broker$dirtier" ]; then kill $broker $dirtier 2>/dev/null || true; fi
  wait
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

dirty_end() {
  "$sluice" --bootstrap-server "$bootstrap" --output json topic describe dirty \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitions"][0]["log_end_offset"])'
}

run() { # label cleaner(on|off) dirtying-records-per-second (0: none)
  rm -rf "$work/data"
  local setting="log.cleaner.backoff.ms=100"
  [ "$2" = off ] && setting="log.cleaner.enable=false"
  "$sluice" serve --data-dir "$work/data" --listen "$bootstrap" --set "$setting" \
    >"$work/out" 2>"$work/log" &
  broker=$! dirtier=""
  sleep 1.5
  "$sluice" --bootstrap-server "$bootstrap" topic create plain --partitions 6 >/dev/null
  "$sluice" --bootstrap-server "$bootstrap" topic create dirty --partitions 1 \
    --config cleanup.policy=compact --config segment.bytes=4194304 >/dev/null
  if [ "$3" != 0 ]; then
    "$load" throughput "$bootstrap" dirty 1000000000 200 1 --keys=10000 --payload=text \
      --rate="$3" >/dev/null &
    dirtier=$!
    sleep 6
  fi
  local passes_before dirty_before started
  passes_before=$(grep -c 'cleaned a compacted partition' "$work/log" || true)
  dirty_before=$(dirty_end)
  started=$(date +%s.%N)
  echo "== $1: cleaner $2, dirtying producer at up to $3 records/s"
  "$load" throughput "$bootstrap" plain 10000000 100 1 "$broker" | grep -v '^$'
  "$load" throughput "$bootstrap" plain 1000000 1024 1 "$broker" | grep -v '^$'
  local rate cleaned passes
  rate=$(echo "($(dirty_end) - $dirty_before) / ($(date +%s.%N) - $started)" | bc)
  cleaned=$(grep 'cleaned a compacted partition' "$work/log" \
    | tail -n +$((passes_before + 1)) \
    | sed -n 's/.*read_bytes=\([0-9]*\) written_bytes=\([0-9]*\).*/\1+\2/p' | paste -sd+ | bc \
    || true)
  passes=$(( $(grep -c 'cleaned a compacted partition' "$work/log" || true) - passes_before ))
  echo "during the runs: dirtying producer $rate records/s, $passes cleaner passes," \
    "$(( ${cleaned:-0} / 1000000 )) MB read+written by the cleaner"
  if [ -n "$dirtier" ]; then kill "$dirtier"; fi
  kill "$broker"
  wait "$broker" 2>/dev/null || true
  broker="" dirtier=""
}

for _ in 1 2 3; do
  run baseline on 0
  run dirty-10MB/s off 50000
  run dirty-10MB/s on 50000
  run dirty-40MB/s off 200000
  run dirty-40MB/s on 200000
done
