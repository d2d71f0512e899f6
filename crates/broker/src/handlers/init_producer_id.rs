//! InitProducerId (key 22): hands producers their id and epoch. Ids come
//! from blocks recorded in the metadata log, so they never repeat across
//! restarts. A transactional id keeps its producer id and gets a new epoch
//! each time, which fences older producers with the same transactional id;
//! a transaction such a producer left open is aborted first.

use super::{ApiSupport, Reply};
use crate::controller::{ApiError, Controller};
use crate::locks::MutexExt;
use crate::state::{now_ms, BrokerState};
use crate::txn::{
    complete_end, prepare_end, Durable, TransactionCoordinator, TxnMetadata, TxnStatus, Txns,
    EPOCH_EXHAUSTED,
};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use sluice_metadata::MetadataRecord;
use sluice_protocol::control::Marker;
use sluice_protocol::error;
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::InitProducerId, 0, 5);

/// Producer ids reserved per metadata record.
const ID_BLOCK: i64 = 1000;

fn response(code: i16, id: i64, epoch: i16) -> ResponseKind {
    ResponseKind::InitProducerId(
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
    )
}

/// Takes the next producer id, reserving a new block durably when the
/// current one is used up.
pub(crate) fn allocate(state: &BrokerState) -> Result<i64, crate::controller::ApiError> {
    let mut ids = state.producer_ids.locked("producer id");
    let (next, end) = *ids;
    if next < end {
        ids.0 += 1;
        return Ok(next);
    }
    let start = Controller::new(state).commit_with(|image| {
        let start = image.next_producer_id.max(next);
        Ok((
            vec![MetadataRecord::ProducerIdsAllocated {
                next: start + ID_BLOCK,
            }],
            start,
        ))
    })?;
    *ids = (start + 1, start + ID_BLOCK);
    Ok(start)
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: InitProducerIdRequest) -> Reply {
    match request.transactional_id.as_ref().map(|id| id.to_string()) {
        None => Reply::Now(Box::new(init_idempotent(state, &request))),
        Some(id) if id.is_empty() => Reply::Now(Box::new(response(error::INVALID_REQUEST, -1, -1))),
        Some(id) => match init_transactional(state, id, &request) {
            Ok(reply) => reply,
            Err(e) => Reply::Now(Box::new(response(e.code, -1, -1))),
        },
    }
}

fn init_idempotent(state: &BrokerState, request: &InitProducerIdRequest) -> ResponseKind {
    // KIP-360: a known idempotent producer may bump its epoch to recover.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response(
            error::NONE,
            request.producer_id.0,
            request.producer_epoch + 1,
        );
    }
    match allocate(state) {
        Ok(id) => response(error::NONE, id, 0),
        Err(e) => {
            tracing::error!(error = %e.message, "cannot allocate producer ids");
            response(error::COORDINATOR_NOT_AVAILABLE, -1, -1)
        }
    }
}

fn init_transactional(
    state: &Arc<BrokerState>,
    transactional_id: String,
    request: &InitProducerIdRequest,
) -> Result<Reply, ApiError> {
    let timeout_ms = request.transaction_timeout_ms;
    let max = state.broker_i64("transaction.max.timeout.ms");
    if timeout_ms <= 0 || i64::from(timeout_ms) > max {
        return Err(ApiError::new(
            error::INVALID_TRANSACTION_TIMEOUT,
            format!("transaction.timeout.ms {timeout_ms} is not in 1..={max} (transaction.max.timeout.ms)"),
        ));
    }
    if let Some(code) = TransactionCoordinator::coordinator_error(state, &transactional_id) {
        return Err(ApiError::new(
            code,
            "this broker does not coordinate the transactional id now",
        ));
    }
    let mut txns = state.txns.lock();
    if let Some(txn) = txns.get(&transactional_id) {
        if matches!(
            txn.status,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort
        ) {
            return Err(ApiError::new(
                error::CONCURRENT_TRANSACTIONS,
                "a transaction is ending",
            ));
        }
        // KIP-360: a producer that says who it is must be the current one;
        // any other is fenced, as Kafka's coordinator answers.
        if request.producer_id.0 >= 0 {
            txn.check_producer(request.producer_id.0, request.producer_epoch)
                .map_err(|e| ApiError::new(error::PRODUCER_FENCED, e.message))?;
        }
    }
    let ongoing = txns
        .get(&transactional_id)
        .is_some_and(|t| t.status == TxnStatus::Ongoing);
    if !ongoing {
        let (durable, id, epoch) = bump(state, &mut txns, &transactional_id, timeout_ms)?;
        return Ok(reply_when_durable(durable, id, epoch));
    }
    // Fence the producer that left a transaction open: abort it under a
    // newer epoch, then hand out the next one.
    let fence = |txn: &mut TxnMetadata| {
        txn.producer_epoch = txn.producer_epoch.saturating_add(1).min(i16::MAX - 1);
        Ok(())
    };
    let markers = prepare_end(state, &mut txns, &transactional_id, Marker::Abort, fence)?;
    drop(txns);
    let state = state.clone();
    Ok(Reply::Later(Box::pin(async move {
        let result = async {
            complete_end(state.clone(), transactional_id.clone(), markers).await?;
            let mut txns = state.txns.lock();
            bump(&state, &mut txns, &transactional_id, timeout_ms)
        }
        .await;
        match result {
            Ok((durable, id, epoch)) => match durable.wait().await {
                Ok(()) => response(error::NONE, id, epoch),
                Err(e) => response_for(&ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string())),
            },
            Err(e) => response_for(&e),
        }
    })))
}

/// Moves the transactional id to a new epoch (a new producer id when the
/// epoch is exhausted, or on first use) with no open transaction.
fn bump(
    state: &BrokerState,
    txns: &mut Txns,
    transactional_id: &str,
    timeout_ms: i32,
) -> Result<(Durable, i64, i16), ApiError> {
    let previous = txns.get(transactional_id).map_or(-1, |t| t.producer_id);
    let (producer_id, producer_epoch) = match txns.get(transactional_id) {
        Some(t) if t.producer_epoch < EPOCH_EXHAUSTED => (t.producer_id, t.producer_epoch + 1),
        _ => (allocate(state)?, 0),
    };
    // A new producer session: its transaction version shows in its requests.
    let txn = TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        status: TxnStatus::Empty,
        last_update_ms: now_ms(),
        start_ms: -1,
        previous_producer_id: previous,
        ..TxnMetadata::default()
    };
    let durable = TransactionCoordinator::persist(state, transactional_id, &txn)?;
    txns.insert(transactional_id.to_string(), txn);
    Ok((durable, producer_id, producer_epoch))
}

fn response_for(e: &ApiError) -> ResponseKind {
    tracing::debug!(code = e.code, message = %e.message, "InitProducerId refused");
    response(e.code, -1, -1)
}

fn reply_when_durable(durable: Durable, id: i64, epoch: i16) -> Reply {
    Reply::Later(Box::pin(async move {
        match durable.wait().await {
            Ok(()) => response(error::NONE, id, epoch),
            Err(e) => response_for(&ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string())),
        }
    }))
}
