//! What idempotence and transactions add to the producer: its producer id
//! and epoch (InitProducerId), the state of the current transaction (shared
//! by the producer's API and its sender task), and the requests to the
//! transaction coordinator (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and
//! to a group's coordinator (TxnOffsetCommit). Coordinator errors that Kafka
//! calls retriable are retried here, against a freshly looked-up
//! coordinator, until `max.block.ms` has passed.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use sluice_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};

use crate::accumulator::TopicPartition;
use crate::admin::{s, Admin};
use crate::cluster::Cluster;
use crate::connection::{Connection, TV1_END_TXN_MAX, TV1_TXN_OFFSET_COMMIT_MAX};
use crate::error::{is_fencing_code, Error, KafkaError, Result};
use crate::group::{CoordinatorType, GroupOffset};

/// The producer id and epoch that idempotent and transactional batches
/// carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// A consumer group member's identity, for
/// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
/// (the Java client's `ConsumerGroupMetadata`). With a generation and
/// member id the coordinator refuses offsets from a member that has been
/// rebalanced out (zombie fencing); [`ConsumerGroupMetadata::new`] leaves
/// them unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The member's generation, -1 when unknown.
    pub generation_id: i32,
    /// The member id, empty when unknown.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata naming only the group.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Where a transactional producer is in its life cycle.
#[derive(Debug, Clone)]
pub(crate) enum TxnPhase {
    /// `init_transactions` has not succeeded yet.
    Uninitialized,
    /// No transaction is open.
    Ready,
    /// Between `begin_transaction` and commit or abort.
    InTransaction,
    /// `commit_transaction` is flushing or ending the transaction.
    Committing,
    /// `abort_transaction` is running.
    Aborting,
    /// Something in the transaction failed: only an abort can follow.
    Abortable(Error),
    /// Fenced or otherwise unusable for good.
    Fatal(Error),
}

/// State shared by the producer's API and its sender task. Locked briefly,
/// never across an await.
#[derive(Debug)]
pub(crate) struct SharedState {
    /// The identity batches are written with; `None` until InitProducerId.
    pub(crate) identity: Option<ProducerIdentity>,
    pub(crate) phase: TxnPhase,
    /// Partitions the coordinator has added to the open transaction.
    pub(crate) added: HashSet<TopicPartition>,
    /// Whether the coordinator knows of the open transaction (a partition
    /// or the offsets of a group were added), so EndTxn must follow.
    pub(crate) coordinator_involved: bool,
    /// A batch with a sequence number failed or was dropped: the partition
    /// may now have a sequence gap, so the epoch is bumped after the abort.
    pub(crate) sequences_unresolved: bool,
    /// Transactions v2 (KIP-890 part 2), decided at `init_transactions`
    /// from the coordinator's finalized `transaction.version`: no
    /// AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and
    /// TxnOffsetCommit v5 add their partitions), and EndTxn v5 hands out
    /// the next epoch.
    pub(crate) tv2: bool,
}

impl SharedState {
    pub(crate) fn new() -> Self {
        SharedState {
            identity: None,
            phase: TxnPhase::Uninitialized,
            added: HashSet::new(),
            coordinator_involved: false,
            sequences_unresolved: false,
            tv2: false,
        }
    }

    /// Records a failure inside the transaction: fencing makes the producer
    /// unusable, anything else makes the transaction abort-only.
    pub(crate) fn fail_transaction(&mut self, err: Error) {
        match self.phase {
            TxnPhase::Fatal(_) => {}
            _ if matches!(err, Error::Fenced(_)) => self.phase = TxnPhase::Fatal(err),
            TxnPhase::Aborting => {}
            TxnPhase::Abortable(_) => {}
            _ => self.phase = TxnPhase::Abortable(err),
        }
    }

    /// The transaction committed or aborted: ready for the next one.
    pub(crate) fn end_transaction(&mut self) {
        self.phase = TxnPhase::Ready;
        self.added.clear();
        self.coordinator_involved = false;
    }

    /// The error a transactional operation fails with in the current phase,
    /// if it is an error phase.
    pub(crate) fn phase_error(&self) -> Option<Error> {
        match &self.phase {
            TxnPhase::Fatal(e) => Some(e.clone()),
            TxnPhase::Abortable(e) => Some(Error::AbortableTransaction(Box::new(e.clone()))),
            _ => None,
        }
    }
}

/// Errors after which a coordinator request is retried (after a fresh
/// coordinator lookup).
fn retriable(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(codes::CONCURRENT_TRANSACTIONS)
            | Some(14 /* COORDINATOR_LOAD_IN_PROGRESS */)
            | Some(codes::COORDINATOR_NOT_AVAILABLE)
            | Some(codes::NOT_COORDINATOR)
            | Some(codes::REQUEST_TIMED_OUT)
    ) || matches!(
        e,
        Error::Disconnected(_) | Error::Io { .. } | Error::Timeout { .. } | Error::NoBroker(_)
    )
}

/// Turns a fencing error code into [`Error::Fenced`].
fn classify(e: Error) -> Error {
    match e {
        Error::Kafka(k) if is_fencing_code(k.code) => Error::Fenced(k),
        other => other,
    }
}

/// Sends the producer's requests to coordinators.
#[derive(Debug)]
pub(crate) struct Coordinators {
    admin: Admin,
    transactional_id: Option<String>,
    transaction_timeout: Duration,
    /// How long one operation keeps retrying (`max.block.ms`).
    max_block: Duration,
    retry_backoff: Duration,
}

impl Coordinators {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        transactional_id: Option<String>,
        transaction_timeout: Duration,
        max_block: Duration,
        retry_backoff: Duration,
    ) -> Self {
        Coordinators {
            admin: Admin::new(cluster),
            transactional_id,
            transaction_timeout,
            max_block,
            retry_backoff,
        }
    }

    fn transactional_id(&self) -> Result<&str> {
        self.transactional_id
            .as_deref()
            .ok_or_else(|| Error::TransactionState("the producer has no transactional id".into()))
    }

    /// Runs `op` against the coordinator of `key`, retrying retriable
    /// errors with backoff until `max.block.ms`.
    async fn on_coordinator<T, F, Fut>(&self, key: &str, kind: CoordinatorType, op: F) -> Result<T>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.max_block;
        let mut backoff = self.retry_backoff.min(Duration::from_millis(20));
        loop {
            let res = match self.admin.find_coordinator(key, kind).await {
                Ok((_, conn)) => op(conn).await,
                Err(e) => Err(e),
            };
            match res {
                Err(e) if retriable(&e) && Instant::now() + backoff < deadline => {
                    tracing::debug!(key, error = %e, "retrying coordinator request");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry_backoff.max(Duration::from_millis(20)));
                }
                other => return other.map_err(classify),
            }
        }
    }

    /// InitProducerId: a new identity, or for a transactional producer the
    /// next epoch of its transactional id (which fences older producers and
    /// aborts a transaction they left open). With `current` (KIP-360) the
    /// broker bumps that identity's epoch instead of handing out a new id.
    pub(crate) async fn init_producer_id(
        &self,
        current: Option<ProducerIdentity>,
    ) -> Result<ProducerIdentity> {
        let build = |conn: &Connection| {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(
                    self.transactional_id
                        .as_ref()
                        .map(|id| TransactionalId(s(id.clone()))),
                )
                .with_transaction_timeout_ms(ms(self.transaction_timeout));
            let knows_kip360 = conn
                .negotiated_version(ApiKey::InitProducerId)
                .is_some_and(|v| v >= 3);
            if let (Some(c), true) = (current, knows_kip360) {
                req = req
                    .with_producer_id(ProducerId(c.id))
                    .with_producer_epoch(c.epoch);
            }
            req
        };
        let call = |conn: Arc<Connection>| {
            let req = build(&conn);
            async move {
                let resp = conn.call(req).await?;
                Error::check(resp.error_code, None, "InitProducerId")?;
                Ok(ProducerIdentity {
                    id: resp.producer_id.0,
                    epoch: resp.producer_epoch,
                })
            }
        };
        match &self.transactional_id {
            Some(id) => {
                self.on_coordinator(id, CoordinatorType::Transaction, call)
                    .await
            }
            None => {
                let deadline = Instant::now() + self.max_block;
                loop {
                    let res = match self.admin.cluster().any_connection().await {
                        Ok(conn) => call(conn).await,
                        Err(e) => Err(e),
                    };
                    match res {
                        Err(e) if e.is_retriable() && Instant::now() < deadline => {
                            tokio::time::sleep(self.retry_backoff).await;
                        }
                        other => return other,
                    }
                }
            }
        }
    }

    /// Whether the transaction coordinator finalizes `transaction.version`
    /// at 2 or more and serves the versions transactions v2 needs, as the
    /// Java client decides (`isTransactionV2Enabled`).
    pub(crate) async fn transactions_v2(&self) -> Result<bool> {
        let txn_id = self.transactional_id()?;
        self.on_coordinator(txn_id, CoordinatorType::Transaction, |conn| async move {
            let level = conn
                .finalized_feature(TRANSACTION_VERSION_FEATURE)
                .unwrap_or(0);
            let versions = [
                (ApiKey::EndTxn, 5),
                (ApiKey::Produce, 12),
                (ApiKey::TxnOffsetCommit, 5),
            ];
            Ok(level >= 2
                && versions
                    .iter()
                    .all(|(api, v)| conn.negotiated_version(*api).is_some_and(|n| n >= *v)))
        })
        .await
    }

    /// AddPartitionsToTxn: the coordinator must know every partition of a
    /// transaction before the first batch is written to it.
    pub(crate) async fn add_partitions(
        &self,
        identity: ProducerIdentity,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let txn_id = self.transactional_id()?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            topics.entry(&tp.topic).or_default().push(tp.partition);
        }
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(txn_id)))
            .with_v3_and_below_producer_id(ProducerId(identity.id))
            .with_v3_and_below_producer_epoch(identity.epoch)
            .with_v3_and_below_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        self.on_coordinator(txn_id, CoordinatorType::Transaction, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.call(req).await?;
                Error::check(resp.error_code, None, "AddPartitionsToTxn")?;
                // OPERATION_NOT_ATTEMPTED only says another partition failed.
                let mut first_error = None;
                for t in &resp.results_by_topic_v3_and_below {
                    for p in &t.results_by_partition {
                        let code = p.partition_error_code;
                        if code != codes::NONE
                            && (first_error.is_none() || code != codes::OPERATION_NOT_ATTEMPTED)
                        {
                            first_error = Some(KafkaError::new(code, None).on(format!(
                                "{}-{}",
                                t.name.0.as_str(),
                                p.partition_index
                            )));
                        }
                    }
                }
                match first_error {
                    None => Ok(()),
                    Some(k) => Err(Error::Kafka(k)),
                }
            }
        })
        .await
    }

    /// AddOffsetsToTxn: ties the group's offsets topic partition to the
    /// transaction.
    pub(crate) async fn add_offsets(&self, identity: ProducerIdentity, group: &str) -> Result<()> {
        let txn_id = self.transactional_id()?;
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn_id)))
            .with_producer_id(ProducerId(identity.id))
            .with_producer_epoch(identity.epoch)
            .with_group_id(GroupId(s(group)));
        self.on_coordinator(txn_id, CoordinatorType::Transaction, |conn| {
            let req = req.clone();
            async move {
                let resp = conn.call(req).await?;
                Error::check(resp.error_code, None, "AddOffsetsToTxn")
            }
        })
        .await
    }

    /// TxnOffsetCommit at the group's coordinator: the offsets become the
    /// group's committed offsets only if the transaction commits.
    /// With transactions v2 (v5) this also adds the group's offsets
    /// partition to the transaction; otherwise it stays at v4 at most.
    pub(crate) async fn txn_offset_commit(
        &self,
        identity: ProducerIdentity,
        group: &ConsumerGroupMetadata,
        offsets: &[GroupOffset],
        tv2: bool,
    ) -> Result<()> {
        let txn_id = self.transactional_id()?;
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for o in offsets {
            topics.entry(&o.topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(o.partition)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch)
                    .with_committed_metadata(o.metadata.clone().map(s)),
            );
        }
        let topics: Vec<TxnOffsetCommitRequestTopic> = topics
            .into_iter()
            .map(|(t, ps)| {
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect();
        self.on_coordinator(&group.group_id, CoordinatorType::Group, |conn| {
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(txn_id)))
                .with_group_id(GroupId(s(group.group_id.clone())))
                .with_producer_id(ProducerId(identity.id))
                .with_producer_epoch(identity.epoch)
                .with_topics(topics.clone());
            // v3 added the member's identity (KIP-447).
            if conn
                .negotiated_version(ApiKey::TxnOffsetCommit)
                .is_some_and(|v| v >= 3)
            {
                req = req
                    .with_generation_id(group.generation_id)
                    .with_member_id(s(group.member_id.clone()))
                    .with_group_instance_id(group.group_instance_id.clone().map(s));
            }
            let cap = if tv2 {
                i16::MAX
            } else {
                TV1_TXN_OFFSET_COMMIT_MAX
            };
            async move {
                let resp = conn.call_capped(req, cap).await?;
                for t in &resp.topics {
                    for p in &t.partitions {
                        Error::check(
                            p.error_code,
                            None,
                            format!(
                                "{}-{} in group '{}'",
                                t.name.0.as_str(),
                                p.partition_index,
                                group.group_id
                            ),
                        )?;
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// EndTxn: commits or aborts the open transaction. With transactions v2
    /// (v5) the broker has bumped the epoch (or moved to a new producer id)
    /// and returns the identity for the next transaction.
    pub(crate) async fn end_txn(
        &self,
        identity: ProducerIdentity,
        commit: bool,
        tv2: bool,
    ) -> Result<Option<ProducerIdentity>> {
        let txn_id = self.transactional_id()?;
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn_id)))
            .with_producer_id(ProducerId(identity.id))
            .with_producer_epoch(identity.epoch)
            .with_committed(commit);
        self.on_coordinator(txn_id, CoordinatorType::Transaction, |conn| {
            let req = req.clone();
            async move {
                if !tv2 {
                    let resp = conn.call_capped(req, TV1_END_TXN_MAX).await?;
                    return Error::check(resp.error_code, None, "EndTxn").map(|()| None);
                }
                let resp = conn.call(req).await?;
                Error::check(resp.error_code, None, "EndTxn")?;
                if resp.producer_id.0 < 0 || resp.producer_epoch < 0 {
                    return Err(Error::Protocol(
                        "EndTxn v5 response carries no producer id and epoch".into(),
                    ));
                }
                Ok(Some(ProducerIdentity {
                    id: resp.producer_id.0,
                    epoch: resp.producer_epoch,
                }))
            }
        })
        .await
    }
}

/// The feature whose finalized level 2 means transactions v2 (KIP-1022).
pub(crate) const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";

fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}
