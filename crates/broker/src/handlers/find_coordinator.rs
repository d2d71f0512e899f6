//! FindCoordinator (key 10): a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition (both topics are created on the first
//! lookup).

use super::{str_bytes, ApiSupport};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::state::{BrokerState, LiveBroker};
use crate::txn::TransactionCoordinator;
use crate::txn::TRANSACTION_STATE_TOPIC;
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

fn lookup(state: &BrokerState, key_type: i8) -> (ErrorCode, Option<String>, &'static str) {
    let (ready, topic) = match key_type {
        KEY_TYPE_GROUP => (GroupCoordinator::ensure_offsets_topic(state), OFFSETS_TOPIC),
        KEY_TYPE_TRANSACTION => (
            TransactionCoordinator::ensure_state_topic(state),
            TRANSACTION_STATE_TOPIC,
        ),
        other => {
            return (
                error::INVALID_REQUEST,
                Some(format!("unknown coordinator key type {other}")),
                "",
            )
        }
    };
    match ready {
        Ok(()) => (error::NONE, None, topic),
        Err(e) => (error::COORDINATOR_NOT_AVAILABLE, Some(e.message), topic),
    }
}

/// The live leader of `key`'s partition of `topic`.
fn coordinator(
    state: &BrokerState,
    topic: &str,
    key: &str,
    listener: &str,
) -> Result<LiveBroker, String> {
    let image = state.image();
    let partitions = image
        .topic(topic)
        .map(|t| &t.partitions[..])
        .unwrap_or_default();
    let index = partition_for(key, partitions.len() as i32);
    let leader = usize::try_from(index)
        .ok()
        .and_then(|i| partitions.get(i))
        .map_or(-1, |p| p.leader);
    state
        .live_broker(&image, leader, listener)
        .ok_or_else(|| format!("{topic}-{index} has no live leader"))
}

pub(crate) fn handle(
    state: &BrokerState,
    request: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> ResponseKind {
    let (code, message, topic) = lookup(state, request.key_type);
    let find = |key: &str| -> (ErrorCode, Option<String>, i32, String, i32) {
        if code != error::NONE {
            return (code, message.clone(), -1, String::new(), -1);
        }
        match coordinator(state, topic, key, listener) {
            Ok(b) => (error::NONE, None, b.node_id, b.host, b.port),
            Err(why) => (
                error::COORDINATOR_NOT_AVAILABLE,
                Some(why),
                -1,
                String::new(),
                -1,
            ),
        }
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= BATCHED_SINCE {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, message, node, host, port) = find(key);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes))
            })
            .collect();
    } else {
        let (code, message, node, host, port) = find(&request.key);
        response.error_code = code;
        response.error_message = message.map(str_bytes);
        response.node_id = BrokerId(node);
        response.host = str_bytes(host);
        response.port = port;
    }
    ResponseKind::FindCoordinator(response)
}
