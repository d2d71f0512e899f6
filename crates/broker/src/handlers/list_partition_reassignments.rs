//! ListPartitionReassignments (key 46, KIP-455): the reassignments in
//! progress (replicas, adding, removing), of every partition or of those
//! named; partitions without one, or unknown, are left out, as in Kafka.

use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    ResponseKind, TopicName,
};
use sluice_metadata::PartitionImage;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ListPartitionReassignments, 0, 0);

fn ongoing(index: i32, p: &PartitionImage) -> OngoingPartitionReassignment {
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect();
    OngoingPartitionReassignment::default()
        .with_partition_index(index)
        .with_replicas(ids(&p.replicas))
        .with_adding_replicas(ids(&p.adding))
        .with_removing_replicas(ids(&p.removing))
}

pub(crate) fn handle(
    state: &BrokerState,
    request: ListPartitionReassignmentsRequest,
) -> ResponseKind {
    let image = state.image();
    let asked: Vec<(String, Option<Vec<i32>>)> = match &request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.to_string(), Some(t.partition_indexes.clone())))
            .collect(),
        None => image.topics().map(|t| (t.name.clone(), None)).collect(),
    };
    let mut topics = Vec::new();
    for (name, indexes) in asked {
        let Some(topic) = image.topic(&name) else {
            continue;
        };
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let index = i32::try_from(i).ok()?;
                let wanted = indexes.as_ref().is_none_or(|asked| asked.contains(&index));
                (wanted && p.reassigning()).then(|| ongoing(index, p))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions),
            );
        }
    }
    ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default().with_topics(topics),
    )
}
