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
#   - SASL (when this script starts the broker): a second broker on a
#     SASL_PLAINTEXT listener with a user made by --add-scram;
#     scripts/sasl_check.py (confluent-kafka: PLAIN, SCRAM-SHA-256 and
#     SCRAM-SHA-512 logins, wrong password, unknown user; kafka-python over
#     SaslHandshake v0 with raw tokens) and kcat with
#     SCRAM-SHA-512/256 and a wrong password.
#   - OAUTHBEARER (when this script starts the broker): scripts/oauth_check.py
#     starts two more brokers (the unsecured validator; a JWKS file) and
#     logs in with confluent-kafka: librdkafka's unsigned JWTs, ES256
#     tokens from oauth_cb, and refused forged, expired and unsigned ones.
#   - TLS (when this script starts the broker): a third broker serving
#     PLAINTEXT, SSL and SASL_SSL at once with ssl.client.auth=required and
#     certificates from `sluice dev certs`; scripts/tls_check.py
#     (confluent-kafka: mTLS, SASL_SSL SCRAM and PLAIN, per-listener
#     Metadata, refused certificates and protocols), kcat over SSL, the
#     client certificate's subject as the logged principal, and a key store
#     replaced on disk taking effect without a restart.
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
sasl_pid=""
tls_pid=""
workdir=$(mktemp -d)

cleanup() {
  if [ -n "$tls_pid" ] && kill -0 "$tls_pid" 2>/dev/null; then
    kill -TERM "$tls_pid" 2>/dev/null
    wait "$tls_pid" 2>/dev/null
  fi
  if [ -n "$sasl_pid" ] && kill -0 "$sasl_pid" 2>/dev/null; then
    kill -TERM "$sasl_pid" 2>/dev/null
    wait "$sasl_pid" 2>/dev/null
  fi
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

# ---- SASL_PLAINTEXT ----------------------------------------------------------
if [ -z "${bin:-}" ]; then
  echo "SKIP SASL: the broker was not started by this script"
else
  sasl_dir=$workdir/sasl
  mkdir -p "$sasl_dir"
  sasl_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The checks fail logins on purpose, and librdkafka retries each refused
  # one: more than the default per-address limit allows in a minute.
  "$bin" serve --listen "SASL_PLAINTEXT://127.0.0.1:$sasl_port" --data-dir "$sasl_dir/data" \
    --set http.listeners= --set sasl.failed.authentications.per.ip.per.minute=1000 \
    --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]' \
    --add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]' \
    >"$sasl_dir/broker.out" 2>"$sasl_dir/broker.log" &
  sasl_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^Sluice broker listening on ' "$sasl_dir/broker.out" 2>/dev/null && break
    kill -0 "$sasl_pid" 2>/dev/null || break
    sleep 0.1
  done
  sasl_bootstrap=127.0.0.1:$sasl_port
  if ! grep -q '^Sluice broker listening on ' "$sasl_dir/broker.out"; then
    fail "SASL broker did not start: $(cat "$sasl_dir/broker.out" "$sasl_dir/broker.log" | tail -5)"
  else
    if "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
      timeout 300 "$PYTHON" scripts/sasl_check.py "$sasl_bootstrap" admin admin-secret
      rc=$?
      [ $rc -eq 0 ] || failures=$((failures + 1))
    else
      fail "SASL: confluent-kafka not installed (pip install -r scripts/requirements.txt)"
    fi
    if command -v "$KCAT" >/dev/null; then
      kcat_sasl=(-b "$sasl_bootstrap" -X security.protocol=SASL_PLAINTEXT -X sasl.username=admin)
      topic="interop-kcat-sasl-$run_id"
      if printf 'one\ntwo\n' | "$KCAT" "${kcat_sasl[@]}" -X sasl.mechanism=SCRAM-SHA-512 \
          -X sasl.password=admin-secret -P -t "$topic" 2>"$workdir/kcat-sasl-p.err" &&
          [ "$(timeout 60 "$KCAT" "${kcat_sasl[@]}" -X sasl.mechanism=SCRAM-SHA-256 \
            -X sasl.password=admin-secret -C -t "$topic" -o beginning -e -q 2>"$workdir/kcat-sasl-c.err" | tr '\n' ' ')" = "one two " ]; then
        pass "kcat SASL_PLAINTEXT SCRAM-SHA-512 produce, SCRAM-SHA-256 consume"
      else
        fail "kcat SASL_PLAINTEXT SCRAM: $(cat "$workdir/kcat-sasl-p.err" "$workdir/kcat-sasl-c.err" | tail -3)"
      fi
      if timeout 30 "$KCAT" "${kcat_sasl[@]}" -X sasl.mechanism=SCRAM-SHA-256 \
          -X sasl.password=wrong -L -m 5 >"$workdir/kcat-sasl-bad" 2>&1; then
        fail "kcat with a wrong password was served: $(tail -3 "$workdir/kcat-sasl-bad")"
      elif grep -q 'Authentication failed during authentication due to invalid credentials' "$workdir/kcat-sasl-bad"; then
        pass "kcat SASL_PLAINTEXT wrong password refused"
      else
        fail "kcat wrong password: no authentication error: $(tail -3 "$workdir/kcat-sasl-bad")"
      fi
    fi
    if grep -q 'admin-secret' "$sasl_dir/broker.log"; then
      fail "the SASL broker's log holds a password"
    else
      pass "no password in the SASL broker's log"
    fi
  fi
fi

# ---- SASL OAUTHBEARER --------------------------------------------------------
if [ -z "${bin:-}" ]; then
  echo "SKIP OAUTHBEARER: the broker was not started by this script"
elif "$PYTHON" -c 'import confluent_kafka, cryptography' 2>/dev/null; then
  # librdkafka logs every refused login on stderr: keep it out of the report.
  timeout 300 "$PYTHON" scripts/oauth_check.py "$bin" "$workdir/oauth" 2>"$workdir/oauth_check.err"
  rc=$?
  [ $rc -eq 0 ] || failures=$((failures + 1))
else
  fail "OAUTHBEARER: confluent-kafka/cryptography not installed (pip install -r scripts/requirements.txt)"
fi

# ---- TLS: PLAINTEXT, SSL and SASL_SSL listeners ------------------------------
if [ -z "${bin:-}" ]; then
  echo "SKIP TLS: the broker was not started by this script"
else
  tls_dir=$workdir/tls
  mkdir -p "$tls_dir"
  "$bin" dev certs --dir "$tls_dir/certs" >/dev/null
  "$bin" dev certs --dir "$tls_dir/other" >/dev/null
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  plain_port=$(free_port); ssl_port=$(free_port); sasl_ssl_port=$(free_port)
  RUST_LOG=info,sluice::request=debug "$bin" serve \
    --listen "PLAINTEXT://127.0.0.1:$plain_port,SSL://127.0.0.1:$ssl_port,SASL_SSL://127.0.0.1:$sasl_ssl_port" \
    --data-dir "$tls_dir/data" --set http.listeners= \
    --set "ssl.keystore.location=$tls_dir/certs/broker.pem" \
    --set "ssl.truststore.location=$tls_dir/certs/ca.pem" --set ssl.client.auth=required \
    --add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]' \
    --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]' \
    >"$tls_dir/broker.out" 2>"$tls_dir/broker.log" &
  tls_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^Sluice broker listening on ' "$tls_dir/broker.out" 2>/dev/null && break
    kill -0 "$tls_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^Sluice broker listening on ' "$tls_dir/broker.out"; then
    fail "TLS broker did not start: $(cat "$tls_dir/broker.out" "$tls_dir/broker.log" | tail -5)"
  else
    if "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
      timeout 300 "$PYTHON" scripts/tls_check.py "127.0.0.1:$plain_port" "127.0.0.1:$ssl_port" \
        "127.0.0.1:$sasl_ssl_port" "$tls_dir/certs" "$tls_dir/other" admin admin-secret
      rc=$?
      [ $rc -eq 0 ] || failures=$((failures + 1))
    else
      fail "TLS: confluent-kafka not installed (pip install -r scripts/requirements.txt)"
    fi
    if command -v "$KCAT" >/dev/null; then
      kcat_ssl=(-b "127.0.0.1:$ssl_port" -X security.protocol=SSL
        -X "ssl.certificate.location=$tls_dir/certs/client-cert.pem"
        -X "ssl.key.location=$tls_dir/certs/client-key.pem")
      topic="interop-kcat-ssl-$run_id"
      if printf 'one\ntwo\n' | "$KCAT" "${kcat_ssl[@]}" -X "ssl.ca.location=$tls_dir/certs/ca.pem" \
          -P -t "$topic" 2>"$workdir/kcat-ssl-p.err" &&
          [ "$(timeout 60 "$KCAT" "${kcat_ssl[@]}" -X "ssl.ca.location=$tls_dir/certs/ca.pem" \
            -C -t "$topic" -o beginning -e -q 2>"$workdir/kcat-ssl-c.err" | tr '\n' ' ')" = "one two " ]; then
        pass "kcat SSL (mTLS) produce and consume"
      else
        fail "kcat SSL: $(cat "$workdir/kcat-ssl-p.err" "$workdir/kcat-ssl-c.err" | tail -3)"
      fi
      if grep -q 'principal=User:CN=client,O=Sluice dev' "$tls_dir/broker.log"; then
        pass "the client certificate's subject is the connection's principal"
      else
        fail "no request logged with principal User:CN=client,O=Sluice dev"
      fi
      # A new key store (from another CA) replaces the file: clients that
      # trust the new CA get in without a restart.
      "$bin" dev certs --dir "$tls_dir/next" >/dev/null
      cp "$tls_dir/next/broker.pem" "$tls_dir/certs/broker.pem.new"
      mv "$tls_dir/certs/broker.pem.new" "$tls_dir/certs/broker.pem"
      reloaded=""
      for _ in $(seq 1 30); do
        if timeout 10 "$KCAT" "${kcat_ssl[@]}" -X "ssl.ca.location=$tls_dir/next/ca.pem" -L -m 5 \
            >"$workdir/kcat-ssl-reload" 2>&1; then
          reloaded=yes
          break
        fi
        sleep 1
      done
      if [ -n "$reloaded" ] && grep -q 'reloaded' "$tls_dir/broker.log"; then
        pass "a replaced key store is served without a restart"
      else
        fail "the replaced key store was not picked up: $(tail -3 "$workdir/kcat-ssl-reload")"
      fi
    fi
    if grep -q 'admin-secret' "$tls_dir/broker.log"; then
      fail "the TLS broker's log holds a password"
    fi
  fi
  kill -TERM "$tls_pid" 2>/dev/null
  wait "$tls_pid" 2>/dev/null
fi

echo
if [ $failures -eq 0 ]; then
  echo "interop: all passed"
  exit 0
fi
echo "interop: $failures failure(s)"
exit 1
