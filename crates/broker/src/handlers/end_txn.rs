//! EndTxn (key 26): commits or aborts the producer's transaction. Answers
//! once `PrepareCommit`/`PrepareAbort` and every partition's marker are
//! durable (see [`crate::txn`]).
//!
//! v0-4 are transactions v1: the epoch stays, and a retry of a request that
//! already ended the transaction the same way succeeds again. v5 is
//! transactions v2 (KIP-890 part 2): every commit and abort bumps the
//! producer epoch (a new producer id once it is exhausted), the markers
//! carry the new epoch, and the response returns the id and epoch to use
//! next. A v5 retry is recognised by its epoch being one below the current
//! one (or, after a rotation, by the previous producer id at Short.MAX - 1),
//! as in Kafka's `TransactionCoordinator.endTransaction`.

use super::{ApiSupport, Reply};
use crate::controller::ApiError;
use crate::state::BrokerState;
use crate::txn::TransactionCoordinator;
use crate::txn::{
    bump_for_end, end_within, prepare_end, TxnMetadata, TxnStatus, END_TXN_REMOTE_WAIT,
    EPOCH_EXHAUSTED,
};
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};
use sluice_protocol::control::Marker;
use sluice_protocol::error::{self, ErrorCode};
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::EndTxn, 0, 5);

/// EndTxn v5 is spoken by transactions-v2 clients only (Kafka's
/// `TransactionVersion.transactionVersionForEndTxn`).
const TV2_SINCE: i16 = 5;

fn response(code: ErrorCode, producer: (i64, i16)) -> ResponseKind {
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1),
    )
}

fn invalid_transition(status: TxnStatus, commit: bool) -> ApiError {
    ApiError::new(
        error::INVALID_TXN_STATE,
        format!(
            "cannot {} a transaction in state {}",
            if commit { "commit" } else { "abort" },
            status.name()
        ),
    )
}

/// What to do with an EndTxn.
enum Decision {
    /// Already done (a retry): answer at once with the current identity.
    Done,
    /// End the open transaction; `bump` for transactions v2.
    End { bump: bool },
}

/// Transactions v1: the epoch must be the current one.
fn decide_v1(txn: &TxnMetadata, producer: (i64, i16), commit: bool) -> Result<Decision, ApiError> {
    txn.check_producer(producer.0, producer.1)?;
    match (txn.status, commit) {
        (TxnStatus::Ongoing, _) => Ok(Decision::End { bump: false }),
        (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(Decision::Done),
        (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => Err(ApiError::new(
            error::CONCURRENT_TRANSACTIONS,
            "the transaction is already ending",
        )),
        (status, _) => Err(invalid_transition(status, commit)),
    }
}

/// Transactions v2: the same epoch means "this transaction"; one below
/// the current epoch means a retry of the EndTxn that bumped it.
fn decide_v2(txn: &TxnMetadata, producer: (i64, i16), commit: bool) -> Result<Decision, ApiError> {
    let (producer_id, epoch) = producer;
    let retry_on_overflow = txn.previous_producer_id == producer_id
        && epoch == EPOCH_EXHAUSTED
        && txn.producer_epoch == 0;
    let retry_on_bump = i32::from(txn.producer_epoch) == i32::from(epoch) + 1;
    let current = epoch == txn.producer_epoch;
    if txn.producer_id != producer_id && !retry_on_overflow {
        return Err(ApiError::new(
            error::INVALID_PRODUCER_ID_MAPPING,
            format!(
                "producer id {producer_id} is not the current one ({}) of this transactional id",
                txn.producer_id
            ),
        ));
    }
    let valid_epoch = match txn.status {
        TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => retry_on_bump,
        TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
            retry_on_bump || retry_on_overflow || current
        }
        _ => current,
    };
    if !valid_epoch {
        return Err(ApiError::new(
            error::PRODUCER_FENCED,
            format!(
                "producer epoch {epoch} is neither the current epoch {} nor a retry of the last EndTxn",
                txn.producer_epoch
            ),
        ));
    }
    let retry = retry_on_bump || retry_on_overflow;
    match (txn.status, commit) {
        (TxnStatus::Ongoing, _) => Ok(Decision::End { bump: true }),
        (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) if retry => {
            Ok(Decision::Done)
        }
        // An abort with nothing added still bumps the epoch (Kafka's
        // "empty abort" under TV2).
        (TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort, false)
            if !retry =>
        {
            Ok(Decision::End { bump: true })
        }
        (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => Err(ApiError::new(
            error::CONCURRENT_TRANSACTIONS,
            "the transaction is already ending",
        )),
        (status, _) => Err(invalid_transition(status, commit)),
    }
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: EndTxnRequest, version: i16) -> Reply {
    let transactional_id = request.transactional_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let commit = request.committed;
    let marker = if commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let tv2 = version >= TV2_SINCE;
    let prepared = (|| {
        if transactional_id.is_empty() {
            return Err(ApiError::new(
                error::INVALID_REQUEST,
                "empty transactional id",
            ));
        }
        if let Some(code) = TransactionCoordinator::coordinator_error(state, &transactional_id) {
            return Err(ApiError::new(
                code,
                "this broker does not coordinate the transactional id now",
            ));
        }
        let mut txns = state.txns.lock();
        let txn = txns.get_mut(&transactional_id).ok_or_else(|| {
            ApiError::new(
                error::INVALID_PRODUCER_ID_MAPPING,
                "unknown transactional id",
            )
        })?;
        let decision = if tv2 {
            decide_v2(txn, producer, commit)?
        } else {
            decide_v1(txn, producer, commit)?
        };
        match decision {
            Decision::Done => Ok(Err((txn.producer_id, txn.producer_epoch))),
            Decision::End { bump } => {
                let change = |txn: &mut TxnMetadata| {
                    if !bump {
                        return Ok(());
                    }
                    if txn.status != TxnStatus::Ongoing {
                        // Nothing was added: an empty transaction to abort.
                        txn.partitions.clear();
                        txn.start_ms = crate::state::now_ms();
                    }
                    bump_for_end(state, txn)
                };
                prepare_end(state, &mut txns, &transactional_id, marker, change).map(Ok)
            }
        }
    })();
    match prepared {
        Ok(Err(current)) => Reply::Now(Box::new(response(error::NONE, current))),
        Ok(Ok(markers)) => {
            let state = state.clone();
            Reply::Later(Box::pin(async move {
                match end_within(state, transactional_id, markers, END_TXN_REMOTE_WAIT).await {
                    Ok(next) => response(error::NONE, next),
                    Err(e) => {
                        tracing::error!(code = e.code, message = %e.message, "ending a transaction failed");
                        response(e.code, (-1, -1))
                    }
                }
            }))
        }
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, "EndTxn refused");
            Reply::Now(Box::new(response(e.code, (-1, -1))))
        }
    }
}
