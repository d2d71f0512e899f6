//! Process-level fault tests: SIGKILL during acks=all produce, and damaged
//! segment files after a graceful stop.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{free_port, log_dump, read_log, BrokerProcess, PATIENCE};
use crate::rdkafka_client::{consumer, producer};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 3;

/// Everything in a partition, read from the beginning up to the high
/// watermark: (offset, payload) in log order.
pub(crate) fn read_partitions(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Vec<(i64, Vec<u8>)>> {
    let consumer = consumer(bootstrap);
    let mut highs = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .expect("watermarks");
        assert_eq!(low, 0, "log start of partition {p}");
        highs.push(high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: Vec<Vec<(i64, Vec<u8>)>> = vec![Vec::new(); partitions as usize];
    let total: i64 = highs.iter().sum();
    let deadline = Instant::now() + PATIENCE;
    let mut got = 0i64;
    while got < total {
        assert!(
            Instant::now() < deadline,
            "read {got} of {total} records; per partition {:?} of {highs:?}",
            out.iter().map(Vec::len).collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert!(m.offset() < highs[p], "read past the high watermark");
                out[p].push((m.offset(), m.payload().unwrap_or_default().to_vec()));
                got += 1;
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    out
}

fn payload(id: u64) -> String {
    format!("id={id:010} {}", "x".repeat(100))
}

pub(crate) fn parse_id(payload: &[u8]) -> u64 {
    let s = std::str::from_utf8(payload).expect("utf8 payload");
    s.strip_prefix("id=").expect("id= prefix")[..10]
        .parse()
        .expect("numeric id")
}

struct Acks {
    /// id -> (partition, offset) of every acknowledged record.
    acked: Mutex<HashMap<u64, (i32, i64)>>,
    acked_count: AtomicUsize,
    failed_count: AtomicUsize,
    settled: AtomicUsize,
}

/// SIGKILLs the broker while an acks=all producer is sending, restarts it on
/// the same data directory and port, several rounds, then proves that every
/// acknowledged record is at the offset it was acknowledged with, that no
/// record appears twice, and that each partition is in send order.
#[test]
fn sigkill_during_acks_all_produce_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("broker.log");
    let port = free_port();
    // Alternate Sluice's sync-before-ack default with Kafka's lazy flushing:
    // a SIGKILL leaves the page cache intact, so both must keep every ack.
    let settings_for_round = |round: usize| -> Vec<&'static str> {
        if round % 2 == 1 {
            vec!["log.flush.interval.messages=9223372036854775807"]
        } else {
            vec![]
        }
    };
    let mut broker = BrokerProcess::spawn(port, data.path(), &log_path, &settings_for_round(0));
    let bootstrap = broker.bootstrap();
    let admin_topic = {
        let admin: rdkafka::admin::AdminClient<_> = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        let nt = rdkafka::admin::NewTopic::new(
            TOPIC,
            PARTITIONS,
            rdkafka::admin::TopicReplication::Fixed(1),
        );
        crate::common::block_on(admin.create_topics([&nt], &rdkafka::admin::AdminOptions::new()))
            .unwrap()
    };
    assert_eq!(admin_topic, vec![Ok(TOPIC.to_string())]);

    // No retries: a retried batch whose first attempt was written but not
    // acknowledged would be a legitimate duplicate without idempotence.
    let producer: FutureProducer = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("linger.ms", "2"),
            ("message.send.max.retries", "0"),
            ("message.timeout.ms", "20000"),
            ("batch.num.messages", "50"),
            ("reconnect.backoff.ms", "10"),
            ("reconnect.backoff.max.ms", "100"),
        ],
    );
    let acks = Arc::new(Acks {
        acked: Mutex::new(HashMap::new()),
        acked_count: AtomicUsize::new(0),
        failed_count: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut next_id: u64 = 0;
    let rounds = 4;
    let per_round = 2000;
    for round in 0..rounds {
        let target = acks.acked_count.load(Ordering::SeqCst) + per_round;
        let mut extra_after_target: Option<u64> = None;
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {} acks (failed {}); broker log:\n{}",
                acks.acked_count.load(Ordering::SeqCst),
                acks.failed_count.load(Ordering::SeqCst),
                read_log(&log_path)
            );
            if acks.acked_count.load(Ordering::SeqCst) >= target {
                // Keep sending a little past the target so the kill lands
                // while batches are in flight.
                let stop_at = *extra_after_target.get_or_insert(next_id + 300);
                if next_id >= stop_at {
                    break;
                }
            }
            // Bound what is outstanding so acks keep pace with sends.
            let outstanding = next_id as usize - acks.settled.load(Ordering::SeqCst);
            if outstanding > 1000 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let id = next_id;
            let value = payload(id);
            let key = format!("k{}", id % 97);
            match producer.send_result(FutureRecord::to(TOPIC).key(&key).payload(&value)) {
                Ok(delivery) => {
                    next_id += 1;
                    let acks = acks.clone();
                    rt.spawn(async move {
                        match delivery.await {
                            Ok(Ok(d)) => {
                                acks.acked
                                    .lock()
                                    .unwrap()
                                    .insert(id, (d.partition, d.offset));
                                acks.acked_count.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => {
                                acks.failed_count.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        acks.settled.fetch_add(1, Ordering::SeqCst);
                    });
                }
                Err((e, _)) => {
                    // Queue full: back off briefly and try again.
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "enqueue failed: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        broker.kill();
        broker = BrokerProcess::spawn(port, data.path(), &log_path, &settings_for_round(round + 1));
        assert_eq!(broker.bootstrap(), bootstrap);
    }
    // Let everything still queued reach the restarted broker or fail.
    let _ = producer.flush(Duration::from_secs(30));
    crate::common::wait_for("every delivery to settle", || {
        (acks.settled.load(Ordering::SeqCst) == next_id as usize).then_some(())
    });
    drop(producer);
    drop(rt);

    let log = read_partitions(&bootstrap, TOPIC, PARTITIONS);
    let acked = acks.acked.lock().unwrap();
    let mut seen: BTreeMap<u64, (i32, i64)> = BTreeMap::new();
    for (p, records) in log.iter().enumerate() {
        let mut last_id: Option<u64> = None;
        for (i, (offset, bytes)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p} offsets are not dense");
            assert_eq!(bytes.as_slice(), payload(parse_id(bytes)).as_bytes());
            let id = parse_id(bytes);
            if let Some(prev) = seen.insert(id, (p as i32, *offset)) {
                panic!("record {id} appears twice: at {prev:?} and at ({p}, {offset})");
            }
            if let Some(last) = last_id {
                assert!(
                    id > last,
                    "partition {p} out of send order: {id} after {last} at offset {offset}"
                );
            }
            last_id = Some(id);
        }
    }
    let mut missing = Vec::new();
    for (id, at) in acked.iter() {
        match seen.get(id) {
            Some(found) if found == at => {}
            other => missing.push((*id, *at, other.copied())),
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} acknowledged records are missing or moved (id, acked at, found at); first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(acked.len() >= rounds * per_round);
    let unacked_present = seen.keys().filter(|id| !acked.contains_key(id)).count();
    eprintln!(
        "crash test: sent {next_id}, acknowledged {}, failed {}, present but unacknowledged {unacked_present}",
        acked.len(),
        acks.failed_count.load(Ordering::SeqCst),
    );
    broker.terminate();
}

pub(crate) fn produce_numbered(
    bootstrap: &str,
    topic: &str,
    from: u64,
    to: u64,
) -> Vec<(u64, i64)> {
    let producer = producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "10"),
        ],
    );
    let deliveries: Vec<_> = (from..to)
        .map(|id| {
            let value = payload(id);
            (
                id,
                producer
                    .send_result(
                        FutureRecord::<(), _>::to(topic)
                            .partition(0)
                            .payload(&value),
                    )
                    .expect("enqueue"),
            )
        })
        .collect();
    deliveries
        .into_iter()
        .map(|(id, d)| {
            let d = crate::common::block_on(d)
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("record {id} failed: {e}"));
            (id, d.offset)
        })
        .collect()
}

pub(crate) fn last_segment(partition_dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = fs::read_dir(partition_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", partition_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a .log segment")
}

/// (file position, base offset, total length) of every batch in a segment.
pub(crate) fn batch_positions(bytes: &[u8]) -> Vec<(usize, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
        if pos + len > bytes.len() {
            break;
        }
        out.push((pos, base, len));
        pos += len;
    }
    out
}

/// A graceful restart keeps everything; a segment truncated mid-batch with a
/// flipped byte in its middle is cut back at the first damaged batch, the
/// records before it stay readable and new appends continue from there.
#[test]
fn damaged_segment_is_cut_at_first_bad_batch() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("broker.log");
    let port = free_port();
    let topic = "damaged";

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let bs = broker.bootstrap();
    let acked = produce_numbered(&bs, topic, 0, 500);
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    broker.terminate();

    // Clean restart: everything is there.
    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let log = read_partitions(&bs, topic, 1);
    let ids: Vec<u64> = log[0].iter().map(|(_, b)| parse_id(b)).collect();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());
    broker.terminate();

    // Damage the last segment: flip a byte inside the records of the batch
    // in the middle of the file, and cut the file in the middle of its last
    // batch.
    let segment = last_segment(&data.path().join(format!("{topic}-0")));
    let mut bytes = fs::read(&segment).unwrap();
    let batches = batch_positions(&bytes);
    assert!(
        batches.len() >= 10,
        "expected many batches, got {}",
        batches.len()
    );
    let (ok, report) = log_dump(&segment);
    assert!(ok, "an intact segment verifies: {report}");
    assert!(
        report.contains(&format!("{} batches, {} bytes", batches.len(), bytes.len())),
        "{report}"
    );
    let (last_pos, _, last_len) = *batches.last().unwrap();
    let middle = bytes.len() / 2;
    let &(bad_pos, bad_base, bad_len) = batches
        .iter()
        .find(|(pos, _, len)| middle < pos + len)
        .unwrap();
    // Past the 61-byte batch header: inside the CRC-covered records.
    let flip_at = bad_pos + 61 + (bad_len - 61) / 2;
    bytes[flip_at] ^= 0x5a;
    bytes.truncate(last_pos + last_len / 2);
    fs::write(&segment, &bytes).unwrap();
    let (ok, report) = log_dump(&segment);
    assert!(!ok, "`sluice log dump` fails on a damaged segment");
    assert!(
        report.contains(&format!(
            "PROBLEM: batch at position {bad_pos}: record batch CRC mismatch"
        )),
        "the damaged batch is named: {report}"
    );
    assert!(
        report.contains("PROBLEM: at position"),
        "the torn tail is named: {report}"
    );

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let log = read_partitions(&bs, topic, 1);
    let ids: Vec<u64> = log[0].iter().map(|(_, b)| parse_id(b)).collect();
    assert_eq!(
        ids,
        (0..bad_base as u64).collect::<Vec<_>>(),
        "records before the damaged batch at offset {bad_base} must survive, nothing after it"
    );

    // Appends continue at the cut.
    let acked = produce_numbered(&bs, topic, 1000, 1010);
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (bad_base..bad_base + 10).collect::<Vec<_>>()
    );
    let log = read_partitions(&bs, topic, 1);
    let ids: Vec<u64> = log[0].iter().map(|(_, b)| parse_id(b)).collect();
    let mut want: Vec<u64> = (0..bad_base as u64).collect();
    want.extend(1000..1010);
    assert_eq!(ids, want);
    broker.terminate();

    // And the repaired log survives another restart.
    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let log = read_partitions(&bs, topic, 1);
    let ids: Vec<u64> = log[0].iter().map(|(_, b)| parse_id(b)).collect();
    assert_eq!(ids, want);
    broker.terminate();
}

/// Only a torn tail (no other damage) after a crash: the partial batch is
/// dropped and appends continue right after the last whole batch.
#[test]
fn torn_tail_after_sigkill_is_dropped() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("broker.log");
    let port = free_port();
    let topic = "torn";

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let bs = broker.bootstrap();
    produce_numbered(&bs, topic, 0, 100);
    broker.kill();

    let segment = last_segment(&data.path().join(format!("{topic}-0")));
    let mut bytes = fs::read(&segment).unwrap();
    let batches = batch_positions(&bytes);
    let (last_pos, last_base, last_len) = *batches.last().unwrap();
    bytes.truncate(last_pos + last_len - 3);
    fs::write(&segment, &bytes).unwrap();

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let log = read_partitions(&bs, topic, 1);
    let ids: Vec<u64> = log[0].iter().map(|(_, b)| parse_id(b)).collect();
    assert_eq!(ids, (0..last_base as u64).collect::<Vec<_>>());
    let acked = produce_numbered(&bs, topic, 500, 505);
    assert_eq!(acked[0].1, last_base);
    broker.terminate();
}
