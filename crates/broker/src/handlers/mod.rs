//! One module per Kafka API. Each declares the versions it serves next to its
//! code ([`ApiSupport`]); ApiVersions is computed from [`APIS`], so nothing is
//! advertised that has no handler.

use crate::security::ConnectionAuth;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::envelope::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) mod add_offsets_to_txn;
pub(crate) mod add_partitions_to_txn;
pub(crate) mod alter_client_quotas;
pub(crate) mod alter_configs;
pub(crate) mod alter_partition_reassignments;
pub(crate) mod alter_user_scram_credentials;
pub(crate) mod api_versions;
mod authorize;
pub(crate) mod consumer_group_describe;
pub(crate) mod consumer_group_heartbeat;
pub(crate) mod create_acls;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_acls;
pub(crate) mod delete_groups;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_acls;
pub(crate) mod describe_client_quotas;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_groups;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_producers;
pub(crate) mod describe_quorum;
pub(crate) mod describe_transactions;
pub(crate) mod describe_user_scram_credentials;
pub(crate) mod elect_leaders;
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
pub(crate) mod list_partition_reassignments;
pub(crate) mod list_transactions;
pub(crate) mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod produce;
pub(crate) mod sasl_authenticate;
pub(crate) mod sasl_handshake;
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
    offset_for_leader_epoch::API,
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
    describe_quorum::API,
    elect_leaders::API,
    alter_partition_reassignments::API,
    list_partition_reassignments::API,
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
    sasl_handshake::API,
    sasl_authenticate::API,
    describe_user_scram_credentials::API,
    alter_user_scram_credentials::API,
    describe_acls::API,
    create_acls::API,
    delete_acls::API,
    describe_client_quotas::API,
    alter_client_quotas::API,
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

/// Where a request came from.
pub(crate) struct Peer {
    /// The client's address as Kafka reports it ("/127.0.0.1"), which
    /// DescribeGroups shows.
    pub(crate) host: String,
    /// The listener it connected to: Metadata, DescribeCluster and
    /// FindCoordinator describe brokers by their endpoint on it.
    pub(crate) listener: Arc<str>,
}

/// Dispatches a request of a connection that needs no authentication
/// (the console, tests), as if it came to the inter-broker listener.
pub(crate) async fn dispatch(
    state: &Arc<BrokerState>,
    request: Request,
    client_host: &str,
) -> Reply {
    let peer = Peer {
        host: client_host.to_string(),
        listener: Arc::from(state.inter_broker_listener.as_str()),
    };
    dispatch_authenticating(state, request, &peer, &mut ConnectionAuth::none()).await
}

/// `auth` is the connection's authentication, which the SASL APIs advance.
/// With an authorizer, the request is first checked against the ACLs for
/// the connection's principal and address (`authorize`).
pub(crate) async fn dispatch_authenticating(
    state: &Arc<BrokerState>,
    request: Request,
    peer: &Peer,
    auth: &mut ConnectionAuth,
) -> Reply {
    if !state.authorizer.enabled() {
        return serve(state, request, peer, auth).await;
    }
    let caller = crate::security::authorizer::Caller {
        principal: auth.principal().to_string(),
        host: peer.host.trim_start_matches('/').to_string(),
    };
    let (request, patch) = match authorize::admit(state, &caller, request) {
        authorize::Admission::Serve(request, patch) => (request, patch),
        authorize::Admission::Refuse(response) => return Reply::Now(response),
    };
    let reply = serve(state, request, peer, auth).await;
    let Some(patch) = patch else {
        return reply;
    };
    match reply {
        Reply::Now(mut response) => {
            patch(&mut response);
            Reply::Now(response)
        }
        Reply::Later(response) => Reply::Later(Box::pin(async move {
            let mut response = response.await;
            patch(&mut response);
            response
        })),
        Reply::Nothing => Reply::Nothing,
    }
}

/// Runs the request's handler.
async fn serve(
    state: &Arc<BrokerState>,
    request: Request,
    peer: &Peer,
    auth: &mut ConnectionAuth,
) -> Reply {
    let client_host = peer.host.as_str();
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
        RequestKind::Metadata(req) => {
            // Only a request that may auto-create topics can block.
            let may_create =
                req.allow_auto_topic_creation && req.topics.as_ref().is_some_and(|t| !t.is_empty());
            if may_create {
                let listener = Arc::clone(&peer.listener);
                off_reactor(state, move |s| metadata::handle(s, req, version, &listener))
            } else {
                Reply::Now(Box::new(metadata::handle(
                    state,
                    req,
                    version,
                    &peer.listener,
                )))
            }
        }
        RequestKind::Produce(req) => produce::handle(state, req, version).await,
        RequestKind::Fetch(req) => fetch::handle(state, req, version),
        RequestKind::ListOffsets(req) => {
            Reply::Now(Box::new(list_offsets::handle(state, req, version)))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            Reply::Now(Box::new(offset_for_leader_epoch::handle(state, req)))
        }
        RequestKind::CreateTopics(req) => {
            off_reactor(state, move |s| create_topics::handle(s, req, version))
        }
        RequestKind::DeleteTopics(req) => {
            off_reactor(state, move |s| delete_topics::handle(s, req, version))
        }
        RequestKind::CreatePartitions(req) => {
            off_reactor(state, move |s| create_partitions::handle(s, req))
        }
        RequestKind::ElectLeaders(req) => {
            off_reactor(state, move |s| elect_leaders::handle(s, req, version))
        }
        RequestKind::AlterPartitionReassignments(req) => off_reactor(state, move |s| {
            alter_partition_reassignments::handle(s, req, version)
        }),
        RequestKind::ListPartitionReassignments(req) => {
            Reply::Now(Box::new(list_partition_reassignments::handle(state, req)))
        }
        RequestKind::DescribeConfigs(req) => {
            Reply::Now(Box::new(describe_configs::handle(state, req, version)))
        }
        RequestKind::AlterConfigs(req) => {
            off_reactor(state, move |s| alter_configs::handle(s, req))
        }
        RequestKind::IncrementalAlterConfigs(req) => {
            off_reactor(state, move |s| incremental_alter_configs::handle(s, req))
        }
        RequestKind::DescribeCluster(req) => Reply::Now(Box::new(describe_cluster::handle(
            state,
            req,
            &peer.listener,
        ))),
        RequestKind::DescribeQuorum(req) => {
            Reply::Now(Box::new(describe_quorum::handle(state, req, version)))
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
        RequestKind::TxnOffsetCommit(req) => txn_offset_commit::handle(state, req, version).await,
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
            // The first lookup creates __consumer_offsets or __transaction_state.
            let listener = Arc::clone(&peer.listener);
            off_reactor(state, move |s| {
                find_coordinator::handle(s, req, version, &listener)
            })
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
        RequestKind::SaslHandshake(req) => {
            Reply::Now(Box::new(sasl_handshake::handle(state, req, version, auth)))
        }
        RequestKind::SaslAuthenticate(req) => {
            sasl_authenticate::handle(state, req, auth, client_host).await
        }
        RequestKind::DescribeUserScramCredentials(req) => Reply::Now(Box::new(
            describe_user_scram_credentials::handle(state, req),
        )),
        RequestKind::DescribeAcls(req) => Reply::Now(Box::new(describe_acls::handle(state, req))),
        RequestKind::CreateAcls(req) => off_reactor(state, move |s| create_acls::handle(s, req)),
        RequestKind::DeleteAcls(req) => off_reactor(state, move |s| delete_acls::handle(s, req)),
        RequestKind::DescribeClientQuotas(req) => {
            Reply::Now(Box::new(describe_client_quotas::handle(state, req)))
        }
        RequestKind::AlterClientQuotas(req) => {
            off_reactor(state, move |s| alter_client_quotas::handle(s, req))
        }
        RequestKind::AlterUserScramCredentials(req) => {
            off_reactor(state, move |s| alter_user_scram_credentials::handle(s, req))
        }
        // `supported()` filtered every other API out before decoding.
        _ => unreachable!("dispatch of an API with no handler: {api_key:?}"),
    }
}

/// Runs a handler that can block — a metadata append fsyncs, creating a
/// topic opens its logs — on tokio's blocking pool, so the produce and fetch
/// requests on the worker threads never wait behind it. A panic in it ends
/// only the connection that sent the request, as in any other handler.
fn off_reactor(
    state: &Arc<BrokerState>,
    handle: impl FnOnce(&BrokerState) -> ResponseKind + Send + 'static,
) -> Reply {
    let state = state.clone();
    // The request quota counts the time spent here too.
    let busy = crate::quota::request::current_busy();
    Reply::Later(Box::pin(async move {
        let timed = move || {
            let started = std::time::Instant::now();
            let response = handle(&state);
            if let Some(busy) = busy {
                crate::quota::request::add_busy(&busy, started.elapsed());
            }
            response
        };
        match tokio::task::spawn_blocking(timed).await {
            Ok(response) => response,
            // Cancelled only when the runtime shuts down.
            Err(e) => std::panic::resume_unwind(
                e.try_into_panic()
                    .unwrap_or_else(|e| Box::new(format!("blocking handler cancelled: {e}"))),
            ),
        }
    }))
}

/// `Some(StrBytes)` from a message.
pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

#[cfg(test)]
mod blocking_tests;
#[cfg(test)]
mod version_matrix;
