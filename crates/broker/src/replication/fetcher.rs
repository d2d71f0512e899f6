//! A replica fetcher: copies the partitions this broker follows from one
//! leader with the Fetch API, as a Kafka follower does (replica id set, so
//! the leader returns what it has beyond the high watermark and counts the
//! fetch offset as this replica's log end). A leader's diverging epoch
//! makes it truncate first (KIP-320, KIP-101/279); with the durable flush
//! policy it syncs what it copied before fetching again, so the offset the
//! leader counts towards the high watermark is on this replica's disk.

use super::peer::Peer;
use super::slot_of;
use crate::partition::{whole_batches, Partition};
use crate::state::{now_ms, BrokerState};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error;
use sluice_storage::StorageError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Fetch v12: replica id in the request, last fetched epoch and diverging
/// epoch per partition, topics by name.
const FETCH_VERSION: i16 = 12;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a fetch refused only for leadership reasons.
const LEADERSHIP_PAUSE: Duration = Duration::from_millis(50);

/// The fetch loop for the partitions in `slot` of those led by `leader`.
/// Ends when this broker follows none of them from `leader` any more (the
/// supervisor starts another when that changes).
pub(super) async fn run(state: Arc<BrokerState>, leader: i32, slot: usize, slots: usize) {
    let mut peer: Option<Peer> = None;
    loop {
        let partitions: Vec<Arc<Partition>> = state
            .partitions
            .followed()
            .into_iter()
            .filter(|p| p.followed_leader() == Some(leader) && slot_of(p, slots) == slot)
            .collect();
        if partitions.is_empty() {
            tracing::debug!(
                leader,
                slot,
                "no partitions to fetch from this leader; fetcher stops"
            );
            return;
        }
        let backoff = Duration::from_millis(
            u64::try_from(state.broker_i64("replica.fetch.backoff.ms")).unwrap_or(1000),
        );
        if peer.is_none() {
            match connect(&state, leader).await {
                Ok(connected) => peer = Some(connected),
                Err(e) => {
                    tracing::warn!(leader, error = %e, "cannot reach the leader to replicate from it; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(connection) = peer.as_mut() else {
            continue;
        };
        // In durable mode the leader counts what a follower reports as on
        // its disk: a copy that cannot be synced is not fetched for (the
        // leader drops it from the ISR once it lags).
        let mut ready = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let end = partition.log_end_offset();
            if partition.settings().sync_before_ack() && partition.synced_end() < end {
                if let Err(e) = partition.make_durable(end).await {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "not replicating the partition: its copy cannot be synced");
                    continue;
                }
            }
            ready.push(partition);
        }
        if ready.is_empty() {
            tokio::time::sleep(backoff).await;
            continue;
        }
        let partitions = ready;
        let wait_ms = state.broker_i64("replica.fetch.wait.max.ms");
        let (request, requested) = fetch_request(&state, &partitions);
        let timeout =
            Duration::from_millis(u64::try_from(wait_ms).unwrap_or(500)) + Duration::from_secs(30);
        let response = connection
            .call(
                ApiKey::Fetch,
                FETCH_VERSION,
                RequestKind::Fetch(request),
                timeout,
            )
            .await;
        let response = match response {
            Ok(ResponseKind::Fetch(response)) => response,
            Ok(other) => {
                tracing::error!(leader, ?other, "unexpected answer to a replica fetch");
                peer = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(leader, error = %e, "replica fetch failed; reconnecting");
                peer = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if response.error_code != error::NONE {
            tracing::warn!(
                leader,
                code = response.error_code,
                "the leader refused the replica fetch"
            );
            tokio::time::sleep(backoff).await;
            continue;
        }
        let by_key: HashMap<(&str, i32), &Arc<Partition>> = partitions
            .iter()
            .map(|p| ((p.topic.as_str(), p.index), p))
            .collect();
        let mut progressed = false;
        let mut failed = false;
        for topic in &response.responses {
            for data in &topic.partitions {
                let key = (topic.topic.as_str(), data.partition_index);
                let (Some(partition), Some(asked)) = (by_key.get(&key), requested.get(&key)) else {
                    continue;
                };
                // Acted on only while the replica is as it was when asked:
                // a partition that became leader, or changed epoch or end
                // meanwhile, must not be cut or extended by a stale answer.
                let unchanged = partition.followed_leader() == Some(leader)
                    && partition.leader_epoch() == asked.0
                    && partition.log_end_offset() == asked.1;
                if !unchanged {
                    continue;
                }
                match apply(partition, data).await {
                    Ok(moved) => progressed |= moved,
                    Err(e) => {
                        failed = true;
                        tracing::error!(topic = %partition.topic, partition = partition.index, leader, error = %e, "cannot apply what the leader sent; fetching again after a pause");
                    }
                }
            }
        }
        if failed && !progressed {
            tokio::time::sleep(backoff).await;
        } else if !progressed {
            if let Some(pause) = error_pause(&response, backoff) {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// How long to wait before fetching again after partition errors: the
/// full `replica.fetch.backoff.ms` for most, a moment when only leadership
/// is in flux (a new leader or leader epoch this broker or the leader has
/// not applied yet), so that a follower rejoins a new leader promptly and
/// its high watermark can move.
fn error_pause(
    response: &kafka_protocol::messages::FetchResponse,
    backoff: Duration,
) -> Option<Duration> {
    let mut codes = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .filter(|c| *c != error::NONE)
        .peekable();
    codes.peek()?;
    let leadership = |c: i16| {
        matches!(
            c,
            error::NOT_LEADER_OR_FOLLOWER
                | error::FENCED_LEADER_EPOCH
                | error::UNKNOWN_LEADER_EPOCH
        )
    };
    Some(if codes.all(leadership) {
        backoff.min(LEADERSHIP_PAUSE)
    } else {
        backoff
    })
}

async fn connect(state: &BrokerState, leader: i32) -> std::io::Result<Peer> {
    let image = state.image();
    let Some(broker) = image.brokers.get(&leader) else {
        return Err(std::io::Error::other(format!(
            "broker {leader} is not registered"
        )));
    };
    let Some(endpoint) = broker
        .endpoint(&state.inter_broker_listener)
        .or_else(|| broker.endpoints.first())
    else {
        return Err(std::io::Error::other(format!(
            "broker {leader} has no endpoint"
        )));
    };
    Peer::connect(
        (&endpoint.host, endpoint.port),
        &state.inter_broker,
        CONNECT_TIMEOUT,
        format!("sluice-replica-fetcher-{}", state.node_id),
    )
    .await
}

/// What was asked for each partition: (leader epoch, fetch offset).
type Requested<'a> = HashMap<(&'a str, i32), (i32, i64)>;

fn fetch_request<'a>(
    state: &BrokerState,
    partitions: &'a [Arc<Partition>],
) -> (FetchRequest, Requested<'a>) {
    let max_bytes = i32::try_from(state.broker_i64("replica.fetch.max.bytes")).unwrap_or(i32::MAX);
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut requested = HashMap::new();
    for p in partitions {
        let (epoch, offset) = (p.leader_epoch(), p.log_end_offset());
        requested.insert((p.topic.as_str(), p.index), (epoch, offset));
        let wanted = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(epoch)
            .with_fetch_offset(offset)
            .with_last_fetched_epoch(p.last_fetched_epoch())
            .with_log_start_offset(p.log_start_offset())
            .with_partition_max_bytes(max_bytes);
        match topics.iter_mut().find(|t| t.topic.as_str() == p.topic) {
            Some(topic) => topic.partitions.push(wanted),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                    .with_partitions(vec![wanted]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(state.node_id))
        .with_max_wait_ms(
            i32::try_from(state.broker_i64("replica.fetch.wait.max.ms")).unwrap_or(500),
        )
        .with_min_bytes(i32::try_from(state.broker_i64("replica.fetch.min.bytes")).unwrap_or(1))
        .with_max_bytes(
            i32::try_from(state.broker_i64("replica.fetch.response.max.bytes")).unwrap_or(i32::MAX),
        )
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, requested)
}

/// Applies one partition's part of a fetch response. Returns whether the
/// replica moved (data copied or a divergence cut).
async fn apply(partition: &Arc<Partition>, data: &PartitionData) -> Result<bool, StorageError> {
    match data.error_code {
        error::NONE => {}
        error::OFFSET_OUT_OF_RANGE => {
            // Behind the leader's log start (retention or DeleteRecords
            // there): start over from it. Ahead of its end: cut back to
            // its high watermark, which every ISR member has.
            let end = partition.log_end_offset();
            if data.log_start_offset > end {
                partition.reset_to(data.log_start_offset)?;
                return Ok(true);
            }
            if data.high_watermark >= 0 && data.high_watermark < end {
                partition.truncate_to(data.high_watermark)?;
                return Ok(true);
            }
            return Ok(false);
        }
        code => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, code, "the leader refused the partition's fetch; waiting for new metadata");
            return Ok(false);
        }
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        let target = divergence_point(partition, diverging.epoch, diverging.end_offset);
        partition.truncate_to(target)?;
        return Ok(true);
    }
    let records = data.records.as_ref().map(whole_batches).unwrap_or_default();
    let mut moved = false;
    if !records.is_empty() {
        let end = partition.append_as_follower(&records, now_ms())?;
        if partition.settings().sync_before_ack() {
            partition.make_durable(end).await?;
        }
        moved = true;
    }
    partition.follow_high_watermark(data.high_watermark);
    partition.follow_log_start(data.log_start_offset)?;
    Ok(moved)
}

/// Where a follower cuts its log when the leader says it diverged after
/// `epoch`, which ends at `leader_end` on the leader (Kafka's
/// `getOffsetTruncationState`): an epoch the leader does not know means
/// the follower's high watermark, which every ISR member has; otherwise
/// the end of the follower's own largest epoch at or below it, not past
/// the leader's end when it is the same epoch. The next fetch checks again.
fn divergence_point(partition: &Partition, epoch: i32, leader_end: i64) -> i64 {
    if epoch < 0 || leader_end < 0 {
        return partition.high_watermark();
    }
    match partition.end_offset_for_epoch(epoch) {
        Some((own_epoch, own_end)) if own_epoch == epoch => own_end.min(leader_end),
        Some((_, own_end)) => own_end,
        None => leader_end.min(partition.log_end_offset()),
    }
}
