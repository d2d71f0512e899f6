//! Writing and reading records: Produce, Fetch, ListOffsets,
//! OffsetForLeaderEpoch, DeleteRecords.

use bytes::{Bytes, BytesMut};
use sluice_protocol::kafka_protocol::messages::{
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, BrokerId, DeleteRecordsRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetForLeaderEpochRequest, ProduceRequest, ProduceResponse, RequestKind,
    ResponseKind, TransactionalId,
};
use sluice_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use super::topics::{
    creatable, create_topic, create_topic_with, fetch_metadata, s, topic_name, with_config,
};
use super::{Obs, Side};

/// The producer fields of a batch: (producer id, epoch, base sequence, transactional).
pub(crate) type ProducerFields = (i64, i16, i32, bool);

/// One uncompressed v2 batch of `values` (keys `k<i>`) at `timestamps`.
pub(crate) fn batch(
    values: &[&[u8]],
    timestamps: &[i64],
    producer: Option<ProducerFields>,
) -> Bytes {
    let (producer_id, producer_epoch, base_sequence, transactional) =
        producer.unwrap_or((-1, -1, -1, false));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records whose offset and sequence advance
            // together; without a producer the base sequence must stay -1.
            sequence: base_sequence + i as i32,
            timestamp: timestamps.get(i).copied().unwrap_or_else(now_ms),
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a batch");
    buf.freeze()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub(crate) fn topic_id(side: &mut Side, name: &str) -> Uuid {
    fetch_metadata(side, Some(&[name]), false).topics[0].topic_id
}

pub(crate) fn produce_to(
    side: &mut Side,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    transactional_id: Option<&str>,
) -> ProduceResponse {
    let id = topic_id(side, topic);
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    match side.wire.send(RequestKind::Produce(request)) {
        ResponseKind::Produce(r) => r,
        other => panic!("{other:?}"),
    }
}

/// A produce a scenario needs before it can observe anything: retried
/// while the broker answers a retriable error (Kafka's new partition may
/// refuse its first writes a moment after Metadata shows its leader).
fn produce_setup(side: &mut Side, topic: &str, records: Bytes) {
    let mut last = 0;
    for _ in 0..100 {
        let r = produce_to(side, topic, 0, records.clone(), -1, None);
        last = r.responses[0].partition_responses[0].error_code;
        if last == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "{}: setup produce to {topic} failed: {}",
        side.name,
        super::error_name(last)
    );
}

pub(crate) fn record_produce(obs: &mut Obs, case: &str, r: &ProduceResponse) {
    for t in &r.responses {
        for p in &t.partition_responses {
            obs.error(format!("{case}/error"), p.error_code);
            obs.put(format!("{case}/base_offset"), p.base_offset);
            obs.put(
                format!("{case}/log_append_time_set"),
                p.log_append_time_ms != -1,
            );
            obs.put(format!("{case}/log_start_offset"), p.log_start_offset);
            let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
            obs.put(format!("{case}/record_errors"), format!("{indexes:?}"));
            if p.error_code == 0 {
                obs.put(
                    format!("{case}/message_on_success"),
                    p.error_message.is_some(),
                );
            }
        }
    }
}

pub(crate) fn produce(side: &mut Side, obs: &mut Obs) {
    create_topic_with(
        side,
        with_config(creatable("diff-produce", 2, 1), "max.message.bytes", "2048"),
    );
    let three: &[&[u8]] = &[b"a", b"b", b"c"];
    for (case, acks) in [
        ("first", -1),
        ("second_acks_1", 1),
        ("acks_2", 2),
        ("acks_minus_2", -2),
    ] {
        let r = produce_to(side, "diff-produce", 0, batch(three, &[], None), acks, None);
        record_produce(obs, case, &r);
    }
    let mut two = batch(three, &[], None).to_vec();
    two.extend_from_slice(&batch(three, &[], None));
    let r = produce_to(side, "diff-produce", 0, Bytes::from(two), -1, None);
    record_produce(obs, "two_batches", &r);
    let big = vec![b'x'; 4000];
    let r = produce_to(side, "diff-produce", 0, batch(&[&big], &[], None), -1, None);
    record_produce(obs, "too_large", &r);
    let r = produce_to(side, "diff-produce", 9, batch(three, &[], None), -1, None);
    record_produce(obs, "partition_out_of_range", &r);
    let mut corrupt = batch(three, &[], None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let r = produce_to(side, "diff-produce", 1, Bytes::from(corrupt), -1, None);
    record_produce(obs, "corrupt_crc", &r);
    let r = produce_to(
        side,
        "diff-produce",
        1,
        Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        -1,
        None,
    );
    record_produce(obs, "truncated_batch", &r);

    // A name Metadata does not know: sent by name (and a zero id).
    let unknown = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name("diff-produce-missing"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(three, &[], None)))])]);
    if let ResponseKind::Produce(r) = side.wire.send(RequestKind::Produce(unknown)) {
        record_produce(obs, "unknown_topic", &r);
    }

    let compacted = with_config(
        creatable("diff-produce-compacted", 1, 1),
        "cleanup.policy",
        "compact",
    );
    create_topic_with(side, compacted);
    let mut keyless = batch(three, &[], None);
    keyless = strip_first_key(keyless);
    let r = produce_to(side, "diff-produce-compacted", 0, keyless, -1, None);
    record_produce(obs, "compacted_null_key", &r);

    let strict = with_config(
        creatable("diff-produce-timestamps", 1, 1),
        "message.timestamp.before.max.ms",
        "60000",
    );
    create_topic_with(side, strict);
    let r = produce_to(
        side,
        "diff-produce-timestamps",
        0,
        batch(three, &[1000, 1000, 1000], None),
        -1,
        None,
    );
    record_produce(obs, "timestamp_too_old", &r);

    let append_time = with_config(
        creatable("diff-produce-append-time", 1, 1),
        "message.timestamp.type",
        "LogAppendTime",
    );
    create_topic_with(side, append_time);
    let r = produce_to(
        side,
        "diff-produce-append-time",
        0,
        batch(three, &[], None),
        -1,
        None,
    );
    record_produce(obs, "log_append_time", &r);

    // Idempotent batches from a producer id the broker never issued.
    for (case, sequence) in [
        ("unissued_producer_seq_0", 0),
        ("unissued_producer_seq_5", 5),
    ] {
        let r = produce_to(
            side,
            "diff-produce",
            1,
            batch(three, &[], Some((4242, 0, sequence, false))),
            -1,
            None,
        );
        record_produce(obs, case, &r);
    }
}

/// The same batch with its first record's key made null (re-encoded).
fn strip_first_key(batch: Bytes) -> Bytes {
    let mut buf = batch;
    let mut set = RecordBatchDecoder::decode(&mut buf).expect("decode own batch");
    set.records[0].key = None;
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &set.records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

pub(crate) struct FetchArgs {
    pub(crate) offset: i64,
    pub(crate) partition: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) max_bytes: i32,
    pub(crate) isolation: i8,
}

impl Default for FetchArgs {
    fn default() -> Self {
        FetchArgs {
            offset: 0,
            partition: 0,
            leader_epoch: -1,
            max_bytes: 1 << 20,
            isolation: 0,
        }
    }
}

pub(crate) fn fetch_from(side: &mut Side, topic: &str, id: Uuid, args: FetchArgs) -> FetchResponse {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(args.max_bytes)
        .with_isolation_level(args.isolation)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(args.partition)
                .with_current_leader_epoch(args.leader_epoch)
                .with_fetch_offset(args.offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(args.max_bytes)])]);
    match side.wire.send(RequestKind::Fetch(request)) {
        ResponseKind::Fetch(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Records in a fetched partition's record set.
pub(crate) fn record_count(records: &Option<Bytes>) -> usize {
    let Some(bytes) = records.clone() else {
        return 0;
    };
    let mut buf = bytes;
    RecordBatchDecoder::decode_all(&mut buf)
        .map(|sets| sets.iter().map(|s| s.records.len()).sum())
        .unwrap_or(usize::MAX)
}

pub(crate) fn record_fetch(obs: &mut Obs, case: &str, r: &FetchResponse) {
    obs.error(format!("{case}/top_error"), r.error_code);
    for t in &r.responses {
        for p in &t.partitions {
            obs.error(format!("{case}/error"), p.error_code);
            obs.put(format!("{case}/high_watermark"), p.high_watermark);
            obs.put(format!("{case}/last_stable_offset"), p.last_stable_offset);
            obs.put(format!("{case}/log_start_offset"), p.log_start_offset);
            obs.put(format!("{case}/records"), record_count(&p.records));
            obs.put(
                format!("{case}/aborted"),
                p.aborted_transactions.as_ref().map_or(0, |a| a.len()),
            );
            obs.put(
                format!("{case}/preferred_read_replica"),
                p.preferred_read_replica.0,
            );
            obs.put(
                format!("{case}/current_leader_epoch"),
                p.current_leader.leader_epoch,
            );
        }
    }
}

pub(crate) fn fetch(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-fetch", 1);
    let five: &[&[u8]] = &[b"1", b"2", b"3", b"4", b"5"];
    produce_setup(side, "diff-fetch", batch(five, &[], None));
    produce_setup(side, "diff-fetch", batch(five, &[], None));
    let id = topic_id(side, "diff-fetch");
    let cases = [
        ("from_start", FetchArgs::default()),
        (
            "at_end",
            FetchArgs {
                offset: 10,
                ..Default::default()
            },
        ),
        (
            "past_end",
            FetchArgs {
                offset: 11,
                ..Default::default()
            },
        ),
        (
            "negative_offset",
            FetchArgs {
                offset: -1,
                ..Default::default()
            },
        ),
        (
            "partition_out_of_range",
            FetchArgs {
                partition: 3,
                ..Default::default()
            },
        ),
        (
            "leader_epoch_current",
            FetchArgs {
                leader_epoch: 0,
                ..Default::default()
            },
        ),
        (
            "leader_epoch_ahead",
            FetchArgs {
                leader_epoch: 5,
                ..Default::default()
            },
        ),
        (
            "max_bytes_one",
            FetchArgs {
                max_bytes: 1,
                ..Default::default()
            },
        ),
        (
            "read_committed",
            FetchArgs {
                isolation: 1,
                ..Default::default()
            },
        ),
        (
            "middle_of_batch",
            FetchArgs {
                offset: 7,
                ..Default::default()
            },
        ),
    ];
    for (case, args) in cases {
        let r = fetch_from(side, "diff-fetch", id, args);
        record_fetch(obs, case, &r);
    }
    let missing_id = super::topics::uuid_of(11);
    let r = fetch_from(side, "diff-fetch-missing", missing_id, FetchArgs::default());
    record_fetch(obs, "unknown_topic", &r);

    // Fetch sessions (KIP-227): a new session gets an id; an unknown one is refused.
    let mut session = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(10)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(0);
    session.topics = vec![FetchTopic::default()
        .with_topic(topic_name("diff-fetch"))
        .with_topic_id(id)
        .with_partitions(vec![FetchPartition::default()
            .with_fetch_offset(0)
            .with_current_leader_epoch(-1)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(1 << 20)])];
    if let ResponseKind::Fetch(r) = side.wire.send(RequestKind::Fetch(session.clone())) {
        obs.error("new_session/error", r.error_code);
        obs.put("new_session/id_set", r.session_id != 0);
    }
    let unknown = session.with_session_id(987_654).with_session_epoch(3);
    if let ResponseKind::Fetch(r) = side.wire.send(RequestKind::Fetch(unknown)) {
        obs.error("unknown_session/error", r.error_code);
    }
}

fn list_offsets_at(
    side: &mut Side,
    topic: &str,
    partition: i32,
    timestamp: i64,
    epoch: i32,
    isolation: i8,
) -> ListOffsetsResponse {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(epoch)
                .with_timestamp(timestamp)])]);
    match side.wire.send(RequestKind::ListOffsets(request)) {
        ResponseKind::ListOffsets(r) => r,
        other => panic!("{other:?}"),
    }
}

pub(crate) fn list_offsets(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-offsets", 1);
    let three: &[&[u8]] = &[b"a", b"b", b"c"];
    produce_setup(
        side,
        "diff-offsets",
        batch(three, &[1000, 3000, 2000], None),
    );
    produce_setup(
        side,
        "diff-offsets",
        batch(three, &[4000, 5000, 6000], None),
    );
    let max_version = side.wire.version_of(ApiKey::ListOffsets).unwrap_or(0);
    let mut cases = vec![
        ("earliest", "diff-offsets", 0, -2, -1),
        ("latest", "diff-offsets", 0, -1, -1),
        ("at_1500", "diff-offsets", 0, 1500, -1),
        ("at_2500", "diff-offsets", 0, 2500, -1),
        ("at_6000", "diff-offsets", 0, 6000, -1),
        ("after_all", "diff-offsets", 0, 9_999_999, -1),
        ("epoch_current", "diff-offsets", 0, -1, 0),
        ("epoch_ahead", "diff-offsets", 0, -1, 5),
        ("partition_out_of_range", "diff-offsets", 4, -1, -1),
        ("unknown_topic", "diff-offsets-missing", 0, -1, -1),
        ("bad_timestamp", "diff-offsets", 0, -42, -1),
    ];
    if max_version >= 7 {
        cases.push(("max_timestamp", "diff-offsets", 0, -3, -1));
    }
    if max_version >= 8 {
        cases.push(("earliest_local", "diff-offsets", 0, -4, -1));
    }
    if max_version >= 9 {
        cases.push(("latest_tiered", "diff-offsets", 0, -5, -1));
    }
    for (case, topic, partition, timestamp, epoch) in cases {
        let r = list_offsets_at(side, topic, partition, timestamp, epoch, 0);
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            obs.error(format!("{case}/error"), p.error_code);
            obs.put(format!("{case}/offset"), p.offset);
            obs.put(format!("{case}/timestamp"), p.timestamp);
            obs.put(format!("{case}/leader_epoch"), p.leader_epoch);
        }
    }
    let r = list_offsets_at(side, "diff-offsets", 0, -1, -1, 1);
    obs.put(
        "latest_read_committed/offset",
        r.topics[0].partitions[0].offset,
    );
}

/// OffsetForLeaderEpoch (KIP-320): the end of an epoch, on an empty and a
/// written partition, for current, future, undefined and old epochs, and
/// the caller's leader epoch checked as in Fetch.
pub(crate) fn offset_for_leader_epoch(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-epochs", 2);
    let three: &[&[u8]] = &[b"a", b"b", b"c"];
    produce_setup(side, "diff-epochs", batch(three, &[], None));
    produce_setup(side, "diff-epochs", batch(three, &[], None));
    let cases = [
        ("current", "diff-epochs", 0, -1, 0),
        ("current_with_epoch", "diff-epochs", 0, 0, 0),
        ("future_epoch", "diff-epochs", 0, 0, 3),
        ("undefined_epoch", "diff-epochs", 0, -1, -1),
        ("epoch_ahead", "diff-epochs", 0, 5, 0),
        ("empty_partition", "diff-epochs", 1, 0, 0),
        ("partition_out_of_range", "diff-epochs", 7, -1, 0),
        ("unknown_topic", "diff-epochs-missing", 0, -1, 0),
    ];
    for (case, topic, partition, current, epoch) in cases {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])]);
        let ResponseKind::OffsetForLeaderEpoch(r) =
            side.wire.send(RequestKind::OffsetForLeaderEpoch(request))
        else {
            panic!("{case}: not an OffsetForLeaderEpoch response");
        };
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            obs.error(format!("{case}/error"), p.error_code);
            obs.put(format!("{case}/leader_epoch"), p.leader_epoch);
            obs.put(format!("{case}/end_offset"), p.end_offset);
        }
    }
}

pub(crate) fn delete_records(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-delrec", 1);
    let five: &[&[u8]] = &[b"1", b"2", b"3", b"4", b"5"];
    produce_setup(side, "diff-delrec", batch(five, &[], None));
    let delete = |side: &mut Side, topic: &str, partition: i32, offset: i64| {
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]);
        match side.wire.send(RequestKind::DeleteRecords(request)) {
            ResponseKind::DeleteRecords(r) => r,
            other => panic!("{other:?}"),
        }
    };
    for (case, topic, partition, offset) in [
        ("to_2", "diff-delrec", 0, 2),
        ("below_start", "diff-delrec", 0, 1),
        ("past_end", "diff-delrec", 0, 9),
        ("to_end", "diff-delrec", 0, -1),
        ("negative", "diff-delrec", 0, -7),
        ("partition_out_of_range", "diff-delrec", 3, 0),
        ("unknown_topic", "diff-delrec-missing", 0, 0),
    ] {
        let r = delete(side, topic, partition, offset);
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            obs.error(format!("{case}/error"), p.error_code);
            obs.put(format!("{case}/low_watermark"), p.low_watermark);
        }
    }
    let r = list_offsets_at(side, "diff-delrec", 0, -2, -1, 0);
    obs.put("earliest_afterwards", r.topics[0].partitions[0].offset);
    let id = topic_id(side, "diff-delrec");
    let r = fetch_from(side, "diff-delrec", id, FetchArgs::default());
    record_fetch(obs, "fetch_deleted", &r);
}
