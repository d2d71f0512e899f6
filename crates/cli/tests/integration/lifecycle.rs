//! Log lifecycle through librdkafka: topic configs changed on a live topic
//! take effect without a restart (segment size, retention), and a consumer
//! whose position was deleted by retention resets per `auto.offset.reset`.

use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{block_on, topic_name, wait_for, InProcBroker, PATIENCE};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(PATIENCE))
}

/// Produces `count` records of ~100 bytes, one acknowledged batch each.
fn produce(bootstrap: &str, topic: &str, count: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for i in 0..count {
        let value = format!("{i:0>100}");
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(0).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(PATIENCE).unwrap();
    }
}

fn segment_count(dir: &std::path::Path, topic: &str) -> usize {
    std::fs::read_dir(dir.join(format!("{topic}-0")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count()
}

#[test]
fn config_changes_apply_live_and_consumers_reset_past_deleted_data() {
    let broker = InProcBroker::start(&[("log.retention.check.interval.ms", "200")]);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("lifecycle");
    let nt = NewTopic::new(&topic, 1, TopicReplication::Fixed(1));
    block_on(admin(&bootstrap).create_topics([&nt], &opts())).unwrap();

    produce(&bootstrap, &topic, 20);
    assert_eq!(segment_count(broker.log_dir(), &topic), 1);

    // A smaller segment.bytes rolls the live log on the next appends.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("segment.bytes", "1000");
    block_on(admin(&bootstrap).alter_configs([&alter], &opts())).unwrap();
    produce(&bootstrap, &topic, 40);
    let segments = segment_count(broker.log_dir(), &topic);
    assert!(
        segments >= 4,
        "segment.bytes=1000 applied live: {segments} segments"
    );

    // A consumer positioned at offset 5 before retention removes it.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", topic_name("lifecycle-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();

    // retention.ms=1 (segment.bytes kept) deletes every closed segment at
    // the next retention pass.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("segment.bytes", "1000")
        .set("retention.ms", "1");
    block_on(admin(&bootstrap).alter_configs([&alter], &opts())).unwrap();
    wait_for("retention to delete the closed segments", || {
        let (low, _) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .ok()?;
        (low > 5).then_some(low)
    });

    // Keep what comes next (retention may have emptied the log entirely),
    // and give the consumer data after the deleted range.
    let keep = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("segment.bytes", "1000")
        .set("retention.ms", "-1");
    block_on(admin(&bootstrap).alter_configs([&keep], &opts())).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (low, _) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(5))
        .unwrap();
    produce(&bootstrap, &topic, 3);

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(5))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let first = wait_for("a record after the offset reset", || {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => Some(m.offset()),
            Some(Err(e)) => {
                eprintln!("consumer: {e}");
                None
            }
            None => None,
        }
    });
    assert_eq!(
        first, low,
        "auto.offset.reset=earliest resumes at the new log start"
    );
}
