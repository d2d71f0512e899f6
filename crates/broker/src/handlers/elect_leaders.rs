//! ElectLeaders (key 43): move partitions' leadership to their preferred
//! replica, or give leaderless partitions a leader from outside the ISR
//! (unclean), as `kafka-leader-election` and `sluice cluster
//! elect-leaders` ask. Decided by the controller against the latest image
//! and answered once the new leaders are committed. Without partitions
//! named, every partition is considered and only those that needed an
//! election are answered (every topic is listed), as in Kafka.

use super::{str_bytes, ApiSupport};
use crate::controller::{ApiError, Controller};
use crate::state::BrokerState;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, ResponseKind, TopicName,
};
use sluice_metadata::cluster::{elect_leader, ElectionRefusal, ElectionType};
use sluice_metadata::MetadataImage;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ElectLeaders, 0, 2);

/// v1 added the election type and the top-level error code.
const ELECTION_TYPE_SINCE: i16 = 1;

/// topic -> partition -> the answer for it.
type Outcomes = BTreeMap<String, BTreeMap<i32, (ErrorCode, Option<String>)>>;

fn refusal_code(refusal: &ElectionRefusal) -> ErrorCode {
    match refusal {
        ElectionRefusal::UnknownPartition => error::UNKNOWN_TOPIC_OR_PARTITION,
        ElectionRefusal::NotNeeded => error::ELECTION_NOT_NEEDED,
        ElectionRefusal::PreferredNotAvailable(_) => error::PREFERRED_LEADER_NOT_AVAILABLE,
        ElectionRefusal::EligibleNotAvailable => error::ELIGIBLE_LEADERS_NOT_AVAILABLE,
    }
}

/// The partitions asked for (`None`: all of them).
fn asked(request: &ElectLeadersRequest) -> Option<Vec<(String, i32)>> {
    request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    })
}

/// Decides every asked partition against `image`: the records to append
/// and each partition's answer.
fn decide(
    image: &MetadataImage,
    asked: &Option<Vec<(String, i32)>>,
    kind: ElectionType,
) -> (Vec<sluice_metadata::MetadataRecord>, Outcomes) {
    let all: Vec<(String, i32)>;
    let partitions = match asked {
        Some(partitions) => partitions,
        None => {
            all = image
                .topics()
                .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)))
                .collect();
            &all
        }
    };
    let mut records = Vec::new();
    let mut outcomes = Outcomes::new();
    for (topic, _) in partitions {
        outcomes.entry(topic.clone()).or_default();
    }
    for (topic, partition) in partitions {
        let decided = match image.topic(topic) {
            None => Err(ElectionRefusal::UnknownPartition),
            Some(t) => elect_leader(image, t.id, *partition, kind),
        };
        let outcome = match decided {
            Ok(record) => {
                records.push(record);
                (error::NONE, None)
            }
            // Asked for all, Kafka answers only what needed an election.
            Err(ElectionRefusal::NotNeeded) if asked.is_none() => continue,
            Err(refusal) => (
                refusal_code(&refusal),
                Some(format!("{topic}-{partition}: {refusal}")),
            ),
        };
        outcomes
            .entry(topic.clone())
            .or_default()
            .insert(*partition, outcome);
    }
    (records, outcomes)
}

pub(crate) fn handle(
    state: &BrokerState,
    request: ElectLeadersRequest,
    version: i16,
) -> ResponseKind {
    let kind = match (version >= ELECTION_TYPE_SINCE, request.election_type) {
        (false, _) | (true, 0) => Some(ElectionType::Preferred),
        (true, 1) => Some(ElectionType::Unclean),
        _ => None,
    };
    let Some(kind) = kind else {
        return ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(error::INVALID_REQUEST),
        );
    };
    let asked = asked(&request);
    let decided = Controller::new(state).commit_with(|image| {
        let (records, outcomes) = decide(image, &asked, kind);
        Ok::<_, ApiError>((records, outcomes))
    });
    let mut response = ElectLeadersResponse::default();
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(e) => {
            // Nothing was elected: every asked partition gets the error.
            let message = e.message.clone();
            match &asked {
                Some(partitions) => {
                    let mut outcomes = Outcomes::new();
                    for (topic, partition) in partitions {
                        outcomes
                            .entry(topic.clone())
                            .or_default()
                            .insert(*partition, (e.code, Some(message.clone())));
                    }
                    outcomes
                }
                None => {
                    response.error_code = e.code;
                    Outcomes::new()
                }
            }
        }
    };
    response.replica_election_results = outcomes
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(topic)))
                .with_partition_result(
                    partitions
                        .into_iter()
                        .map(|(partition, (code, message))| {
                            PartitionResult::default()
                                .with_partition_id(partition)
                                .with_error_code(code)
                                .with_error_message(message.map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::ElectLeaders(response)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{
        ApiKey, ElectLeadersRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::error;

    async fn elect(
        state: &std::sync::Arc<crate::state::BrokerState>,
        request: ElectLeadersRequest,
    ) -> kafka_protocol::messages::ElectLeadersResponse {
        match call(
            state,
            ApiKey::ElectLeaders,
            2,
            RequestKind::ElectLeaders(request),
        )
        .await
        {
            Some(ResponseKind::ElectLeaders(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn partitions(topic: &str, indexes: Vec<i32>) -> TopicPartitions {
        TopicPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(indexes)
    }

    #[tokio::test]
    async fn a_single_node_needs_no_election_and_unknown_partitions_are_named() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 2).await;
        let r = elect(
            &state,
            ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                partitions("t", vec![0, 5]),
                partitions("nope", vec![0]),
            ])),
        )
        .await;
        assert_eq!(r.error_code, error::NONE);
        let codes: Vec<(String, i32, i16)> = r
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("nope".to_string(), 0, error::UNKNOWN_TOPIC_OR_PARTITION),
                ("t".to_string(), 0, error::ELECTION_NOT_NEEDED),
                ("t".to_string(), 5, error::UNKNOWN_TOPIC_OR_PARTITION),
            ]
        );
        // All partitions: only those that needed an election are answered.
        let all = ElectLeadersRequest::default().with_topic_partitions(None);
        let r = elect(&state, all.clone().with_election_type(0)).await;
        assert_eq!(r.error_code, error::NONE);
        // Every topic is listed, with no partition that needed an election.
        assert!(r
            .replica_election_results
            .iter()
            .all(|t| t.partition_result.is_empty()));
        assert!(r
            .replica_election_results
            .iter()
            .any(|t| t.topic.as_str() == "t"));
        let r = elect(&state, ElectLeadersRequest::default().with_election_type(7)).await;
        assert_eq!(r.error_code, error::INVALID_REQUEST);
    }
}
