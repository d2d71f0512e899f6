//! TxnOffsetCommit (key 28): commits a group's offsets inside a producer's
//! transaction (consume-transform-produce). The records are written to
//! `__consumer_offsets` at once but take effect only when the transaction
//! commits; an abort discards them. From v5 (transactions v2, KIP-890
//! part 2) the request adds the group's `__consumer_offsets` partition to
//! the transaction itself, so no AddOffsetsToTxn precedes it. As with
//! OffsetCommit, a partition the cluster does not have is refused with
//! UNKNOWN_TOPIC_OR_PARTITION, and a request naming only such partitions
//! touches neither the transaction nor the group.

use super::offset_commit::partition_exists;
use super::{ApiSupport, Reply};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::group::{GroupCoordinator, RequestedCommit};
use crate::state::{now_ms, BrokerState};
use crate::txn::remote::verify_with_coordinator;
use crate::txn::{Durable, TransactionCoordinator, TxnStatus};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::TxnOffsetCommit, 0, 5);

/// From v5 the offsets partition is added implicitly (Kafka's
/// `addPartition` operation for TxnOffsetCommit).
const IMPLICIT_ADD_SINCE: i16 = 5;

/// The transaction must be open with the group's offsets partition added
/// (AddOffsetsToTxn, or implicitly from v5) by the current producer epoch.
/// Returns the error, and the transaction state write of an implicit add.
fn check_transaction(
    state: &BrokerState,
    request: &TxnOffsetCommitRequest,
    version: i16,
) -> (ErrorCode, Option<Durable>) {
    let count = state
        .image()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |t| t.partitions.len() as i32);
    let partition = partition_for(request.group_id.0.as_str(), count);
    let mut txns = state.txns.lock();
    if version >= IMPLICIT_ADD_SINCE {
        return match TransactionCoordinator::add_implicitly(
            state,
            &mut txns,
            request.transactional_id.0.as_str(),
            (request.producer_id.0, request.producer_epoch),
            (OFFSETS_TOPIC.to_string(), partition),
        ) {
            Ok(written) => (error::NONE, written),
            Err(e) => {
                tracing::debug!(code = e.code, message = %e.message, "implicit AddOffsetsToTxn refused");
                (e.code, None)
            }
        };
    }
    let Some(txn) = txns.get(request.transactional_id.0.as_str()) else {
        return (error::INVALID_PRODUCER_ID_MAPPING, None);
    };
    if let Err(e) = txn.check_producer(request.producer_id.0, request.producer_epoch) {
        return (e.code, None);
    }
    let added = txn
        .partitions
        .contains(&(OFFSETS_TOPIC.to_string(), partition));
    if txn.status != TxnStatus::Ongoing || !added {
        return (error::INVALID_TXN_STATE, None);
    }
    (error::NONE, None)
}

/// A member of a live group must be current; generation -1 without a
/// member id commits as a standalone producer.
fn check_member(state: &BrokerState, request: &TxnOffsetCommitRequest) -> ErrorCode {
    if request.group_id.is_empty() {
        return error::INVALID_GROUP_ID;
    }
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return code;
    }
    if request.generation_id < 0 && request.member_id.is_empty() {
        return error::NONE;
    }
    let groups = state.groups.lock();
    match groups.groups.get(request.group_id.as_str()) {
        None => error::NONE,
        Some(group) => group
            .check_member(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
            .err()
            .unwrap_or(error::NONE),
    }
}

/// [`check_transaction`] with the coordinator on another broker
/// (AddPartitionsToTxn v4 for the group's offsets partition: verify only,
/// or add it from v5). A coordinator that cannot answer now is
/// COORDINATOR_LOAD_IN_PROGRESS (retried here, not looked up again: this
/// broker still coordinates the group); TRANSACTION_ABORTABLE is
/// INVALID_TXN_STATE before v5, as the local check answers.
async fn check_remote_transaction(
    state: &BrokerState,
    request: &TxnOffsetCommitRequest,
    version: i16,
) -> ErrorCode {
    let count = state
        .image()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |t| t.partitions.len() as i32);
    let partition = (
        OFFSETS_TOPIC.to_string(),
        partition_for(request.group_id.0.as_str(), count),
    );
    let codes = verify_with_coordinator(
        state,
        request.transactional_id.0.as_str(),
        (request.producer_id.0, request.producer_epoch),
        std::slice::from_ref(&partition),
        version < IMPLICIT_ADD_SINCE,
    )
    .await;
    match codes
        .get(&partition)
        .copied()
        .unwrap_or(error::UNKNOWN_SERVER_ERROR)
    {
        error::COORDINATOR_NOT_AVAILABLE | error::NOT_COORDINATOR => {
            error::COORDINATOR_LOAD_IN_PROGRESS
        }
        error::TRANSACTION_ABORTABLE if version < IMPLICIT_ADD_SINCE => error::INVALID_TXN_STATE,
        code => code,
    }
}

/// Async only to ask a transaction coordinator on another broker.
pub(crate) async fn handle(
    state: &BrokerState,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> Reply {
    let image = state.image();
    let exists = |topic: &str, partition: i32| partition_exists(&image, topic, partition);
    let any_exists = request.topics.iter().any(|t| {
        t.partitions
            .iter()
            .any(|p| exists(&t.name, p.partition_index))
    });
    if any_exists && version >= IMPLICIT_ADD_SINCE {
        if let Err(e) = GroupCoordinator::ensure_offsets_topic(state) {
            tracing::warn!(error = %e.message, "no offsets topic");
        }
    }
    let remote = any_exists
        && TransactionCoordinator::coordinator_error(state, request.transactional_id.0.as_str())
            == Some(error::NOT_COORDINATOR);
    let (mut code, txn_write) = if remote {
        (
            check_remote_transaction(state, &request, version).await,
            None,
        )
    } else if any_exists {
        check_transaction(state, &request, version)
    } else {
        (error::NONE, None)
    };
    if code == error::NONE {
        code = check_member(state, &request);
    }
    let max_metadata = state.broker_i64("offset.metadata.max.bytes").max(0) as usize;
    let now = now_ms();
    let mut response = TxnOffsetCommitResponse::default();
    let mut commits = Vec::new();
    for topic in &request.topics {
        let mut topic_response =
            TxnOffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            if !exists(&topic.name, p.partition_index) {
                topic_response.partitions.push(
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION),
                );
                continue;
            }
            let partition_code = RequestedCommit {
                topic: topic.name.as_str(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_deref().unwrap_or_default(),
            }
            .accept(code, max_metadata, now, &mut commits);
            topic_response.partitions.push(
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(partition_code),
            );
        }
        response.topics.push(topic_response);
    }
    if commits.is_empty() {
        return match txn_write {
            None => Reply::Now(Box::new(ResponseKind::TxnOffsetCommit(response))),
            Some(durable) => Reply::Later(Box::pin(async move {
                if let Err(e) = durable.wait().await {
                    tracing::error!(error = %e, "transaction state not durable");
                }
                ResponseKind::TxnOffsetCommit(response)
            })),
        };
    }
    let written = {
        let mut groups = state.groups.lock();
        GroupCoordinator::write_txn_offsets(
            state,
            &mut groups,
            &request.group_id,
            (request.producer_id.0, request.producer_epoch),
            commits,
        )
    };
    let fail_all = |response: &mut TxnOffsetCommitResponse, code: ErrorCode| {
        for p in response
            .topics
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
        {
            if p.error_code == error::NONE {
                p.error_code = code;
            }
        }
    };
    match written {
        Err(e) => {
            tracing::warn!(group = %request.group_id.as_str(), error = %e.message, "transactional offset commit failed");
            fail_all(&mut response, error::COORDINATOR_NOT_AVAILABLE);
            Reply::Now(Box::new(ResponseKind::TxnOffsetCommit(response)))
        }
        Ok(appended) => Reply::Later(Box::pin(async move {
            if let Some(Err(e)) = match txn_write {
                Some(durable) => Some(durable.wait().await),
                None => None,
            } {
                tracing::error!(error = %e, "transaction state not durable");
                fail_all(&mut response, error::COORDINATOR_NOT_AVAILABLE);
            }
            if let Err(code) = appended.committed().await {
                fail_all(&mut response, code);
            }
            ResponseKind::TxnOffsetCommit(response)
        })),
    }
}
