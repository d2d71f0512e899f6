//! Where each request is authorized, as Kafka's KafkaApis does it: before
//! its handler runs, with the caller's principal and address, against the
//! ACLs of the current image (`crate::security::authorizer`). A request
//! refused whole is answered here with the API's authorization error; one
//! refused in part (some topics, groups or transactional ids) goes on
//! without those, and the patch returned puts them back in the response
//! with their error, in the places Kafka would.
//!
//! With no authorizer configured nothing here runs.

mod cluster;
mod groups;
mod operations;
mod topics;
mod txns;

use crate::security::authorizer::{resource, Caller, Operation, CLUSTER_NAME};
use crate::state::BrokerState;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use sluice_metadata::MetadataImage;
use sluice_protocol::envelope::Request;
use std::sync::Arc;

/// Adds back to a response what the request lost to authorization.
pub(crate) type Patch = Box<dyn FnOnce(&mut ResponseKind) + Send>;

/// What authorization makes of a request. (Returned once per request and
/// matched at once: boxing the request would cost an allocation each time.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Admission {
    /// Serve it (perhaps trimmed), then apply the patch to the response.
    Serve(Request, Option<Patch>),
    /// Answer this instead.
    Refuse(Box<ResponseKind>),
}

/// The caller's view of the ACLs for one request.
pub(crate) struct Access<'a> {
    state: &'a Arc<BrokerState>,
    image: Arc<MetadataImage>,
    caller: &'a Caller,
}

impl Access<'_> {
    /// A check that outlives the request, for a patch that filters a
    /// listing (ListGroups, ListTransactions) by what the caller may see.
    fn checker(&self) -> impl Fn(Operation, i8, &str) -> bool + Send + 'static {
        let (state, image, caller) = (
            Arc::clone(self.state),
            Arc::clone(&self.image),
            self.caller.clone(),
        );
        move |operation, resource_type, name| {
            state
                .authorizer
                .authorize(&image, &caller, operation, resource_type, name)
        }
    }

    fn allows(&self, operation: Operation, resource_type: i8, name: &str) -> bool {
        self.state
            .authorizer
            .authorize(&self.image, self.caller, operation, resource_type, name)
    }

    fn topic(&self, operation: Operation, name: &str) -> bool {
        self.allows(operation, resource::TOPIC, name)
    }

    fn group(&self, operation: Operation, name: &str) -> bool {
        self.allows(operation, resource::GROUP, name)
    }

    fn cluster(&self, operation: Operation) -> bool {
        self.allows(operation, resource::CLUSTER, CLUSTER_NAME)
    }

    fn transactional_id(&self, operation: Operation, id: &str) -> bool {
        self.allows(operation, resource::TRANSACTIONAL_ID, id)
    }

    /// Kafka's "Create on the cluster, or else on the topic".
    fn may_create_topic(&self, name: &str) -> bool {
        self.cluster(Operation::Create) || self.topic(Operation::Create, name)
    }

    /// A topic's name by id in the current image.
    fn topic_name(&self, id: &sluice_metadata::Uuid) -> Option<String> {
        self.image.topic_by_id(id).map(|t| t.name.clone())
    }
}

/// Authorizes `request` for `caller`.
pub(crate) fn admit(state: &Arc<BrokerState>, caller: &Caller, mut request: Request) -> Admission {
    if !state.authorizer.enabled() {
        return Admission::Serve(request, None);
    }
    let access = Access {
        state,
        image: state.image(),
        caller,
    };
    let version = request.version();
    let outcome = match &mut request.body {
        RequestKind::ApiVersions(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_) => Ok(None),
        RequestKind::DescribeCluster(r) => Ok(operations::describe_cluster(&access, r)),
        RequestKind::Metadata(r) => Ok(then(
            topics::metadata(&access, r),
            operations::metadata(&access, r),
        )),
        RequestKind::Produce(r) => topics::produce(&access, r),
        RequestKind::Fetch(r) => topics::fetch(&access, r),
        RequestKind::ListOffsets(r) => Ok(topics::list_offsets(&access, r)),
        RequestKind::OffsetForLeaderEpoch(r) => topics::offset_for_leader_epoch(&access, r),
        RequestKind::CreateTopics(r) => Ok(topics::create_topics(&access, r)),
        RequestKind::DeleteTopics(r) => Ok(topics::delete_topics(&access, r)),
        RequestKind::CreatePartitions(r) => Ok(topics::create_partitions(&access, r)),
        RequestKind::DeleteRecords(r) => Ok(topics::delete_records(&access, r)),
        RequestKind::DescribeProducers(r) => Ok(topics::describe_producers(&access, r)),
        RequestKind::DescribeConfigs(r) => Ok(cluster::describe_configs(&access, r)),
        RequestKind::AlterConfigs(r) => Ok(cluster::alter_configs(&access, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            Ok(cluster::incremental_alter_configs(&access, r))
        }
        RequestKind::DescribeQuorum(r) => cluster::describe_quorum(&access, r),
        RequestKind::DescribeLogDirs(r) => cluster::describe_log_dirs(&access, r),
        RequestKind::ElectLeaders(r) => cluster::elect_leaders(&access, r),
        RequestKind::AlterPartitionReassignments(r) => cluster::alter_reassignments(&access, r),
        RequestKind::ListPartitionReassignments(r) => cluster::list_reassignments(&access, r),
        RequestKind::DescribeUserScramCredentials(r) => cluster::describe_scram(&access, r),
        RequestKind::AlterUserScramCredentials(r) => cluster::alter_scram(&access, r),
        RequestKind::DescribeAcls(r) => cluster::describe_acls(&access, r),
        RequestKind::CreateAcls(r) => cluster::create_acls(&access, r),
        RequestKind::DeleteAcls(r) => cluster::delete_acls(&access, r),
        RequestKind::WriteTxnMarkers(r) => cluster::write_txn_markers(&access, r),
        RequestKind::DescribeClientQuotas(r) => cluster::describe_client_quotas(&access, r),
        RequestKind::AlterClientQuotas(r) => cluster::alter_client_quotas(&access, r),
        RequestKind::FindCoordinator(r) => groups::find_coordinator(&access, r, version),
        RequestKind::JoinGroup(r) => groups::join_group(&access, r),
        RequestKind::SyncGroup(r) => groups::sync_group(&access, r),
        RequestKind::Heartbeat(r) => groups::heartbeat(&access, r),
        RequestKind::LeaveGroup(r) => groups::leave_group(&access, r),
        RequestKind::OffsetCommit(r) => groups::offset_commit(&access, r),
        RequestKind::OffsetFetch(r) => groups::offset_fetch(&access, r, version),
        RequestKind::DescribeGroups(r) => Ok(then(
            groups::describe_groups(&access, r),
            operations::describe_groups(&access, r),
        )),
        RequestKind::ListGroups(_) => Ok(groups::list_groups(&access)),
        RequestKind::DeleteGroups(r) => Ok(groups::delete_groups(&access, r)),
        RequestKind::OffsetDelete(r) => groups::offset_delete(&access, r),
        RequestKind::ConsumerGroupHeartbeat(r) => groups::consumer_group_heartbeat(&access, r),
        RequestKind::ConsumerGroupDescribe(r) => Ok(then(
            groups::consumer_group_describe(&access, r),
            operations::consumer_group_describe(&access, r),
        )),
        RequestKind::InitProducerId(r) => txns::init_producer_id(&access, r),
        RequestKind::AddPartitionsToTxn(r) => txns::add_partitions_to_txn(&access, r, version),
        RequestKind::AddOffsetsToTxn(r) => txns::add_offsets_to_txn(&access, r),
        RequestKind::EndTxn(r) => txns::end_txn(&access, r),
        RequestKind::TxnOffsetCommit(r) => txns::txn_offset_commit(&access, r),
        RequestKind::DescribeTransactions(r) => Ok(txns::describe_transactions(&access, r)),
        RequestKind::ListTransactions(_) => Ok(txns::list_transactions(&access)),
        // `supported()` lets no other API through; a new one must say here
        // what it needs before it can be served.
        other => unreachable!("no authorization rule for {other:?}"),
    };
    match outcome {
        Ok(patch) => Admission::Serve(request, patch),
        Err(response) => Admission::Refuse(response),
    }
}

/// The outcome of one API's check: a patch for what was trimmed, or the
/// whole answer.
type Checked = Result<Option<Patch>, Box<ResponseKind>>;

/// Answers the whole request with `response`.
fn refuse(response: ResponseKind) -> Checked {
    Err(Box::new(response))
}

/// One patch after the other.
fn then(first: Option<Patch>, second: Option<Patch>) -> Option<Patch> {
    match (first, second) {
        (Some(first), Some(second)) => Some(Box::new(move |response: &mut ResponseKind| {
            first(response);
            second(response);
        })),
        (first, second) => first.or(second),
    }
}

/// Removes the items `allowed` refuses from `items` and returns them.
fn take_refused<T>(items: &mut Vec<T>, mut allowed: impl FnMut(&T) -> bool) -> Vec<T> {
    let (kept, refused): (Vec<T>, Vec<T>) = std::mem::take(items)
        .into_iter()
        .partition(|item| allowed(item));
    *items = kept;
    refused
}

/// A patch, or none when nothing was refused.
fn patch_if<T: Send + 'static>(
    refused: Vec<T>,
    apply: impl FnOnce(&mut ResponseKind, Vec<T>) + Send + 'static,
) -> Option<Patch> {
    (!refused.is_empty()).then(|| Box::new(move |r: &mut ResponseKind| apply(r, refused)) as Patch)
}
