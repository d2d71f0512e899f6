//! TxnOffsetCommit (key 28): commits a group's offsets inside a producer's
//! transaction (consume-transform-produce). The records are written to
//! `__consumer_offsets` at once but take effect only when the transaction
//! commits; an abort discards them.

use super::{ApiSupport, Reply};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::group::{GroupCoordinator, RequestedCommit};
use crate::state::{now_ms, BrokerState};
use crate::txn::TxnStatus;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use sluice_protocol::error::{self, ErrorCode};

/// v5 is transactions v2 (KIP-890 part 2), which Sluice does not enable.
pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::TxnOffsetCommit, 0, 4);

/// The transaction must be open with the group's offsets partition added
/// (AddOffsetsToTxn) by the current producer epoch.
fn check_transaction(state: &BrokerState, request: &TxnOffsetCommitRequest) -> ErrorCode {
    let txns = state.txns.lock();
    let Some(txn) = txns.get(request.transactional_id.0.as_str()) else {
        return error::INVALID_PRODUCER_ID_MAPPING;
    };
    if let Err(e) = txn.check_producer(request.producer_id.0, request.producer_epoch) {
        return e.code;
    }
    let count = state
        .image()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |t| t.partitions.len() as i32);
    let partition = partition_for(request.group_id.0.as_str(), count);
    let added = txn
        .partitions
        .contains(&(OFFSETS_TOPIC.to_string(), partition));
    if txn.status != TxnStatus::Ongoing || !added {
        return error::INVALID_TXN_STATE;
    }
    error::NONE
}

/// A member of a live group must be current; generation -1 without a
/// member id commits as a standalone producer.
fn check_member(state: &BrokerState, request: &TxnOffsetCommitRequest) -> ErrorCode {
    if request.group_id.is_empty() {
        return error::INVALID_GROUP_ID;
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

pub(crate) fn handle(state: &BrokerState, request: TxnOffsetCommitRequest) -> Reply {
    let mut code = check_transaction(state, &request);
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
        return Reply::Now(Box::new(ResponseKind::TxnOffsetCommit(response)));
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
        Ok((partition, end)) => Reply::Later(Box::pin(async move {
            if let Err(e) = partition.make_durable(end).await {
                tracing::error!(error = %e, "transactional offset commit not durable");
                fail_all(&mut response, error::COORDINATOR_NOT_AVAILABLE);
            }
            ResponseKind::TxnOffsetCommit(response)
        })),
    }
}
