//! OffsetForLeaderEpoch (key 23, KIP-101/279/320): where a leader epoch's
//! records end in this replica's log. A consumer that learnt a new leader
//! epoch compares the answer with its position to detect that the log was
//! truncated under it (the Java client's position validation); a follower
//! uses it to cut a divergent tail before fetching.

use super::ApiSupport;
use crate::state::BrokerState;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use sluice_protocol::error;

/// Kafka 4 serves versions 2–4 (KIP-896 removed 0 and 1).
pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::OffsetForLeaderEpoch, 2, 4);

pub(crate) fn handle(state: &BrokerState, request: OffsetForLeaderEpochRequest) -> ResponseKind {
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in request.topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let answer = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                let Some(partition) = state.partitions.get(&topic.topic, p.partition) else {
                    return answer.with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION);
                };
                // As Kafka's getLocalLog: a stale client is fenced, one ahead
                // of this replica's metadata is told to retry.
                if p.current_leader_epoch >= 0 && p.current_leader_epoch < partition.leader_epoch()
                {
                    return answer.with_error_code(error::FENCED_LEADER_EPOCH);
                }
                if p.current_leader_epoch > partition.leader_epoch() {
                    return answer.with_error_code(error::UNKNOWN_LEADER_EPOCH);
                }
                match partition.end_offset_for_epoch(p.leader_epoch) {
                    Some((epoch, end_offset)) => {
                        answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                    }
                    None => answer,
                }
            })
            .collect();
        response.topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    ResponseKind::OffsetForLeaderEpoch(response)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::batch::build_uncompressed_batch;
    use sluice_protocol::error;

    fn ask(topic: &str, partition: i32, current: i32, epoch: i32) -> RequestKind {
        RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch)])]),
        )
    }

    async fn answer(
        state: &std::sync::Arc<crate::state::BrokerState>,
        topic: &str,
        partition: i32,
        current: i32,
        epoch: i32,
    ) -> (i16, i32, i64) {
        let request = ask(topic, partition, current, epoch);
        let Some(ResponseKind::OffsetForLeaderEpoch(r)) =
            call(state, ApiKey::OffsetForLeaderEpoch, 4, request).await
        else {
            panic!("wrong response kind");
        };
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    #[tokio::test]
    async fn answers_the_end_of_an_epoch_and_checks_the_callers_epoch() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        assert_eq!(
            answer(&state, "t", 0, 0, 0).await,
            (error::NONE, 0, 0),
            "known before any batch"
        );
        let records = [(None, Some(&b"v"[..])); 3];
        let mut batch = build_uncompressed_batch(0, &records).to_vec();
        let partition = state.partitions.get("t", 0).unwrap();
        partition.append(&mut batch, None, 0).unwrap();
        assert_eq!(answer(&state, "t", 0, -1, 0).await, (error::NONE, 0, 3));
        assert_eq!(
            answer(&state, "t", 0, 0, 1).await,
            (error::NONE, -1, -1),
            "a future epoch"
        );
        assert_eq!(
            answer(&state, "t", 0, 0, -1).await,
            (error::NONE, -1, -1),
            "undefined"
        );
        assert_eq!(
            answer(&state, "t", 0, 1, 0).await.0,
            error::UNKNOWN_LEADER_EPOCH
        );
        assert_eq!(
            answer(&state, "t", 1, 0, 0).await.0,
            error::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            answer(&state, "nope", 0, 0, 0).await.0,
            error::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
}
