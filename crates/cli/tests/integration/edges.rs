//! librdkafka (the `rdkafka` crate) at the edges of what the broker accepts:
//! offsets committed for partitions that do not exist, records refused one
//! by one inside a batch, and a fetch whose partitions together hold more
//! than the consumer's `fetch.max.bytes`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{topic_name, InProcBroker};
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
