//! The partitions this node leads: their logs, high watermarks and the
//! group-commit path that makes acknowledged data durable.
//!
//! The high watermark is kept apart from the log end offset. On this single
//! node it is the end of what is durable under the topic's flush policy: with
//! `flush.messages=1` (the default) it advances only after a group-commit
//! fdatasync covers the data, so consumers never read records that a crash
//! could take back; with the lazy policy it follows the log end offset.

use crate::config::ConfigSource;
use crate::flusher::Flusher;
use crate::locks::{MutexExt, RwLockExt};
use crate::metrics::PartitionStats;
use crate::replica::{Assignment, Role};
pub(crate) use replication::{whole_batches, FollowerReadError};

mod replication;

/// Kafka's default `replica.lag.time.max.ms`, until the broker sets it.
const DEFAULT_REPLICA_LAG_MAX_MS: i64 = 30_000;
use crate::producer_state::{is_older_snapshot, ActiveProducer, ProducerStates, SequenceCheck};
use bytes::Bytes;
use kafka_protocol::records::Record;
use sluice_metadata::Uuid;
use sluice_protocol::batch::{BatchHeader, BatchIter, Codec};
use sluice_protocol::compression::{decode_batches, CodecLevel};
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::{
    AbortedTxnEntry, AppendInfo, CleanStats, CleanableRange, CleanerConfig, Durability, LogConfig,
    LogDir, PartitionLog, StorageError, Throttle,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{watch, Notify};

/// The topic settings the produce and fetch paths consult, parsed once per
/// config change rather than per request.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub(crate) max_message_bytes: usize,
    pub(crate) log_append_time: bool,
    pub(crate) timestamp_before_max_ms: i64,
    pub(crate) timestamp_after_max_ms: i64,
    pub(crate) flush_messages: i64,
    pub(crate) flush_ms: i64,
    /// `cleanup.policy` includes `delete`: retention and DeleteRecords apply.
    pub(crate) delete_policy: bool,
    /// `cleanup.policy` includes `compact`: the cleaner applies and records
    /// need keys.
    pub(crate) compact_policy: bool,
    /// The topic's compaction settings (the dedupe buffer is the cleaner's).
    pub(crate) cleaner: CleanerConfig,
    pub(crate) retention_ms: i64,
    pub(crate) retention_bytes: i64,
    pub(crate) log: LogConfig,
    /// The codec and level batches are recompressed to, from
    /// `compression.type`; `None` for `producer`, which stores batches as sent.
    pub(crate) recompression: Option<CodecLevel>,
    /// `min.insync.replicas`: the ISR size acks=all needs, and below which
    /// the high watermark of a replicated partition stands still.
    pub(crate) min_insync_replicas: usize,
}

impl LogSettings {
    pub(crate) fn from_topic(settings: &BTreeMap<&'static str, (String, ConfigSource)>) -> Self {
        let num = |name: &str| -> i64 {
            settings
                .get(name)
                .and_then(|(v, _)| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("topic setting {name} resolved to a number"))
        };
        let policy = |name: &str| {
            settings
                .get("cleanup.policy")
                .is_some_and(|(v, _)| v.split(',').any(|p| p.trim() == name))
        };
        let compact_policy = policy("compact");
        // `producer` names no codec: batches are stored as sent.
        let recompression = settings
            .get("compression.type")
            .and_then(|(name, _)| Codec::from_name(name))
            .map(|codec| {
                let level = match codec {
                    Codec::Gzip => num("compression.gzip.level"),
                    Codec::Lz4 => num("compression.lz4.level"),
                    Codec::Zstd => num("compression.zstd.level"),
                    Codec::None | Codec::Snappy => 0,
                };
                CodecLevel {
                    codec,
                    // Validated to fit an int when the setting was stored.
                    level: i32::try_from(level).unwrap_or(CodecLevel::default_for(codec).level),
                }
            });
        let max_compaction_lag_ms = num("max.compaction.lag.ms");
        LogSettings {
            max_message_bytes: num("max.message.bytes").max(0) as usize,
            log_append_time: settings
                .get("message.timestamp.type")
                .is_some_and(|(v, _)| v == "LogAppendTime"),
            timestamp_before_max_ms: num("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms"),
            flush_messages: num("flush.messages"),
            flush_ms: num("flush.ms"),
            delete_policy: policy("delete"),
            compact_policy,
            cleaner: CleanerConfig {
                delete_retention_ms: num("delete.retention.ms"),
                min_compaction_lag_ms: num("min.compaction.lag.ms"),
                max_compaction_lag_ms,
                min_cleanable_dirty_ratio: settings
                    .get("min.cleanable.dirty.ratio")
                    .and_then(|(v, _)| v.trim().parse().ok())
                    .unwrap_or(0.5),
                ..CleanerConfig::default()
            },
            retention_ms: num("retention.ms"),
            retention_bytes: num("retention.bytes"),
            log: LogConfig {
                segment_bytes: num("segment.bytes") as u64,
                // Kafka rolls a compacted log's active segment by
                // max.compaction.lag.ms too, so that the lag bounds it.
                segment_ms: if compact_policy {
                    num("segment.ms").min(max_compaction_lag_ms)
                } else {
                    num("segment.ms")
                },
                index_interval_bytes: num("index.interval.bytes") as u64,
                segment_index_bytes: num("segment.index.bytes") as u64,
            },
            recompression,
            min_insync_replicas: usize::try_from(num("min.insync.replicas")).unwrap_or(1),
        }
    }

    /// Durable mode: acknowledge only synced data.
    pub(crate) fn sync_before_ack(&self) -> bool {
        self.flush_messages <= 1
    }
}

pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) topic_id: Uuid,
    pub(crate) index: i32,
    /// The partition's leader epoch as this broker last learned it: the
    /// epoch it leads in, or that of the leader it follows.
    leader_epoch: AtomicI32,
    /// Leader (tracking followers) or follower.
    role: Mutex<Role>,
    /// Woken when the high watermark or the ISR changes: acks=all waits.
    replication_changed: Notify,
    /// This broker's node id.
    node_id: i32,
    /// Whether this broker leads and other brokers copy the partition
    /// (read on every append, without the role lock).
    has_followers: AtomicBool,
    /// `replica.lag.time.max.ms`.
    replica_lag_max_ms: AtomicI64,
    log: Mutex<PartitionLog>,
    durability: Arc<Durability>,
    high_watermark: AtomicI64,
    last_sync_ms: AtomicI64,
    settings: RwLock<Arc<LogSettings>>,
    data_available: Arc<Notify>,
    /// Highest end offset a waiter asked to have synced.
    sync_requested: AtomicI64,
    /// Synced end offset as published by the flusher, or the sync error.
    synced: watch::Sender<Result<i64, String>>,
    flusher: Flusher,
    producers: Mutex<ProducerStates>,
    /// The producer state's first unstable offset (`i64::MAX` when no
    /// transaction is open), published after each append so that fetches
    /// read the last stable offset without taking the producer lock.
    first_unstable: AtomicI64,
    /// Traffic and log size for `/metrics`.
    pub(crate) stats: PartitionStats,
}

/// The result of a producer's append.
pub(crate) enum Appended {
    Written(AppendInfo),
    /// A retry of a batch already in the log, at this offset.
    Duplicate {
        first_offset: i64,
    },
}

#[derive(Debug)]
pub(crate) enum AppendError {
    Rejected(ErrorCode, String),
    Storage(StorageError),
}

impl AppendError {
    /// The Kafka error code and message a client is told.
    pub(crate) fn code_and_message(&self) -> (ErrorCode, String) {
        match self {
            AppendError::Rejected(code, message) => (*code, message.clone()),
            AppendError::Storage(e) => (error::KAFKA_STORAGE_ERROR, e.to_string()),
        }
    }
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, message) = self.code_and_message();
        write!(f, "{}: {message}", error::name(code))
    }
}

/// Producer-state snapshots are `<20-digit end offset>.snapshot` files in
/// the partition directory, as in Kafka.
const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// Snapshots in `dir`, newest first.
fn snapshot_files(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let offset = name.to_str()?.strip_suffix(SNAPSHOT_SUFFIX)?.parse().ok()?;
            Some((offset, entry.path()))
        })
        .collect();
    found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
    found
}

/// Writes a snapshot of `states` covering everything below `end_offset`,
/// keeping only the previous one besides it. A failure costs a longer
/// rebuild at the next start, nothing else. The caller has synced the
/// log's txnindex files first (`sync_aborted_txns`): a restart rebuilds
/// only the aborted-transaction entries of markers after the snapshot.
fn write_snapshot(dir: &Path, states: &ProducerStates, end_offset: i64) {
    let path = dir.join(format!("{end_offset:020}{SNAPSHOT_SUFFIX}"));
    let tmp = path.with_extension("snapshot.tmp");
    let written = std::fs::write(&tmp, states.encode_snapshot(end_offset))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        // A partial temporary on a full disk would only hold space.
        let _ignored = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "cannot write producer state snapshot");
        return;
    }
    for (_, old) in snapshot_files(dir).into_iter().skip(2) {
        let _ignored = std::fs::remove_file(old);
    }
}

/// Rebuilds producer and transaction state: the newest snapshot not past
/// the log end, then every batch after it. Snapshots past the log end
/// describe data a crash took back, and are deleted.
///
/// The log's aborted-transaction index is made exact on the way: its
/// entries for markers from the replay start on are dropped and appended
/// again as the replay meets the markers, so an entry that a crash lost
/// (the marker synced, its txnindex write not) or tore comes back, and
/// none is doubled. Entries below the snapshot were synced before it was
/// written. A txnindex found damaged below the snapshot, or a snapshot of
/// an older format (whose aborted list predates the txnindex files),
/// means a replay of the whole log.
fn load_producer_state(log: &mut PartitionLog) -> Result<ProducerStates, StorageError> {
    let end = log.log_end_offset();
    let mut loaded = None;
    for (offset, path) in snapshot_files(log.dir()) {
        if offset > end {
            let _ignored = std::fs::remove_file(&path);
            continue;
        }
        let data = std::fs::read(&path).ok();
        let decoded = data
            .as_deref()
            .and_then(ProducerStates::decode_snapshot)
            .filter(|(_, covered)| *covered == offset);
        if decoded.is_some() {
            loaded = decoded;
            break;
        }
        if data.as_deref().is_some_and(is_older_snapshot) {
            // Any snapshot before it is older still.
            tracing::info!(path = %path.display(), "producer state snapshot of an older format; rebuilding it and the aborted-transaction index from the log");
            break;
        }
        tracing::warn!(path = %path.display(), "ignoring unreadable producer state snapshot");
    }
    let (mut states, covered) = loaded.unwrap_or_default();
    let mut offset = covered.max(log.log_start_offset());
    if let Some(damaged) = log.txn_index_damaged_from().filter(|&d| d < offset) {
        tracing::warn!(dir = %log.dir().display(), damaged, snapshot = covered, "a damaged txnindex lost entries the snapshot covers; replaying the whole log");
        states = ProducerStates::default();
        offset = log.log_start_offset();
    }
    log.truncate_aborted_txns(offset)?;
    while offset < end {
        let data = log.read(offset, 1 << 20, end)?.data;
        let mut next = None;
        for (header, batch) in BatchIter::new(&data).filter_map(Result::ok) {
            if let Some(aborted) = states.observe(&header, batch) {
                log.append_aborted_txn(aborted)?;
            }
            next = Some(header.last_offset() + 1);
        }
        match next {
            Some(n) => offset = n,
            None => break,
        }
    }
    log.sync_aborted_txns()?;
    Ok(states)
}

/// What a partition is opened with besides its log.
pub(crate) struct PartitionSpec {
    pub(crate) topic: String,
    pub(crate) topic_id: Uuid,
    pub(crate) index: i32,
    /// This broker's node id.
    pub(crate) node_id: i32,
    pub(crate) assignment: Assignment,
    pub(crate) settings: LogSettings,
    /// Where the high watermark starts (the last run's checkpoint), never
    /// past the log end; the log end when there is none.
    pub(crate) high_watermark: Option<i64>,
}

impl Partition {
    /// Opens (creating or recovering) the partition's log in `log_dir` and
    /// rebuilds its producer state.
    pub(crate) fn open(
        log_dir: &LogDir,
        spec: PartitionSpec,
        data_available: Arc<Notify>,
        flusher: Flusher,
        now: i64,
    ) -> Result<Partition, StorageError> {
        let mut log = log_dir.open_log(&spec.topic, spec.index, spec.settings.log, now)?;
        let producers = load_producer_state(&mut log)?;
        let durability = log.durability();
        let end = log.log_end_offset();
        let start_high_watermark = spec
            .high_watermark
            .map_or(end, |hw| hw.min(end).max(log.log_start_offset()));
        let stats = PartitionStats::default();
        stats.publish_log(end, log.size_bytes());
        let assignment = spec.assignment;
        let partition = Partition {
            topic: spec.topic,
            topic_id: spec.topic_id,
            index: spec.index,
            // Set by the assignment below.
            leader_epoch: AtomicI32::new(-1),
            role: Mutex::new(Role::Follower { leader: -1 }),
            replication_changed: Notify::new(),
            node_id: spec.node_id,
            has_followers: AtomicBool::new(false),
            replica_lag_max_ms: AtomicI64::new(DEFAULT_REPLICA_LAG_MAX_MS),
            log: Mutex::new(log),
            durability,
            high_watermark: AtomicI64::new(start_high_watermark),
            last_sync_ms: AtomicI64::new(now),
            settings: RwLock::new(Arc::new(spec.settings)),
            data_available,
            sync_requested: AtomicI64::new(end),
            synced: watch::Sender::new(Ok(end)),
            flusher,
            first_unstable: AtomicI64::new(producers.first_unstable_offset().unwrap_or(i64::MAX)),
            producers: Mutex::new(producers),
            stats,
        };
        partition.apply_assignment(&assignment, now);
        Ok(partition)
    }

    /// Publishes the log's end offset and size to `/metrics`.
    fn publish_log_stats(&self, log: &PartitionLog) {
        self.stats
            .publish_log(log.log_end_offset(), log.size_bytes());
    }

    /// Syncs and closes the log, leaving a producer state snapshot.
    pub(crate) fn close(self) -> Result<(), StorageError> {
        let mut log = crate::locks::into_inner(self.log);
        let producers = crate::locks::into_inner(self.producers);
        log.sync_aborted_txns()?;
        write_snapshot(log.dir(), &producers, log.log_end_offset());
        log.close()
    }

    /// Syncs what is appended, for a partition a request still holds at
    /// shutdown: the next start recovers it as after a crash.
    pub(crate) fn sync_appended(&self) -> Result<(), StorageError> {
        self.durability.sync_to(self.log_end_offset()).map(drop)
    }

    pub(crate) fn settings(&self) -> Arc<LogSettings> {
        self.settings.read_locked("settings").clone()
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log.locked("log").log_start_offset()
    }

    pub(crate) fn log_end_offset(&self) -> i64 {
        self.log.locked("log").log_end_offset()
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.log.locked("log").size_bytes()
    }

    /// Segments in the log; each keeps its `.log` file open.
    pub(crate) fn segment_count(&self) -> usize {
        self.log.locked("log").segment_count()
    }

    /// Appends validated batches. In lazy mode the high watermark moves at
    /// once; in durable mode it waits for [`Partition::make_durable`].
    pub(crate) fn append(
        &self,
        batches: &mut [u8],
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let mut producers = self.producers.locked("producer state");
        self.append_observed(&mut producers, batches, log_append_time, now_ms)
    }

    /// Appends and records the batches in the producer state, which is
    /// snapshotted whenever the append rolled a new segment. An abort
    /// marker that ends a transaction also gets its entry in the log's
    /// aborted-transaction index (Kafka's `.txnindex`), before the last
    /// stable offset can move past the transaction. That write is synced
    /// with the segment's data by the flusher, at the next roll or
    /// snapshot, or at shutdown; a crash before then is repaired by the
    /// replay at start (see `load_producer_state`).
    fn append_observed(
        &self,
        producers: &mut ProducerStates,
        batches: &mut [u8],
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let (info, rolled) = {
            // Held across the append: a broker that has just stopped
            // leading (the role changes under this lock) appends nothing
            // more, and every batch gets the epoch it leads in.
            let role = self.role.locked("role");
            if !matches!(&*role, Role::Leader(_)) {
                return Err(AppendError::Rejected(
                    error::NOT_LEADER_OR_FOLLOWER,
                    format!("this broker no longer leads {}-{}", self.topic, self.index),
                ));
            }
            let mut log = self.log.locked("log");
            let segments = log.segment_count();
            let info = log
                .append(batches, self.leader_epoch(), log_append_time, now_ms)
                .map_err(AppendError::Storage)?;
            self.publish_log_stats(&log);
            (info, log.segment_count() != segments)
        };
        self.observe_appended(producers, batches, &info, rolled)
            .map_err(AppendError::Storage)?;
        if !self.settings().sync_before_ack() {
            self.update_high_watermark();
        }
        self.wake_followers();
        Ok(info)
    }

    /// Records appended batches in the producer state (snapshotted when
    /// the append rolled a segment) and indexes the transactions their
    /// abort markers end.
    fn observe_appended(
        &self,
        producers: &mut ProducerStates,
        batches: &[u8],
        info: &AppendInfo,
        rolled: bool,
    ) -> Result<(), StorageError> {
        let mut aborted = Vec::new();
        for (header, batch) in BatchIter::new(batches).filter_map(Result::ok) {
            aborted.extend(producers.observe(&header, batch));
        }
        let snapshot_dir = if rolled || !aborted.is_empty() {
            let mut log = self.log.locked("log");
            for entry in aborted {
                log.append_aborted_txn(entry).inspect_err(|e| {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot index an aborted transaction");
                })?;
            }
            if rolled {
                log.sync_aborted_txns()?;
            }
            rolled.then(|| log.dir().to_path_buf())
        } else {
            None
        };
        // Before the high watermark moves: no reader may see new data of an
        // open transaction as stable.
        self.first_unstable.store(
            producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::Release,
        );
        if let Some(dir) = snapshot_dir {
            write_snapshot(&dir, producers, info.last_offset + 1);
        }
        Ok(())
    }

    /// Appends a client's batches, deduplicating idempotent producers: a
    /// retried batch gets its original offsets back instead of a second
    /// copy, and sequence gaps or stale epochs are refused.
    pub(crate) fn append_from_producer(
        &self,
        batches: &mut [u8],
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let mut producers = self.producers.locked("producer state");
        for (index, batch) in BatchIter::new(batches).enumerate() {
            let Ok((header, _)) = batch else { continue };
            if header.producer_id() < 0 {
                continue;
            }
            match producers.check(&header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { first_offset } if index == 0 => {
                    return Ok(Appended::Duplicate { first_offset });
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(AppendError::Rejected(
                        error::DUPLICATE_SEQUENCE_NUMBER,
                        "a retried batch follows new data in the same request".into(),
                    ));
                }
                SequenceCheck::Reject(code, message) => {
                    return Err(AppendError::Rejected(code, message))
                }
            }
        }
        self.append_observed(&mut producers, batches, log_append_time, now_ms)
            .map(Appended::Written)
    }

    /// The last stable offset: the high watermark, held back to the first
    /// offset of the oldest transaction still open here.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
            .min(self.first_unstable.load(Ordering::Acquire))
    }

    /// The producers this partition knows (DescribeProducers).
    /// Whether a coordinator at `coordinator_epoch` may write a marker for
    /// `producer_id` here (see [`ProducerStates::check_coordinator_epoch`]).
    pub(crate) fn check_coordinator_epoch(
        &self,
        producer_id: i64,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        self.producers
            .locked("producer state")
            .check_coordinator_epoch(producer_id, coordinator_epoch)
    }

    pub(crate) fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers.locked("producer state").active()
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub(crate) fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers
            .locked("producer state")
            .expire(now_ms, expiration_ms)
    }

    /// Aborted transactions overlapping `from..to` (Fetch read_committed),
    /// from the log's aborted-transaction index.
    pub(crate) fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxnEntry> {
        self.log.locked("log").collect_aborted_txns(from, to)
    }

    /// Calls `f` with every record from the log start to the log end, as a
    /// coordinator loads its partition (Kafka loads to the log end too). Not
    /// to the high watermark: a new leader's is the last one its old leader
    /// told it, possibly short of records the old leader had already
    /// acknowledged (a committed offset would be lost); what this leader has
    /// past its high watermark becomes committed as its followers copy it.
    pub(crate) fn replay_records(&self, mut f: impl FnMut(&Record)) -> Result<(), StorageError> {
        let mut offset = self.log_start_offset();
        loop {
            let data = self.read_below(offset, 1 << 20, self.log_end_offset())?;
            let Some(next) = BatchIter::new(&data)
                .filter_map(Result::ok)
                .last()
                .map(|(h, _)| h.last_offset() + 1)
            else {
                return Ok(());
            };
            let records = decode_batches(data).map_err(|e| {
                StorageError::Corrupt(format!("{}-{}: {e}", self.topic, self.index))
            })?;
            records.iter().for_each(&mut f);
            offset = next;
        }
    }

    /// Waits until every offset below `end` is synced, then advances the
    /// high watermark (in durable mode). The flusher thread does the sync,
    /// covering every append made before it starts (group commit).
    pub(crate) async fn make_durable(self: &Arc<Self>, end: i64) -> Result<(), StorageError> {
        let mut synced = self.synced.subscribe();
        // A failed sync also ends the wait, with the error.
        let covered = |s: &Result<i64, String>| match s {
            Ok(offset) => *offset >= end,
            Err(_) => true,
        };
        if !covered(&synced.borrow_and_update())
            && self.sync_requested.fetch_max(end, Ordering::AcqRel) < end
        {
            self.flusher.request(self.clone());
        }
        let state = synced
            .wait_for(covered)
            .await
            .map(|s| s.clone())
            .unwrap_or_else(|_| Err("flusher stopped".into()));
        state.map(|_| ()).map_err(|message| StorageError::Io {
            context: message,
            source: std::io::Error::other("sync failed"),
        })
    }

    /// Runs on the flusher thread: one fdatasync covering everything appended
    /// so far, then publish the synced offset and wake waiters.
    pub(crate) fn sync_now(&self) -> Option<std::time::Duration> {
        let wanted = self.sync_requested.load(Ordering::Acquire);
        let syncs = self.durability.sync_count();
        let started = std::time::Instant::now();
        let result = self.durability.sync_to(wanted);
        let took = (self.durability.sync_count() != syncs).then(|| started.elapsed());
        self.last_sync_ms
            .store(crate::state::now_ms(), Ordering::Relaxed);
        match result {
            Ok(synced) => {
                if self.settings().sync_before_ack() {
                    self.update_high_watermark();
                }
                // Never more than the log has synced now: a follower's
                // truncation may have cut the log back since the sync.
                let synced = synced.min(self.durability.synced_offset());
                let _previous = self.synced.send_replace(Ok(synced));
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fdatasync failed; acknowledgements on this partition fail from now on");
                let _previous = self.synced.send_replace(Err(e.to_string()));
            }
        }
        took
    }

    /// Whether the lazy flush policy wants a sync now (`flush.messages`
    /// unflushed offsets, or `flush.ms` since the last sync).
    pub(crate) fn lazy_flush_due(&self, now_ms: i64) -> Option<i64> {
        let settings = self.settings();
        let log = self.log.locked("log");
        let unflushed = log.unflushed_messages();
        if unflushed == 0 {
            return None;
        }
        let since = now_ms - self.last_sync_ms.load(Ordering::Relaxed);
        (unflushed >= settings.flush_messages || since >= settings.flush_ms)
            .then(|| log.log_end_offset())
    }

    fn advance_high_watermark(&self, offset: i64) {
        if self.high_watermark.fetch_max(offset, Ordering::AcqRel) < offset {
            self.data_available.notify_waiters();
            self.replication_changed.notify_waiters();
        }
    }

    /// Reads whole batches from `offset`, never past the high watermark.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        self.read_below(offset, max_bytes, self.high_watermark())
    }

    /// Reads whole batches from `offset`, never past the last stable offset
    /// (Fetch read_committed).
    pub(crate) fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        self.read_below(offset, max_bytes, self.last_stable_offset())
    }

    fn read_below(&self, offset: i64, max_bytes: usize, bound: i64) -> Result<Bytes, StorageError> {
        let log = self.log.locked("log");
        if offset > bound && offset <= log.log_end_offset() {
            // Past what consumers may see yet, but not out of range.
            return Ok(Bytes::new());
        }
        Ok(log.read(offset, max_bytes, bound)?.data)
    }

    /// The first record with timestamp >= `ts` at or after the log start
    /// (ListOffsets by time). The log finds the batch through the time index;
    /// that one batch is then decoded to find the exact record, as Kafka
    /// answers per record.
    /// Where `epoch` ends in this log (see [`PartitionLog::end_offset_for_epoch`]).
    pub(crate) fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.log.locked("log").end_offset_for_epoch(epoch)
    }

    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let mut from = self.log_start_offset();
        loop {
            let found = self.log.locked("log").offset_for_timestamp(ts, from)?;
            let Some((_, base)) = found.filter(|&(_, base)| base < self.high_watermark()) else {
                return Ok(None);
            };
            let records = self.batch_records(base.max(from))?;
            if let Some(&hit) = records.iter().find(|&&(t, o)| t >= ts && o >= from) {
                return Ok(Some(hit));
            }
            // The batch straddles the log start and its matching records lie
            // below it: look on after the batch.
            match records.last() {
                Some(&(_, last)) => from = last + 1,
                None => return Ok(None),
            }
        }
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP).
    pub(crate) fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let found = self.log.locked("log").max_timestamp_and_offset();
        match found {
            Some((max, base)) if base < self.high_watermark() => {
                // DeleteRecords may have put the log start inside that batch.
                let records = self.batch_records(base.max(self.log_start_offset()))?;
                Ok(records.into_iter().find(|&(t, _)| t == max))
            }
            _ => Ok(None),
        }
    }

    /// Decodes the batch holding `offset` into (timestamp, offset) pairs.
    fn batch_records(&self, offset: i64) -> Result<Vec<(i64, i64)>, StorageError> {
        let data = self.read(offset, 1)?;
        let log_append_time = BatchHeader::parse(&data)
            .ok()
            .filter(|h| h.is_log_append_time())
            .map(|h| h.max_timestamp());
        let batch_len = BatchHeader::parse(&data).map_or(data.len(), |h| h.total_len());
        let records = decode_batches(data.slice(..batch_len.min(data.len())))
            .map_err(|e| StorageError::Corrupt(format!("batch holding offset {offset}: {e}")))?;
        Ok(records
            .iter()
            .map(|r| (log_append_time.unwrap_or(r.timestamp), r.offset))
            .collect())
    }

    /// The `.log` files of the closed segments, for the scrubber.
    pub(crate) fn closed_segment_files(&self) -> Vec<std::path::PathBuf> {
        self.log.locked("log").closed_segment_files()
    }

    /// Applies the topic's time and size retention (when its cleanup policy
    /// deletes) to data below the high watermark; returns the segments deleted.
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let settings = self.settings();
        if !settings.delete_policy {
            return Ok(0);
        }
        let high_watermark = self.high_watermark();
        // The aborted-transaction entries of deleted segments go with them.
        let mut log = self.log.locked("log");
        let deleted = log.apply_retention(
            now_ms,
            settings.retention_ms,
            settings.retention_bytes,
            high_watermark,
        );
        self.publish_log_stats(&log);
        deleted
    }

    /// What the cleaner could clean now (compacted topics only): closed
    /// segments below the last stable offset (open transactions are not
    /// cleaned until they end).
    pub(crate) fn cleanable_range(
        &self,
        now_ms: i64,
    ) -> Result<Option<(CleanableRange, CleanerConfig)>, StorageError> {
        let settings = self.settings();
        if !settings.compact_policy {
            return Ok(None);
        }
        let last_stable_offset = self.last_stable_offset();
        let range = self.log.locked("log").cleanable_range(
            &settings.cleaner,
            now_ms,
            last_stable_offset,
        )?;
        Ok(range
            .needs_cleaning(&settings.cleaner)
            .then_some((range, settings.cleaner)))
    }

    /// One cleaning pass. The log is locked only to snapshot its segments
    /// and for each swap; reading and rewriting happen without it, so
    /// produce and fetch go on meanwhile.
    pub(crate) fn clean(
        &self,
        config: &CleanerConfig,
        now_ms: i64,
        throttle: &Throttle,
    ) -> Result<Option<CleanStats>, StorageError> {
        let last_stable_offset = self.last_stable_offset();
        let job = self
            .log
            .locked("log")
            .start_cleaning(config, now_ms, last_stable_offset)?;
        // The job removes aborted transactions' records (it knows them from
        // the log's txnindex files) and drops the index entries of those
        // whose every record it removed.
        let Some(mut job) = job else {
            return Ok(None);
        };
        while let Some(cleaned) = job.clean_next(throttle)? {
            let mut log = self.log.locked("log");
            log.install_cleaned(cleaned)?;
            self.publish_log_stats(&log);
        }
        let stats = self.log.locked("log").finish_cleaning(job)?;
        Ok(Some(stats))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high
    /// watermark) and returns the new log start offset (the low watermark).
    pub(crate) fn delete_records(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if !self.settings().delete_policy {
            return Err(DeleteRecordsError::CompactOnly);
        }
        let high_watermark = self.high_watermark();
        let target = if offset == DELETE_UP_TO_HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        if !(0..=high_watermark).contains(&target) {
            return Err(DeleteRecordsError::OutOfRange);
        }
        let mut log = self.log.locked("log");
        log.advance_log_start(target)?;
        self.publish_log_stats(&log);
        Ok(log.log_start_offset())
    }

    pub(crate) fn apply_settings(&self, settings: LogSettings) {
        self.log.locked("log").set_config(settings.log);
        *self.settings.write_locked("settings") = Arc::new(settings);
    }
}

/// DeleteRecords' offset meaning "up to the high watermark".
pub(crate) const DELETE_UP_TO_HIGH_WATERMARK: i64 = -1;

/// Why DeleteRecords refused a partition.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteRecordsError {
    #[error("the offset is negative or beyond the high watermark")]
    OutOfRange,
    #[error("the topic's cleanup.policy does not include delete")]
    CompactOnly,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests {
    use crate::test_support::{create_topic, test_state};
    use sluice_protocol::batch::build_uncompressed_batch;

    #[tokio::test]
    async fn a_panic_while_the_log_is_locked_does_not_disable_the_partition() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        let partition = state.partitions.get("t", 0).unwrap();
        let held = partition.clone();
        let panicked = std::thread::spawn(move || {
            let _log = held.log.lock().unwrap();
            panic!("a handler bug while holding the log lock");
        })
        .join();
        assert!(panicked.is_err());
        let mut batch = build_uncompressed_batch(0, &[(None, Some(&b"v"[..]))]).to_vec();
        let info = partition.append(&mut batch, None, 0).unwrap();
        assert_eq!(info.last_offset, 0);
        assert_eq!(partition.log_end_offset(), 1);
    }
}
