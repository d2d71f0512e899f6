//! The group coordinator: classic group membership (see [`classic`]), KIP-848
//! consumer groups with server-side assignment (see [`consumer`] and
//! [`assignor`]) and committed offsets. Offsets (see [`offsets`]) and group
//! metadata (see [`records`]) live as records in the compacted internal
//! topic `__consumer_offsets` and are replayed from it when the broker
//! starts, so members keep their membership and assignments across a
//! restart. On a single node this broker leads every partition of that
//! topic, so it coordinates every group.

pub(crate) mod assignor;
pub(crate) mod classic;
pub(crate) mod consumer;
pub(crate) mod offsets;
pub(crate) mod records;
#[cfg(test)]
mod restart_tests;

use crate::controller::{ensure_internal_topic, ApiError};
use crate::locks::MutexExt;
use crate::partition::Partition;
use crate::state::{now_ms, BrokerState};
use assignor::Assignor;
use bytes::{Bytes, BytesMut};
use classic::{Group, GroupLimits};
use consumer::{ConsumerGroup, ConsumerGroupConfig, TopicLookup};
use kafka_protocol::records::{Compression, Record};
use offsets::{CommittedOffset, OffsetStore, OFFSETS_TOPIC};
use records::{MetadataKey, MetadataValue, RecordType};
use sluice_metadata::MetadataImage;
use sluice_protocol::compression::{encode_batch, plain_record};
use sluice_protocol::control::Marker;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Groups {
    /// Classic groups. A group id is either classic or consumer, never both.
    pub(crate) groups: HashMap<String, Group>,
    /// KIP-848 consumer groups.
    pub(crate) consumer_groups: HashMap<String, ConsumerGroup>,
    pub(crate) offsets: OffsetStore,
    /// Offsets committed in open transactions, by (`__consumer_offsets`
    /// partition, producer id): applied at the commit marker, dropped at
    /// the abort marker.
    pending_txn_offsets: HashMap<(i32, i64), Vec<PendingOffset>>,
    /// Each group's metadata records as they stand in `__consumer_offsets`
    /// (encoded key -> value): a change writes only what differs from them.
    persisted: HashMap<String, BTreeMap<Bytes, Bytes>>,
}

/// A record for `__consumer_offsets`: key and value (`None`: a tombstone).
type KeyValue = (Bytes, Option<Bytes>);

/// An offset record written in a transaction, not yet visible.
struct PendingOffset {
    /// (group, topic, partition).
    target: (String, String, i32),
    key: Bytes,
    value: Option<Bytes>,
}

/// The marker type in a control record's key (version i16, type i16).
fn marker_from_key(key: &[u8]) -> Option<Marker> {
    match key.get(2..4)? {
        [0, 0] => Some(Marker::Abort),
        [0, 1] => Some(Marker::Commit),
        _ => None,
    }
}

impl Groups {
    /// Ends producer `producer_id`'s transactional offset commits in
    /// `__consumer_offsets` partition `partition`.
    pub(crate) fn complete_txn(&mut self, partition: i32, producer_id: i64, marker: Marker) {
        let Some(pending) = self.pending_txn_offsets.remove(&(partition, producer_id)) else {
            return;
        };
        if marker == Marker::Commit {
            for offset in pending {
                self.offsets.replay(&offset.key, offset.value.as_deref());
            }
        }
    }

    /// Whether `group` has an offset for `topic`-`partition` committed in a
    /// transaction that has not ended (OffsetFetch with require_stable
    /// answers UNSTABLE_OFFSET_COMMIT for it).
    pub(crate) fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets.values().flatten().any(|p| {
            let (g, t, q) = &p.target;
            g == group && t == topic && *q == partition
        })
    }

    /// The metadata records group `id` should have in `__consumer_offsets`.
    fn wanted_records(&self, id: &str) -> BTreeMap<Bytes, Bytes> {
        let mut wanted = BTreeMap::new();
        if let Some(group) = self.groups.get(id) {
            let key = MetadataKey::group(RecordType::ClassicGroup, id).encode();
            match group.metadata_value() {
                Some(value) => {
                    wanted.insert(key, MetadataValue::ClassicGroup(value).encode());
                }
                None => {
                    // Mid-rebalance: the last completed generation stays.
                    if let Some(value) = self.persisted.get(id).and_then(|p| p.get(&key)) {
                        wanted.insert(key, value.clone());
                    }
                }
            }
        }
        if let Some(group) = self.consumer_groups.get(id) {
            for (key, value) in group.metadata_records() {
                wanted.insert(key.encode(), value.encode());
            }
        }
        wanted
    }

    /// Rebuilds group `id` at load from its latest metadata records
    /// (encoded key -> value). Records that do not decode are skipped with
    /// a warning; they are tombstoned by the group's next change.
    fn rebuild_group(
        &mut self,
        id: &str,
        stored: &BTreeMap<Bytes, Bytes>,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) {
        let mut classic = None;
        let mut consumer = Vec::new();
        for (key, value) in stored {
            let decoded = MetadataKey::decode(key).and_then(|key| {
                let value = MetadataValue::decode(key.record_type, value)?;
                Some((key, value))
            });
            match decoded {
                Some((_, MetadataValue::ClassicGroup(value))) => classic = Some(value),
                Some(record) => consumer.push(record),
                None => {
                    tracing::warn!(group = %id, "skipping a malformed group metadata record")
                }
            }
        }
        let has_consumer_group = consumer
            .iter()
            .any(|(key, _)| key.record_type == RecordType::ConsumerGroup);
        if let Some(value) = classic {
            if !consumer.is_empty() {
                tracing::warn!(group = %id, "group has classic and consumer group records; loading it as classic");
            }
            let group = Group::from_metadata(id, value, now);
            tracing::info!(group = %id, members = group.members.len(), generation = group.generation, "loaded classic group");
            self.groups.insert(id.to_string(), group);
        } else if has_consumer_group {
            let group = ConsumerGroup::from_records(id, consumer, config, now);
            tracing::info!(group = %id, members = group.members.len(), epoch = group.group_epoch, "loaded consumer group");
            self.consumer_groups.insert(id.to_string(), group);
        } else if !consumer.is_empty() {
            tracing::warn!(group = %id, "consumer group member records without the group's record skipped");
        }
    }

    /// Replaces group `id` in memory with what its records in
    /// `__consumer_offsets` say: how a change whose records could not be
    /// written is undone. Members waiting on the dropped state are answered
    /// UNKNOWN_MEMBER_ID and join again, as after a coordinator move.
    fn revert_to_persisted(&mut self, id: &str, config: &ConsumerGroupConfig) {
        self.groups.remove(id);
        self.consumer_groups.remove(id);
        if let Some(stored) = self.persisted.get(id).cloned() {
            self.rebuild_group(id, &stored, config, Instant::now());
        }
    }

    /// Every committed offset: (group, topic, partition, offset).
    pub(crate) fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut all = Vec::new();
        for group in self.offsets.groups() {
            for (topic, partitions) in self.offsets.get(group).into_iter().flatten() {
                for (&partition, committed) in partitions {
                    all.push((group.clone(), topic.clone(), partition, committed.offset));
                }
            }
        }
        all.sort();
        all
    }

    /// Group ids known through membership or committed offsets.
    pub(crate) fn all_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .groups
            .keys()
            .chain(self.consumer_groups.keys())
            .chain(self.offsets.groups())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[derive(Default)]
pub(crate) struct GroupCoordinator {
    /// Shared with [`PendingOffsets`], which applies commits once durable.
    inner: Arc<Mutex<Groups>>,
}

/// Records the group coordinator appended to `__consumer_offsets`: a
/// client is answered once they are committed (durable and on every
/// in-sync replica), as Kafka's coordinator appends with acks=all.
#[must_use = "a coordinator write is answered only once committed"]
pub(crate) struct Appended {
    pub(crate) partition: Arc<Partition>,
    /// The end offset of the appended batch.
    pub(crate) end: i64,
    /// `offsets.commit.timeout.ms`.
    timeout: Duration,
}

impl Appended {
    /// Waits until the records are committed; otherwise the error to
    /// answer, as Kafka's group coordinator maps it: NOT_COORDINATOR when
    /// leadership moved away, else COORDINATOR_NOT_AVAILABLE (the client
    /// retries either).
    pub(crate) async fn committed(self) -> Result<(), ErrorCode> {
        self.partition
            .make_committed(self.end, self.timeout)
            .await
            .map_err(|code| {
                tracing::warn!(
                    partition = self.partition.index,
                    error = error::name(code),
                    "group coordinator write not committed"
                );
                match code {
                    error::NOT_LEADER_OR_FOLLOWER => error::NOT_COORDINATOR,
                    _ => error::COORDINATOR_NOT_AVAILABLE,
                }
            })
    }

    /// For writes no client waits on: committed in the background.
    fn in_background(self) {
        tokio::spawn(async move {
            let _ = self.committed().await;
        });
    }
}

/// Offset records appended to `__consumer_offsets` but not yet applied:
/// they become visible to OffsetFetch only once durable, so a crash can
/// never take back an offset that someone has already read.
#[must_use = "offsets are applied only by `durable_then_apply`"]
pub(crate) struct PendingOffsets {
    groups: Arc<Mutex<Groups>>,
    /// Its end offset is also the position that orders this batch against
    /// other commits.
    appended: Appended,
    group: String,
    commits: Vec<OffsetCommit>,
}

impl PendingOffsets {
    /// Waits until the records are committed, then applies them. On error
    /// nothing is applied: the caller answers the error, and whether the
    /// records stay is settled by the replay of the next coordinator.
    pub(crate) async fn durable_then_apply(self) -> Result<(), ErrorCode> {
        let Self {
            groups: shared,
            appended,
            group,
            commits,
        } = self;
        let end = appended.end;
        appended.committed().await?;
        let mut groups = shared.locked("group coordinator");
        Self::apply(&mut groups, &group, commits, end);
        Ok(())
    }

    /// Applies the commits without waiting (for changes no client waits
    /// on), and commits them in the background.
    fn apply_now(self, groups: &mut Groups) {
        Self::apply(groups, &self.group, self.commits, self.appended.end);
        self.appended.in_background();
    }

    fn apply(groups: &mut Groups, group: &str, commits: Vec<OffsetCommit>, end: i64) {
        for c in commits {
            groups
                .offsets
                .put_at(group, &c.topic, c.partition, c.value, end);
        }
    }
}

/// What one partition of an OffsetCommit or TxnOffsetCommit asks to store.
pub(crate) struct RequestedCommit<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: &'a str,
}

impl RequestedCommit<'_> {
    /// Queues the commit in `commits` unless the group refused it
    /// (`refusal`) or its metadata is too long; returns the partition's error.
    pub(crate) fn accept(
        self,
        refusal: ErrorCode,
        max_metadata: usize,
        now: i64,
        commits: &mut Vec<OffsetCommit>,
    ) -> ErrorCode {
        if refusal != error::NONE {
            return refusal;
        }
        if self.metadata.len() > max_metadata {
            return error::OFFSET_METADATA_TOO_LARGE;
        }
        commits.push(OffsetCommit {
            topic: self.topic.to_string(),
            partition: self.partition,
            value: Some(CommittedOffset {
                offset: self.offset,
                leader_epoch: self.leader_epoch,
                metadata: self.metadata.to_string(),
                commit_timestamp: now,
            }),
        });
        error::NONE
    }
}

/// One offset to commit.
pub(crate) struct OffsetCommit {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// `None` deletes the committed offset (OffsetDelete, DeleteGroups).
    pub(crate) value: Option<CommittedOffset>,
}

impl GroupCoordinator {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Groups> {
        self.inner.locked("group coordinator")
    }

    pub(crate) fn limits(state: &BrokerState) -> GroupLimits {
        let ms = |name: &str| Duration::from_millis(state.broker_i64(name).max(0) as u64);
        GroupLimits {
            initial_rebalance_delay: ms("group.initial.rebalance.delay.ms"),
            min_session_timeout: ms("group.min.session.timeout.ms"),
            max_session_timeout: ms("group.max.session.timeout.ms"),
            max_size: state.broker_i64("group.max.size").max(1) as usize,
        }
    }

    pub(crate) fn consumer_config(state: &BrokerState) -> ConsumerGroupConfig {
        let ms = |name: &str| Duration::from_millis(state.broker_i64(name).max(0) as u64);
        let assignors = state
            .broker_setting("group.consumer.assignors")
            .value
            .unwrap_or_default()
            .split(',')
            .filter_map(|name| Assignor::from_name(name.trim()))
            .collect();
        ConsumerGroupConfig {
            heartbeat_interval: ms("group.consumer.heartbeat.interval.ms"),
            session_timeout: ms("group.consumer.session.timeout.ms"),
            max_size: state.broker_i64("group.consumer.max.size").max(1) as usize,
            assignors,
        }
    }

    /// Expires silent members and ends overdue join phases, and records
    /// the groups that changed.
    pub(crate) fn tick(state: &BrokerState, now: Instant) {
        let mut groups = state.groups.lock();
        let mut changed = Vec::new();
        for (id, group) in &mut groups.groups {
            if group.tick(now) {
                changed.push(id.clone());
            }
        }
        for (id, group) in &mut groups.consumer_groups {
            if group.tick(now) {
                changed.push(id.clone());
            }
        }
        for id in changed {
            Self::persist_in_background(state, &mut groups, &id);
        }
    }

    /// Replays `partition` of `__consumer_offsets` (of `count`): the
    /// committed offsets and group metadata of the groups it stores, as
    /// the coordinator it now is. Offsets committed in a transaction take
    /// effect at its commit marker. Returns the records read.
    pub(crate) fn load_partition(
        &self,
        state: &BrokerState,
        partition: &Partition,
        count: i32,
    ) -> Result<usize, sluice_storage::StorageError> {
        let index = partition.index;
        // Anything left from an earlier time as coordinator is stale.
        self.unload_partition(index, count);
        let mut inner = self.lock();
        let mut records = 0;
        // The latest metadata record per key, by group: a later record
        // replaces an earlier one and a tombstone removes it, as compaction
        // would.
        let mut metadata: HashMap<String, BTreeMap<Bytes, Bytes>> = HashMap::new();
        partition.replay_records(|record| {
            if record.control {
                let marker = record.key.as_deref().and_then(marker_from_key);
                if let Some(marker) = marker {
                    inner.complete_txn(index, record.producer_id, marker);
                }
                return;
            }
            let Some(key) = &record.key else { return };
            if record.transactional {
                let Some(target) = offsets::commit_key(key) else {
                    return;
                };
                inner
                    .pending_txn_offsets
                    .entry((index, record.producer_id))
                    .or_default()
                    .push(PendingOffset {
                        target,
                        key: key.clone(),
                        value: record.value.clone(),
                    });
            } else if let Some(metadata_key) = MetadataKey::decode(key) {
                let group = metadata.entry(metadata_key.group).or_default();
                match &record.value {
                    Some(value) => group.insert(key.clone(), value.clone()),
                    None => group.remove(key),
                };
            } else {
                inner.offsets.replay(key, record.value.as_deref());
            }
            records += 1;
        })?;
        let config = Self::consumer_config(state);
        let now = Instant::now();
        for (id, stored) in metadata {
            if stored.is_empty() {
                continue;
            }
            inner.rebuild_group(&id, &stored, &config, now);
            inner.persisted.insert(id, stored);
        }
        Ok(records)
    }

    /// Replays every `__consumer_offsets` partition this broker leads (a
    /// restart, for tests).
    #[cfg(test)]
    pub(crate) fn load_all(&self, state: &BrokerState) {
        let count = state
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        for index in 0..count {
            if let Some(partition) = state.partitions.get(OFFSETS_TOPIC, index) {
                self.load_partition(state, &partition, count).unwrap();
            }
        }
    }

    /// Drops the state of the groups `__consumer_offsets` partition `index`
    /// (of `count`) stores: this broker no longer coordinates them. Members
    /// waiting on a join or sync are answered and look the coordinator up
    /// again.
    pub(crate) fn unload_partition(&self, index: i32, count: i32) {
        let mut inner = self.lock();
        let here = |group: &String| offsets::partition_for(group, count) == index;
        inner.groups.retain(|id, _| !here(id));
        inner.consumer_groups.retain(|id, _| !here(id));
        inner.persisted.retain(|id, _| !here(id));
        inner.offsets.retain_groups(|id| !here(id));
        inner
            .pending_txn_offsets
            .retain(|(partition, _), _| *partition != index);
    }

    /// Writes what changed in group `id`'s metadata records since they were
    /// last written (one batch; tombstones for records it no longer has).
    /// Returns the partition and end offset to wait for, if anything was
    /// written. If the append fails, the group goes back to what its records
    /// in the log say (the change is undone, never kept in memory only) and
    /// the caller answers the error.
    pub(crate) fn persist_group(
        state: &BrokerState,
        groups: &mut Groups,
        id: &str,
    ) -> Result<Option<Appended>, ApiError> {
        let wanted = groups.wanted_records(id);
        let empty = BTreeMap::new();
        let persisted = groups.persisted.get(id).unwrap_or(&empty);
        // Tombstones first, per-member records before the group's (Kafka's
        // order: its replay wants a group's members gone before the group).
        let mut changes: Vec<KeyValue> = persisted
            .keys()
            .rev()
            .filter(|key| !wanted.contains_key(*key))
            .map(|key| (key.clone(), None))
            .collect();
        changes.extend(
            wanted
                .iter()
                .filter(|(key, value)| persisted.get(*key) != Some(*value))
                .map(|(key, value)| (key.clone(), Some(value.clone()))),
        );
        if changes.is_empty() {
            return Ok(None);
        }
        let written = match Self::append_records(state, id, changes, None) {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(group = %id, error = %e.message, "cannot write group metadata; the group returns to its last written state");
                groups.revert_to_persisted(id, &Self::consumer_config(state));
                return Err(e);
            }
        };
        if wanted.is_empty() {
            groups.persisted.remove(id);
        } else {
            groups.persisted.insert(id.to_string(), wanted);
        }
        Ok(Some(written))
    }

    /// Waits until records written by [`Self::persist_group`] are
    /// committed; otherwise the error to answer (the member retries, as
    /// when the coordinator moves).
    pub(crate) async fn until_durable(written: Option<Appended>) -> Result<(), ErrorCode> {
        match written {
            Some(appended) => appended.committed().await,
            None => Ok(()),
        }
    }

    /// [`Self::persist_group`] for changes whose answer does not wait: the
    /// records are committed in the background.
    pub(crate) fn persist_in_background(state: &BrokerState, groups: &mut Groups, id: &str) {
        // On failure persist_group has logged and undone the change.
        if let Ok(Some(appended)) = Self::persist_group(state, groups, id) {
            appended.in_background();
        }
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does.
    pub(crate) fn ensure_offsets_topic(state: &BrokerState) -> Result<(), ApiError> {
        ensure_internal_topic(
            state,
            OFFSETS_TOPIC,
            "offsets.topic.num.partitions",
            "offsets.topic.replication.factor",
            "offsets.topic.segment.bytes",
        )
    }

    /// Whether this broker coordinates `group` (creating
    /// `__consumer_offsets` on first use, as Kafka does): the error a
    /// request about it is answered with if not. Checked before the group
    /// coordinator's lock is taken.
    pub(crate) fn coordinator_error(state: &BrokerState, group: &str) -> Option<ErrorCode> {
        let ensured = Self::ensure_offsets_topic(state);
        state
            .coordination
            .check(state, ensured, OFFSETS_TOPIC, group)
    }

    /// The `__consumer_offsets` partition that stores `group`'s records.
    fn offsets_partition(state: &BrokerState, group: &str) -> Result<Arc<Partition>, ApiError> {
        let count = state
            .image()
            .topic(OFFSETS_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        let index = offsets::partition_for(group, count);
        state.partitions.get(OFFSETS_TOPIC, index).ok_or_else(|| {
            ApiError::new(
                state.partitions.not_here_code(OFFSETS_TOPIC, index),
                format!("{OFFSETS_TOPIC}-{index} is not available here"),
            )
        })
    }

    /// Appends commits for `group` to its `__consumer_offsets` partition.
    /// They take effect when the returned [`PendingOffsets`] is durable.
    pub(crate) fn write_offsets(
        state: &BrokerState,
        group: &str,
        commits: Vec<OffsetCommit>,
    ) -> Result<PendingOffsets, ApiError> {
        let appended = Self::append_offsets(state, group, &commits, None)?;
        Ok(PendingOffsets {
            groups: state.groups.inner.clone(),
            appended,
            group: group.to_string(),
            commits,
        })
    }

    /// TxnOffsetCommit: appends the commits as part of producer
    /// `producer_id`'s transaction. They stay pending, invisible to
    /// OffsetFetch, until the transaction's marker reaches the partition.
    pub(crate) fn write_txn_offsets(
        state: &BrokerState,
        groups: &mut Groups,
        group: &str,
        producer: (i64, i16),
        commits: Vec<OffsetCommit>,
    ) -> Result<Appended, ApiError> {
        let appended = Self::append_offsets(state, group, &commits, Some(producer))?;
        let pending = groups
            .pending_txn_offsets
            .entry((appended.partition.index, producer.0))
            .or_default();
        for c in commits {
            pending.push(PendingOffset {
                target: (group.to_string(), c.topic.clone(), c.partition),
                key: offsets::encode_key(group, &c.topic, c.partition),
                value: c.value.as_ref().map(offsets::encode_value),
            });
        }
        Ok(appended)
    }

    /// Appends commits to the group's `__consumer_offsets` partition as one
    /// batch (transactional for `producer`).
    fn append_offsets(
        state: &BrokerState,
        group: &str,
        commits: &[OffsetCommit],
        producer: Option<(i64, i16)>,
    ) -> Result<Appended, ApiError> {
        let records = commits
            .iter()
            .map(|c| {
                (
                    offsets::encode_key(group, &c.topic, c.partition),
                    c.value.as_ref().map(offsets::encode_value),
                )
            })
            .collect();
        Self::append_records(state, group, records, producer)
    }

    /// Appends records as one batch (transactional for `producer`) to
    /// `group`'s `__consumer_offsets` partition.
    fn append_records(
        state: &BrokerState,
        group: &str,
        records: Vec<KeyValue>,
        producer: Option<(i64, i16)>,
    ) -> Result<Appended, ApiError> {
        let partition = Self::offsets_partition(state, group)?;
        let now = now_ms();
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let mut record = plain_record(i as i64, now, Some(key), value);
                if let Some((id, epoch)) = producer {
                    record.transactional = true;
                    record.producer_id = id;
                    record.producer_epoch = epoch;
                }
                record
            })
            .collect();
        let mut batch = BytesMut::new();
        encode_batch(&mut batch, &records, Compression::None).map_err(|e| {
            ApiError::new(
                error::UNKNOWN_SERVER_ERROR,
                format!("encoding __consumer_offsets records: {e}"),
            )
        })?;
        let info = partition
            .append(&mut batch, None, now)
            .map_err(|e| crate::coordination::append_error(&e))?;
        let timeout =
            Duration::from_millis(state.broker_i64("offsets.commit.timeout.ms").max(1) as u64);
        Ok(Appended {
            partition,
            end: info.last_offset + 1,
            timeout,
        })
    }
}

impl GroupCoordinator {
    /// Deletes committed offsets older than `offsets.retention.minutes` of
    /// groups without members (tombstones in `__consumer_offsets`), and
    /// forgets empty groups left with no offsets. Returns how many expired.
    pub(crate) fn expire_offsets(state: &BrokerState, now_ms: i64) -> usize {
        let retention_ms = state
            .broker_i64("offsets.retention.minutes")
            .saturating_mul(60_000);
        let mut groups = state.groups.lock();
        let mut expired = 0;
        for id in groups.all_ids() {
            if groups.groups.get(&id).is_some_and(|g| !g.is_empty())
                || groups
                    .consumer_groups
                    .get(&id)
                    .is_some_and(|g| !g.is_empty())
            {
                continue;
            }
            let stale: Vec<OffsetCommit> = groups
                .offsets
                .get(&id)
                .into_iter()
                .flat_map(|topics| topics.iter())
                .flat_map(|(topic, parts)| {
                    parts
                        .iter()
                        .filter(|(_, c)| c.commit_timestamp.saturating_add(retention_ms) <= now_ms)
                        .map(|(p, _)| OffsetCommit {
                            topic: topic.clone(),
                            partition: *p,
                            value: None,
                        })
                })
                .collect();
            if !stale.is_empty() {
                let count = stale.len();
                match Self::write_offsets(state, &id, stale) {
                    Ok(pending) => {
                        expired += count;
                        // Expiry promises no client anything: apply now (the
                        // group may be forgotten below) and let the commit follow.
                        pending.apply_now(&mut groups);
                    }
                    Err(e) => {
                        tracing::warn!(group = %id, error = %e.message, "cannot expire offsets")
                    }
                }
            }
            if groups.offsets.get(&id).is_none()
                && groups.groups.get(&id).is_some_and(Group::is_empty)
            {
                groups.groups.remove(&id);
            }
            if groups.offsets.get(&id).is_none()
                && groups
                    .consumer_groups
                    .get(&id)
                    .is_some_and(ConsumerGroup::is_empty)
            {
                groups.consumer_groups.remove(&id);
            }
            Self::persist_in_background(state, &mut groups, &id);
        }
        expired
    }
}

impl TopicLookup for MetadataImage {
    fn topic(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        MetadataImage::topic(self, name).map(|t| (t.id, t.partitions.len() as i32))
    }
    fn names(&self) -> Vec<String> {
        self.topics().map(|t| t.name.clone()).collect()
    }
}

/// The topics a consumer-protocol member subscribes to, read from its
/// `ConsumerProtocolSubscription` (version i16, then an array of topic
/// strings); `None` if the metadata is not in that format.
pub(crate) fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf: &[u8] = metadata;
    let take = |buf: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if buf.len() < n {
            return None;
        }
        let (head, tail) = buf.split_at(n);
        *buf = tail;
        Some(head.to_vec())
    };
    take(&mut buf, 2)?;
    let count = i32::from_be_bytes(take(&mut buf, 4)?.try_into().ok()?);
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        topics.push(String::from_utf8(take(&mut buf, len.max(0) as usize)?).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test_state;
    use bytes::BufMut;

    /// A `ConsumerProtocolSubscription` v0 (version, topics, null user data).
    fn consumer_protocol_subscription<'a>(topics: impl IntoIterator<Item = &'a String>) -> Bytes {
        let topics: Vec<&String> = topics.into_iter().collect();
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i32(topics.len() as i32);
        for topic in topics {
            put_short_string(&mut buf, topic);
        }
        buf.put_i32(-1);
        buf.freeze()
    }

    fn put_short_string(buf: &mut BytesMut, s: &str) {
        let len = s.len().min(i16::MAX as usize);
        buf.put_i16(len as i16);
        buf.put_slice(&s.as_bytes()[..len]);
    }

    #[test]
    fn consumer_protocol_subscription_reads_back() {
        let topics = ["a".to_string(), "bb".to_string()];
        let encoded = consumer_protocol_subscription(&topics);
        assert_eq!(subscribed_topics(&encoded), Some(topics.to_vec()));
    }

    /// A commit of `offset` for t-0, made now.
    fn commit(offset: i64) -> OffsetCommit {
        OffsetCommit {
            topic: "t".into(),
            partition: 0,
            value: Some(CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: now_ms(),
            }),
        }
    }

    #[tokio::test]
    async fn offsets_of_empty_groups_expire_after_retention() {
        let (_dir, state) = test_state();
        assert_eq!(GroupCoordinator::coordinator_error(&state, "g"), None);
        GroupCoordinator::write_offsets(&state, "g", vec![commit(5)])
            .unwrap()
            .durable_then_apply()
            .await
            .unwrap();
        let retention = 7 * 24 * 60 * 60_000;
        assert_eq!(
            GroupCoordinator::expire_offsets(&state, now_ms() + retention - 60_000),
            0
        );
        assert!(state.groups.lock().offsets.get("g").is_some());
        assert_eq!(
            GroupCoordinator::expire_offsets(&state, now_ms() + retention + 1),
            1
        );
        assert!(state.groups.lock().offsets.get("g").is_none());
        // The tombstone is in __consumer_offsets: once it is durable, a
        // reload finds nothing.
        for partition in state.partitions.all() {
            let end = partition.log_end_offset();
            partition.make_durable(end).await.unwrap();
        }
        let reloaded = GroupCoordinator::default();
        reloaded.load_all(&state);
        assert!(reloaded.lock().offsets.get("g").is_none());
    }

    #[tokio::test]
    async fn committed_offsets_are_invisible_until_durable() {
        let (_dir, state) = test_state();
        assert_eq!(GroupCoordinator::coordinator_error(&state, "g"), None);
        let first = GroupCoordinator::write_offsets(&state, "g", vec![commit(5)]).unwrap();
        let second = GroupCoordinator::write_offsets(&state, "g", vec![commit(9)]).unwrap();
        assert!(
            state.groups.lock().offsets.get("g").is_none(),
            "an offset in the log but not yet durable must not be visible"
        );
        // Durable out of order: the later commit still wins.
        second.durable_then_apply().await.unwrap();
        first.durable_then_apply().await.unwrap();
        let groups = state.groups.lock();
        assert_eq!(groups.offsets.get("g").unwrap()["t"][&0].offset, 9);
    }
}
