//! ListOffsets (key 2): earliest, latest, max-timestamp and by-timestamp
//! lookups (through the time index).

use super::ApiSupport;
use crate::state::BrokerState;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ListOffsets, 1, 8);

/// Responses carry the leader epoch from v4.
const LEADER_EPOCH_SINCE: i16 = 4;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub(crate) fn handle(
    state: &BrokerState,
    request: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for p in topic.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let Some(partition) = state.partitions.get(&topic.name, p.partition_index) else {
                r.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
                topic_response.partitions.push(r);
                continue;
            };
            if p.current_leader_epoch > partition.leader_epoch {
                r.error_code = error::UNKNOWN_LEADER_EPOCH;
            } else if p.current_leader_epoch >= 0 && p.current_leader_epoch < partition.leader_epoch
            {
                r.error_code = error::FENCED_LEADER_EPOCH;
            } else {
                if version >= LEADER_EPOCH_SINCE {
                    r.leader_epoch = partition.leader_epoch;
                }
                let found = match p.timestamp {
                    // Without transactions the last stable offset is the high watermark.
                    LATEST => Ok(Some((-1, partition.high_watermark()))),
                    EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, partition.log_start_offset()))),
                    MAX_TIMESTAMP => Ok(partition.max_timestamp_and_offset()),
                    ts if ts >= 0 => partition.offset_for_timestamp(ts),
                    other => {
                        r.error_code = error::INVALID_REQUEST;
                        tracing::debug!(timestamp = other, "unsupported ListOffsets timestamp");
                        Ok(None)
                    }
                };
                match found {
                    Ok(Some((timestamp, offset))) => {
                        r.timestamp = timestamp;
                        r.offset = offset;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "offset lookup failed");
                        r.error_code = error::KAFKA_STORAGE_ERROR;
                    }
                }
            }
            topic_response.partitions.push(r);
        }
        response.topics.push(topic_response);
    }
    ResponseKind::ListOffsets(response)
}
