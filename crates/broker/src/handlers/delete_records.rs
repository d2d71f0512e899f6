//! DeleteRecords (key 21): moves partitions' log start offsets forward (never
//! past the high watermark) and deletes the segments wholly below them.

use super::{ApiSupport, Reply};
use crate::partition::DeleteRecordsError;
use crate::state::BrokerState;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use sluice_protocol::error;
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DeleteRecords, 0, 2);

/// On this single node every replica has the new log start at once, so the
/// answer needs no wait; the work runs off the async threads because it
/// syncs a checkpoint and deletes files.
pub(crate) fn handle(state: &Arc<BrokerState>, request: DeleteRecordsRequest) -> Reply {
    let state = state.clone();
    Reply::Later(Box::pin(async move {
        let response = tokio::task::spawn_blocking(move || delete(&state, request))
            .await
            .expect("DeleteRecords task panicked");
        ResponseKind::DeleteRecords(response)
    }))
}

fn delete(state: &BrokerState, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let mut topic_result = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
        for p in topic.partitions {
            let result = match state.partitions.get(&topic.name, p.partition_index) {
                None => Err(error::UNKNOWN_TOPIC_OR_PARTITION),
                Some(partition) => partition.delete_records(p.offset).map_err(|e| match e {
                    DeleteRecordsError::OutOfRange => error::OFFSET_OUT_OF_RANGE,
                    DeleteRecordsError::CompactOnly => error::POLICY_VIOLATION,
                    DeleteRecordsError::Storage(e) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "DeleteRecords failed");
                        error::KAFKA_STORAGE_ERROR
                    }
                }),
            };
            let (low_watermark, error_code) = match result {
                Ok(low_watermark) => (low_watermark, error::NONE),
                Err(code) => (-1, code),
            };
            topic_result.partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(error_code),
            );
        }
        response.topics.push(topic_result);
    }
    response
}

#[cfg(test)]
mod tests {
    use crate::state::BrokerState;
    use crate::test_support::{call, create_topic_with_configs, test_state};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::batch::build_uncompressed_batch;
    use sluice_protocol::error;
    use std::sync::Arc;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// Produces one single-record batch per call, acks=all.
    async fn produce_one(state: &Arc<BrokerState>, topic: &str) {
        let batch = build_uncompressed_batch(crate::state::now_ms(), &[(None, Some(&[b'x'; 100]))]);
        let body = RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ])]),
        );
        call(state, ApiKey::Produce, 9, body).await;
    }

    /// (error code, low watermark) of one DeleteRecords partition.
    async fn delete_records(
        state: &Arc<BrokerState>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> (i16, i64) {
        let body = RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(partition)
                            .with_offset(offset),
                    ])]),
        );
        let Some(ResponseKind::DeleteRecords(r)) =
            call(state, ApiKey::DeleteRecords, 2, body).await
        else {
            panic!("no DeleteRecords response")
        };
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    }

    async fn earliest(state: &Arc<BrokerState>, topic: &str) -> i64 {
        let body = RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2)
                ]),
        ]));
        let Some(ResponseKind::ListOffsets(r)) = call(state, ApiKey::ListOffsets, 7, body).await
        else {
            panic!("no ListOffsets response")
        };
        r.topics[0].partitions[0].offset
    }

    /// (error code, log start offset) of a Fetch at `offset`.
    async fn fetch(state: &Arc<BrokerState>, topic: &str, offset: i64) -> (i16, i64) {
        let body = RequestKind::Fetch(
            FetchRequest::default()
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)])]),
        );
        let Some(ResponseKind::Fetch(r)) = call(state, ApiKey::Fetch, 12, body).await else {
            panic!("no Fetch response")
        };
        let p = &r.responses[0].partitions[0];
        (p.error_code, p.log_start_offset)
    }

    #[tokio::test]
    async fn delete_records_advances_the_log_start_up_to_the_high_watermark() {
        let (dir, state) = test_state();
        // Small segments: one or two batches each.
        create_topic_with_configs(&state, "t", 1, &[("segment.bytes", "300")]).await;
        for _ in 0..6 {
            produce_one(&state, "t").await;
        }
        let partition_dir = dir.path().join("t-0");
        let segments = || {
            std::fs::read_dir(&partition_dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "log")
                })
                .count()
        };
        let before = segments();
        assert!(before > 2);

        assert_eq!(delete_records(&state, "t", 0, 3).await, (error::NONE, 3));
        assert!(
            segments() < before,
            "segments wholly below the log start are deleted"
        );
        assert_eq!(earliest(&state, "t").await, 3);
        // As Kafka, an out-of-range fetch reports no log start (-1).
        assert_eq!(
            fetch(&state, "t", 2).await,
            (error::OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(fetch(&state, "t", 3).await, (error::NONE, 3));

        assert_eq!(
            delete_records(&state, "t", 0, 2).await,
            (error::NONE, 3),
            "never backwards"
        );
        assert_eq!(
            delete_records(&state, "t", 0, 7).await.0,
            error::OFFSET_OUT_OF_RANGE
        );
        assert_eq!(
            delete_records(&state, "t", 0, -5).await.0,
            error::OFFSET_OUT_OF_RANGE
        );
        assert_eq!(earliest(&state, "t").await, 3);
        assert_eq!(delete_records(&state, "t", 0, -1).await, (error::NONE, 6));
        assert_eq!(earliest(&state, "t").await, 6);
        assert_eq!(
            delete_records(&state, "t", 1, 0).await.0,
            error::UNKNOWN_TOPIC_OR_PARTITION
        );
    }

    #[tokio::test]
    async fn delete_records_refuses_compact_only_topics() {
        let (_dir, state) = test_state();
        create_topic_with_configs(&state, "c", 1, &[("cleanup.policy", "compact")]).await;
        assert_eq!(
            delete_records(&state, "c", 0, 0).await,
            (error::POLICY_VIOLATION, -1)
        );
    }
}
