//! Transactions through librdkafka (the `rdkafka` crate): commit and abort
//! across partitions as read_committed and read_uncommitted consumers see
//! them, fencing of a zombie producer, and a consume-transform-produce loop
//! that stays exactly-once while the broker is SIGKILLed under it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{
    block_on, free_port, log_dump, topic_name, wait_for, BrokerProcess, InProcBroker, PATIENCE,
};

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let nt = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let res = block_on(admin.create_topics([&nt], &opts)).expect("CreateTopics");
    assert_eq!(res, vec![Ok(name.to_string())]);
}

pub(crate) fn transactional_producer(bootstrap: &str, transactional_id: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "2")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .expect("transactional producer")
}

/// Sends a record, serving delivery reports while the queue is full.
pub(crate) fn send(
    producer: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    value: &str,
) {
    loop {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
}

fn consumer(bootstrap: &str, isolation: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", topic_name("txn-reader"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

/// Every (key, value) in the partitions, read from the start to their end
/// with the given isolation level.
pub(crate) fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<(String, String)> {
    let c = consumer(bootstrap, isolation, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut got = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "did not reach the end of {topic}"
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                got.push((text(m.key()), text(m.payload())));
            }
        }
    }
    got
}

#[test]
fn committed_transactions_are_visible_and_aborted_ones_are_not() {
    let broker = InProcBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("txn");
    create_topic(&bootstrap, &topic, 3);
    let producer = transactional_producer(&bootstrap, &topic_name("tx"));
    producer
        .init_transactions(PATIENCE)
        .expect("init_transactions");
    for (label, commit) in [("c1", true), ("ab", false), ("c3", true)] {
        producer.begin_transaction().unwrap();
        for i in 0..30 {
            send(
                &producer,
                &topic,
                Some(i % 3),
                label,
                &format!("{label}-{i}"),
            );
        }
        producer.flush(PATIENCE).unwrap();
        if commit {
            producer.commit_transaction(PATIENCE).expect("commit");
        } else {
            producer.abort_transaction(PATIENCE).expect("abort");
        }
    }
    let mut committed: Vec<String> = read_all(&bootstrap, &topic, 3, "read_committed")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    committed.sort();
    let mut want: Vec<String> = (0..30)
        .flat_map(|i| [format!("c1-{i}"), format!("c3-{i}")])
        .collect();
    want.sort();
    assert_eq!(
        committed, want,
        "read_committed sees exactly the committed records"
    );

    let uncommitted = read_all(&bootstrap, &topic, 3, "read_uncommitted");
    assert_eq!(
        uncommitted.len(),
        90,
        "read_uncommitted sees every data record, no markers"
    );
}

/// Aborted transactions over many small segments, as librdkafka's
/// read_committed consumer sees them after a SIGKILL and after a graceful
/// restart (the broker rebuilds and reads its `.txnindex` files); `sluice
/// log dump` prints those files and names a damaged one.
#[test]
fn aborted_transactions_survive_restarts_over_small_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    let port = free_port();
    let settings = ["log.segment.bytes=300"];
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("txnidx");
    create_topic(&bootstrap, &topic, 1);
    let mut want = Vec::new();
    {
        let producer = transactional_producer(&bootstrap, &topic_name("tx"));
        producer
            .init_transactions(PATIENCE)
            .expect("init_transactions");
        for round in 0..6 {
            let commit = round % 2 == 0;
            producer.begin_transaction().unwrap();
            for i in 0..20 {
                let value = format!("r{round}-{i:02}");
                send(&producer, &topic, Some(0), "k", &value);
                if commit {
                    want.push(value);
                }
            }
            producer.flush(PATIENCE).unwrap();
            if commit {
                producer.commit_transaction(PATIENCE).expect("commit");
            } else {
                producer.abort_transaction(PATIENCE).expect("abort");
            }
        }
    }
    let committed = |bootstrap: &str| -> Vec<String> {
        read_all(bootstrap, &topic, 1, "read_committed")
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(committed(&bootstrap), want);
    broker.kill();
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    assert_eq!(committed(&bootstrap), want, "after a SIGKILL");
    broker.terminate();
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    assert_eq!(committed(&bootstrap), want, "after a graceful restart");
    broker.terminate();

    let partition_dir = data.join(format!("{topic}-0"));
    let mut indexes: Vec<_> = std::fs::read_dir(&partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect();
    indexes.sort();
    let segments = std::fs::read_dir(&partition_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "log")
        })
        .count();
    assert!(
        !indexes.is_empty() && segments > indexes.len(),
        "only segments holding an abort marker have a txnindex: {indexes:?} of {segments} segments"
    );
    let mut entries = 0;
    for path in &indexes {
        let (ok, report) = log_dump(path);
        assert!(ok, "{}: {report}", path.display());
        entries += report.matches("producerId:").count();
    }
    assert_eq!(entries, 3, "one entry per aborted transaction");

    // A torn copy is reported with the position of the partial entry.
    let copy = dir.path().join(indexes[0].file_name().unwrap());
    let mut bytes = std::fs::read(&indexes[0]).unwrap();
    let intact = bytes.len();
    bytes.extend_from_slice(&[0; 7]);
    std::fs::write(&copy, &bytes).unwrap();
    let (ok, report) = log_dump(&copy);
    assert!(!ok, "a damaged txnindex fails the dump: {report}");
    assert!(
        report.contains(&format!(
            "PROBLEM: at position {intact}: a partial entry of 7 bytes"
        )),
        "{report}"
    );
}

#[test]
fn a_zombie_producer_is_fenced() {
    let broker = InProcBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("zombie");
    create_topic(&bootstrap, &topic, 1);
    let id = topic_name("tx");
    let zombie = transactional_producer(&bootstrap, &id);
    zombie.init_transactions(PATIENCE).unwrap();
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, Some(0), "k", "from-the-zombie");
    zombie.flush(PATIENCE).unwrap();

    let successor = transactional_producer(&bootstrap, &id);
    successor
        .init_transactions(PATIENCE)
        .expect("the successor takes over");
    let err = zombie
        .commit_transaction(PATIENCE)
        .expect_err("the zombie cannot commit");
    let fatal = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
    assert!(fatal, "fencing is fatal for the zombie: {err:?}");

    successor.begin_transaction().unwrap();
    send(&successor, &topic, Some(0), "k", "from-the-successor");
    successor.commit_transaction(PATIENCE).unwrap();
    let values: Vec<String> = read_all(&bootstrap, &topic, 1, "read_committed")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["from-the-successor"]);
}

#[test]
fn an_expired_transaction_is_aborted_by_the_coordinator() {
    let broker = InProcBroker::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "200",
    )]);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("expiry");
    create_topic(&bootstrap, &topic, 2);
    let id = topic_name("tx");
    let stalled: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", &id)
        .set("transaction.timeout.ms", "1000")
        .create()
        .expect("transactional producer");
    stalled.init_transactions(PATIENCE).unwrap();
    stalled.begin_transaction().unwrap();
    send(&stalled, &topic, Some(0), "k", "left-open-0");
    send(&stalled, &topic, Some(1), "k", "left-open-1");
    stalled.flush(PATIENCE).unwrap();

    // While the transaction is open, read_committed sees nothing of it and
    // cannot read past it; once the coordinator aborts it, both partitions
    // are readable to their end and the records are not there.
    let lso = |c: &BaseConsumer, p: i32| {
        c.fetch_watermarks(&topic, p, PATIENCE)
            .map(|(_, high)| high)
            .unwrap()
    };
    let reader = consumer(&bootstrap, "read_committed", &[]);
    assert_eq!(
        (lso(&reader, 0), lso(&reader, 1)),
        (0, 0),
        "open transaction"
    );
    // Each partition: the record at 0, the abort marker at 1.
    wait_for("the coordinator to abort the transaction", || {
        (lso(&reader, 0) == 2 && lso(&reader, 1) == 2).then_some(())
    });
    assert_eq!(read_all(&bootstrap, &topic, 2, "read_uncommitted").len(), 2);
    assert_eq!(
        read_all(&bootstrap, &topic, 2, "read_committed"),
        [],
        "aborted records stay invisible to read_committed"
    );

    // The producer's epoch was bumped with the abort: it cannot commit.
    let err = stalled
        .commit_transaction(PATIENCE)
        .expect_err("the timed-out transaction cannot commit");
    assert!(
        matches!(&err, KafkaError::Transaction(_)),
        "a transaction error: {err:?}"
    );
}

const INPUT_RECORDS: usize = 600;
const PER_TRANSACTION: usize = 10;

/// One run of the transform: from committed offsets, in transactions of
/// `PER_TRANSACTION` input records, until the input is done or anything
/// fails (the caller then starts over with fresh clients, as an application
/// restarted by its supervisor would).
fn transform(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    processed: &AtomicUsize,
) -> bool {
    let producer = transactional_producer(bootstrap, &format!("{group}-tx"));
    if producer.init_transactions(Duration::from_secs(10)).is_err() {
        return false;
    }
    let consumer = consumer(bootstrap, "read_committed", &[("group.id", group)]);
    if consumer.subscribe(&[input]).is_err() {
        return false;
    }
    let mut at_end = std::collections::BTreeSet::new();
    loop {
        let mut batch = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while batch.len() < PER_TRANSACTION && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(50)) {
                None => {
                    if at_end.len() == 2 && processed.load(Ordering::SeqCst) >= INPUT_RECORDS {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(_)) => return false,
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    let value =
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    batch.push(value);
                }
            }
        }
        if batch.is_empty() {
            // Done once every input partition reached its end with nothing left.
            return at_end.len() == 2 && committed_total(&consumer, input) >= INPUT_RECORDS as i64;
        }
        if producer.begin_transaction().is_err() {
            return false;
        }
        for value in &batch {
            send(&producer, output, None, value, &format!("out-{value}"));
        }
        let Ok(position) = consumer.position() else {
            return false;
        };
        let Some(metadata) = consumer.group_metadata() else {
            return false;
        };
        let ended = producer
            .send_offsets_to_transaction(&position, &metadata, Duration::from_secs(10))
            .and_then(|()| producer.commit_transaction(Duration::from_secs(10)));
        if ended.is_err() {
            let _ = producer.abort_transaction(Duration::from_secs(5));
            return false;
        }
        processed.fetch_add(batch.len(), Ordering::SeqCst);
    }
}

/// The group's committed offsets on the input, summed.
fn committed_total(consumer: &BaseConsumer, input: &str) -> i64 {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(input, 0);
    tpl.add_partition(input, 1);
    consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .map(|c| {
            c.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn consume_transform_produce_is_exactly_once_across_broker_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    let port = free_port();
    let settings = ["group.initial.rebalance.delay.ms=0"];
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bootstrap = broker.bootstrap();
    let input = topic_name("ctp-in");
    let output = topic_name("ctp-out");
    create_topic(&bootstrap, &input, 2);
    create_topic(&bootstrap, &output, 2);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for i in 0..INPUT_RECORDS {
        send(
            &plain,
            &input,
            Some((i % 2) as i32),
            "in",
            &format!("{i:05}"),
        );
    }
    plain.flush(PATIENCE).unwrap();

    // The broker dies at random moments while the transform runs, and
    // comes back on the same port and data.
    let done = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicUsize::new(0));
    let killer = {
        let done = done.clone();
        let processed = processed.clone();
        std::thread::spawn(move || {
            let mut broker = broker;
            let mut kills = 0;
            let mut seed: u64 = 0x5eed_1234_abcd_0001;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            while !done.load(Ordering::SeqCst) && kills < 4 {
                // Kill somewhere in the next stretch of transactions.
                let target = processed.load(Ordering::SeqCst) + 20 + (next() % 60) as usize;
                while processed.load(Ordering::SeqCst) < target && !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if done.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(next() % 20_000));
                broker.kill();
                kills += 1;
                broker = BrokerProcess::spawn(port, &data, &log, &settings);
            }
            (broker, kills)
        })
    };
    let group = topic_name("ctp");
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut runs = 0;
    while !transform(&bootstrap, &input, &output, &group, &processed) {
        runs += 1;
        assert!(
            Instant::now() < deadline,
            "the transform never finished ({runs} restarts)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::SeqCst);
    let (broker, kills) = killer.join().unwrap();
    assert!(kills >= 1, "the broker was never killed mid-run");
    eprintln!("transform finished after {kills} broker SIGKILLs and {runs} client restarts");

    let out = read_all(&broker.bootstrap(), &output, 2, "read_committed");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (key, _) in out {
        *counts.entry(key).or_default() += 1;
    }
    let missing: Vec<usize> = (0..INPUT_RECORDS)
        .filter(|i| !counts.contains_key(&format!("{i:05}")))
        .collect();
    let duplicated: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "after {kills} kills and {runs} restarts: missing {missing:?}, duplicated {duplicated:?}"
    );
    assert_eq!(counts.len(), INPUT_RECORDS);
}

/// Relays one client connection to the broker; the first Produce request is
/// delivered but its response is lost: the connection is cut once the
/// broker has had time to append it.
fn relay_losing_first_produce_response(
    client: std::net::TcpStream,
    broker: &str,
    lost: &AtomicBool,
) {
    use std::io::{Read, Write};
    let Ok(upstream) = std::net::TcpStream::connect(broker) else {
        return;
    };
    let (mut from_client, mut to_broker) =
        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut from_broker, mut to_client) = (upstream, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_broker, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    loop {
        let mut len = [0u8; 4];
        if from_client.read_exact(&mut len).is_err() {
            break;
        }
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        if from_client.read_exact(&mut frame).is_err() {
            break;
        }
        let is_produce = frame.get(..2) == Some(&[0, 0]);
        if to_broker
            .write_all(&len)
            .and_then(|()| to_broker.write_all(&frame))
            .is_err()
        {
            break;
        }
        if is_produce && !lost.swap(true, Ordering::SeqCst) {
            // The broker appends it; the client never hears back.
            std::thread::sleep(Duration::from_millis(300));
            let _ = to_broker.shutdown(std::net::Shutdown::Both);
            let _ = from_client.shutdown(std::net::Shutdown::Both);
            break;
        }
    }
    let _ = to_broker.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}

#[test]
fn a_retry_after_a_lost_produce_response_is_not_duplicated() {
    // Clients reach the broker only through the proxy: it is the
    // advertised address.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap().to_string();
    let broker = InProcBroker::start(&[("advertised.listeners", &proxy_addr)]);
    let upstream = broker.bootstrap();
    let lost = Arc::new(AtomicBool::new(false));
    {
        let lost = lost.clone();
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            for client in proxy.incoming().flatten() {
                let lost = lost.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    relay_losing_first_produce_response(client, &upstream, &lost)
                });
            }
        });
    }
    let topic = topic_name("lost-ack");
    create_topic(&proxy_addr, &topic, 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &proxy_addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "50")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "20")
        .create()
        .unwrap();
    for i in 0..100 {
        send(&producer, &topic, Some(0), "k", &format!("v{i}"));
    }
    producer.flush(PATIENCE).expect("every record acknowledged");
    assert!(
        lost.load(Ordering::SeqCst),
        "a produce response was dropped"
    );
    let values: Vec<String> = read_all(&upstream, &topic, 1, "read_uncommitted")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    assert_eq!(
        values, want,
        "each record once, in order, despite the retry"
    );
}

/// Our own client on transactions v2 (KIP-890 part 2): the broker finalizes
/// `transaction.version` 2, so the producer sends no AddPartitionsToTxn or
/// AddOffsetsToTxn, and each EndTxn v5 hands it the next epoch. Commit,
/// abort and consume-transform-produce, read back by librdkafka with
/// read_committed.
#[test]
fn sluice_client_transactions_v2_commit_abort_and_offsets() {
    use sluice_client::{
        Admin, ClientConfig as SluiceConfig, ConsumerGroupMetadata, GroupOffset,
        Producer as SluiceProducer, ProducerConfig, ProducerRecord,
    };
    let broker = InProcBroker::start(&[]);
    let bootstrap = broker.bootstrap();
    let input = topic_name("tv2-in");
    let output = topic_name("tv2-out");
    create_topic(&bootstrap, &input, 1);
    create_topic(&bootstrap, &output, 2);
    let group = topic_name("tv2-group");
    let (epochs, committed) = block_on(async {
        let producer = SluiceProducer::connect(
            SluiceConfig::new(&bootstrap),
            ProducerConfig {
                transactional_id: Some(topic_name("tv2")),
                ..ProducerConfig::default()
            },
        )
        .await
        .expect("producer");
        producer.init_transactions().await.expect("init");
        let identity = |p: &SluiceProducer| p.transactional_identity().expect("identity");
        assert!(producer.uses_transactions_v2(), "the broker finalizes TV2");
        let mut epochs = vec![identity(&producer)];
        for (label, commit) in [("c1", true), ("ab", false), ("c3", true)] {
            producer.begin_transaction().unwrap();
            let sends: Vec<_> = (0..20)
                .map(|i| {
                    producer.send(
                        ProducerRecord::new(output.clone(), format!("{label}-{i}"))
                            .with_key(label)
                            .with_partition(i % 2),
                    )
                })
                .collect();
            for s in sends {
                s.await.expect("delivered");
            }
            if commit {
                producer.commit_transaction().await.expect("commit");
            } else {
                producer.abort_transaction().await.expect("abort");
            }
            epochs.push(identity(&producer));
        }
        // Consume-transform-produce: the output and the input offset commit
        // or abort together; offsets go in with TxnOffsetCommit v5 alone.
        for (offset, commit) in [(5, false), (7, true)] {
            producer.begin_transaction().unwrap();
            producer
                .send(
                    ProducerRecord::new(output.clone(), format!("ctp-{offset}"))
                        .with_key("ctp")
                        .with_partition(0),
                )
                .await
                .expect("delivered");
            producer
                .send_offsets_to_transaction(
                    &[GroupOffset::new(input.clone(), 0, offset)],
                    &ConsumerGroupMetadata::new(group.clone()),
                )
                .await
                .expect("offsets");
            if commit {
                producer.commit_transaction().await.expect("commit");
            } else {
                producer.abort_transaction().await.expect("abort");
            }
            epochs.push(identity(&producer));
        }
        // Offsets alone, then commit.
        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(
                &[GroupOffset::new(input.clone(), 0, 9)],
                &ConsumerGroupMetadata::new(group.clone()),
            )
            .await
            .expect("offsets");
        producer.commit_transaction().await.expect("commit");
        epochs.push(identity(&producer));
        producer.close().await;
        let admin = Admin::connect(SluiceConfig::new(&bootstrap))
            .await
            .expect("admin");
        let committed = admin.list_group_offsets(&group).await.expect("offsets");
        (epochs, committed)
    });
    // Same producer id; every EndTxn moved the epoch on by one.
    let (pid, first) = epochs[0];
    for (i, (id, epoch)) in epochs.iter().enumerate() {
        assert_eq!(*id, pid);
        assert_eq!(i32::from(*epoch), i32::from(first) + i as i32, "{epochs:?}");
    }
    assert_eq!(
        committed
            .iter()
            .map(|o| (o.partition, o.offset))
            .collect::<Vec<_>>(),
        [(0, 9)]
    );

    let mut seen: Vec<String> = read_all(&bootstrap, &output, 2, "read_committed")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    seen.sort();
    let mut want: Vec<String> = (0..20)
        .flat_map(|i| [format!("c1-{i}"), format!("c3-{i}")])
        .chain(["ctp-7".to_string()])
        .collect();
    want.sort();
    assert_eq!(
        seen, want,
        "read_committed sees exactly the committed records"
    );
    assert_eq!(
        read_all(&bootstrap, &output, 2, "read_uncommitted").len(),
        62,
        "every data record is there for read_uncommitted"
    );
}

/// On three `sluice serve` processes a transaction writes to partitions
/// led by every broker, whichever coordinates it: the coordinator has the
/// other leaders write its markers (WriteTxnMarkers), the leaders check
/// each transactional produce with it (AddPartitionsToTxn), and offsets
/// sent to the transaction are committed by the group's coordinator,
/// another broker again, once the transaction commits.
#[test]
fn transactions_span_partitions_led_by_brokers_other_than_their_coordinator() {
    use crate::cluster::{metadata, wait_until, Cluster};
    use std::path::{Path, PathBuf};
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    let bootstrap = format!(
        "{},{},{}",
        cluster.bootstrap(1),
        cluster.bootstrap(2),
        cluster.bootstrap(3)
    );
    const PARTITIONS: i32 = 6;
    let topic = "txn-spread";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = block_on(admin.create_topics(
        [&NewTopic::new(
            topic,
            PARTITIONS,
            TopicReplication::Fixed(3),
        )],
        &AdminOptions::new().operation_timeout(Some(PATIENCE)),
    ))
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let leaders = wait_until("every partition has a leader", &logs, || {
        let (_, leaders) = metadata(&cluster.bootstrap(1), topic);
        (leaders.len() == PARTITIONS as usize && !leaders.contains(&-1)).then_some(leaders)
    });
    assert_eq!(
        leaders
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "the partitions are led by all three brokers: {leaders:?}"
    );

    let group = "spread-group";
    let group_consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let producer = transactional_producer(&bootstrap, "spread-tx");
    producer
        .init_transactions(PATIENCE)
        .expect("init_transactions");
    for (label, commit) in [("c1", true), ("ab", false), ("c3", true)] {
        producer.begin_transaction().expect("begin");
        for p in 0..PARTITIONS {
            send(&producer, topic, Some(p), label, &format!("{label}-{p}"));
        }
        if label == "c3" {
            let mut offsets = TopicPartitionList::new();
            offsets
                .add_partition_offset(topic, 0, Offset::Offset(42))
                .unwrap();
            producer
                .send_offsets_to_transaction(
                    &offsets,
                    &group_consumer.group_metadata().expect("group metadata"),
                    PATIENCE,
                )
                .expect("send_offsets_to_transaction");
        }
        producer.flush(PATIENCE).expect("every record delivered");
        if commit {
            producer.commit_transaction(PATIENCE).expect("commit");
        } else {
            producer.abort_transaction(PATIENCE).expect("abort");
        }
    }

    let mut committed = read_all(&bootstrap, topic, PARTITIONS, "read_committed");
    committed.sort();
    let mut expected: Vec<(String, String)> = ["c1", "c3"]
        .iter()
        .flat_map(|label| (0..PARTITIONS).map(move |p| (label.to_string(), format!("{label}-{p}"))))
        .collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "read_committed sees the committed transactions only"
    );
    let uncommitted = read_all(&bootstrap, topic, PARTITIONS, "read_uncommitted");
    assert_eq!(uncommitted.len(), 3 * PARTITIONS as usize);

    let mut asked = TopicPartitionList::new();
    asked.add_partition(topic, 0);
    let offsets = group_consumer
        .committed_offsets(asked, PATIENCE)
        .expect("committed offsets");
    assert_eq!(
        offsets.find_partition(topic, 0).map(|p| p.offset()),
        Some(Offset::Offset(42)),
        "the offset sent to the committed transaction"
    );
}

/// (leader, ISR size) of the `__transaction_state` partition that
/// coordinates `transactional_id`, as `bootstrap` says.
fn coordinator_partition(bootstrap: &str, transactional_id: &str) -> Option<(i32, usize)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some("__transaction_state"), Duration::from_secs(5))
        .ok()?;
    let partition = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == state_partition(transactional_id))?;
    Some((partition.leader(), partition.isr().len()))
}

/// The `__transaction_state` partition of `transactional_id` (Java's
/// `String.hashCode` over 50 partitions, as Kafka computes it).
fn state_partition(transactional_id: &str) -> i32 {
    let hash = transactional_id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    (hash.unsigned_abs() % 50) as i32
}

/// An open transaction outlives the SIGKILL of its coordinator: the broker
/// that takes over `__transaction_state` loads it, and the producer
/// commits it there; read_committed consumers see every record once.
#[test]
fn an_open_transaction_commits_after_its_coordinator_is_killed() {
    use crate::cluster::{metadata, wait_until, Cluster};
    use std::path::{Path, PathBuf};
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    let bootstrap = format!(
        "{},{},{}",
        cluster.bootstrap(1),
        cluster.bootstrap(2),
        cluster.bootstrap(3)
    );
    const PARTITIONS: i32 = 3;
    let topic = "txn-failover";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = block_on(admin.create_topics(
        [&NewTopic::new(
            topic,
            PARTITIONS,
            TopicReplication::Fixed(3),
        )],
        &AdminOptions::new().operation_timeout(Some(PATIENCE)),
    ))
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);

    let transactional_id = "failover-tx";
    let producer = transactional_producer(&bootstrap, transactional_id);
    producer
        .init_transactions(PATIENCE)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin");
    for p in 0..PARTITIONS {
        for i in 0..5 {
            send(&producer, topic, Some(p), "k", &format!("v-{p}-{i}"));
        }
    }
    producer.flush(PATIENCE).expect("every record delivered");
    let coordinator = wait_until("the transaction state is on all three", &logs, || {
        let (leader, isr) = coordinator_partition(&bootstrap, transactional_id)?;
        (isr == 3).then_some(leader)
    });
    cluster.kill(coordinator);
    producer
        .commit_transaction(PATIENCE)
        .expect("commit through the new coordinator");
    let survivors: Vec<String> = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| cluster.bootstrap(id))
        .collect();
    let mut committed = read_all(&survivors.join(","), topic, PARTITIONS, "read_committed");
    committed.sort();
    let mut expected: Vec<(String, String)> = (0..PARTITIONS)
        .flat_map(|p| (0..5).map(move |i| ("k".to_string(), format!("v-{p}-{i}"))))
        .collect();
    expected.sort();
    assert_eq!(committed, expected);
}

/// A commit whose marker cannot be written yet (the partition's only
/// replica is down, so it has no leader) is answered anyway once the
/// transaction is decided; the marker follows when the partition is back,
/// and read_committed consumers then see the whole transaction.
#[test]
fn a_commit_is_answered_while_a_partition_has_no_leader_and_completes_later() {
    use crate::cluster::{wait_until, Cluster};
    use std::path::{Path, PathBuf};
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (crate::cluster::metadata(&cluster.bootstrap(1), "none")
            .0
            .len()
            == 3)
            .then_some(())
    });
    let bootstrap = (1..=3)
        .map(|id| cluster.bootstrap(id))
        .collect::<Vec<_>>()
        .join(",");
    let transactional_id = "leaderless-tx";
    let producer = transactional_producer(&bootstrap, transactional_id);
    producer
        .init_transactions(PATIENCE)
        .expect("init_transactions");
    let coordinator = wait_until("the coordinator is known", &logs, || {
        let (leader, _) = coordinator_partition(&bootstrap, transactional_id)?;
        (leader > 0).then_some(leader)
    });
    let other = (1..=3)
        .find(|id| *id != coordinator)
        .expect("another broker");
    let topic = "txn-leaderless";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let (coordinator_only, other_only) = ([coordinator], [other]);
    let assignment: [&[i32]; 2] = [&coordinator_only, &other_only];
    let created = block_on(admin.create_topics(
        [&NewTopic::new(
            topic,
            2,
            TopicReplication::Variable(&assignment),
        )],
        &AdminOptions::new().operation_timeout(Some(PATIENCE)),
    ))
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    producer.begin_transaction().expect("begin");
    send(&producer, topic, Some(0), "k", "on-the-coordinator");
    send(&producer, topic, Some(1), "k", "on-the-other");
    producer.flush(PATIENCE).expect("every record delivered");

    // Partition 1's only replica goes: it has no leader for the marker.
    cluster.kill(other);
    producer
        .commit_transaction(PATIENCE)
        .expect("the commit is answered once decided");

    cluster.start(&[other]);
    let mut committed = read_all(&bootstrap, topic, 2, "read_committed");
    committed.sort();
    assert_eq!(
        committed,
        vec![
            ("k".to_string(), "on-the-coordinator".to_string()),
            ("k".to_string(), "on-the-other".to_string()),
        ]
    );
}
