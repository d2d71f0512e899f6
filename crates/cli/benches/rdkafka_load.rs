//! A native librdkafka load generator (the `rdkafka` crate) for the numbers
//! in docs/PERFORMANCE.md: nothing Sluice-specific on the client side.
//!
//! ```sh
//! cargo bench -p sluice --bench rdkafka_load -- throughput 127.0.0.1:9092 perf 1000000 100 1 [BROKER_PID] [--compression=zstd] [--payload=text] [--keys=N] [--rate=N]
//! cargo bench -p sluice --bench rdkafka_load -- e2e 127.0.0.1:9092 e2e 100000 100 all 20000
//! cargo bench -p sluice --bench rdkafka_load -- resume 127.0.0.1:9092 failover LEADER_PID
//! ```
//! Resume: one acknowledged record (acks=all), then SIGKILL of LEADER_PID,
//! then the time until the next record is acknowledged (what a producer
//! waits through a failover).
//! Throughput: records, record size, acks; prints records/s, MB/s and, with
//! the broker's pid, its CPU time per record from /proc. Options:
//! `--compression=CODEC` (the producer's `compression.type`, default none),
//! `--payload=text` (values of random words, which compress about as well
//! as log lines, instead of one repeated byte, which compresses to nothing
//! and would flatter every codec), `--keys=N` (key `key-<i mod N>`, for
//! compacted topics), `--rate=N` (at most N records/s, for a steady
//! background load). ACKS is `0`, `1`,
//! `all`, `idempotent` (acks=all with enable.idempotence) or `txn:MS`
//! (a transactional producer committing every MS milliseconds). End-to-end: produce
//! at a fixed rate with linger 0 and consume in the same process; prints
//! latency percentiles, after a warm-up that waits for a record to come
//! back (connection set-up is not latency).

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: rdkafka_load throughput BOOTSTRAP TOPIC RECORDS SIZE ACKS [BROKER_PID] \
         [--compression=CODEC] [--payload=text] [--keys=N] [--rate=N]"
    );
    eprintln!("       rdkafka_load e2e BOOTSTRAP TOPIC RECORDS SIZE ACKS RATE");
    eprintln!("       rdkafka_load resume BOOTSTRAP TOPIC PID_TO_KILL");
    std::process::exit(64)
}

/// The broker's user + system CPU seconds, from /proc/<pid>/stat.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// How the throughput run shapes its records.
struct RecordShape {
    compression: String,
    text_payload: bool,
    keys: Option<usize>,
    records_per_second: Option<f64>,
}

impl RecordShape {
    /// From `--compression=`, `--payload=`, `--keys=` and `--rate=` among `args`.
    fn from_args(args: &[String]) -> RecordShape {
        let flag = |name: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(&format!("--{name}=")))
        };
        RecordShape {
            compression: flag("compression").unwrap_or("none").to_string(),
            text_payload: match flag("payload") {
                None | Some("x") => false,
                Some("text") => true,
                Some(_) => usage(),
            },
            keys: flag("keys").map(|n| n.parse().unwrap_or_else(|_| usage())),
            records_per_second: flag("rate").map(|n| n.parse().unwrap_or_else(|_| usage())),
        }
    }

    /// The values to cycle through: one run of `x`, or 16 MiB of different
    /// strings of words (zstd packs them about 3:1). The text cycle is longer
    /// than a batch and than zstd's window, so no batch repeats itself.
    fn payloads(&self, size: usize) -> Vec<Vec<u8>> {
        if !self.text_payload {
            return vec![vec![b'x'; size]];
        }
        const WORDS: &str = "order created user id status shipped amount EUR item quantity \
            warehouse berlin paris request latency ms ok error retry session token cart checkout \
            price total tax address street city zip country timestamp";
        let words: Vec<&str> = WORDS.split_whitespace().collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64: reproducible without a dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        (0..(16 << 20) / size.max(1))
            .map(|_| {
                let mut value = Vec::with_capacity(size + 16);
                while value.len() < size {
                    let n = next();
                    value.extend_from_slice(words[n as usize % words.len()].as_bytes());
                    value.push(b'=');
                    value.extend_from_slice((n >> 52).to_string().as_bytes());
                    value.push(b' ');
                }
                value.truncate(size);
                value
            })
            .collect()
    }
}

fn producer(bootstrap: &str, acks: &str, linger_ms: &str) -> BaseProducer {
    producer_with(bootstrap, acks, linger_ms, "none")
}

fn producer_with(bootstrap: &str, acks: &str, linger_ms: &str, compression: &str) -> BaseProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms)
        .set("compression.type", compression)
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .set("socket.nagle.disable", "true");
    match acks {
        "idempotent" => config.set("enable.idempotence", "true"),
        txn if txn.starts_with("txn:") => config.set(
            "transactional.id",
            format!("rdkafka-load-{}", std::process::id()),
        ),
        acks => config.set("acks", acks),
    };
    config.create().expect("producer")
}

/// The commit interval of ACKS `txn:MS`.
fn commit_interval(acks: &str) -> Option<Duration> {
    let ms = acks
        .strip_prefix("txn:")?
        .parse()
        .unwrap_or_else(|_| usage());
    Some(Duration::from_millis(ms))
}

fn throughput(
    bootstrap: &str,
    topic: &str,
    records: usize,
    size: usize,
    acks: &str,
    pid: Option<u32>,
    shape: &RecordShape,
) {
    let producer = producer_with(bootstrap, acks, "5", &shape.compression);
    let commit_every = commit_interval(acks);
    if commit_every.is_some() {
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init_transactions");
        producer.begin_transaction().expect("begin_transaction");
    }
    let payloads = shape.payloads(size);
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let mut last_commit = start;
    let mut commits = 0;
    for i in 0..records {
        if let Some(every) = commit_every {
            if last_commit.elapsed() >= every {
                producer
                    .commit_transaction(Duration::from_secs(30))
                    .expect("commit_transaction");
                producer.begin_transaction().expect("begin_transaction");
                last_commit = Instant::now();
                commits += 1;
            }
        }
        if let Some(rate) = shape.records_per_second {
            while i as f64 > start.elapsed().as_secs_f64() * rate {
                producer.poll(Duration::from_millis(1));
            }
        }
        let key = shape.keys.map(|n| format!("key-{}", i % n.max(1)));
        let mut record =
            BaseRecord::<str, [u8]>::to(topic).payload(&payloads[i % payloads.len()][..]);
        if let Some(key) = &key {
            record = record.key(key.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    if commit_every.is_some() {
        producer
            .commit_transaction(Duration::from_secs(120))
            .expect("commit_transaction");
        commits += 1;
        println!("transactions committed={commits}");
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let elapsed = start.elapsed().as_secs_f64();
    let rate = records as f64 / elapsed;
    println!(
        "records={records} size={size} acks={acks} compression={} elapsed={elapsed:.2}s throughput={rate:.0} records/s {:.1} MB/s",
        shape.compression,
        rate * size as f64 / 1e6
    );
    if let (Some(a), Some(b)) = (cpu0, cpu_seconds(pid)) {
        println!(
            "broker cpu={:.2}s per record={:.3} us",
            b - a,
            (b - a) / records as f64 * 1e6
        );
    }
}

fn e2e(bootstrap: &str, topic: &str, records: usize, size: usize, acks: &str, rate: u64) {
    let producer = producer(bootstrap, acks, "0");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rdkafka-load-e2e")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("socket.nagle.disable", "true")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks (create the topic first)");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(high))
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    warm_up(&producer, &consumer, topic);
    let origin = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let deadline = origin + interval * records as u32 + Duration::from_secs(30);
    // The consumer waits in its own thread: a loop that polls both clients
    // with short timeouts spins a core, and on two cores that spinning
    // delays the broker and librdkafka's threads more than anything measured.
    let consuming = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(records);
        while latencies.len() < records && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                if let Some(p) = m.payload().filter(|p| p.len() >= 8) {
                    let sent_at = u64::from_be_bytes(p[..8].try_into().expect("8 bytes"));
                    latencies.push((origin.elapsed().as_nanos() as u64 - sent_at) as f64 / 1e6);
                }
            }
        }
        latencies
    });
    let mut payload = vec![b'x'; size.max(8)];
    for sent in 0..records {
        let due = origin + interval * sent as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let nanos = origin.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&nanos.to_be_bytes());
        let _ = producer.send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(&payload[..]),
        );
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(30));
    let mut latencies = consuming.join().expect("consumer thread");
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "e2e records={} rate={rate}/s acks={acks} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        latencies.last().copied().unwrap_or_default()
    );
}

/// Produces until the consumer receives a record, so connection set-up
/// (bootstrap, metadata, the first fetch) is not counted as latency: at
/// 20k records/s the first ~50 ms of records would otherwise be 1% of a
/// 100k run and decide its p99.
fn warm_up(producer: &BaseProducer, consumer: &BaseConsumer, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let warm_up = b"warm-up";
    loop {
        assert!(
            Instant::now() < deadline,
            "warm-up: no record came back in 30 s"
        );
        let _ = producer.send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(&warm_up[..]),
        );
        producer.poll(Duration::ZERO);
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            if m.payload() == Some(&warm_up[..]) {
                break;
            }
        }
    }
    // Drain the other warm-up records still on their way.
    let _ = producer.flush(Duration::from_secs(10));
    while let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {}
}

/// Times a producer's wait for its first acknowledgement after the
/// SIGKILL of `pid` (the partition's leader).
fn resume(bootstrap: &str, topic: &str, pid: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "100")
        .create()
        .expect("producer");
    let send = |value: &str| {
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(0).payload(value))
            .map_err(|(e, _)| e)
            .expect("enqueue");
        producer
            .flush(Duration::from_secs(60))
            .expect("acknowledged");
    };
    send("before");
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
    send("after");
    println!(
        "produce resumed {:.2} s after SIGKILL of {pid}",
        killed.elapsed().as_secs_f64()
    );
}

fn main() {
    // `cargo bench` appends --bench; flags are ours or ignored.
    let all: Vec<String> = std::env::args().skip(1).collect();
    let shape = RecordShape::from_args(&all);
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    let num = |i: usize| arg(i).parse::<usize>().unwrap_or_else(|_| usage());
    if args.is_empty() {
        // Plain `cargo bench` runs every bench; this one needs a broker.
        eprintln!("rdkafka_load: needs arguments (see the file's docs); skipping");
        return;
    }
    match arg(0).as_str() {
        "throughput" => throughput(
            &arg(1),
            &arg(2),
            num(3),
            num(4),
            &arg(5),
            args.get(6).and_then(|p| p.parse().ok()),
            &shape,
        ),
        "e2e" => e2e(&arg(1), &arg(2), num(3), num(4), &arg(5), num(6) as u64),
        "resume" => resume(&arg(1), &arg(2), num(3)),
        _ => usage(),
    }
}
