//! A transactional produce whose transaction another broker coordinates:
//! before the append this leader asks that coordinator (AddPartitionsToTxn
//! v4) whether each partition is in the producer's ongoing transaction, or
//! has it added (Produce v12+), as Kafka's `AddPartitionsToTxnManager`
//! does, and maps the answers to the errors a producer of `version`
//! understands.

use super::{transactional_producer, IMPLICIT_ADD_SINCE};
use crate::controller::ApiError;
use crate::locks::MutexExt;
use crate::state::BrokerState;
use crate::txn::remote::verify_with_coordinator;
use crate::txn::{TransactionCoordinator, TRANSACTION_ABORTABLE_SINCE};
use kafka_protocol::messages::ProduceRequest;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::HashMap;

/// Per partition: the count of markers it had when verification began
/// (the append goes ahead only if it is unchanged), or the refusal.
pub(crate) type Verdicts = HashMap<(String, i32), Result<u64, ApiError>>;

/// Verifies the request's transactional batches with their coordinator
/// when it is another broker; `None` when this broker coordinates the
/// transactional id (the append checks locally) or nothing is
/// transactional.
pub(crate) async fn verify(
    state: &BrokerState,
    request: &ProduceRequest,
    version: i16,
) -> Option<Verdicts> {
    let id = request.transactional_id.as_deref()?;
    let mut asked: Vec<((String, i32), (i64, i16))> = Vec::new();
    for topic in &request.topic_data {
        for data in &topic.partition_data {
            let producer = data.records.as_deref().and_then(transactional_producer);
            let Some(producer) = producer else { continue };
            if state.partitions.get(&topic.name, data.index).is_some() {
                asked.push(((topic.name.to_string(), data.index), producer));
            }
        }
    }
    if asked.is_empty() {
        return None;
    }
    match TransactionCoordinator::coordinator_error(state, id) {
        None => return None,
        Some(error::NOT_COORDINATOR) => {}
        Some(code) => {
            let refusal = ApiError::new(
                produce_code(code, version),
                format!("the coordinator of transactional id {id} is not available"),
            );
            return Some(
                asked
                    .into_iter()
                    .map(|(p, _)| (p, Err(refusal.clone())))
                    .collect(),
            );
        }
    }
    let markers_before: HashMap<(String, i32), u64> = {
        let written = state.txns.markers_written.locked("markers written");
        asked
            .iter()
            .map(|(p, _)| (p.clone(), written.get(p).copied().unwrap_or(0)))
            .collect()
    };
    // One producer per request in practice; grouped in case of more.
    let mut by_producer: HashMap<(i64, i16), Vec<(String, i32)>> = HashMap::new();
    for (partition, producer) in asked {
        by_producer.entry(producer).or_default().push(partition);
    }
    let verify_only = version < IMPLICIT_ADD_SINCE;
    let mut verdicts = Verdicts::new();
    for (producer, partitions) in by_producer {
        let codes = verify_with_coordinator(state, id, producer, &partitions, verify_only).await;
        for partition in partitions {
            let code = codes
                .get(&partition)
                .copied()
                .unwrap_or(error::UNKNOWN_SERVER_ERROR);
            let verdict = if code == error::NONE {
                Ok(markers_before[&partition])
            } else {
                Err(ApiError::new(
                    produce_code(code, version),
                    format!(
                        "the transaction coordinator refused {}-{}: {}",
                        partition.0,
                        partition.1,
                        error::name(code)
                    ),
                ))
            };
            verdicts.insert(partition, verdict);
        }
    }
    Some(verdicts)
}

/// A coordinator's answer as the partition leader passes it to a producer
/// of `version` (Kafka's mapping): fencing is INVALID_PRODUCER_EPOCH, a
/// coordinator that cannot answer now is the retriable
/// NOT_ENOUGH_REPLICAS, and TRANSACTION_ABORTABLE is INVALID_TXN_STATE for
/// producers older than v11.
fn produce_code(code: ErrorCode, version: i16) -> ErrorCode {
    match code {
        error::PRODUCER_FENCED => error::INVALID_PRODUCER_EPOCH,
        error::CONCURRENT_TRANSACTIONS
        | error::COORDINATOR_NOT_AVAILABLE
        | error::COORDINATOR_LOAD_IN_PROGRESS
        | error::NOT_COORDINATOR => error::NOT_ENOUGH_REPLICAS,
        error::TRANSACTION_ABORTABLE if version < TRANSACTION_ABORTABLE_SINCE => {
            error::INVALID_TXN_STATE
        }
        code => code,
    }
}
