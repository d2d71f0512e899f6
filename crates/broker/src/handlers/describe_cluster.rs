//! DescribeCluster (key 60): cluster id, controller and brokers. v2
//! (KIP-1073) may ask for fenced brokers too.

use super::{str_bytes, ApiSupport};
use crate::security::authorizer::{all_operations, resource, OPERATIONS_NOT_REQUESTED};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeCluster, 0, 2);

/// DescribeCluster v1 endpoint type for brokers (2 would be controllers).
const ENDPOINT_BROKERS: i8 = 1;

/// Brokers are described by their endpoints on `listener`, the one the
/// client connected to.
pub(crate) fn handle(
    state: &BrokerState,
    request: DescribeClusterRequest,
    listener: &str,
) -> ResponseKind {
    let mut response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(state.cluster_id()))
        .with_controller_id(BrokerId(state.controller_id()))
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            all_operations(resource::CLUSTER)
        } else {
            OPERATIONS_NOT_REQUESTED
        });
    if request.endpoint_type != ENDPOINT_BROKERS {
        response.error_code = error::MISMATCHED_ENDPOINT_TYPE;
        response.error_message = Some(str_bytes(
            "Only brokers can be described: this node runs its controller in-process.",
        ));
        return ResponseKind::DescribeCluster(response);
    }
    let image = state.image();
    let fenced = image
        .brokers
        .iter()
        .filter(|(_, b)| request.include_fenced_brokers && b.fenced)
        .filter_map(|(id, b)| state.described(*id, b, listener).map(|d| (d, true)));
    let mut brokers: Vec<DescribeClusterBroker> = state
        .live_brokers(&image, listener)
        .into_iter()
        .map(|b| (b, false))
        .chain(fenced)
        .map(|(b, is_fenced)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
                .with_is_fenced(is_fenced)
        })
        .collect();
    brokers.sort_by_key(|b| b.broker_id.0);
    response.brokers = brokers;
    ResponseKind::DescribeCluster(response)
}
