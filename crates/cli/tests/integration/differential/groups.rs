//! Groups and offsets: FindCoordinator, the classic protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), OffsetCommit/OffsetFetch/OffsetDelete,
//! ListGroups/DescribeGroups/DeleteGroups and the KIP-848 consumer protocol.

use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::kafka_protocol::messages::{
    consumer_group_heartbeat_request::TopicPartitions,
    join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
    sync_group_request::SyncGroupRequestAssignment,
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, RequestKind, ResponseKind, SyncGroupRequest,
};

use super::records::topic_id;
use super::topics::{create_topic, node_id, s, topic_name};
use super::wire::Wire;
use super::{error_name, Obs, Side};

fn group(id: &str) -> GroupId {
    GroupId(s(id))
}

/// ConsumerProtocolSubscription v0 for `topic`.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

/// ConsumerProtocolAssignment v0: all of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

fn join(
    wire: &mut Wire,
    group_id: &str,
    member_id: &str,
    protocol_type: &str,
    session_ms: i32,
    topic: &str,
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(topic))]);
    match wire.send(RequestKind::JoinGroup(request)) {
        ResponseKind::JoinGroup(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Joins `group_id` as its only member: (member id, generation).
fn join_as_only_member(wire: &mut Wire, group_id: &str, topic: &str) -> (String, i32) {
    let first = join(wire, group_id, "", "consumer", 30_000, topic);
    let joined = if first.error_code == MEMBER_ID_REQUIRED {
        join(wire, group_id, &first.member_id, "consumer", 30_000, topic)
    } else {
        first
    };
    assert_eq!(
        joined.error_code,
        0,
        "join {group_id}: {}",
        error_name(joined.error_code)
    );
    (joined.member_id.to_string(), joined.generation_id)
}

/// KIP-394: a v4+ JoinGroup without a member id is answered with one.
const MEMBER_ID_REQUIRED: i16 = 79;

fn sync(
    wire: &mut Wire,
    group_id: &str,
    generation: i32,
    member: &str,
    assignments: Vec<(String, Bytes)>,
) -> (i16, Bytes) {
    let request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    match wire.send(RequestKind::SyncGroup(request)) {
        ResponseKind::SyncGroup(r) => (r.error_code, r.assignment),
        other => panic!("{other:?}"),
    }
}

fn heartbeat(wire: &mut Wire, group_id: &str, generation: i32, member: &str) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(s(member));
    match wire.send(RequestKind::Heartbeat(request)) {
        ResponseKind::Heartbeat(r) => r.error_code,
        other => panic!("{other:?}"),
    }
}

fn describe_group(wire: &mut Wire, obs: &mut Obs, case: &str, group_id: &str) {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![group(group_id)])
        .with_include_authorized_operations(true);
    if let ResponseKind::DescribeGroups(r) = wire.send(RequestKind::DescribeGroups(request.clone()))
    {
        for g in &r.groups {
            obs.put(
                format!("{case}/authorized_operations_included"),
                g.authorized_operations,
            );
        }
    }
    let request = request.with_include_authorized_operations(false);
    let ResponseKind::DescribeGroups(r) = wire.send(RequestKind::DescribeGroups(request)) else {
        panic!("not a DescribeGroups response")
    };
    for g in &r.groups {
        obs.error(format!("{case}/error"), g.error_code);
        obs.put(format!("{case}/state"), &g.group_state);
        obs.put(format!("{case}/protocol_type"), &g.protocol_type);
        obs.put(format!("{case}/protocol"), &g.protocol_data);
        obs.put(format!("{case}/members"), g.members.len());
        obs.put(
            format!("{case}/authorized_operations"),
            g.authorized_operations,
        );
        for m in &g.members {
            obs.put(format!("{case}/member/client_id"), &m.client_id);
            obs.put(format!("{case}/member/has_host"), !m.client_host.is_empty());
            obs.put(
                format!("{case}/member/metadata_len"),
                m.member_metadata.len(),
            );
            obs.put(
                format!("{case}/member/assignment_len"),
                m.member_assignment.len(),
            );
        }
    }
}

pub(crate) fn find_coordinator(side: &mut Side, obs: &mut Obs) {
    let own = node_id(side);
    let version = side.wire.version_of(ApiKey::FindCoordinator).unwrap_or(0);
    for (case, key, key_type) in [
        ("group", "diff-group", 0i8),
        ("transaction", "diff-txn", 1),
        ("bad_key_type", "diff-group", 7),
        ("empty_group", "", 0),
    ] {
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            request.coordinator_keys = vec![s(key)];
        } else {
            request.key = s(key);
        }
        let r = match side.wire.send(RequestKind::FindCoordinator(request)) {
            ResponseKind::FindCoordinator(r) => r,
            other => panic!("{other:?}"),
        };
        obs.error(format!("{case}/top_error"), r.error_code);
        for c in &r.coordinators {
            obs.error(format!("{case}/error"), c.error_code);
            obs.put(format!("{case}/is_the_broker"), c.node_id.0 == own);
        }
    }
}

pub(crate) fn classic_group(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-classic", 2);
    let wire = &mut side.wire;
    let g = "diff-classic-group";
    let r = join(wire, g, "", "consumer", 1, "diff-classic");
    obs.error("join/session_too_short", r.error_code);
    let r = join(wire, "", "", "consumer", 30_000, "diff-classic");
    obs.error("join/empty_group_id", r.error_code);
    let first = join(wire, g, "", "consumer", 30_000, "diff-classic");
    obs.error("join/no_member_id", first.error_code);
    obs.put(
        "join/no_member_id/gets_member_id",
        !first.member_id.is_empty(),
    );
    let member = first.member_id.to_string();
    let joined = join(wire, g, &member, "consumer", 30_000, "diff-classic");
    obs.error("join/with_member_id", joined.error_code);
    obs.put("join/generation", joined.generation_id);
    obs.put(
        "join/protocol",
        joined.protocol_name.as_deref().unwrap_or("null"),
    );
    obs.put(
        "join/protocol_type",
        joined.protocol_type.as_deref().unwrap_or("null"),
    );
    obs.put("join/is_leader", joined.leader.as_str() == member);
    obs.put("join/members", joined.members.len());
    let generation = joined.generation_id;
    let r = join(wire, g, "", "connect", 30_000, "diff-classic");
    obs.error("join/other_protocol_type", r.error_code);
    let r = join(
        wire,
        g,
        "no-such-member",
        "consumer",
        30_000,
        "diff-classic",
    );
    obs.error("join/unknown_member", r.error_code);

    let plan = assignment("diff-classic", &[0, 1]);
    let (code, _) = sync(
        wire,
        g,
        generation + 1,
        &member,
        vec![(member.clone(), plan.clone())],
    );
    obs.error("sync/wrong_generation", code);
    let (code, _) = sync(wire, g, generation, "no-such-member", vec![]);
    obs.error("sync/unknown_member", code);
    let (code, got) = sync(
        wire,
        g,
        generation,
        &member,
        vec![(member.clone(), plan.clone())],
    );
    obs.error("sync/leader", code);
    obs.put("sync/assignment_echoed", got == plan);

    obs.error("heartbeat/ok", heartbeat(wire, g, generation, &member));
    obs.error(
        "heartbeat/wrong_generation",
        heartbeat(wire, g, generation + 7, &member),
    );
    obs.error(
        "heartbeat/unknown_member",
        heartbeat(wire, g, generation, "no-such-member"),
    );
    obs.error(
        "heartbeat/unknown_group",
        heartbeat(wire, "diff-no-such-group", 1, "m"),
    );
    describe_group(wire, obs, "describe/stable", g);

    let leave = |wire: &mut Wire, members: &[&str]| {
        let mut request = LeaveGroupRequest::default().with_group_id(group(g));
        request.members = members
            .iter()
            .map(|m| MemberIdentity::default().with_member_id(s(m)))
            .collect();
        if wire.version_of(ApiKey::LeaveGroup).unwrap_or(0) < 3 {
            request.member_id = s(members[0]);
            request.members.clear();
        }
        match wire.send(RequestKind::LeaveGroup(request)) {
            ResponseKind::LeaveGroup(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let r = leave(wire, &["no-such-member"]);
    obs.error("leave/unknown/top_error", r.error_code);
    for m in &r.members {
        obs.error("leave/unknown/member_error", m.error_code);
    }
    let r = leave(wire, &[&member]);
    obs.error("leave/ok/top_error", r.error_code);
    for m in &r.members {
        obs.error("leave/ok/member_error", m.error_code);
    }
    describe_group(wire, obs, "describe/after_leave", g);
    describe_group(wire, obs, "describe/unknown", "diff-no-such-group");
}

/// Who commits: (group id, generation or member epoch, member id).
type Committer<'a> = (&'a str, i32, &'a str);

fn commit(
    side: &mut Side,
    (group_id, generation, member): Committer<'_>,
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: &str,
) -> Vec<i16> {
    let id = topic_id(side, topic);
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_topic_id(id)
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(metadata)))])]);
    match side.wire.send(RequestKind::OffsetCommit(request)) {
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// OffsetFetch of `partitions` of `topic` (or every committed partition):
/// (partition, offset, metadata, error) plus the group-level error.
fn fetch_offsets(
    side: &mut Side,
    group_id: &str,
    topic: Option<(&str, &[i32])>,
) -> (i16, Vec<(i32, i64, String, i16)>) {
    let version = side.wire.version_of(ApiKey::OffsetFetch).unwrap_or(0);
    let id = topic.map(|(t, _)| topic_id(side, t));
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        request.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(group(group_id))
            .with_member_epoch(-1)
            .with_topics(topic.map(|(t, parts)| {
                vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name(t))
                    .with_topic_id(id.unwrap())
                    .with_partition_indexes(parts.to_vec())]
            }))];
    } else {
        request.group_id = group(group_id);
        request.topics = topic.map(|(t, parts)| {
            vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(parts.to_vec())]
        });
    }
    let ResponseKind::OffsetFetch(r) = side.wire.send(RequestKind::OffsetFetch(request)) else {
        panic!("not an OffsetFetch response")
    };
    if version >= 8 {
        let g = &r.groups[0];
        let rows = g
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or("null").to_string(),
                    p.error_code,
                )
            })
            .collect();
        (g.error_code, rows)
    } else {
        let rows = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or("null").to_string(),
                    p.error_code,
                )
            })
            .collect();
        (r.error_code, rows)
    }
}

fn record_offsets(obs: &mut Obs, case: &str, (error, rows): (i16, Vec<(i32, i64, String, i16)>)) {
    obs.error(format!("{case}/error"), error);
    for (partition, offset, metadata, code) in rows {
        obs.put(
            format!("{case}/{partition}"),
            format!(
                "offset={offset} metadata={metadata} error={}",
                error_name(code)
            ),
        );
    }
}

pub(crate) fn offsets(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-commits", 2);
    let g = "diff-commit-group";
    for (case, topic, partition, metadata) in [
        ("simple", "diff-commits", 0, "m"),
        ("partition_out_of_range", "diff-commits", 5, ""),
        ("unknown_topic", "diff-commits-missing", 0, ""),
    ] {
        let codes = commit(side, (g, -1, ""), topic, partition, 5, metadata);
        obs.put(
            format!("commit/{case}"),
            codes
                .iter()
                .map(|c| error_name(*c))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let huge = "x".repeat(5000);
    let codes = commit(side, (g, -1, ""), "diff-commits", 1, 3, &huge);
    obs.put(
        "commit/metadata_too_large",
        codes
            .iter()
            .map(|c| error_name(*c))
            .collect::<Vec<_>>()
            .join(","),
    );
    let codes = commit(
        side,
        ("diff-commit-nonexistent", 4, "ghost"),
        "diff-commits",
        0,
        1,
        "",
    );
    obs.put(
        "commit/generation_of_unknown_group",
        codes
            .iter()
            .map(|c| error_name(*c))
            .collect::<Vec<_>>()
            .join(","),
    );
    record_offsets(
        obs,
        "fetch/listed",
        fetch_offsets(side, g, Some(("diff-commits", &[0, 1, 9]))),
    );
    record_offsets(obs, "fetch/all", fetch_offsets(side, g, None));
    record_offsets(
        obs,
        "fetch/unknown_group",
        fetch_offsets(side, "diff-never-committed", Some(("diff-commits", &[0]))),
    );

    let delete = |side: &mut Side, group_id: &str, topic: &str, partition: i32| {
        let request = OffsetDeleteRequest::default()
            .with_group_id(group(group_id))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(partition)
                ])]);
        match side.wire.send(RequestKind::OffsetDelete(request)) {
            ResponseKind::OffsetDelete(r) => {
                let parts: Vec<String> = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| error_name(p.error_code))
                    .collect();
                format!("{} [{}]", error_name(r.error_code), parts.join(","))
            }
            other => panic!("{other:?}"),
        }
    };
    obs.put(
        "offset_delete/unknown_topic",
        delete(side, g, "diff-commits-missing", 0),
    );
    obs.put(
        "offset_delete/unknown_group",
        delete(side, "diff-never-committed", "diff-commits", 0),
    );
    obs.put(
        "offset_delete/committed",
        delete(side, g, "diff-commits", 0),
    );
    record_offsets(
        obs,
        "fetch/after_delete",
        fetch_offsets(side, g, Some(("diff-commits", &[0]))),
    );
}

pub(crate) fn group_admin(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-admin", 1);
    // An active member keeps "diff-admin-active" non-empty.
    let mut member_wire = side.connection();
    let (member, generation) =
        join_as_only_member(&mut member_wire, "diff-admin-active", "diff-admin");
    let (code, _) = sync(
        &mut member_wire,
        "diff-admin-active",
        generation,
        &member,
        vec![(member.clone(), assignment("diff-admin", &[0]))],
    );
    assert_eq!(code, 0, "{}: sync {}", side.name, error_name(code));
    commit(side, ("diff-admin-empty", -1, ""), "diff-admin", 0, 1, "");

    let list = |side: &mut Side, states: &[&str], types: &[&str]| {
        let request = ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|x| s(x)).collect())
            .with_types_filter(types.iter().map(|x| s(x)).collect());
        match side.wire.send(RequestKind::ListGroups(request)) {
            ResponseKind::ListGroups(r) => {
                let mut found: Vec<String> = r
                    .groups
                    .iter()
                    .filter(|g| g.group_id.0.starts_with("diff-admin"))
                    .map(|g| {
                        format!(
                            "{}:{}:{}:{}",
                            g.group_id.0, g.protocol_type, g.group_state, g.group_type
                        )
                    })
                    .collect();
                found.sort();
                format!("{} {}", error_name(r.error_code), found.join(" "))
            }
            other => panic!("{other:?}"),
        }
    };
    obs.put("list/all", list(side, &[], &[]));
    obs.put("list/stable", list(side, &["Stable"], &[]));
    obs.put("list/empty", list(side, &["Empty"], &[]));
    obs.put("list/classic", list(side, &[], &["classic"]));
    obs.put("list/consumer_type", list(side, &[], &["consumer"]));
    obs.put("list/bad_state", list(side, &["Sleeping"], &[]));
    let mut wire = side.connection();
    describe_group(&mut wire, obs, "describe/active", "diff-admin-active");
    describe_group(&mut wire, obs, "describe/empty", "diff-admin-empty");

    let delete = |side: &mut Side, groups: &[&str]| {
        let request = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| group(g)).collect());
        match side.wire.send(RequestKind::DeleteGroups(request)) {
            ResponseKind::DeleteGroups(r) => {
                let mut results: Vec<String> = r
                    .results
                    .iter()
                    .map(|g| format!("{}={}", g.group_id.0, error_name(g.error_code)))
                    .collect();
                results.sort();
                results.join(",")
            }
            other => panic!("{other:?}"),
        }
    };
    obs.put(
        "delete/mixed",
        delete(
            side,
            &[
                "diff-admin-empty",
                "diff-admin-active",
                "diff-admin-missing",
            ],
        ),
    );
    obs.put("delete/again", delete(side, &["diff-admin-empty"]));
    record_offsets(
        obs,
        "fetch/deleted_group",
        fetch_offsets(side, "diff-admin-empty", Some(("diff-admin", &[0]))),
    );
    let _ = heartbeat(&mut member_wire, "diff-admin-active", generation, &member);
}

pub(crate) fn consumer_group(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-cg", 3);
    let id = topic_id(side, "diff-cg");
    let g = "diff-cg-group";
    let version = side
        .wire
        .version_of(ApiKey::ConsumerGroupHeartbeat)
        .unwrap_or(0);
    // v1+ members choose their own id (KIP-1082); v0 leaves it to the broker.
    let own_id = if version >= 1 {
        "0123456789abcdefABCDEF"
    } else {
        ""
    };
    let beat = |side: &mut Side,
                member: &str,
                epoch: i32,
                topics: Option<&[&str]>,
                assignor: Option<&str>,
                owned: Option<Vec<TopicPartitions>>| {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group(g))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(topics.map(|t| t.iter().map(|n| topic_name(n)).collect()))
            .with_server_assignor(assignor.map(s))
            .with_topic_partitions(owned);
        match side.wire.send(RequestKind::ConsumerGroupHeartbeat(request)) {
            ResponseKind::ConsumerGroupHeartbeat(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let r = beat(side, own_id, 0, None, None, Some(vec![]));
    obs.error("join/without_subscription", r.error_code);
    let r = beat(
        side,
        own_id,
        0,
        Some(&["diff-cg"]),
        Some("no-such-assignor"),
        Some(vec![]),
    );
    obs.error("join/unknown_assignor", r.error_code);
    let r = beat(side, own_id, 0, Some(&["diff-cg"]), None, Some(vec![]));
    obs.error("join/ok", r.error_code);
    obs.put("join/epoch_positive", r.member_epoch > 0);
    obs.put("join/heartbeat_interval_ms", r.heartbeat_interval_ms);
    let member = r
        .member_id
        .as_deref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| own_id.to_string());
    let mut epoch = r.member_epoch;
    let mut assigned: Vec<i32> = r
        .assignment
        .iter()
        .flat_map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone()))
        .collect();
    for _ in 0..20 {
        if !assigned.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let r = beat(side, &member, epoch, None, None, None);
        epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            assigned = a
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect();
        }
    }
    assigned.sort();
    obs.put("assignment", format!("{assigned:?}"));
    let owned = vec![TopicPartitions::default()
        .with_topic_id(id)
        .with_partitions(assigned.clone())];
    let r = beat(side, &member, epoch, Some(&["diff-cg"]), None, Some(owned));
    obs.error("heartbeat/steady", r.error_code);
    let r = beat(side, &member, epoch + 10, None, None, None);
    obs.error("heartbeat/epoch_ahead", r.error_code);
    let r = beat(side, "no-such-member-id-0000", 3, None, None, None);
    obs.error("heartbeat/unknown_member", r.error_code);

    let describe = |side: &mut Side, obs: &mut Obs, case: &str, group_id: &str| {
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![group(group_id)])
            .with_include_authorized_operations(true);
        let ResponseKind::ConsumerGroupDescribe(r) =
            side.wire.send(RequestKind::ConsumerGroupDescribe(request))
        else {
            panic!("not a ConsumerGroupDescribe response")
        };
        for d in &r.groups {
            obs.error(format!("{case}/error"), d.error_code);
            obs.put(format!("{case}/state"), &d.group_state);
            obs.put(format!("{case}/assignor"), &d.assignor_name);
            obs.put(
                format!("{case}/authorized_operations"),
                d.authorized_operations,
            );
            obs.put(format!("{case}/members"), d.members.len());
            obs.put(
                format!("{case}/epochs_agree"),
                d.group_epoch == d.assignment_epoch,
            );
            for m in &d.members {
                obs.put(
                    format!("{case}/member/subscribed"),
                    m.subscribed_topic_names
                        .iter()
                        .map(|t| t.0.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                obs.put(format!("{case}/member/type"), m.member_type);
                obs.put(format!("{case}/member/client_id"), &m.client_id);
            }
        }
    };
    describe(side, obs, "describe/active", g);
    describe(side, obs, "describe/unknown", "diff-cg-missing");
    describe_group(
        &mut side.connection(),
        obs,
        "classic_describe_of_consumer_group",
        g,
    );
    let r = beat(side, &member, -1, None, None, None);
    obs.error("leave/error", r.error_code);
    obs.put("leave/epoch", r.member_epoch);
    describe(side, obs, "describe/after_leave", g);
}
