//! ListTransactions (key 66): transactional ids known to the coordinator,
//! filtered by state, producer id and (v1) how long they have been open.

use super::{str_bytes, ApiSupport};
use crate::state::{now_ms, BrokerState};
use crate::txn::TxnStatus;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind,
    TransactionalId,
};
use sluice_protocol::error;

/// v2 adds a transactional id regex filter, which Sluice does not offer.
pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ListTransactions, 0, 2);

/// v2 (KIP-1152) filters by a regular expression the whole transactional
/// id must match; empty or null lists every one.
fn id_pattern(request: &ListTransactionsRequest) -> Result<Option<regex::Regex>, String> {
    match request.transactional_id_pattern.as_deref() {
        None | Some("") => Ok(None),
        Some(p) => regex::Regex::new(&format!("^(?:{p})$"))
            .map(Some)
            .map_err(|e| format!("TransactionalIdPattern {p:?} is invalid: {e}")),
    }
}

pub(crate) fn handle(state: &BrokerState, request: ListTransactionsRequest) -> ResponseKind {
    let pattern = match id_pattern(&request) {
        Ok(p) => p,
        Err(_) => {
            return ResponseKind::ListTransactions(
                ListTransactionsResponse::default()
                    .with_error_code(error::INVALID_REGULAR_EXPRESSION),
            )
        }
    };
    let mut unknown_state_filters = Vec::new();
    let mut wanted_states = Vec::new();
    for name in &request.state_filters {
        match TxnStatus::ALL.iter().find(|s| s.name() == name.as_str()) {
            Some(s) => wanted_states.push(*s),
            None => unknown_state_filters.push(name.clone()),
        }
    }
    let now = now_ms();
    let txns = state.txns.lock();
    let mut states: Vec<TransactionState> = txns
        .iter()
        .filter(|(_, t)| request.state_filters.is_empty() || wanted_states.contains(&t.status))
        .filter(|(_, t)| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .contains(&ProducerId(t.producer_id))
        })
        .filter(|(id, _)| pattern.as_ref().is_none_or(|p| p.is_match(id)))
        .filter(|(_, t)| {
            request.duration_filter < 0
                || (t.status == TxnStatus::Ongoing
                    && now.saturating_sub(t.start_ms) >= request.duration_filter)
        })
        .map(|(id, t)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(id.clone())))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str_bytes(t.status.name()))
        })
        .collect();
    states.sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
    ResponseKind::ListTransactions(
        ListTransactionsResponse::default()
            .with_error_code(error::NONE)
            .with_unknown_state_filters(unknown_state_filters)
            .with_transaction_states(states),
    )
}
