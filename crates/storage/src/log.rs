//! The log of one partition: an ordered list of segments, the last one active.

mod replica;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchIter, BatchMut};

use crate::cleaner::{
    self, crash_point, CleanJob, CleanStats, CleanableRange, CleanedSegment, CleanerCheckpoint,
    CleanerConfig, CrashPoint, Throttle,
};
use crate::config::LogConfig;
use crate::durability::Durability;
use crate::error::{IoContext, StorageError};
use crate::fsutil::{sync_dir, write_file_atomically};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::open_files::OpenFiles;
use crate::segment::{segment_path, BatchMeta, Segment, LOG_SUFFIX};
use crate::txn_index::{self, AbortedTxnEntry};

/// File holding the offset below which every segment is known to be synced:
/// recovery after a crash only scans from there.
const RECOVERY_POINT_FILE: &str = "recovery-point";

/// File holding the log start offset (Kafka's log-start-offset checkpoint).
/// It is written before segments below it are deleted, so a crash in between
/// leaves leftovers that the next open deletes, and it keeps a log start set
/// inside a segment by DeleteRecords.
const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// What one `append` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Max over the appended batches (after LogAppendTime stamping).
    pub max_timestamp: i64,
    /// Base offset of the first appended batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The stamped time, or -1 when the batches keep their CreateTime.
    pub log_append_time: i64,
    /// Offsets consumed: the sum of `lastOffsetDelta + 1` over the batches.
    pub record_count: i64,
}

/// Whole batches returned by `read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub data: Bytes,
    /// Base offset of the first batch in `data`; `None` when `data` is empty.
    pub first_offset: Option<i64>,
}

impl ReadResult {
    fn empty() -> Self {
        ReadResult {
            data: Bytes::new(),
            first_offset: None,
        }
    }
}

/// The log of one partition. Not internally synchronized: the broker holds it
/// in a mutex; `Durability` is the part shared with sync waiters.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Ordered by base offset; the last one is active. Never empty.
    segments: Vec<Segment>,
    /// First offset readable; at or after the first segment's base offset
    /// (inside it after DeleteRecords), never past the log end offset.
    log_start_offset: i64,
    log_end_offset: i64,
    durability: Arc<Durability>,
    /// The log directory's cache of open segment files.
    files: Arc<OpenFiles>,
    /// Where each leader epoch starts (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
    cleaner_checkpoint: CleanerCheckpoint,
    /// Set at open when a damaged txnindex lost entries: aborted
    /// transactions with markers from this offset on may be missing.
    txn_index_damaged_from: Option<i64>,
}

fn segment_bases(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(LOG_SUFFIX))
            .and_then(|n| n.strip_suffix('.'))
        else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Reads an offset checkpoint file; `None` when it is missing or unreadable
/// (an unreadable recovery point only costs a longer recovery; an unreadable
/// log start falls back to the first segment, as Kafka does).
fn read_checkpoint(dir: &Path, name: &str) -> Result<Option<i64>, StorageError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("reading {}", path.display())),
    }
}

fn write_checkpoint(dir: &Path, name: &str, offset: i64) -> Result<(), StorageError> {
    write_file_atomically(&dir.join(name), format!("{offset}\n").as_bytes())
}

/// Moves the recovery point to `offset`, or, when that write fails (a full
/// disk), removes the old one and logs a warning. The checkpoint only
/// shortens the scan after a crash: without it the next unclean start scans
/// every segment, which is always safe, while a stale point could be above
/// data that a recovery has just cut off and so skip scanning what replaced
/// it. Shutdown and start-up must not fail over an optimisation.
fn write_recovery_point(dir: &Path, offset: i64) {
    let Err(error) = write_checkpoint(dir, RECOVERY_POINT_FILE, offset) else {
        return;
    };
    let stale = dir.join(RECOVERY_POINT_FILE);
    match fs::remove_file(&stale) {
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), offset, %error, "cannot write the recovery point; removed the old one, so a crash before the next checkpoint means a full scan of this log")
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), offset, %error, "cannot write the recovery point; a crash before the next checkpoint means a full scan of this log")
        }
        Err(remove_error) => {
            tracing::warn!(dir = %dir.display(), offset, %error, %remove_error, "cannot write the recovery point nor remove the old one")
        }
    }
}

impl PartitionLog {
    /// Opens the log in `dir` (created if needed). After an unclean shutdown
    /// (`clean == false`) every segment that may hold offsets at or after the
    /// recovery point is scanned and cut at its first bad batch.
    pub(crate) fn open(
        dir: PathBuf,
        config: LogConfig,
        clean: bool,
        now_ms: i64,
        files: &Arc<OpenFiles>,
    ) -> Result<PartitionLog, StorageError> {
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let checkpointed_start = read_checkpoint(&dir, LOG_START_OFFSET_FILE)?;
        cleaner::finish_interrupted_cleaning(&dir, &segment_bases(&dir)?)?;
        let mut bases = segment_bases(&dir)?;
        if let Some(start) = checkpointed_start {
            // Segments wholly below the log start are what a crash left of a deletion.
            let holding_start = bases
                .partition_point(|&base| base <= start)
                .saturating_sub(1);
            for base in bases.drain(..holding_start) {
                Segment::delete_files(&dir, base)?;
            }
        }
        if bases.is_empty() {
            let start = checkpointed_start.unwrap_or(0);
            let segment = Segment::create(&dir, start, files)?;
            sync_dir(&dir)?;
            let mut log =
                PartitionLog::with_segments(dir, config, vec![segment], start, start, files);
            log.load_epochs()?;
            return Ok(log);
        }
        let recovery_point = if clean {
            None
        } else {
            Some(read_checkpoint(&dir, RECOVERY_POINT_FILE)?.unwrap_or(0))
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        let mut log_end_offset = bases[0];
        let mut recovered_any = false;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let offset_span = next_base.map_or(u64::MAX, |next| (next - base) as u64);
            // After a crash, the segment holding the recovery point and all
            // later ones (always including the active one) may be torn.
            let may_hold_unsynced =
                recovery_point.is_some_and(|point| next_base.is_none_or(|next| next > point));
            let loaded = if may_hold_unsynced {
                None
            } else {
                Segment::load(&dir, base, offset_span, files)?
            };
            let (segment, end_offset, recovery) = match loaded {
                Some(mut segment) if next_base.is_none() => match segment.verify_tail()? {
                    Some(end) => (segment, end, None),
                    None => recover(&dir, base, &config, files)?,
                },
                Some(segment) => (segment, next_base.expect("not the last"), None),
                None => recover(&dir, base, &config, files)?,
            };
            recovered_any |= recovery.is_some();
            if let Some(next) = next_base.filter(|&next| end_offset > next) {
                return Err(StorageError::Corrupt(format!(
                    "segment {base} of {} runs to offset {end_offset}, past the next segment {next}",
                    dir.display()
                )));
            }
            segments.push(segment);
            log_end_offset = end_offset;
            if let Some(Recovery::CutShort { cut_bytes }) = recovery {
                // A closed segment was synced before the next one got any
                // data (see `roll`), so its damaged tail is not a torn write
                // and the next segment starts right after the batches it
                // lost: keep the later segments when the gap fits the bytes.
                let lost = next_base.map(|next| end_offset..next);
                if lost.clone().is_some_and(|lost| {
                    u64::try_from(lost.end - lost.start).is_ok_and(|n| n <= cut_bytes)
                }) {
                    tracing::warn!(dir = %dir.display(), base, lost_offsets = ?lost, "a closed segment lost its tail to damage; the later segments continue the log after the gap");
                    continue;
                }
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base = later, "deleting a segment after a truncated one");
                    Segment::delete_files(&dir, later)?;
                }
                break;
            }
        }
        let mut txn_index_damaged_from: Option<i64> = None;
        for segment in &mut segments {
            if let Some(missing_from) = segment.load_txn_index(&dir)? {
                txn_index_damaged_from =
                    Some(txn_index_damaged_from.map_or(missing_from, |d| d.min(missing_from)));
            }
            // Entries for markers a recovery cut off (or a crash took back).
            segment.txn_index_mut().truncate_from(log_end_offset)?;
        }
        if recovered_any {
            for segment in &segments {
                segment.sync()?;
            }
            sync_dir(&dir)?;
            write_recovery_point(&dir, log_end_offset);
        }
        let log_start_offset = checkpointed_start.map_or(segments[0].base_offset(), |start| {
            start.max(segments[0].base_offset())
        });
        if log_start_offset > log_end_offset {
            // A crash took back data the log start had already passed (lazy
            // flushing): start empty there rather than reuse deleted offsets.
            tracing::warn!(dir = %dir.display(), log_start_offset, log_end_offset, "log ends below its log start offset; starting it empty");
            for segment in segments.drain(..) {
                Segment::delete_files(&dir, segment.base_offset())?;
            }
            segments.push(Segment::create(&dir, log_start_offset, files)?);
            sync_dir(&dir)?;
            log_end_offset = log_start_offset;
            write_recovery_point(&dir, log_end_offset);
            txn_index_damaged_from = None;
        }
        let active = segments.last_mut().expect("at least one segment");
        active.start_roll_clock(now_ms)?;
        let mut log = PartitionLog::with_segments(
            dir,
            config,
            segments,
            log_start_offset,
            log_end_offset,
            files,
        );
        log.txn_index_damaged_from = txn_index_damaged_from;
        log.load_epochs()?;
        Ok(log)
    }

    fn with_segments(
        dir: PathBuf,
        config: LogConfig,
        segments: Vec<Segment>,
        log_start_offset: i64,
        log_end_offset: i64,
        files: &Arc<OpenFiles>,
    ) -> PartitionLog {
        let active = segments.last().expect("at least one segment").log_file();
        let cleaner_checkpoint = CleanerCheckpoint::read(&dir)
            .unwrap_or_else(|e| {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable cleaner checkpoint; the whole log counts as dirty");
                CleanerCheckpoint::default()
            })
            // A crash took back data the cleaner had seen (lazy flushing):
            // what took its place was never cleaned.
            .reset_if_beyond(log_end_offset);
        PartitionLog {
            epochs: LeaderEpochCache::empty(&dir),
            dir,
            config,
            segments,
            log_start_offset,
            log_end_offset,
            durability: Arc::new(Durability::new(active, log_end_offset)),
            files: Arc::clone(files),
            cleaner_checkpoint,
            txn_index_damaged_from: None,
        }
    }

    /// Loads the leader-epoch cache, rebuilding it from the batches when
    /// its checkpoint is missing or damaged, and drops the entries that the
    /// log no longer holds.
    fn load_epochs(&mut self) -> Result<(), StorageError> {
        self.epochs = match LeaderEpochCache::load(&self.dir)? {
            Some(cache) => cache,
            None if self.log_end_offset == self.log_start_offset => {
                LeaderEpochCache::empty(&self.dir)
            }
            None => {
                let mut entries = Vec::new();
                for segment in &self.segments {
                    segment.collect_epoch_starts(&mut entries);
                }
                tracing::info!(dir = %self.dir.display(), epochs = entries.len(), "rebuilt the leader-epoch checkpoint from the log's batches");
                LeaderEpochCache::rebuilt(&self.dir, entries)
            }
        };
        self.epochs.truncate_from_end(self.log_end_offset);
        self.epochs.truncate_from_start(self.log_start_offset);
        Ok(())
    }

    /// Records that `epoch` leads from the log end offset on, as Kafka does
    /// when a replica becomes leader, so that OffsetForLeaderEpoch knows the
    /// epoch before its first batch. Best effort (a full disk must not stop
    /// a partition from opening): the first append of the epoch records it
    /// if this could not, and fails if it cannot either.
    pub fn start_leader_epoch(&mut self, epoch: i32) {
        if let Err(error) = self.epochs.assign(epoch, self.log_end_offset) {
            tracing::warn!(dir = %self.dir.display(), epoch, %error, "cannot record the new leader epoch yet; its first append will");
        }
    }

    /// Kafka's `endOffsetForEpoch` (OffsetForLeaderEpoch): the largest epoch
    /// at or below `epoch` that this log knows and the offset where it ends
    /// (the start of the next epoch, or the log end for the latest one).
    /// `None` for an undefined epoch or one above every known epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// Where each leader epoch the log holds starts.
    pub fn leader_epochs(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    fn active(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("at least one segment")
    }

    /// Appends whole v2 batches already validated by the caller, assigning
    /// them dense offsets from the log end offset by patching them in place.
    /// Does not sync: see `durability`.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let mut metas = Vec::new();
        for batch in BatchIter::new(batches) {
            let (header, _) = batch.map_err(|e| StorageError::InvalidBatch(e.to_string()))?;
            metas.push(BatchMeta::of(&header));
        }
        if metas.is_empty() {
            return Err(StorageError::InvalidBatch("no record batches".into()));
        }
        let first_offset = self.log_end_offset;
        let record_count: i64 = metas
            .iter()
            .map(|m| m.last_offset - m.base_offset + 1)
            .sum();
        let last_offset = first_offset + record_count - 1;
        if self
            .segments
            .last()
            .expect("at least one segment")
            .should_roll(&self.config, batches.len() as u64, last_offset, now_ms)
        {
            self.roll()?;
        }

        let mut next_offset = first_offset;
        let mut position = 0;
        let mut max_timestamp = (i64::MIN, first_offset);
        for meta in &mut metas {
            let span = meta.last_offset - meta.base_offset;
            let len = meta.len as usize;
            let mut batch = BatchMut::new(&mut batches[position..position + len]);
            batch.set_base_offset(next_offset);
            batch.set_partition_leader_epoch(leader_epoch);
            if let Some(now) = log_append_time {
                batch.set_log_append_time(now);
                meta.max_timestamp = now;
            }
            meta.base_offset = next_offset;
            meta.last_offset = next_offset + span;
            if meta.max_timestamp > max_timestamp.0 {
                max_timestamp = (meta.max_timestamp, next_offset);
            }
            next_offset += span + 1;
            position += len;
        }

        // Durable before any batch of a new epoch is.
        self.epochs.assign(leader_epoch, first_offset)?;
        let config = self.config;
        self.active().append(batches, &metas, &config, now_ms)?;
        self.log_end_offset = next_offset;
        self.durability.appended(next_offset);
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp: max_timestamp.0,
            offset_of_max_timestamp: max_timestamp.1,
            log_append_time: log_append_time.unwrap_or(-1),
            record_count,
        })
    }

    /// Closes the active segment now, unless it is empty (Kafka's `roll`):
    /// what `segment.ms` does, on demand.
    pub fn roll_active(&mut self) -> Result<(), StorageError> {
        if self.active().size() == 0 {
            return Ok(());
        }
        self.roll()
    }

    /// Starts a new active segment at the log end offset. The old one is
    /// synced first, so syncing the active file always suffices for durability.
    fn roll(&mut self) -> Result<(), StorageError> {
        let base = self.log_end_offset;
        self.durability.sync_to(base)?;
        self.sync_aborted_txns()?;
        let dir = self.dir.clone();
        let closing = self.active();
        closing.finish_indexes(&dir);
        closing.txn_index_mut().close_file();
        let segment = Segment::create(&dir, base, &self.files)?;
        sync_dir(&dir)?;
        write_recovery_point(&dir, base);
        self.durability.rolled(segment.log_file());
        self.segments.push(segment);
        tracing::debug!(dir = %dir.display(), base, "rolled a new segment");
        Ok(())
    }

    /// Whole batches from the one containing `offset`: as many as fit in
    /// `max_bytes` but at least one, none with a base offset >= `max_offset`
    /// (the high watermark, exclusive).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, StorageError> {
        let log_start = self.log_start_offset();
        if offset < log_start || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end: self.log_end_offset,
            });
        }
        if offset == self.log_end_offset || offset >= max_offset {
            return Ok(ReadResult::empty());
        }
        let first_candidate = self.segments.partition_point(|s| s.base_offset() <= offset) - 1;
        for segment in &self.segments[first_candidate..] {
            let Some((position, first)) = segment.find_batch(offset)? else {
                continue;
            };
            if first.base_offset >= max_offset {
                break;
            }
            let data = segment.read_batches(position, &first, max_bytes, max_offset)?;
            return Ok(ReadResult {
                data,
                first_offset: Some(first.base_offset),
            });
        }
        Ok(ReadResult::empty())
    }

    /// Records an aborted transaction in the txnindex of the segment holding
    /// its marker (`entry.last_offset`, which must be in the log and after
    /// every entry of that segment). The caller computes the entry; appends
    /// come in marker order, normally to the active segment right after the
    /// marker. The write is not synced: the active segment's txnindex is
    /// synced with its data by [`Durability::sync_to`], at a roll and at
    /// [`PartitionLog::close`]; [`PartitionLog::sync_aborted_txns`] syncs
    /// every txnindex appended to.
    pub fn append_aborted_txn(&mut self, entry: AbortedTxnEntry) -> Result<(), StorageError> {
        let first_base = self.segments[0].base_offset();
        if entry.last_offset < first_base.max(self.log_start_offset)
            || entry.last_offset >= self.log_end_offset
            || entry.first_offset > entry.last_offset
        {
            return Err(StorageError::InvalidAbortedTxn(format!(
                "{entry:?} is not within the log [{}, {})",
                self.log_start_offset, self.log_end_offset
            )));
        }
        let at = self
            .segments
            .partition_point(|s| s.base_offset() <= entry.last_offset)
            - 1;
        let is_active = at + 1 == self.segments.len();
        let segment = &mut self.segments[at];
        if let Some(last) = segment.aborted_txns().last() {
            if last.last_offset >= entry.last_offset {
                return Err(StorageError::InvalidAbortedTxn(format!(
                    "{entry:?} does not follow the segment's last entry {last:?}"
                )));
            }
        }
        let index = segment.txn_index_mut();
        if index.append(entry)? {
            sync_dir(&self.dir)?;
        }
        if is_active {
            if let Some(file) = index.file() {
                self.durability.txn_index_appended(file);
            }
        }
        Ok(())
    }

    /// Syncs every txnindex appended to since its last sync.
    pub fn sync_aborted_txns(&mut self) -> Result<(), StorageError> {
        self.durability.sync_txn_index()?;
        for segment in &mut self.segments {
            segment.txn_index_mut().sync()?;
        }
        Ok(())
    }

    /// Kafka's `collectAbortedTransactions`: the aborted transactions that
    /// overlap `from..upper_bound` (their marker at or after `from`, their
    /// first offset below `upper_bound`), in marker order. Scans the
    /// in-memory entries of the segment holding `from` and of every later
    /// one, stopping at the first entry whose last stable offset reaches
    /// `upper_bound`: no transaction aborted after it started below that.
    pub fn collect_aborted_txns(&self, from: i64, upper_bound: i64) -> Vec<AbortedTxnEntry> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= from)
            .saturating_sub(1);
        let mut found = Vec::new();
        for segment in &self.segments[first..] {
            if txn_index::collect(segment.aborted_txns(), from, upper_bound, &mut found) {
                break;
            }
        }
        found
    }

    /// Drops every aborted-transaction entry whose marker is at or after
    /// `offset`, from memory and from the files (synced): a caller that
    /// rebuilds them from the log after a crash starts here.
    pub fn truncate_aborted_txns(&mut self, offset: i64) -> Result<(), StorageError> {
        let mut changed = false;
        for segment in self.segments.iter_mut().rev() {
            changed |= segment.txn_index_mut().truncate_from(offset)?;
            if segment.base_offset() < offset {
                break;
            }
        }
        if changed {
            sync_dir(&self.dir)?;
        }
        if self.txn_index_damaged_from.is_some_and(|d| d >= offset) {
            self.txn_index_damaged_from = None;
        }
        Ok(())
    }

    /// Where a damaged txnindex found at open may have lost entries: the
    /// aborted transactions with markers from this offset on must be
    /// rebuilt from the log (`None` when every txnindex was intact).
    pub fn txn_index_damaged_from(&self) -> Option<i64> {
        self.txn_index_damaged_from
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Moves the log start offset up to `offset` (DeleteRecords): offsets
    /// below it are out of range from now on, and segments wholly below it
    /// are deleted. The caller bounds it by the high watermark; past the log
    /// end it is out of range, and at or below the current start it changes
    /// nothing. Returns the number of segments deleted.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<usize, StorageError> {
        if offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(0);
        }
        // Never the active segment: at most all segments before it.
        let wholly_below = self.segments.partition_point(|s| s.base_offset() <= offset) - 1;
        self.delete_oldest(wholly_below, offset)
    }

    /// Kafka's time and size retention. Deletes oldest segments while their
    /// newest timestamp is more than `retention_ms` before `now_ms`, or while
    /// the log would still be at least `retention_bytes` large without them
    /// (-1 disables either limit). Only segments wholly below
    /// `high_watermark` go. When every segment is due, the active one is
    /// rolled first, as Kafka does, so the log keeps its end offset in a new
    /// empty segment. Returns the number of segments deleted.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
        high_watermark: i64,
    ) -> Result<usize, StorageError> {
        let mut excess_bytes = (retention_bytes >= 0)
            .then(|| i64::try_from(self.size_bytes()).unwrap_or(i64::MAX) - retention_bytes);
        let mut due = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            let next_base = self.segments.get(i + 1).map(Segment::base_offset);
            let end = next_base.unwrap_or(self.log_end_offset);
            if end > high_watermark || (next_base.is_none() && segment.size() == 0) {
                break;
            }
            // A segment without a timestamp holds no batch at all.
            let expired = retention_ms >= 0
                && segment
                    .max_timestamp()
                    .is_none_or(|(newest, _)| now_ms.saturating_sub(newest) > retention_ms);
            let size = segment.size() as i64;
            let oversized = excess_bytes.is_some_and(|excess| excess >= size);
            if !expired && !oversized {
                break;
            }
            excess_bytes = excess_bytes.map(|excess| excess - size);
            due += 1;
        }
        if due == 0 {
            return Ok(0);
        }
        if due == self.segments.len() {
            self.roll()?;
        }
        let new_start = self.segments[due].base_offset().max(self.log_start_offset);
        self.delete_oldest(due, new_start)
    }

    /// Makes `new_start` the log start offset (persisted first) and deletes
    /// the `count` oldest segments, which must lie wholly below it. The files
    /// go at once rather than after Kafka's `file.delete.delay.ms`: readers
    /// hold the same lock as this call, so none is inside them any more.
    fn delete_oldest(&mut self, count: usize, new_start: i64) -> Result<usize, StorageError> {
        write_checkpoint(&self.dir, LOG_START_OFFSET_FILE, new_start)?;
        self.log_start_offset = new_start;
        self.epochs.truncate_from_start(new_start);
        for segment in self.segments.drain(..count) {
            Segment::delete_files(&self.dir, segment.base_offset())?;
        }
        if count > 0 {
            sync_dir(&self.dir)?;
            tracing::debug!(dir = %self.dir.display(), count, new_start, "deleted segments below the log start offset");
        }
        Ok(count)
    }

    /// What a cleaning pass could clean now: the closed segments below
    /// `first_uncleanable_offset` (the caller's bound: high watermark, last
    /// stable offset) and outside `min.compaction.lag.ms`, with the dirty
    /// ratio and whether `max.compaction.lag.ms` or an expired tombstone
    /// makes a pass due anyway.
    pub fn cleanable_range(
        &self,
        config: &CleanerConfig,
        now_ms: i64,
        first_uncleanable_offset: i64,
    ) -> Result<CleanableRange, StorageError> {
        cleaner::cleanable_range(
            &self.segments,
            &self.cleaner_checkpoint,
            self.log_start_offset,
            config,
            now_ms,
            first_uncleanable_offset,
        )
    }

    /// Starts a cleaning pass if the log needs one. The returned job does
    /// its heavy work without the log: call [`CleanJob::clean_next`]
    /// unlocked, [`PartitionLog::install_cleaned`] with each result (a short
    /// swap), then [`PartitionLog::finish_cleaning`].
    pub fn start_cleaning(
        &self,
        config: &CleanerConfig,
        now_ms: i64,
        first_uncleanable_offset: i64,
    ) -> Result<Option<CleanJob>, StorageError> {
        let range = self.cleanable_range(config, now_ms, first_uncleanable_offset)?;
        if !range.needs_cleaning(config) {
            return Ok(None);
        }
        Ok(Some(CleanJob::new(
            self.dir.clone(),
            *config,
            self.config,
            now_ms,
            &self.segments,
            &range,
        )))
    }

    /// Swaps a cleaned group in for the segments it replaces. Returns false
    /// (and discards it) when those segments changed meanwhile, e.g. when
    /// retention deleted one.
    pub fn install_cleaned(&mut self, cleaned: CleanedSegment) -> Result<bool, StorageError> {
        let count = cleaned.replaces.len();
        let first = self
            .segments
            .iter()
            .position(|s| s.base_offset() == cleaned.base)
            .filter(|&first| {
                let bases = self.segments[first..].iter().map(Segment::base_offset);
                self.segments.len() > first + count
                    && bases
                        .clone()
                        .take(count)
                        .eq(cleaned.replaces.iter().copied())
                    && self.segments[first + count].base_offset() == cleaned.end
            });
        let Some(first) = first else {
            cleaner::discard_cleaned(&self.dir, cleaned.base)?;
            return Ok(false);
        };
        cleaner::commit_cleaned(&self.dir, cleaned.base)?;
        crash_point(CrashPoint::AfterSwapRename)?;
        // The cleaned segment keeps the aborted transactions of the ones it
        // replaces (their markers stay), but those whose every record the
        // pass removed: written before any original goes.
        let aborted: Vec<AbortedTxnEntry> = self.segments[first..first + count]
            .iter()
            .flat_map(|s| s.aborted_txns().iter().copied())
            .filter(|e| !cleaned.aborted_removed.contains(&e.last_offset))
            .collect();
        self.segments[first]
            .txn_index_mut()
            .replace(aborted.clone())?;
        for &base in &cleaned.replaces[1..] {
            Segment::delete_files(&self.dir, base)?;
            crash_point(CrashPoint::AfterDeletingAnOriginal)?;
        }
        Segment::delete_index_files(&self.dir, cleaned.base)?;
        cleaner::complete_swap(&self.dir, cleaned.base)?;
        let segment = Segment::open_cleaned(
            &self.dir,
            cleaned.base,
            &cleaned.batches,
            aborted,
            &self.config,
            &self.files,
        )?;
        self.segments.splice(first..first + count, [segment]);
        Ok(true)
    }

    /// Ends a pass: persists the new first dirty offset.
    pub fn finish_cleaning(&mut self, job: CleanJob) -> Result<CleanStats, StorageError> {
        let mut checkpoint = job.checkpoint;
        checkpoint.first_dirty_offset = job.stats.cleaned_up_to;
        cleaner::write_checkpoint(&self.dir, &checkpoint)?;
        self.cleaner_checkpoint = checkpoint;
        Ok(CleanStats {
            segments_after: self
                .segments
                .iter()
                .take_while(|s| s.base_offset() < checkpoint.first_dirty_offset)
                .count(),
            ..job.stats
        })
    }

    /// A whole cleaning pass holding the log throughout (for callers that
    /// own it, like tests and tools); `None` when none was due.
    pub fn clean(
        &mut self,
        config: &CleanerConfig,
        now_ms: i64,
        first_uncleanable_offset: i64,
        throttle: &Throttle,
    ) -> Result<Option<CleanStats>, StorageError> {
        let Some(mut job) = self.start_cleaning(config, now_ms, first_uncleanable_offset)? else {
            return Ok(None);
        };
        while let Some(cleaned) = job.clean_next(throttle)? {
            self.install_cleaned(cleaned)?;
        }
        self.finish_cleaning(job).map(Some)
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// (max timestamp, base offset) of the first batch whose max timestamp
    /// reaches `timestamp` (ListOffsets by time), among the batches holding
    /// offsets at or after both `from_offset` and the log start offset;
    /// `None` when there is none.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        from_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let from_offset = from_offset.max(self.log_start_offset);
        let first_candidate = self
            .segments
            .partition_point(|s| s.base_offset() <= from_offset)
            .saturating_sub(1);
        for segment in &self.segments[first_candidate..] {
            if segment
                .max_timestamp()
                .is_some_and(|(max, _)| max >= timestamp)
            {
                if let Some(found) = segment.find_timestamp(timestamp, from_offset)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// (max timestamp, base offset of the first batch with it) over the whole
    /// log, for ListOffsets MAX_TIMESTAMP; `None` when the log is empty.
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> {
        self.segments
            .iter()
            .filter_map(Segment::max_timestamp)
            .fold(None, |best, candidate| match best {
                Some((max, _)) if max >= candidate.0 => best,
                _ => Some(candidate),
            })
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first (the last is active).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    /// The `.log` files of the closed segments, oldest first: they no longer
    /// change (but retention or the cleaner may delete or replace them), so
    /// a scrubber can verify them without holding the log.
    pub fn closed_segment_files(&self) -> Vec<PathBuf> {
        let closed = &self.segments[..self.segments.len() - 1];
        closed
            .iter()
            .map(|s| segment_path(&self.dir, s.base_offset(), LOG_SUFFIX))
            .collect()
    }

    /// Durability handle shared with the broker's group-commit waiters.
    pub fn durability(&self) -> Arc<Durability> {
        Arc::clone(&self.durability)
    }

    /// Offsets appended but not yet synced, for `flush.messages`.
    pub fn unflushed_messages(&self) -> i64 {
        self.log_end_offset - self.durability.synced_offset()
    }

    /// Changes the config; it applies from the next append on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Syncs all data, writes the active segment's indexes and moves the
    /// recovery point to the log end offset. Only a failed sync fails it:
    /// the index and checkpoint writes are best effort (see
    /// `write_recovery_point`), so a full disk does not fail a shutdown.
    pub fn close(mut self) -> Result<(), StorageError> {
        let end = self.log_end_offset;
        self.durability.sync_to(end)?;
        self.sync_aborted_txns()?;
        let dir = self.dir.clone();
        self.active().finish_indexes(&dir);
        write_recovery_point(&dir, end);
        Ok(())
    }
}

/// How a segment that was scanned on open came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    Intact,
    /// Its tail (`cut_bytes` long) was torn or corrupt and has been cut off.
    CutShort {
        cut_bytes: u64,
    },
}

/// `Segment::recover`, as (segment, end offset, outcome).
fn recover(
    dir: &Path,
    base: i64,
    config: &LogConfig,
    files: &Arc<OpenFiles>,
) -> Result<(Segment, i64, Option<Recovery>), StorageError> {
    let (segment, end) = Segment::recover(dir, base, config, files)?;
    let outcome = if end.reached_end {
        Recovery::Intact
    } else {
        Recovery::CutShort {
            cut_bytes: end.cut_bytes,
        }
    };
    Ok((segment, end.next_offset, Some(outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader_epoch::LEADER_EPOCH_CHECKPOINT;
    use sluice_protocol::batch::{build_uncompressed_batch, BatchHeader};

    fn batch(timestamp: i64, records: usize, payload_len: usize) -> Vec<u8> {
        let payload = vec![b'x'; payload_len];
        let records: Vec<_> = (0..records).map(|_| (None, Some(&payload[..]))).collect();
        build_uncompressed_batch(timestamp, &records).to_vec()
    }

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(dir.join("t-0"), config, true, 0, &OpenFiles::new(4)).unwrap()
    }

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    /// Base offsets of the batches in a read result.
    fn bases(data: &[u8]) -> Vec<i64> {
        BatchIter::new(data)
            .map(|b| b.unwrap().0.base_offset())
            .collect()
    }

    #[test]
    fn append_assigns_dense_offsets_and_patches_headers() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), LogConfig::default());
        let mut two = batch(1_000, 3, 10);
        two.extend(batch(2_000, 2, 10));
        let info = log.append(&mut two, 7, None, 0).unwrap();
        assert_eq!(
            info,
            AppendInfo {
                first_offset: 0,
                last_offset: 4,
                max_timestamp: 2_001,
                offset_of_max_timestamp: 3,
                log_append_time: -1,
                record_count: 5,
            }
        );
        let mut stamped = batch(1_000, 1, 10);
        let info = log.append(&mut stamped, 8, Some(5_000), 0).unwrap();
        assert_eq!((info.first_offset, info.max_timestamp), (5, 5_000));
        assert_eq!(info.log_append_time, 5_000);
        assert_eq!(log.log_end_offset(), 6);

        let read = log.read(5, 10_000, i64::MAX).unwrap();
        let header = BatchHeader::parse(&read.data).unwrap();
        header.verify().unwrap();
        assert_eq!(header.base_offset(), 5);
        assert_eq!(header.partition_leader_epoch(), 8);
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 5_000);
        assert_eq!(log.max_timestamp_and_offset(), Some((5_000, 5)));
    }

    #[test]
    fn logs_keep_working_with_more_segments_than_open_files() {
        let tmp = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(2);
        let open = |p: usize| {
            let dir = tmp.path().join(format!("t-{p}"));
            PartitionLog::open(dir, small_segments(), false, 0, &files).unwrap()
        };
        let mut logs: Vec<PartitionLog> = (0..3).map(open).collect();
        let one = batch(0, 1, 50);
        for round in 0..6 {
            for log in &mut logs {
                log.append(&mut one.clone(), round, None, 0).unwrap();
                log.durability().sync_to(log.log_end_offset()).unwrap();
                assert!(files.open_count() <= 2);
            }
        }
        for log in &logs {
            assert!(log.segment_count() >= 3);
            for offset in 0..6 {
                let read = log.read(offset, 1, i64::MAX).unwrap();
                assert_eq!(bases(&read.data), vec![offset]);
            }
        }
        assert!(files.open_count() <= 2);
        for log in logs {
            log.close().unwrap();
        }
        // Reopened after a crash: every segment is scanned through the cache.
        let logs: Vec<PartitionLog> = (0..3).map(open).collect();
        for log in &logs {
            assert_eq!(log.log_end_offset(), 6);
        }
        assert!(files.open_count() <= 2);
    }

    #[test]
    fn leader_epochs_are_checkpointed_rebuilt_and_trimmed() {
        let tmp = tempfile::tempdir().unwrap();
        let entry = |epoch, start_offset| EpochEntry {
            epoch,
            start_offset,
        };
        let mut log = open(tmp.path(), small_segments());
        log.start_leader_epoch(0);
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
        for epoch in [0, 0, 2, 2, 5] {
            log.append(&mut batch(0, 2, 50), epoch, None, 0).unwrap();
        }
        let expected = [entry(0, 0), entry(2, 4), entry(5, 8)];
        assert_eq!(log.leader_epochs(), expected);
        assert_eq!(log.end_offset_for_epoch(1), Some((0, 4)));
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 10)));
        log.close().unwrap();

        let checkpoint = tmp.path().join("t-0").join(LEADER_EPOCH_CHECKPOINT);
        assert_eq!(
            log_epochs(tmp.path()),
            expected,
            "reloaded from the checkpoint"
        );
        fs::remove_file(&checkpoint).unwrap();
        assert_eq!(log_epochs(tmp.path()), expected, "rebuilt from the batches");
        assert!(checkpoint.exists(), "and written again");
        fs::write(&checkpoint, "0\n7\ngarbage").unwrap();
        assert_eq!(log_epochs(tmp.path()), expected, "rebuilt when damaged");

        // An epoch whose first batch a crash took back is dropped at open.
        fs::write(&checkpoint, "0\n4\n0 0\n2 4\n5 8\n6 10\n").unwrap();
        let mut log = open(tmp.path(), small_segments());
        assert_eq!(log.leader_epochs(), expected);
        log.advance_log_start(5).unwrap();
        assert_eq!(log.leader_epochs(), [entry(2, 5), entry(5, 8)]);
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 5)), "older than kept");
    }

    fn log_epochs(dir: &Path) -> Vec<EpochEntry> {
        open(dir, small_segments()).leader_epochs().to_vec()
    }

    #[test]
    fn empty_append_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), LogConfig::default());
        assert!(matches!(
            log.append(&mut [], 0, None, 0),
            Err(StorageError::InvalidBatch(_))
        ));
    }

    #[test]
    fn rolls_when_an_append_would_exceed_segment_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), small_segments());
        let one = batch(0, 1, 50);
        assert!(one.len() > 100 && one.len() < 150);
        for _ in 0..2 {
            log.append(&mut one.clone(), 0, None, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 1);
        log.append(&mut one.clone(), 0, None, 0).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.segments[1].base_offset(), 2);
        // An append larger than a segment still goes into one (fresh) segment.
        let mut huge = batch(0, 3, 200);
        log.append(&mut huge, 0, None, 0).unwrap();
        assert_eq!(log.segment_count(), 3);
        assert_eq!(log.segments[2].base_offset(), 3);
        assert!(tmp.path().join("t-0/00000000000000000003.log").exists());
        assert_eq!(
            log.durability().synced_offset(),
            3,
            "a roll syncs the old segment"
        );
        assert_eq!(log.size_bytes(), 3 * one.len() as u64 + huge.len() as u64);
        for offset in 0..log.log_end_offset() {
            let read = log.read(offset, 1, i64::MAX).unwrap();
            assert_eq!(bases(&read.data), vec![offset.min(3)]);
        }
    }

    #[test]
    fn rolls_by_time_but_never_an_empty_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        };
        let mut log = open(tmp.path(), config);
        log.append(&mut batch(0, 1, 1), 0, None, 5_000).unwrap();
        log.append(&mut batch(0, 1, 1), 0, None, 6_000).unwrap();
        assert_eq!(log.segment_count(), 1);
        log.append(&mut batch(0, 1, 1), 0, None, 6_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        // The new segment's clock starts at its first append.
        log.append(&mut batch(0, 1, 1), 0, None, 7_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        log.append(&mut batch(0, 1, 1), 0, None, 7_002).unwrap();
        assert_eq!(log.segment_count(), 3);
    }

    #[test]
    fn rolls_when_the_index_is_full() {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            index_interval_bytes: 0,
            segment_index_bytes: 24,
            ..LogConfig::default()
        };
        let mut log = open(tmp.path(), config);
        // With interval 0 every batch but a segment's first adds an entry;
        // 24 bytes hold two time entries.
        for ts in 0..3 {
            log.append(&mut batch(ts, 1, 1), 0, None, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 1);
        log.append(&mut batch(10, 1, 1), 0, None, 0).unwrap();
        assert_eq!(log.segment_count(), 2);
        for offset in 0..4 {
            assert_eq!(bases(&log.read(offset, 1, 4).unwrap().data), vec![offset]);
        }
    }

    #[test]
    fn read_returns_whole_batches_within_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(
            tmp.path(),
            LogConfig {
                index_interval_bytes: 0,
                ..LogConfig::default()
            },
        );
        let three = batch(0, 3, 20);
        let len = three.len();
        for _ in 0..4 {
            log.append(&mut three.clone(), 0, None, 0).unwrap();
        }
        // Offsets 0..12 in batches based at 0, 3, 6, 9.
        let read = log.read(4, 2 * len, i64::MAX).unwrap();
        assert_eq!(read.first_offset, Some(3));
        assert_eq!(bases(&read.data), vec![3, 6]);
        assert_eq!(
            bases(&log.read(4, 2 * len - 1, i64::MAX).unwrap().data),
            vec![3]
        );
        assert_eq!(
            bases(&log.read(4, 1, i64::MAX).unwrap().data),
            vec![3],
            "at least one"
        );
        assert_eq!(bases(&log.read(0, 0, i64::MAX).unwrap().data), vec![0]);
        // max_offset is exclusive and applies to base offsets.
        assert_eq!(
            bases(&log.read(0, 100 * len, 7).unwrap().data),
            vec![0, 3, 6]
        );
        assert_eq!(bases(&log.read(0, 100 * len, 6).unwrap().data), vec![0, 3]);
        assert_eq!(bases(&log.read(7, 100 * len, 8).unwrap().data), vec![6]);
        let empty = log.read(6, 100 * len, 6).unwrap();
        assert!(empty.data.is_empty() && empty.first_offset.is_none());
        assert!(log.read(12, 100, i64::MAX).unwrap().data.is_empty());
        assert!(matches!(
            log.read(13, 100, i64::MAX),
            Err(StorageError::OffsetOutOfRange {
                offset: 13,
                log_start: 0,
                log_end: 12
            })
        ));
        assert!(matches!(
            log.read(-1, 100, i64::MAX),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn offset_for_timestamp_finds_first_batch_reaching_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(
            tmp.path(),
            LogConfig {
                segment_bytes: 400,
                index_interval_bytes: 0,
                ..LogConfig::default()
            },
        );
        // Batch max timestamps (one record each): 100, 300, 200, 400, 400, 500.
        let timestamps = [100, 300, 200, 400, 400, 500];
        for ts in timestamps {
            log.append(&mut batch(ts, 1, 30), 0, None, 0).unwrap();
        }
        assert!(log.segment_count() > 1);
        for (ts, expected) in [
            (i64::MIN, Some((100, 0))),
            (100, Some((100, 0))),
            (101, Some((300, 1))),
            (200, Some((300, 1))),
            (301, Some((400, 3))),
            (400, Some((400, 3))),
            (401, Some((500, 5))),
            (501, None),
        ] {
            assert_eq!(
                log.offset_for_timestamp(ts, 0).unwrap(),
                expected,
                "ts {ts}"
            );
        }
        assert_eq!(log.max_timestamp_and_offset(), Some((500, 5)));
        // The same answers after a reopen, from the written time indexes.
        let dir = log.dir().to_path_buf();
        log.close().unwrap();
        let log =
            PartitionLog::open(dir, LogConfig::default(), true, 0, &OpenFiles::new(4)).unwrap();
        assert_eq!(log.offset_for_timestamp(301, 0).unwrap(), Some((400, 3)));
        assert_eq!(log.offset_for_timestamp(201, 0).unwrap(), Some((300, 1)));
        assert_eq!(log.max_timestamp_and_offset(), Some((500, 5)));
    }

    #[test]
    fn empty_log_has_no_timestamps() {
        let tmp = tempfile::tempdir().unwrap();
        let log = open(tmp.path(), LogConfig::default());
        assert_eq!(log.max_timestamp_and_offset(), None);
        assert_eq!(log.offset_for_timestamp(0, 0).unwrap(), None);
        assert!(log.read(0, 100, i64::MAX).unwrap().data.is_empty());
    }

    #[test]
    fn reopen_keeps_offsets_and_roll_clock() {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 1_000,
            ..small_segments()
        };
        let mut log = open(tmp.path(), config);
        for _ in 0..5 {
            log.append(&mut batch(10_000, 1, 50), 0, None, 10_000)
                .unwrap();
        }
        let segments = log.segment_count();
        log.close().unwrap();
        let mut log = PartitionLog::open(
            tmp.path().join("t-0"),
            config,
            true,
            10_500,
            &OpenFiles::new(4),
        )
        .unwrap();
        assert_eq!((log.log_end_offset(), log.segment_count()), (5, segments));
        assert_eq!(log.unflushed_messages(), 0);
        assert_eq!(
            log.append(&mut batch(0, 1, 1), 0, None, 11_001)
                .unwrap()
                .first_offset,
            5
        );
        assert_eq!(
            log.segment_count(),
            segments + 1,
            "clock taken from the first batch"
        );
    }

    /// Five closed segments of one batch each (offsets 0..5, timestamps
    /// 1_000, 2_000, ...) and an active one holding offset 5.
    fn six_segments(dir: &Path) -> PartitionLog {
        let mut log = open(dir, small_segments());
        for i in 0..6 {
            if i > 0 {
                log.roll().unwrap();
            }
            log.append(&mut batch(1_000 * (i + 1), 1, 50), 0, None, 0)
                .unwrap();
        }
        log
    }

    impl PartitionLog {
        fn segment_bases(&self) -> Vec<i64> {
            self.segments.iter().map(Segment::base_offset).collect()
        }
    }

    #[test]
    fn time_retention_deletes_segments_whose_newest_record_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = six_segments(tmp.path());
        assert_eq!(log.segment_bases(), vec![0, 1, 2, 3, 4, 5]);
        // At 4_500 with 2_000 ms retention, timestamps below 2_500 expired.
        assert_eq!(log.apply_retention(4_500, 2_000, -1, 6).unwrap(), 2);
        assert_eq!(log.segment_bases(), vec![2, 3, 4, 5]);
        assert_eq!(log.log_start_offset(), 2);
        assert!(!tmp.path().join("t-0/00000000000000000001.log").exists());
        assert!(!tmp.path().join("t-0/00000000000000000001.index").exists());
        assert_eq!(log.apply_retention(4_500, 2_000, -1, 6).unwrap(), 0);
        assert_eq!(
            log.apply_retention(i64::MAX, -1, -1, 6).unwrap(),
            0,
            "-1 keeps forever"
        );
        // Once everything expired, the active segment is rolled and deleted
        // too: the log is empty but keeps its end offset.
        assert_eq!(log.apply_retention(100_000, 2_000, -1, 6).unwrap(), 4);
        assert_eq!(log.segment_bases(), vec![6]);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
        assert_eq!(log.apply_retention(100_000, 2_000, -1, 6).unwrap(), 0);
        let info = log.append(&mut batch(0, 1, 1), 0, None, 0).unwrap();
        assert_eq!(info.first_offset, 6);
    }

    #[test]
    fn retention_never_deletes_data_at_or_above_the_high_watermark() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = six_segments(tmp.path());
        assert_eq!(log.apply_retention(100_000, 0, -1, 3).unwrap(), 3);
        assert_eq!(log.segment_bases(), vec![3, 4, 5]);
        // The active segment is due but not wholly below the high watermark.
        assert_eq!(log.apply_retention(100_000, 0, -1, 5).unwrap(), 2);
        assert_eq!(log.segment_bases(), vec![5]);
        assert_eq!(log.log_start_offset(), 5);
    }

    #[test]
    fn size_retention_deletes_oldest_segments_while_the_rest_stays_large_enough() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = six_segments(tmp.path());
        let segment = log.segments[0].size() as i64;
        assert_eq!(log.size_bytes() as i64, 6 * segment);
        assert_eq!(log.apply_retention(0, -1, 6 * segment, 6).unwrap(), 0);
        // 6 segments against a limit of 3.5: deleting two leaves 4 >= 3.5;
        // a third would leave 3 < 3.5.
        assert_eq!(
            log.apply_retention(0, -1, 3 * segment + segment / 2, 6)
                .unwrap(),
            2
        );
        assert_eq!(log.segment_bases(), vec![2, 3, 4, 5]);
        assert_eq!(log.apply_retention(0, -1, 3 * segment, 6).unwrap(), 1);
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.size_bytes() as i64, 3 * segment);
    }

    #[test]
    fn reads_below_the_log_start_are_out_of_range() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = six_segments(tmp.path());
        assert_eq!(log.apply_retention(2_500, 1_000, -1, 6).unwrap(), 1);
        assert!(matches!(
            log.read(0, 1_000, 6),
            Err(StorageError::OffsetOutOfRange {
                offset: 0,
                log_start: 1,
                log_end: 6
            })
        ));
        assert_eq!(bases(&log.read(1, 1, 6).unwrap().data), vec![1]);
    }

    #[test]
    fn log_start_may_advance_inside_a_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(
            tmp.path(),
            LogConfig {
                index_interval_bytes: 0,
                ..small_segments()
            },
        );
        // Segments [0, 1] [2, 3] [4]: one-record batches of 130 bytes.
        for i in 0..5 {
            log.append(&mut batch(i, 1, 50), 0, None, 0).unwrap();
        }
        assert_eq!(log.segment_bases(), vec![0, 2, 4]);
        assert_eq!(
            log.advance_log_start(1).unwrap(),
            0,
            "segment 0 still holds offset 1"
        );
        assert_eq!(log.log_start_offset(), 1);
        assert!(matches!(
            log.read(0, 100, 5),
            Err(StorageError::OffsetOutOfRange {
                offset: 0,
                log_start: 1,
                ..
            })
        ));
        assert_eq!(bases(&log.read(1, 1, 5).unwrap().data), vec![1]);
        // ListOffsets by time skips records below the log start.
        assert_eq!(log.offset_for_timestamp(0, 0).unwrap(), Some((1, 1)));
        assert_eq!(log.advance_log_start(0).unwrap(), 0, "never moves back");
        assert_eq!(log.log_start_offset(), 1);
        assert_eq!(log.advance_log_start(3).unwrap(), 1);
        assert_eq!(log.segment_bases(), vec![2, 4]);
        assert!(matches!(
            log.advance_log_start(6),
            Err(StorageError::OffsetOutOfRange { offset: 6, .. })
        ));
        // Up to the log end: the active segment stays, holding nothing readable.
        assert_eq!(log.advance_log_start(5).unwrap(), 1);
        assert_eq!(log.segment_bases(), vec![4]);
        assert!(log.read(5, 100, 5).unwrap().data.is_empty());
        assert!(log.read(4, 100, 5).is_err());
    }

    #[test]
    fn log_start_survives_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = six_segments(tmp.path());
        log.advance_log_start(3).unwrap();
        log.advance_log_start(4).unwrap();
        let dir = log.dir().to_path_buf();
        log.close().unwrap();
        for clean in [true, false] {
            let log =
                PartitionLog::open(dir.clone(), small_segments(), clean, 0, &OpenFiles::new(4))
                    .unwrap();
            assert_eq!(log.log_start_offset(), 4);
            assert_eq!(log.segment_bases(), vec![4, 5]);
            assert!(log.read(3, 100, 6).is_err());
        }
    }

    #[test]
    fn open_finishes_a_deletion_a_crash_interrupted() {
        let tmp = tempfile::tempdir().unwrap();
        let log = six_segments(tmp.path());
        let dir = log.dir().to_path_buf();
        log.close().unwrap();
        // The checkpoint was written, the segment files not yet deleted.
        write_checkpoint(&dir, LOG_START_OFFSET_FILE, 3).unwrap();
        let log = PartitionLog::open(dir.clone(), small_segments(), false, 0, &OpenFiles::new(4))
            .unwrap();
        assert_eq!(log.segment_bases(), vec![3, 4, 5]);
        assert_eq!(log.log_start_offset(), 3);
        assert!(!dir.join("00000000000000000002.log").exists());
    }

    #[test]
    fn a_log_that_lost_data_past_its_log_start_restarts_empty_there() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), LogConfig::default());
        for _ in 0..3 {
            log.append(&mut batch(0, 1, 1), 0, None, 0).unwrap();
        }
        let dir = log.dir().to_path_buf();
        log.close().unwrap();
        write_checkpoint(&dir, LOG_START_OFFSET_FILE, 10).unwrap();
        let mut log =
            PartitionLog::open(dir, LogConfig::default(), true, 0, &OpenFiles::new(4)).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert_eq!(log.segment_bases(), vec![10]);
        let info = log.append(&mut batch(0, 1, 1), 0, None, 0).unwrap();
        assert_eq!(info.first_offset, 10);
    }
}
