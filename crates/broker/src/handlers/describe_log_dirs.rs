//! DescribeLogDirs (key 35): the log directory and the size of each
//! partition in it.

use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeLogDirs, 1, 4);

/// Kafka's value when volume sizes are not reported.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// (total, usable) bytes of the volume holding `dir` (KIP-827), unknown
/// when the filesystem does not say.
fn volume_bytes(dir: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(v) => {
            let block = v.f_frsize as i64;
            (
                (v.f_blocks as i64).saturating_mul(block),
                (v.f_bavail as i64).saturating_mul(block),
            )
        }
        Err(_) => (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES),
    }
}

pub(crate) fn handle(state: &BrokerState, request: DescribeLogDirsRequest) -> ResponseKind {
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    // Every replica on this broker, led or followed, as Kafka lists them.
    let replicas = state
        .partitions
        .all()
        .into_iter()
        .chain(state.partitions.followed());
    for partition in replicas {
        let wanted = match &request.topics {
            None => true,
            Some(topics) => topics.iter().any(|t| {
                t.topic.as_str() == partition.topic && t.partitions.contains(&partition.index)
            }),
        };
        if !wanted {
            continue;
        }
        by_topic.entry(partition.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(partition.index)
                .with_partition_size(partition.size_bytes() as i64)
                .with_offset_lag(0),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = std::fs::canonicalize(state.partitions.log_dir_path())
        .unwrap_or_else(|_| state.partitions.log_dir_path().to_path_buf());
    let (total, usable) = volume_bytes(&dir);
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ]))
}
