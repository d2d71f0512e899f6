//! Group commit: one `fdatasync` covers every append that waits for it.

use std::fs::File;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{IoContext, StorageError};
use crate::open_files::SegmentFile;

/// What a sync needs: the file being appended to and the offset appends have
/// reached in it. Segments that are no longer active were synced at the roll.
struct Tail {
    active: Arc<SegmentFile>,
    log_end_offset: i64,
    /// The active segment's txnindex when an entry was appended to it since
    /// the last sync: the next sync covers it along with the data.
    unsynced_txn_index: Option<Arc<File>>,
}

/// Durability state of one partition log, shared between the log (which
/// publishes every append) and whoever waits for data to be on disk.
pub struct Durability {
    tail: Mutex<Tail>,
    /// Serializes syncs so that a waiter arriving during a sync can find its
    /// offset covered by that sync instead of issuing its own.
    sync_lock: Mutex<Instant>,
    synced_offset: AtomicI64,
    sync_count: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Durability {
    /// State for a log whose every offset below `log_end_offset` is on disk.
    pub(crate) fn new(active: Arc<SegmentFile>, log_end_offset: i64) -> Self {
        Durability {
            tail: Mutex::new(Tail {
                active,
                log_end_offset,
                unsynced_txn_index: None,
            }),
            sync_lock: Mutex::new(Instant::now()),
            synced_offset: AtomicI64::new(log_end_offset),
            sync_count: AtomicU64::new(0),
        }
    }

    /// Exclusive end of the synced data: every offset below it is on disk.
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset.load(Ordering::Acquire)
    }

    /// Blocks until every offset below `offset` is on disk (or the whole log,
    /// if it has not reached `offset`) and returns the new synced offset.
    /// Concurrent callers share one `fdatasync`.
    pub fn sync_to(&self, offset: i64) -> Result<i64, StorageError> {
        let synced = self.synced_offset();
        if synced >= offset {
            return Ok(synced);
        }
        let mut last_sync = lock(&self.sync_lock);
        let synced = self.synced_offset();
        if synced >= offset {
            return Ok(synced);
        }
        let (file, log_end_offset, txn_index) = {
            let mut tail = lock(&self.tail);
            (
                Arc::clone(&tail.active),
                tail.log_end_offset,
                tail.unsynced_txn_index.take(),
            )
        };
        file.get()?
            .sync_data()
            .context(|| format!("syncing {}", file.path().display()))?;
        if let Some(txn_index) = txn_index {
            txn_index
                .sync_data()
                .context(|| "syncing the active segment's txnindex".to_string())?;
        }
        self.sync_count.fetch_add(1, Ordering::Relaxed);
        *last_sync = Instant::now();
        let previous = self
            .synced_offset
            .fetch_max(log_end_offset, Ordering::AcqRel);
        Ok(previous.max(log_end_offset))
    }

    /// Number of `fdatasync` calls made by `sync_to`, for metrics.
    pub fn sync_count(&self) -> u64 {
        self.sync_count.load(Ordering::Relaxed)
    }

    /// Time since the last sync (or since the log was opened), for `flush.ms`.
    pub fn since_last_sync(&self) -> Duration {
        lock(&self.sync_lock).elapsed()
    }

    /// Called by the log after each append.
    pub(crate) fn appended(&self, log_end_offset: i64) {
        lock(&self.tail).log_end_offset = log_end_offset;
    }

    /// Called by the log after appending to the active segment's txnindex.
    pub(crate) fn txn_index_appended(&self, file: Arc<File>) {
        lock(&self.tail).unsynced_txn_index = Some(file);
    }

    /// Syncs the active segment's txnindex if it has unsynced entries
    /// (a sync of the data that found nothing new to sync skips it).
    pub(crate) fn sync_txn_index(&self) -> Result<(), StorageError> {
        let _serialized = lock(&self.sync_lock);
        let pending = lock(&self.tail).unsynced_txn_index.take();
        if let Some(file) = pending {
            file.sync_data()
                .context(|| "syncing the active segment's txnindex".to_string())?;
        }
        Ok(())
    }

    /// Called by the log after it was cut back to `log_end_offset` (a
    /// follower's truncation) with everything below it synced: appends go
    /// to `active` from there.
    pub(crate) fn reset(&self, active: Arc<SegmentFile>, log_end_offset: i64) {
        let _serialized = lock(&self.sync_lock);
        let mut tail = lock(&self.tail);
        tail.active = active;
        tail.log_end_offset = log_end_offset;
        tail.unsynced_txn_index = None;
        self.synced_offset.store(log_end_offset, Ordering::Release);
    }

    /// Called by the log after a roll: the previous segment was synced through
    /// `sync_to` and appends now go to `active`.
    pub(crate) fn rolled(&self, active: Arc<SegmentFile>) {
        lock(&self.tail).active = active;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_publishes_the_log_end_offset_and_skips_covered_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let cache = crate::OpenFiles::new(1);
        let durability = Durability::new(SegmentFile::new(path, file, &cache), 5);
        assert_eq!(durability.synced_offset(), 5);
        assert_eq!(durability.sync_to(5).unwrap(), 5);
        assert_eq!(durability.sync_count(), 0);
        durability.appended(9);
        assert_eq!(durability.sync_to(7).unwrap(), 9);
        assert_eq!(durability.sync_count(), 1);
        assert_eq!(durability.sync_to(9).unwrap(), 9);
        assert_eq!(durability.sync_count(), 1);
    }
}
