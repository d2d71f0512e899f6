//! Fetch (key 1): whole batches straight from the log, bounded by
//! `partition_max_bytes` per partition and `max_bytes` across the response,
//! yet always at least one batch (only the response's first batch may
//! exceed those limits, as in Kafka's KIP-74), long
//! polling until `min_bytes` arrive or `max_wait_ms` passes (woken by
//! high-watermark advances, not by polling), with KIP-227 fetch sessions.

pub(crate) mod session;
#[cfg(test)]
mod tests;

use super::{str_bytes, ApiSupport, Reply};
use crate::locks::MutexExt;
use crate::partition::FollowerReadError;
use crate::state::BrokerState;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName,
};
use session::{FetchTarget, SentPartition, SentState, SessionError, FINAL_EPOCH, INITIAL_EPOCH};
use sluice_metadata::Uuid;
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::{AbortedTxnEntry, StorageError};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::Fetch, 4, 16);

/// First version with fetch sessions.
const SESSIONS_SINCE: i16 = 7;
/// First version that names topics by id.
const TOPIC_IDS_SINCE: i16 = 13;
const READ_COMMITTED: i8 = 1;
/// First version with the replica id in `replica_state` (KIP-903).
const REPLICA_STATE_SINCE: i16 = 15;

/// How this request relates to a fetch session.
enum Plan {
    /// Full response; `session_id` is 0 or a session just opened.
    Full { session_id: i32 },
    /// Incremental response for an existing session.
    Incremental { session_id: i32 },
}

struct Entry {
    target: FetchTarget,
    /// Set when the topic could not be resolved.
    error: Option<ErrorCode>,
    /// What the client was told last time (incremental sessions only).
    sent: Option<SentState>,
    /// The follower this consumer should read the partition from instead
    /// (KIP-392), when this broker leads it.
    read_from: Option<i32>,
}

/// From this version a consumer names its rack and may be sent to a
/// follower (KIP-392).
const RACK_ID_SINCE: i16 = 11;

/// KIP-392 with `replica.selector.class` set to the rack-aware selector: a
/// consumer in another rack than this leader reads a partition from a
/// live in-sync follower in its own rack, if there is one (the lowest id).
fn preferred_read_replicas(
    state: &BrokerState,
    request: &FetchRequest,
    version: i16,
) -> impl Fn(&FetchTarget) -> Option<i32> {
    let image = state.image();
    let client_rack = request.rack_id.to_string();
    let rack_aware = version >= RACK_ID_SINCE
        && replica_id(request, version).is_none()
        && !client_rack.is_empty()
        && state.rack.as_deref() != Some(client_rack.as_str())
        && state
            .broker_setting("replica.selector.class")
            .value
            .as_deref()
            == Some(crate::config::RACK_AWARE_SELECTOR);
    let node_id = state.node_id;
    move |target: &FetchTarget| {
        if !rack_aware {
            return None;
        }
        let partition = image
            .topic(&target.topic)?
            .partitions
            .get(usize::try_from(target.partition).ok()?)?;
        if partition.leader != node_id {
            return None;
        }
        partition
            .isr
            .iter()
            .copied()
            .filter(|id| *id != node_id)
            .find(|id| {
                image
                    .brokers
                    .get(id)
                    .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(client_rack.as_str()))
            })
    }
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: FetchRequest, version: i16) -> Reply {
    let image = state.image();
    let by_id = version >= TOPIC_IDS_SINCE;
    let mut resolved = Vec::new();
    let mut unresolved = Vec::new();
    for topic in &request.topics {
        let (name, id) = if by_id {
            match image.topic_by_id(&topic.topic_id) {
                Some(t) => (t.name.clone(), t.id),
                None => (String::new(), topic.topic_id),
            }
        } else {
            let id = image.topic(&topic.topic).map_or(Uuid::nil(), |t| t.id);
            (topic.topic.to_string(), id)
        };
        for p in &topic.partitions {
            let target = FetchTarget {
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            };
            if by_id && name.is_empty() {
                unresolved.push(Entry {
                    target,
                    error: Some(error::UNKNOWN_TOPIC_ID),
                    sent: None,
                    read_from: None,
                });
            } else {
                resolved.push(target);
            }
        }
    }
    let forgotten: Vec<(String, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let name = if by_id {
                image
                    .topic_by_id(&f.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                f.topic.to_string()
            };
            f.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();

    let replica = replica_id(&request, version);
    let read_from = preferred_read_replicas(state, &request, version);
    let (plan, targets) = if version < SESSIONS_SINCE || replica.is_some() {
        (Plan::Full { session_id: 0 }, resolved)
    } else {
        let mut sessions = state.fetch_sessions.locked("sessions");
        match request.session_epoch {
            FINAL_EPOCH | INITIAL_EPOCH => {
                if request.session_id != 0 {
                    sessions.remove(request.session_id);
                }
                let session_id = if request.session_epoch == INITIAL_EPOCH {
                    sessions.create(&resolved)
                } else {
                    0
                };
                (Plan::Full { session_id }, resolved)
            }
            epoch => match sessions.update(request.session_id, epoch, resolved, &forgotten) {
                Ok(all) => {
                    let entries = all
                        .into_iter()
                        .map(|(target, sent)| Entry {
                            read_from: read_from(&target),
                            target,
                            error: None,
                            sent,
                        })
                        .collect::<Vec<_>>();
                    return Reply::Later(Box::pin(serve(
                        state.clone(),
                        request_limits(&request, version),
                        Plan::Incremental {
                            session_id: request.session_id,
                        },
                        entries,
                        version,
                    )));
                }
                Err(e) => {
                    let code = match e {
                        SessionError::NotFound => error::FETCH_SESSION_ID_NOT_FOUND,
                        SessionError::InvalidEpoch => error::INVALID_FETCH_SESSION_EPOCH,
                    };
                    return Reply::Now(Box::new(ResponseKind::Fetch(
                        FetchResponse::default().with_error_code(code),
                    )));
                }
            },
        }
    };
    let mut entries: Vec<Entry> = targets
        .into_iter()
        .map(|target| Entry {
            read_from: read_from(&target),
            target,
            error: None,
            sent: None,
        })
        .collect();
    entries.extend(unresolved);
    Reply::Later(Box::pin(serve(
        state.clone(),
        request_limits(&request, version),
        plan,
        entries,
        version,
    )))
}

#[derive(Clone, Copy)]
struct Limits {
    /// The follower fetching, if a follower is.
    replica: Option<i32>,
    max_wait: Duration,
    min_bytes: usize,
    max_bytes: usize,
    read_committed: bool,
    /// A consumer of Fetch v11+ may read from a follower (KIP-392); older
    /// ones are served by leaders only, as in Kafka.
    follower_reads: bool,
}

/// The follower broker a fetch comes from (Kafka's replica id: in the
/// request before v15, in its replica state since), or None for a consumer.
pub(crate) fn replica_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= REPLICA_STATE_SINCE {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

fn request_limits(request: &FetchRequest, version: i16) -> Limits {
    Limits {
        replica: replica_id(request, version),
        max_wait: Duration::from_millis(request.max_wait_ms.max(0) as u64),
        min_bytes: request.min_bytes.max(0) as usize,
        max_bytes: if request.max_bytes <= 0 {
            i32::MAX as usize
        } else {
            request.max_bytes as usize
        },
        read_committed: request.isolation_level == READ_COMMITTED,
        follower_reads: version >= RACK_ID_SINCE && replica_id(request, version).is_none(),
    }
}

struct PartitionRead {
    error: ErrorCode,
    records: Bytes,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    aborted: Vec<AbortedTxnEntry>,
    /// For a follower whose log diverged: the epoch and its end here.
    diverging: Option<(i32, i64)>,
    /// KIP-392: the replica the consumer should fetch from instead.
    preferred_read_replica: i32,
}

/// Reads every entry once, in order, sharing the `max_bytes` budget.
fn read_all(
    state: &Arc<BrokerState>,
    entries: &[Entry],
    limits: Limits,
) -> (Vec<PartitionRead>, usize, bool) {
    let mut budget = limits.max_bytes;
    let mut total = 0;
    let mut any_error = false;
    let reads = entries
        .iter()
        .map(|entry| {
            let failed = |code| PartitionRead {
                error: code,
                records: Bytes::new(),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted: Vec::new(),
                diverging: None,
                preferred_read_replica: -1,
            };
            if let Some(code) = entry.error {
                any_error = true;
                return failed(code);
            }
            let t = &entry.target;
            let led = state.partitions.get(&t.topic, t.partition);
            // KIP-392: a consumer may read a partition from a follower too,
            // up to the follower's high watermark.
            let followed = || {
                limits
                    .follower_reads
                    .then(|| state.partitions.follower(&t.topic, t.partition))
                    .flatten()
            };
            let Some(partition) = led.clone().or_else(followed) else {
                any_error = true;
                return failed(state.partitions.missing(&t.topic, t.partition).0);
            };
            // KIP-320: a client ahead of this leader's epoch has newer
            // metadata than the broker; one behind it is fenced.
            if t.current_leader_epoch > partition.leader_epoch() {
                any_error = true;
                return failed(error::UNKNOWN_LEADER_EPOCH);
            }
            if t.current_leader_epoch >= 0 && t.current_leader_epoch < partition.leader_epoch() {
                any_error = true;
                return failed(error::FENCED_LEADER_EPOCH);
            }
            if let (Some(replica), Some(_)) = (entry.read_from, &led) {
                // No records: the consumer fetches them from `replica`.
                return PartitionRead {
                    error: error::NONE,
                    records: Bytes::new(),
                    high_watermark: partition.high_watermark(),
                    last_stable_offset: partition.last_stable_offset(),
                    log_start_offset: partition.log_start_offset(),
                    aborted: Vec::new(),
                    diverging: None,
                    preferred_read_replica: replica,
                };
            }
            let limit = (t.max_bytes.max(0) as usize).min(budget);
            if let Some(follower) = limits.replica {
                // KIP-74 for followers too: one whole batch at least, then
                // only what fits the rest of the response's budget.
                let first_data = total == 0;
                return match read_for_follower(state, &partition, follower, t, limit.max(1)) {
                    Ok(mut read) => {
                        if !first_data {
                            read.records = whole_batches_within(read.records, limit);
                        }
                        total += read.records.len();
                        budget = budget.saturating_sub(read.records.len());
                        any_error |= read.diverging.is_some();
                        read
                    }
                    Err(read) => {
                        any_error = true;
                        read
                    }
                };
            }
            // KIP-74: until some partition has returned data, one whole batch
            // is returned whatever its size, so a consumer always makes
            // progress; after that only whole batches that fit the rest of
            // the budget, and none once it is spent.
            let first_data = total == 0;
            let result = if limit == 0 && !first_data {
                Ok(Bytes::new())
            } else if limits.read_committed {
                partition.read_committed(t.fetch_offset, limit.max(1))
            } else {
                partition.read(t.fetch_offset, limit.max(1))
            };
            // The log always returns at least one batch: drop it when it
            // does not fit a budget another partition has already used.
            let result = result.map(|records| {
                if first_data {
                    records
                } else {
                    whole_batches_within(records, limit)
                }
            });
            let high_watermark = partition.high_watermark();
            let last_stable_offset = partition.last_stable_offset();
            let log_start_offset = partition.log_start_offset();
            match result {
                Ok(records) => {
                    partition.stats.record_fetch(records.len());
                    total += records.len();
                    budget = budget.saturating_sub(records.len());
                    // The aborted transactions the returned batches overlap:
                    // read_committed clients drop those producers' records.
                    let aborted = match next_offset(&records) {
                        Some(end) if limits.read_committed => {
                            partition.aborted_transactions(t.fetch_offset, end)
                        }
                        _ => Vec::new(),
                    };
                    PartitionRead {
                        error: error::NONE,
                        records,
                        high_watermark,
                        last_stable_offset,
                        log_start_offset,
                        aborted,
                        diverging: None,
                        preferred_read_replica: -1,
                    }
                }
                Err(e) => {
                    any_error = true;
                    let code = match e {
                        StorageError::OffsetOutOfRange { .. } => error::OFFSET_OUT_OF_RANGE,
                        other => {
                            tracing::error!(topic = %t.topic, partition = t.partition, error = %other, "fetch read failed");
                            error::KAFKA_STORAGE_ERROR
                        }
                    };
                    // Kafka reports no offsets with a partition error.
                    failed(code)
                }
            }
        })
        .collect();
    (reads, total, any_error)
}

/// A follower's read: what the leader has past the high watermark too,
/// with the follower's progress recorded (an ISR change it calls for goes
/// to the controller). Errors come with the offsets a follower needs to
/// recover (the log start, for a follower behind it).
fn read_for_follower(
    state: &Arc<BrokerState>,
    partition: &Arc<crate::partition::Partition>,
    follower: i32,
    target: &FetchTarget,
    limit: usize,
) -> Result<PartitionRead, PartitionRead> {
    let read = partition.read_for_follower(
        follower,
        target.fetch_offset,
        target.last_fetched_epoch,
        limit,
        crate::state::now_ms(),
    );
    let failed = |code| PartitionRead {
        error: code,
        records: Bytes::new(),
        high_watermark: partition.high_watermark(),
        last_stable_offset: partition.last_stable_offset(),
        log_start_offset: partition.log_start_offset(),
        aborted: Vec::new(),
        diverging: None,
        preferred_read_replica: -1,
    };
    match read {
        Ok(read) => {
            if let Some((epoch, isr)) = read.isr_change {
                crate::replication::submit_isr_change(state, partition.clone(), epoch, isr);
            }
            partition.stats.record_fetch(read.records.len());
            Ok(PartitionRead {
                error: error::NONE,
                records: read.records,
                high_watermark: read.high_watermark,
                last_stable_offset: partition.last_stable_offset(),
                log_start_offset: read.log_start_offset,
                aborted: Vec::new(),
                diverging: read.diverging,
                preferred_read_replica: -1,
            })
        }
        Err(FollowerReadError::Refused(code)) => Err(failed(code)),
        Err(FollowerReadError::Storage(StorageError::OffsetOutOfRange { .. })) => {
            Err(failed(error::OFFSET_OUT_OF_RANGE))
        }
        Err(FollowerReadError::Storage(e)) => {
            tracing::error!(topic = %target.topic, partition = target.partition, follower, error = %e, "replica fetch read failed");
            Err(failed(error::KAFKA_STORAGE_ERROR))
        }
    }
}

async fn serve(
    state: Arc<BrokerState>,
    limits: Limits,
    plan: Plan,
    entries: Vec<Entry>,
    version: i16,
) -> ResponseKind {
    let deadline = tokio::time::Instant::now() + limits.max_wait;
    let reads = loop {
        // Register for wake-ups before reading so no append is missed.
        let notified = state.partitions.data_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (reads, total, any_error) = read_all(&state, &entries, limits);
        if total >= limits.min_bytes || any_error || tokio::time::Instant::now() >= deadline {
            break reads;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break read_all(&state, &entries, limits).0;
        }
    };
    build_response(&state, plan, entries, reads, limits, version)
}

fn build_response(
    state: &BrokerState,
    plan: Plan,
    entries: Vec<Entry>,
    reads: Vec<PartitionRead>,
    limits: Limits,
    version: i16,
) -> ResponseKind {
    let (session_id, incremental) = match plan {
        Plan::Full { session_id } => (session_id, false),
        Plan::Incremental { session_id } => (session_id, true),
    };
    let mut response = FetchResponse::default().with_session_id(session_id);
    let mut sent = Vec::new();
    for (entry, read) in entries.into_iter().zip(reads) {
        let t = entry.target;
        let now = SentState {
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        };
        let changed =
            read.error != error::NONE || !read.records.is_empty() || entry.sent != Some(now);
        if session_id != 0 {
            sent.push(SentPartition {
                topic: t.topic.clone(),
                partition: t.partition,
                state: now,
                returned_records: !read.records.is_empty(),
            });
        }
        if incremental && !changed {
            continue;
        }
        let data = PartitionData::default()
            .with_partition_index(t.partition)
            .with_error_code(read.error)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.last_stable_offset)
            .with_log_start_offset(read.log_start_offset)
            .with_aborted_transactions(limits.read_committed.then(|| {
                read.aborted
                    .iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            }))
            .with_preferred_read_replica(BrokerId(read.preferred_read_replica))
            .with_diverging_epoch(
                read.diverging
                    .map(|(epoch, end_offset)| {
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset)
                    })
                    .unwrap_or_default(),
            )
            .with_records(Some(read.records));
        let same_topic = response
            .responses
            .last()
            .is_some_and(|r: &FetchableTopicResponse| {
                if version >= TOPIC_IDS_SINCE {
                    r.topic_id == t.topic_id
                } else {
                    r.topic.0.as_str() == t.topic
                }
            });
        if !same_topic {
            response.responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(str_bytes(t.topic.clone())))
                    .with_topic_id(t.topic_id),
            );
        }
        response
            .responses
            .last_mut()
            .expect("pushed above")
            .partitions
            .push(data);
    }
    if session_id != 0 {
        state
            .fetch_sessions
            .locked("sessions")
            .record_sent(session_id, &sent, incremental);
    }
    ResponseKind::Fetch(response)
}

/// The longest run of whole batches at the start of `records` that fits in
/// `limit` bytes (possibly none).
fn whole_batches_within(records: Bytes, limit: usize) -> Bytes {
    let mut end = 0;
    for batch in sluice_protocol::batch::BatchIter::new(&records) {
        match batch {
            Ok((_, bytes)) if end + bytes.len() <= limit => end += bytes.len(),
            _ => break,
        }
    }
    records.slice(..end)
}

/// The offset after the last batch in `records`.
fn next_offset(records: &[u8]) -> Option<i64> {
    sluice_protocol::batch::BatchIter::new(records)
        .filter_map(Result::ok)
        .last()
        .map(|(h, _)| h.last_offset() + 1)
}
