//! ListGroups (key 16): every group this coordinator knows, classic and
//! consumer (KIP-848), with state and type filters (v4+/v5+).

use super::{str_bytes, ApiSupport};
use crate::group::classic::GroupState;
use crate::state::BrokerState;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind,
};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ListGroups, 0, 5);

const CLASSIC: &str = "classic";
/// KIP-848 groups' type; their protocol type is "consumer" too.
const CONSUMER: &str = "consumer";

pub(crate) fn handle(state: &BrokerState, request: ListGroupsRequest) -> ResponseKind {
    let groups = state.groups.lock();
    let listed = groups
        .all_ids()
        .into_iter()
        .filter_map(|id| {
            let (state_name, protocol_type, group_type) =
                match (groups.groups.get(&id), groups.consumer_groups.get(&id)) {
                    (Some(g), _) => (
                        g.state.name(),
                        g.protocol_type.clone().unwrap_or_default(),
                        CLASSIC,
                    ),
                    (None, Some(g)) => (g.state().name(), CONSUMER.to_string(), CONSUMER),
                    (None, None) => (GroupState::Empty.name(), String::new(), CLASSIC),
                };
            let state_ok = request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(state_name));
            let type_ok = request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(group_type));
            (state_ok && type_ok).then(|| {
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_protocol_type(str_bytes(protocol_type))
                    .with_group_state(str_bytes(state_name))
                    .with_group_type(str_bytes(group_type))
            })
        })
        .collect();
    ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(listed))
}
