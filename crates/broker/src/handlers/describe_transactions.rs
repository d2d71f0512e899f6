//! DescribeTransactions (key 65): the coordinator's view of transactional
//! ids: state, producer id and epoch, timeout, start time and partitions.

use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use crate::txn::TransactionCoordinator;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind,
    TopicName,
};
use sluice_protocol::error::{self, ErrorCode};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeTransactions, 0, 0);

pub(crate) fn handle(state: &BrokerState, request: DescribeTransactionsRequest) -> ResponseKind {
    // Checked before the coordinator's lock: the check may create
    // `__transaction_state` and load it.
    let not_here: Vec<Option<ErrorCode>> = request
        .transactional_ids
        .iter()
        .map(|id| TransactionCoordinator::coordinator_error(state, id))
        .collect();
    let txns = state.txns.lock();
    let states = request
        .transactional_ids
        .into_iter()
        .zip(not_here)
        .map(|(id, not_here)| {
            if let Some(code) = not_here {
                return TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
            }
            let Some(txn) = txns.get(id.0.as_str()) else {
                return TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(error::TRANSACTIONAL_ID_NOT_FOUND)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(0);
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &txn.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(str_bytes(txn.status.name()))
                .with_transaction_timeout_ms(txn.timeout_ms)
                .with_transaction_start_time_ms(txn.start_ms)
                .with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}
