#!/usr/bin/env python3
"""Interop between two third-party Python clients through a Sluice broker.

For every codec, records produced with confluent-kafka (librdkafka) are read
back with kafka-python and vice versa; keys, values, headers and timestamps
must match exactly. Consumers use assign() with explicit offsets and never
commit.

Recompression: records sent by confluent-kafka uncompressed and with LZ4 to
topics with `compression.type` zstd and gzip (the broker rewrites the
batches) are read back exactly by both clients.

Transactions: each client's transactional producer commits, aborts and
commits again; read_committed consumers of both clients must see exactly the
committed records, a read_uncommitted one every data record.

A last case runs a KIP-848 consumer group (`group.protocol=consumer`) of two
confluent-kafka consumers: they split four partitions, read every record
once and commit, and when one leaves the other takes over its partitions.

Usage: scripts/interop.py HOST:PORT
Prints PASS/FAIL lines; exits non-zero when anything fails.
"""

import sys
import time
import uuid

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 200
TIMEOUT_S = 30

failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {detail}")
    sys.stdout.flush()


def expected_records(tag):
    base_ts = int(time.time() * 1000) - 3_600_000
    out = []
    for i in range(N):
        key = None if i % 10 == 0 else f"key-{i}".encode()
        value = f"{tag} value {i} ".encode() + b"x" * (i % 40)
        headers = [("seq", str(i).encode())]
        if i % 3 == 0:
            headers.append(("extra", b"\x00\x01\x02"))
        out.append((key, value, headers, base_ts + i))
    return out


_admin = None


def create_topic(bootstrap, name, partitions=1, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic

    global _admin
    if _admin is None:
        _admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = _admin.create_topics([topic])
    futures[name].result(timeout=TIMEOUT_S)


def produce_confluent(bootstrap, topic, codec, records):
    from confluent_kafka import Producer

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "acks": "all",
            "linger.ms": 5,
            "enable.idempotence": False,
        }
    )
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    for key, value, headers, ts in records:
        p.produce(topic, value=value, key=key, headers=headers, timestamp=ts, partition=0,
                  on_delivery=on_delivery)
        p.poll(0)
    remaining = p.flush(TIMEOUT_S)
    if remaining:
        errors.append(f"{remaining} messages not delivered")
    if errors:
        raise RuntimeError("; ".join(errors[:5]))


def produce_kafka_python(bootstrap, topic, codec, records):
    from kafka import KafkaProducer

    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
    )
    futures = [
        p.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts, partition=0)
        for key, value, headers, ts in records
    ]
    for f in futures:
        f.get(timeout=TIMEOUT_S)
    p.close(timeout=TIMEOUT_S)


def consume_confluent(bootstrap, topic, n):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "sluice-interop",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "check.crcs": True,
        }
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + TIMEOUT_S
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise RuntimeError(str(m.error()))
        out.append((m.key(), m.value(), list(m.headers() or []), m.timestamp()[1], m.offset()))
    c.close()
    return out


def consume_kafka_python(bootstrap, topic, n):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        check_crcs=True,
    )
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    deadline = time.time() + TIMEOUT_S
    while len(out) < n and time.time() < deadline:
        for msgs in c.poll(timeout_ms=200).values():
            for m in msgs:
                out.append((m.key, m.value, list(m.headers or []), m.timestamp, m.offset))
    c.close()
    return out


TXN_BATCH = 5


def produce_transactions_confluent(bootstrap, topic, txn_id):
    """Commits committed-0..4, aborts aborted-0..4, commits committed-5..9."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    p.init_transactions(TIMEOUT_S)
    for label, start, commit in [("committed", 0, True), ("aborted", 0, False),
                                 ("committed", TXN_BATCH, True)]:
        p.begin_transaction()
        for i in range(start, start + TXN_BATCH):
            p.produce(topic, value=f"{label}-{i}".encode(), partition=0)
        if commit:
            p.commit_transaction(TIMEOUT_S)
        else:
            p.flush(TIMEOUT_S)  # the aborted records reach the log first
            p.abort_transaction(TIMEOUT_S)


def produce_transactions_kafka_python(bootstrap, topic, txn_id):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, linger_ms=5)
    p.init_transactions()
    for label, start, commit in [("committed", 0, True), ("aborted", 0, False),
                                 ("committed", TXN_BATCH, True)]:
        p.begin_transaction()
        for i in range(start, start + TXN_BATCH):
            p.send(topic, value=f"{label}-{i}".encode(), partition=0)
        if commit:
            p.commit_transaction()
        else:
            p.flush(timeout=TIMEOUT_S)
            p.abort_transaction()
    p.close(timeout=TIMEOUT_S)


def values_confluent(bootstrap, topic, n, isolation):
    """Values of partition 0, reading until n arrived and then a little more."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sluice-interop",
                  "enable.auto.commit": False, "isolation.level": isolation})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + TIMEOUT_S
    quiet_until = None
    while time.time() < deadline and (quiet_until is None or time.time() < quiet_until):
        m = c.poll(0.2)
        if m is not None:
            if m.error():
                raise RuntimeError(str(m.error()))
            out.append(m.value().decode())
        if len(out) >= n and quiet_until is None:
            quiet_until = time.time() + 1
    c.close()
    return out


def values_kafka_python(bootstrap, topic, n, isolation):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", isolation_level=isolation)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    deadline = time.time() + TIMEOUT_S
    quiet_until = None
    while time.time() < deadline and (quiet_until is None or time.time() < quiet_until):
        for msgs in c.poll(timeout_ms=200).values():
            out.extend(m.value.decode() for m in msgs)
        if len(out) >= n and quiet_until is None:
            quiet_until = time.time() + 1
    c.close()
    return out


def transactions(bootstrap, run):
    committed = [f"committed-{i}" for i in range(2 * TXN_BATCH)]
    every = committed[:TXN_BATCH] + [f"aborted-{i}" for i in range(TXN_BATCH)] + \
        committed[TXN_BATCH:]
    producers = {
        "confluent-kafka": produce_transactions_confluent,
        "kafka-python": produce_transactions_kafka_python,
    }
    for producer_name, produce in producers.items():
        topic = f"interop-py-txn-{producer_name}-{run}"
        try:
            create_topic(bootstrap, topic)
            produce(bootstrap, topic, f"interop-{producer_name}-{run}")
            produced = None
        except Exception as e:
            produced = f"{type(e).__name__}: {e}"
        for consumer_name, read, isolation, want in [
            ("confluent-kafka", values_confluent, "read_committed", committed),
            ("kafka-python", values_kafka_python, "read_committed", committed),
            ("confluent-kafka", values_confluent, "read_uncommitted", every),
        ]:
            what = f"python {producer_name} transactions -> {consumer_name} ({isolation})"
            problem = produced
            if problem is None:
                try:
                    got = read(bootstrap, topic, len(want), isolation)
                    if got != want:
                        problem = f"read {got}, want {want}"
                except Exception as e:
                    problem = f"{type(e).__name__}: {e}"
            report(problem is None, what, problem or "")
def kip848_group(bootstrap, topic):
    """Two consumer-protocol members share four partitions, then one leaves.
    Returns a problem description, or None."""
    from confluent_kafka import Consumer, Producer

    partitions = 4
    create_topic(bootstrap, topic, partitions)
    def member():
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": topic,
                "group.protocol": "consumer",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        c.subscribe([topic])
        return c

    members = [member(), member()]
    # Records arrive once the split is done: moving a partition before a
    # commit would (rightly) let its new owner read it again.
    deadline = time.time() + TIMEOUT_S
    while any(len(c.assignment()) != 2 for c in members):
        if time.time() > deadline:
            return f"assignment sizes {[len(c.assignment()) for c in members]}, not [2, 2]"
        for c in members:
            if c.poll(0.05) is not None:
                return "a record before anything was produced"
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    values = [f"kip848-{i}".encode() for i in range(N)]
    for i, value in enumerate(values):
        p.produce(topic, value=value, partition=i % partitions)
    if p.flush(TIMEOUT_S):
        return "not every record was delivered"
    read = [[], []]
    while sum(map(len, read)) < N or any(len(c.assignment()) != 2 for c in members):
        if time.time() > deadline:
            sizes = [len(c.assignment()) for c in members]
            return f"read {sum(map(len, read))} of {N}; assignment sizes {sizes}"
        for c, out in zip(members, read):
            m = c.poll(0.05)
            if m is not None and not m.error():
                out.append(m.value())
    every = read[0] + read[1]
    if sorted(every) != sorted(values):
        return f"records read {len(every)} times, {len(set(every))} distinct of {N}"
    if not read[0] or not read[1]:
        return "one member read nothing"
    for c in members:
        c.commit(asynchronous=False)
    members.pop().close()
    survivor = members[0]
    deadline = time.time() + TIMEOUT_S
    while len(survivor.assignment()) != partitions:
        if time.time() > deadline:
            return f"the survivor has {len(survivor.assignment())} partitions, not {partitions}"
        m = survivor.poll(0.05)
        if m is not None and not m.error():
            return f"re-read a committed record: {m.value()!r}"
    m = survivor.poll(1.0)
    if m is not None and not m.error():
        return f"re-read a committed record: {m.value()!r}"
    survivor.close()
    return None


def check(got, records):
    if len(got) != len(records):
        return f"read {len(got)} records, expected {len(records)}"
    for i, ((key, value, headers, ts, offset), (ekey, evalue, eheaders, ets)) in enumerate(
        zip(got, records)
    ):
        if offset != i:
            return f"record {i} at offset {offset}"
        if key != ekey or value != evalue:
            return f"record {i}: got key={key!r} value={value!r}, want key={ekey!r} value={evalue!r}"
        if [(k, bytes(v) if v is not None else None) for k, v in headers] != eheaders:
            return f"record {i}: headers {headers!r}, want {eheaders!r}"
        if ts != ets:
            return f"record {i}: timestamp {ts}, want {ets}"
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    bootstrap = sys.argv[1]
    clients = {
        "confluent-kafka": (produce_confluent, consume_confluent),
        "kafka-python": (produce_kafka_python, consume_kafka_python),
    }
    run = uuid.uuid4().hex[:8]
    for codec in CODECS:
        for producer_name, consumer_name in [
            ("confluent-kafka", "kafka-python"),
            ("kafka-python", "confluent-kafka"),
            ("confluent-kafka", "confluent-kafka"),
            ("kafka-python", "kafka-python"),
        ]:
            what = f"python {producer_name} -> {consumer_name} ({codec})"
            topic = f"interop-py-{producer_name}-{consumer_name}-{codec}-{run}"
            records = expected_records(what)
            try:
                create_topic(bootstrap, topic)
                clients[producer_name][0](bootstrap, topic, codec, records)
                got = clients[consumer_name][1](bootstrap, topic, len(records))
                problem = check(got, records)
            except Exception as e:  # report and carry on with the next case
                problem = f"{type(e).__name__}: {e}"
            report(problem is None, what, problem or "")
    for topic_codec in ["zstd", "gzip", "lz4"]:
        for codec in ["none", "lz4", "zstd"]:
            topic = f"interop-py-recompress-{codec}-{topic_codec}-{run}"
            records = expected_records(topic)
            try:
                create_topic(bootstrap, topic, config={"compression.type": topic_codec})
                produce_confluent(bootstrap, topic, codec, records)
                produced = None
            except Exception as e:
                produced = f"{type(e).__name__}: {e}"
            for consumer_name in clients:
                what = f"python confluent-kafka ({codec}) -> {topic_codec} topic -> {consumer_name}"
                problem = produced
                if problem is None:
                    try:
                        problem = check(clients[consumer_name][1](bootstrap, topic, len(records)),
                                        records)
                    except Exception as e:
                        problem = f"{type(e).__name__}: {e}"
                report(problem is None, what, problem or "")
    transactions(bootstrap, run)
    what = "python confluent-kafka consumer group, group.protocol=consumer (KIP-848)"
    try:
        problem = kip848_group(bootstrap, f"interop-kip848-{run}")
    except Exception as e:  # report like the other cases
        problem = f"{type(e).__name__}: {e}"
    report(problem is None, what, problem or "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
