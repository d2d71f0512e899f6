//! Log compaction: Kafka's log cleaner for one partition log.
//!
//! A pass keeps the latest record per key over the cleanable range: the
//! closed segments from the log start up to the first uncleanable offset
//! (never the active segment). It first maps every key of the dirty part
//! (from the persisted first dirty offset on) to its latest offset, then
//! rewrites the segments from the log start through the mapped part,
//! dropping records that a later one with the same key supersedes. Offsets
//! never change: a rewritten batch keeps its base and last offset, so
//! compaction leaves gaps. Control batches are kept as they are. The
//! records of aborted transactions (from the segments' txnindex files) are
//! removed and never shadow an earlier committed value of their key; a
//! cleaned segment keeps the txnindex entries of the segments it replaces,
//! but for transactions whose every record it removed. Tombstones
//! (null values) are kept until the delete horizon stamped into their batch
//! the first time a pass keeps them (`now + delete.retention.ms`, KIP-534)
//! has passed; a later pass then drops them.
//!
//! Crash safety: each group of adjacent segments is written to
//! `<base>.log.cleaned` and synced without holding the log (readers and
//! appends go on). The swap then takes the log briefly: rename to
//! `<base>.log.swap` (the commit point), delete the other originals of the
//! group and the index files of the first, rename the swap over
//! `<base>.log`, and write fresh indexes (the txnindex entries of the group
//! are merged into `<base>.txnindex` right after the commit point, before
//! any original goes). At open, `.cleaned` files are
//! deleted and a `.swap` is completed the same way, so a crash at any point
//! leaves either the old segments or the cleaned one. The last batch of a
//! group is always kept (emptied if all its records went), so a cleaned
//! segment ends where its originals ended and a `.swap` says by itself
//! which originals it replaces.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sluice_protocol::batch::{BatchHeader, BATCH_HEADER_LEN};
use sluice_protocol::record::{
    checked_records, delete_horizon, rebuild_batch, records_section, RecordView,
};

use crate::config::LogConfig;
use crate::error::{IoContext, StorageError};
use crate::fsutil::{sync_dir, write_file_atomically};
use crate::open_files::SegmentFile;
use crate::segment::{remove_if_present, segment_path, BatchMeta, Segment, LOG_SUFFIX};
use crate::txn_index::{self, AbortedTxnEntry};

/// Kafka's `cleaner-offset-checkpoint`, per partition directory: the first
/// dirty offset and when the earliest kept tombstone may go.
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const CLEANED_SUFFIX: &str = "log.cleaned";
const SWAP_SUFFIX: &str = "log.swap";
/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;
/// Rough per-key overhead of the offset map beyond the key bytes.
const MAP_ENTRY_OVERHEAD: usize = 48;

/// The compaction settings of one log, named after Kafka's topic configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `delete.retention.ms`: how long tombstones stay after a pass first keeps them.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments holding a record newer than this stay dirty.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty record is older is
    /// cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: a soft bound on the key map of one
    /// pass; a pass that fills it cleans up to the segment that filled it.
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            dedupe_buffer_bytes: 128 * 1024 * 1024,
        }
    }
}

/// `log.cleaner.io.max.bytes.per.second`: bounds the bytes a cleaner reads
/// plus writes per second, by sleeping. Shared by every pass of a cleaner.
pub struct Throttle {
    max_bytes_per_second: f64,
    window: Mutex<(Instant, f64)>,
}

impl Throttle {
    /// An infinite or non-positive rate means no throttling.
    pub fn new(max_bytes_per_second: f64) -> Self {
        Throttle {
            max_bytes_per_second,
            window: Mutex::new((Instant::now(), 0.0)),
        }
    }

    pub fn unlimited() -> Self {
        Throttle::new(f64::INFINITY)
    }

    /// Accounts for `bytes` of I/O, sleeping while the rate is exceeded.
    pub fn acquire(&self, bytes: u64) {
        let rate = self.max_bytes_per_second;
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.1 += bytes as f64;
        let due = Duration::from_secs_f64(window.1 / rate);
        let elapsed = window.0.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        // A fresh window now and then, so an idle spell earns no burst.
        if window.0.elapsed() > Duration::from_secs(1) {
            *window = (Instant::now(), 0.0);
        }
    }
}

/// The persisted cleaner state of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CleanerCheckpoint {
    /// Everything below was cleaned by an earlier pass.
    pub(crate) first_dirty_offset: i64,
    /// The earliest delete horizon of a kept tombstone: a pass is due then.
    pub(crate) tombstone_expiry: Option<i64>,
}

impl CleanerCheckpoint {
    /// Missing or unreadable: everything is dirty, which is always safe.
    pub(crate) fn read(dir: &Path) -> Result<CleanerCheckpoint, StorageError> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
        };
        let mut fields = text.split_whitespace().map(str::parse::<i64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(first_dirty_offset)), Some(Ok(expiry))) => Ok(CleanerCheckpoint {
                first_dirty_offset,
                tombstone_expiry: (expiry >= 0).then_some(expiry),
            }),
            _ => Ok(Self::default()),
        }
    }

    /// The checkpoint, or a fresh one (all dirty) if it lies past `log_end_offset`.
    pub(crate) fn reset_if_beyond(self, log_end_offset: i64) -> CleanerCheckpoint {
        if self.first_dirty_offset > log_end_offset {
            CleanerCheckpoint::default()
        } else {
            self
        }
    }

    fn write(&self, dir: &Path) -> Result<(), StorageError> {
        let expiry = self.tombstone_expiry.unwrap_or(-1);
        let text = format!("{} {expiry}\n", self.first_dirty_offset);
        write_file_atomically(&dir.join(CHECKPOINT_FILE), text.as_bytes())
    }
}

/// What a pass could clean now, and whether it should.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanableRange {
    pub first_dirty_offset: i64,
    /// End of the cleanable segments (a segment base offset).
    pub end_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// The oldest dirty record is older than `max.compaction.lag.ms`.
    pub max_lag_exceeded: bool,
    /// A kept tombstone's delete horizon has passed.
    pub tombstones_expired: bool,
    /// Segments in `[0, dirty_from)` are clean, `[dirty_from, dirty_to)` dirty.
    pub(crate) dirty_from: usize,
    pub(crate) dirty_to: usize,
}

impl CleanableRange {
    /// Dirty bytes / (clean + dirty bytes) of the cleanable part of the log.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    pub fn needs_cleaning(&self, config: &CleanerConfig) -> bool {
        let dirty_enough = self.dirty_bytes > 0
            && (self.dirty_ratio() >= config.min_cleanable_dirty_ratio || self.max_lag_exceeded);
        dirty_enough || self.tombstones_expired
    }
}

/// What a finished pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanStats {
    /// Bytes of dirty segments the pass covered.
    pub dirty_bytes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_removed: u64,
    /// Segments in the cleaned range before the pass, and after (merged).
    pub segments_before: usize,
    pub segments_after: usize,
    /// The new first dirty offset.
    pub cleaned_up_to: i64,
}

/// A closed segment as the pass found it.
struct Source {
    base: i64,
    end: i64,
    size: u64,
    index_bytes: u64,
    file: Arc<SegmentFile>,
}

/// One cleaned group of adjacent segments, synced as `<base>.log.cleaned`,
/// ready for [`crate::PartitionLog::install_cleaned`].
pub struct CleanedSegment {
    pub(crate) base: i64,
    /// Base offsets of the segments it replaces; the first is `base`.
    pub(crate) replaces: Vec<i64>,
    /// Where the group ended: the base of the segment after it.
    pub(crate) end: i64,
    pub(crate) batches: Vec<(u64, BatchMeta)>,
    /// Marker offsets of the aborted transactions whose every record lay
    /// in the group and was removed: their txnindex entries go too.
    pub(crate) aborted_removed: Vec<i64>,
}

/// Declares the crash points once; public only with the `failpoints`
/// feature, which lets tests stop a pass where a crash could.
macro_rules! crash_points {
    ($vis:vis) => {
        /// Where a crash can be simulated.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum CrashPoint {
            /// `.cleaned` file written and synced, nothing swapped.
            AfterCleaned,
            /// The `.cleaned` file renamed to `.swap`.
            AfterSwapRename,
            /// One of the replaced originals (not the first) deleted.
            AfterDeletingAnOriginal,
            /// Every group swapped in, the checkpoint not yet written.
            BeforeCheckpoint,
        }
    };
}

#[cfg(feature = "failpoints")]
crash_points!(pub);
#[cfg(not(feature = "failpoints"))]
crash_points!(pub(crate));

#[cfg(feature = "failpoints")]
thread_local! {
    static CRASH_AT: std::cell::Cell<Option<CrashPoint>> = const { std::cell::Cell::new(None) };
}

/// Makes cleaning on this thread fail at `point`, as if the process died
/// there (the caller then drops the log and reopens it).
#[cfg(feature = "failpoints")]
pub fn crash_at(point: Option<CrashPoint>) {
    CRASH_AT.with(|c| c.set(point));
}

#[cfg(feature = "failpoints")]
pub(crate) fn crash_point(point: CrashPoint) -> Result<(), StorageError> {
    if CRASH_AT.with(|c| c.get()) == Some(point) {
        return Err(StorageError::Io {
            context: format!("injected crash {point:?}"),
            source: std::io::Error::other("injected crash"),
        });
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crash_point(_point: CrashPoint) -> Result<(), StorageError> {
    Ok(())
}

/// A cleaning pass in progress. Created under the log's lock by
/// [`crate::PartitionLog::start_cleaning`]; its heavy work
/// ([`CleanJob::clean_next`]) runs without it.
pub struct CleanJob {
    dir: PathBuf,
    config: CleanerConfig,
    log_config: LogConfig,
    now_ms: i64,
    /// Segments from the log start to the end of the cleanable range.
    sources: Vec<Source>,
    dirty_from: usize,
    /// Key → latest offset over the mapped dirty segments; built lazily.
    map: Option<HashMap<Box<[u8]>, i64>>,
    /// Groups of `sources` indexes still to clean.
    groups: Vec<std::ops::Range<usize>>,
    next_group: usize,
    pub(crate) checkpoint: CleanerCheckpoint,
    pub(crate) stats: CleanStats,
    /// Aborted transactions of the whole log, from its txnindex files:
    /// their records are removed and never shadow an earlier committed
    /// value of their key.
    aborted: Vec<AbortedTxnEntry>,
}

impl CleanJob {
    /// Whether a data batch belongs to an aborted transaction.
    fn is_aborted(&self, header: &BatchHeader<'_>) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.aborted.iter().any(|a| {
                a.producer_id == header.producer_id()
                    && (a.first_offset..=a.last_offset).contains(&header.base_offset())
            })
    }

    pub(crate) fn new(
        dir: PathBuf,
        config: CleanerConfig,
        log_config: LogConfig,
        now_ms: i64,
        segments: &[Segment],
        range: &CleanableRange,
    ) -> CleanJob {
        let sources = segments[..range.dirty_to]
            .iter()
            .zip(&segments[1..])
            .map(|(segment, next)| Source {
                base: segment.base_offset(),
                end: next.base_offset(),
                size: segment.size(),
                index_bytes: segment.index_bytes(),
                file: segment.log_file(),
            })
            .collect();
        CleanJob {
            dir,
            config,
            log_config,
            now_ms,
            sources,
            dirty_from: range.dirty_from,
            map: None,
            groups: Vec::new(),
            next_group: 0,
            checkpoint: CleanerCheckpoint {
                first_dirty_offset: range.first_dirty_offset,
                tombstone_expiry: None,
            },
            stats: CleanStats::default(),
            // Markers in the active segment too: the transaction's records
            // may lie in the cleanable part.
            aborted: segments
                .iter()
                .flat_map(|s| s.aborted_txns().iter().copied())
                .collect(),
        }
    }

    /// Writes the next group of segments, cleaned, to a synced `.cleaned`
    /// file; `None` when every group is done. Takes no lock: it reads the
    /// snapshot's open files, which stay readable even if retention deletes
    /// them meanwhile (the install then notices).
    pub fn clean_next(
        &mut self,
        throttle: &Throttle,
    ) -> Result<Option<CleanedSegment>, StorageError> {
        if self.map.is_none() {
            self.build_offset_map(throttle)?;
        }
        let Some(group) = self.groups.get(self.next_group).cloned() else {
            return Ok(None);
        };
        self.next_group += 1;
        self.clean_group(group, throttle).map(Some)
    }

    /// Maps keys to their latest offsets, segment by segment from the first
    /// dirty one, until the dedupe buffer is full; then plans the groups.
    fn build_offset_map(&mut self, throttle: &Throttle) -> Result<(), StorageError> {
        let mut map: HashMap<Box<[u8]>, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut mapped_to = self.dirty_from;
        for source in &self.sources[self.dirty_from..] {
            let mut reader = BatchReader::new(source);
            while let Some(batch) = reader.next_batch()? {
                throttle.acquire(batch.len() as u64);
                self.stats.bytes_read += batch.len() as u64;
                let header = parse_stored(batch, source)?;
                if header.is_control() || self.is_aborted(&header) {
                    continue;
                }
                let section = records_section(batch).map_err(|e| corrupt(source, &e))?;
                let records =
                    checked_records(&header, &section).map_err(|e| corrupt(source, &e))?;
                for record in records {
                    let Some(key) = record.key else { continue };
                    let offset = header.base_offset() + i64::from(record.offset_delta);
                    if map.insert(Box::from(key), offset).is_none() {
                        map_bytes += key.len() + MAP_ENTRY_OVERHEAD;
                    }
                }
            }
            self.stats.dirty_bytes += source.size;
            mapped_to += 1;
            if map_bytes >= self.config.dedupe_buffer_bytes {
                break;
            }
        }
        self.sources.truncate(mapped_to);
        self.stats.segments_before = mapped_to;
        self.groups = self.plan_groups();
        self.stats.cleaned_up_to = self
            .sources
            .last()
            .map_or(self.checkpoint.first_dirty_offset, |s| s.end);
        self.map = Some(map);
        Ok(())
    }

    /// Kafka's grouping: adjacent segments whose total size and index sizes
    /// fit in one segment (and whose offsets fit relative to the first)
    /// become one.
    fn plan_groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < self.sources.len() {
            let mut end = start + 1;
            let mut size = self.sources[start].size;
            let mut index_bytes = self.sources[start].index_bytes;
            while let Some(next) = self.sources.get(end) {
                let fits = size + next.size <= self.log_config.segment_bytes
                    && index_bytes + next.index_bytes <= self.log_config.segment_index_bytes
                    && next.end - 1 - self.sources[start].base <= i64::from(i32::MAX);
                if !fits {
                    break;
                }
                size += next.size;
                index_bytes += next.index_bytes;
                end += 1;
            }
            groups.push(start..end);
            start = end;
        }
        groups
    }

    fn clean_group(
        &mut self,
        group: std::ops::Range<usize>,
        throttle: &Throttle,
    ) -> Result<CleanedSegment, StorageError> {
        let base = self.sources[group.start].base;
        let path = cleaned_path(&self.dir, base);
        let file = File::create(&path).context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(READ_CHUNK, &file);
        let mut batches = Vec::new();
        let mut position = 0u64;
        // The group's last batch when a pass dropped it: kept emptied.
        let mut dropped_last: Option<Vec<u8>> = None;
        // Taken out for the loop, which updates the job's stats.
        let map = self.map.take().unwrap_or_default();
        let sources = std::mem::take(&mut self.sources);
        let result = (|| {
            for source in &sources[group.clone()] {
                let mut reader = BatchReader::new(source);
                while let Some(batch) = reader.next_batch()? {
                    throttle.acquire(batch.len() as u64);
                    self.stats.bytes_read += batch.len() as u64;
                    let header = parse_stored(batch, source)?;
                    let kept = self.filter_batch(&header, batch, &map, source)?;
                    let bytes: &[u8] = match &kept {
                        Filtered::Whole => batch,
                        Filtered::Rewritten(bytes) => bytes,
                        Filtered::Dropped => {
                            dropped_last = Some(batch.to_vec());
                            continue;
                        }
                    };
                    dropped_last = None;
                    write_batch(&mut out, bytes, &mut position, &mut batches, &path)?;
                }
            }
            if let Some(last) = dropped_last {
                let header = BatchHeader::parse(&last).map_err(|e| corrupt_msg(&path, &e))?;
                let empty =
                    rebuild_batch(&header, &[], None).map_err(|e| corrupt_msg(&path, &e))?;
                write_batch(&mut out, &empty, &mut position, &mut batches, &path)?;
            }
            Ok::<(), StorageError>(())
        })();
        self.map = Some(map);
        self.sources = sources;
        result?;
        out.flush()
            .context(|| format!("writing {}", path.display()))?;
        drop(out);
        file.sync_all()
            .context(|| format!("syncing {}", path.display()))?;
        sync_dir(&self.dir)?;
        throttle.acquire(position);
        self.stats.bytes_written += position;
        crash_point(CrashPoint::AfterCleaned)?;
        let end = self.sources[group.end - 1].end;
        Ok(CleanedSegment {
            base,
            replaces: self.sources[group.clone()].iter().map(|s| s.base).collect(),
            end,
            batches,
            aborted_removed: self
                .aborted
                .iter()
                .filter(|a| a.first_offset >= base && a.last_offset < end)
                .map(|a| a.last_offset)
                .collect(),
        })
    }

    /// Kafka's retention rule per record: keep it unless a later record of
    /// the map has its key, it has no key, or it is a tombstone whose batch's
    /// delete horizon has passed.
    fn filter_batch(
        &mut self,
        header: &BatchHeader<'_>,
        batch: &[u8],
        map: &HashMap<Box<[u8]>, i64>,
        source: &Source,
    ) -> Result<Filtered, StorageError> {
        if header.is_control() {
            return Ok(Filtered::Whole);
        }
        let section = records_section(batch).map_err(|e| corrupt(source, &e))?;
        let records = checked_records(header, &section).map_err(|e| corrupt(source, &e))?;
        if self.is_aborted(header) {
            self.stats.records_read += records.len() as u64;
            self.stats.records_removed += records.len() as u64;
            return Ok(Filtered::Dropped);
        }
        let horizon = delete_horizon(header);
        let mut kept: Vec<RecordView<'_>> = Vec::with_capacity(records.len());
        let mut keeps_tombstone = false;
        for record in &records {
            let Some(key) = record.key else { continue };
            let offset = header.base_offset() + i64::from(record.offset_delta);
            if map.get(key).is_some_and(|&latest| offset < latest) {
                continue;
            }
            if record.value.is_none() {
                if horizon.is_some_and(|h| h <= self.now_ms) {
                    continue;
                }
                keeps_tombstone = true;
            }
            kept.push(*record);
        }
        self.stats.records_read += records.len() as u64;
        self.stats.records_removed += (records.len() - kept.len()) as u64;
        let stamp = (keeps_tombstone && horizon.is_none())
            .then(|| self.now_ms.saturating_add(self.config.delete_retention_ms));
        if keeps_tombstone {
            let expiry = horizon.or(stamp);
            self.checkpoint.tombstone_expiry = match (self.checkpoint.tombstone_expiry, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if kept.is_empty() {
            return Ok(Filtered::Dropped);
        }
        if kept.len() == records.len() && stamp.is_none() {
            return Ok(Filtered::Whole);
        }
        rebuild_batch(header, &kept, stamp)
            .map(Filtered::Rewritten)
            .map_err(|e| corrupt(source, &e))
    }
}

enum Filtered {
    Whole,
    Rewritten(Vec<u8>),
    Dropped,
}

fn write_batch(
    out: &mut BufWriter<&File>,
    bytes: &[u8],
    position: &mut u64,
    batches: &mut Vec<(u64, BatchMeta)>,
    path: &Path,
) -> Result<(), StorageError> {
    let header = BatchHeader::parse(bytes).map_err(|e| corrupt_msg(path, &e))?;
    batches.push((*position, BatchMeta::of(&header)));
    out.write_all(bytes)
        .context(|| format!("writing {}", path.display()))?;
    *position += bytes.len() as u64;
    Ok(())
}

fn parse_stored<'a>(batch: &'a [u8], source: &Source) -> Result<BatchHeader<'a>, StorageError> {
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(source, &e))?;
    header.verify().map_err(|e| corrupt(source, &e))?;
    Ok(header)
}

fn corrupt(source: &Source, error: &dyn std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("cleaning segment {}: {error}", source.base))
}

fn corrupt_msg(path: &Path, error: &dyn std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{}: {error}", path.display()))
}

/// Reads a segment's batches sequentially in large chunks.
struct BatchReader<'a> {
    source: &'a Source,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_position: u64,
    /// Offset in `buf` of the next batch.
    cursor: usize,
}

impl<'a> BatchReader<'a> {
    fn new(source: &'a Source) -> Self {
        BatchReader {
            source,
            buf: Vec::new(),
            buf_position: 0,
            cursor: 0,
        }
    }

    /// Makes `len` bytes from the cursor available; false past the end.
    fn fill(&mut self, len: usize) -> Result<bool, StorageError> {
        if self.buf.len() - self.cursor >= len {
            return Ok(true);
        }
        self.buf.drain(..self.cursor);
        self.buf_position += self.cursor as u64;
        self.cursor = 0;
        let file_end = self.source.size;
        let have_to = self.buf_position + self.buf.len() as u64;
        let want = (len.max(READ_CHUNK) as u64).min(file_end - have_to.min(file_end));
        if (self.buf.len() as u64 + want) < len as u64 {
            return Ok(false);
        }
        let start = self.buf.len();
        self.buf.resize(start + want as usize, 0);
        self.source
            .file
            .get()?
            .read_exact_at(&mut self.buf[start..], have_to)
            .context(|| format!("reading segment {} at {have_to}", self.source.base))?;
        Ok(true)
    }

    fn next_batch(&mut self) -> Result<Option<&[u8]>, StorageError> {
        if self.buf_position + self.cursor as u64 >= self.source.size {
            return Ok(None);
        }
        let truncated =
            || StorageError::Corrupt(format!("segment {} ends inside a batch", self.source.base));
        if !self.fill(BATCH_HEADER_LEN)? {
            return Err(truncated());
        }
        let header =
            BatchHeader::parse(&self.buf[self.cursor..]).map_err(|e| corrupt(self.source, &e))?;
        let len = header.total_len();
        if !self.fill(len)? {
            return Err(truncated());
        }
        let batch = &self.buf[self.cursor..self.cursor + len];
        self.cursor += len;
        Ok(Some(batch))
    }
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, CLEANED_SUFFIX)
}

pub(crate) fn swap_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, SWAP_SUFFIX)
}

pub(crate) fn discard_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    remove_if_present(&cleaned_path(dir, base))
}

pub(crate) fn commit_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    let (from, to) = (cleaned_path(dir, base), swap_path(dir, base));
    fs::rename(&from, &to)
        .context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    sync_dir(dir)
}

/// The last step of a swap: the `.swap` file becomes `<base>.log` (the
/// caller deleted the replaced originals and the old index files).
pub(crate) fn complete_swap(dir: &Path, base: i64) -> Result<(), StorageError> {
    let (from, to) = (swap_path(dir, base), segment_path(dir, base, LOG_SUFFIX));
    fs::rename(&from, &to)
        .context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    sync_dir(dir)
}

pub(crate) fn write_checkpoint(
    dir: &Path,
    checkpoint: &CleanerCheckpoint,
) -> Result<(), StorageError> {
    crash_point(CrashPoint::BeforeCheckpoint)?;
    checkpoint.write(dir)
}

/// Offset after the last batch of a swap file (synced before it was
/// renamed, so whole); `None` when it holds no batch.
fn end_of_swap(path: &Path) -> Result<Option<i64>, StorageError> {
    let file = File::open(path).context(|| format!("opening {}", path.display()))?;
    let size = file
        .metadata()
        .context(|| format!("reading the size of {}", path.display()))?
        .len();
    let mut position = 0u64;
    let mut end = None;
    let mut header = [0u8; BATCH_HEADER_LEN];
    while position + BATCH_HEADER_LEN as u64 <= size {
        file.read_exact_at(&mut header, position)
            .context(|| format!("reading {}", path.display()))?;
        let Ok(parsed) = BatchHeader::parse(&header) else {
            break;
        };
        end = Some(parsed.last_offset() + 1);
        position += parsed.total_len() as u64;
    }
    Ok(end)
}

/// At open: deletes `.cleaned` leftovers and completes every committed
/// `.swap` (deleting the originals it replaces, which are the segments
/// after its base that start below its end).
pub(crate) fn finish_interrupted_cleaning(dir: &Path, bases: &[i64]) -> Result<bool, StorageError> {
    let mut swaps = Vec::new();
    let mut changed = false;
    for entry in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            remove_if_present(&entry.path())?;
            changed = true;
        } else if let Some(stem) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| n.strip_suffix('.'))
        {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        }
    }
    for base in swaps {
        let end = end_of_swap(&swap_path(dir, base))?.unwrap_or(base);
        tracing::warn!(dir = %dir.display(), base, end, "completing a cleaned segment swap a crash interrupted");
        let originals: Vec<i64> = bases
            .iter()
            .copied()
            .filter(|&b| b > base && b < end)
            .collect();
        txn_index::merge_into(dir, base, &originals)?;
        for &original in &originals {
            Segment::delete_files(dir, original)?;
        }
        Segment::delete_index_files(dir, base)?;
        complete_swap(dir, base)?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(changed)
}

/// Finds what a pass could clean in `segments` (the last is active).
pub(crate) fn cleanable_range(
    segments: &[Segment],
    checkpoint: &CleanerCheckpoint,
    log_start_offset: i64,
    config: &CleanerConfig,
    now_ms: i64,
    first_uncleanable_offset: i64,
) -> Result<CleanableRange, StorageError> {
    let first_dirty_offset = checkpoint.first_dirty_offset.max(log_start_offset);
    // Segment i ends where segment i + 1 starts.
    let ends = || segments[1..].iter().map(Segment::base_offset);
    let dirty_from = ends().take_while(|&end| end <= first_dirty_offset).count();
    let lag_limit = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let mut dirty_to = dirty_from;
    for (segment, end) in segments[dirty_from..].iter().zip(ends().skip(dirty_from)) {
        let too_recent = config.min_compaction_lag_ms > 0
            && segment
                .max_timestamp()
                .is_some_and(|(max, _)| max > lag_limit);
        if end > first_uncleanable_offset || too_recent {
            break;
        }
        dirty_to += 1;
    }
    let size = |range: &[Segment]| range.iter().map(Segment::size).sum::<u64>();
    let max_lag_exceeded = match segments[dirty_from..dirty_to].first() {
        Some(first) => first
            .first_batch_timestamp()?
            .is_some_and(|ts| ts < now_ms.saturating_sub(config.max_compaction_lag_ms)),
        None => false,
    };
    Ok(CleanableRange {
        first_dirty_offset,
        end_offset: segments[dirty_to].base_offset(),
        clean_bytes: size(&segments[..dirty_from]),
        dirty_bytes: size(&segments[dirty_from..dirty_to]),
        max_lag_exceeded,
        tombstones_expired: dirty_to > 0
            && checkpoint.tombstone_expiry.is_some_and(|t| t <= now_ms),
        dirty_from,
        dirty_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_holds_the_rate() {
        let throttle = Throttle::new(1_000_000.0);
        let started = Instant::now();
        for _ in 0..4 {
            throttle.acquire(50_000);
        }
        // 200 kB at 1 MB/s: at least 0.2 s (sleeps never end early).
        assert!(started.elapsed() >= Duration::from_millis(190));
    }

    #[test]
    fn a_garbled_checkpoint_means_all_dirty() {
        let tmp = tempfile::tempdir().unwrap();
        let checkpoint = CleanerCheckpoint {
            first_dirty_offset: 42,
            tombstone_expiry: Some(7),
        };
        checkpoint.write(tmp.path()).unwrap();
        assert_eq!(CleanerCheckpoint::read(tmp.path()).unwrap(), checkpoint);
        assert_eq!(checkpoint.reset_if_beyond(41), CleanerCheckpoint::default());
        fs::write(tmp.path().join(CHECKPOINT_FILE), "garbage").unwrap();
        assert_eq!(
            CleanerCheckpoint::read(tmp.path()).unwrap(),
            CleanerCheckpoint::default()
        );
    }
}
