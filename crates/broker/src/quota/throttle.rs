//! Writing a throttle into a response: every Kafka response but a few
//! (SASL, DescribeQuorum, WriteTxnMarkers) carries `throttle_time_ms`.

use kafka_protocol::messages::ResponseKind;

/// Sets the response's `throttle_time_ms` to at least `ms`: a handler may
/// already have put a longer one in.
pub(crate) fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    macro_rules! raise {
        ($r:expr) => {
            $r.throttle_time_ms = $r.throttle_time_ms.max(ms)
        };
    }
    match response {
        ResponseKind::Produce(r) => raise!(r),
        ResponseKind::Fetch(r) => raise!(r),
        ResponseKind::ListOffsets(r) => raise!(r),
        ResponseKind::Metadata(r) => raise!(r),
        ResponseKind::OffsetCommit(r) => raise!(r),
        ResponseKind::OffsetFetch(r) => raise!(r),
        ResponseKind::OffsetForLeaderEpoch(r) => raise!(r),
        ResponseKind::FindCoordinator(r) => raise!(r),
        ResponseKind::JoinGroup(r) => raise!(r),
        ResponseKind::Heartbeat(r) => raise!(r),
        ResponseKind::LeaveGroup(r) => raise!(r),
        ResponseKind::SyncGroup(r) => raise!(r),
        ResponseKind::DescribeGroups(r) => raise!(r),
        ResponseKind::ListGroups(r) => raise!(r),
        ResponseKind::ApiVersions(r) => raise!(r),
        ResponseKind::CreateTopics(r) => raise!(r),
        ResponseKind::DeleteTopics(r) => raise!(r),
        ResponseKind::DescribeConfigs(r) => raise!(r),
        ResponseKind::DescribeLogDirs(r) => raise!(r),
        ResponseKind::CreatePartitions(r) => raise!(r),
        ResponseKind::IncrementalAlterConfigs(r) => raise!(r),
        ResponseKind::AlterConfigs(r) => raise!(r),
        ResponseKind::DescribeCluster(r) => raise!(r),
        ResponseKind::ElectLeaders(r) => raise!(r),
        ResponseKind::DeleteRecords(r) => raise!(r),
        ResponseKind::DeleteGroups(r) => raise!(r),
        ResponseKind::OffsetDelete(r) => raise!(r),
        ResponseKind::InitProducerId(r) => raise!(r),
        ResponseKind::AddPartitionsToTxn(r) => raise!(r),
        ResponseKind::AddOffsetsToTxn(r) => raise!(r),
        ResponseKind::EndTxn(r) => raise!(r),
        ResponseKind::TxnOffsetCommit(r) => raise!(r),
        ResponseKind::DescribeTransactions(r) => raise!(r),
        ResponseKind::DescribeProducers(r) => raise!(r),
        ResponseKind::ListTransactions(r) => raise!(r),
        ResponseKind::ConsumerGroupHeartbeat(r) => raise!(r),
        ResponseKind::ConsumerGroupDescribe(r) => raise!(r),
        ResponseKind::DescribeUserScramCredentials(r) => raise!(r),
        ResponseKind::AlterUserScramCredentials(r) => raise!(r),
        ResponseKind::DescribeAcls(r) => raise!(r),
        ResponseKind::CreateAcls(r) => raise!(r),
        ResponseKind::DeleteAcls(r) => raise!(r),
        ResponseKind::DescribeClientQuotas(r) => raise!(r),
        ResponseKind::AlterClientQuotas(r) => raise!(r),
        // No throttle field: exempt from quotas, as in Kafka.
        _ => {}
    }
}

/// The bytes a fetch response sends: its records (the rest is noise next
/// to them), which the consumer byte rate counts.
pub(crate) fn fetch_bytes(response: &ResponseKind) -> usize {
    let ResponseKind::Fetch(r) = response else {
        return 0;
    };
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()) + 40)
        .sum()
}
