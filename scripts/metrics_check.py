#!/usr/bin/env python3
"""Checks /metrics against a workload, parsed by the official Prometheus
client's OpenMetrics parser: produces with confluent-kafka (librdkafka) to a
new topic, consumes it all in a group that commits, scrapes, and compares
records and bytes in, log sizes and end offsets, bytes out, the group's lag,
request counts by API and error, and the process metrics with what the
workload did. Also /healthz and /readyz.

Usage: scripts/metrics_check.py BOOTSTRAP HTTP_BASE (e.g. http://127.0.0.1:9644)
Prints PASS/FAIL lines; exits 1 when anything failed.
"""
import sys
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families

RECORDS = 3000
PARTITIONS = 3
failures = 0


def report(ok, what, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures += 1


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def scrape(base):
    status, content_type, text = get(base + "/metrics")
    assert status == 200, f"/metrics answered {status}: {text[:200]}"
    assert content_type.startswith("application/openmetrics-text"), content_type
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def main():
    bootstrap, base = sys.argv[1], sys.argv[2].rstrip("/")
    topic = f"metrics-check-{int(time.time())}"
    group = topic + "-group"

    status, _, body = get(base + "/healthz")
    report(status == 200, "/healthz answers 200", f"{status} {body}")
    status, _, body = get(base + "/readyz")
    report(status == 200 and '"ready":true' in body, "/readyz says ready", f"{status} {body}")
    status, _, _ = get(base + "/no-such-page")
    report(status == 404, "an unknown path is 404", str(status))

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, key=f"k{i}", value=f"value {i} " + "x" * (i % 50))
    assert producer.flush(30) == 0, "records left unacknowledged"

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen, deadline = 0, time.time() + 60
    while seen < RECORDS and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        seen += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    report(seen == RECORDS, f"consumed the {RECORDS} records", f"saw {seen}")

    s = scrape(base)
    records_in = total(s, "sluice_topic_records_in_total", topic=topic)
    report(records_in == RECORDS, "records in match what was produced", f"{records_in}")
    bytes_in = total(s, "sluice_topic_bytes_in_total", topic=topic)
    log_size = total(s, "sluice_partition_log_size_bytes", topic=topic)
    report(bytes_in > 0 and bytes_in == log_size,
           "bytes in match the log's size (batches are stored as received)",
           f"bytes in {bytes_in}, log size {log_size}")
    end = total(s, "sluice_partition_log_end_offset", topic=topic)
    report(end == RECORDS, "the partitions' end offsets add up to the records", f"{end}")
    bytes_out = total(s, "sluice_topic_bytes_out_total", topic=topic)
    report(bytes_out >= log_size, "bytes out cover the consumed log", f"{bytes_out} < {log_size}")
    lag_series = [v for (n, ls), v in s.items()
                  if n == "sluice_consumer_group_lag" and ("group", group) in ls]
    report(len(lag_series) == PARTITIONS and all(v == 0 for v in lag_series),
           "the group's lag is zero on every partition", f"{lag_series}")
    produced_ok = total(s, "sluice_requests_total", api="Produce", error="NONE")
    fetches = total(s, "sluice_requests_total", api="Fetch")
    report(produced_ok >= 1 and fetches >= 1, "requests are counted by API and error",
           f"produce {produced_ok}, fetch {fetches}")
    timed = total(s, "sluice_request_duration_seconds_count", api="Produce")
    report(timed == total(s, "sluice_requests_total", api="Produce"),
           "every produce request is timed", f"{timed}")
    batches = total(s, "sluice_produce_batch_bytes_count")
    report(batches >= 1, "produce batch sizes are observed", f"{batches}")
    fsyncs = total(s, "sluice_fsync_duration_seconds_count")
    report(fsyncs >= 1, "group-commit fsyncs are timed (durable default)", f"{fsyncs}")
    rss = total(s, "process_resident_memory_bytes")
    cpu = total(s, "process_cpu_seconds_total")
    report(rss > 1_000_000 and cpu > 0, "process CPU and memory are reported", f"rss {rss}, cpu {cpu}")

    # A request that fails is counted with its error.
    before = total(s, "sluice_requests_total", api="DeleteTopics", error="UNKNOWN_TOPIC_OR_PARTITION")
    for f in admin.delete_topics([topic + "-missing"], operation_timeout=10).values():
        try:
            f.result(30)
        except KafkaException:
            pass
    after = total(scrape(base), "sluice_requests_total", api="DeleteTopics",
                  error="UNKNOWN_TOPIC_OR_PARTITION")
    report(after == before + 1, "a failed request is counted with its error", f"{before} -> {after}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
