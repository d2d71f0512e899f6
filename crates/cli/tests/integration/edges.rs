//! librdkafka (the `rdkafka` crate) at the edges of what the broker accepts:
//! offsets committed for partitions that do not exist, records refused one
//! by one inside a batch, and a fetch whose partitions together hold more
//! than the consumer's `fetch.max.bytes`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{block_on, topic_name, InProcBroker, PATIENCE};
use crate::groups::create_topic;

fn offsets(entries: &[(&str, i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in entries {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    tpl
}

/// The group's committed offset for each of `targets`, by (topic, partition).
fn committed(consumer: &BaseConsumer, targets: &[(&str, i32)]) -> BTreeMap<(String, i32), Offset> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in targets {
        tpl.add_partition(topic, *partition);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| ((e.topic().to_string(), e.partition()), e.offset()))
        .collect()
}

/// Kafka refuses a commit for a topic that does not exist, or a partition
/// past the topic's count, with UNKNOWN_TOPIC_OR_PARTITION, stores nothing
/// for it, and still commits the partitions that exist. (librdkafka
/// reports a sync commit's last partition error; a commit whose partitions
/// all fail it retries, as the topic may be on its way.)
#[test]
fn commits_for_unknown_topics_and_partitions_are_refused() {
    let broker = InProcBroker::start(&[]);
    let bs = broker.bootstrap();
    let topic = topic_name("commit-known");
    let missing = topic_name("commit-missing");
    create_topic(&bs, &topic, 1);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "edges-commit")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let unknown = |result| match result {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
        other => panic!("sync commit answered {other:?}, not UNKNOWN_TOPIC_OR_PARTITION"),
    };
    let targets = [
        (topic.as_str(), 0),
        (topic.as_str(), 3),
        (missing.as_str(), 0),
    ];

    unknown(consumer.commit(
        &offsets(&[(&topic, 0, 5), (&missing, 0, 5)]),
        CommitMode::Sync,
    ));
    let want = |first| {
        BTreeMap::from([
            ((topic.clone(), 0), Offset::Offset(first)),
            ((topic.clone(), 3), Offset::Invalid),
            ((missing.clone(), 0), Offset::Invalid),
        ])
    };
    assert_eq!(committed(&consumer, &targets), want(5));

    unknown(consumer.commit(
        &offsets(&[(&topic, 0, 6), (&topic, 3, 6)]),
        CommitMode::Sync,
    ));
    assert_eq!(committed(&consumer, &targets), want(6));
}

/// The consumer of issue 11 (defect 5): a response-wide `fetch.max.bytes`
/// a little above one record, a per-partition limit far above it, and a
/// receive limit that refuses any response over `fetch.max.bytes` + 512.
/// Three partitions of 900 KiB records: the broker must fill each response
/// up to `fetch.max.bytes` only (one record each here, as only a
/// response's first batch may exceed it), so the consumer reads all.
#[test]
fn a_consumer_reads_records_near_fetch_max_bytes_from_every_partition() {
    const PARTITIONS: i32 = 3;
    const PER_PARTITION: usize = 3;
    const VALUE_BYTES: usize = 900 * 1024;
    let broker = InProcBroker::start(&[]);
    let bs = broker.bootstrap();
    let topic = topic_name("fetch-budget");
    create_topic(&bs, &topic, PARTITIONS);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut sent = BTreeSet::new();
    let deliveries: Vec<_> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, i)))
        .map(|(p, i)| {
            let value = vec![b'a' + i as u8; VALUE_BYTES];
            sent.insert((p, value[0]));
            let record = FutureRecord::<(), _>::to(&topic)
                .partition(p)
                .payload(&value);
            producer.send_result(record).expect("enqueue")
        })
        .collect();
    for delivery in deliveries {
        block_on(delivery).unwrap().expect("delivered");
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "edges-fetch-budget")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1000000")
        .set("max.partition.fetch.bytes", "20000000")
        .set("receive.message.max.bytes", "1000512")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + PATIENCE;
    let mut received = BTreeSet::new();
    let mut errors = Vec::new();
    while received.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "read {} of {} records; consumer errors: {errors:?}",
            received.len(),
            sent.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let value = m.payload().expect("a value");
                assert_eq!(value.len(), VALUE_BYTES);
                received.insert((m.partition(), value[0]));
            }
            Some(Err(e)) => errors.push(e.to_string()),
        }
    }
    assert_eq!(received, sent);
}

/// What librdkafka reported for each record it was asked to deliver, in
/// order: `None` when delivered.
fn deliver_in_one_batch(
    bootstrap: &str,
    topic: &str,
    records: &[(Option<&str>, i64)],
) -> Vec<Option<RDKafkaErrorCode>> {
    // A long linger puts every record into one batch, so the broker judges
    // them together and must say which of them it refuses.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1000")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = records
        .iter()
        .map(|(key, timestamp)| {
            let mut record = FutureRecord::to(topic)
                .partition(0)
                .payload("value")
                .timestamp(*timestamp);
            if let Some(key) = key {
                record = record.key(*key);
            }
            producer.send_result(record).expect("enqueue")
        })
        .collect();
    deliveries
        .into_iter()
        .map(|d| match block_on(d).expect("delivery report") {
            Ok(_) => None,
            Err((KafkaError::MessageProduction(code), _)) => Some(code),
            Err((other, _)) => panic!("unexpected delivery error {other:?}"),
        })
        .collect()
}

/// Produce v8+ names the refused records (`record_errors`): librdkafka then
/// fails exactly those, and the others of the batch with "invalid
/// different record", instead of failing them all alike. (librdkafka 2.12
/// does so only when two or more records are named: with one, it gives
/// every record of the batch the partition's error.)
#[test]
fn librdkafka_learns_which_records_of_a_batch_were_refused() {
    let broker = InProcBroker::start(&[]);
    let bs = broker.bootstrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let refused = Some(RDKafkaErrorCode::InvalidRecord);
    let different = Some(RDKafkaErrorCode::InvalidDifferentRecord);

    let compacted = topic_name("compacted-no-key");
    create_topic_with(&bs, &compacted, &[("cleanup.policy", "compact")]);
    let keys = [(Some("a"), now), (None, now), (Some("b"), now), (None, now)];
    assert_eq!(
        deliver_in_one_batch(&bs, &compacted, &keys),
        vec![different, refused, different, refused]
    );

    // message.timestamp.after.max.ms is an hour by default.
    let timed = topic_name("future-timestamp");
    create_topic_with(&bs, &timed, &[]);
    let hour = 3600 * 1000;
    let times = [
        (Some("a"), now),
        (Some("b"), now + 2 * hour),
        (Some("c"), now + 3 * hour),
        (Some("d"), now),
    ];
    assert_eq!(
        deliver_in_one_batch(&bs, &timed, &times),
        vec![different, refused, refused, different]
    );
}

fn create_topic_with(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(name.to_string())]);
}
