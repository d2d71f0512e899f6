//! Produce: validation, idempotence and broker-side recompression.

use crate::test_support::{call, create_topic, create_topic_with_configs, test_state};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use sluice_protocol::batch::{BatchIter, Codec};
use sluice_protocol::error;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

#[tokio::test]
async fn compacted_topics_refuse_records_without_a_key() {
    let (_dir, state) = test_state();
    create_topic_with_configs(&state, "t", 1, &[("cleanup.policy", "compact,delete")]).await;
    // Compressed: the check looks inside.
    assert_eq!(
        produce(&state, idempotent_batch(-1, -1, 3)).await,
        (error::INVALID_RECORD, -1)
    );
    let now = crate::state::now_ms();
    let keyed = sluice_protocol::batch::build_uncompressed_batch(now, &[(Some(b"k"), None)]);
    assert_eq!(produce(&state, keyed).await, (0, 0));
    let mixed = sluice_protocol::batch::build_uncompressed_batch(
        now,
        &[(Some(b"k"), Some(b"v")), (None, Some(b"v"))],
    );
    assert_eq!(produce(&state, mixed).await.0, error::INVALID_RECORD);
}

fn idempotent_batch(pid: i64, first_seq: i32, count: i32) -> Bytes {
    let now = crate::state::now_ms();
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: first_seq + i,
            timestamp: now,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    sluice_protocol::compression::encode_batch(&mut buf, &records, Compression::Lz4).unwrap();
    buf.freeze()
}

async fn produce(state: &std::sync::Arc<crate::state::BrokerState>, records: Bytes) -> (i16, i64) {
    produce_to(state, topic(), records).await
}

/// (error code, base offset) of an acks=all produce to partition 0.
async fn produce_to(
    state: &std::sync::Arc<crate::state::BrokerState>,
    topic: TopicName,
    records: Bytes,
) -> (i16, i64) {
    let body = RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
        vec![produce_request::TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_records(Some(records)),
                ])],
    ));
    let Some(ResponseKind::Produce(r)) = call(state, ApiKey::Produce, 9, body).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_producer_id(
    state: &std::sync::Arc<crate::state::BrokerState>,
) -> InitProducerIdResponse {
    let body =
        RequestKind::InitProducerId(InitProducerIdRequest::default().with_transactional_id(None));
    let Some(ResponseKind::InitProducerId(r)) = call(state, ApiKey::InitProducerId, 4, body).await
    else {
        panic!("no InitProducerId response")
    };
    r
}

#[tokio::test]
async fn idempotent_retries_are_not_duplicated() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let init = init_producer_id(&state).await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let second = init_producer_id(&state).await;
    assert_ne!(second.producer_id.0, pid, "ids never repeat");

    assert_eq!(produce(&state, idempotent_batch(pid, 0, 3)).await, (0, 0));
    assert_eq!(produce(&state, idempotent_batch(pid, 3, 2)).await, (0, 3));
    // A lost response makes the client resend: same offsets, no new data.
    assert_eq!(produce(&state, idempotent_batch(pid, 3, 2)).await, (0, 3));
    assert_eq!(
        produce(&state, idempotent_batch(pid, 9, 1)).await.0,
        error::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 5);
    assert_eq!(produce(&state, idempotent_batch(pid, 5, 1)).await, (0, 5));
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn codec_of(compression: Compression) -> Codec {
    Codec::from_id(compression as i16).unwrap()
}

/// `count` keyed records with a header, so every record field is checked
/// after a rewrite.
fn records_compressed(compression: Compression, count: i64) -> (Vec<Record>, Bytes) {
    let now = crate::state::now_ms();
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut record = sluice_protocol::compression::plain_record(
                i,
                now + i,
                Some(Bytes::from(format!("key-{i}"))),
                Some(Bytes::from(format!("value {i} ").repeat(10))),
            );
            record.headers.insert(
                StrBytes::from_static_str("h"),
                Some(Bytes::from(format!("header-{i}"))),
            );
            record
        })
        .collect();
    let mut buf = BytesMut::new();
    sluice_protocol::compression::encode_batch(&mut buf, &records, compression).unwrap();
    (records, buf.freeze())
}

/// The raw record set of a fetch of partition 0 from offset 0.
async fn fetch_all(state: &std::sync::Arc<crate::state::BrokerState>, topic: TopicName) -> Bytes {
    let body = RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic)
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    let Some(ResponseKind::Fetch(r)) = call(state, ApiKey::Fetch, 12, body).await else {
        panic!("no Fetch response")
    };
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap_or_default()
}

#[tokio::test]
async fn batches_are_stored_with_the_topics_compression_type() {
    let (_dir, state) = test_state();
    let topic_types = ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
    for topic_type in topic_types {
        let name = TopicName(StrBytes::from_string(format!("t-{topic_type}")));
        create_topic_with_configs(&state, &name, 1, &[("compression.type", topic_type)]).await;
        let mut sent = Vec::new();
        for (i, producer_codec) in CODECS.into_iter().enumerate() {
            let (records, batch) = records_compressed(producer_codec, 4);
            let first = i64::try_from(i).unwrap() * 4;
            assert_eq!(
                produce_to(&state, name.clone(), batch).await,
                (0, first),
                "{producer_codec:?} to {topic_type}"
            );
            sent.extend(records.into_iter().map(|r| (first + r.offset, r)));
        }
        let fetched = fetch_all(&state, name.clone()).await;
        let codecs: Vec<Codec> = BatchIter::new(&fetched)
            .map(|batch| {
                let (header, _) = batch.unwrap();
                header.verify().unwrap();
                header.codec().unwrap()
            })
            .collect();
        let expected: Vec<Codec> = match Codec::from_name(topic_type) {
            Some(codec) => vec![codec; CODECS.len()],
            None => CODECS.map(codec_of).to_vec(),
        };
        assert_eq!(codecs, expected, "{topic_type}");
        let back = sluice_protocol::compression::decode_batches(fetched).unwrap();
        assert_eq!(back.len(), sent.len(), "{topic_type}");
        for (got, (offset, want)) in back.iter().zip(&sent) {
            assert_eq!(got.offset, *offset, "{topic_type}");
            assert_eq!(
                (&got.key, &got.value, got.timestamp, &got.headers),
                (&want.key, &want.value, want.timestamp, &want.headers),
                "{topic_type}"
            );
        }
    }
}

#[tokio::test]
async fn recompressed_idempotent_retries_are_not_duplicated() {
    let (_dir, state) = test_state();
    create_topic_with_configs(&state, "t", 1, &[("compression.type", "zstd")]).await;
    let pid = init_producer_id(&state).await.producer_id.0;
    assert_eq!(produce(&state, idempotent_batch(pid, 0, 3)).await, (0, 0));
    assert_eq!(produce(&state, idempotent_batch(pid, 0, 3)).await, (0, 0));
    assert_eq!(produce(&state, idempotent_batch(pid, 3, 1)).await, (0, 3));
    let fetched = fetch_all(&state, topic()).await;
    let headers: Vec<_> = BatchIter::new(&fetched)
        .map(|batch| {
            let (header, _) = batch.unwrap();
            (
                header.codec().unwrap(),
                header.producer_id(),
                header.base_sequence(),
            )
        })
        .collect();
    assert_eq!(headers, vec![(Codec::Zstd, pid, 0), (Codec::Zstd, pid, 3)]);
}

/// An LZ4 batch whose compressed bytes are garbage under a valid CRC.
fn undecodable_batch() -> Bytes {
    let (_, batch) = records_compressed(Compression::Lz4, 3);
    let mut owned = batch.to_vec();
    owned[sluice_protocol::batch::BATCH_HEADER_LEN..].fill(0xAB);
    let crc = crc32c::crc32c(&owned[21..]);
    owned[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(owned)
}

#[tokio::test]
async fn a_batch_that_cannot_be_recompressed_is_corrupt() {
    let (_dir, state) = test_state();
    create_topic_with_configs(&state, "t", 1, &[("compression.type", "gzip")]).await;
    assert_eq!(
        produce(&state, undecodable_batch()).await,
        (error::CORRUPT_MESSAGE, -1)
    );
    // Nothing looks inside batches of a `producer` topic.
    let producer = TopicName(StrBytes::from_static_str("as-sent"));
    create_topic(&state, &producer, 1).await;
    assert_eq!(
        produce_to(&state, producer, undecodable_batch()).await,
        (0, 0)
    );
}

#[tokio::test]
async fn a_batch_too_large_once_recompressed_is_refused() {
    let (_dir, state) = test_state();
    create_topic_with_configs(
        &state,
        "t",
        1,
        &[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "2000"),
        ],
    )
    .await;
    let (_, batch) = records_compressed(Compression::Zstd, 40);
    assert!(batch.len() < 2000);
    assert_eq!(produce(&state, batch).await.0, error::MESSAGE_TOO_LARGE);
}

/// One batch of `(key, timestamp)` records with values, `compression`
/// applied.
fn batch_of(records: &[(Option<&str>, i64)], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, timestamp))| {
            sluice_protocol::compression::plain_record(
                i64::try_from(i).unwrap(),
                *timestamp,
                key.map(|k| Bytes::from(k.to_string())),
                Some(Bytes::from_static(b"v")),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    sluice_protocol::compression::encode_batch(&mut buf, &records, compression).unwrap();
    buf.freeze()
}

/// The partition answer of an acks=all produce of `records` to "t"/0 at
/// `version`, after a round trip through the wire encoding.
async fn produce_answer(
    state: &std::sync::Arc<crate::state::BrokerState>,
    records: Bytes,
    version: i16,
) -> produce_response::PartitionProduceResponse {
    use kafka_protocol::protocol::{Decodable, Encodable};
    let body = RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
        vec![produce_request::TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(records)),
                ])],
    ));
    let Some(ResponseKind::Produce(r)) = call(state, ApiKey::Produce, version, body).await else {
        panic!("no Produce response")
    };
    let mut wire = BytesMut::new();
    r.encode(&mut wire, version).unwrap();
    let mut decoded = ProduceResponse::decode(&mut wire.freeze(), version).unwrap();
    decoded.responses.remove(0).partition_responses.remove(0)
}

/// (batch index, message) of each refused record.
fn record_errors(answer: &produce_response::PartitionProduceResponse) -> Vec<(i32, String)> {
    answer
        .record_errors
        .iter()
        .map(|e| {
            let message = e.batch_index_error_message.as_deref().unwrap_or_default();
            (e.batch_index, message.to_string())
        })
        .collect()
}

const NO_KEY: &str = "Compacted topic cannot accept message without key in topic partition t-0";

#[tokio::test]
async fn records_without_a_key_are_named_in_record_errors() {
    let (_dir, state) = test_state();
    create_topic_with_configs(&state, "t", 1, &[("cleanup.policy", "compact")]).await;
    let now = crate::state::now_ms();
    for compression in [Compression::None, Compression::Zstd] {
        let batch = batch_of(
            &[(Some("a"), now), (None, now), (Some("b"), now), (None, now)],
            compression,
        );
        let answer = produce_answer(&state, batch, 10).await;
        assert_eq!(answer.error_code, error::INVALID_RECORD);
        assert_eq!(
            record_errors(&answer),
            vec![(1, NO_KEY.to_string()), (3, NO_KEY.to_string())]
        );
        assert_eq!(
            answer.error_message.as_deref(),
            Some(
                format!(
                    "One or more records have been rejected due to 2 record errors in total, \
                     and only showing the first three errors at most: \
                     [RecordError(batchIndex=1, message='{NO_KEY}'), \
                     RecordError(batchIndex=3, message='{NO_KEY}')]"
                )
                .as_str()
            )
        );
    }
    // Nothing of a refused record set is stored.
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 0);

    // As Kafka, a record set of more than one batch is refused whole.
    let mut two_batches =
        BytesMut::from(&batch_of(&[(Some("a"), now), (Some("b"), now)], Compression::None)[..]);
    two_batches.extend_from_slice(&batch_of(&[(Some("c"), now)], Compression::Lz4));
    let answer = produce_answer(&state, two_batches.freeze(), 9).await;
    assert_eq!(answer.error_code, error::INVALID_RECORD);
    assert!(answer.record_errors.is_empty());
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 0);

    // Before v8 the response has no room for them: the code alone.
    let answer = produce_answer(&state, batch_of(&[(None, now)], Compression::None), 7).await;
    assert_eq!(answer.error_code, error::INVALID_RECORD);
    assert!(answer.record_errors.is_empty() && answer.error_message.is_none());
}

#[tokio::test]
async fn records_with_timestamps_out_of_range_are_named_in_record_errors() {
    let (_dir, state) = test_state();
    let day = 24 * 3600 * 1000;
    create_topic_with_configs(
        &state,
        "t",
        1,
        &[
            ("message.timestamp.after.max.ms", "3600000"),
            ("message.timestamp.before.max.ms", &day.to_string()),
        ],
    )
    .await;
    let now = crate::state::now_ms();
    // The second record is older than the first, which the batch header
    // cannot show; the fourth has no timestamp, which is always accepted.
    let batch = batch_of(
        &[
            (Some("a"), now),
            (Some("b"), now - 2 * day),
            (Some("c"), now + 2 * 3600 * 1000),
            (Some("d"), -1),
        ],
        Compression::Gzip,
    );
    let answer = produce_answer(&state, batch, 9).await;
    assert_eq!(answer.error_code, error::INVALID_TIMESTAMP);
    assert_eq!(
        answer.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let errors = record_errors(&answer);
    assert_eq!(
        errors.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2],
        "{errors:?}"
    );
    let expected_start = format!(
        "Timestamp {} of message with offset 1 is out of range.",
        now - 2 * day
    );
    assert!(errors[0].1.starts_with(&expected_start), "{}", errors[0].1);
    assert!(
        errors[0].1.contains("The timestamp should be within ["),
        "{}",
        errors[0].1
    );
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 0);

    let fine = batch_of(
        &[(Some("a"), now), (Some("b"), now - 1000)],
        Compression::None,
    );
    assert_eq!(produce_answer(&state, fine, 9).await.error_code, 0);
}

#[tokio::test]
async fn producers_may_not_claim_log_append_time() {
    let (_dir, state) = test_state();
    create_topic_with_configs(
        &state,
        "t",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let now = crate::state::now_ms();
    let mut claimed =
        BytesMut::from(&batch_of(&[(Some("a"), now), (Some("b"), now)], Compression::None)[..]);
    sluice_protocol::batch::BatchMut::new(&mut claimed).set_log_append_time(now);
    let answer = produce_answer(&state, claimed.clone().freeze(), 9).await;
    assert_eq!(answer.error_code, error::INVALID_TIMESTAMP);
    let errors = record_errors(&answer);
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), vec![0, 1]);
    assert!(
        errors[1]
            .1
            .ends_with("Producer should not set timestamp type to LogAppendTime."),
        "{}",
        errors[1].1
    );
    // A CreateTime topic judges such a batch by its timestamp, as Kafka does.
    let create_time = TopicName(StrBytes::from_static_str("create-time"));
    create_topic(&state, &create_time, 1).await;
    assert_eq!(
        produce_to(&state, create_time, claimed.freeze()).await,
        (0, 0)
    );
}

/// Produce v13 (KIP-516) names topics by id: the answer carries the id, an
/// unknown id is UNKNOWN_TOPIC_ID.
#[tokio::test]
async fn v13_names_topics_by_id() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let id = state.image().topic("t").unwrap().id;
    let now = crate::state::now_ms();
    let produce = |topic_id: uuid::Uuid| {
        RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
            vec![produce_request::TopicProduceData::default()
                    .with_topic_id(topic_id)
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_records(Some(batch_of(&[(Some("k"), now)], Compression::None))),
                    ])],
        ))
    };
    let Some(ResponseKind::Produce(r)) = call(&state, ApiKey::Produce, 13, produce(id)).await
    else {
        panic!("no Produce response")
    };
    assert_eq!(r.responses[0].topic_id, id);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (error::NONE, 0));
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 1);

    let unknown = uuid::Uuid::from_u128(7);
    let Some(ResponseKind::Produce(r)) = call(&state, ApiKey::Produce, 13, produce(unknown)).await
    else {
        panic!("no Produce response")
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        error::UNKNOWN_TOPIC_ID
    );
}

#[tokio::test]
async fn acks_all_needs_min_insync_replicas_in_sync() {
    let (_dir, state) = test_state();
    create_topic_with_configs(&state, "t", 1, &[("min.insync.replicas", "2")]).await;
    let now = crate::state::now_ms();
    let batch = sluice_protocol::batch::build_uncompressed_batch(now, &[(None, Some(b"v"))]);
    // One replica in sync, two needed: refused before anything is written.
    assert_eq!(
        produce(&state, batch.clone()).await,
        (error::NOT_ENOUGH_REPLICAS, -1)
    );
    let partition = state.partitions.get("t", 0).unwrap();
    assert_eq!(partition.log_end_offset(), 0);
    // acks=1 does not ask for the ISR.
    let body = RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(
        vec![produce_request::TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_records(Some(batch)),
            ])],
    ));
    let Some(ResponseKind::Produce(r)) = call(&state, ApiKey::Produce, 9, body).await else {
        panic!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        error::NONE
    );
    // One replica: nothing to wait for, the record is visible as before.
    assert_eq!(partition.log_end_offset(), 1);
    assert_eq!(partition.high_watermark(), 1);
}
