//! DescribeQuorum (key 55): the metadata quorum, as `kafka-metadata-quorum`
//! shows it, from the quorum's own status: its leader and epoch (the
//! term), high watermark and voters. A single-node Sluice is the one voter
//! of `__cluster_metadata`: it leads and is always caught up.

use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind, TopicName,
};
use sluice_protocol::error;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeQuorum, 0, 2);

/// KRaft's metadata topic and partition, the only ones with a quorum.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// v2 (KIP-853) lists the voters' endpoints (the node's one listener)
/// when the request asked for the quorum.
const NODES_SINCE: i16 = 2;

pub(crate) fn handle(
    state: &BrokerState,
    request: DescribeQuorumRequest,
    version: i16,
) -> ResponseKind {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let status = state.quorum.status();
    let offset = |o: u64| i64::try_from(o).unwrap_or(i64::MAX);
    let topics: Vec<TopicData> = request
        .topics
        .into_iter()
        .map(|topic| {
            let is_metadata = topic.topic_name.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let mut answer =
                        PartitionData::default().with_partition_index(p.partition_index);
                    if !is_metadata || p.partition_index != 0 {
                        return answer
                            .with_error_code(error::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(str_bytes(format!(
                                "only {METADATA_TOPIC}-0 has a quorum"
                            ))));
                    }
                    answer = answer
                        .with_error_message(None)
                        .with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(offset(status.high_watermark));
                    answer.current_voters = status
                        .voters
                        .iter()
                        .map(|v| {
                            let caught_up = v.lag == Some(0);
                            ReplicaState::default()
                                .with_replica_id(BrokerId(v.node_id))
                                .with_log_end_offset(v.log_end_offset.map_or(-1, offset))
                                .with_last_fetch_timestamp(if caught_up { now } else { -1 })
                                .with_last_caught_up_timestamp(if caught_up { now } else { -1 })
                        })
                        .collect();
                    answer
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(topic.topic_name.0))
                .with_partitions(partitions)
        })
        .collect();
    let answered = topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code == error::NONE));
    let mut response = DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(topics);
    if version >= NODES_SINCE && answered {
        let own = state.own_endpoint(&state.inter_broker_listener);
        response.nodes = vec![Node::default()
            .with_node_id(BrokerId(state.node_id))
            .with_listeners(vec![Listener::default()
                .with_name(str_bytes(own.name.clone()))
                .with_host(str_bytes(own.host.clone()))
                .with_port(own.port)])];
    }
    ResponseKind::DescribeQuorum(response)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, test_state};
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    fn request(topic: &str) -> RequestKind {
        RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]))
    }

    #[tokio::test]
    async fn the_node_is_the_one_caught_up_voter_and_leader() {
        let (_dir, state) = test_state();
        let Some(ResponseKind::DescribeQuorum(r)) = call(
            &state,
            ApiKey::DescribeQuorum,
            2,
            request("__cluster_metadata"),
        )
        .await
        else {
            panic!("no DescribeQuorum answer")
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!((r.error_code, p.error_code), (0, 0));
        assert_eq!(p.leader_id.0, state.node_id);
        assert_eq!(p.current_voters.len(), 1);
        assert_eq!(p.current_voters[0].log_end_offset, p.high_watermark);
        assert!(p.observers.is_empty());
        assert_eq!(r.nodes[0].node_id.0, state.node_id);

        let Some(ResponseKind::DescribeQuorum(r)) =
            call(&state, ApiKey::DescribeQuorum, 2, request("other")).await
        else {
            panic!("no DescribeQuorum answer")
        };
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
}
