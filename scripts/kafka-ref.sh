#!/usr/bin/env bash
# The reference Apache Kafka, from the version pinned in interop/jvm/pom.xml.
#
#   scripts/kafka-ref.sh setup            resolve the jars into interop/jvm/target/lib
#                                         (Maven Central the first time, ~/.m2 after)
#   scripts/kafka-ref.sh start DIR [PORT] format DIR as a single-node KRaft cluster
#                                         (combined broker+controller), start Kafka on
#                                         127.0.0.1:PORT (a free port when omitted),
#                                         wait until it answers ApiVersions, print
#                                         the bootstrap address
#   scripts/kafka-ref.sh stop DIR         stop the Kafka started on DIR
#   scripts/kafka-ref.sh run CLASS ARGS…  run a Kafka main class (a tool) with the
#                                         pinned jars, e.g. org.apache.kafka.tools.TopicCommand
#   scripts/kafka-ref.sh classpath        print the classpath
#
# Extra broker settings: KAFKA_REF_PROPS="name=value name=value".
# JVM settings: KAFKA_REF_HEAP (default -Xmx1g -Xms256m).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jvm=$root/interop/jvm
lib=$jvm/target/lib

classpath() {
  [ -d "$lib" ] || setup
  printf '%s:%s' "$jvm/src/main/resources" "$lib/*"
}

setup() {
  if [ ! -f "$lib/.resolved" ] || [ "$jvm/pom.xml" -nt "$lib/.resolved" ]; then
    rm -rf "$lib"
    # Its output goes to stderr: `start` prints only the bootstrap address.
    mvn -q -B -Dstyle.color=never -f "$jvm/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime >&2
    touch "$lib/.resolved"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run() {
  local main=$1
  shift
  java ${KAFKA_REF_TOOL_HEAP:--Xmx512m} -cp "$(classpath)" "$main" "$@"
}

start() {
  local dir=$1 port=${2:-$(free_port)} controller_port
  controller_port=$(free_port)
  setup
  mkdir -p "$dir"
  local props=$dir/server.properties
  cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  for kv in ${KAFKA_REF_PROPS:-}; do echo "$kv" >>"$props"; done
  run kafka.tools.StorageTool format -t "$(run kafka.tools.StorageTool random-uuid)" \
    -c "$props" --ignore-formatted >"$dir/format.log" 2>&1 ||
    { cat "$dir/format.log" >&2; exit 1; }
  # shellcheck disable=SC2086
  nohup java ${KAFKA_REF_HEAP:--Xmx1g -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$(classpath)" kafka.Kafka "$props" >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  for _ in $(seq 1 600); do
    if ! kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
      echo "reference Kafka exited during start-up; its log:" >&2
      tail -50 "$dir/kafka.log" >&2
      exit 1
    fi
    if run org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "127.0.0.1:$port" \
      >/dev/null 2>&1; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  echo "reference Kafka did not answer ApiVersions on 127.0.0.1:$port" >&2
  stop "$dir"
  exit 1
}

stop() {
  local dir=$1 pid
  [ -f "$dir/kafka.pid" ] || return 0
  pid=$(cat "$dir/kafka.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/kafka.pid"
}

cmd=${1:-}
shift || true
case "$cmd" in
setup) setup ;;
start) start "$@" ;;
stop) stop "$@" ;;
run) run "$@" ;;
classpath) classpath ;;
*)
  sed -n '2,18p' "$0" >&2
  exit 2
  ;;
esac
