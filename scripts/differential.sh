#!/usr/bin/env bash
# Differential tests: the same scenarios against the reference Apache Kafka
# (scripts/kafka-ref.sh, the version pinned in interop/jvm/pom.xml) and a
# `sluice serve` process, compared field by field. Differences must be listed
# in docs/COMPATIBILITY.md ("Intended differences").
# Usage: scripts/differential.sh
# (--workspace: the same feature set as the suite's nextest run, so CI
# reuses its build instead of compiling the test binary again)
set -euo pipefail
cd "$(dirname "$0")/.."
ref_dir=$(mktemp -d)
trap 'scripts/kafka-ref.sh stop "$ref_dir"; rm -rf "$ref_dir"' EXIT
SLUICE_REFERENCE_KAFKA=$(scripts/kafka-ref.sh start "$ref_dir")
export SLUICE_REFERENCE_KAFKA
echo "reference Kafka on $SLUICE_REFERENCE_KAFKA"
cargo test --workspace --test integration -- --ignored --exact \
  differential::sluice_answers_like_the_reference_kafka --nocapture
