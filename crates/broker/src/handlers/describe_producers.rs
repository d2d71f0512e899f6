//! DescribeProducers (key 61): the producers a partition knows, with their
//! epoch, last sequence and timestamp, and where their open transaction
//! starts: what `kafka-transactions.sh find-hanging` uses to spot a
//! transaction that holds the last stable offset back.

use super::ApiSupport;
use crate::state::BrokerState;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId, ResponseKind,
};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeProducers, 0, 0);

pub(crate) fn handle(state: &BrokerState, request: DescribeProducersRequest) -> ResponseKind {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    let Some(partition) = state.partitions.get(&topic.name, index) else {
                        return response.with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    response.with_active_producers(
                        partition
                            .active_producers()
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(p.txn_start_offset.unwrap_or(-1))
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::DescribeProducers(DescribeProducersResponse::default().with_topics(topics))
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    #[tokio::test]
    async fn unknown_partitions_are_named_and_known_ones_listed() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        let body = RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(
            vec![describe_producers_request::TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0, 7])],
        ));
        let Some(ResponseKind::DescribeProducers(r)) =
            call(&state, ApiKey::DescribeProducers, 0, body).await
        else {
            panic!("no DescribeProducers response")
        };
        let partitions = &r.topics[0].partitions;
        assert_eq!(partitions[0].error_code, 0);
        assert!(partitions[0].active_producers.is_empty());
        assert_eq!(
            partitions[1].error_code,
            sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
}
