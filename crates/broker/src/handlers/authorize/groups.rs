//! Group APIs (Kafka's KafkaApis): JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit and ConsumerGroupHeartbeat need Read on the
//! group; OffsetFetch, DescribeGroups, ConsumerGroupDescribe and
//! FindCoordinator Describe; DeleteGroups and OffsetDelete Delete; offsets
//! of a topic need Read (commit, delete) or Describe (fetch) on it.
//! ListGroups lists every group with Describe on the cluster, else the ones
//! the caller may describe. Refusals answer GROUP_AUTHORIZATION_FAILED (or
//! TOPIC_ / TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use super::{patch_if, refuse, take_refused, Access, Checked, Patch};
use crate::security::authorizer::{resource, Operation};
use kafka_protocol::messages::{
    consumer_group_describe_response, delete_groups_response, describe_groups_response,
    find_coordinator_response, offset_commit_response, offset_delete_response,
    offset_fetch_response,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, FindCoordinatorResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, SyncGroupRequest,
    SyncGroupResponse,
};
use sluice_protocol::error::{
    GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};

const DENIED: i16 = GROUP_AUTHORIZATION_FAILED;
/// FindCoordinator's key types.
const TRANSACTION_KEY: i8 = 1;

/// Denied unless the caller may Read the group.
fn read_group(access: &Access, group: &str) -> bool {
    access.group(Operation::Read, group)
}

pub(super) fn join_group(access: &Access, request: &mut JoinGroupRequest) -> Checked {
    if read_group(access, &request.group_id) {
        return Ok(None);
    }
    refuse(ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(DENIED)
            .with_generation_id(-1),
    ))
}

pub(super) fn sync_group(access: &Access, request: &mut SyncGroupRequest) -> Checked {
    if read_group(access, &request.group_id) {
        return Ok(None);
    }
    refuse(ResponseKind::SyncGroup(
        SyncGroupResponse::default().with_error_code(DENIED),
    ))
}

pub(super) fn heartbeat(access: &Access, request: &mut HeartbeatRequest) -> Checked {
    if read_group(access, &request.group_id) {
        return Ok(None);
    }
    refuse(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(DENIED),
    ))
}

pub(super) fn leave_group(access: &Access, request: &mut LeaveGroupRequest) -> Checked {
    if read_group(access, &request.group_id) {
        return Ok(None);
    }
    refuse(ResponseKind::LeaveGroup(
        LeaveGroupResponse::default().with_error_code(DENIED),
    ))
}

pub(super) fn consumer_group_heartbeat(
    access: &Access,
    request: &mut ConsumerGroupHeartbeatRequest,
) -> Checked {
    let code = if !read_group(access, &request.group_id) {
        DENIED
    } else if request
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|t| !access.topic(Operation::Describe, t))
    {
        TOPIC_AUTHORIZATION_FAILED
    } else {
        return Ok(None);
    };
    refuse(ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_member_epoch(-1),
    ))
}

pub(super) fn find_coordinator(
    access: &Access,
    request: &mut FindCoordinatorRequest,
    version: i16,
) -> Checked {
    let transactional = request.key_type == TRANSACTION_KEY;
    let allowed = |key: &str| {
        if transactional {
            access.transactional_id(Operation::Describe, key)
        } else {
            access.group(Operation::Describe, key)
        }
    };
    let code = if transactional {
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else {
        DENIED
    };
    if version < 4 {
        if allowed(&request.key) {
            return Ok(None);
        }
        return refuse(ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id((-1).into())
                .with_port(-1),
        ));
    }
    let refused = take_refused(&mut request.coordinator_keys, |k| allowed(k));
    if request.coordinator_keys.is_empty() && !refused.is_empty() {
        let mut response = FindCoordinatorResponse::default();
        response.coordinators = refused.into_iter().map(|k| refused_key(k, code)).collect();
        return refuse(ResponseKind::FindCoordinator(response));
    }
    Ok(patch_if(refused, move |response, refused| {
        if let ResponseKind::FindCoordinator(r) = response {
            r.coordinators
                .extend(refused.into_iter().map(|k| refused_key(k, code)));
        }
    }))
}

fn refused_key(
    key: kafka_protocol::protocol::StrBytes,
    code: i16,
) -> find_coordinator_response::Coordinator {
    find_coordinator_response::Coordinator::default()
        .with_key(key)
        .with_node_id((-1).into())
        .with_port(-1)
        .with_error_code(code)
}

pub(super) fn offset_commit(access: &Access, request: &mut OffsetCommitRequest) -> Checked {
    let group_denied = !read_group(access, &request.group_id);
    let refused = if group_denied {
        std::mem::take(&mut request.topics)
    } else {
        take_refused(&mut request.topics, |t| {
            access.topic(Operation::Read, &t.name)
        })
    };
    let code = if group_denied {
        DENIED
    } else {
        TOPIC_AUTHORIZATION_FAILED
    };
    let answer = move |r: &mut OffsetCommitResponse,
                       refused: Vec<
        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic,
    >| {
        for t in refused {
            r.topics.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    ),
            );
        }
    };
    if group_denied {
        let mut response = OffsetCommitResponse::default();
        answer(&mut response, refused);
        return refuse(ResponseKind::OffsetCommit(response));
    }
    Ok(patch_if(refused, move |response, refused| {
        if let ResponseKind::OffsetCommit(r) = response {
            answer(r, refused);
        }
    }))
}

pub(super) fn offset_fetch(
    access: &Access,
    request: &mut OffsetFetchRequest,
    version: i16,
) -> Checked {
    if version < 8 {
        if !access.group(Operation::Describe, &request.group_id) {
            return refuse(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(DENIED),
            ));
        }
        return Ok(match request.topics.as_mut() {
            // Every topic: the ones the caller may not describe are left out.
            None => Some(hide_topics(access)),
            Some(topics) => {
                let refused = take_refused(topics, |t| access.topic(Operation::Describe, &t.name));
                patch_if(refused, |response, refused| {
                    if let ResponseKind::OffsetFetch(r) = response {
                        for t in refused {
                            r.topics.push(
                                offset_fetch_response::OffsetFetchResponseTopic::default()
                                    .with_name(t.name)
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|p| {
                                                offset_fetch_response::OffsetFetchResponsePartition::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(-1)
                                                    .with_committed_leader_epoch(-1)
                                                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                                            })
                                            .collect(),
                                    ),
                            );
                        }
                    }
                })
            }
        });
    }
    // v8+: several groups, each refused on its own.
    let refused_groups = take_refused(&mut request.groups, |g| {
        access.group(Operation::Describe, &g.group_id)
    });
    let mut refused_topics = Vec::new();
    for group in &mut request.groups {
        if let Some(topics) = group.topics.as_mut() {
            let names = take_refused(topics, |t| {
                let name = access
                    .topic_name(&t.topic_id)
                    .unwrap_or_else(|| t.name.to_string());
                access.topic(Operation::Describe, &name)
            });
            if !names.is_empty() {
                refused_topics.push((group.group_id.clone(), names));
            }
        }
    }
    let hide = hide_topics(access);
    let everything_refused = request.groups.is_empty();
    let patch = move |r: &mut OffsetFetchResponse| {
        for g in refused_groups {
            r.groups.push(
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(DENIED),
            );
        }
        for (group, topics) in refused_topics {
            if let Some(g) = r.groups.iter_mut().find(|g| g.group_id == group) {
                for t in topics {
                    g.topics.push(
                        offset_fetch_response::OffsetFetchResponseTopics::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                                    })
                                    .collect(),
                            ),
                    );
                }
            }
        }
    };
    if everything_refused {
        let mut response = OffsetFetchResponse::default();
        patch(&mut response);
        return refuse(ResponseKind::OffsetFetch(response));
    }
    Ok(Some(Box::new(move |response: &mut ResponseKind| {
        hide(response);
        if let ResponseKind::OffsetFetch(r) = response {
            patch(r);
        }
    })))
}

/// Drops from an all-topics OffsetFetch answer the topics the caller may
/// not describe.
fn hide_topics(access: &Access) -> Patch {
    let allowed: Vec<String> = access
        .image
        .topics()
        .filter(|t| access.topic(Operation::Describe, &t.name))
        .map(|t| t.name.clone())
        .collect();
    Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::OffsetFetch(r) = response {
            r.topics
                .retain(|t| allowed.iter().any(|a| a == t.name.as_str()));
            for g in &mut r.groups {
                g.topics
                    .retain(|t| allowed.iter().any(|a| a == t.name.as_str()));
            }
        }
    })
}

pub(super) fn describe_groups(
    access: &Access,
    request: &mut DescribeGroupsRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.groups, |g| {
        access.group(Operation::Describe, g)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DescribeGroups(r) = response {
            for g in refused {
                r.groups.push(
                    describe_groups_response::DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(DENIED),
                );
            }
        }
    })
}

pub(super) fn consumer_group_describe(
    access: &Access,
    request: &mut ConsumerGroupDescribeRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.group_ids, |g| {
        access.group(Operation::Describe, g)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::ConsumerGroupDescribe(r) = response {
            for g in refused {
                r.groups.push(
                    consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(DENIED),
                );
            }
        }
    })
}

pub(super) fn list_groups(access: &Access) -> Option<Patch> {
    if access.cluster(Operation::Describe) {
        return None;
    }
    let allows = access.checker();
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::ListGroups(r) = response {
            r.groups
                .retain(|g| allows(Operation::Describe, resource::GROUP, &g.group_id));
        }
    }))
}

pub(super) fn delete_groups(access: &Access, request: &mut DeleteGroupsRequest) -> Option<Patch> {
    let refused = take_refused(&mut request.groups_names, |g| {
        access.group(Operation::Delete, g)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DeleteGroups(r) = response {
            for g in refused {
                r.results.push(
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(g)
                        .with_error_code(DENIED),
                );
            }
        }
    })
}

pub(super) fn offset_delete(access: &Access, request: &mut OffsetDeleteRequest) -> Checked {
    if !access.group(Operation::Delete, &request.group_id) {
        return refuse(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(DENIED),
        ));
    }
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Read, &t.name)
    });
    Ok(patch_if(refused, |response, refused| {
        if let ResponseKind::OffsetDelete(r) = response {
            for t in refused {
                r.topics.push(
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    offset_delete_response::OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                                })
                                .collect(),
                        ),
                );
            }
        }
    }))
}
