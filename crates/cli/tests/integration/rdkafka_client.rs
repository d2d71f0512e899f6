//! A third-party client (librdkafka through the `rdkafka` crate) against an
//! in-process broker: admin, every codec and acks level, offsets, configs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage, Timestamp};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sluice_protocol::batch::BatchIter;

use crate::common::{block_on, topic_name, InProcBroker, PATIENCE};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)))
}

pub(crate) fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

pub(crate) fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-integration")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("check.crcs", "true")
        .create()
        .expect("consumer")
}

/// Reads exactly `n` messages (or panics after [`PATIENCE`]) from the given
/// start positions.
pub(crate) fn consume_n(
    bootstrap: &str,
    topic: &str,
    starts: &[(i32, Offset)],
    n: usize,
) -> Vec<OwnedMessage> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for (p, off) in starts {
        tpl.add_partition_offset(topic, *p, *off).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {n} messages from {topic}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consumer error on {topic}: {e}"),
        }
    }
    // Nothing beyond what we expect.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
        panic!(
            "unexpected extra message at {}/{}",
            m.partition(),
            m.offset()
        );
    }
    out
}

fn topic_partitions(bootstrap: &str) -> BTreeMap<String, usize> {
    let md = admin(bootstrap)
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut nt = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        nt = nt.set(k, v);
    }
    let res = block_on(admin(bootstrap).create_topics([&nt], &admin_opts())).expect("CreateTopics");
    assert_eq!(res, vec![Ok(name.to_string())]);
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn admin_create_topic_and_errors() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    let admin = admin(&bs);
    let opts = admin_opts();

    let orders = NewTopic::new("orders", 3, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("max.message.bytes", "2000000");
    let res = block_on(admin.create_topics([&orders], &opts)).unwrap();
    assert_eq!(res, vec![Ok("orders".to_string())]);

    let res = block_on(admin.create_topics([&orders], &opts)).unwrap();
    assert_eq!(
        res,
        vec![Err((
            "orders".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );

    for bad in ["bad name!", "..", &"x".repeat(250)] {
        let t = NewTopic::new(bad, 1, TopicReplication::Fixed(1));
        let res = block_on(admin.create_topics([&t], &opts)).unwrap();
        assert_eq!(
            res,
            vec![Err((bad.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "topic name {bad:?}"
        );
    }

    let rf3 = NewTopic::new("three-replicas", 1, TopicReplication::Fixed(3));
    let res = block_on(admin.create_topics([&rf3], &opts)).unwrap();
    assert_eq!(
        res,
        vec![Err((
            "three-replicas".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );

    let zero = NewTopic::new("zero-partitions", 0, TopicReplication::Fixed(1));
    let res = block_on(admin.create_topics([&zero], &opts)).unwrap();
    assert_eq!(
        res,
        vec![Err((
            "zero-partitions".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    let topics = topic_partitions(&bs);
    assert_eq!(topics.get("orders"), Some(&3), "metadata: {topics:?}");
    assert!(!topics.contains_key("three-replicas"), "{topics:?}");
    assert!(!topics.contains_key("zero-partitions"), "{topics:?}");
    assert!(!topics.contains_key("bad name!"), "{topics:?}");
}

#[test]
fn admin_describe_and_alter_configs() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "configured", 1, &[("retention.ms", "3600000")]);
    let admin = admin(&bs);

    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic("configured")], &admin_opts()))
            .unwrap();
    assert_eq!(res.len(), 1);
    let resource = res.into_iter().next().unwrap().expect("topic configs");
    let retention = resource.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let cleanup = resource
        .get("cleanup.policy")
        .expect("cleanup.policy listed");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_eq!(cleanup.source, ConfigSource::Default);
    assert!(cleanup.is_default);

    // The broker resource.
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    let broker_id = md.brokers()[0].id();
    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Broker(broker_id)], &admin_opts()))
            .unwrap();
    let resource = res.into_iter().next().unwrap().expect("broker configs");
    assert!(
        resource.get("log.flush.interval.messages").is_some(),
        "broker configs: {:?}",
        resource.entries.iter().map(|e| &e.name).collect::<Vec<_>>()
    );

    // rdkafka 0.39 exposes only the legacy AlterConfigs (key 33): the given
    // settings replace the topic's overrides as a whole.
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("configured")).set("retention.ms", "1000");
    let res = block_on(admin.alter_configs([&alter], &admin_opts())).expect("AlterConfigs");
    assert!(res.iter().all(|r| r.is_ok()), "AlterConfigs: {res:?}");
    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic("configured")], &admin_opts()))
            .unwrap();
    let resource = res.into_iter().next().unwrap().unwrap();
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("1000")
    );
    // An invalid value changes nothing. (The broker answers INVALID_CONFIG,
    // checked in the broker's handler tests; rdkafka 0.39's alter_configs
    // reports every resource as Ok whatever its error code.)
    let bad = AlterConfig::new(ResourceSpecifier::Topic("configured")).set("retention.ms", "soon");
    block_on(admin.alter_configs([&bad], &admin_opts())).expect("AlterConfigs");
    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic("configured")], &admin_opts()))
            .unwrap();
    let resource = res.into_iter().next().unwrap().unwrap();
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("1000")
    );
}

#[test]
fn admin_delete_topic() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "doomed", 2, &[]);
    create_topic(&bs, "survivor", 1, &[]);
    let admin = admin(&bs);
    let res = block_on(admin.delete_topics(&["doomed"], &admin_opts())).unwrap();
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    let topics = topic_partitions(&bs);
    assert!(!topics.contains_key("doomed"), "{topics:?}");
    assert_eq!(topics.get("survivor"), Some(&1));

    let res = block_on(admin.delete_topics(&["doomed"], &admin_opts())).unwrap();
    assert_eq!(
        res,
        vec![Err((
            "doomed".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The name can be reused, and the new topic starts empty.
    create_topic(&bs, "doomed", 1, &[]);
    let consumer = consumer(&bs);
    let (low, high) = consumer
        .fetch_watermarks("doomed", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!((low, high), (0, 0));
}

#[test]
fn admin_create_partitions_grows_topic() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "growing", 2, &[]);
    let admin = admin(&bs);
    let res = block_on(admin.create_partitions([&NewPartitions::new("growing", 5)], &admin_opts()))
        .unwrap();
    assert_eq!(res, vec![Ok("growing".to_string())]);
    assert_eq!(topic_partitions(&bs).get("growing"), Some(&5));

    // Shrinking is refused.
    let res = block_on(admin.create_partitions([&NewPartitions::new("growing", 3)], &admin_opts()))
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "growing".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    // The new partition takes writes and serves them.
    let p = producer(&bs, &[("acks", "all")]);
    let d = block_on(
        p.send(
            FutureRecord::to("growing")
                .partition(4)
                .key("k")
                .payload("in the new partition"),
            Duration::from_secs(30),
        ),
    )
    .expect("produce to partition 4");
    assert_eq!((d.partition, d.offset), (4, 0));
    let msgs = consume_n(&bs, "growing", &[(4, Offset::Beginning)], 1);
    assert_eq!(msgs[0].payload(), Some(&b"in the new partition"[..]));
}

/// What a test record should look like once read back.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn expected_records(n: usize, base_ts: i64) -> Vec<Expected> {
    (0..n)
        .map(|i| {
            let mut headers = vec![("seq".to_string(), Some(i.to_string().into_bytes()))];
            if i % 3 == 0 {
                headers.push(("null-header".to_string(), None));
            }
            if i % 4 == 0 {
                // Duplicate header keys must survive in order.
                headers.push(("dup".to_string(), Some(b"first".to_vec())));
                headers.push(("dup".to_string(), Some(b"second".to_vec())));
            }
            Expected {
                partition: (i % 2) as i32,
                key: (i % 7 != 0).then(|| format!("key-{i}").into_bytes()),
                value: match i % 11 {
                    5 => None,
                    6 => Some(Vec::new()),
                    _ => Some(format!("value {i} {}", "abc".repeat(i % 50)).into_bytes()),
                },
                headers,
                timestamp: base_ts + i as i64 * 1000,
            }
        })
        .collect()
}

fn as_expected(m: &OwnedMessage) -> Expected {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    let timestamp = match m.timestamp() {
        Timestamp::CreateTime(t) => t,
        other => panic!("expected CreateTime, got {other:?}"),
    };
    Expected {
        partition: m.partition(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        headers,
        timestamp,
    }
}

/// Sends `expected` in order; the futures resolve on delivery.
fn send_expected(
    producer: &FutureProducer,
    topic: &str,
    expected: &[Expected],
) -> Vec<DeliveryFuture> {
    expected
        .iter()
        .map(|e| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &e.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(e.partition)
                .timestamp(e.timestamp)
                .headers(headers);
            if let Some(k) = &e.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &e.value {
                rec = rec.payload(v.as_slice());
            }
            producer.send_result(rec).expect("enqueue")
        })
        .collect()
}

/// Reads both partitions of `topic` from the start and checks they hold
/// exactly `expected`, at dense offsets from 0.
fn assert_read_back(bootstrap: &str, topic: &str, expected: &[Expected], label: &str) {
    let msgs = consume_n(
        bootstrap,
        topic,
        &[(0, Offset::Beginning), (1, Offset::Beginning)],
        expected.len(),
    );
    let mut by_partition: [Vec<Expected>; 2] = Default::default();
    let mut offsets: [Vec<i64>; 2] = Default::default();
    for m in &msgs {
        by_partition[m.partition() as usize].push(as_expected(m));
        offsets[m.partition() as usize].push(m.offset());
    }
    for p in 0..2 {
        let want: Vec<Expected> = expected
            .iter()
            .filter(|e| e.partition == p as i32)
            .cloned()
            .collect();
        assert_eq!(by_partition[p], want, "{label}: partition {p} differs");
        assert_eq!(
            offsets[p],
            (0..want.len() as i64).collect::<Vec<_>>(),
            "{label}: offsets of partition {p}"
        );
    }
}

/// Produces 60 varied records with `codec` at every acks level and reads
/// them back exactly.
fn roundtrip_with_codec(codec: &str) {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    for acks in ["0", "1", "all"] {
        let topic = topic_name(&format!("codec-{codec}-acks-{acks}"));
        create_topic(&bs, &topic, 2, &[]);
        let producer = producer(
            &bs,
            &[
                ("compression.type", codec),
                ("acks", acks),
                ("batch.num.messages", "7"),
            ],
        );
        let expected = expected_records(60, now_ms() - 3_600_000);
        let deliveries = send_expected(&producer, &topic, &expected);
        let mut next_offset = [0i64; 2];
        for (i, d) in deliveries.into_iter().enumerate() {
            let d = block_on(d)
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("{codec}/acks={acks}: record {i} failed: {e}"));
            assert_eq!(d.partition, expected[i].partition);
            if acks != "0" {
                let p = d.partition as usize;
                assert_eq!(d.offset, next_offset[p], "{codec}/acks={acks} record {i}");
                next_offset[p] += 1;
            }
        }
        assert_read_back(&bs, &topic, &expected, &format!("{codec}/acks={acks}"));
    }
}

/// The codecs of every batch stored for `topic` (both partitions).
fn stored_codecs(log_dir: &Path, topic: &str) -> BTreeSet<&'static str> {
    let mut codecs = BTreeSet::new();
    for partition in 0..2 {
        let dir = log_dir.join(format!("{topic}-{partition}"));
        for entry in std::fs::read_dir(&dir).expect("partition directory") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                let data = std::fs::read(&path).expect("segment");
                for batch in BatchIter::new(&data) {
                    let (header, _) = batch.expect("whole batches on disk");
                    codecs.insert(header.codec().expect("known codec").name());
                }
            }
        }
    }
    codecs
}

/// A topic with `compression.type` set stores what every librdkafka codec
/// sends with the topic's codec (idempotent producer, so the sequence check
/// runs on recompressed batches), and consumers read it back intact.
#[test]
fn topic_compression_type_recompresses_every_producer_codec() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    for topic_codec in ["zstd", "gzip", "lz4"] {
        for producer_codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let label = format!("{producer_codec} to a {topic_codec} topic");
            let topic = topic_name(&format!("recompress-{producer_codec}-{topic_codec}"));
            create_topic(&bs, &topic, 2, &[("compression.type", topic_codec)]);
            let producer = producer(
                &bs,
                &[
                    ("compression.type", producer_codec),
                    ("acks", "all"),
                    ("enable.idempotence", "true"),
                    ("batch.num.messages", "7"),
                ],
            );
            let expected = expected_records(60, now_ms() - 3_600_000);
            for (i, d) in send_expected(&producer, &topic, &expected)
                .into_iter()
                .enumerate()
            {
                block_on(d)
                    .expect("delivery future")
                    .unwrap_or_else(|(e, _)| panic!("{label}: record {i} failed: {e}"));
            }
            assert_read_back(&bs, &topic, &expected, &label);
            assert_eq!(
                stored_codecs(b.log_dir(), &topic),
                BTreeSet::from([topic_codec]),
                "{label}"
            );
        }
    }
}

#[test]
fn produce_consume_codec_none() {
    roundtrip_with_codec("none");
}

#[test]
fn produce_consume_codec_gzip() {
    roundtrip_with_codec("gzip");
}

#[test]
fn produce_consume_codec_snappy() {
    roundtrip_with_codec("snappy");
}

#[test]
fn produce_consume_codec_lz4() {
    roundtrip_with_codec("lz4");
}

#[test]
fn produce_consume_codec_zstd() {
    roundtrip_with_codec("zstd");
}

/// Produces records `r0..r99` with timestamps `base + 10 * i` to partition 0
/// of `topic`, batched as librdkafka likes with `extra` settings.
fn produce_timed(bs: &str, topic: &str, base: i64, extra: &[(&str, &str)]) {
    let mut settings = vec![("acks", "all")];
    settings.extend_from_slice(extra);
    let producer = producer(bs, &settings);
    let deliveries: Vec<_> = (0..100)
        .map(|i| {
            let value = format!("r{i}");
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&value)
                        .timestamp(base + i * 10),
                )
                .expect("enqueue")
        })
        .collect();
    for d in deliveries {
        block_on(d).unwrap().expect("delivered");
    }
}

/// ListOffsets by timestamp (`offsets_for_times`) for partition 0.
fn offset_for_time(consumer: &BaseConsumer, topic: &str, ts: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .unwrap();
    let res = consumer
        .offsets_for_times(tpl, Duration::from_secs(30))
        .expect("offsets_for_times");
    let el = res.find_partition(topic, 0).unwrap();
    el.error().expect("no partition error");
    el.offset()
}

#[test]
fn list_offsets_watermarks_and_timestamps() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "timed", 1, &[]);
    let consumer = consumer(&bs);
    assert_eq!(
        consumer
            .fetch_watermarks("timed", 0, Duration::from_secs(30))
            .unwrap(),
        (0, 0)
    );
    let base = now_ms() - 600_000;
    // One record per batch: the lookup is exact at batch granularity.
    produce_timed(&bs, "timed", base, &[("batch.num.messages", "1")]);
    assert_eq!(
        consumer
            .fetch_watermarks("timed", 0, Duration::from_secs(30))
            .unwrap(),
        (0, 100)
    );
    let lookup = |ts| offset_for_time(&consumer, "timed", ts);
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base - 1_000_000), Offset::Offset(0));
    assert_eq!(lookup(base + 255), Offset::Offset(26));
    assert_eq!(lookup(base + 260), Offset::Offset(26));
    assert_eq!(lookup(base + 990), Offset::Offset(99));
    assert_eq!(lookup(base + 991), Offset::End);

    // Seek by timestamp: start reading at the looked-up offset.
    let start = lookup(base + 500);
    assert_eq!(start, Offset::Offset(50));
    let msgs = consume_n(&bs, "timed", &[(0, start)], 50);
    assert_eq!(msgs[0].offset(), 50);
    assert_eq!(msgs[0].payload(), Some(&b"r50"[..]));
    assert_eq!(msgs[0].timestamp(), Timestamp::CreateTime(base + 500));
    assert_eq!(msgs[49].payload(), Some(&b"r99"[..]));
}

/// Kafka answers a timestamp lookup with the first *record* whose timestamp
/// is >= the target, also inside a multi-record (compressed) batch
/// (`LogSegment.findOffsetByTimestamp` scans the batch's records).
#[test]
fn offsets_for_times_inside_a_batch() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "timed-batched", 1, &[]);
    let base = now_ms() - 600_000;
    produce_timed(
        &bs,
        "timed-batched",
        base,
        &[("compression.type", "lz4"), ("linger.ms", "100")],
    );
    let consumer = consumer(&bs);
    let lookup = |ts| offset_for_time(&consumer, "timed-batched", ts);
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 255), Offset::Offset(26));
    assert_eq!(lookup(base + 990), Offset::Offset(99));
    assert_eq!(lookup(base + 991), Offset::End);
}

#[test]
fn consumer_tails_new_records() {
    let b = InProcBroker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "tail", 1, &[]);
    let producer = producer(&bs, &[("acks", "1")]);
    block_on(producer.send(
        FutureRecord::<(), _>::to("tail").payload("before"),
        Duration::from_secs(30),
    ))
    .expect("produce");

    let consumer = consumer(&bs);
    let (_, high) = consumer
        .fetch_watermarks("tail", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!(high, 1);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("tail", 0, Offset::Offset(high))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Give the consumer a chance to start long-polling at the log end
    // before anything new arrives (correctness does not depend on it).
    for _ in 0..5 {
        assert!(consumer.poll(Duration::from_millis(100)).is_none());
    }
    for i in 0..10 {
        block_on(producer.send(
            FutureRecord::<(), _>::to("tail").payload(&format!("after {i}")),
            Duration::from_secs(30),
        ))
        .expect("produce");
    }
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < 10 {
        assert!(Instant::now() < deadline, "tail got only {got:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consumer error");
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    let want: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    assert_eq!(got, want);
}

/// Produces `(key, value)` records (`None` values are tombstones) to
/// partition 0; returns their offsets.
fn produce_keyed(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Option<String>)],
) -> Vec<i64> {
    let deliveries: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            let mut record = FutureRecord::to(topic).partition(0).key(key);
            if let Some(value) = value {
                record = record.payload(value);
            }
            producer.send_result(record).expect("enqueue")
        })
        .collect();
    deliveries
        .into_iter()
        .map(|d| block_on(d).unwrap().expect("delivered").offset)
        .collect()
}

/// Every record of partition 0 below the high watermark, as
/// (offset, key, value).
fn read_partition(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer = consumer(bootstrap);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.last().is_none_or(|(offset, _, _)| offset + 1 < high) {
        assert!(
            Instant::now() < deadline,
            "read only up to {:?} of {topic}",
            out.last()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            )),
            Some(Err(e)) => panic!("consumer error on {topic}: {e}"),
        }
    }
    out
}

#[test]
fn compacted_topic_keeps_the_latest_record_per_key_at_its_offset() {
    let broker = InProcBroker::start(&[("log.cleaner.backoff.ms", "200")]);
    let bs = broker.bootstrap();
    let topic = topic_name("compacted");
    create_topic(
        &bs,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "300"),
            ("segment.bytes", "2000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    // lz4 batches: the cleaner must decompress and recompress them.
    let producer = producer(&bs, &[("acks", "all"), ("compression.type", "lz4")]);
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for round in 0..6 {
        let records: Vec<_> = (0..200)
            .map(|k| {
                // The last round deletes every tenth key.
                let value = (round < 5 || k % 10 != 0).then(|| format!("value-{k}-{round}"));
                (format!("key-{k:03}"), value)
            })
            .collect();
        for ((key, value), offset) in records
            .iter()
            .zip(produce_keyed(&producer, &topic, &records))
        {
            latest.insert(key.clone(), (offset, value.clone()));
        }
    }
    let deadline = Instant::now() + PATIENCE;
    for roll in 0.. {
        // After segment.ms the next record rolls the segment, so the rounds
        // sit in closed segments the cleaner may take.
        std::thread::sleep(Duration::from_millis(400));
        produce_keyed(
            &producer,
            &topic,
            &[(format!("roll-{roll}"), Some("r".into()))],
        );
        let records = read_partition(&bs, &topic);
        let data: Vec<_> = records
            .iter()
            .filter(|(_, key, _)| key.starts_with("key-"))
            .collect();
        if data.len() == latest.len() {
            let got: BTreeMap<String, (i64, Option<String>)> = data
                .iter()
                .map(|(offset, key, value)| (key.clone(), (*offset, value.clone())))
                .collect();
            assert_eq!(
                got, latest,
                "exactly the latest record per key, at its offset"
            );
            let tombstones = data.iter().filter(|(_, _, v)| v.is_none()).count();
            assert_eq!(tombstones, 20, "tombstones stay for delete.retention.ms");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted: {} data records for {} keys",
            data.len(),
            latest.len()
        );
    }
}
