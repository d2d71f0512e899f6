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
/// isolation_level: latest means the last stable offset.
const READ_COMMITTED: i8 = 1;

pub(crate) fn handle(
    state: &BrokerState,
    request: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    let read_committed = request.isolation_level == READ_COMMITTED;
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
            if p.current_leader_epoch > partition.leader_epoch() {
                r.error_code = error::UNKNOWN_LEADER_EPOCH;
            } else if p.current_leader_epoch >= 0
                && p.current_leader_epoch < partition.leader_epoch()
            {
                r.error_code = error::FENCED_LEADER_EPOCH;
            } else {
                let found = match p.timestamp {
                    LATEST if read_committed => Ok(Some((-1, partition.last_stable_offset()))),
                    LATEST => Ok(Some((-1, partition.high_watermark()))),
                    EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, partition.log_start_offset()))),
                    MAX_TIMESTAMP => partition.max_timestamp_and_offset(),
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
                        // As Kafka: an epoch only with an offset found.
                        if version >= LEADER_EPOCH_SINCE {
                            r.leader_epoch = partition.leader_epoch();
                        }
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

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use bytes::Bytes;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::Record;
    use sluice_protocol::compression::{encode_batch, plain_record};

    fn topic() -> TopicName {
        TopicName(StrBytes::from_static_str("t"))
    }

    /// One batch of records with the given timestamps.
    fn batch(timestamps: &[i64]) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| plain_record(i as i64, *ts, None, Some(Bytes::from_static(b"v"))))
            .collect();
        let mut buf = bytes::BytesMut::new();
        encode_batch(
            &mut buf,
            &records,
            kafka_protocol::records::Compression::Zstd,
        )
        .unwrap();
        buf.freeze()
    }

    async fn lookup(state: &std::sync::Arc<crate::state::BrokerState>, ts: i64) -> (i64, i64) {
        let body = RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(ts)
                    ]),
            ]));
        let Some(ResponseKind::ListOffsets(r)) = call(state, ApiKey::ListOffsets, 7, body).await
        else {
            panic!("no ListOffsets response")
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.timestamp, p.offset)
    }

    /// Kafka answers a timestamp lookup with the first *record* whose
    /// timestamp is at or after the target, not the batch holding it.
    #[tokio::test]
    async fn timestamp_lookup_finds_the_exact_record() {
        let (_dir, state) = test_state();
        let now = crate::state::now_ms();
        create_topic(&state, "t", 1).await;
        for stamps in [
            [now - 50, now - 40, now - 30],
            [now - 20, now - 35, now - 10],
        ] {
            let produce =
                RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![produce_request::PartitionProduceData::default(
                        )
                        .with_index(0)
                        .with_records(Some(batch(&stamps)))]),
                ]));
            call(&state, ApiKey::Produce, 9, produce).await;
        }
        assert_eq!(lookup(&state, now - 45).await, (now - 40, 1));
        assert_eq!(lookup(&state, now - 30).await, (now - 30, 2));
        assert_eq!(lookup(&state, now - 25).await, (now - 20, 3));
        assert_eq!(lookup(&state, now - 11).await, (now - 10, 5));
        assert_eq!(lookup(&state, now).await, (-1, -1));
        assert_eq!(lookup(&state, -3).await, (now - 10, 5));
        assert_eq!(lookup(&state, -2).await, (-1, 0));
        assert_eq!(lookup(&state, -1).await, (-1, 6));
    }
}
