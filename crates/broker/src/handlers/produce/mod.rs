//! Produce (key 0): validate each batch (see [`validate`]: by its header
//! unless a check needs the records, refusing single records by index in
//! `record_errors`), recompress it if the topic's `compression.type` names
//! another codec, assign offsets by patching base offsets in place, and
//! answer once the acks level is met: acks=0 never, acks=1/all after the
//! data is durable under the topic's flush policy (group commit).

mod remote_txn;
mod validate;

use super::{str_bytes, ApiSupport, Reply};
use crate::locks::MutexExt;
use crate::partition::{AppendError, Appended, Partition};
use crate::state::{now_ms, BrokerState};
use crate::txn::{Durable, TransactionCoordinator};
use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseKind};
use sluice_protocol::batch::BatchIter;
use sluice_protocol::error::{self, ErrorCode};
use std::sync::Arc;
use validate::{recompress, validate, Rejection, TopicPartition};

/// Produce v0-v2 (message formats v0/v1) are advertised but refused, as in
/// Kafka 4: see [`ApiSupport::min_implemented`]. v11 may answer
/// TRANSACTION_ABORTABLE; v12 is transactions v2 (KIP-890 part 2): a
/// transactional batch adds its partition to the transaction itself; v13
/// (KIP-516) names topics by id.
pub(crate) const API: ApiSupport = ApiSupport {
    key: ApiKey::Produce,
    min: 0,
    min_implemented: 3,
    max: 13,
};

/// From this version topics are named by id, not by name.
const TOPIC_IDS_SINCE: i16 = 13;

/// From this version a transactional Produce adds its partition to the
/// transaction (Kafka's `addPartition` operation); before it, the
/// partition must have been added (`verify_only`, KIP-890 part 1).
const IMPLICIT_ADD_SINCE: i16 = 12;

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

/// A refused record set's answer. `record_errors` and `error_message` exist
/// from Produce v8; the encoder leaves them out of older versions, whose
/// clients see the error code alone.
fn rejected(index: i32, rejection: Rejection) -> PartitionProduceResponse {
    let record_errors = rejection
        .record_errors
        .into_iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.index)
                .with_batch_index_error_message(Some(str_bytes(e.message)))
        })
        .collect();
    partition_error(index, rejection.code, Some(rejection.message))
        .with_record_errors(record_errors)
}

/// Async for one reason: a partition a transaction adds implicitly must be
/// durable in `__transaction_state` before any data lands in it (data the
/// coordinator does not know about would never get a marker, and its open
/// transaction would hold the partition's last stable offset forever after
/// a crash). That wait is part of the request's in-order step, so a later
/// produce on the same connection cannot append before this one — a
/// producer with several requests in flight relies on that order, as
/// Kafka's one-request-at-a-time connections give it.
pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    request: ProduceRequest,
    version: i16,
) -> Reply {
    let mut request = request;
    if version >= TOPIC_IDS_SINCE {
        // Names from ids, so the rest works by name; an unknown id keeps
        // the empty name and is answered UNKNOWN_TOPIC_ID.
        let image = state.image();
        for topic in &mut request.topic_data {
            if let Some(t) = image.topic_by_id(&topic.topic_id) {
                topic.name = kafka_protocol::messages::TopicName(str_bytes(t.name.clone()));
            }
        }
    }
    // A transaction another broker coordinates is checked with it first.
    let verdicts = remote_txn::verify(state, &request, version).await;
    let added = match verdicts {
        Some(_) => Vec::new(),
        None => add_partitions_implicitly(state, &request, version),
    };
    for durable in added {
        if let Err(e) = durable.wait().await {
            tracing::error!(error = %e, "transaction state not durable");
            return Reply::Now(Box::new(ResponseKind::Produce(all_failed(
                request,
                &e.to_string(),
            ))));
        }
    }
    append_all(state, request, version, verdicts)
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
        let mut topic_response = TopicProduceResponse::default()
            .with_name(topic.name)
            .with_topic_id(topic.topic_id);
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

fn append_all(
    state: &Arc<BrokerState>,
    request: ProduceRequest,
    version: i16,
    verdicts: Option<remote_txn::Verdicts>,
) -> Reply {
    let acks = request.acks;
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut response = ProduceResponse::default();
    // Partitions whose answer waits for a sync, with the end offset to cover.
    let mut pending: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    // Transaction state records (implicit adds) the answers wait for too.
    let mut txn_writes: Vec<(usize, usize, Durable)> = Vec::new();
    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default()
            .with_name(topic.name.clone())
            .with_topic_id(topic.topic_id);
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
                let (code, message) = if version >= TOPIC_IDS_SINCE && topic.name.is_empty() {
                    (error::UNKNOWN_TOPIC_ID, None)
                } else {
                    state.partitions.missing(&topic.name, index)
                };
                topic_response
                    .partition_responses
                    .push(partition_error(index, code, message));
                continue;
            };
            let records = data.records.unwrap_or_default();
            state.metrics.record_produce_batch(records.len());
            let settings = partition.settings();
            let now = now_ms();
            let target = TopicPartition {
                topic: topic.name.as_str(),
                partition: index,
            };
            if let Err(r) = validate(&records, &settings, now, target) {
                // Kafka reports the log start with per-record errors.
                let log_start = if r.record_errors.is_empty() {
                    -1
                } else {
                    partition.log_start_offset()
                };
                topic_response
                    .partition_responses
                    .push(rejected(index, r).with_log_start_offset(log_start));
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
                    topic_response.partition_responses.push(rejected(index, r));
                    continue;
                }
            };
            if acks == -1 {
                if let Some((isr, min)) = partition.insync_shortfall() {
                    topic_response.partition_responses.push(partition_error(
                        index,
                        error::NOT_ENOUGH_REPLICAS,
                        Some(format!(
                            "The size of the current ISR ({isr}) is insufficient to satisfy the min.isr requirement of {min} for partition {}-{index}",
                            topic.name.as_str()
                        )),
                    ));
                    continue;
                }
            }
            let log_append_time = settings.log_append_time.then_some(now);
            let appended = match transactional_producer(&owned) {
                None => partition.append_from_producer(&mut owned, log_append_time, now),
                // Verified with the coordinator on another broker: written
                // only if no marker reached the partition since.
                Some(_) if verdicts.is_some() => {
                    let key = (topic.name.to_string(), index);
                    match verdicts.as_ref().and_then(|v| v.get(&key)) {
                        Some(Ok(markers_before)) => {
                            let markers = state.txns.markers_written.locked("markers written");
                            if markers.get(&key).copied().unwrap_or(0) == *markers_before {
                                partition.append_from_producer(&mut owned, log_append_time, now)
                            } else {
                                Err(AppendError::Rejected(
                                    error::NOT_ENOUGH_REPLICAS,
                                    "a transaction marker reached the partition while the transaction was verified; retry".to_string(),
                                ))
                            }
                        }
                        Some(Err(e)) => Err(AppendError::Rejected(e.code, e.message.clone())),
                        None => Err(AppendError::Rejected(
                            error::INVALID_TXN_STATE,
                            "the transactional batch was not verified".to_string(),
                        )),
                    }
                }
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
                    partition
                        .stats
                        .record_append(records.len(), info.record_count);
                    let ok = PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(info.first_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(partition.log_start_offset());
                    if settings.sync_before_ack() || acks == -1 {
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
                    if settings.sync_before_ack() || acks == -1 {
                        pending.push((
                            response.responses.len(),
                            topic_response.partition_responses.len() - 1,
                            partition.clone(),
                            first_offset + 1,
                        ));
                    }
                }
                Err(AppendError::Rejected(code, message)) => {
                    let mut answer = partition_error(index, code, Some(message));
                    // As Kafka, a sequence gap reports the log start.
                    if code == error::OUT_OF_ORDER_SEQUENCE_NUMBER {
                        answer.log_start_offset = partition.log_start_offset();
                    }
                    topic_response.partition_responses.push(answer);
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
            if !partition.settings().sync_before_ack() {
                continue;
            }
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
            let slot = &mut response.responses[t].partition_responses[p];
            if partition.settings().sync_before_ack() {
                if let Err(e) = partition.make_durable(end).await {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "sync failed");
                    *slot = partition_error(
                        slot.index,
                        error::KAFKA_STORAGE_ERROR,
                        Some(e.to_string()),
                    );
                    continue;
                }
            }
            if acks != -1 {
                continue;
            }
            // acks=all: every in-sync replica has the records.
            let answer = tokio::time::timeout_at(deadline, partition.wait_replicated(end)).await;
            let failure = match answer {
                Ok(Ok(())) => continue,
                Ok(Err(code)) => (code, format!("{code_name} while waiting for the in-sync replicas of {}-{}", partition.topic, partition.index, code_name = error::name(code))),
                Err(_) => (
                    error::REQUEST_TIMED_OUT,
                    format!("the in-sync replicas of {}-{} did not all have the records within the request's timeout", partition.topic, partition.index),
                ),
            };
            *slot = partition_error(slot.index, failure.0, Some(failure.1));
        }
        ResponseKind::Produce(response)
    }))
}

#[cfg(test)]
mod tests;
