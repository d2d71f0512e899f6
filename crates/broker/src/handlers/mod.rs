//! One module per Kafka API. Each declares the versions it serves next to its
//! code ([`ApiSupport`]); ApiVersions is computed from [`APIS`], so nothing is
//! advertised that has no handler.

use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::envelope::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) mod add_offsets_to_txn;
pub(crate) mod add_partitions_to_txn;
pub(crate) mod alter_configs;
pub(crate) mod api_versions;
pub(crate) mod consumer_group_describe;
pub(crate) mod consumer_group_heartbeat;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_groups;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_groups;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_producers;
pub(crate) mod describe_transactions;
pub(crate) mod end_txn;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod heartbeat;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_groups;
pub(crate) mod list_offsets;
pub(crate) mod list_transactions;
pub(crate) mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod produce;
pub(crate) mod sync_group;
pub(crate) mod txn_offset_commit;
pub(crate) mod write_txn_markers;

/// The versions of one API this broker advertises and serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSupport {
    pub(crate) key: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub(crate) min: i16,
    /// Lowest version actually served. Below it but at or above `min` the
    /// connection is closed, as Kafka 4 does for Produce v0-v2, which it
    /// still advertises because librdkafka derives its codec support from
    /// the advertised Produce range (KAFKA-18659).
    pub(crate) min_implemented: i16,
    pub(crate) max: i16,
}

impl ApiSupport {
    pub(crate) const fn new(key: ApiKey, min: i16, max: i16) -> Self {
        ApiSupport {
            key,
            min,
            min_implemented: min,
            max,
        }
    }
}

pub(crate) const APIS: &[ApiSupport] = &[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    offset_commit::API,
    offset_fetch::API,
    find_coordinator::API,
    join_group::API,
    heartbeat::API,
    leave_group::API,
    sync_group::API,
    describe_groups::API,
    list_groups::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    describe_configs::API,
    describe_log_dirs::API,
    create_partitions::API,
    incremental_alter_configs::API,
    alter_configs::API,
    describe_cluster::API,
    delete_records::API,
    delete_groups::API,
    offset_delete::API,
    init_producer_id::API,
    add_partitions_to_txn::API,
    add_offsets_to_txn::API,
    end_txn::API,
    write_txn_markers::API,
    txn_offset_commit::API,
    describe_transactions::API,
    describe_producers::API,
    list_transactions::API,
    consumer_group_heartbeat::API,
    consumer_group_describe::API,
];

pub(crate) fn supported(key: ApiKey) -> Option<ApiSupport> {
    APIS.iter().find(|a| a.key == key).copied()
}

pub(crate) type ResponseFuture = Pin<Box<dyn Future<Output = ResponseKind> + Send + 'static>>;

/// What a handler gives back once its in-order part has run.
pub(crate) enum Reply {
    /// The response is ready.
    Now(Box<ResponseKind>),
    /// The response comes when this future completes (a durability wait, a
    /// long poll); later requests on the connection proceed meanwhile.
    Later(ResponseFuture),
    /// No response at all (Produce with acks=0).
    Nothing,
}

/// `client_host` is the peer address, which DescribeGroups reports.
pub(crate) async fn dispatch(
    state: &Arc<BrokerState>,
    request: Request,
    client_host: &str,
) -> Reply {
    let version = request.version();
    let api_key = request.api_key;
    let client_id = request
        .header
        .client_id
        .as_deref()
        .unwrap_or_default()
        .to_string();
    match request.body {
        RequestKind::ApiVersions(req) => {
            Reply::Now(Box::new(api_versions::handle(state, &req, version)))
        }
        RequestKind::Metadata(req) => Reply::Now(Box::new(metadata::handle(state, req, version))),
        RequestKind::Produce(req) => produce::handle(state, req, version),
        RequestKind::Fetch(req) => fetch::handle(state, req, version),
        RequestKind::ListOffsets(req) => {
            Reply::Now(Box::new(list_offsets::handle(state, req, version)))
        }
        RequestKind::CreateTopics(req) => {
            Reply::Now(Box::new(create_topics::handle(state, req, version)))
        }
        RequestKind::DeleteTopics(req) => {
            Reply::Now(Box::new(delete_topics::handle(state, req, version)))
        }
        RequestKind::CreatePartitions(req) => {
            Reply::Now(Box::new(create_partitions::handle(state, req)))
        }
        RequestKind::DescribeConfigs(req) => {
            Reply::Now(Box::new(describe_configs::handle(state, req, version)))
        }
        RequestKind::AlterConfigs(req) => Reply::Now(Box::new(alter_configs::handle(state, req))),
        RequestKind::IncrementalAlterConfigs(req) => {
            Reply::Now(Box::new(incremental_alter_configs::handle(state, req)))
        }
        RequestKind::DescribeCluster(req) => {
            Reply::Now(Box::new(describe_cluster::handle(state, req)))
        }
        RequestKind::DescribeLogDirs(req) => {
            Reply::Now(Box::new(describe_log_dirs::handle(state, req)))
        }
        RequestKind::DeleteRecords(req) => delete_records::handle(state, req),
        RequestKind::InitProducerId(req) => init_producer_id::handle(state, req),
        RequestKind::AddPartitionsToTxn(req) => add_partitions_to_txn::handle(state, req, version),
        RequestKind::AddOffsetsToTxn(req) => add_offsets_to_txn::handle(state, req),
        RequestKind::EndTxn(req) => end_txn::handle(state, req, version),
        RequestKind::WriteTxnMarkers(req) => write_txn_markers::handle(state, req),
        RequestKind::TxnOffsetCommit(req) => txn_offset_commit::handle(state, req, version),
        RequestKind::DescribeProducers(req) => {
            Reply::Now(Box::new(describe_producers::handle(state, req)))
        }
        RequestKind::DescribeTransactions(req) => {
            Reply::Now(Box::new(describe_transactions::handle(state, req)))
        }
        RequestKind::ListTransactions(req) => {
            Reply::Now(Box::new(list_transactions::handle(state, req)))
        }
        RequestKind::FindCoordinator(req) => {
            Reply::Now(Box::new(find_coordinator::handle(state, req, version)))
        }
        RequestKind::JoinGroup(req) => {
            join_group::handle(state, req, version, &client_id, client_host)
        }
        RequestKind::SyncGroup(req) => sync_group::handle(state, req),
        RequestKind::Heartbeat(req) => Reply::Now(Box::new(heartbeat::handle(state, req))),
        RequestKind::LeaveGroup(req) => leave_group::handle(state, req, version),
        RequestKind::OffsetCommit(req) => offset_commit::handle(state, req, version),
        RequestKind::OffsetFetch(req) => {
            Reply::Now(Box::new(offset_fetch::handle(state, req, version)))
        }
        RequestKind::DescribeGroups(req) => {
            Reply::Now(Box::new(describe_groups::handle(state, req, version)))
        }
        RequestKind::ListGroups(req) => Reply::Now(Box::new(list_groups::handle(state, req))),
        RequestKind::DeleteGroups(req) => delete_groups::handle(state, req),
        RequestKind::OffsetDelete(req) => offset_delete::handle(state, req),
        RequestKind::ConsumerGroupHeartbeat(req) => {
            consumer_group_heartbeat::handle(state, req, version, &client_id, client_host)
        }
        RequestKind::ConsumerGroupDescribe(req) => {
            Reply::Now(Box::new(consumer_group_describe::handle(state, req)))
        }
        // `supported()` filtered every other API out before decoding.
        _ => unreachable!("dispatch of an API with no handler: {api_key:?}"),
    }
}

/// `Some(StrBytes)` from a message.
pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

#[cfg(test)]
mod version_matrix;
