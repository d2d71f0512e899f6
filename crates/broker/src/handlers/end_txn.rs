//! EndTxn (key 26): commits or aborts the producer's transaction. Answers
//! once `PrepareCommit`/`PrepareAbort` and every partition's marker are
//! durable (see [`crate::txn`]); a retry of a request that already ended
//! the transaction the same way succeeds again.

use super::{ApiSupport, Reply};
use crate::controller::ApiError;
use crate::state::BrokerState;
use crate::txn::{complete_end, prepare_end, TxnStatus};
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId, ResponseKind};
use sluice_protocol::control::Marker;
use sluice_protocol::error::{self, ErrorCode};
use std::sync::Arc;

/// v5 is transactions v2 (KIP-890 part 2), which Sluice does not enable.
pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::EndTxn, 0, 4);

fn response(code: ErrorCode, producer: (i64, i16)) -> ResponseKind {
    ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1),
    )
}

pub(crate) fn handle(state: &Arc<BrokerState>, request: EndTxnRequest) -> Reply {
    let transactional_id = request.transactional_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let marker = if request.committed {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let prepared = (|| {
        let mut txns = state.txns.lock();
        let txn = txns.get(&transactional_id).ok_or_else(|| {
            ApiError::new(
                error::INVALID_PRODUCER_ID_MAPPING,
                "unknown transactional id",
            )
        })?;
        txn.check_producer(producer.0, producer.1)?;
        let completed_as_asked = match marker {
            Marker::Commit => TxnStatus::CompleteCommit,
            Marker::Abort => TxnStatus::CompleteAbort,
        };
        match txn.status {
            TxnStatus::Ongoing => {
                prepare_end(state, &mut txns, &transactional_id, marker).map(Some)
            }
            status if status == completed_as_asked => Ok(None),
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => Err(ApiError::new(
                error::CONCURRENT_TRANSACTIONS,
                "the transaction is already ending",
            )),
            status => Err(ApiError::new(
                error::INVALID_TXN_STATE,
                format!(
                    "cannot {} a transaction in state {}",
                    if request.committed { "commit" } else { "abort" },
                    status.name()
                ),
            )),
        }
    })();
    match prepared {
        Ok(None) => Reply::Now(Box::new(response(error::NONE, producer))),
        Ok(Some(markers)) => {
            let state = state.clone();
            Reply::Later(Box::pin(async move {
                match complete_end(state, transactional_id, markers).await {
                    Ok(()) => response(error::NONE, producer),
                    Err(e) => {
                        tracing::error!(code = e.code, message = %e.message, "ending a transaction failed");
                        response(e.code, producer)
                    }
                }
            }))
        }
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, "EndTxn refused");
            Reply::Now(Box::new(response(e.code, producer)))
        }
    }
}
