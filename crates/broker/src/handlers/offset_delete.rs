//! OffsetDelete (key 47): delete a group's committed offsets for topics the
//! group is not consuming (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use super::{ApiSupport, Reply};
use crate::group::{subscribed_topics, GroupCoordinator, OffsetCommit};
use crate::state::BrokerState;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use sluice_protocol::error;
use std::collections::HashSet;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::OffsetDelete, 0, 0);

pub(crate) fn handle(state: &BrokerState, request: OffsetDeleteRequest) -> Reply {
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return Reply::Now(Box::new(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(code),
        )));
    }
    let groups = state.groups.lock();
    let group_id = request.group_id.to_string();
    let known = groups.groups.contains_key(&group_id) || groups.offsets.get(&group_id).is_some();
    if !known {
        return Reply::Now(Box::new(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(error::GROUP_ID_NOT_FOUND),
        )));
    }
    // Topics the members subscribe to keep their offsets. Members whose
    // metadata is not in the consumer format protect every topic.
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut opaque = false;
    if let Some(group) = groups.groups.get(&group_id) {
        let protocol = group.protocol.clone().unwrap_or_default();
        for member in group.members.values() {
            match (
                group.protocol_type.as_deref(),
                subscribed_topics(&member.metadata(&protocol)),
            ) {
                (Some("consumer"), Some(topics)) => subscribed.extend(topics),
                _ => opaque = true,
            }
        }
    }
    let mut response = OffsetDeleteResponse::default();
    let mut tombstones = Vec::new();
    let image = state.image();
    for topic in &request.topics {
        let protected = opaque || subscribed.contains(topic.name.as_str());
        let known_topic = image.topic(topic.name.as_str());
        let mut t = OffsetDeleteResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            let exists = known_topic.is_some_and(|k| {
                usize::try_from(p.partition_index).is_ok_and(|i| i < k.partitions.len())
            });
            let code = if !exists {
                error::UNKNOWN_TOPIC_OR_PARTITION
            } else if protected {
                error::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                tombstones.push(OffsetCommit {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    value: None,
                });
                error::NONE
            };
            t.partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        response.topics.push(t);
    }
    if tombstones.is_empty() {
        return Reply::Now(Box::new(ResponseKind::OffsetDelete(response)));
    }
    drop(groups);
    match GroupCoordinator::write_offsets(state, &group_id, tombstones) {
        Err(e) => Reply::Now(Box::new(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(e.code),
        ))),
        Ok(pending) => Reply::Later(Box::pin(async move {
            if pending.durable_then_apply().await.is_err() {
                response.error_code = error::COORDINATOR_NOT_AVAILABLE;
            }
            ResponseKind::OffsetDelete(response)
        })),
    }
}
