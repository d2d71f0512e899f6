//! DescribeGroups (key 15): state, protocol and members of classic groups.
//! A consumer (KIP-848) group is GROUP_ID_NOT_FOUND here, as in Kafka: its
//! clients describe it with ConsumerGroupDescribe.

use super::{str_bytes, ApiSupport};
use crate::group::classic::GroupState;
use crate::group::GroupCoordinator;
use crate::security::authorizer::{all_operations, resource, OPERATIONS_NOT_REQUESTED};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, ResponseKind,
};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeGroups, 0, 6);

/// From v6 an unknown group is an error rather than a Dead group (KIP-1043).
const NOT_FOUND_SINCE: i16 = 6;

pub(crate) fn handle(
    state: &BrokerState,
    request: DescribeGroupsRequest,
    version: i16,
) -> ResponseKind {
    // Checked before the coordinator's lock: the check may create
    // `__consumer_offsets` and load it.
    let not_here: Vec<Option<ErrorCode>> = request
        .groups
        .iter()
        .map(|id| GroupCoordinator::coordinator_error(state, id))
        .collect();
    let groups = state.groups.lock();
    let include_operations = request.include_authorized_operations;
    let described = request
        .groups
        .into_iter()
        .zip(not_here)
        .map(|(id, not_here)| {
            let mut d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if let Some(code) = not_here {
                d.error_code = code;
                return d;
            }
            match groups.groups.get(id.as_str()) {
                Some(g) => {
                    let protocol = g.protocol.clone().unwrap_or_default();
                    d.group_state = str_bytes(g.state.name());
                    d.protocol_type = str_bytes(g.protocol_type.clone().unwrap_or_default());
                    d.protocol_data = str_bytes(protocol.clone());
                    let stable = g.state == GroupState::Stable;
                    d.members = g
                        .members
                        .values()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.id.clone()))
                                .with_group_instance_id(if version >= 4 {
                                    m.instance_id.clone().map(str_bytes)
                                } else {
                                    None
                                })
                                .with_client_id(str_bytes(m.client_id.clone()))
                                .with_client_host(str_bytes(m.client_host.clone()))
                                .with_member_metadata(m.metadata(&protocol))
                                .with_member_assignment(if stable {
                                    m.assignment.clone()
                                } else {
                                    Default::default()
                                })
                        })
                        .collect();
                }
                // As Kafka: KIP-848 groups are described by
                // ConsumerGroupDescribe; this API knows classic groups only.
                None if groups.consumer_groups.contains_key(id.as_str()) => {
                    d.group_state = str_bytes(GroupState::Dead.name());
                    d.error_code = error::GROUP_ID_NOT_FOUND;
                    d.error_message = Some(str_bytes(format!(
                        "Group {} is not a classic group.",
                        id.as_str()
                    )));
                }
                None if groups.offsets.get(id.as_str()).is_some() => {
                    d.group_state = str_bytes(GroupState::Empty.name());
                }
                None => {
                    d.group_state = str_bytes(GroupState::Dead.name());
                    if version >= NOT_FOUND_SINCE {
                        d.error_code = error::GROUP_ID_NOT_FOUND;
                        d.error_message =
                            Some(str_bytes(format!("Group {} not found.", id.as_str())));
                    }
                }
            }
            // KIP-430: every operation without an authorizer (which
            // narrows them to the caller's), for groups described at all.
            if include_operations && d.error_code == error::NONE {
                d.authorized_operations = all_operations(resource::GROUP);
            }
            d
        })
        .collect();
    ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(described))
}
