#!/usr/bin/env bash
# How long a producer waits through the SIGKILL of a partition's leader that
# is also the active controller (docs/PERFORMANCE.md, "Failover"): three
# `sluice serve` processes with broker.session.timeout.ms=3000 and
# broker.heartbeat.interval.ms=500, one partition with three replicas led by
# the quorum's leader, then `rdkafka_load resume` (librdkafka, acks=all,
# idempotent) kills it and times the next acknowledged record.
#
#   cargo build --release -p sluice --bins --benches
#   scripts/failover-bench.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
R=$root/target/release/sluice
B=$(ls -t "$root"/target/release/deps/rdkafka_load-* | grep -v '\.d$' | head -1)
runs=${1:-5}
for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  base=$((31000 + run * 100))
  voters="1@127.0.0.1:$((base + 11)),2@127.0.0.1:$((base + 21)),3@127.0.0.1:$((base + 31))"
  pids=()
  for n in 1 2 3; do
    "$R" serve --data-dir "$dir/n$n" --set node.id=$n \
      --set "listeners=PLAINTEXT://127.0.0.1:$((base + n * 10)),CONTROLLER://127.0.0.1:$((base + n * 10 + 1))" \
      --set controller.listener.names=CONTROLLER --set "controller.quorum.voters=$voters" \
      --set http.listeners= --set broker.session.timeout.ms=3000 \
      --set broker.heartbeat.interval.ms=500 >"$dir/n$n.log" 2>&1 &
    pids+=($!)
  done
  bs=127.0.0.1:$((base + 10)),127.0.0.1:$((base + 20)),127.0.0.1:$((base + 30))
  ready=""
  for _ in $(seq 1 150); do
    if "$R" --bootstrap-server "$bs" --output json cluster describe >"$dir/desc.json" 2>/dev/null &&
      python3 -c "import json,sys;d=json.load(open('$dir/desc.json'));sys.exit(0 if len(d['brokers'])==3 and d['quorum']['leader']>0 else 1)"; then
      ready=yes
      break
    fi
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "run $run: the cluster did not form" >&2; kill "${pids[@]}"; exit 1; }
  controller=$(python3 -c "import json;print(json.load(open('$dir/desc.json'))['quorum']['leader'])")
  replicas=$controller
  for n in 1 2 3; do [ "$n" = "$controller" ] || replicas="$replicas,$n"; done
  "$R" --bootstrap-server "$bs" topic create failover --partitions 1 --replication-factor 3 \
    --config min.insync.replicas=2 >/dev/null
  "$R" --bootstrap-server "$bs" topic reassign failover --partition 0 --replicas "$replicas" --wait 30 >/dev/null
  "$R" --bootstrap-server "$bs" cluster elect-leaders --topic failover >/dev/null 2>&1 || true
  sleep 1
  "$B" resume "$bs" failover "${pids[$((controller - 1))]}"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
done
