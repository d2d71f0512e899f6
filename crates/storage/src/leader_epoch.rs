//! The leader-epoch cache of a partition (Kafka's `LeaderEpochFileCache`):
//! the first offset written in each leader epoch, kept in the partition's
//! `leader-epoch-checkpoint` file in Kafka's format (a version line `0`, a
//! count line, then one `epoch start_offset` line per epoch).
//!
//! It answers OffsetForLeaderEpoch: where an epoch's records end, which a
//! consumer compares with its position to detect that the log it read was
//! truncated, and which a follower uses to cut a divergent tail. An entry
//! is durable before the first batch of its epoch is written, so after a
//! crash the cache never lacks an epoch the log holds; entries past the log
//! end (a write the crash took back) are dropped at open. The file is
//! derived data: when it is missing or damaged the cache is rebuilt from the
//! batch headers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};
use crate::fsutil::write_file_atomically;

pub(crate) const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: &str = "0";

/// The first offset of one leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epoch entries ordered by epoch and by start offset, with their file.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

/// Parses a checkpoint; `None` when it is not one.
fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<EpochEntry> = lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace();
            let entry = EpochEntry {
                epoch: fields.next()?.parse().ok()?,
                start_offset: fields.next()?.parse().ok()?,
            };
            fields.next().is_none().then_some(entry)
        })
        .collect::<Option<_>>()?;
    let ordered = entries
        .windows(2)
        .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
    (entries.len() == count && ordered && entries.iter().all(|e| e.epoch >= 0)).then_some(entries)
}

impl LeaderEpochCache {
    /// Reads the partition's checkpoint. `Ok(None)` when there is none or
    /// it is damaged (logged): the caller rebuilds it from the log.
    pub(crate) fn load(dir: &Path) -> Result<Option<LeaderEpochCache>, StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
        };
        let Some(entries) = parse(&text) else {
            tracing::warn!(path = %path.display(), "damaged leader-epoch checkpoint; rebuilding it from the log's batches");
            return Ok(None);
        };
        Ok(Some(LeaderEpochCache { path, entries }))
    }

    /// A cache without entries, for a new log; its file is written at the
    /// first `assign`.
    pub(crate) fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    /// A cache of `entries` (from the log's batches), written out.
    pub(crate) fn rebuilt(dir: &Path, entries: Vec<EpochEntry>) -> LeaderEpochCache {
        let cache = LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries,
        };
        cache.write_best_effort();
        cache
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, as Kafka's `assign`:
    /// entries of a later or equal epoch, or starting at or after it, are
    /// replaced. The checkpoint is written and synced before this returns,
    /// so that the batch about to be written is never of an unknown epoch;
    /// when that write fails the cache is left as it was.
    /// A negative epoch (no leader epoch) is ignored.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        if epoch < 0 {
            return Ok(());
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|last| last.epoch != epoch || start_offset < last.start_offset);
        if !needed {
            return Ok(());
        }
        let before = self.entries.clone();
        let kept = self
            .entries
            .iter()
            .take_while(|e| e.epoch < epoch && e.start_offset < start_offset)
            .count();
        self.entries.truncate(kept);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        // The cache never runs ahead of its file: a later assign retries.
        self.write().inspect_err(|_| self.entries = before)
    }

    /// Drops the epochs that start at or after `end_offset`: the log was
    /// cut back to end there.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) {
        let kept = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        if kept < self.entries.len() {
            self.entries.truncate(kept);
            self.write_best_effort();
        }
    }

    /// Drops the epochs wholly below `start_offset` (the log start moved
    /// up) and makes the one holding it start there, as Kafka does.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(holding) = below.checked_sub(1) else {
            return;
        };
        if holding == 0 && self.entries[0].start_offset == start_offset {
            return;
        }
        self.entries.drain(..holding);
        self.entries[0].start_offset = start_offset;
        self.write_best_effort();
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested`
    /// and the offset where it ends (the start of the next epoch, or the
    /// log end for the latest one); `None` for an undefined (negative)
    /// epoch or one above every known epoch. For an epoch older than any
    /// kept it is (`requested`, start of the first kept epoch).
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        Some(match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].epoch, next.start_offset),
            None => (requested, next.start_offset),
        })
    }

    fn encode(&self) -> String {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }

    fn write(&self) -> Result<(), StorageError> {
        write_file_atomically(&self.path, self.encode().as_bytes())
    }

    /// For changes that only drop entries: an old file holds entries the
    /// next open drops again (past the log end or below the log start).
    fn write_best_effort(&self) {
        if let Err(error) = self.write() {
            tracing::warn!(path = %self.path.display(), %error, "cannot write the leader-epoch checkpoint; the next open corrects it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn cache(dir: &Path, entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(dir);
        for &(epoch, start) in entries {
            cache.assign(epoch, start).unwrap();
        }
        cache
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = cache(tmp.path(), &[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(cache.end_offset_for(-1, 40), None);
        assert_eq!(
            cache.end_offset_for(4, 40),
            Some((4, 40)),
            "the latest: the log end"
        );
        assert_eq!(cache.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(
            cache.end_offset_for(2, 40),
            Some((1, 10)),
            "an epoch without records"
        );
        assert_eq!(
            cache.end_offset_for(0, 40),
            Some((0, 0)),
            "older than any kept"
        );
        assert_eq!(cache.end_offset_for(5, 40), None, "newer than any");
    }

    #[test]
    fn assign_replaces_conflicting_entries_and_ignores_repeats() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cache = cache(tmp.path(), &[(1, 0), (2, 10), (2, 15), (3, 20)]);
        assert_eq!(cache.entries(), [entry(1, 0), entry(2, 10), entry(3, 20)]);
        // A follower truncated to 12 and learnt that epoch 4 starts there.
        cache.assign(4, 12).unwrap();
        assert_eq!(cache.entries(), [entry(1, 0), entry(2, 10), entry(4, 12)]);
        cache.assign(-1, 30).unwrap();
        assert_eq!(cache.latest_epoch(), Some(4));
    }

    #[test]
    fn truncation_from_either_end() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cache = cache(tmp.path(), &[(1, 0), (3, 10), (4, 25)]);
        cache.truncate_from_end(25);
        assert_eq!(cache.entries(), [entry(1, 0), entry(3, 10)]);
        cache.truncate_from_start(5);
        assert_eq!(cache.entries(), [entry(1, 5), entry(3, 10)]);
        cache.truncate_from_start(12);
        assert_eq!(cache.entries(), [entry(3, 12)]);
        cache.truncate_from_start(3);
        assert_eq!(
            cache.entries(),
            [entry(3, 12)],
            "below the first: unchanged"
        );
    }

    #[test]
    fn the_checkpoint_is_kafkas_format_and_survives_a_reload() {
        let tmp = tempfile::tempdir().unwrap();
        cache(tmp.path(), &[(0, 0), (2, 17)]);
        let text = fs::read_to_string(tmp.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 17\n");
        let loaded = LeaderEpochCache::load(tmp.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), [entry(0, 0), entry(2, 17)]);
    }

    #[test]
    fn a_damaged_or_missing_checkpoint_asks_for_a_rebuild() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::load(tmp.path()).unwrap().is_none());
        for damaged in [
            "",
            "1\n1\n0 0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 x\n",
            "0\n2\n3 0\n2 5\n",
            "0\n1\n0 0 0\n",
        ] {
            fs::write(tmp.path().join(LEADER_EPOCH_CHECKPOINT), damaged).unwrap();
            assert!(
                LeaderEpochCache::load(tmp.path()).unwrap().is_none(),
                "{damaged:?}"
            );
        }
    }
}
