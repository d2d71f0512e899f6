//! OffsetCommit (key 8): store committed offsets in `__consumer_offsets`,
//! answering once the records are durable. Members are checked against the
//! group's generation (classic groups) or member epoch (consumer groups,
//! OffsetCommit v9+); a commit with generation -1 is a "simple" or admin
//! commit, allowed while the group has no members. A partition the cluster
//! does not have is refused with UNKNOWN_TOPIC_OR_PARTITION before the
//! group is asked, as Kafka does.

use super::{ApiSupport, Reply};
use crate::group::classic::GroupState;
use crate::group::{GroupCoordinator, RequestedCommit};
use crate::state::{now_ms, BrokerState};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use sluice_metadata::MetadataImage;
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::OffsetCommit, 2, 9);

/// Members of consumer groups commit with their member epoch, from v9.
const MEMBER_EPOCH_SINCE: i16 = 9;

fn check(state: &BrokerState, request: &OffsetCommitRequest, version: i16) -> ErrorCode {
    if request.group_id.is_empty() {
        return error::INVALID_GROUP_ID;
    }
    if let Some(code) = GroupCoordinator::coordinator_error(state, &request.group_id) {
        return code;
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
        // Kafka's group coordinator: a generation names a group that exists.
        None => error::GROUP_ID_NOT_FOUND,
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

/// Whether the cluster has this partition. Kafka checks its metadata cache
/// before the group coordinator sees a commit (OffsetCommit and
/// TxnOffsetCommit alike): an offset stored for a topic that does not exist
/// would be served by OffsetFetch, and inherited by any topic later created
/// under that name.
pub(crate) fn partition_exists(image: &MetadataImage, topic: &str, partition: i32) -> bool {
    image
        .topic(topic)
        .is_some_and(|t| usize::try_from(partition).is_ok_and(|index| index < t.partitions.len()))
}

pub(crate) fn handle(state: &BrokerState, request: OffsetCommitRequest, version: i16) -> Reply {
    let image = state.image();
    let exists = |topic: &str, partition: i32| partition_exists(&image, topic, partition);
    let any_exists = request.topics.iter().any(|t| {
        t.partitions
            .iter()
            .any(|p| exists(&t.name, p.partition_index))
    });
    // Like Kafka, a request naming only unknown partitions never reaches
    // the group: each partition is answered UNKNOWN_TOPIC_OR_PARTITION.
    let group_code = if any_exists {
        check(state, &request, version)
    } else {
        error::NONE
    };
    let max_metadata = state.broker_i64("offset.metadata.max.bytes").max(0) as usize;
    let now = now_ms();
    let mut response = OffsetCommitResponse::default();
    let mut commits = Vec::new();
    for topic in &request.topics {
        let mut topic_response = OffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for p in &topic.partitions {
            if !exists(&topic.name, p.partition_index) {
                topic_response.partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION),
                );
                continue;
            }
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

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::error;
    use std::sync::Arc;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// Commits offset 7 for each (topic, partition) as an admin (generation
    /// -1) and returns the error of each, in request order.
    async fn commit(
        state: &Arc<crate::state::BrokerState>,
        generation: i32,
        targets: &[(&str, i32)],
    ) -> Vec<i16> {
        let topics = targets
            .iter()
            .map(|(topic, partition)| {
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(*partition)
                            .with_committed_offset(7),
                    ])
            })
            .collect();
        let body = RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(topics),
        );
        let Some(ResponseKind::OffsetCommit(r)) = call(state, ApiKey::OffsetCommit, 9, body).await
        else {
            panic!("no OffsetCommit response")
        };
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    /// The committed offset OffsetFetch v8 reports for each target.
    async fn committed(
        state: &Arc<crate::state::BrokerState>,
        targets: &[(&str, i32)],
    ) -> Vec<i64> {
        let topics = targets
            .iter()
            .map(|(topic, partition)| {
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![*partition])
            })
            .collect();
        let body = RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(topics)),
        ]));
        let Some(ResponseKind::OffsetFetch(r)) = call(state, ApiKey::OffsetFetch, 8, body).await
        else {
            panic!("no OffsetFetch response")
        };
        r.groups[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
            .collect()
    }

    #[tokio::test]
    async fn commits_for_partitions_the_cluster_lacks_are_refused_and_not_stored() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 2).await;
        let targets = [("t", 1), ("t", 2), ("missing", 0), ("t", -1)];
        assert_eq!(
            commit(&state, -1, &targets).await,
            vec![
                error::NONE,
                error::UNKNOWN_TOPIC_OR_PARTITION,
                error::UNKNOWN_TOPIC_OR_PARTITION,
                error::UNKNOWN_TOPIC_OR_PARTITION,
            ]
        );
        assert_eq!(committed(&state, &targets).await, vec![7, -1, -1, -1]);
        // Only unknown partitions: the group is never asked, so a
        // generation it would refuse does not change the answer (Kafka).
        assert_eq!(
            commit(&state, 5, &[("missing", 0)]).await,
            vec![error::UNKNOWN_TOPIC_OR_PARTITION]
        );
        // A topic created later under that name starts without an offset.
        create_topic(&state, "missing", 1).await;
        assert_eq!(committed(&state, &[("missing", 0)]).await, vec![-1]);
    }

    #[tokio::test]
    async fn transactional_commits_for_unknown_partitions_are_refused() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        let partition = |index| {
            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(index)
                .with_committed_offset(3)
        };
        let body = RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(1))
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("missing")))
                        .with_partitions(vec![partition(0)]),
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![partition(1)]),
                ]),
        );
        // No transaction is open either: with only unknown partitions that
        // is never looked at, as in Kafka.
        let Some(ResponseKind::TxnOffsetCommit(r)) =
            call(&state, ApiKey::TxnOffsetCommit, 3, body).await
        else {
            panic!("no TxnOffsetCommit response")
        };
        let codes: Vec<i16> = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                error::UNKNOWN_TOPIC_OR_PARTITION,
                error::UNKNOWN_TOPIC_OR_PARTITION
            ]
        );
    }
}
