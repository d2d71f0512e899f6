//! What a follower replica does to its log (Kafka's ISR replication): it
//! appends the leader's batches exactly as the leader wrote them, cuts its
//! tail where it diverged from the leader's log (KIP-101/279), and starts
//! over when the leader's log begins after its end. Every cut is on disk
//! before it returns, so a crash never brings back the records it removed.

use super::{
    write_checkpoint, write_recovery_point, AppendInfo, PartitionLog, LOG_START_OFFSET_FILE,
};
use crate::error::StorageError;
use crate::fsutil::sync_dir;
use crate::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_CHECKPOINT};
use crate::segment::{remove_if_present, BatchMeta, Segment};
use sluice_protocol::batch::BatchIter;

impl PartitionLog {
    /// Appends whole v2 batches as the leader wrote them: offsets, leader
    /// epochs and timestamps are kept, the bytes are not modified. The
    /// whole call is refused, and nothing written, when a batch is damaged
    /// (its CRC does not match: a corrupt batch from a leader is never
    /// copied), when the batches do not continue this log without gap or
    /// overlap, or when a leader epoch goes down.
    pub fn append_replicated(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let mut metas: Vec<BatchMeta> = Vec::new();
        let mut expected = self.log_end_offset;
        let mut epoch = self.epochs.latest_epoch().unwrap_or(-1);
        for batch in BatchIter::new(batches) {
            let (header, _) = batch.map_err(|e| StorageError::InvalidBatch(e.to_string()))?;
            header.verify().map_err(|e| {
                StorageError::Corrupt(format!(
                    "a replicated batch at offset {} of {}: {e}",
                    header.base_offset(),
                    self.dir.display()
                ))
            })?;
            if header.base_offset() != expected {
                return Err(StorageError::ReplicaOffsetMismatch {
                    expected,
                    got: header.base_offset(),
                });
            }
            if header.partition_leader_epoch() < epoch {
                return Err(StorageError::InvalidBatch(format!(
                    "the batch at offset {expected} has leader epoch {} after epoch {epoch}",
                    header.partition_leader_epoch()
                )));
            }
            epoch = header.partition_leader_epoch();
            expected = header.last_offset() + 1;
            metas.push(BatchMeta::of(&header));
        }
        let (Some(first), Some(last)) = (metas.first(), metas.last()) else {
            return Err(StorageError::InvalidBatch("no record batches".into()));
        };
        let (first_offset, last_offset) = (first.base_offset, last.last_offset);
        if self
            .segments
            .last()
            .expect("at least one segment")
            .should_roll(&self.config, batches.len() as u64, last_offset, now_ms)
        {
            self.roll()?;
        }
        // Durable before any batch of a new epoch is, as in `append`.
        for meta in &metas {
            self.epochs.assign(meta.leader_epoch, meta.base_offset)?;
        }
        let config = self.config;
        self.active().append(batches, &metas, &config, now_ms)?;
        self.log_end_offset = expected;
        self.durability.appended(expected);
        let max = metas.iter().fold((i64::MIN, first_offset), |max, m| {
            if m.max_timestamp > max.0 {
                (m.max_timestamp, m.base_offset)
            } else {
                max
            }
        });
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp: max.0,
            offset_of_max_timestamp: max.1,
            log_append_time: -1,
            record_count: last_offset - first_offset + 1,
        })
    }

    /// Removes every batch that does not end below `offset` (a batch that
    /// holds `offset` goes whole), and returns the new log end: `offset`,
    /// or the start of the batch that held it. At or past the log end
    /// nothing is cut, but epochs recorded at the end with no batch (a
    /// leadership that appended nothing) are dropped, as Kafka does, so
    /// that the log's latest epoch is one it holds data of. Below the log
    /// start it is out of range (see [`PartitionLog::reset_to`]).
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<i64, StorageError> {
        if offset < self.log_start_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if offset >= self.log_end_offset {
            self.epochs.truncate_from_end(self.log_end_offset);
            return Ok(self.log_end_offset);
        }
        let holding = self.segments.partition_point(|s| s.base_offset() <= offset) - 1;
        let (position, new_end) = match self.segments[holding].find_batch(offset)? {
            Some((position, batch)) => (position, offset.min(batch.base_offset)),
            None => (self.segments[holding].size(), offset),
        };
        // Newest first, each deletion on disk before the next: a crash
        // part-way leaves a shorter log, never one with a hole that a
        // reopen would take for the end of the cut.
        let later: Vec<Segment> = self.segments.drain(holding + 1..).collect();
        for segment in later.into_iter().rev() {
            let base = segment.base_offset();
            drop(segment);
            Segment::delete_files(&self.dir, base)?;
            sync_dir(&self.dir)?;
        }
        let cut = self.segments.pop().expect("the holding segment");
        let base = cut.base_offset();
        let file = cut.log_file();
        file.get()?
            .set_len(position)
            .map_err(|source| StorageError::Io {
                context: format!("truncating {}", file.path().display()),
                source,
            })?;
        drop(cut);
        // Rescanned: its indexes are rebuilt for what is left.
        let (mut segment, _) = Segment::recover(&self.dir, base, &self.config, &self.files)?;
        segment.load_txn_index(&self.dir)?;
        segment.txn_index_mut().truncate_from(new_end)?;
        segment.start_roll_clock(now_ms)?;
        segment.sync()?;
        sync_dir(&self.dir)?;
        self.durability.reset(segment.log_file(), new_end);
        self.segments.push(segment);
        self.log_end_offset = new_end;
        self.after_cut(new_end);
        tracing::info!(dir = %self.dir.display(), offset, new_end, "truncated the log");
        Ok(new_end)
    }

    /// Removes every segment and starts the log empty at `offset`, both its
    /// start and its end (Kafka's `truncateFullyAndStartAt`): a follower
    /// whose leader's log starts after the follower's end.
    pub fn reset_to(&mut self, offset: i64, now_ms: i64) -> Result<(), StorageError> {
        for segment in self.segments.drain(..) {
            let base = segment.base_offset();
            drop(segment);
            Segment::delete_files(&self.dir, base)?;
        }
        let mut segment = Segment::create(&self.dir, offset, &self.files)?;
        segment.start_roll_clock(now_ms)?;
        write_checkpoint(&self.dir, LOG_START_OFFSET_FILE, offset)?;
        remove_if_present(&self.dir.join(LEADER_EPOCH_CHECKPOINT))?;
        sync_dir(&self.dir)?;
        self.epochs = LeaderEpochCache::empty(&self.dir);
        self.durability.reset(segment.log_file(), offset);
        self.segments.push(segment);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.after_cut(offset);
        tracing::info!(dir = %self.dir.display(), offset, "emptied the log to start at the leader's log start");
        Ok(())
    }

    /// What follows a cut to `end`: the recovery point, epochs and cleaner
    /// progress no longer reach past it.
    fn after_cut(&mut self, end: i64) {
        write_recovery_point(&self.dir, end);
        self.epochs.truncate_from_end(end);
        self.cleaner_checkpoint = self.cleaner_checkpoint.reset_if_beyond(end);
        if self.txn_index_damaged_from.is_some_and(|d| d >= end) {
            self.txn_index_damaged_from = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LogConfig;
    use crate::open_files::OpenFiles;
    use crate::PartitionLog;
    use sluice_protocol::batch::{build_uncompressed_batch, BatchHeader, BatchIter};
    use std::path::Path;

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(dir.join("t-0"), config, true, 0, &OpenFiles::new(8)).unwrap()
    }

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    /// A leader's log: `batches` batches of `records` records each, epoch
    /// `epoch_of(i)` for the i-th, read back as the bytes a follower gets.
    fn leader_bytes(
        dir: &Path,
        batches: usize,
        records: usize,
        epoch_of: impl Fn(usize) -> i32,
    ) -> Vec<u8> {
        let mut leader = open(dir, LogConfig::default());
        for i in 0..batches {
            let payload = [b'x'; 20];
            let recs: Vec<_> = (0..records).map(|_| (None, Some(&payload[..]))).collect();
            let mut batch = build_uncompressed_batch(1_000 + i as i64, &recs).to_vec();
            leader.append(&mut batch, epoch_of(i), None, 0).unwrap();
        }
        leader
            .read(0, usize::MAX, leader.log_end_offset())
            .unwrap()
            .data
            .to_vec()
    }

    /// Everything below `end`, segment after segment.
    fn read_to(log: &PartitionLog, end: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < end {
            let data = log.read(offset, usize::MAX, end).unwrap().data;
            let Some(next) = BatchIter::new(&data)
                .map(Result::unwrap)
                .last()
                .map(|(h, _)| h.last_offset() + 1)
            else {
                break;
            };
            out.extend_from_slice(&data);
            offset = next;
        }
        out
    }

    fn bases_and_epochs(data: &[u8]) -> Vec<(i64, i32)> {
        BatchIter::new(data)
            .map(|b| {
                let (h, _): (BatchHeader<'_>, _) = b.unwrap();
                (h.base_offset(), h.partition_leader_epoch())
            })
            .collect()
    }

    #[test]
    fn a_follower_keeps_the_leaders_offsets_and_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = leader_bytes(
            &tmp.path().join("leader"),
            4,
            3,
            |i| if i < 2 { 1 } else { 3 },
        );
        let mut follower = open(&tmp.path().join("follower"), LogConfig::default());
        let info = follower.append_replicated(&bytes, 0).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, 11));
        assert_eq!(follower.log_end_offset(), 12);
        let read = follower.read(0, usize::MAX, 12).unwrap().data;
        assert_eq!(&read[..], &bytes[..], "byte for byte the leader's");
        assert_eq!(follower.end_offset_for_epoch(1), Some((1, 6)));
        assert_eq!(follower.end_offset_for_epoch(2), Some((1, 6)));
        assert_eq!(follower.end_offset_for_epoch(3), Some((3, 12)));
    }

    #[test]
    fn damaged_gapped_or_overlapping_batches_are_refused_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = leader_bytes(&tmp.path().join("leader"), 2, 2, |_| 0);
        let mut follower = open(&tmp.path().join("follower"), LogConfig::default());
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert!(matches!(
            follower.append_replicated(&damaged, 0),
            Err(crate::StorageError::Corrupt(_))
        ));
        assert_eq!(follower.log_end_offset(), 0, "nothing written");
        assert_eq!(follower.size_bytes(), 0);
        let second = &bytes[bytes.len() / 2..];
        assert!(matches!(
            follower.append_replicated(second, 0),
            Err(crate::StorageError::ReplicaOffsetMismatch {
                expected: 0,
                got: 2
            })
        ));
        follower.append_replicated(&bytes, 0).unwrap();
        assert!(matches!(
            follower.append_replicated(&bytes, 0),
            Err(crate::StorageError::ReplicaOffsetMismatch {
                expected: 4,
                got: 0
            })
        ));
    }

    #[test]
    fn truncation_cuts_whole_batches_across_segments_and_survives_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = leader_bytes(
            &tmp.path().join("leader"),
            12,
            2,
            |i| if i < 6 { 1 } else { 2 },
        );
        let dir = tmp.path().join("follower");
        let mut follower = open(&dir, small_segments());
        for (_, batch) in BatchIter::new(&bytes).map(Result::unwrap) {
            follower.append_replicated(batch, 0).unwrap();
        }
        assert!(follower.segment_count() > 3, "several segments");
        assert_eq!(follower.log_end_offset(), 24);
        // Offset 9 is inside the batch 8..=9: it goes whole.
        assert_eq!(follower.truncate_to(9, 0).unwrap(), 8);
        assert_eq!(follower.log_end_offset(), 8);
        assert_eq!(follower.end_offset_for_epoch(2), None, "epoch 2 is gone");
        assert_eq!(follower.end_offset_for_epoch(1), Some((1, 8)));
        let read = read_to(&follower, 8);
        assert_eq!(
            bases_and_epochs(&read),
            vec![(0, 1), (2, 1), (4, 1), (6, 1)]
        );
        assert_eq!(follower.offset_for_timestamp(1_005, 0).unwrap(), None);
        // At or past the end: nothing to cut.
        assert_eq!(follower.truncate_to(50, 0).unwrap(), 8);
        // Appending goes on from the cut, then a reopen finds the same log.
        let rest = &bytes[read.len()..];
        follower.append_replicated(rest, 0).unwrap();
        assert_eq!(follower.log_end_offset(), 24);
        assert_eq!(follower.truncate_to(14, 0).unwrap(), 14);
        drop(follower);
        let reopened = PartitionLog::open(
            dir.join("t-0"),
            small_segments(),
            false,
            0,
            &OpenFiles::new(8),
        )
        .unwrap();
        assert_eq!(reopened.log_end_offset(), 14);
        assert_eq!(reopened.end_offset_for_epoch(2), Some((2, 14)));
        assert_eq!(reopened.end_offset_for_epoch(1), Some((1, 12)));
        let read = read_to(&reopened, 14);
        assert_eq!(&read[..], &bytes[..read.len()]);
        assert_eq!(bases_and_epochs(&read).len(), 7);
    }

    #[test]
    fn an_epoch_started_without_batches_is_dropped_by_a_truncation_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), LogConfig::default());
        let mut batch = build_uncompressed_batch(1, &[(None, Some(b"v"))]).to_vec();
        log.append(&mut batch, 1, None, 0).unwrap();
        // Led in epoch 2, but appended nothing before losing leadership.
        log.start_leader_epoch(2);
        assert_eq!(log.leader_epochs().last().map(|e| e.epoch), Some(2));
        assert_eq!(log.truncate_to(1, 0).unwrap(), 1);
        assert_eq!(log.leader_epochs().last().map(|e| e.epoch), Some(1));
    }

    #[test]
    fn a_reset_log_starts_empty_at_the_leaders_log_start() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = leader_bytes(&tmp.path().join("leader"), 3, 2, |_| 4);
        let dir = tmp.path().join("follower");
        let mut follower = open(&dir, LogConfig::default());
        follower
            .append_replicated(&bytes[..bytes.len() / 3], 0)
            .unwrap();
        follower.reset_to(100, 0).unwrap();
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (100, 100)
        );
        assert!(follower.leader_epochs().is_empty());
        // A batch at 100 continues it; a reopen keeps the start.
        let later = leader_bytes(&tmp.path().join("leader2"), 51, 2, |_| 5);
        let from_100: Vec<u8> = BatchIter::new(&later)
            .map(Result::unwrap)
            .filter(|(h, _)| h.base_offset() >= 100)
            .flat_map(|(_, b)| b.to_vec())
            .collect();
        follower.append_replicated(&from_100, 0).unwrap();
        assert_eq!(follower.log_end_offset(), 102);
        drop(follower);
        let reopened = PartitionLog::open(
            dir.join("t-0"),
            LogConfig::default(),
            false,
            0,
            &OpenFiles::new(8),
        )
        .unwrap();
        assert_eq!(
            (reopened.log_start_offset(), reopened.log_end_offset()),
            (100, 102)
        );
        assert_eq!(reopened.end_offset_for_epoch(5), Some((5, 102)));
    }
}
