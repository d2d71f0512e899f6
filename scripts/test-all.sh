#!/usr/bin/env bash
# Runs Sluice's whole test suite on a fresh machine, installing what it needs:
#   - Debian packages: kcat (interop), build tools for librdkafka (rdkafka crate)
#   - Python clients: confluent-kafka, kafka-python and their codecs
#   - kafkajs (npm ci from scripts/kafkajs/package-lock.json), when node and
#     npm are installed; without them the kafkajs interop is skipped
#   - a JDK and Maven (Debian's, if missing): Apache Kafka's jars at the
#     version pinned in interop/jvm/pom.xml (Maven Central the first time,
#     ~/.m2 after), for the reference Kafka, the Java client, Kafka's tools,
#     Streams and Connect
#   - Rust: formatting, clippy, unit/property/integration tests (cargo nextest
#     when available), then the kcat/Python/kafkajs interop script against a
#     release broker; the Java client tests (Maven Surefire), Kafka's own
#     command-line tools (scripts/kafka-tools.sh) and the differential tests
#     against a reference Kafka (scripts/differential.sh); franz-go's kgo
#     integration tests (scripts/franz-go.sh, Go module proxy).
# Usage: scripts/test-all.sh        (CI=true makes cargo output plain)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

step "system packages"
need=()
command -v kcat >/dev/null || need+=(kcat)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3 python3-pip)
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

step "python clients"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" - scripts/requirements.txt <<'PY'
import sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        try:
            if metadata.version(name.strip()) != version.strip():
                sys.exit(1)
        except metadata.PackageNotFoundError:
            sys.exit(1)
PY
then
  "$PYTHON" -m pip install --disable-pip-version-check -q -r scripts/requirements.txt ||
    "$PYTHON" -m pip install --disable-pip-version-check -q --break-system-packages -r scripts/requirements.txt
fi

step "kafkajs, and Playwright for the console's browser test"
if command -v node >/dev/null && command -v npm >/dev/null; then
  npm ci --prefix scripts/kafkajs --no-audit --no-fund --loglevel=error
  npm ci --prefix scripts/console --no-audit --no-fund --loglevel=error
else
  echo "node/npm not installed: the kafkajs interop and console tests will be skipped"
fi

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
[ "${CI:-}" = true ] && export CARGO_TERM_COLOR=never

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "unit, property and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi

step "interop with kcat, confluent-kafka, kafka-python and kafkajs"
cargo build --release -p sluice
scripts/interop.sh

target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$(pwd)/$target_dir ;; esac
SLUICE_BIN=$target_dir/release/sluice
export SLUICE_BIN
step "Apache Kafka's jars (interop/jvm/pom.xml)"
scripts/kafka-ref.sh setup

step "the Java client, Streams and Connect (JUnit, interop/jvm)"
mvn -q -B -Dstyle.color=never -f interop/jvm/pom.xml test

step "Kafka's command-line tools"
scripts/kafka-tools.sh

step "differential tests against the reference Kafka"
scripts/differential.sh

step "franz-go's kgo integration tests"
if command -v go >/dev/null; then
  scripts/franz-go.sh
else
  echo "go not installed: franz-go's tests need the Go toolchain" >&2
  exit 1
fi

echo
echo "all tests passed"
