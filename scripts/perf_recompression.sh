#!/usr/bin/env bash
# The cost of broker-side recompression, for docs/PERFORMANCE.md: an
# uncompressed librdkafka producer of text records (--payload=text, about
# 3:1 with zstd) writes to a compression.type=producer topic and to a
# compression.type=zstd topic; a zstd-compressing producer to a `producer`
# topic is the client-side reference. Two rounds of 1M x 100 B and
# 200k x 1 KiB, acks=1, 6 partitions, a fresh topic per run.
#
# Needs: cargo build --release -p sluice --bench rdkafka_load
# Usage: scripts/perf_recompression.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
sluice=$target/release/sluice
load=$(ls -t "$target"/release/deps/rdkafka_load-* | grep -v '\.d$' | head -1)
bootstrap=127.0.0.1:${1:-29192}
data=$(mktemp -d)
"$sluice" serve --data-dir "$data" --listen "$bootstrap" >"$data.out" 2>"$data.log" &
broker=$!
trap 'kill $broker; wait $broker 2>/dev/null; rm -rf "$data" "$data.out" "$data.log"' EXIT
sleep 1.5

run() { # label records size producer-compression [topic config]
  local topic="$1-$RANDOM"
  "$sluice" --bootstrap-server "$bootstrap" topic create "$topic" --partitions 6 "${@:5}" >/dev/null
  echo "== $1: $2 x $3 B, producer compression $4"
  "$load" throughput "$bootstrap" "$topic" "$2" "$3" 1 "$broker" --payload=text --compression="$4" \
    | grep -v '^$'
  echo "stored $(du -cb "$data/$topic"-*/*.log | tail -1 | cut -f1) bytes"
}
for _ in 1 2; do
  for size in 100 1024; do
    records=$([ "$size" = 100 ] && echo 1000000 || echo 200000)
    run producer-topic "$records" "$size" none
    run zstd-topic "$records" "$size" none --config compression.type=zstd
    run producer-topic-zstd-client "$records" "$size" zstd
  done
done
