//! AddPartitionsToTxn (key 24): adds partitions to a producer's open
//! transaction (v0-3, from clients), or, from v4, checks several
//! transactions at once with `verify_only` (KIP-890, used by partition
//! leaders to refuse writes to partitions outside a transaction). A v4+
//! add that is not verify-only comes from a partition leader adding a
//! partition for a transactions-v2 producer, so it marks the transaction
//! as TV2 (Kafka's `transactionVersionForAddPartitionsToTxn`).

use super::{ApiSupport, Reply};
use crate::state::BrokerState;
use crate::txn::{add_partitions, TransactionCoordinator, TxnStatus, Txns};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ResponseKind, TopicName,
};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AddPartitionsToTxn, 0, 5);

/// v4 batched several transactions in one request.
const BATCHED_SINCE: i16 = 4;

/// A result per requested partition, with the error `code_for` gives it.
fn results(
    topics: &[AddPartitionsToTxnTopic],
    code_for: impl Fn(&TopicName, i32) -> ErrorCode,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_for(&t.name, *p))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Per-partition errors when some partitions do not exist in the cluster
/// (wherever they are led): those get UNKNOWN_TOPIC_OR_PARTITION, the rest
/// OPERATION_NOT_ATTEMPTED.
fn unknown_partitions(
    state: &BrokerState,
    topics: &[AddPartitionsToTxnTopic],
) -> Option<Vec<AddPartitionsToTxnTopicResult>> {
    let exists = |t: &TopicName, p: i32| state.partition_leader(t.0.as_str(), p).is_some();
    let all_exist = topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| exists(&t.name, *p)));
    (!all_exist).then(|| {
        results(topics, |t, p| {
            if exists(t, p) {
                error::OPERATION_NOT_ATTEMPTED
            } else {
                error::UNKNOWN_TOPIC_OR_PARTITION
            }
        })
    })
}

/// v4+ `verify_only`: are all these partitions in the ongoing transaction?
fn verify(
    txns: &Txns,
    transactional_id: &str,
    producer: (i64, i16),
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let Some(txn) = txns.get(transactional_id) else {
        return results(topics, |_, _| error::INVALID_PRODUCER_ID_MAPPING);
    };
    if let Err(e) = txn.check_producer(producer.0, producer.1) {
        return results(topics, |_, _| e.code);
    }
    if txn.status.is_prepared() {
        return results(topics, |_, _| error::CONCURRENT_TRANSACTIONS);
    }
    // Kafka's coordinator answers TRANSACTION_ABORTABLE for a partition
    // outside the transaction; the partition leader maps it for old clients.
    results(topics, |t, p| {
        let added =
            txn.status == TxnStatus::Ongoing && txn.partitions.contains(&(t.0.to_string(), p));
        if added {
            error::NONE
        } else {
            error::TRANSACTION_ABORTABLE
        }
    })
}

/// Adds or verifies one transaction's partitions; the results and any
/// write to wait for.
fn one(
    state: &BrokerState,
    txns: &mut Txns,
    transactional_id: &str,
    producer: (i64, i16),
    (verify_only, tv2): (bool, bool),
    topics: &[AddPartitionsToTxnTopic],
) -> (
    Vec<AddPartitionsToTxnTopicResult>,
    Option<crate::txn::Durable>,
) {
    if verify_only {
        return (verify(txns, transactional_id, producer, topics), None);
    }
    if let Some(results) = unknown_partitions(state, topics) {
        return (results, None);
    }
    let wanted = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    match add_partitions(state, txns, transactional_id, producer, wanted, tv2) {
        Ok(durable) => (results(topics, |_, _| error::NONE), durable),
        Err(e) => {
            tracing::debug!(transactional_id, code = e.code, message = %e.message, "AddPartitionsToTxn refused");
            (results(topics, |_, _| e.code), None)
        }
    }
}

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> Reply {
    // Checked before the coordinator's lock: the check may create
    // `__transaction_state` and load it.
    let ids: Vec<&str> = if version >= BATCHED_SINCE {
        request
            .transactions
            .iter()
            .map(|t| t.transactional_id.0.as_str())
            .collect()
    } else {
        vec![request.v3_and_below_transactional_id.0.as_str()]
    };
    let not_here: HashMap<String, ErrorCode> = ids
        .into_iter()
        .filter_map(|id| {
            TransactionCoordinator::coordinator_error(state, id).map(|code| (id.to_string(), code))
        })
        .collect();
    let mut response = AddPartitionsToTxnResponse::default();
    let mut writes = Vec::new();
    {
        let mut txns = state.txns.lock();
        let answer =
            |state: &BrokerState,
             txns: &mut Txns,
             id: &str,
             producer,
             flags,
             topics: &[AddPartitionsToTxnTopic]| match not_here.get(id) {
                Some(&code) => (results(topics, |_, _| code), None),
                None => one(state, txns, id, producer, flags, topics),
            };
        if version >= BATCHED_SINCE {
            for txn in &request.transactions {
                let (results, durable) = answer(
                    state,
                    &mut txns,
                    txn.transactional_id.0.as_str(),
                    (txn.producer_id.0, txn.producer_epoch),
                    (txn.verify_only, true),
                    &txn.topics,
                );
                writes.extend(durable);
                response.results_by_transaction.push(
                    AddPartitionsToTxnResult::default()
                        .with_transactional_id(txn.transactional_id.clone())
                        .with_topic_results(results),
                );
            }
        } else {
            let (results, durable) = answer(
                state,
                &mut txns,
                request.v3_and_below_transactional_id.0.as_str(),
                (
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                ),
                (false, false),
                &request.v3_and_below_topics,
            );
            writes.extend(durable);
            response.results_by_topic_v3_and_below = results;
        }
    }
    if writes.is_empty() {
        return Reply::Now(Box::new(ResponseKind::AddPartitionsToTxn(response)));
    }
    Reply::Later(Box::pin(async move {
        for durable in writes {
            if let Err(e) = durable.wait().await {
                tracing::error!(error = %e, "transaction state not durable");
                let fail = |results: &mut Vec<AddPartitionsToTxnTopicResult>| {
                    for p in results
                        .iter_mut()
                        .flat_map(|t| t.results_by_partition.iter_mut())
                    {
                        p.partition_error_code = error::KAFKA_STORAGE_ERROR;
                    }
                };
                fail(&mut response.results_by_topic_v3_and_below);
                for r in &mut response.results_by_transaction {
                    fail(&mut r.topic_results);
                }
            }
        }
        ResponseKind::AddPartitionsToTxn(response)
    }))
}
