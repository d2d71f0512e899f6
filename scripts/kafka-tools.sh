#!/usr/bin/env bash
# Apache Kafka's own command-line tools against a Sluice broker: each check
# runs the tool's real main class from the Kafka release pinned in
# interop/jvm/pom.xml (4.3.1; jars resolved by `scripts/kafka-ref.sh setup`)
# and asserts on its output or on its effect, as read back with another tool:
#   kafka-broker-api-versions  BrokerApiVersionsCommand
#   kafka-topics               TopicCommand: create (partitions, configs), list,
#                              describe, alter partitions, delete, errors
#   kafka-configs              ConfigCommand: topic and broker (per broker and
#                              cluster default) describe/alter/delete, errors;
#                              client quotas of users, clients, their
#                              defaults and ips (AlterClientQuotas,
#                              DescribeClientQuotas)
#   kafka-console-producer     ConsoleProducer: keys, headers, lz4, acks=all
#   kafka-console-consumer     ConsoleConsumer: from-beginning, max-messages,
#                              partition/offset, group, read_committed
#   kafka-consumer-groups      ConsumerGroupCommand: list (state, type),
#                              describe (lag, members, state; classic and KIP-848),
#                              reset-offsets, delete-offsets, delete
#   kafka-get-offsets          GetOffsetShell: -1, -2, timestamps, partitions
#   kafka-delete-records       DeleteRecordsCommand (JSON offsets file)
#   kafka-transactions         TransactionsCommand: list, describe,
#                              describe-producers, find-hanging
#   kafka-log-dirs             LogDirsCommand --describe
#   kafka-producer-perf-test   ProducerPerformance (also transactional)
#   kafka-consumer-perf-test   ConsumerPerformance
#   kafka-leader-election      LeaderElectionCommand PREFERRED (a partition), UNCLEAN (all)
#   kafka-metadata-quorum      MetadataQuorumCommand describe --status/--replication
#   kafka-features             FeatureCommand describe
#   kafka-acls                 AclCommand: SECURITY_DISABLED without an
#                              authorizer; with one (a second broker), add,
#                              list (literal and prefixed), remove
# What the real Kafka prints for the same commands was taken from a reference
# broker (`scripts/kafka-ref.sh start DIR`); docs/COMPATIBILITY.md lists the
# results and the differences.
#
# Usage: scripts/kafka-tools.sh [HOST:PORT]
#   With no argument, starts ${SLUICE_BIN:-target/release/sluice} on a free
#   port with a temporary data directory, and stops it afterwards.
# Prints PASS/FAIL/KNOWN lines; exits non-zero when anything failed.
# KNOWN marks a check that fails because of a known Sluice defect (the
# `known_gap` line just before the check names it); it does not fail the run
# unless KAFKA_TOOLS_STRICT=1. When the defect is fixed, the check prints
# PASS with a reminder to delete its known_gap line.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/start-sluice.sh
. scripts/lib/start-sluice.sh

PYTHON=${PYTHON:-python3}
failures=0
passes=0
knowns=0
broker_pid=""
bg_pids=()
workdir=$(mktemp -d)
started=$(date +%s)

cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

# ---- results ----------------------------------------------------------------
gap=""
# known_gap "<tool>: <reason>": the next check fails because of this Sluice
# defect; report it as KNOWN rather than FAIL.
known_gap() { gap=$*; }
pass() {
  if [ -n "$gap" ]; then
    echo "PASS $* (known gap no longer reproduces: \"$gap\"; remove its known_gap line)"
  else
    echo "PASS $*"
  fi
  passes=$((passes + 1))
  gap=""
}
# fail NAME: also shows the start of the last tool's output.
fail() {
  if [ -n "$gap" ] && [ "${KAFKA_TOOLS_STRICT:-0}" != 1 ]; then
    echo "KNOWN $* -- $gap"
    knowns=$((knowns + 1))
  else
    echo "FAIL $*${gap:+ -- known gap: $gap}"
    failures=$((failures + 1))
  fi
  if [ -n "${out:-}" ] && [ -f "$out" ]; then
    grep -v -e '^\s*at ' -e 'KIP-848) is production-ready' "$out" | head -8 | sed 's/^/    | /'
  fi
  gap=""
}
# check NAME CMD...: PASS when CMD succeeds.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
has() { grep -qE -- "$1" "$out"; }
hasnt() { ! grep -qE -- "$1" "$out"; }
ok_has() { [ "$rc" -eq 0 ] && has "$1"; }

# ---- the tools ----------------------------------------------------------------
scripts/kafka-ref.sh setup || { echo "cannot resolve the Kafka jars (scripts/kafka-ref.sh setup)" >&2; exit 2; }
CP=$(scripts/kafka-ref.sh classpath)
# Short-lived tools start faster with the C1 compiler only; the perf tests
# get the full JIT.
TOOL_JVM=${KAFKA_TOOLS_JVM:--Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
PERF_JVM=${KAFKA_TOOLS_PERF_JVM:--Xmx512m}
n=0
out=""
rc=0
# tool CLASS ARGS…: runs a Kafka main class; its output (stdout and stderr)
# in $out, its exit status in $rc.
tool() {
  local cls=$1
  shift
  n=$((n + 1))
  out=$workdir/out.$n
  # shellcheck disable=SC2086
  timeout 120 java $TOOL_JVM -cp "$CP" "$cls" "$@" >"$out" 2>&1 </dev/null
  rc=$?
}
tool_in() { # tool_in FILE CLASS ARGS…: with stdin from FILE
  local in=$1 cls=$2
  shift 2
  n=$((n + 1))
  out=$workdir/out.$n
  # shellcheck disable=SC2086
  timeout 120 java $TOOL_JVM -cp "$CP" "$cls" "$@" >"$out" 2>&1 <"$in"
  rc=$?
}
perf_tool() {
  local cls=$1
  shift
  n=$((n + 1))
  out=$workdir/out.$n
  # shellcheck disable=SC2086
  timeout 180 java $PERF_JVM -cp "$CP" "$cls" "$@" >"$out" 2>&1 </dev/null
  rc=$?
}
K=org.apache.kafka.tools
TOPICS=$K.TopicCommand
CONFIGS=kafka.admin.ConfigCommand
PRODUCER=$K.ConsoleProducer
CONSUMER=$K.consumer.ConsoleConsumer
GROUPS_CMD=$K.consumer.group.ConsumerGroupCommand
OFFSETS=$K.GetOffsetShell
DELETE_RECORDS=$K.DeleteRecordsCommand
TXNS=$K.TransactionsCommand
LOG_DIRS=$K.LogDirsCommand
PRODUCER_PERF=$K.ProducerPerformance
CONSUMER_PERF=$K.ConsumerPerformance
QUORUM=$K.MetadataQuorumCommand
LEADER_ELECTION=$K.LeaderElectionCommand
FEATURES=$K.FeatureCommand
ACLS=$K.AclCommand
API_VERSIONS=$K.BrokerApiVersionsCommand

# ---- the broker ---------------------------------------------------------------
data_dir=""
if [ $# -ge 1 ]; then
  BOOTSTRAP=$1
else
  bin=${SLUICE_BIN:-target/release/sluice}
  if [ ! -x "$bin" ]; then
    echo "no sluice binary at $bin: run 'cargo build --release -p sluice' or set SLUICE_BIN" >&2
    exit 2
  fi
  data_dir=$workdir/data
  # As the reference Kafka of scripts/kafka-ref.sh: no initial rebalance delay.
  start_sluice "$bin" "$workdir" group.initial.rebalance.delay.ms=0
fi
BS=(--bootstrap-server "$BOOTSTRAP")
rid=$(date +%s)-$$

# ---- kafka-broker-api-versions ------------------------------------------------
tool $API_VERSIONS "${BS[@]}"
bid=$(sed -n 's/.*(id: \([0-9-]*\) rack.*/\1/p' "$out" | head -1)
if [ "$rc" -eq 0 ] && [ -n "$bid" ] && has '^\s*ApiVersions\(18\): 0 to [0-9]+ \[usable: [0-9]+\]' &&
  has '^\s*Produce\(0\): .*usable: 1[0-9]\]' && has '^\s*Fetch\(1\): .*usable: 1[0-9]\]' &&
  has '^\s*Metadata\(3\): .*usable' && has '^\s*DescribeConfigs\(32\): .*usable' &&
  has '^\s*ConsumerGroupHeartbeat\(68\): .*usable' && has '^\s*DescribeProducers\(61\): .*usable' &&
  [ "$(grep -cE '^\s*[A-Za-z]+\([0-9]+\): [0-9]' "$out")" -ge 35 ]; then
  pass "kafka-broker-api-versions: broker $bid, ApiVersions/Produce/Fetch/Metadata/... usable, $(grep -cE '^\s*[A-Za-z]+\([0-9]+\): [0-9]' "$out") APIs"
else
  fail "kafka-broker-api-versions"
  bid=${bid:-1}
fi

# ---- kafka-topics ---------------------------------------------------------------
T=tools-topic-$rid
tool $TOPICS "${BS[@]}" --create --topic "$T" --partitions 3 --config retention.ms=3600000 --config cleanup.policy=delete
check "kafka-topics --create --partitions 3 --config" ok_has "^Created topic $T\.$"
tool $TOPICS "${BS[@]}" --describe --topic "$T"
check "kafka-topics --describe: 3 partitions, replication factor 1, the configs, leaders" eval \
  'ok_has "^Topic: $T\s+TopicId: \S+\s+PartitionCount: 3\s+ReplicationFactor: 1\s+Configs: .*cleanup.policy=delete" &&
   has "retention.ms=3600000" &&
   [ "$(grep -cE "^\s+Topic: $T\s+Partition: [0-2]\s+Leader: $bid\s+Replicas: $bid\s+Isr: $bid" "$out")" -eq 3 ]'
tool $TOPICS "${BS[@]}" --create --topic "$T" --partitions 1
check "kafka-topics --create of an existing topic fails (TopicExistsException)" eval '[ "$rc" -ne 0 ] && has "TopicExistsException"'
tool $TOPICS "${BS[@]}" --create --topic "$T" --partitions 1 --if-not-exists
check "kafka-topics --create --if-not-exists of an existing topic" eval '[ "$rc" -eq 0 ] && hasnt "Exception"'
tool $TOPICS "${BS[@]}" --create --topic "$T-rf2" --partitions 1 --replication-factor 2
check "kafka-topics --create --replication-factor 2 on one broker fails (InvalidReplicationFactorException)" eval \
  '[ "$rc" -ne 0 ] && has "InvalidReplicationFactorException"'
tool $TOPICS "${BS[@]}" --create --topic "$T-ra" --replica-assignment "$bid,$bid"
tool2_rc=$rc
tool $TOPICS "${BS[@]}" --describe --topic "$T-ra"
check "kafka-topics --create --replica-assignment (2 partitions on broker $bid)" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "PartitionCount: 2" && [ "$(grep -cE "Leader: $bid\s+Replicas: $bid\s" "$out")" -eq 2 ]'
tool $TOPICS "${BS[@]}" --alter --topic "$T" --partitions 5
tool2_rc=$rc
tool $TOPICS "${BS[@]}" --describe --topic "$T"
check "kafka-topics --alter --partitions 5" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "PartitionCount: 5" && [ "$(grep -cE "^\s+Topic: $T\s+Partition: [0-4]\s" "$out")" -eq 5 ]'
tool $TOPICS "${BS[@]}" --alter --topic "$T" --partitions 2
check "kafka-topics --alter to fewer partitions fails (InvalidPartitionsException)" eval '[ "$rc" -ne 0 ] && has "InvalidPartitionsException"'
tool $TOPICS "${BS[@]}" --describe --under-replicated-partitions
check "kafka-topics --describe --under-replicated-partitions: none" eval '[ "$rc" -eq 0 ] && [ ! -s "$out" ]'

# ---- kafka-configs: topics ------------------------------------------------------
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --describe
check "kafka-configs --describe topic: the overrides as DYNAMIC_TOPIC_CONFIG" eval \
  'ok_has "^Dynamic configs for topic $T are:" &&
   has "^  retention.ms=3600000 sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:retention.ms=3600000" &&
   has "^  cleanup.policy=delete .*DYNAMIC_TOPIC_CONFIG:cleanup.policy=delete, DEFAULT_CONFIG:log.cleanup.policy=delete"'
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --alter --add-config retention.ms=7200000,max.message.bytes=2000000
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --alter --delete-config cleanup.policy
tool3_rc=$rc
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --describe
check "kafka-configs --alter topic --add-config (two) and --delete-config" eval \
  '[ "$tool2_rc" -eq 0 ] && [ "$tool3_rc" -eq 0 ] && ok_has "^  retention.ms=7200000 " &&
   has "^  max.message.bytes=2000000 .*DEFAULT_CONFIG:message.max.bytes=" && hasnt "cleanup.policy"'
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --describe --all
check "kafka-configs --describe --all topic: every setting, with defaults" eval \
  'ok_has "^All configs for topic $T are:" && has "^  segment.bytes=[0-9]+ .*DEFAULT_CONFIG:log.segment.bytes=" &&
   has "^  flush.messages=" && has "^  cleanup.policy=delete .*DEFAULT_CONFIG" && [ "$(grep -c "^  " "$out")" -ge 25 ]'
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --alter --add-config retention.ms=abc
check "kafka-configs --add-config retention.ms=abc fails (InvalidConfigurationException)" eval \
  '[ "$rc" -ne 0 ] && has "InvalidConfigurationException: Invalid value abc for configuration retention.ms"'
tool $CONFIGS "${BS[@]}" --entity-type topics --entity-name "$T" --alter --add-config no.such.config=1
check "kafka-configs --add-config of an unknown name fails (InvalidConfigurationException)" eval \
  '[ "$rc" -ne 0 ] && has "InvalidConfigurationException: Unknown .*config name: no.such.config"'

# ---- kafka-configs: client quotas ------------------------------------------------
tool $CONFIGS "${BS[@]}" --alter --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152 --entity-type users --entity-name alice
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --describe --entity-type users --entity-name alice
check "kafka-configs --alter/--describe user quotas" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^Quota configs for user-principal .alice. are " &&
   has "producer_byte_rate=1048576.0" && has "consumer_byte_rate=2097152.0"'
tool $CONFIGS "${BS[@]}" --alter --add-config request_percentage=50 --entity-type users --entity-name alice --entity-type clients --entity-default
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --describe --entity-type users --entity-name alice --entity-type clients --entity-default
check "kafka-configs quotas of a user's default client" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^Quota configs for user-principal .alice., the default client-id are request_percentage=50.0"'
tool $CONFIGS "${BS[@]}" --alter --add-config connection_creation_rate=100 --entity-type ips --entity-name 10.1.2.3
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --describe --entity-type ips
check "kafka-configs ip quotas (connection_creation_rate)" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^Quota configs for ip .10.1.2.3. are connection_creation_rate=100.0"'
tool $CONFIGS "${BS[@]}" --alter --add-config producer_byte_rate=1.5 --entity-type users --entity-name alice
check "kafka-configs --add-config of a fractional byte rate fails (InvalidRequestException)" eval \
  '[ "$rc" -ne 0 ] && has "InvalidRequestException"'
tool $CONFIGS "${BS[@]}" --alter --delete-config producer_byte_rate,consumer_byte_rate --entity-type users --entity-name alice
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --describe --entity-type users
check "kafka-configs --delete-config of user quotas" eval '[ "$tool2_rc" -eq 0 ] && [ "$rc" -eq 0 ] && hasnt "producer_byte_rate"'

# ---- kafka-configs: brokers ------------------------------------------------------
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --alter --add-config log.retention.ms=86400000
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --describe
check "kafka-configs --alter/--describe broker $bid: DYNAMIC_BROKER_CONFIG" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^Dynamic configs for broker $bid are:" &&
   has "^  log.retention.ms=86400000 sensitive=false synonyms=\{DYNAMIC_BROKER_CONFIG:log.retention.ms=86400000"'
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --alter --delete-config log.retention.ms
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --describe
check "kafka-configs --alter broker $bid --delete-config" eval '[ "$tool2_rc" -eq 0 ] && ok_has "^Dynamic configs for broker" && hasnt "log.retention.ms"'
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-default --alter --add-config log.segment.bytes=536870912
tool2_rc=$rc
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-default --describe
check "kafka-configs --alter/--describe --entity-default: DYNAMIC_DEFAULT_BROKER_CONFIG" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^Default configs for brokers in the cluster are:" &&
   has "^  log.segment.bytes=536870912 sensitive=false synonyms=\{DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=536870912"'
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --describe
check "kafka-configs --describe broker $bid does not list the cluster-wide default" eval \
  'ok_has "^Dynamic configs for broker $bid are:" && hasnt "log.segment.bytes"'
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-default --alter --delete-config log.segment.bytes
tool2_rc=$rc
# (Where the default landed on the broker itself, take it away there too.)
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --describe
if has "log.segment.bytes"; then
  tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --alter --delete-config log.segment.bytes
fi
tool $CONFIGS "${BS[@]}" --entity-type brokers --entity-name "$bid" --describe --all
check "kafka-configs --describe --all broker $bid: static and default settings" eval \
  '[ "$tool2_rc" -eq 0 ] && ok_has "^All configs for broker $bid are:" &&
   has "^  log.segment.bytes=1073741824 sensitive=false synonyms=\{DEFAULT_CONFIG:log.segment.bytes=1073741824\}" &&
   has "^  advertised.listeners=.*STATIC_BROKER_CONFIG" && has "^  log.flush.interval.messages=" &&
   [ "$(grep -c "^  " "$out")" -ge 50 ]'

# ---- kafka-console-producer / kafka-console-consumer --------------------------------
C=tools-console-$rid
G1=tools-group-$rid
tool $TOPICS "${BS[@]}" --create --topic "$C" --partitions 2
printf 'h1:a,h2:b\tk1\tv1\nh1:c\tk2\tv2\nh1:d\tk3\tv3\nh1:e\tk4\tv4\n' >"$workdir/in1"
tool_in "$workdir/in1" $PRODUCER "${BS[@]}" --topic "$C" --compression-codec lz4 \
  --reader-property parse.key=true --reader-property parse.headers=true \
  --reader-property key.separator=$'\t' --reader-property headers.delimiter=$'\t' \
  --command-property acks=all
check "kafka-console-producer: keys, headers, lz4, acks=all" eval '[ "$rc" -eq 0 ] && hasnt "Exception"'
ts_between=$(date +%s%3N)
sleep 0.05
tool $CONSUMER "${BS[@]}" --topic "$C" --from-beginning --max-messages 4 --group "$G1" --timeout-ms 20000 \
  --formatter-property print.key=true --formatter-property print.headers=true \
  --formatter-property print.partition=true --formatter-property print.offset=true
printf 'Partition:0\tOffset:0\th1:d\tk3\tv3\nPartition:0\tOffset:1\th1:e\tk4\tv4\nPartition:1\tOffset:0\th1:a,h2:b\tk1\tv1\nPartition:1\tOffset:1\th1:c\tk2\tv2\n' >"$workdir/want1"
grep '^Partition:' "$out" | sort >"$workdir/got1"
check "kafka-console-consumer --from-beginning --max-messages 4 --group: keys, headers, partitions (murmur2), offsets" eval \
  '[ "$rc" -eq 0 ] && cmp -s "$workdir/want1" "$workdir/got1" && has "^Processed a total of 4 messages"'
tool $CONSUMER "${BS[@]}" --topic "$C" --partition 0 --offset 1 --max-messages 1 --timeout-ms 20000
check "kafka-console-consumer --partition 0 --offset 1" eval '[ "$rc" -eq 0 ] && [ "$(grep -vE "^(Processed|The consumer rebalance)" "$out")" = "v4" ]'
# Two more records on partition 1 (key k1): the group now lags by 2 there.
printf 'k1\tv5\nk1\tv6\n' >"$workdir/in2"
tool_in "$workdir/in2" $PRODUCER "${BS[@]}" --topic "$C" --reader-property parse.key=true --reader-property key.separator=$'\t'
check "kafka-console-producer: keys, no headers" eval '[ "$rc" -eq 0 ] && hasnt "Exception"'

# ---- kafka-consumer-groups ---------------------------------------------------------
tool $GROUPS_CMD "${BS[@]}" --list
check "kafka-consumer-groups --list" ok_has "^$G1$"
tool $GROUPS_CMD "${BS[@]}" --list --state
check "kafka-consumer-groups --list --state" ok_has "^$G1\s+Empty\s*$"
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --describe: committed offsets, log end offsets, lag" eval \
  'ok_has "has no active members" &&
   has "^$G1\s+$C\s+0\s+2\s+2\s+0\s+-\s+-\s+-\s*$" && has "^$G1\s+$C\s+1\s+2\s+4\s+2\s+-\s+-\s+-\s*$"'
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1" --state
check "kafka-consumer-groups --describe --state (empty classic group)" ok_has "^$G1\s+\S+:[0-9]+\s+\($bid\)\s+-\s+Empty\s+0\s*$"

# An active KIP-848 member (group.protocol=consumer) in the background.
G2=tools-group848-$rid
# shellcheck disable=SC2086
java $TOOL_JVM -cp "$CP" $CONSUMER "${BS[@]}" --topic "$C" --group "$G2" --from-beginning \
  --consumer-property group.protocol=consumer --timeout-ms 12000 >"$workdir/bg848" 2>&1 </dev/null &
bg_pid=$!
bg_pids+=("$bg_pid")
members_ok=false
for _ in $(seq 1 15); do
  tool $GROUPS_CMD "${BS[@]}" --describe --group "$G2" --members
  if ok_has "^$G2\s+\S+\s+/127.0.0.1\s+console-consumer\s+2\s*$"; then members_ok=true; break; fi
  sleep 0.5
done
check "kafka-consumer-groups --describe --members (KIP-848 member with both partitions)" $members_ok
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G2" --state
check "kafka-consumer-groups --describe --state (KIP-848: uniform assignor, Stable, 1 member)" \
  ok_has "^$G2\s+\S+:[0-9]+\s+\($bid\)\s+uniform\s+Stable\s+1\s*$"
tool $GROUPS_CMD "${BS[@]}" --list --type
check "kafka-consumer-groups --list --type (Classic and Consumer)" eval 'ok_has "^$G1\s+Classic\s*$" && has "^$G2\s+Consumer\s*$"'
tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G2" --topic "$C" --to-earliest --execute
check "kafka-consumer-groups --reset-offsets of an active group is refused" has "can only be reset if the group '$G2' is inactive, but the current state is Stable"
wait "$bg_pid" 2>/dev/null
bg_pids=()
check "kafka-console-consumer (KIP-848 group) read all 6 records" eval '[ "$(grep -cE "^v[1-6]$" "$workdir/bg848")" -eq 6 ]'
out=""

tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G1" --topic "$C" --to-earliest --dry-run
tool2_out=$out
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --reset-offsets --to-earliest --dry-run changes nothing" eval \
  'grep -qE "^$G1\s+$C\s+1\s+0\s*$" "$tool2_out" && has "^$G1\s+$C\s+1\s+2\s+4\s+2\s"'
tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G1" --topic "$C" --to-earliest --execute
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --reset-offsets --to-earliest --execute" eval \
  'ok_has "^$G1\s+$C\s+0\s+0\s+2\s+2\s" && has "^$G1\s+$C\s+1\s+0\s+4\s+4\s"'
tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G1" --topic "$C:1" --to-offset 3 --execute
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --reset-offsets --topic T:1 --to-offset 3 --execute" eval \
  'ok_has "^$G1\s+$C\s+0\s+0\s+2\s+2\s" && has "^$G1\s+$C\s+1\s+3\s+4\s+1\s"'
tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G1" --topic "$C" --shift-by 1 --execute
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --reset-offsets --shift-by 1 --execute (clamped at the end)" eval \
  'ok_has "^$G1\s+$C\s+0\s+1\s+2\s+1\s" && has "^$G1\s+$C\s+1\s+4\s+4\s+0\s"'
tool $GROUPS_CMD "${BS[@]}" --reset-offsets --group "$G1" --topic "$C" --to-datetime "$(date -d @$((ts_between / 1000)) +%Y-%m-%dT%H:%M:%S).$(printf %03d $((ts_between % 1000)))" --dry-run
check "kafka-consumer-groups --reset-offsets --to-datetime --dry-run (offsets by timestamp)" eval \
  'ok_has "^$G1\s+$C\s+1\s+2\s*$" && has "^$G1\s+$C\s+0\s+2\s*$"'
tool $GROUPS_CMD "${BS[@]}" --delete-offsets --group "$G1" --topic "$C"
check "kafka-consumer-groups --delete-offsets" eval \
  'ok_has "^Request succeeded for deleting offsets from group $G1" && [ "$(grep -cE "^$C\s+[01]\s+Successful" "$out")" -eq 2 ]'
tool $GROUPS_CMD "${BS[@]}" --delete --group "$G1" --group "$G2"
tool2_rc=$rc
tool2_out=$out
tool $GROUPS_CMD "${BS[@]}" --describe --group "$G1"
check "kafka-consumer-groups --delete (classic and KIP-848 groups)" eval \
  '[ "$tool2_rc" -eq 0 ] && grep -q "Deletion of requested consumer groups (.*) was successful" "$tool2_out" && has "GroupIdNotFoundException"'

# ---- kafka-get-offsets ----------------------------------------------------------------
tool $OFFSETS "${BS[@]}" --topic "$C"
check "kafka-get-offsets (latest)" eval '[ "$rc" -eq 0 ] && [ "$(sort "$out" | tr "\n" " ")" = "$C:0:2 $C:1:4 " ]'
tool $OFFSETS "${BS[@]}" --topic "$C" --time -2
check "kafka-get-offsets --time -2 (earliest)" eval '[ "$rc" -eq 0 ] && [ "$(sort "$out" | tr "\n" " ")" = "$C:0:0 $C:1:0 " ]'
tool $OFFSETS "${BS[@]}" --topic-partitions "$C:1" --time -1
check "kafka-get-offsets --topic-partitions T:1 --time -1" eval '[ "$rc" -eq 0 ] && [ "$(cat "$out")" = "$C:1:4" ]'
tool $OFFSETS "${BS[@]}" --topic "$C" --time "$ts_between"
check "kafka-get-offsets --time <ms> (first offset at or after it)" eval '[ "$rc" -eq 0 ] && [ "$(cat "$out")" = "$C:1:2" ]'
tool $OFFSETS "${BS[@]}" --topic "$C" --time 1
check "kafka-get-offsets --time 1" eval '[ "$rc" -eq 0 ] && [ "$(sort "$out" | tr "\n" " ")" = "$C:0:0 $C:1:0 " ]'
tool $OFFSETS "${BS[@]}" --topic "$C" --time -3
check "kafka-get-offsets --time -3 (max timestamp)" eval '[ "$rc" -eq 0 ] && grep -qE "^$C:1:[0-9]+$" "$out" && grep -qE "^$C:0:[0-9]+$" "$out"'

# ---- kafka-delete-records ----------------------------------------------------------------
printf '{"partitions":[{"topic":"%s","partition":1,"offset":3}],"version":1}\n' "$C" >"$workdir/delete.json"
tool $DELETE_RECORDS "${BS[@]}" --offset-json-file "$workdir/delete.json"
tool2_out=$out
tool $OFFSETS "${BS[@]}" --topic "$C" --time -2
check "kafka-delete-records --offset-json-file: low watermark 3" eval \
  'grep -qE "^partition: $C-1\s+low_watermark: 3$" "$tool2_out" && [ "$(sort "$out" | tr "\n" " ")" = "$C:0:0 $C:1:3 " ]'
printf '{"partitions":[{"topic":"%s","partition":1,"offset":30}],"version":1}\n' "$C" >"$workdir/delete2.json"
tool $DELETE_RECORDS "${BS[@]}" --offset-json-file "$workdir/delete2.json"
check "kafka-delete-records past the high watermark fails (OffsetOutOfRangeException)" has "^partition: $C-1\s+error: .*OffsetOutOfRangeException"

# ---- kafka-transactions ------------------------------------------------------------------
X=tools-txn-$rid
TX=tools-txn-id-$rid
tool $TOPICS "${BS[@]}" --create --topic "$X" --partitions 1
# max.in.flight.requests.per.connection=1: see the known gap below.
perf_tool $PRODUCER_PERF --topic "$X" --num-records 2000 --record-size 100 --throughput -1 "${BS[@]}" \
  --transactional-id "$TX" --transaction-duration-ms 200 --command-property max.in.flight.requests.per.connection=1
check "kafka-producer-perf-test --transactional-id (transactions of 200 ms, 1 request in flight)" ok_has "^2000 records sent"
tool $TXNS "${BS[@]}" list
check "kafka-transactions list" ok_has "^$TX\s+$bid\s+[0-9]+\s+CompleteCommit\s*$"
tool $TXNS "${BS[@]}" describe --transactional-id "$TX"
pid=$(awk -v tx="$TX" '$2 == tx {print $3}' "$out")
check "kafka-transactions describe" ok_has "^$bid\s+$TX\s+[0-9]+\s+[0-9]+\s+CompleteCommit\s+60000\s"
tool $TXNS "${BS[@]}" describe-producers --topic "$X" --partition 0
check "kafka-transactions describe-producers (no open transaction)" ok_has "^${pid:-none}\s+[0-9]+\s+-?[0-9]+\s+-?[0-9]+\s+[0-9]+\s+None\s*$"
tool $TXNS "${BS[@]}" find-hanging --broker-id "$bid"
check "kafka-transactions find-hanging: none" eval 'ok_has "^Topic\s+Partition\s+ProducerId" && [ "$(grep -c . "$out")" -eq 1 ]'
tool $CONSUMER "${BS[@]}" --topic "$X" --from-beginning --isolation-level read_committed --max-messages 2000 --timeout-ms 20000
check "kafka-console-consumer --isolation-level read_committed reads the committed records" ok_has "^Processed a total of 2000 messages"
perf_tool $PRODUCER_PERF --topic "$X" --num-records 20000 --record-size 100 --throughput -1 "${BS[@]}" \
  --transactional-id "$TX-2" --transaction-duration-ms 50
check "kafka-producer-perf-test --transactional-id (transactions of 50 ms, 5 requests in flight)" ok_has "^20000 records sent"

# ---- kafka-log-dirs ------------------------------------------------------------------------
tool $LOG_DIRS "${BS[@]}" --describe --topic-list "$C,$X"
check "kafka-log-dirs --describe: partitions, sizes${data_dir:+, the data directory}" eval \
  '[ "$rc" -eq 0 ] && grep "^{" "$out" | "$PYTHON" -c "
import json, os, sys
d = json.load(sys.stdin)
assert d[\"version\"] == 1, d
(b,) = d[\"brokers\"]
assert b[\"broker\"] == int(sys.argv[1]), b
(ld,) = b[\"logDirs\"]
assert ld[\"error\"] is None, ld
if sys.argv[4]:
    assert os.path.realpath(ld[\"logDir\"]) == os.path.realpath(sys.argv[4]), ld[\"logDir\"]
parts = {p[\"partition\"]: p for p in ld[\"partitions\"]}
assert set(parts) == {sys.argv[2] + \"-0\", sys.argv[2] + \"-1\", sys.argv[3] + \"-0\"}, parts
assert parts[sys.argv[3] + \"-0\"][\"size\"] > 2000 * 100, parts
assert parts[sys.argv[2] + \"-0\"][\"size\"] > 0, parts
assert all(p[\"offsetLag\"] == 0 and not p[\"isFuture\"] for p in parts.values()), parts
" "$bid" "$C" "$X" "$data_dir"'

# ---- kafka-producer-perf-test / kafka-consumer-perf-test ---------------------------------------
P=tools-perf-$rid
tool $TOPICS "${BS[@]}" --create --topic "$P" --partitions 2
perf_tool $PRODUCER_PERF --topic "$P" --num-records 20000 --record-size 100 --throughput -1 "${BS[@]}" --command-property acks=all
tool2_out=$out
tool $OFFSETS "${BS[@]}" --topic "$P"
check "kafka-producer-perf-test --num-records 20000 acks=all" eval \
  'grep -qE "^20000 records sent, " "$tool2_out" && [ "$(awk -F: "{s += \$3} END {print s}" "$out")" -eq 20000 ]'
perf_tool $CONSUMER_PERF "${BS[@]}" --topic "$P" --num-records 20000 --timeout 30000
check "kafka-consumer-perf-test --num-records 20000" eval \
  '[ "$rc" -eq 0 ] && [ "$(awk -F", " "/^[0-9][0-9][0-9][0-9]-/ {print \$5}" "$out")" = 20000 ]'

# ---- kafka-leader-election -------------------------------------------------------------------
tool $LEADER_ELECTION "${BS[@]}" --election-type PREFERRED --topic "$T" --partition 0
check "kafka-leader-election --election-type PREFERRED of a partition its preferred replica leads" \
  ok_has "Valid replica already elected for partitions $T-0"
tool $LEADER_ELECTION "${BS[@]}" --election-type UNCLEAN --all-topic-partitions
check "kafka-leader-election --election-type UNCLEAN --all-topic-partitions: nothing to elect" \
  eval '[ "$rc" -eq 0 ] && hasnt "Exception"'

# ---- kafka-metadata-quorum -------------------------------------------------------------------
tool $QUORUM "${BS[@]}" describe --status
check "kafka-metadata-quorum describe --status" eval 'ok_has "^LeaderId:\s+$bid$" && has "^ClusterId:\s+\S+" && has "^CurrentVoters:\s+\[\{\"id\": $bid"'
tool $QUORUM "${BS[@]}" describe --replication
check "kafka-metadata-quorum describe --replication" ok_has "^$bid\s+\S+\s+[0-9]+\s+0\s+[0-9]+\s+[0-9]+\s+Leader\s*$"

# ---- kafka-features ---------------------------------------------------------------------------
tool $FEATURES "${BS[@]}" describe
check "kafka-features describe: transaction.version finalized at 2" \
  ok_has "^Feature: transaction.version\s+SupportedMinVersion: 0\s+SupportedMaxVersion: 2\s+FinalizedVersionLevel: 2\s+Epoch: [0-9]+"

# ---- kafka-topics: list, delete ------------------------------------------------------------------
tool $TOPICS "${BS[@]}" --list
check "kafka-topics --list (with the internal topics)" eval \
  'ok_has "^$T$" && has "^$C$" && has "^$P$" && has "^__consumer_offsets$" && has "^__transaction_state$"'
tool $TOPICS "${BS[@]}" --list --exclude-internal
check "kafka-topics --list --exclude-internal" eval 'ok_has "^$T$" && hasnt "^__"'
tool $TOPICS "${BS[@]}" --delete --topic "$T"
tool2_rc=$rc
tool $TOPICS "${BS[@]}" --describe --topic "$T"
check "kafka-topics --delete" eval '[ "$tool2_rc" -eq 0 ] && [ "$rc" -ne 0 ] && has "Topic .$T. does not exist"'
tool $TOPICS "${BS[@]}" --delete --topic "$T-ra,$C,$X,$P"
check "kafka-topics --delete of several topics" eval '[ "$rc" -eq 0 ]'

# ---- kafka-acls ----------------------------------------------------------------------------------
tool $ACLS "${BS[@]}" --list
check "kafka-acls --list without an authorizer: SecurityDisabledException" eval \
  '[ "$rc" -ne 0 ] && has "SecurityDisabledException"'
if [ -n "${bin:-}" ]; then
  # A second broker with the StandardAuthorizer; the tool connects over
  # PLAINTEXT as User:ANONYMOUS, made a super user for the purpose.
  acl_dir=$workdir/acl
  mkdir -p "$acl_dir"
  acl_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$acl_port" --data-dir "$acl_dir/data" --set http.listeners= \
    --set authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
    --set super.users=User:ANONYMOUS >"$acl_dir/broker.out" 2>"$acl_dir/broker.log" &
  acl_pid=$!
  bg_pids+=("$acl_pid")
  for _ in $(seq 1 300); do
    grep -q '^Sluice broker listening on ' "$acl_dir/broker.out" 2>/dev/null && break
    sleep 0.1
  done
  ABS=(--bootstrap-server "127.0.0.1:$acl_port")
  tool $ACLS "${ABS[@]}" --add --allow-principal User:alice --operation Read --operation Write --topic orders
  check "kafka-acls --add (Read and Write on a topic)" eval '[ "$rc" -eq 0 ] && has "ResourcePattern\(resourceType=TOPIC, name=orders, patternType=LITERAL\)"'
  tool $ACLS "${ABS[@]}" --add --deny-principal User:bob --operation All --topic pay- --resource-pattern-type prefixed
  check "kafka-acls --add a prefixed DENY" eval '[ "$rc" -eq 0 ]'
  tool $ACLS "${ABS[@]}" --add --allow-principal User:alice --operation Read --group app
  check "kafka-acls --add Read on a group" eval '[ "$rc" -eq 0 ]'
  tool $ACLS "${ABS[@]}" --list --topic orders
  check "kafka-acls --list --topic: alice's Read and Write" eval \
    'ok_has "principal=User:alice, host=\*, operation=READ, permissionType=ALLOW" && has "operation=WRITE"'
  tool $ACLS "${ABS[@]}" --list --topic pay- --resource-pattern-type prefixed
  check "kafka-acls --list a prefixed pattern" eval 'ok_has "principal=User:bob, host=\*, operation=ALL, permissionType=DENY"'
  tool $ACLS "${ABS[@]}" --list --principal User:alice
  check "kafka-acls --list --principal: the topic and the group" eval 'ok_has "name=orders" && has "name=app"'
  tool $ACLS "${ABS[@]}" --remove --force --allow-principal User:alice --operation Write --topic orders
  tool2_rc=$rc
  tool $ACLS "${ABS[@]}" --list --topic orders
  check "kafka-acls --remove: only Write is gone" eval \
    '[ "$tool2_rc" -eq 0 ] && ok_has "operation=READ" && hasnt "operation=WRITE"'
  kill -TERM "$acl_pid" 2>/dev/null
  wait "$acl_pid" 2>/dev/null
fi
out=""

if [ -n "$broker_pid" ] && ! kill -0 "$broker_pid" 2>/dev/null; then
  fail "broker died during the run; its log:"
  tail -50 "$workdir/broker.log"
fi

echo
echo "kafka-tools: $passes passed, $knowns known gaps, $failures failed ($(($(date +%s) - started)) s)"
[ $failures -eq 0 ]
