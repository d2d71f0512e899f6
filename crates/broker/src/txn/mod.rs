//! The transaction coordinator: maps each `transactional.id` to its producer
//! id and epoch, tracks the partitions of its open transaction, and ends
//! transactions by writing commit or abort markers to every one of them.
//!
//! Its state is a record per transactional id in the compacted internal
//! topic `__transaction_state` (see [`log`]), replayed at start. Ending a
//! transaction is two-phase, as in Kafka: `PrepareCommit`/`PrepareAbort` is
//! written first, then the markers, and only once the markers are durable
//! `CompleteCommit`/`CompleteAbort`. A crash in between leaves a prepared
//! transaction that [`TransactionCoordinator::resume_prepared`] finishes at
//! start, so no partition is left with a transaction that never ends.

pub(crate) mod log;
pub(crate) mod remote;

use crate::controller::{ensure_internal_topic, ApiError};
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::locks::MutexExt;
use crate::partition::Partition;
use crate::state::{now_ms, BrokerState};
use bytes::BytesMut;
use kafka_protocol::records::Compression;
use sluice_protocol::compression::{encode_batch, plain_record};
use sluice_protocol::control::{marker_batch, Marker};
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::StorageError;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's transaction states, with their ids in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TxnStatus {
    #[default]
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnStatus {
    pub(crate) const ALL: [TxnStatus; 8] = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
        TxnStatus::Dead,
        TxnStatus::PrepareEpochFence,
    ];

    pub(crate) fn from_id(id: i8) -> Option<TxnStatus> {
        TxnStatus::ALL.into_iter().find(|s| *s as i8 == id)
    }

    /// The name DescribeTransactions and ListTransactions report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub(crate) fn is_prepared(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// The `transaction.version` feature (KIP-1022) at which every EndTxn
/// bumps the producer epoch (KIP-890 part 2, "transactions v2").
pub(crate) const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
pub(crate) const TV2: i16 = 2;

/// An epoch at or above this cannot be bumped for a client any more:
/// Short.MAX is kept for fencing (Kafka's `isEpochExhausted`).
pub(crate) const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Produce v11 added TRANSACTION_ABORTABLE; older producers get
/// INVALID_TXN_STATE instead (Kafka's `AddPartitionsToTxnManager`).
pub(crate) const TRANSACTION_ABORTABLE_SINCE: i16 = 11;

/// What the coordinator knows of one transactional id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TxnMetadata {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) status: TxnStatus,
    /// Partitions of the open transaction, as (topic, partition).
    pub(crate) partitions: BTreeSet<(String, i32)>,
    pub(crate) last_update_ms: i64,
    /// When the open transaction began (its first added partition); -1 if none.
    pub(crate) start_ms: i64,
    /// The producer id before the last completed transaction (TV2), so a
    /// retried EndTxn after the id rotated is recognised; -1 if none.
    pub(crate) previous_producer_id: i64,
    /// The producer id the ending transaction rotates to because its epoch
    /// is exhausted (TV2); -1 if none.
    pub(crate) next_producer_id: i64,
    /// The transaction version the client speaks, from its request
    /// versions: 2 once it used EndTxn v5+, Produce v12+ or TxnOffsetCommit
    /// v5+; 0 otherwise.
    pub(crate) client_txn_version: i16,
}

impl Default for TxnMetadata {
    fn default() -> Self {
        TxnMetadata {
            producer_id: -1,
            producer_epoch: -1,
            timeout_ms: 0,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: -1,
            start_ms: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_txn_version: 0,
        }
    }
}

impl TxnMetadata {
    /// Checks a request's producer id and epoch against the current ones.
    pub(crate) fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ApiError> {
        if producer_id != self.producer_id {
            return Err(ApiError::new(
                error::INVALID_PRODUCER_ID_MAPPING,
                format!(
                    "producer id {producer_id} is not the current one ({}) of this transactional id",
                    self.producer_id
                ),
            ));
        }
        if epoch != self.producer_epoch {
            return Err(ApiError::new(
                error::PRODUCER_FENCED,
                format!(
                    "producer epoch {epoch} is not the current epoch {}: a newer producer with this transactional id exists or the transaction timed out",
                    self.producer_epoch
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) type Txns = HashMap<String, TxnMetadata>;

#[derive(Default)]
pub(crate) struct TransactionCoordinator {
    txns: Mutex<Txns>,
    /// How many markers each partition led here has had written: a
    /// transactional produce verified with a coordinator on another broker
    /// is appended only if no marker landed on its partition since the
    /// verification began (the transaction may have ended meanwhile).
    /// Held across such an append and across a marker's.
    pub(crate) markers_written: Mutex<HashMap<(String, i32), u64>>,
    /// Connections to the other brokers it asks or has write markers.
    pub(crate) peers: remote::Peers,
}

/// Markers being written by other brokers (see [`remote`]).
type RemoteWrite =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send>>;

/// Appends that must be durable before the next step may be taken.
#[derive(Default)]
pub(crate) struct Durable(Vec<(Arc<Partition>, i64)>, Vec<RemoteWrite>);

impl Durable {
    pub(crate) fn push(&mut self, partition: Arc<Partition>, end: i64) {
        self.0.push((partition, end));
    }

    /// Waits until every append is durable and replicated to the in-sync
    /// replicas of its partition (see [`Partition::make_committed`]).
    pub(crate) async fn wait(self) -> Result<(), ApiError> {
        for (partition, end) in self.0 {
            partition
                .make_committed(end, TXN_WRITE_TIMEOUT)
                .await
                .map_err(|code| {
                    ApiError::new(
                        code,
                        format!(
                            "{}-{} did not reach its in-sync replicas: {}",
                            partition.topic,
                            partition.index,
                            error::name(code)
                        ),
                    )
                })?;
        }
        for remote in self.1 {
            remote.await?;
        }
        Ok(())
    }
}

/// How long EndTxn waits for the markers other leaders write. The
/// transaction is decided once its prepare record is durable (Kafka
/// answers EndTxn then); Sluice also waits for the markers, so a
/// read_committed consumer sees a committed transaction as soon as the
/// producer does, but not forever: a partition without a leader would
/// hold the answer until one is back. Past this, EndTxn answers and the
/// markers are written in the background; until they are, the
/// transactional id answers CONCURRENT_TRANSACTIONS (retriable).
pub(crate) const END_TXN_REMOTE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`complete_end`] for EndTxn: the local appends first, then the markers
/// other leaders write for at most `remote_wait`; if they take longer the
/// transaction completes in the background and the answer is the producer
/// id and epoch it will have.
pub(crate) async fn end_within(
    state: Arc<BrokerState>,
    transactional_id: String,
    markers: Durable,
    remote_wait: std::time::Duration,
) -> Result<(i64, i16), ApiError> {
    let Durable(local, remote) = markers;
    Durable(local, Vec::new()).wait().await?;
    if remote.is_empty() {
        return complete_end(state, transactional_id, Durable::default()).await;
    }
    let mut remote_done = tokio::spawn(async move {
        for write in remote {
            write.await?;
        }
        Ok::<(), ApiError>(())
    });
    let joined = |joined: Result<Result<(), ApiError>, tokio::task::JoinError>| {
        joined.unwrap_or_else(|e| {
            Err(ApiError::new(
                error::UNKNOWN_SERVER_ERROR,
                format!("writing the transaction markers failed: {e}"),
            ))
        })
    };
    match tokio::time::timeout(remote_wait, &mut remote_done).await {
        Ok(done) => {
            joined(done)?;
            complete_end(state, transactional_id, Durable::default()).await
        }
        Err(_) => {
            let answer = {
                let txns = state.txns.lock();
                let txn = txns.get(&transactional_id).ok_or_else(|| {
                    ApiError::new(
                        error::INVALID_PRODUCER_ID_MAPPING,
                        "unknown transactional id",
                    )
                })?;
                match txn.next_producer_id {
                    next if next >= 0 && txn.client_txn_version >= TV2 => (next, 0),
                    _ => (txn.producer_id, txn.producer_epoch),
                }
            };
            tracing::warn!(%transactional_id, "transaction markers are still being written (a partition has no reachable leader); EndTxn answered, the transaction completes once they are");
            tokio::spawn(async move {
                let outcome = match joined(remote_done.await) {
                    Ok(()) => complete_end(state, transactional_id.clone(), Durable::default())
                        .await
                        .map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    tracing::error!(%transactional_id, error = %e.message, "cannot complete transaction");
                }
            });
            Ok(answer)
        }
    }
}

/// How long a write of the transaction coordinator may take to reach the
/// in-sync replicas; Kafka bounds it by its request timeout (30 s).
const TXN_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl TransactionCoordinator {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Txns> {
        self.txns.locked("transaction coordinator")
    }

    /// Creates `__transaction_state` on first use, as Kafka does.
    pub(crate) fn ensure_state_topic(state: &BrokerState) -> Result<(), ApiError> {
        ensure_internal_topic(
            state,
            TRANSACTION_STATE_TOPIC,
            "transaction.state.log.num.partitions",
            "transaction.state.log.replication.factor",
            "transaction.state.log.segment.bytes",
        )
    }

    /// Whether this broker coordinates `transactional_id` (creating
    /// `__transaction_state` on first use): the error a request about it
    /// is answered with if not. Checked before the coordinator's lock is
    /// taken.
    pub(crate) fn coordinator_error(
        state: &BrokerState,
        transactional_id: &str,
    ) -> Option<ErrorCode> {
        let ensured = Self::ensure_state_topic(state);
        state
            .coordination
            .check(state, ensured, TRANSACTION_STATE_TOPIC, transactional_id)
    }

    fn state_partition(
        state: &BrokerState,
        transactional_id: &str,
    ) -> Result<Arc<Partition>, ApiError> {
        let count = state
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        let index = partition_for(transactional_id, count);
        state
            .partitions
            .get(TRANSACTION_STATE_TOPIC, index)
            .ok_or_else(|| {
                ApiError::new(
                    state
                        .partitions
                        .not_here_code(TRANSACTION_STATE_TOPIC, index),
                    format!("{TRANSACTION_STATE_TOPIC}-{index} is not available here"),
                )
            })
    }

    /// Writes `txn` as the transactional id's current state.
    pub(crate) fn persist(
        state: &BrokerState,
        transactional_id: &str,
        txn: &TxnMetadata,
    ) -> Result<Durable, ApiError> {
        let partition = Self::state_partition(state, transactional_id)?;
        let now = now_ms();
        let record = plain_record(
            0,
            now,
            Some(log::encode_key(transactional_id)),
            Some(log::encode_value(txn)),
        );
        let mut batch = BytesMut::new();
        encode_batch(&mut batch, &[record], Compression::None).map_err(|e| {
            ApiError::new(
                error::UNKNOWN_SERVER_ERROR,
                format!("encoding transaction state: {e}"),
            )
        })?;
        let info = partition
            .append(&mut batch, None, now)
            .map_err(|e| crate::coordination::append_error(&e))?;
        let mut durable = Durable::default();
        durable.push(partition, info.last_offset + 1);
        Ok(durable)
    }

    /// Replays `partition` of `__transaction_state`: the state of the
    /// transactional ids it stores, as their coordinator. Returns the
    /// records read.
    pub(crate) fn load_partition(&self, partition: &Partition) -> Result<usize, StorageError> {
        let mut replayed = HashMap::new();
        let mut records = 0;
        partition.replay_records(|record| {
            let Some(id) = record.key.as_deref().and_then(log::decode_key) else {
                return;
            };
            records += 1;
            match record.value.as_deref().and_then(log::decode_value) {
                Some(txn) => {
                    replayed.insert(id, txn);
                }
                None => {
                    replayed.remove(&id);
                }
            }
        })?;
        self.lock().extend(replayed);
        Ok(records)
    }

    /// Drops the state of the transactional ids `__transaction_state`
    /// partition `index` (of `count`) stores: another broker coordinates
    /// them now.
    pub(crate) fn unload_partition(&self, index: i32, count: i32) {
        self.lock()
            .retain(|id, _| partition_for(id, count) != index);
    }

    /// Finishes the transactions of `__transaction_state` `partitions`
    /// that a crash or a coordinator move left prepared (markers may be
    /// missing from some partitions; writing one twice is harmless).
    pub(crate) fn resume_prepared(state: &Arc<BrokerState>, partitions: &[i32]) {
        let count = state
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        let mut txns = state.txns.lock();
        let prepared: Vec<String> = txns
            .iter()
            .filter(|(id, t)| {
                t.status.is_prepared() && partitions.contains(&partition_for(id, count))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in prepared {
            let commit = txns[&id].status == TxnStatus::PrepareCommit;
            let marker = if commit {
                Marker::Commit
            } else {
                Marker::Abort
            };
            match prepare_end(state, &mut txns, &id, marker, |_| Ok(())) {
                Ok(durable) => spawn_complete(state.clone(), id, durable),
                Err(e) => {
                    tracing::error!(transactional_id = %id, error = %e.message, "cannot finish prepared transaction")
                }
            }
        }
    }

    /// KIP-890 part 1: a transactional batch is only appended to a partition
    /// the producer's ongoing transaction has added; otherwise a late write
    /// after the transaction ended would open a transaction nobody ends.
    /// Errors are those Kafka's partition leader answers Produce `version`
    /// with after verifying with the coordinator: a stale epoch is
    /// INVALID_PRODUCER_EPOCH, a partition outside the transaction
    /// TRANSACTION_ABORTABLE from v11 (INVALID_TXN_STATE before).
    pub(crate) fn verify_produce(
        txns: &Txns,
        transactional_id: Option<&str>,
        producer: (i64, i16),
        (topic, partition): (&str, i32),
        version: i16,
    ) -> Result<(), ApiError> {
        let (producer_id, epoch) = producer;
        let txn = match transactional_id {
            Some(id) => txns.get(id),
            None => txns.values().find(|t| t.producer_id == producer_id),
        };
        let Some(txn) = txn.filter(|t| t.producer_id == producer_id) else {
            return Err(ApiError::new(
                error::INVALID_PRODUCER_ID_MAPPING,
                format!("producer id {producer_id} is not that of the transactional id"),
            ));
        };
        if epoch != txn.producer_epoch {
            return Err(ApiError::new(
                error::INVALID_PRODUCER_EPOCH,
                format!(
                    "producer epoch {epoch} is not the current epoch {}",
                    txn.producer_epoch
                ),
            ));
        }
        if txn.status.is_prepared() {
            return Err(ApiError::new(
                error::NOT_ENOUGH_REPLICAS,
                "cannot verify the transaction while it is ending (CONCURRENT_TRANSACTIONS)",
            ));
        }
        let added = txn.partitions.contains(&(topic.to_string(), partition));
        if txn.status != TxnStatus::Ongoing || !added {
            let code = if version >= TRANSACTION_ABORTABLE_SINCE {
                error::TRANSACTION_ABORTABLE
            } else {
                error::INVALID_TXN_STATE
            };
            return Err(ApiError::new(
                code,
                format!("{topic}-{partition} is not part of an ongoing transaction of producer {producer_id}"),
            ));
        }
        Ok(())
    }

    /// KIP-890 part 2: Produce v12+ and TxnOffsetCommit v5+ add their
    /// partition to the transaction themselves, as Kafka's partition leader
    /// does with a non-verify-only AddPartitionsToTxn. The coordinator's
    /// errors are mapped as Kafka's `AddPartitionsToTxnManager` and
    /// `ReplicaManager` map them for producers.
    pub(crate) fn add_implicitly(
        state: &BrokerState,
        txns: &mut Txns,
        transactional_id: &str,
        producer: (i64, i16),
        partition: (String, i32),
    ) -> Result<Option<Durable>, ApiError> {
        add_partitions(
            state,
            txns,
            transactional_id,
            producer,
            vec![partition],
            true,
        )
        .map_err(|e| {
            let code = match e.code {
                error::PRODUCER_FENCED => error::INVALID_PRODUCER_EPOCH,
                error::CONCURRENT_TRANSACTIONS
                | error::COORDINATOR_NOT_AVAILABLE
                | error::NOT_COORDINATOR => error::NOT_ENOUGH_REPLICAS,
                code => code,
            };
            ApiError::new(code, e.message)
        })
    }

    /// Aborts transactions open longer than their timeout, bumping the
    /// producer epoch so the producer that let it expire is fenced.
    pub(crate) fn abort_expired(state: &Arc<BrokerState>, now: i64) -> usize {
        let mut txns = state.txns.lock();
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, t)| {
                t.status == TxnStatus::Ongoing
                    && t.start_ms.saturating_add(i64::from(t.timeout_ms)) <= now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(transactional_id = %id, "aborting transaction that exceeded its timeout");
            let fence = |txn: &mut TxnMetadata| {
                if txn.producer_epoch < i16::MAX - 1 {
                    txn.producer_epoch += 1;
                }
                Ok(())
            };
            match prepare_end(state, &mut txns, id, Marker::Abort, fence) {
                Ok(durable) => spawn_complete(state.clone(), id.clone(), durable),
                Err(e) => {
                    tracing::error!(transactional_id = %id, error = %e.message, "cannot abort expired transaction")
                }
            }
        }
        expired.len()
    }
}

/// Adds partitions to the transactional id's transaction, starting one if
/// none is open. Returns the write to wait for, if anything changed.
pub(crate) fn add_partitions(
    state: &BrokerState,
    txns: &mut Txns,
    transactional_id: &str,
    producer: (i64, i16),
    wanted: Vec<(String, i32)>,
    tv2: bool,
) -> Result<Option<Durable>, ApiError> {
    let txn = txns.get_mut(transactional_id).ok_or_else(|| {
        ApiError::new(
            error::INVALID_PRODUCER_ID_MAPPING,
            "unknown transactional id",
        )
    })?;
    txn.check_producer(producer.0, producer.1)?;
    if txn.status.is_prepared() {
        return Err(ApiError::new(
            error::CONCURRENT_TRANSACTIONS,
            "the previous transaction is ending",
        ));
    }
    if matches!(txn.status, TxnStatus::Dead | TxnStatus::PrepareEpochFence) {
        return Err(ApiError::new(
            error::INVALID_TXN_STATE,
            "the transactional id is being fenced",
        ));
    }
    if txn.status == TxnStatus::Ongoing && wanted.iter().all(|w| txn.partitions.contains(w)) {
        return Ok(None);
    }
    // Changed on a copy that replaces the live state only once its record
    // is written: a failed write must not leave a partition "added" that
    // the log does not know (a Produce v12 would then append to it).
    let now = now_ms();
    let mut next = txn.clone();
    if next.status != TxnStatus::Ongoing {
        next.partitions.clear();
        next.start_ms = now;
        next.status = TxnStatus::Ongoing;
    }
    next.partitions.extend(wanted);
    if tv2 {
        next.client_txn_version = TV2;
    }
    next.last_update_ms = now;
    let durable = TransactionCoordinator::persist(state, transactional_id, &next)?;
    *txn = next;
    Ok(Some(durable))
}

/// Transactions v2: ending a transaction bumps the producer epoch, so the
/// markers carry the new epoch and no write of the ended transaction can
/// land after them. When the epoch would reach Short.MAX - 1 a new producer
/// id is allocated; it takes over (at epoch 0) once the transaction is
/// complete (Kafka's `prepareAbortOrCommit` with `NextProducerId`).
pub(crate) fn bump_for_end(state: &BrokerState, txn: &mut TxnMetadata) -> Result<(), ApiError> {
    txn.client_txn_version = TV2;
    txn.next_producer_id = if txn.producer_epoch >= EPOCH_EXHAUSTED {
        crate::handlers::init_producer_id::allocate(state)?
    } else {
        -1
    };
    txn.producer_epoch = txn.producer_epoch.saturating_add(1);
    Ok(())
}

/// Phase one of ending a transaction: applies `change` (an epoch bump, say),
/// records `PrepareCommit` or `PrepareAbort` and appends a marker to each
/// of its partitions. Returns the appends to wait for before
/// [`complete_end`]. The change and the new status reach the in-memory
/// state only once their record is written, so a failed write leaves the
/// coordinator as it was rather than ahead of its log.
pub(crate) fn prepare_end(
    state: &Arc<BrokerState>,
    txns: &mut Txns,
    transactional_id: &str,
    marker: Marker,
    change: impl FnOnce(&mut TxnMetadata) -> Result<(), ApiError>,
) -> Result<Durable, ApiError> {
    let txn = txns.get_mut(transactional_id).ok_or_else(|| {
        ApiError::new(
            error::INVALID_PRODUCER_ID_MAPPING,
            "unknown transactional id",
        )
    })?;
    let mut next = txn.clone();
    change(&mut next)?;
    next.status = match marker {
        Marker::Commit => TxnStatus::PrepareCommit,
        Marker::Abort => TxnStatus::PrepareAbort,
    };
    next.last_update_ms = now_ms();
    let mut durable = TransactionCoordinator::persist(state, transactional_id, &next)?;
    *txn = next;
    // Partitions other brokers lead get their markers through them.
    let (here, elsewhere): (Vec<_>, Vec<_>) = txn
        .partitions
        .iter()
        .partition(|(t, p)| state.partitions.get(t, *p).is_some());
    let coordinator_epoch = state
        .coordination
        .epoch_of_key(state, TRANSACTION_STATE_TOPIC, transactional_id)
        .unwrap_or(0);
    let (written, failed) = write_markers(
        state,
        (txn.producer_id, txn.producer_epoch),
        coordinator_epoch,
        marker,
        here.into_iter().map(|(t, p)| (t.as_str(), *p)),
    );
    if let Some((topic, partition, code)) = failed.into_iter().next() {
        // Retried by the next coordinator (or at start).
        return Err(ApiError::new(
            code,
            format!("writing the transaction marker to {topic}-{partition} failed"),
        ));
    }
    durable.0.extend(written.0);
    if !elsewhere.is_empty() {
        durable.1.push(Box::pin(remote::write_remote_markers(
            Arc::clone(state),
            transactional_id.to_string(),
            (txn.producer_id, txn.producer_epoch),
            coordinator_epoch,
            marker,
            elsewhere.into_iter().cloned().collect(),
        )));
    }
    Ok(durable)
}

/// Phase two: once the markers are durable, records the transaction as
/// complete. Returns the producer id and epoch the transactional id has
/// then (a TV2 transaction whose epoch was exhausted moves to its next
/// producer id at epoch 0, as Kafka's `prepareComplete` does).
pub(crate) async fn complete_end(
    state: Arc<BrokerState>,
    transactional_id: String,
    markers: Durable,
) -> Result<(i64, i16), ApiError> {
    markers.wait().await?;
    let mut txns = state.txns.lock();
    let Some(txn) = txns.get_mut(&transactional_id) else {
        return Err(ApiError::new(
            error::INVALID_PRODUCER_ID_MAPPING,
            "unknown transactional id",
        ));
    };
    let current = (txn.producer_id, txn.producer_epoch);
    txn.status = match txn.status {
        TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
        TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
        _ => return Ok(current),
    };
    if txn.client_txn_version >= TV2 {
        txn.previous_producer_id = txn.producer_id;
        if txn.next_producer_id >= 0 {
            txn.producer_id = txn.next_producer_id;
            txn.producer_epoch = 0;
            txn.next_producer_id = -1;
        }
    }
    txn.partitions.clear();
    txn.start_ms = -1;
    txn.last_update_ms = now_ms();
    // No wait: a lost Complete record only means redoing the markers.
    TransactionCoordinator::persist(&state, &transactional_id, txn)?;
    Ok((txn.producer_id, txn.producer_epoch))
}

fn spawn_complete(state: Arc<BrokerState>, transactional_id: String, durable: Durable) {
    tokio::spawn(async move {
        if let Err(e) = complete_end(state, transactional_id.clone(), durable).await {
            tracing::error!(%transactional_id, error = %e.message, "cannot complete transaction");
        }
    });
}

/// Appends a `marker` for producer `producer_id` from a coordinator at
/// `coordinator_epoch` to each partition (and applies it to transactional
/// offset commits in `__consumer_offsets`). A partition where a newer
/// coordinator has written a marker for the producer refuses it
/// (TRANSACTION_COORDINATOR_FENCED). Returns the appends and the
/// partitions that failed, with their errors.
pub(crate) fn write_markers<'a>(
    state: &BrokerState,
    (producer_id, producer_epoch): (i64, i16),
    coordinator_epoch: i32,
    marker: Marker,
    partitions: impl Iterator<Item = (&'a str, i32)>,
) -> (Durable, Vec<(String, i32, ErrorCode)>) {
    let mut durable = Durable::default();
    let mut failed = Vec::new();
    let now = now_ms();
    for (topic, index) in partitions {
        let Some(partition) = state.partitions.get(topic, index) else {
            failed.push((
                topic.to_string(),
                index,
                state.partitions.missing(topic, index).0,
            ));
            continue;
        };
        let mut markers_written = state.txns.markers_written.locked("markers written");
        if let Err(code) = partition.check_coordinator_epoch(producer_id, coordinator_epoch) {
            tracing::warn!(
                topic,
                partition = index,
                producer_id,
                coordinator_epoch,
                "refusing a transaction marker from a deposed coordinator"
            );
            failed.push((topic.to_string(), index, code));
            continue;
        }
        *markers_written
            .entry((topic.to_string(), index))
            .or_default() += 1;
        let appended = marker_batch(marker, producer_id, producer_epoch, coordinator_epoch, now)
            .map_err(|e| {
                tracing::error!(error = %e, "encoding a transaction marker");
                error::UNKNOWN_SERVER_ERROR
            })
            .and_then(|mut batch| {
                partition.append(&mut batch, None, now).map_err(|e| {
                    tracing::error!(topic, partition = index, error = %e, "writing a transaction marker");
                    e.code_and_message().0
                })
            });
        match appended {
            Ok(info) => {
                if topic == OFFSETS_TOPIC {
                    state.groups.lock().complete_txn(index, producer_id, marker);
                }
                durable.push(partition, info.last_offset + 1);
            }
            Err(code) => failed.push((topic.to_string(), index, code)),
        }
    }
    (durable, failed)
}

#[cfg(test)]
mod tests;
