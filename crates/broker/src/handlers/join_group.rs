//! JoinGroup (key 11): enter a classic group; the answer comes when the
//! rebalance completes.

use super::{str_bytes, ApiSupport, Reply};
use crate::group::classic::{Group, JoinRequest, JoinResult, Joined};
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse, ResponseKind};
use sluice_protocol::error;
use std::time::{Duration, Instant};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::JoinGroup, 0, 9);

/// From v4 a new member must rejoin with the id it is given (KIP-394).
const MEMBER_ID_REQUIRED_SINCE: i16 = 4;

fn response(result: JoinResult) -> ResponseKind {
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(result.error)
            .with_generation_id(result.generation)
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol.map(str_bytes))
            .with_leader(str_bytes(result.leader))
            .with_member_id(str_bytes(result.member_id))
            .with_members(
                result
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(id))
                            .with_group_instance_id(instance.map(str_bytes))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
    )
}

pub(crate) fn handle(
    state: &BrokerState,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> Reply {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return Reply::Now(Box::new(response(JoinResult::error(
            error::INVALID_GROUP_ID,
            &request.member_id,
        ))));
    }
    if let Some(code) = GroupCoordinator::coordinator_error(state, &group_id) {
        return Reply::Now(Box::new(response(JoinResult::error(
            code,
            &request.member_id,
        ))));
    }
    let limits = GroupCoordinator::limits(state);
    // v0 has no rebalance timeout: it equals the session timeout.
    let rebalance_timeout = if version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_timeout.max(0) as u64),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= MEMBER_ID_REQUIRED_SINCE,
    };
    let (joined, written) = {
        let mut groups = state.groups.lock();
        match groups.consumer_groups.get(&group_id) {
            Some(group) if !group.is_empty() => {
                // A classic member cannot join a group of the consumer
                // protocol (Kafka answers the same without online migration).
                return Reply::Now(Box::new(response(JoinResult::error(
                    error::INCONSISTENT_GROUP_PROTOCOL,
                    &request.member_id,
                ))));
            }
            Some(_) => {
                // An empty consumer group becomes a classic group.
                groups.consumer_groups.remove(&group_id);
            }
            None => {}
        }
        let joined = groups
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id))
            .join(join, &limits, Instant::now());
        // A join can replace a static member in place, end a join phase with
        // nobody left, or turn an empty consumer group into a classic one:
        // the answer waits until that is durable.
        let written = GroupCoordinator::persist_group(state, &mut groups, &group_id);
        (joined, written)
    };
    let member_id = request.member_id.to_string();
    let written = match written {
        Ok(written) => written,
        Err(_) => {
            return Reply::Now(Box::new(response(JoinResult::error(
                error::COORDINATOR_NOT_AVAILABLE,
                &member_id,
            ))))
        }
    };
    Reply::Later(Box::pin(async move {
        let result = match joined {
            Joined::Now(result) => result,
            // A dropped sender means the member was removed meanwhile.
            Joined::Later(rx) => rx
                .await
                .unwrap_or_else(|_| JoinResult::error(error::UNKNOWN_MEMBER_ID, &member_id)),
        };
        match GroupCoordinator::until_durable(written).await {
            Ok(()) => response(result),
            Err(code) => response(JoinResult::error(code, &member_id)),
        }
    }))
}
