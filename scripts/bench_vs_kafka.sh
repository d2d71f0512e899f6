#!/usr/bin/env bash
# Sluice and Apache Kafka side by side, in one run on this machine, with the
# same load generator (scripts/perf_librdkafka.py, librdkafka through
# confluent-kafka) for every broker:
#   kafka-lazy     the reference Kafka (scripts/kafka-ref.sh) with its defaults
#   kafka-durable  the same with log.flush.interval.messages=1 (fsync per batch)
#   sluice         target/release/sluice with its durable default
# For each: start-up time (process start to the first ApiVersions answer),
# idle RSS, produce 1M x 100 B and 200k x 1 KiB at acks=1 and acks=all,
# consume the 1M x 100 B topic, end-to-end p50/p99 at 20k msg/s (acks=all),
# broker CPU per record, and peak RSS (VmHWM). Prints one table per round.
#
# Usage: scripts/bench_vs_kafka.sh [ROUNDS]     (default 1)
#   BENCH_BROKERS="sluice" runs a subset. Each run's own output goes to
#   stderr; the tables to stdout.
# JVM settings: KAFKA_REF_HEAP (default here -Xmx1g -Xms1g, as
# kafka-server-start.sh), G1GC.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
PYTHON=${PYTHON:-python3}
SLUICE=${SLUICE_BIN:-target/release/sluice}
export KAFKA_REF_HEAP=${KAFKA_REF_HEAP:--Xmx1g -Xms1g}
work=$(mktemp -d)
pid=""
kind=""

cleanup() {
  stop_broker
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Seconds until HOST:PORT answers an ApiVersions v0 request.
wait_api_versions() {
  "$PYTHON" - "$1" "$2" <<'PY'
import socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
req = struct.pack(">hhih", 18, 0, 1, -1)
frame = struct.pack(">i", len(req)) + req
deadline = time.time() + 120
while time.time() < deadline:
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.sendall(frame)
        if len(s.recv(4)) == 4:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit(1)
PY
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

start_broker() {
  kind=$1
  local port dir=$work/$kind t0 t1
  port=$(free_port)
  rm -rf "$dir" && mkdir -p "$dir"
  t0=$(date +%s.%N)
  case $kind in
  sluice)
    "$SLUICE" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/out" 2>"$dir/log" &
    pid=$!
    ;;
  kafka-*)
    local props="num.partitions=6"
    [ "$kind" = kafka-durable ] && props="$props log.flush.interval.messages=1"
    scripts/kafka-ref.sh setup
    # Format first (not timed), then time the broker itself.
    KAFKA_REF_PROPS="$props" scripts/kafka-ref.sh start "$dir" "$port" >/dev/null
    scripts/kafka-ref.sh stop "$dir"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    java $KAFKA_REF_HEAP -XX:+UseG1GC -Djava.awt.headless=true -cp "$(scripts/kafka-ref.sh classpath)" \
      kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    pid=$!
    ;;
  esac
  wait_api_versions 127.0.0.1 "$port"
  t1=$(date +%s.%N)
  bootstrap=127.0.0.1:$port
  startup=$(echo "$t1 - $t0" | bc -l)
  sleep 5
  idle_rss=$(rss_kb "$pid")
}

stop_broker() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}

load() {
  "$PYTHON" scripts/perf_librdkafka.py --bootstrap "$bootstrap" --broker-pid "$pid" "$@"
}

# "rate cpu_us_per_record" from a perf_librdkafka.py produce/consume run.
rate_and_cpu() {
  local out
  out=$(load "$@")
  echo "$out" >&2
  local rate cpu
  rate=$(echo "$out" | sed -n 's/.*throughput=\([0-9,]*\) records.*/\1/p' | tr -d ,)
  cpu=$(echo "$out" | sed -n 's/.*per record=\([0-9.]*\) us.*/\1/p')
  echo "$rate $cpu"
}

run_one() {
  start_broker "$1"
  local r
  declare -A rate cpu
  for spec in "p100_1:1000000:100:1" "p100_all:1000000:100:all" "p1k_1:200000:1024:1" "p1k_all:200000:1024:all"; do
    IFS=: read -r name n size acks <<<"$spec"
    r=$(rate_and_cpu --topic "$name" --num-records "$n" --record-size "$size" --acks "$acks")
    rate[$name]=${r% *}
    cpu[$name]=${r#* }
  done
  r=$(rate_and_cpu --consume --topic p100_1 --num-records 1000000 --record-size 100)
  rate[consume]=${r% *}
  cpu[consume]=${r#* }
  local e2e
  e2e=$(load --e2e --topic e2e --partitions 1 --num-records 100000 --rate 20000 --acks all --record-size 100)
  echo "$e2e" >&2
  local p50 p99
  p50=$(echo "$e2e" | sed -n 's/.*p50=\([0-9.]*\)ms.*/\1/p')
  p99=$(echo "$e2e" | sed -n 's/.*p99=\([0-9.]*\)ms p99.9.*/\1/p')
  local peak
  peak=$(hwm_kb "$pid")
  stop_broker
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %d | %d |\n' "$1" \
    "${rate[p100_1]}" "${rate[p100_all]}" "${rate[p1k_1]}" "${rate[p1k_all]}" "${rate[consume]}" \
    "$p50" "$p99" "${cpu[p100_1]}" "${cpu[p1k_all]}" "$startup" "$((idle_rss / 1024))" "$((peak / 1024))"
}

for round in $(seq 1 "$rounds"); do
  echo
  echo "round $round"
  echo "| broker | produce 100 B acks=1 rec/s | 100 B acks=all | 1 KiB acks=1 | 1 KiB acks=all | consume 100 B rec/s | e2e p50 ms | e2e p99 ms | CPU µs/rec 100 B acks=1 | CPU µs/rec 1 KiB acks=all | start-up s | idle RSS MiB | peak RSS MiB |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for b in ${BENCH_BROKERS:-kafka-lazy kafka-durable sluice}; do
    run_one "$b"
  done
done
