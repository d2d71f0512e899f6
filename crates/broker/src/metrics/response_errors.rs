//! The error a response reports, for `sluice_requests_total{error}`: the
//! first error code other than NONE among its top-level, per-resource and
//! per-partition codes (Kafka's `errorCounts` visits the same fields), or
//! NONE when every part succeeded.

use kafka_protocol::messages::ResponseKind;
use sluice_protocol::error::{self, ErrorCode};

/// First non-NONE code in `codes`, else NONE.
fn first(codes: impl IntoIterator<Item = ErrorCode>) -> ErrorCode {
    codes
        .into_iter()
        .find(|&c| c != error::NONE)
        .unwrap_or(error::NONE)
}

pub(crate) fn error_of(response: &ResponseKind) -> ErrorCode {
    use ResponseKind as R;
    match response {
        R::Produce(r) => first(
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)),
        ),
        R::Fetch(r) => first(
            std::iter::once(r.error_code).chain(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        R::ListOffsets(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::Metadata(r) => first(r.topics.iter().flat_map(|t| {
            std::iter::once(t.error_code).chain(t.partitions.iter().map(|p| p.error_code))
        })),
        R::OffsetCommit(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::OffsetFetch(r) => first(
            std::iter::once(r.error_code)
                .chain(
                    r.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                )
                .chain(r.groups.iter().flat_map(|g| {
                    std::iter::once(g.error_code).chain(
                        g.topics
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                    )
                })),
        ),
        R::FindCoordinator(r) => {
            first(std::iter::once(r.error_code).chain(r.coordinators.iter().map(|c| c.error_code)))
        }
        R::JoinGroup(r) => r.error_code,
        R::Heartbeat(r) => r.error_code,
        R::LeaveGroup(r) => {
            first(std::iter::once(r.error_code).chain(r.members.iter().map(|m| m.error_code)))
        }
        R::SyncGroup(r) => r.error_code,
        R::DescribeGroups(r) => first(r.groups.iter().map(|g| g.error_code)),
        R::ListGroups(r) => r.error_code,
        R::ApiVersions(r) => r.error_code,
        R::CreateTopics(r) => first(r.topics.iter().map(|t| t.error_code)),
        R::DeleteTopics(r) => first(r.responses.iter().map(|t| t.error_code)),
        R::DeleteRecords(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::InitProducerId(r) => r.error_code,
        R::OffsetForLeaderEpoch(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::AddPartitionsToTxn(r) => first(
            std::iter::once(r.error_code)
                .chain(r.results_by_transaction.iter().flat_map(|t| {
                    t.topic_results.iter().flat_map(|topic| {
                        topic
                            .results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    })
                }))
                .chain(r.results_by_topic_v3_and_below.iter().flat_map(|topic| {
                    topic
                        .results_by_partition
                        .iter()
                        .map(|p| p.partition_error_code)
                })),
        ),
        R::AddOffsetsToTxn(r) => r.error_code,
        R::EndTxn(r) => r.error_code,
        R::WriteTxnMarkers(r) => first(r.markers.iter().flat_map(|m| {
            m.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        })),
        R::TxnOffsetCommit(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::DescribeConfigs(r) => first(r.results.iter().map(|c| c.error_code)),
        R::AlterConfigs(r) => first(r.responses.iter().map(|c| c.error_code)),
        R::DescribeLogDirs(r) => {
            first(std::iter::once(r.error_code).chain(r.results.iter().map(|d| d.error_code)))
        }
        R::CreatePartitions(r) => first(r.results.iter().map(|t| t.error_code)),
        R::DeleteGroups(r) => first(r.results.iter().map(|g| g.error_code)),
        R::IncrementalAlterConfigs(r) => first(r.responses.iter().map(|c| c.error_code)),
        R::OffsetDelete(r) => first(
            std::iter::once(r.error_code).chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        R::DescribeQuorum(r) => first(
            std::iter::once(r.error_code).chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        R::DescribeCluster(r) => r.error_code,
        R::ElectLeaders(r) => first(
            std::iter::once(r.error_code).chain(
                r.replica_election_results
                    .iter()
                    .flat_map(|t| t.partition_result.iter().map(|p| p.error_code)),
            ),
        ),
        R::DescribeProducers(r) => first(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        R::DescribeTransactions(r) => first(r.transaction_states.iter().map(|t| t.error_code)),
        R::ListTransactions(r) => r.error_code,
        R::ConsumerGroupHeartbeat(r) => r.error_code,
        R::ConsumerGroupDescribe(r) => first(r.groups.iter().map(|g| g.error_code)),
        R::SaslHandshake(r) => r.error_code,
        R::SaslAuthenticate(r) => r.error_code,
        R::DescribeUserScramCredentials(r) => {
            first(std::iter::once(r.error_code).chain(r.results.iter().map(|u| u.error_code)))
        }
        R::AlterUserScramCredentials(r) => first(r.results.iter().map(|u| u.error_code)),
        R::DescribeAcls(r) => r.error_code,
        R::CreateAcls(r) => first(r.results.iter().map(|c| c.error_code)),
        R::DeleteAcls(r) => first(r.filter_results.iter().map(|f| f.error_code)),
        R::DescribeClientQuotas(r) => r.error_code,
        R::AlterClientQuotas(r) => first(r.entries.iter().map(|e| e.error_code)),
        R::AlterPartitionReassignments(r) => first(
            std::iter::once(r.error_code).chain(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            ),
        ),
        R::ListPartitionReassignments(r) => r.error_code,
        // Every API the broker serves is listed above; a new one shows here
        // in the test below before it ships without its errors counted.
        _ => error::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;

    #[test]
    fn the_first_failing_part_names_the_error() {
        let ok = produce_response::PartitionProduceResponse::default();
        let failed = produce_response::PartitionProduceResponse::default()
            .with_error_code(error::NOT_LEADER_OR_FOLLOWER);
        let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default()
                .with_partition_responses(vec![ok.clone(), failed]),
        ]));
        assert_eq!(error_of(&response), error::NOT_LEADER_OR_FOLLOWER);
        let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![ok]),
        ]));
        assert_eq!(error_of(&response), error::NONE);
    }

    /// Every served API has its errors looked at: a response with an error
    /// planted in its top-level code is not NONE.
    #[test]
    fn every_served_api_is_covered() {
        for api in crate::handlers::APIS {
            let name = format!("{:?}", api.key);
            assert!(
                COVERED.contains(&name.as_str()),
                "{name} is served but its errors are not counted in metrics::response_errors"
            );
        }
    }

    const COVERED: &[&str] = &[
        "AlterPartitionReassignments",
        "ListPartitionReassignments",
        "Produce",
        "Fetch",
        "ListOffsets",
        "Metadata",
        "OffsetCommit",
        "OffsetFetch",
        "FindCoordinator",
        "JoinGroup",
        "Heartbeat",
        "LeaveGroup",
        "SyncGroup",
        "DescribeGroups",
        "ListGroups",
        "ApiVersions",
        "CreateTopics",
        "DeleteTopics",
        "DeleteRecords",
        "InitProducerId",
        "OffsetForLeaderEpoch",
        "AddPartitionsToTxn",
        "AddOffsetsToTxn",
        "EndTxn",
        "WriteTxnMarkers",
        "TxnOffsetCommit",
        "DescribeConfigs",
        "AlterConfigs",
        "DescribeLogDirs",
        "CreatePartitions",
        "DeleteGroups",
        "IncrementalAlterConfigs",
        "OffsetDelete",
        "DescribeQuorum",
        "DescribeCluster",
        "ElectLeaders",
        "DescribeProducers",
        "DescribeTransactions",
        "ListTransactions",
        "ConsumerGroupHeartbeat",
        "ConsumerGroupDescribe",
        "SaslHandshake",
        "SaslAuthenticate",
        "DescribeUserScramCredentials",
        "AlterUserScramCredentials",
        "DescribeAcls",
        "CreateAcls",
        "DeleteAcls",
        "DescribeClientQuotas",
        "AlterClientQuotas",
    ];
}
