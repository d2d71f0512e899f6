//! LeaveGroup (key 13): members leave at once instead of timing out;
//! batched by member identity from v3 (KIP-345).

use super::{ApiSupport, Reply};
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse, ResponseKind};
use sluice_protocol::error;
use std::time::Instant;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::LeaveGroup, 0, 5);

const BATCHED_SINCE: i16 = 3;

pub(crate) fn handle(state: &BrokerState, request: LeaveGroupRequest, version: i16) -> Reply {
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return Reply::Now(Box::new(ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(code),
        )));
    }
    let mut groups = state.groups.lock();
    let now = Instant::now();
    let Some(group) = groups.groups.get_mut(request.group_id.as_str()) else {
        return Reply::Now(Box::new(ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(error::UNKNOWN_MEMBER_ID),
        )));
    };
    let response = if version < BATCHED_SINCE {
        let code = group.leave(&request.member_id, None, now);
        LeaveGroupResponse::default().with_error_code(code)
    } else {
        let members = request
            .members
            .iter()
            .map(|m| {
                let code = group.leave(&m.member_id, m.group_instance_id.as_deref(), now);
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(code)
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    };
    // A leave is answered once it is durable (the last member leaving
    // empties the group); if it cannot be written it is undone.
    let written = GroupCoordinator::persist_group(state, &mut groups, &request.group_id);
    drop(groups);
    let failed =
        |code| ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code));
    match written {
        Err(_) => Reply::Now(Box::new(failed(error::COORDINATOR_NOT_AVAILABLE))),
        Ok(written) => Reply::Later(Box::pin(async move {
            match GroupCoordinator::until_durable(written).await {
                Ok(()) => ResponseKind::LeaveGroup(response),
                Err(code) => failed(code),
            }
        })),
    }
}
