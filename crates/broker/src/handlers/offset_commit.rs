//! OffsetCommit (key 8): store committed offsets in `__consumer_offsets`,
//! answering once the records are durable. Members are checked against the
//! group's generation (classic groups) or member epoch (consumer groups,
//! OffsetCommit v9+); a commit with generation -1 is a "simple" or admin
//! commit, allowed while the group has no members.

use super::{ApiSupport, Reply};
use crate::group::classic::GroupState;
use crate::group::{GroupCoordinator, RequestedCommit};
use crate::state::{now_ms, BrokerState};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::OffsetCommit, 2, 9);

/// Members of consumer groups commit with their member epoch, from v9.
const MEMBER_EPOCH_SINCE: i16 = 9;

fn check(state: &BrokerState, request: &OffsetCommitRequest, version: i16) -> ErrorCode {
    if request.group_id.is_empty() {
        return error::INVALID_GROUP_ID;
    }
    let groups = state.groups.lock();
    let generation = request.generation_id_or_member_epoch;
    if let Some(group) = groups.consumer_groups.get(request.group_id.as_str()) {
        return if generation < 0 && group.is_empty() {
            error::NONE
        } else if !group.members.contains_key(request.member_id.as_str()) {
            error::UNKNOWN_MEMBER_ID
        } else if version < MEMBER_EPOCH_SINCE {
            error::UNSUPPORTED_VERSION
        } else {
            group.check_offset_member(&request.member_id, generation)
        };
    }
    match groups.groups.get(request.group_id.as_str()) {
        None if generation < 0 => error::NONE,
        None => error::ILLEGAL_GENERATION,
        Some(group) if group.is_empty() && generation < 0 => error::NONE,
        Some(group) => match group.check_member(
            &request.member_id,
            request.group_instance_id.as_deref(),
            generation,
        ) {
            Err(code) => code,
            Ok(()) if group.state == GroupState::CompletingRebalance => {
                error::REBALANCE_IN_PROGRESS
            }
            Ok(()) => error::NONE,
        },
    }
}

pub(crate) fn handle(state: &BrokerState, request: OffsetCommitRequest, version: i16) -> Reply {
    let group_code = check(state, &request, version);
    let max_metadata = state.broker_i64("offset.metadata.max.bytes").max(0) as usize;
    let now = now_ms();
    let mut response = OffsetCommitResponse::default();
    let mut commits = Vec::new();
    for topic in &request.topics {
        let mut topic_response = OffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            let code = RequestedCommit {
                topic: topic.name.as_str(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_deref().unwrap_or_default(),
            }
            .accept(group_code, max_metadata, now, &mut commits);
            topic_response.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        response.topics.push(topic_response);
    }
    if commits.is_empty() {
        return Reply::Now(Box::new(ResponseKind::OffsetCommit(response)));
    }
    let written = GroupCoordinator::write_offsets(state, &request.group_id, commits);
    let fail_all = |response: &mut OffsetCommitResponse, code: ErrorCode| {
        for t in &mut response.topics {
            for p in &mut t.partitions {
                if p.error_code == error::NONE {
                    p.error_code = code;
                }
            }
        }
    };
    match written {
        Err(e) => {
            tracing::warn!(group = %request.group_id.as_str(), error = %e.message, "offset commit failed");
            fail_all(
                &mut response,
                if e.code == error::KAFKA_STORAGE_ERROR {
                    error::COORDINATOR_NOT_AVAILABLE
                } else {
                    e.code
                },
            );
            Reply::Now(Box::new(ResponseKind::OffsetCommit(response)))
        }
        Ok(pending) => Reply::Later(Box::pin(async move {
            if let Err(e) = pending.durable_then_apply().await {
                tracing::error!(error = %e, "offset commit not durable");
                fail_all(&mut response, error::COORDINATOR_NOT_AVAILABLE);
            }
            ResponseKind::OffsetCommit(response)
        })),
    }
}
