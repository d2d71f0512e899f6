//! Transactions across brokers: what a transaction coordinator and a
//! partition leader that are different brokers ask each other, as Kafka's
//! do. The coordinator sends WriteTxnMarkers to the leader of each of a
//! transaction's partitions it does not lead itself (following leadership
//! until every marker is written); a partition leader asks the coordinator
//! with AddPartitionsToTxn (v4, one transaction) whether a transactional
//! produce belongs to the ongoing transaction (KIP-890 part 1), or adds the
//! partition to it (Produce v12+, part 2).

use super::{write_markers, TRANSACTION_STATE_TOPIC};
use crate::controller::ApiError;
use crate::group::offsets::partition_for;
use crate::locks::MutexExt;
use crate::replication::peer::Peer;
use crate::state::BrokerState;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, ProducerId, RequestKind, ResponseKind, TopicName,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::control::Marker;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// WriteTxnMarkers v1: the only version Kafka 4 sends.
const MARKERS_VERSION: i16 = 1;
/// AddPartitionsToTxn v4: the broker-to-broker form, a batch of
/// transactions each with `verify_only`.
const VERIFY_VERSION: i16 = 4;

/// Idle connections to other brokers, by node id, reused by the next
/// call so verifying every transactional produce does not open a
/// connection each time.
#[derive(Default)]
pub(crate) struct Peers(Mutex<HashMap<i32, Vec<Peer>>>);

/// Idle connections kept per broker.
const IDLE_PER_BROKER: usize = 4;

/// Sends `body` to broker `node`'s client listener and waits for the
/// answer, on an idle connection if there is one. A connection that
/// failed is dropped.
async fn call(
    state: &BrokerState,
    node: i32,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> std::io::Result<ResponseKind> {
    let idle = state
        .txns
        .peers
        .0
        .locked("transaction peers")
        .get_mut(&node)
        .and_then(Vec::pop);
    let reused = match idle {
        Some(mut peer) => match peer.call(api, version, body.clone(), REQUEST_TIMEOUT).await {
            Ok(answer) => Some((peer, answer)),
            // The broker may have restarted since: once more, afresh.
            Err(_) => None,
        },
        None => None,
    };
    let (peer, answer) = match reused {
        Some(done) => done,
        None => {
            let mut peer = connect(state, node).await?;
            let answer = peer.call(api, version, body, REQUEST_TIMEOUT).await?;
            (peer, answer)
        }
    };
    let mut peers = state.txns.peers.0.locked("transaction peers");
    let idle = peers.entry(node).or_default();
    if idle.len() < IDLE_PER_BROKER {
        idle.push(peer);
    }
    Ok(answer)
}

async fn connect(state: &BrokerState, node: i32) -> std::io::Result<Peer> {
    let image = state.image();
    let broker = image
        .brokers
        .get(&node)
        .filter(|b| !b.fenced)
        .and_then(|b| state.described(node, b, &state.inter_broker_listener))
        .ok_or_else(|| std::io::Error::other(format!("broker {node} is not live")))?;
    let port = u16::try_from(broker.port).map_err(std::io::Error::other)?;
    Peer::connect(
        (&broker.host, port),
        &state.inter_broker,
        CONNECT_TIMEOUT,
        format!("sluice-txn-{}", state.node_id),
    )
    .await
}

/// Writes `marker` for the producer to `partitions` that other brokers
/// lead: WriteTxnMarkers to each leader, again to the new leader after a
/// move, until every marker is written (a deleted topic needs none) or
/// this broker stops coordinating the transactional id (its successor
/// finishes the prepared transaction).
pub(crate) async fn write_remote_markers(
    state: Arc<BrokerState>,
    transactional_id: String,
    (producer_id, producer_epoch): (i64, i16),
    coordinator_epoch: i32,
    marker: Marker,
    mut pending: Vec<(String, i32)>,
) -> Result<(), ApiError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        pending.retain(|(topic, index)| state.partition_leader(topic, *index).is_some());
        if pending.is_empty() {
            return Ok(());
        }
        if super::TransactionCoordinator::coordinator_error(&state, &transactional_id).is_some() {
            return Err(ApiError::new(
                error::NOT_COORDINATOR,
                "this broker stopped coordinating the transaction while its markers were written",
            ));
        }
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, index) in &pending {
            let leader = state.partition_leader(topic, *index).unwrap_or(-1);
            by_leader
                .entry(leader)
                .or_default()
                .push((topic.clone(), *index));
        }
        let mut still = Vec::new();
        for (leader, partitions) in by_leader {
            if leader == state.node_id {
                // Leadership came here meanwhile.
                let (durable, failed) = write_markers(
                    &state,
                    (producer_id, producer_epoch),
                    coordinator_epoch,
                    marker,
                    partitions.iter().map(|(t, p)| (t.as_str(), *p)),
                );
                let written = durable.wait().await;
                if written.is_err() || !failed.is_empty() {
                    still.extend(partitions);
                }
                continue;
            }
            if leader < 0 {
                still.extend(partitions);
                continue;
            }
            match send_markers(
                &state,
                leader,
                (producer_id, producer_epoch, coordinator_epoch),
                marker,
                &partitions,
            )
            .await
            {
                Ok(failed) => still.extend(failed),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot send transaction markers; retrying");
                    still.extend(partitions);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// One WriteTxnMarkers to `leader`; returns the partitions it did not write.
async fn send_markers(
    state: &BrokerState,
    leader: i32,
    (producer_id, producer_epoch, coordinator_epoch): (i64, i16, i32),
    marker: Marker,
    partitions: &[(String, i32)],
) -> std::io::Result<Vec<(String, i32)>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        topics.entry(topic).or_default().push(*index);
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(marker == Marker::Commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, indexes)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partition_indexes(indexes)
                    })
                    .collect(),
            )]);
    let answer = call(
        state,
        leader,
        ApiKey::WriteTxnMarkers,
        MARKERS_VERSION,
        RequestKind::WriteTxnMarkers(request),
    )
    .await?;
    let ResponseKind::WriteTxnMarkers(response) = answer else {
        return Err(std::io::Error::other("not a WriteTxnMarkers response"));
    };
    let mut written = Vec::new();
    for result in &response.markers {
        for topic in &result.topics {
            for p in &topic.partitions {
                if p.error_code == error::NONE {
                    written.push((topic.name.0.to_string(), p.partition_index));
                } else {
                    tracing::debug!(leader, topic = %topic.name.0.as_str(), partition = p.partition_index, error = error::name(p.error_code), "transaction marker not written; retrying");
                }
            }
        }
    }
    Ok(partitions
        .iter()
        .filter(|p| !written.contains(p))
        .cloned()
        .collect())
}

/// The broker that coordinates `transactional_id`: the leader of its
/// `__transaction_state` partition.
pub(crate) fn coordinator_of(state: &BrokerState, transactional_id: &str) -> Option<i32> {
    let count = state
        .image()
        .topic(TRANSACTION_STATE_TOPIC)
        .map_or(0, |t| t.partitions.len() as i32);
    if count == 0 {
        return None;
    }
    state
        .partition_leader(
            TRANSACTION_STATE_TOPIC,
            partition_for(transactional_id, count),
        )
        .filter(|leader| *leader >= 0)
}

/// Asks the coordinator of `transactional_id` (another broker) whether
/// `partitions` are in the producer's ongoing transaction, or, unless
/// `verify_only`, to add them. Returns each partition's error as the
/// coordinator answered it; an unreachable coordinator is
/// COORDINATOR_NOT_AVAILABLE for all.
pub(crate) async fn verify_with_coordinator(
    state: &BrokerState,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: &[(String, i32)],
    verify_only: bool,
) -> HashMap<(String, i32), ErrorCode> {
    let all = |code| partitions.iter().map(|p| (p.clone(), code)).collect();
    let Some(coordinator) = coordinator_of(state, transactional_id) else {
        return all(error::COORDINATOR_NOT_AVAILABLE);
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        topics.entry(topic).or_default().push(*index);
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(verify_only)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, indexes)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(indexes)
                    })
                    .collect(),
            ),
    ]);
    let answer = call(
        state,
        coordinator,
        ApiKey::AddPartitionsToTxn,
        VERIFY_VERSION,
        RequestKind::AddPartitionsToTxn(request),
    )
    .await;
    let response = match answer {
        Ok(ResponseKind::AddPartitionsToTxn(response)) => response,
        Ok(_) => return all(error::COORDINATOR_NOT_AVAILABLE),
        Err(e) => {
            tracing::debug!(coordinator, error = %e, "cannot reach the transaction coordinator");
            return all(error::COORDINATOR_NOT_AVAILABLE);
        }
    };
    if response.error_code != error::NONE {
        return all(response.error_code);
    }
    let mut codes: HashMap<(String, i32), ErrorCode> = partitions
        .iter()
        .map(|p| (p.clone(), error::UNKNOWN_SERVER_ERROR))
        .collect();
    for result in response.results_by_transaction {
        for topic in result.topic_results {
            for p in topic.results_by_partition {
                codes.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    p.partition_error_code,
                );
            }
        }
    }
    codes
}
