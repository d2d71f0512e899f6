//! Transaction administration: list the transactional ids every broker
//! coordinates (ListTransactions) and describe them at their coordinator
//! (DescribeTransactions), like Kafka's `kafka-transactions.sh`.

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TransactionalId,
};

use crate::admin::{s, Admin};
use crate::error::{Error, Result};
use crate::group::{coordinator_retriable, CoordinatorType};

/// Which transactions [`Admin::list_transactions`] returns; empty lists
/// match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilters {
    /// Coordinator states, e.g. `Ongoing`, `CompleteCommit` (exact names).
    pub states: Vec<String>,
    /// Producer ids.
    pub producer_ids: Vec<i64>,
}

/// A transactional id as listed by ListTransactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its current producer id.
    pub producer_id: i64,
    /// The coordinator's state for it (`Ongoing`, `CompleteCommit`, ...).
    pub state: String,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// A transactional id as described by its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The broker coordinating it.
    pub coordinator: i32,
    /// The coordinator's state for it.
    pub state: String,
    /// Current producer id.
    pub producer_id: i64,
    /// Current producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer registered.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), -1 when none
    /// is open.
    pub start_time_ms: i64,
    /// Partitions in the open transaction, sorted.
    pub partitions: Vec<(String, i32)>,
}

const COORDINATOR_ATTEMPTS: u32 = 6;

impl Admin {
    /// Lists the transactional ids of every broker (ListTransactions),
    /// sorted by id. Fails on a state name the brokers do not know.
    pub async fn list_transactions(
        &self,
        filters: &TransactionFilters,
    ) -> Result<Vec<TransactionListing>> {
        let md = self.cluster.refresh_metadata(Some(&[])).await?;
        let mut out = Vec::new();
        for &id in md.brokers.keys() {
            let conn = self.cluster.broker_connection(id).await?;
            let req = ListTransactionsRequest::default()
                .with_state_filters(filters.states.iter().map(|st| s(st.clone())).collect())
                .with_producer_id_filters(
                    filters
                        .producer_ids
                        .iter()
                        .map(|&p| ProducerId(p))
                        .collect(),
                );
            let resp = conn.call(req).await?;
            Error::check(
                resp.error_code,
                None,
                format!("transactions of broker {id}"),
            )?;
            if let Some(unknown) = resp.unknown_state_filters.first() {
                return Err(Error::Config(format!(
                    "unknown transaction state '{unknown}' (states are Empty, Ongoing, \
                     PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, \
                     PrepareEpochFence)"
                )));
            }
            for t in resp.transaction_states {
                out.push(TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                    coordinator: id,
                });
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes transactional ids at their coordinators
    /// (DescribeTransactions), in the order of `ids`. An unknown id fails
    /// with TRANSACTIONAL_ID_NOT_FOUND.
    pub async fn describe_transactions(
        &self,
        ids: &[String],
    ) -> Result<Vec<TransactionDescription>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut attempt = 0;
            loop {
                match self.describe_transaction(id).await {
                    Err(e) if coordinator_retriable(&e) && attempt + 1 < COORDINATOR_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    }
                    other => {
                        out.push(other?);
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn describe_transaction(&self, id: &str) -> Result<TransactionDescription> {
        let (node, conn) = self
            .find_coordinator(id, CoordinatorType::Transaction)
            .await?;
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(id))]);
        let resp = conn.call(req).await?;
        let t = resp
            .transaction_states
            .into_iter()
            .find(|t| t.transactional_id.0.as_str() == id)
            .ok_or_else(|| {
                Error::Protocol(format!("DescribeTransactions: no answer for '{id}'"))
            })?;
        Error::check(t.error_code, None, format!("transactional id '{id}'"))?;
        let mut partitions = BTreeSet::new();
        for topic in &t.topics {
            for &p in &topic.partitions {
                partitions.insert((topic.topic.0.to_string(), p));
            }
        }
        Ok(TransactionDescription {
            transactional_id: id.to_string(),
            coordinator: node,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: partitions.into_iter().collect(),
        })
    }
}
