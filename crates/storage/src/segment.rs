//! One segment: a `.log` file of whole v2 batches plus its two indexes
//! and, once it holds an abort marker, its aborted-transaction index.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BatchHeader, BatchIter, BATCH_HEADER_LEN};

use crate::cleaner::Throttle;
use crate::config::LogConfig;
use crate::error::{IoContext, StorageError};
use crate::fsutil::sync_dir;
use crate::index::{OffsetEntry, OffsetIndex, TimeIndex};
use crate::leader_epoch::EpochEntry;
use crate::open_files::{OpenFiles, SegmentFile};
use crate::txn_index::{AbortedTxnEntry, TxnIndex, TXN_INDEX_SUFFIX};
use crate::verify::SegmentScan;

pub(crate) const LOG_SUFFIX: &str = "log";
const INDEX_SUFFIX: &str = "index";
const TIME_INDEX_SUFFIX: &str = "timeindex";
/// A segment being rewritten without its damaged ranges (see `recover`).
const REPAIRED_SUFFIX: &str = "log.repaired";

/// Kafka names segment files after their base offset, zero-padded to 20 digits.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The largest offset delta from a segment's base that Kafka's 32-bit
/// relative offsets (read as signed ints by Kafka tools) can express.
pub(crate) const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

/// The header fields the storage engine needs, copied out of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) len: u64,
}

impl BatchMeta {
    pub(crate) fn of(header: &BatchHeader<'_>) -> Self {
        BatchMeta {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp(),
            leader_epoch: header.partition_leader_epoch(),
            len: header.total_len() as u64,
        }
    }
}

/// Where a scan of whole, CRC-valid, monotonic batches stopped.
pub(crate) struct ScanEnd {
    /// Offset after the last good batch (the segment base when none).
    pub(crate) next_offset: i64,
    /// True when the valid batches run to the end of the file (after any
    /// damage was cut out of it).
    pub(crate) reached_end: bool,
    /// Bytes truncated off the end of the file.
    pub(crate) cut_bytes: u64,
}

pub(crate) struct Segment {
    base_offset: i64,
    log: Arc<SegmentFile>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
    /// Largest batch max timestamp and the base offset of the first batch with it.
    max_timestamp: Option<(i64, i64)>,
    bytes_since_index_entry: u64,
    /// When the segment's first append happened, for `segment.ms`.
    roll_clock_ms: Option<i64>,
}

fn open_log_file(path: &Path, create: bool) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .context(|| format!("opening {}", path.display()))
}

/// Reads an index file; `None` when it does not exist.
fn read_index_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("reading {}", path.display())),
    }
}

pub(crate) fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).context(|| format!("deleting {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let file = File::create(path).context(|| format!("creating {}", path.display()))?;
    file.write_all_at(bytes, 0)
        .and_then(|()| file.sync_data())
        .context(|| format!("writing {}", path.display()))
}

/// Copies `batches` (position, batch) from `from` into `to` back to back;
/// returns them with their positions in `to`.
fn copy_batches(
    from: &File,
    to: &File,
    batches: &[(u64, BatchMeta)],
) -> io::Result<Vec<(u64, BatchMeta)>> {
    const CHUNK: u64 = 1024 * 1024;
    let mut buf = Vec::new();
    let mut moved = Vec::with_capacity(batches.len());
    let mut written = 0;
    for &(position, meta) in batches {
        let mut done = 0;
        while done < meta.len {
            let len = (meta.len - done).min(CHUNK);
            buf.resize(len as usize, 0);
            from.read_exact_at(&mut buf, position + done)?;
            to.write_all_at(&buf, written + done)?;
            done += len;
        }
        moved.push((written, meta));
        written += meta.len;
    }
    Ok(moved)
}

impl Segment {
    /// Creates an empty segment, replacing any files left at that base offset.
    /// The caller syncs the directory.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        files: &Arc<OpenFiles>,
    ) -> Result<Segment, StorageError> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, true)?;
        remove_if_present(&segment_path(dir, base_offset, TXN_INDEX_SUFFIX))?;
        let segment = Segment::empty(dir, base_offset, log, files);
        segment.write_index_files(dir);
        Ok(segment)
    }

    fn empty(dir: &Path, base_offset: i64, log: File, files: &Arc<OpenFiles>) -> Segment {
        Segment {
            base_offset,
            log: SegmentFile::new(segment_path(dir, base_offset, LOG_SUFFIX), log, files),
            size: 0,
            offset_index: OffsetIndex::new(),
            time_index: TimeIndex::new(),
            txn_index: TxnIndex::empty(dir, base_offset),
            max_timestamp: None,
            bytes_since_index_entry: 0,
            roll_clock_ms: None,
        }
    }

    /// Opens a segment trusting its contents and its index files. `None` when
    /// an index is missing or inconsistent with a segment spanning
    /// `offset_span` offsets; the caller then rebuilds it with `recover`.
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
        offset_span: u64,
        files: &Arc<OpenFiles>,
    ) -> Result<Option<Segment>, StorageError> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, false)?;
        let size = log
            .metadata()
            .context(|| format!("reading the size of {}", log_path.display()))?
            .len();
        let index_bytes = read_index_file(&segment_path(dir, base_offset, INDEX_SUFFIX))?;
        let time_bytes = read_index_file(&segment_path(dir, base_offset, TIME_INDEX_SUFFIX))?;
        let (Some(index_bytes), Some(time_bytes)) = (index_bytes, time_bytes) else {
            return Ok(None);
        };
        let offset_index = OffsetIndex::decode(&index_bytes, offset_span)
            .filter(|index| index.last().is_none_or(|e| u64::from(e.position) < size));
        let time_index = TimeIndex::decode(&time_bytes, offset_span)
            // A non-empty segment always ends its time index with its maximum.
            .filter(|index| size == 0 || index.last().is_some());
        let (Some(offset_index), Some(time_index)) = (offset_index, time_index) else {
            return Ok(None);
        };
        let mut segment = Segment::empty(dir, base_offset, log, files);
        segment.size = size;
        segment.bytes_since_index_entry =
            size - offset_index.last().map_or(0, |e| u64::from(e.position));
        segment.max_timestamp = time_index
            .last()
            .map(|e| (e.timestamp, base_offset + i64::from(e.relative_offset)));
        segment.offset_index = offset_index;
        segment.time_index = time_index;
        Ok(Some(segment))
    }

    /// Loads the segment's aborted-transaction index (see
    /// [`TxnIndex::load`]): `Some(offset)` when a damaged file lost the
    /// entries from `offset` on.
    pub(crate) fn load_txn_index(&mut self, dir: &Path) -> Result<Option<i64>, StorageError> {
        let (txn_index, missing_from) = TxnIndex::load(dir, self.base_offset)?;
        self.txn_index = txn_index;
        Ok(missing_from)
    }

    pub(crate) fn aborted_txns(&self) -> &[AbortedTxnEntry] {
        self.txn_index.entries()
    }

    pub(crate) fn txn_index_mut(&mut self) -> &mut TxnIndex {
        &mut self.txn_index
    }

    /// Opens a segment by scanning every batch and rebuilds (and writes) both
    /// indexes. Damage followed by valid batches that continue in sequence to
    /// the end of the file is cut out of it (the lost offsets become a gap,
    /// which consumers skip as after compaction); any other damage is a torn
    /// or corrupt tail and the file is truncated at its start. Returns the
    /// segment and where its valid data ends.
    pub(crate) fn recover(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        files: &Arc<OpenFiles>,
    ) -> Result<(Segment, ScanEnd), StorageError> {
        let log = open_log_file(&segment_path(dir, base_offset, LOG_SUFFIX), false)?;
        let mut segment = Segment::empty(dir, base_offset, log, files);
        let file = segment.log.get()?;
        segment.size = file
            .metadata()
            .context(|| format!("reading the size of {}", segment.log.path().display()))?
            .len();
        let mut batches = Vec::new();
        let check = SegmentScan {
            file: &file,
            path: segment.log.path(),
            size: segment.size,
            base_offset,
            throttle: &Throttle::unlimited(),
        }
        .run(|position, meta| batches.push((position, meta)))?;
        let file_bytes = segment.size;
        let reached_end = if check.is_intact() {
            true
        } else if check.can_skip_damage() {
            for damage in &check.damaged {
                tracing::warn!(
                    segment = %segment.log.path().display(),
                    bytes = ?damage.bytes,
                    lost_offsets = ?damage.lost_offsets(),
                    "cutting a damaged range out of a segment: the valid batches after it continue the log, the offsets it held are lost"
                );
            }
            batches = segment.rewrite_with_only(dir, &batches)?;
            true
        } else {
            let cut = check.damaged[0].bytes.start;
            let kept = batches.partition_point(|(position, _)| *position < cut);
            tracing::warn!(
                segment = %segment.log.path().display(),
                valid_bytes = cut,
                file_bytes = segment.size,
                dropped_valid_batches = batches.len() - kept,
                "truncating a torn or corrupt segment tail (valid batches after the damage are dropped when they do not continue the log in sequence to the end of the file)"
            );
            batches.truncate(kept);
            file.set_len(cut)
                .context(|| format!("truncating {}", segment.log.path().display()))?;
            false
        };
        segment.size = 0;
        for &(position, meta) in &batches {
            segment.index_batch(position, &meta, config);
            segment.size = position + meta.len;
        }
        segment.write_index_files(dir);
        let end = ScanEnd {
            next_offset: batches
                .last()
                .map_or(base_offset, |(_, meta)| meta.last_offset + 1),
            reached_end,
            cut_bytes: if reached_end {
                0
            } else {
                file_bytes - segment.size
            },
        };
        Ok((segment, end))
    }

    /// Replaces the `.log` file with one holding only `batches` (position,
    /// batch) of it, in order: written to a temporary, synced and renamed
    /// over the original, so a crash leaves one file or the other. Returns
    /// the batches with their new positions.
    fn rewrite_with_only(
        &mut self,
        dir: &Path,
        batches: &[(u64, BatchMeta)],
    ) -> Result<Vec<(u64, BatchMeta)>, StorageError> {
        let tmp = segment_path(dir, self.base_offset, REPAIRED_SUFFIX);
        let from = self.log.get()?;
        let copied = File::create(&tmp)
            .and_then(|out| {
                let moved = copy_batches(&from, &out, batches)?;
                out.sync_all()?;
                fs::rename(&tmp, self.log.path())?;
                Ok(moved)
            })
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
            .context(|| {
                format!(
                    "cutting damaged ranges out of {} (needs space for a copy of its valid batches)",
                    self.log.path().display()
                )
            })?;
        sync_dir(dir)?;
        drop(from);
        self.log.reopen_on_next_use();
        Ok(copied)
    }

    /// Checks the batches after the last offset-index entry (all of them when
    /// the index is empty) of a trusted segment; returns the offset after the
    /// last batch, or `None` when the tail is not intact.
    pub(crate) fn verify_tail(&mut self) -> Result<Option<i64>, StorageError> {
        let (position, first_offset) = match self.offset_index.last() {
            Some(e) => (
                u64::from(e.position),
                self.base_offset + i64::from(e.relative_offset),
            ),
            None => (0, self.base_offset),
        };
        let mut max_timestamp = self.max_timestamp;
        let mut starts_where_indexed = true;
        let end = self.scan(position, first_offset, |pos, meta| {
            if pos == position && meta.base_offset != first_offset {
                starts_where_indexed = false;
            }
            if max_timestamp.is_none_or(|(max, _)| meta.max_timestamp > max) {
                max_timestamp = Some((meta.max_timestamp, meta.base_offset));
            }
        })?;
        if !end.reached_end || !starts_where_indexed {
            return Ok(None);
        }
        self.max_timestamp = max_timestamp;
        Ok(Some(end.next_offset))
    }

    /// Scans batches from `position`, expecting offsets from `first_offset`
    /// on, calling `visit` for each whole, CRC-valid batch until the end of the
    /// file or the first bad batch.
    fn scan(
        &self,
        mut position: u64,
        first_offset: i64,
        mut visit: impl FnMut(u64, BatchMeta),
    ) -> Result<ScanEnd, StorageError> {
        let mut next_offset = first_offset;
        let mut buf = Vec::new();
        let file = self.log.get()?;
        let reader = SegmentScan {
            file: &file,
            path: self.log.path(),
            size: self.size,
            base_offset: self.base_offset,
            throttle: &Throttle::unlimited(),
        };
        let reached_end = loop {
            if position == self.size {
                break true;
            }
            let Some(meta) = reader.batch_at(position, &mut buf)? else {
                break false;
            };
            if meta.base_offset < next_offset {
                break false;
            }
            visit(position, meta);
            position += meta.len;
            next_offset = meta.last_offset + 1;
        };
        Ok(ScanEnd {
            next_offset,
            reached_end,
            cut_bytes: 0,
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<(), StorageError> {
        self.log
            .get()?
            .read_exact_at(buf, position)
            .context(|| format!("reading {} at {position}", self.log.path().display()))
    }

    /// Kafka's indexing rule: a batch gets index entries when more than
    /// `index.interval.bytes` were written since the last entry.
    fn index_batch(&mut self, position: u64, meta: &BatchMeta, config: &LogConfig) {
        if self
            .max_timestamp
            .is_none_or(|(max, _)| meta.max_timestamp > max)
        {
            self.max_timestamp = Some((meta.max_timestamp, meta.base_offset));
        }
        if self.bytes_since_index_entry > config.index_interval_bytes {
            let relative_offset = self.relative(meta.base_offset);
            let (max_timestamp, offset_of_max) = self.max_timestamp.expect("set above");
            let position = u32::try_from(position).expect("segments stay below 4 GiB");
            if !self.offset_index.is_full(config.segment_index_bytes) {
                self.offset_index.push(OffsetEntry {
                    relative_offset,
                    position,
                });
            }
            if !self.time_index.is_full(config.segment_index_bytes) {
                self.time_index
                    .maybe_push(max_timestamp, self.relative(offset_of_max));
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += meta.len;
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).expect("relative offsets are bounded at append")
    }

    /// Writes `bytes` (the batches described by `batches`, offsets already
    /// assigned) at the end of the segment with one positional write.
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        batches: &[BatchMeta],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let file = self.log.get()?;
        if let Err(e) = file.write_all_at(bytes, self.size) {
            // Drop whatever part of the write landed so the file ends at a batch boundary.
            let _ = file.set_len(self.size);
            return Err(e).context(|| format!("appending to {}", self.log.path().display()));
        }
        let mut position = self.size;
        for meta in batches {
            self.index_batch(position, meta, config);
            position += meta.len;
        }
        self.size = position;
        self.roll_clock_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Whether appending `bytes` more bytes ending at `last_offset` must go to
    /// a new segment. An empty segment never rolls.
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let new_size = self.size + bytes;
        new_size > config.segment_bytes
            || new_size > u64::from(u32::MAX)
            || last_offset - self.base_offset > MAX_RELATIVE_OFFSET
            || self
                .roll_clock_ms
                .is_some_and(|first| now_ms - first > config.segment_ms)
            || self.offset_index.is_full(config.segment_index_bytes)
            || self.time_index.is_full(config.segment_index_bytes)
    }

    /// Starts the `segment.ms` clock of a reopened active segment at its first
    /// batch's max timestamp, as Kafka does, unless that lies in the future or
    /// is missing.
    pub(crate) fn start_roll_clock(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.size == 0 {
            return Ok(());
        }
        let first = self.header_at(0)?;
        let ts = first.max_timestamp;
        self.roll_clock_ms = Some(if (0..=now_ms).contains(&ts) {
            ts
        } else {
            now_ms
        });
        Ok(())
    }

    /// Finishes the time index with the segment's maximum (so a reopened
    /// segment knows it) and writes both indexes, synced.
    pub(crate) fn finish_indexes(&mut self, dir: &Path) {
        if let Some((max_timestamp, offset)) = self.max_timestamp {
            self.time_index
                .maybe_push(max_timestamp, self.relative(offset));
        }
        self.write_index_files(dir)
    }

    /// Writes both indexes, synced. A failure (a full disk) is logged and
    /// leaves no index files, never a failed roll, close or recovery: the
    /// indexes are in memory, and a segment without them is rebuilt from its
    /// `.log` file at the next open.
    fn write_index_files(&self, dir: &Path) {
        let written = write_synced(
            &segment_path(dir, self.base_offset, INDEX_SUFFIX),
            &self.offset_index.encode(),
        )
        .and_then(|()| {
            write_synced(
                &segment_path(dir, self.base_offset, TIME_INDEX_SUFFIX),
                &self.time_index.encode(),
            )
        });
        let Err(error) = written else {
            return;
        };
        match Segment::delete_index_files(dir, self.base_offset) {
            Ok(()) => {
                tracing::warn!(segment = %self.log.path().display(), %error, "cannot write the segment's indexes; the next start rebuilds them")
            }
            Err(delete_error) => {
                tracing::warn!(segment = %self.log.path().display(), %error, %delete_error, "cannot write the segment's indexes nor remove the old ones")
            }
        }
    }

    /// Removes a segment's files (missing ones are fine).
    pub(crate) fn delete_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
        Segment::delete_index_files(dir, base_offset)?;
        remove_if_present(&segment_path(dir, base_offset, TXN_INDEX_SUFFIX))?;
        remove_if_present(&segment_path(dir, base_offset, REPAIRED_SUFFIX))?;
        remove_if_present(&segment_path(dir, base_offset, LOG_SUFFIX))
    }

    /// Removes a segment's offset and time index files, so that the next
    /// open rebuilds them from the `.log` file instead of trusting stale
    /// ones. The txnindex stays: it cannot be rebuilt from the segment alone.
    pub(crate) fn delete_index_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(&segment_path(dir, base_offset, suffix))?;
        }
        Ok(())
    }

    /// Opens a segment the cleaner just wrote (and synced) at `base_offset`,
    /// holding the batches at `batches` (position, header) and the aborted
    /// transactions `aborted` (already in its txnindex file), and writes its
    /// offset and time indexes.
    pub(crate) fn open_cleaned(
        dir: &Path,
        base_offset: i64,
        batches: &[(u64, BatchMeta)],
        aborted: Vec<AbortedTxnEntry>,
        config: &LogConfig,
        files: &Arc<OpenFiles>,
    ) -> Result<Segment, StorageError> {
        let log = open_log_file(&segment_path(dir, base_offset, LOG_SUFFIX), false)?;
        let mut segment = Segment::empty(dir, base_offset, log, files);
        segment.txn_index = TxnIndex::with_entries(dir, base_offset, aborted);
        for (position, meta) in batches {
            segment.index_batch(*position, meta, config);
            segment.size = position + meta.len;
        }
        segment.finish_indexes(dir);
        Ok(segment)
    }

    /// Max timestamp of the segment's first batch (Kafka's estimate of its
    /// oldest record, for `max.compaction.lag.ms`); `None` when empty.
    pub(crate) fn first_batch_timestamp(&self) -> Result<Option<i64>, StorageError> {
        if self.size == 0 {
            return Ok(None);
        }
        Ok(Some(self.header_at(0)?.max_timestamp))
    }

    fn header_at(&self, position: u64) -> Result<BatchMeta, StorageError> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.read_exact_at(&mut buf, position)?;
        let header = BatchHeader::parse(&buf).map_err(|e| {
            StorageError::Corrupt(format!(
                "{} at byte {position}: {e}",
                self.log.path().display()
            ))
        })?;
        Ok(BatchMeta::of(&header))
    }

    /// Appends to `entries` the leader epochs of the segment's batches where
    /// they rise (rebuilding the leader-epoch cache). Stops quietly at a
    /// header that does not parse: damage is the scrubber's and recovery's
    /// to report, and the cache then ends where the readable batches do.
    pub(crate) fn collect_epoch_starts(&self, entries: &mut Vec<EpochEntry>) {
        let mut position = 0;
        while position < self.size {
            let Ok(meta) = self.header_at(position) else {
                return;
            };
            if meta.leader_epoch >= 0 && entries.last().is_none_or(|e| meta.leader_epoch > e.epoch)
            {
                entries.push(EpochEntry {
                    epoch: meta.leader_epoch,
                    start_offset: meta.base_offset,
                });
            }
            position += meta.len;
        }
    }

    /// Position and header of the first batch whose last offset is >=
    /// `offset`, starting from the offset index; `None` past the end.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchMeta)>, StorageError> {
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut position = u64::from(self.offset_index.position_for(relative));
        while position < self.size {
            let meta = self.header_at(position)?;
            if meta.last_offset >= offset {
                return Ok(Some((position, meta)));
            }
            position += meta.len;
        }
        Ok(None)
    }

    /// Whole batches from `position` (where `first` starts): as many as fit in
    /// `max_bytes` but at least `first`, stopping before the first batch whose
    /// base offset is >= `max_offset`.
    pub(crate) fn read_batches(
        &self,
        position: u64,
        first: &BatchMeta,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, StorageError> {
        let wanted = (max_bytes as u64).max(first.len).min(self.size - position);
        let mut buf = vec![0u8; wanted as usize];
        self.read_exact_at(&mut buf, position)?;
        let mut end = 0;
        for batch in BatchIter::new(&buf) {
            match batch {
                Ok((header, bytes)) if header.base_offset() < max_offset => end += bytes.len(),
                _ => break,
            }
        }
        buf.truncate(end);
        Ok(Bytes::from(buf))
    }

    /// (max timestamp, base offset) of the first batch with max timestamp >=
    /// `timestamp` among those ending at or after `from_offset`, searching
    /// from the time index.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        from_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let start_offset = self
            .time_index
            .last_below(timestamp)
            .map_or(self.base_offset, |rel| self.base_offset + i64::from(rel))
            .max(from_offset);
        let Some((mut position, _)) = self.find_batch(start_offset)? else {
            return Ok(None);
        };
        while position < self.size {
            let meta = self.header_at(position)?;
            if meta.max_timestamp >= timestamp {
                return Ok(Some((meta.max_timestamp, meta.base_offset)));
            }
            position += meta.len;
        }
        Ok(None)
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Size of the larger of the two index files.
    pub(crate) fn index_bytes(&self) -> u64 {
        self.offset_index.bytes().max(self.time_index.bytes())
    }

    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    /// The segment's `.log` file, which the file cache may close and reopen.
    pub(crate) fn log_file(&self) -> Arc<SegmentFile> {
        Arc::clone(&self.log)
    }

    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.log
            .get()?
            .sync_data()
            .context(|| format!("syncing {}", self.log.path().display()))
    }
}
