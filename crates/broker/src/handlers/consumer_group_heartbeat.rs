//! ConsumerGroupHeartbeat (key 68): the KIP-848 consumer group protocol.
//! One request joins, heartbeats, reports owned partitions and leaves; the
//! answer carries the member's epoch and, when it changed, its assignment.

use super::{str_bytes, ApiSupport, Reply};
use crate::group::assignor::Partitions;
use crate::group::consumer::{ConsumerGroup, Heartbeat, Refusal, STATIC_LEAVE_EPOCH};
use crate::group::{GroupCoordinator, Groups};
use crate::state::BrokerState;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ResponseKind,
};
use sluice_protocol::error;
use std::collections::BTreeMap;
use std::time::Instant;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ConsumerGroupHeartbeat, 0, 1);

/// From v1 the client generates its member id (KIP-1082); v0 lets the
/// broker do it.
const CLIENT_MEMBER_ID_SINCE: i16 = 1;

fn refused((code, message): Refusal) -> ResponseKind {
    ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message))),
    )
}

fn invalid(message: &str) -> Refusal {
    (error::INVALID_REQUEST, message.to_string())
}

/// Kafka's checks of the request's shape, before any state is touched.
fn check_request(request: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), Refusal> {
    let epoch = request.member_epoch;
    if request.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if request.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return Err(invalid("InstanceId can't be empty."));
    }
    if request.member_id.is_empty() && (version >= CLIENT_MEMBER_ID_SINCE || epoch != 0) {
        return Err(invalid("MemberId can't be empty."));
    }
    if epoch < STATIC_LEAVE_EPOCH {
        return Err(invalid("MemberEpoch is invalid."));
    }
    if epoch == STATIC_LEAVE_EPOCH && request.instance_id.is_none() {
        return Err(invalid(
            "InstanceId can't be null when leaving temporarily.",
        ));
    }
    if epoch == 0 {
        if request.rebalance_timeout_ms == -1 {
            return Err(invalid(
                "RebalanceTimeoutMs must be provided in first request.",
            ));
        }
        if request
            .topic_partitions
            .as_ref()
            .is_none_or(|t| !t.is_empty())
        {
            return Err(invalid("TopicPartitions must be empty when (re-)joining."));
        }
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return Err(invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            ));
        }
    }
    Ok(())
}

/// Handles the heartbeat; when it changed the group, the answer waits until
/// the group's records are durable in `__consumer_offsets`, as in Kafka.
pub(crate) fn handle(
    state: &BrokerState,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> Reply {
    let group_id = request.group_id.to_string();
    if !group_id.is_empty() {
        if let Some(code) = GroupCoordinator::coordinator_error(state, &group_id) {
            let why = format!("this broker does not coordinate group {group_id} now");
            return Reply::Now(Box::new(refused((code, why))));
        }
    }
    let mut groups = state.groups.lock();
    let response = heartbeat(state, &mut groups, request, version, client_id, client_host);
    let written = match GroupCoordinator::persist_group(state, &mut groups, &group_id) {
        Ok(written) => written,
        // Undone by persist_group: the member heartbeats again.
        Err(e) => {
            return Reply::Now(Box::new(refused((
                error::COORDINATOR_NOT_AVAILABLE,
                e.message,
            ))))
        }
    };
    drop(groups);
    match written {
        None => Reply::Now(Box::new(response)),
        Some(appended) => Reply::Later(Box::pin(async move {
            if let Err(code) = appended.committed().await {
                return refused((code, "the group's change was not committed".to_string()));
            }
            response
        })),
    }
}

fn heartbeat(
    state: &BrokerState,
    groups: &mut Groups,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ResponseKind {
    if let Err(refusal) = check_request(&request, version) {
        return refused(refusal);
    }
    let config = GroupCoordinator::consumer_config(state);
    let image = state.image();
    let group_id = request.group_id.to_string();
    let member_id = if request.member_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        request.member_id.to_string()
    };
    let heartbeat = Heartbeat {
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.to_string()).collect()),
        subscribed_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: request
            .server_assignor
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty()),
        owned: request.topic_partitions.map(|topics| {
            topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
                .collect()
        }),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
    };
    match groups.groups.get(&group_id) {
        Some(classic) if !classic.is_empty() => {
            return refused((
                error::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a consumer group."),
            ))
        }
        Some(_) => {
            // An empty classic group becomes a consumer group.
            groups.groups.remove(&group_id);
        }
        None => {}
    }
    let leaving = request.member_epoch < 0;
    let group = groups
        .consumer_groups
        .entry(group_id.clone())
        .or_insert_with(|| ConsumerGroup::new(&group_id));
    let answer = match group.heartbeat(heartbeat, &config, image.as_ref(), Instant::now()) {
        Ok(answer) => answer,
        Err(refusal) => return refused(refusal),
    };
    let interval_ms = if leaving {
        0
    } else {
        config.heartbeat_interval.as_millis().min(i32::MAX as u128) as i32
    };
    ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(interval_ms)
            .with_assignment(answer.assignment.map(|a| assignment(&a))),
    )
}

fn assignment(partitions: &Partitions) -> Assignment {
    let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(*topic).or_default().push(*partition);
    }
    Assignment::default().with_topic_partitions(
        by_topic
            .into_iter()
            .map(|(topic_id, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::error;
    use std::sync::Arc;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    async fn heartbeat(
        state: &Arc<crate::state::BrokerState>,
        request: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let body = RequestKind::ConsumerGroupHeartbeat(request.with_group_id(GroupId(s("cg"))));
        match call(state, ApiKey::ConsumerGroupHeartbeat, 1, body).await {
            Some(ResponseKind::ConsumerGroupHeartbeat(r)) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(vec![]))
    }

    fn beat(member: &str, epoch: i32, owned: &[TopicPartitions]) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_topic_partitions(Some(owned.to_vec()))
    }

    /// The assignment as the request's owned-partitions field.
    fn owned(r: &ConsumerGroupHeartbeatResponse) -> Vec<TopicPartitions> {
        r.assignment
            .iter()
            .flat_map(|a| &a.topic_partitions)
            .map(|t| {
                TopicPartitions::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(t.partitions.clone())
            })
            .collect()
    }

    fn count(tps: &[TopicPartitions]) -> usize {
        tps.iter().map(|t| t.partitions.len()).sum()
    }

    #[tokio::test]
    async fn two_members_converge_and_commit_with_their_epoch() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 4).await;
        let a = heartbeat(&state, join("a")).await;
        assert_eq!((a.error_code, a.member_epoch), (0, 1));
        assert_eq!(a.heartbeat_interval_ms, 5000);
        let a_owned = owned(&a);
        assert_eq!(count(&a_owned), 4);

        let b = heartbeat(&state, join("b")).await;
        assert_eq!((b.error_code, b.member_epoch), (0, 2));
        assert_eq!(count(&owned(&b)), 0, "a still owns everything");
        let a = heartbeat(&state, beat("a", 1, &a_owned)).await;
        assert_eq!(a.member_epoch, 1, "a revokes first, at its old epoch");
        let a_owned = owned(&a);
        assert_eq!(count(&a_owned), 2);
        let a = heartbeat(&state, beat("a", 1, &a_owned)).await;
        assert_eq!((a.member_epoch, a.assignment.is_none()), (2, true));
        let b = heartbeat(&state, beat("b", 2, &[])).await;
        assert_eq!(count(&owned(&b)), 2);

        // OffsetCommit v9 carries the member epoch.
        let commit = |member: &str, epoch: i32, version: i16| {
            let body = RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("cg")))
                    .with_member_id(s(member))
                    .with_generation_id_or_member_epoch(epoch)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(5),
                            ]),
                    ]),
            );
            let state = state.clone();
            async move {
                match call(&state, ApiKey::OffsetCommit, version, body).await {
                    Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        assert_eq!(commit("a", 2, 9).await, error::NONE);
        assert_eq!(commit("a", 1, 9).await, error::STALE_MEMBER_EPOCH);
        assert_eq!(commit("a", 2, 8).await, error::UNSUPPORTED_VERSION);
        assert_eq!(commit("zz", 2, 9).await, error::UNKNOWN_MEMBER_ID);
        assert_eq!(commit("", -1, 9).await, error::UNKNOWN_MEMBER_ID);

        // ConsumerGroupDescribe and ListGroups see the group.
        let body = RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("cg"))]),
        );
        let Some(ResponseKind::ConsumerGroupDescribe(d)) =
            call(&state, ApiKey::ConsumerGroupDescribe, 1, body).await
        else {
            panic!()
        };
        let g = &d.groups[0];
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
        assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
        assert_eq!(g.assignor_name.as_str(), "uniform");
        assert_eq!(g.members.len(), 2);
        assert_eq!(
            g.members[0].assignment.topic_partitions[0]
                .topic_name
                .as_str(),
            "t"
        );
        let body = RequestKind::ListGroups(
            ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        );
        let Some(ResponseKind::ListGroups(l)) = call(&state, ApiKey::ListGroups, 5, body).await
        else {
            panic!()
        };
        assert_eq!(l.groups.len(), 1);
        assert_eq!(l.groups[0].group_type.as_str(), "consumer");

        // DescribeGroups knows classic groups only, as in Kafka 4.
        let body = RequestKind::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("cg"))]),
        );
        let Some(ResponseKind::DescribeGroups(d)) =
            call(&state, ApiKey::DescribeGroups, 5, body).await
        else {
            panic!()
        };
        let g = &d.groups[0];
        assert_eq!(
            (g.error_code, g.group_state.as_str()),
            (error::GROUP_ID_NOT_FOUND, "Dead")
        );

        // Non-empty: DeleteGroups refuses; after both leave it works.
        let delete = || {
            let state = state.clone();
            async move {
                let body = RequestKind::DeleteGroups(
                    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("cg"))]),
                );
                match call(&state, ApiKey::DeleteGroups, 2, body).await {
                    Some(ResponseKind::DeleteGroups(r)) => r.results[0].error_code,
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        assert_eq!(delete().await, error::NON_EMPTY_GROUP);
        for (member, epoch) in [("a", 2), ("b", 2)] {
            let r = heartbeat(&state, beat(member, -1, &[]).with_member_epoch(-1)).await;
            assert_eq!(
                (r.error_code, r.member_epoch),
                (0, -1),
                "{member} leaves with {epoch}"
            );
        }
        assert_eq!(
            commit("", -1, 2).await,
            error::NONE,
            "admin commit on an empty group"
        );
        assert_eq!(delete().await, error::NONE);
    }

    #[tokio::test]
    async fn classic_and_consumer_groups_do_not_mix() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        assert_eq!(heartbeat(&state, join("a")).await.error_code, 0);
        let body = RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("cg")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))]),
        );
        let Some(ResponseKind::JoinGroup(j)) = call(&state, ApiKey::JoinGroup, 9, body).await
        else {
            panic!()
        };
        assert_eq!(j.error_code, error::INCONSISTENT_GROUP_PROTOCOL);

        let body = RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("classic")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))]),
        );
        let joined = call(&state, ApiKey::JoinGroup, 3, body).await;
        assert!(matches!(joined, Some(ResponseKind::JoinGroup(j)) if j.error_code == 0));
        let body =
            RequestKind::ConsumerGroupHeartbeat(join("b").with_group_id(GroupId(s("classic"))));
        let Some(ResponseKind::ConsumerGroupHeartbeat(r)) =
            call(&state, ApiKey::ConsumerGroupHeartbeat, 1, body).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, error::GROUP_ID_NOT_FOUND);
    }

    #[tokio::test]
    async fn a_regex_subscription_takes_matching_topics_and_new_ones_as_they_come() {
        let (_dir, state) = test_state();
        create_topic(&state, "orders-eu", 2).await;
        create_topic(&state, "orders-us", 1).await;
        create_topic(&state, "payments", 1).await;
        let joined = join("a")
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(Some(s("orders-.*")));
        let r = heartbeat(&state, joined).await;
        assert_eq!(r.error_code, 0);
        let count = |r: &ConsumerGroupHeartbeatResponse| {
            r.assignment.as_ref().map_or(0, |a| {
                a.topic_partitions.iter().map(|t| t.partitions.len()).sum()
            })
        };
        assert_eq!(count(&r), 3, "orders-eu and orders-us, not payments");
        create_topic(&state, "orders-jp", 2).await;
        let r = heartbeat(&state, beat("a", r.member_epoch, &owned(&r))).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(count(&r), 5, "a new matching topic joins the assignment");
    }

    #[tokio::test]
    async fn malformed_heartbeats_get_error_codes() {
        let (_dir, state) = test_state();
        let r = heartbeat(&state, join("")).await;
        assert_eq!(r.error_code, error::INVALID_REQUEST, "v1 needs a member id");
        let r = heartbeat(&state, join("a").with_topic_partitions(None)).await;
        assert_eq!(r.error_code, error::INVALID_REQUEST);
        let r = heartbeat(&state, join("a").with_member_epoch(-3)).await;
        assert_eq!(r.error_code, error::INVALID_REQUEST);
        let r = heartbeat(
            &state,
            join("a").with_subscribed_topic_regex(Some(s("t(.*"))),
        )
        .await;
        assert_eq!(r.error_code, error::INVALID_REGULAR_EXPRESSION);
        assert!(r.error_message.unwrap().contains("t(.*"));
        let r = heartbeat(&state, join("a").with_server_assignor(Some(s("sticky")))).await;
        assert_eq!(r.error_code, error::UNSUPPORTED_ASSIGNOR);
        let r = heartbeat(&state, beat("ghost", 3, &[])).await;
        assert_eq!(r.error_code, error::UNKNOWN_MEMBER_ID);
    }
}
