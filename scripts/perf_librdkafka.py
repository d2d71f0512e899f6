#!/usr/bin/env python3
"""Load generator on librdkafka (confluent-kafka), for docs/PERFORMANCE.md.

Produces N records of a given size to a topic and reports records/s, MB/s and
(with --broker-pid) the broker's own CPU time per record, read from
/proc/<pid>/stat before and after. With --e2e it instead produces at a fixed
rate with linger 0 and consumes in the same process, reporting end-to-end
latency percentiles. With --consume it reads --num-records from the start of
the topic (all partitions) and reports records/s and the broker's CPU.

  scripts/perf_librdkafka.py --bootstrap 127.0.0.1:9092 --topic perf \
      --num-records 1000000 --record-size 100 --acks 1 --linger-ms 5 --broker-pid PID
"""
import argparse
import os
import struct
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def broker_cpu_seconds(pid):
    if not pid:
        return None
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def ensure_topic(bootstrap, topic, partitions):
    adm = AdminClient({"bootstrap.servers": bootstrap})
    fs = adm.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        fs[topic].result(15)
    except Exception as e:  # already exists is fine
        if "already exists" not in str(e).lower():
            raise


def throughput(args):
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "compression.type": args.compression,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_000_000,
        "enable.idempotence": False,
    })
    payload = b"x" * args.record_size
    errors = [0]

    def cb(err, _msg):
        if err is not None:
            errors[0] += 1

    cpu0 = broker_cpu_seconds(args.broker_pid)
    t0 = time.perf_counter()
    for _ in range(args.num_records):
        while True:
            try:
                p.produce(args.topic, payload, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.001)
    p.flush(120)
    elapsed = time.perf_counter() - t0
    cpu1 = broker_cpu_seconds(args.broker_pid)
    rate = args.num_records / elapsed
    print(f"records={args.num_records} size={args.record_size} acks={args.acks} linger.ms={args.linger_ms} "
          f"compression={args.compression} errors={errors[0]}")
    print(f"elapsed={elapsed:.2f}s throughput={rate:,.0f} records/s {rate * args.record_size / 1e6:,.1f} MB/s")
    if cpu0 is not None:
        cpu = cpu1 - cpu0
        print(f"broker cpu={cpu:.2f}s per record={cpu / args.num_records * 1e6:.3f} us")
    return errors[0] == 0


def consume(args):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"perf-consume-{os.getpid()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                  "queued.max.messages.kbytes": 1_000_000})
    c.subscribe([args.topic])
    got = 0
    cpu0 = broker_cpu_seconds(args.broker_pid)
    t0 = None
    deadline = time.perf_counter() + 120
    while got < args.num_records and time.perf_counter() < deadline:
        for m in c.consume(num_messages=10_000, timeout=0.5):
            if m.error() is None:
                if t0 is None:
                    t0 = time.perf_counter()
                got += 1
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    cpu1 = broker_cpu_seconds(args.broker_pid)
    c.close()
    rate = got / elapsed if elapsed > 0 else 0
    print(f"consumed={got} size={args.record_size} elapsed={elapsed:.2f}s throughput={rate:,.0f} records/s "
          f"{rate * args.record_size / 1e6:,.1f} MB/s")
    if cpu0 is not None:
        cpu = cpu1 - cpu0
        print(f"broker cpu={cpu:.2f}s per record={cpu / max(got, 1) * 1e6:.3f} us")
    return got == args.num_records


def end_to_end(args):
    # Nagle off on the client too: otherwise delayed ACKs add 40 ms stalls.
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": args.acks, "linger.ms": 0, "enable.idempotence": False,
                  "socket.nagle.disable": True})
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "perf-e2e", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "fetch.min.bytes": 1, "socket.nagle.disable": True})
    hw = c.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=10)[1]
    c.assign([TopicPartition(args.topic, 0, hw)])
    # Warm up: the clock starts once a record makes the whole trip, so the
    # client's metadata and connection set-up (seconds against a topic a
    # broker has just created) is not counted as latency.
    warm_deadline = time.perf_counter() + 30
    warmed = False
    while not warmed and time.perf_counter() < warm_deadline:
        p.produce(args.topic, b"warm-up", partition=0)
        p.flush(5)
        for m in c.consume(num_messages=1000, timeout=0.2):
            if m.error() is None and m.value() == b"warm-up":
                warmed = True
    if not warmed:
        print("e2e: no record came back within 30 s of warm-up")
        return False
    latencies = []
    interval = 1.0 / args.rate
    pad = b"x" * max(0, args.record_size - 8)
    next_send = time.perf_counter()
    sent = 0
    deadline = time.perf_counter() + args.num_records / args.rate + 30
    while len(latencies) < args.num_records and time.perf_counter() < deadline:
        now = time.perf_counter()
        while sent < args.num_records and now >= next_send:
            p.produce(args.topic, struct.pack(">d", time.perf_counter()) + pad, partition=0)
            sent += 1
            next_send += interval
        p.poll(0)
        for m in c.consume(num_messages=1000, timeout=0.0005):
            if m.error() is None and m.value() != b"warm-up":
                latencies.append((time.perf_counter() - struct.unpack(">d", m.value()[:8])[0]) * 1000)
    p.flush(10)
    c.close()
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"e2e records={len(latencies)} rate={args.rate}/s acks={args.acks} "
          f"p50={pct(0.5):.2f}ms p99={pct(0.99):.2f}ms p99.9={pct(0.999):.2f}ms max={latencies[-1]:.2f}ms")
    return len(latencies) == args.num_records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="perf")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--num-records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--broker-pid", type=int)
    ap.add_argument("--e2e", action="store_true", help="end-to-end latency at --rate records/s")
    ap.add_argument("--consume", action="store_true", help="consume --num-records from the start")
    ap.add_argument("--rate", type=int, default=20_000)
    args = ap.parse_args()
    ensure_topic(args.bootstrap, args.topic, args.partitions)
    if args.e2e:
        ok = end_to_end(args)
    elif args.consume:
        ok = consume(args)
    else:
        ok = throughput(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
