//! Heartbeat (key 12): keeps a member's session alive and tells it when a
//! rebalance has started.

use super::ApiSupport;
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse, ResponseKind};
use sluice_protocol::error;
use std::time::Instant;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::Heartbeat, 0, 4);

pub(crate) fn handle(state: &BrokerState, request: HeartbeatRequest) -> ResponseKind {
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code));
    }
    let mut groups = state.groups.lock();
    let code = match groups.groups.get_mut(request.group_id.as_str()) {
        None => error::UNKNOWN_MEMBER_ID,
        Some(group) => group.heartbeat(
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
            Instant::now(),
        ),
    };
    ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
}
