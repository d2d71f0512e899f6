//! OffsetFetch (key 9): committed offsets of one group (v0-v7) or of many
//! (v8+); -1 for partitions without a commit. From v9 a member of a
//! consumer-protocol group fetches with its member epoch, which is checked.

use super::{str_bytes, ApiSupport};
use crate::group::{GroupCoordinator, Groups};
use crate::state::BrokerState;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName,
};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::HashMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::OffsetFetch, 1, 9);

const MULTI_GROUP_SINCE: i16 = 8;

/// (topic, [(partition, offset, leader epoch, metadata, error)]) for the
/// requested topics, or every committed topic when `topics` is `None`.
type Fetched = Vec<(String, Vec<(i32, i64, i32, String, ErrorCode)>)>;

/// With `require_stable`, partitions with an offset pending in an open
/// transaction answer UNSTABLE_OFFSET_COMMIT (the client retries).
fn fetch(
    groups: &Groups,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Fetched {
    let offsets = groups.offsets.get(group);
    let wanted = topics.unwrap_or_else(|| {
        offsets
            .map(|o| {
                o.iter()
                    .map(|(t, parts)| (t.clone(), parts.keys().copied().collect()))
                    .collect()
            })
            .unwrap_or_default()
    });
    wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let committed = offsets.and_then(|o| o.get(&topic));
            let rows = partitions
                .into_iter()
                .map(|p| {
                    if require_stable && groups.has_pending_txn_offset(group, &topic, p) {
                        return (p, -1, -1, String::new(), error::UNSTABLE_OFFSET_COMMIT);
                    }
                    match committed.and_then(|c| c.get(&p)) {
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata.clone(), error::NONE),
                        None => (p, -1, -1, String::new(), error::NONE),
                    }
                })
                .collect();
            (topic, rows)
        })
        .collect()
}

pub(crate) fn handle(
    state: &BrokerState,
    request: OffsetFetchRequest,
    version: i16,
) -> ResponseKind {
    // Checked before the coordinator's lock: the check may create
    // `__consumer_offsets` and load it.
    let asked: Vec<String> = if version < MULTI_GROUP_SINCE {
        vec![request.group_id.to_string()]
    } else {
        request
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect()
    };
    let not_here: HashMap<String, ErrorCode> = asked
        .into_iter()
        .filter_map(|id| GroupCoordinator::coordinator_error(state, &id).map(|code| (id, code)))
        .collect();
    let mut response = OffsetFetchResponse::default();
    if let (true, Some(&code)) = (
        version < MULTI_GROUP_SINCE,
        not_here.get(request.group_id.as_str()),
    ) {
        response.error_code = code;
        // v0 and v1 have no top-level error: each asked partition has it.
        response.topics = request
            .topics
            .into_iter()
            .flatten()
            .map(|t| {
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partition_indexes
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        return ResponseKind::OffsetFetch(response);
    }
    let groups = state.groups.lock();
    if version < MULTI_GROUP_SINCE {
        let topics = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        response.topics = fetch(&groups, &request.group_id, topics, request.require_stable)
            .into_iter()
            .map(|(topic, rows)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(
                        rows.into_iter()
                            .map(|(p, offset, epoch, metadata, code)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(code)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(if version >= 5 {
                                        epoch
                                    } else {
                                        -1
                                    })
                                    .with_metadata(Some(str_bytes(metadata)))
                            })
                            .collect(),
                    )
            })
            .collect();
        return ResponseKind::OffsetFetch(response);
    }
    response.groups = request
        .groups
        .into_iter()
        .map(|g| {
            if let Some(&code) = not_here.get(g.group_id.as_str()) {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code);
            }
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let member_code = match (
                &g.member_id,
                groups.consumer_groups.get(g.group_id.as_str()),
            ) {
                (Some(member), Some(group)) if !member.is_empty() => {
                    group.check_offset_member(member, g.member_epoch)
                }
                _ => error::NONE,
            };
            if member_code != error::NONE {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(member_code);
            }
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_topics(
                    fetch(&groups, &g.group_id, topics, request.require_stable)
                        .into_iter()
                        .map(|(topic, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(topic)))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, offset, epoch, metadata, code)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(code)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(str_bytes(metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetFetch(response)
}
