//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets`
//! partition to the producer's transaction, so offsets committed with
//! TxnOffsetCommit are committed or aborted with it.

use super::{ApiSupport, Reply};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::state::BrokerState;
use crate::txn::{add_partitions, TransactionCoordinator};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey, ResponseKind,
};
use sluice_protocol::error::{self, ErrorCode};
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AddOffsetsToTxn, 0, 4);

fn response(code: ErrorCode) -> ResponseKind {
    ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: AddOffsetsToTxnRequest) -> Reply {
    if let Some(code) = TransactionCoordinator::coordinator_error(state, &request.transactional_id)
    {
        return Reply::Now(Box::new(response(code)));
    }
    if let Err(e) = GroupCoordinator::ensure_offsets_topic(state) {
        tracing::warn!(error = %e.message, "no offsets topic");
        return Reply::Now(Box::new(response(error::COORDINATOR_NOT_AVAILABLE)));
    }
    let count = state
        .image()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |t| t.partitions.len() as i32);
    let partition = partition_for(request.group_id.0.as_str(), count);
    let added = add_partitions(
        state,
        &mut state.txns.lock(),
        request.transactional_id.0.as_str(),
        (request.producer_id.0, request.producer_epoch),
        vec![(OFFSETS_TOPIC.to_string(), partition)],
        // Kafka's handleAddOffsetsToTxnRequest always passes TV_0.
        false,
    );
    match added {
        Ok(None) => Reply::Now(Box::new(response(error::NONE))),
        Ok(Some(durable)) => Reply::Later(Box::pin(async move {
            match durable.wait().await {
                Ok(()) => response(error::NONE),
                Err(e) => {
                    tracing::error!(error = %e, "transaction state not durable");
                    response(error::KAFKA_STORAGE_ERROR)
                }
            }
        })),
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, "AddOffsetsToTxn refused");
            Reply::Now(Box::new(response(e.code)))
        }
    }
}
