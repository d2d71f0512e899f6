//! ConsumerGroupDescribe (key 69): epochs, assignor, and every member's
//! subscription, current and target assignment of KIP-848 consumer groups.

use super::{str_bytes, ApiSupport};
use crate::group::assignor::Partitions;
use crate::group::GroupCoordinator;
use crate::security::authorizer::{all_operations, resource, OPERATIONS_NOT_REQUESTED};
use crate::state::BrokerState;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ResponseKind, TopicName,
};
use sluice_metadata::MetadataImage;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ConsumerGroupDescribe, 0, 1);

/// `MemberType` of a member that speaks the consumer protocol (v1+).
const CONSUMER_MEMBER_TYPE: i8 = 1;

pub(crate) fn handle(state: &BrokerState, request: ConsumerGroupDescribeRequest) -> ResponseKind {
    let image = state.image();
    // Checked before the coordinator's lock: the check may create
    // `__consumer_offsets` and load it.
    let not_here: Vec<Option<ErrorCode>> = request
        .group_ids
        .iter()
        .map(|id| GroupCoordinator::coordinator_error(state, id))
        .collect();
    let groups = state.groups.lock();
    let include_operations = request.include_authorized_operations;
    let described = request
        .group_ids
        .into_iter()
        .zip(not_here)
        .map(|(id, not_here)| {
            let d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if let Some(code) = not_here {
                return d.with_error_code(code);
            }
            let Some(group) = groups.consumer_groups.get(id.as_str()) else {
                let message = if groups.groups.contains_key(id.as_str()) {
                    format!("Group {} is not a consumer group.", id.as_str())
                } else {
                    format!("Group {} not found.", id.as_str())
                };
                return d
                    .with_error_code(error::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str_bytes(message)));
            };
            let empty = Partitions::new();
            // KIP-430: every operation without an authorizer (which
            // narrows them to the caller's).
            let d = if include_operations {
                d.with_authorized_operations(all_operations(resource::GROUP))
            } else {
                d
            };
            d.with_group_state(str_bytes(group.state().name()))
                .with_group_epoch(group.group_epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(str_bytes(group.assignor.map_or("", |a| a.name())))
                .with_members(
                    group
                        .members
                        .values()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(m.id.clone()))
                                .with_instance_id(m.instance_id.clone().map(str_bytes))
                                .with_rack_id(m.rack_id.clone().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(m.client_id.clone()))
                                .with_client_host(str_bytes(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed_topics
                                        .iter()
                                        .map(|t| TopicName(str_bytes(t.clone())))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_regex
                                        .as_ref()
                                        .map(|r| str_bytes(r.pattern.clone())),
                                )
                                .with_assignment(assignment(&m.assigned, &image))
                                .with_target_assignment(assignment(
                                    group.target.get(&m.id).unwrap_or(&empty),
                                    &image,
                                ))
                                .with_member_type(CONSUMER_MEMBER_TYPE)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeResponse::default().with_groups(described),
    )
}

fn assignment(partitions: &Partitions, image: &MetadataImage) -> Assignment {
    let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(*topic).or_default().push(*partition);
    }
    Assignment::default().with_topic_partitions(
        by_topic
            .into_iter()
            .map(|(topic_id, partitions)| {
                let name = image
                    .topic_by_id(&topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
