//! FindCoordinator (key 10): this node coordinates every group and every
//! transactional id (it leads every partition of `__consumer_offsets` and
//! `__transaction_state`, which are created on the first lookup).

use super::{str_bytes, ApiSupport};
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use crate::txn::TransactionCoordinator;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::FindCoordinator, 0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// v4 moved to batched `coordinator_keys`.
const BATCHED_SINCE: i16 = 4;

fn lookup(state: &BrokerState, key_type: i8) -> (ErrorCode, Option<String>) {
    let ready = match key_type {
        KEY_TYPE_GROUP => GroupCoordinator::ensure_offsets_topic(state),
        KEY_TYPE_TRANSACTION => TransactionCoordinator::ensure_state_topic(state),
        other => {
            return (
                error::INVALID_REQUEST,
                Some(format!("unknown coordinator key type {other}")),
            )
        }
    };
    match ready {
        Ok(()) => (error::NONE, None),
        Err(e) => (error::COORDINATOR_NOT_AVAILABLE, Some(e.message)),
    }
}

pub(crate) fn handle(
    state: &BrokerState,
    request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let (code, message) = lookup(state, request.key_type);
    let (node, host, port) = if code == error::NONE {
        (
            state.node_id,
            state.advertised_host.clone(),
            state.advertised_port,
        )
    } else {
        (-1, String::new(), -1)
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= BATCHED_SINCE {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host.clone()))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.clone().map(str_bytes))
            })
            .collect();
    } else {
        response.error_code = code;
        response.error_message = message.map(str_bytes);
        response.node_id = BrokerId(node);
        response.host = str_bytes(host);
        response.port = port;
    }
    ResponseKind::FindCoordinator(response)
}
