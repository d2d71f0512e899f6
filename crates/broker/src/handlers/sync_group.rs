//! SyncGroup (key 14): the leader hands out assignments; every member gets
//! its own once the leader's arrive.

use super::{str_bytes, ApiSupport, Reply};
use crate::group::classic::{SyncRequest, SyncResult, Synced};
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, ResponseKind, SyncGroupRequest, SyncGroupResponse};
use sluice_protocol::error;
use std::time::Instant;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::SyncGroup, 0, 5);

fn response(result: SyncResult) -> ResponseKind {
    ResponseKind::SyncGroup(
        SyncGroupResponse::default()
            .with_error_code(result.error)
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol.map(str_bytes))
            .with_assignment(result.assignment),
    )
}

pub(crate) fn handle(state: &BrokerState, request: SyncGroupRequest) -> Reply {
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return Reply::Now(Box::new(response(SyncResult::error(code))));
    }
    let (synced, written) = {
        let mut groups = state.groups.lock();
        let synced = match groups.groups.get_mut(request.group_id.as_str()) {
            None => Synced::Now(SyncResult::error(error::UNKNOWN_MEMBER_ID)),
            Some(group) => group.sync(
                SyncRequest {
                    member_id: &request.member_id,
                    instance_id: request.group_instance_id.as_deref(),
                    generation: request.generation_id,
                    protocol_type: request.protocol_type.as_deref(),
                    protocol: request.protocol_name.as_deref(),
                    assignments: request
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect(),
                },
                Instant::now(),
            ),
        };
        // The leader's assignments complete the rebalance: the group's new
        // generation is recorded, and the leader is answered once it is
        // durable, as Kafka does.
        let written = GroupCoordinator::persist_group(state, &mut groups, &request.group_id);
        (synced, written)
    };
    let written = match written {
        Ok(written) => written,
        // Undone by persist_group: the leader syncs again.
        Err(_) => {
            return Reply::Now(Box::new(response(SyncResult::error(
                error::COORDINATOR_NOT_AVAILABLE,
            ))))
        }
    };
    Reply::Later(Box::pin(async move {
        let mut result = match synced {
            Synced::Now(result) => result,
            Synced::Later(rx) => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(error::UNKNOWN_MEMBER_ID)),
        };
        if let Err(code) = GroupCoordinator::until_durable(written).await {
            result = SyncResult::error(code);
        }
        response(result)
    }))
}
