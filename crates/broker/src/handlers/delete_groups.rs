//! DeleteGroups (key 42): remove empty groups (classic or consumer), their
//! metadata and their committed offsets (tombstones in
//! `__consumer_offsets`).

use super::{ApiSupport, Reply};
use crate::group::{GroupCoordinator, OffsetCommit};
use crate::state::BrokerState;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DeleteGroups, 0, 2);

pub(crate) fn handle(state: &BrokerState, request: DeleteGroupsRequest) -> Reply {
    // Checked before the coordinator's lock: the check may create
    // `__consumer_offsets` and load it.
    let not_here: Vec<Option<ErrorCode>> = request
        .groups_names
        .iter()
        .map(|id| GroupCoordinator::coordinator_error(state, id))
        .collect();
    let mut groups = state.groups.lock();
    let mut results = Vec::new();
    let mut waits = Vec::new();
    let mut offset_waits = Vec::new();
    for (id, not_here) in request.groups_names.into_iter().zip(not_here) {
        let code = match groups.groups.get(id.as_str()) {
            _ if not_here.is_some() => not_here.unwrap_or(error::NONE),
            Some(g) if !g.is_empty() => error::NON_EMPTY_GROUP,
            _ if groups
                .consumer_groups
                .get(id.as_str())
                .is_some_and(|g| !g.is_empty()) =>
            {
                error::NON_EMPTY_GROUP
            }
            None if groups.offsets.get(id.as_str()).is_none()
                && !groups.consumer_groups.contains_key(id.as_str()) =>
            {
                error::GROUP_ID_NOT_FOUND
            }
            _ => {
                let tombstones: Vec<OffsetCommit> = groups
                    .offsets
                    .get(id.as_str())
                    .map(|o| {
                        o.iter()
                            .flat_map(|(topic, parts)| {
                                parts.keys().map(|p| OffsetCommit {
                                    topic: topic.clone(),
                                    partition: *p,
                                    value: None,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let written = if tombstones.is_empty() {
                    Ok(None)
                } else {
                    GroupCoordinator::write_offsets(state, &id, tombstones).map(Some)
                };
                let removed = written.and_then(|offsets_written| {
                    groups.groups.remove(id.as_str());
                    groups.consumer_groups.remove(id.as_str());
                    let metadata_written =
                        GroupCoordinator::persist_group(state, &mut groups, &id)?;
                    Ok((offsets_written, metadata_written))
                });
                match removed {
                    Ok((offsets_written, metadata_written)) => {
                        offset_waits.extend(offsets_written);
                        waits.extend(metadata_written);
                        error::NONE
                    }
                    Err(e) => e.code,
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    let response = DeleteGroupsResponse::default().with_results(results);
    if waits.is_empty() && offset_waits.is_empty() {
        return Reply::Now(Box::new(ResponseKind::DeleteGroups(response)));
    }
    Reply::Later(Box::pin(async move {
        let mut response = response;
        let mut durable = true;
        for pending in offset_waits {
            durable &= pending.durable_then_apply().await.is_ok();
        }
        for appended in waits {
            durable &= appended.committed().await.is_ok();
        }
        if !durable {
            for r in &mut response.results {
                if r.error_code == error::NONE {
                    r.error_code = error::COORDINATOR_NOT_AVAILABLE;
                }
            }
        }
        ResponseKind::DeleteGroups(response)
    }))
}
