//! AlterPartitionReassignments (key 45, KIP-455): move partitions to other
//! replicas, replace a reassignment in progress, or cancel one (null
//! replicas), as `kafka-reassign-partitions --execute/--cancel` and
//! `sluice topic reassign` ask. Decided by the controller against the
//! latest image (`sluice_metadata::reassignment`); the answer comes once
//! the reassignment has begun. The added replicas then copy the data by
//! fetching from the leader, and the controller finishes the move when
//! every target replica is in sync.

use super::{str_bytes, ApiSupport};
use crate::controller::{ApiError, Controller};
use crate::state::BrokerState;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, ResponseKind,
};
use sluice_metadata::reassignment::{reassign, ReassignError};
use sluice_metadata::{MetadataImage, MetadataRecord};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AlterPartitionReassignments, 0, 1);

/// v1 (KIP-860) may refuse replication factor changes.
const RF_CHANGE_FLAG_SINCE: i16 = 1;

/// (topic, partition, target replicas; `None` cancels).
type Asked = Vec<(String, i32, Option<Vec<i32>>)>;

/// One partition's answer.
type Outcome = (ErrorCode, Option<String>);

fn refusal_code(refusal: &ReassignError) -> ErrorCode {
    match refusal {
        ReassignError::UnknownPartition => error::UNKNOWN_TOPIC_OR_PARTITION,
        ReassignError::NoReassignmentInProgress => error::NO_REASSIGNMENT_IN_PROGRESS,
        ReassignError::InvalidAssignment(_) => error::INVALID_REPLICA_ASSIGNMENT,
        ReassignError::ReplicationFactorChange { .. } => error::INVALID_REPLICATION_FACTOR,
    }
}

fn decide(
    image: &MetadataImage,
    asked: &Asked,
    allow_rf_change: bool,
) -> (Vec<MetadataRecord>, Vec<Outcome>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(asked.len());
    for (topic, partition, target) in asked {
        let decided = match image.topic(topic) {
            None => Err(ReassignError::UnknownPartition),
            Some(t) => reassign(image, t.id, *partition, target.as_deref(), allow_rf_change),
        };
        outcomes.push(match decided {
            Ok(mut appended) => {
                records.append(&mut appended);
                (error::NONE, None)
            }
            Err(refusal) => (
                refusal_code(&refusal),
                Some(format!("{topic}-{partition}: {refusal}")),
            ),
        });
    }
    (records, outcomes)
}

pub(crate) fn handle(
    state: &BrokerState,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> ResponseKind {
    let allow_rf_change = version < RF_CHANGE_FLAG_SINCE || request.allow_replication_factor_change;
    let asked: Asked = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let decided = Controller::new(state).commit_with(|image| {
        let (records, outcomes) = decide(image, &asked, allow_rf_change);
        Ok::<_, ApiError>((records, outcomes))
    });
    let mut response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(e) => {
            response.error_code = e.code;
            response.error_message = Some(str_bytes(e.message.clone()));
            vec![(e.code, Some(e.message)); asked.len()]
        }
    };
    let mut outcomes = outcomes.into_iter();
    response.responses = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let (code, message) = outcomes.next().unwrap_or((error::NONE, None));
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::AlterPartitionReassignments(response)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ListPartitionReassignmentsRequest,
        RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::error;

    fn topic(name: &str, partitions: Vec<(i32, Option<Vec<i32>>)>) -> ReassignableTopic {
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(
                partitions
                    .into_iter()
                    .map(|(index, replicas)| {
                        ReassignablePartition::default()
                            .with_partition_index(index)
                            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
                    })
                    .collect(),
            )
    }

    #[tokio::test]
    async fn a_single_node_answers_each_partition_and_lists_nothing_in_progress() {
        let (_dir, state) = test_state();
        crate::quorum_setup::register(&state, sluice_metadata::Uuid::new_v4())
            .await
            .unwrap();
        create_topic(&state, "t", 2).await;
        let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            topic("t", vec![(0, Some(vec![1])), (1, None), (5, Some(vec![1]))]),
            topic("t", vec![(0, Some(vec![1, 1])), (0, Some(vec![7]))]),
            topic("missing", vec![(0, Some(vec![1]))]),
        ]);
        let Some(ResponseKind::AlterPartitionReassignments(r)) = call(
            &state,
            ApiKey::AlterPartitionReassignments,
            0,
            RequestKind::AlterPartitionReassignments(request),
        )
        .await
        else {
            panic!("no answer");
        };
        let codes: Vec<Vec<i16>> = r
            .responses
            .iter()
            .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
            .collect();
        assert_eq!(
            codes,
            vec![
                vec![
                    error::NONE,
                    error::NO_REASSIGNMENT_IN_PROGRESS,
                    error::UNKNOWN_TOPIC_OR_PARTITION
                ],
                vec![
                    error::INVALID_REPLICA_ASSIGNMENT,
                    error::INVALID_REPLICA_ASSIGNMENT
                ],
                vec![error::UNKNOWN_TOPIC_OR_PARTITION],
            ]
        );
        assert!(r.responses[1].partitions[1]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("broker 7 is not registered")));

        let rf_change = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(false)
            .with_topics(vec![topic("t", vec![(0, Some(vec![1, 1]))])]);
        let Some(ResponseKind::AlterPartitionReassignments(r)) = call(
            &state,
            ApiKey::AlterPartitionReassignments,
            1,
            RequestKind::AlterPartitionReassignments(rf_change),
        )
        .await
        else {
            panic!("no answer");
        };
        assert_eq!(
            r.responses[0].partitions[0].error_code,
            error::INVALID_REPLICA_ASSIGNMENT,
            "a bad list is refused before the replication factor"
        );

        let list = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0, 1, 9]),
        ]));
        let Some(ResponseKind::ListPartitionReassignments(r)) = call(
            &state,
            ApiKey::ListPartitionReassignments,
            0,
            RequestKind::ListPartitionReassignments(list),
        )
        .await
        else {
            panic!("no answer");
        };
        assert_eq!(r.error_code, error::NONE);
        assert!(r.topics.is_empty(), "{r:?}");
    }
}
