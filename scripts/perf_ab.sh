#!/usr/bin/env bash
# A/B of two sluice release binaries in one run (the machine's load moves
# both alike): a fresh broker per run, 6 partitions, 1M x 100 B at acks=all
# with `sluice perf produce`, then `sluice perf consume` of the same records;
# three alternating rounds. Prints records/s (and produce errors).
# Usage: scripts/perf_ab.sh OLD_BINARY NEW_BINARY
set -u
OLD=${1:?old sluice binary}
NEW=${2:?new sluice binary}
run() {
  local bin=$1 port=$2 dir=/tmp/ab-data-$2
  rm -rf $dir
  $bin serve --data-dir $dir --listen 127.0.0.1:$port > /tmp/ab-broker-$port.log 2>&1 &
  local pid=$!
  sleep 1.5
  $bin --bootstrap-server 127.0.0.1:$port topic create perf --partitions 6 > /dev/null
  local p=$($bin --bootstrap-server 127.0.0.1:$port perf produce --topic perf --num-records 1000000 --record-size 100 --acks all --output json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d.get(\"records_per_sec\",0)), d.get(\"errors\",\"\"))")
  local c=$($bin --bootstrap-server 127.0.0.1:$port perf consume --topic perf --messages 1000000 --output json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d.get(\"records_per_sec\",0)), d.get(\"errors\",\"\"))")
  kill -TERM $pid; wait $pid 2>/dev/null
  echo "$(basename $bin) produce=$p"
  echo "$(basename $bin) consume=$c"
}
for i in 1 2 3; do
  run "$OLD" 29101
  run "$NEW" 29102
done
