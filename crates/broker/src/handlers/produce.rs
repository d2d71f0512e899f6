//! Produce (key 0): validate each batch by its header alone (magic, CRC32C,
//! size, codec, timestamps), recompress it if the topic's `compression.type`
//! names another codec, assign offsets by patching base offsets in place,
//! and answer once the acks level is met: acks=0 never, acks=1/all after the
//! data is durable under the topic's flush policy (group commit).

use super::{str_bytes, ApiSupport, Reply};
use crate::partition::{AppendError, Appended, LogSettings, Partition};
use crate::state::{now_ms, BrokerState};
use crate::txn::{Durable, TransactionCoordinator};
use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseKind};
use sluice_protocol::batch::{BatchError, BatchHeader, BatchIter};
use sluice_protocol::compression::CodecLevel;
use sluice_protocol::error::{self, ErrorCode};
use sluice_protocol::record::{checked_records, recompress_batch, records_section};
use std::sync::Arc;

/// Produce v0-v2 (message formats v0/v1) are advertised but refused, as in
/// Kafka 4: see [`ApiSupport::min_implemented`]. v11 may answer
/// TRANSACTION_ABORTABLE; v12 is transactions v2 (KIP-890 part 2): a
/// transactional batch adds its partition to the transaction itself.
pub(crate) const API: ApiSupport = ApiSupport {
    key: ApiKey::Produce,
    min: 0,
    min_implemented: 3,
    max: 12,
};

/// From this version a transactional Produce adds its partition to the
/// transaction (Kafka's `addPartition` operation); before it, the
/// partition must have been added (`verify_only`, KIP-890 part 1).
const IMPLICIT_ADD_SINCE: i16 = 12;

struct Rejection {
    code: ErrorCode,
    message: String,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// Kafka refuses records without a key on compacted topics: the cleaner
/// could never tell which one is the latest. Decodes the batch's records
/// (decompressing them), which only compacted topics pay for.
fn check_keys(header: &BatchHeader<'_>, batch: &[u8]) -> Result<(), Rejection> {
    let corrupt =
        |e: sluice_protocol::record::RecordError| reject(error::CORRUPT_MESSAGE, e.to_string());
    let section = records_section(batch).map_err(corrupt)?;
    let records = checked_records(header, &section).map_err(corrupt)?;
    if records.iter().any(|r| r.key.is_none()) {
        return Err(reject(
            error::INVALID_RECORD,
            "Compacted topic cannot accept message without key",
        ));
    }
    Ok(())
}

/// Checks every batch of a record set from its header; records are decoded
/// only for compacted topics, to check their keys.
fn validate(records: &[u8], settings: &LogSettings, now: i64) -> Result<(), Rejection> {
    if records.is_empty() {
        return Err(reject(error::INVALID_RECORD, "empty record set"));
    }
    for batch in BatchIter::new(records) {
        let (header, bytes) = batch.map_err(|e| match e {
            BatchError::UnsupportedMagic(m) => reject(
                error::UNSUPPORTED_FOR_MESSAGE_FORMAT,
                format!("record batch magic {m} is not supported; produce v3+ requires magic 2"),
            ),
            other => reject(error::CORRUPT_MESSAGE, other.to_string()),
        })?;
        if bytes.len() > settings.max_message_bytes {
            return Err(reject(
                error::MESSAGE_TOO_LARGE,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes {}",
                    bytes.len(),
                    settings.max_message_bytes
                ),
            ));
        }
        header
            .verify()
            .map_err(|e| reject(error::CORRUPT_MESSAGE, e.to_string()))?;
        header
            .codec()
            .map_err(|e| reject(error::UNSUPPORTED_COMPRESSION_TYPE, e.to_string()))?;
        if header.is_control() {
            return Err(reject(
                error::INVALID_RECORD,
                "clients may not write control batches",
            ));
        }
        if settings.compact_policy {
            check_keys(&header, bytes)?;
        }
        if !settings.log_append_time {
            let (first, max) = (header.base_timestamp(), header.max_timestamp());
            if first < now.saturating_sub(settings.timestamp_before_max_ms)
                || max > now.saturating_add(settings.timestamp_after_max_ms)
            {
                return Err(reject(
                    error::INVALID_TIMESTAMP,
                    format!(
                        "timestamps [{first}, {max}] are out of range for broker time {now} \
                         (message.timestamp.before.max.ms / message.timestamp.after.max.ms)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Copies validated batches for the append, rewriting each one whose codec is
/// not `target` (Kafka's broker-side recompression). Runs before offsets are
/// assigned; the header fields the sequence check reads are kept.
fn recompress(
    records: &[u8],
    target: CodecLevel,
    max_message_bytes: usize,
) -> Result<BytesMut, Rejection> {
    let corrupt = |e: String| reject(error::CORRUPT_MESSAGE, e);
    let mut out = BytesMut::with_capacity(records.len());
    for batch in BatchIter::new(records) {
        let (header, bytes) = batch.map_err(|e| corrupt(e.to_string()))?;
        if header.codec().map_err(|e| corrupt(e.to_string()))? == target.codec {
            out.extend_from_slice(bytes);
            continue;
        }
        let rewritten = recompress_batch(bytes, target).map_err(|e| {
            corrupt(format!(
                "cannot recompress a {} batch to {}: {e}",
                header.codec().map_or("unknown", |c| c.name()),
                target.codec.name()
            ))
        })?;
        if rewritten.len() > max_message_bytes {
            return Err(reject(
                error::MESSAGE_TOO_LARGE,
                format!(
                    "record batch of {} bytes after recompression to {} exceeds \
                     max.message.bytes {max_message_bytes}",
                    rewritten.len(),
                    target.codec.name()
                ),
            ));
        }
        out.extend_from_slice(&rewritten);
    }
    Ok(out)
}

/// The producer of the first transactional batch, if any.
fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    BatchIter::new(records)
        .filter_map(Result::ok)
        .find(|(h, _)| h.is_transactional())
        .map(|(h, _)| (h.producer_id(), h.producer_epoch()))
}

fn partition_error(
    index: i32,
    code: ErrorCode,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: ProduceRequest, version: i16) -> Reply {
    let added = add_partitions_implicitly(state, &request, version);
    if added.is_empty() {
        return append_all(state, request, version);
    }
    // The transaction's new partitions must be durable in
    // `__transaction_state` before any data lands in them: data on disk in a
    // partition the coordinator does not know about would never get a
    // marker, and its open transaction would hold the partition's last
    // stable offset forever after a crash.
    let state = Arc::clone(state);
    Reply::Later(Box::pin(async move {
        for durable in added {
            if let Err(e) = durable.wait().await {
                tracing::error!(error = %e, "transaction state not durable");
                return ResponseKind::Produce(all_failed(request, &e.to_string()));
            }
        }
        match append_all(&state, request, version) {
            Reply::Now(response) => *response,
            Reply::Later(response) => response.await,
            // Transactional writes are acks=-1; acks=0 skips implicit adds.
            Reply::Nothing => unreachable!("implicit adds only for acks != 0"),
        }
    }))
}

/// Transactions v2 (Produce v12+): adds each partition the request writes
/// transactionally to its producer's transaction, as AddPartitionsToTxn
/// would, returning the state records to wait for. Refusals are left to
/// the append loop, which checks again and reports them per partition.
fn add_partitions_implicitly(
    state: &Arc<BrokerState>,
    request: &ProduceRequest,
    version: i16,
) -> Vec<Durable> {
    let Some(id) = request.transactional_id.as_deref() else {
        return Vec::new();
    };
    if version < IMPLICIT_ADD_SINCE || request.acks == 0 {
        return Vec::new();
    }
    let mut added = Vec::new();
    let mut txns = state.txns.lock();
    for topic in &request.topic_data {
        for data in &topic.partition_data {
            let producer = data.records.as_deref().and_then(transactional_producer);
            let Some(producer) = producer else { continue };
            if state.partitions.get(&topic.name, data.index).is_none() {
                continue;
            }
            let partition = (topic.name.to_string(), data.index);
            if let Ok(Some(durable)) =
                TransactionCoordinator::add_implicitly(state, &mut txns, id, producer, partition)
            {
                added.push(durable);
            }
        }
    }
    added
}

/// The answer to a request none of whose partitions was written.
fn all_failed(request: ProduceRequest, message: &str) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default().with_name(topic.name);
        for data in topic.partition_data {
            topic_response.partition_responses.push(partition_error(
                data.index,
                error::KAFKA_STORAGE_ERROR,
                Some(message.to_string()),
            ));
        }
        response.responses.push(topic_response);
    }
    response
}

fn append_all(state: &Arc<BrokerState>, request: ProduceRequest, version: i16) -> Reply {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut response = ProduceResponse::default();
    // Partitions whose answer waits for a sync, with the end offset to cover.
    let mut pending: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    // Transaction state records (implicit adds) the answers wait for too.
    let mut txn_writes: Vec<(usize, usize, Durable)> = Vec::new();
    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default().with_name(topic.name.clone());
        for data in topic.partition_data {
            let index = data.index;
            if !matches!(acks, -1..=1) {
                topic_response.partition_responses.push(partition_error(
                    index,
                    error::INVALID_REQUIRED_ACKS,
                    Some(format!("acks must be -1, 0 or 1, not {acks}")),
                ));
                continue;
            }
            let Some(partition) = state.partitions.get(&topic.name, index) else {
                let (code, message) = state.partitions.missing(&topic.name, index);
                topic_response
                    .partition_responses
                    .push(partition_error(index, code, message));
                continue;
            };
            let records = data.records.unwrap_or_default();
            let settings = partition.settings();
            let now = now_ms();
            if let Err(r) = validate(&records, &settings, now) {
                topic_response.partition_responses.push(partition_error(
                    index,
                    r.code,
                    Some(r.message),
                ));
                continue;
            }
            // One copy: the frame is shared, the batches must be patched.
            let copied = match settings.recompression {
                None => Ok(BytesMut::from(&records[..])),
                Some(target) => recompress(&records, target, settings.max_message_bytes),
            };
            let mut owned = match copied {
                Ok(owned) => owned,
                Err(r) => {
                    topic_response.partition_responses.push(partition_error(
                        index,
                        r.code,
                        Some(r.message),
                    ));
                    continue;
                }
            };
            let log_append_time = settings.log_append_time.then_some(now);
            let appended = match transactional_producer(&owned) {
                None => partition.append_from_producer(&mut owned, log_append_time, now),
                // Held across the append: the transaction cannot end between
                // the check and the write (KIP-890 part 1).
                Some(producer) => {
                    let mut txns = state.txns.lock();
                    let checked = match transactional_id.as_deref() {
                        Some(id) if version >= IMPLICIT_ADD_SINCE => {
                            TransactionCoordinator::add_implicitly(
                                state,
                                &mut txns,
                                id,
                                producer,
                                (topic.name.to_string(), index),
                            )
                        }
                        id => TransactionCoordinator::verify_produce(
                            &txns,
                            id,
                            producer,
                            (topic.name.as_str(), index),
                            version,
                        )
                        .map(|()| None),
                    };
                    match checked {
                        Ok(written) => {
                            if let Some(durable) = written {
                                txn_writes.push((
                                    response.responses.len(),
                                    topic_response.partition_responses.len(),
                                    durable,
                                ));
                            }
                            partition.append_from_producer(&mut owned, log_append_time, now)
                        }
                        Err(e) => Err(AppendError::Rejected(e.code, e.message)),
                    }
                }
            };
            match appended {
                Ok(Appended::Written(info)) => {
                    let ok = PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(info.first_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(partition.log_start_offset());
                    if settings.sync_before_ack() {
                        pending.push((
                            response.responses.len(),
                            topic_response.partition_responses.len(),
                            partition.clone(),
                            info.last_offset + 1,
                        ));
                    }
                    topic_response.partition_responses.push(ok);
                }
                Ok(Appended::Duplicate { first_offset }) => {
                    // Already written: the original offset, once durable.
                    topic_response.partition_responses.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(first_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(partition.log_start_offset()),
                    );
                    if settings.sync_before_ack() {
                        pending.push((
                            response.responses.len(),
                            topic_response.partition_responses.len() - 1,
                            partition.clone(),
                            first_offset + 1,
                        ));
                    }
                }
                Err(AppendError::Rejected(code, message)) => {
                    topic_response.partition_responses.push(partition_error(
                        index,
                        code,
                        Some(message),
                    ));
                }
                Err(AppendError::Storage(e)) => {
                    tracing::error!(topic = %partition.topic, partition = index, error = %e, "append failed");
                    topic_response.partition_responses.push(partition_error(
                        index,
                        error::KAFKA_STORAGE_ERROR,
                        Some(e.to_string()),
                    ));
                }
            }
        }
        response.responses.push(topic_response);
    }
    if acks == 0 {
        // No answer, but the data still has to become durable and visible.
        for (_, _, durable) in txn_writes {
            tokio::spawn(async move {
                if let Err(e) = durable.wait().await {
                    tracing::error!(error = %e, "transaction state not durable");
                }
            });
        }
        for (_, _, partition, end) in pending {
            tokio::spawn(async move {
                if let Err(e) = partition.make_durable(end).await {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "sync failed");
                }
            });
        }
        return Reply::Nothing;
    }
    if pending.is_empty() && txn_writes.is_empty() {
        return Reply::Now(Box::new(ResponseKind::Produce(response)));
    }
    Reply::Later(Box::pin(async move {
        for (t, p, durable) in txn_writes {
            if let Err(e) = durable.wait().await {
                tracing::error!(error = %e, "transaction state not durable");
                let slot = &mut response.responses[t].partition_responses[p];
                *slot =
                    partition_error(slot.index, error::KAFKA_STORAGE_ERROR, Some(e.to_string()));
            }
        }
        for (t, p, partition, end) in pending {
            if let Err(e) = partition.make_durable(end).await {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "sync failed");
                let slot = &mut response.responses[t].partition_responses[p];
                *slot =
                    partition_error(slot.index, error::KAFKA_STORAGE_ERROR, Some(e.to_string()));
            }
        }
        ResponseKind::Produce(response)
    }))
}

#[cfg(test)]
mod tests {
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

    async fn produce(
        state: &std::sync::Arc<crate::state::BrokerState>,
        records: Bytes,
    ) -> (i16, i64) {
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
        let body = RequestKind::InitProducerId(
            InitProducerIdRequest::default().with_transactional_id(None),
        );
        let Some(ResponseKind::InitProducerId(r)) =
            call(state, ApiKey::InitProducerId, 4, body).await
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
    async fn fetch_all(
        state: &std::sync::Arc<crate::state::BrokerState>,
        topic: TopicName,
    ) -> Bytes {
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
}
