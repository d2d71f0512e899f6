//! A bounded cache of open segment files.
//!
//! Keeping every segment's `.log` file open costs one descriptor per segment
//! for as long as the broker runs: 5,000 partitions hold 5,000 descriptors
//! even when only a few are written. Like Redpanda's fd cache, segments open
//! their file on first use and the least recently used one is closed once
//! more than `max_open` are open. A closed file is opened again on its next
//! read, append or sync; on Linux `fsync` through the new descriptor covers
//! what was written through the old one (and reports a writeback error not
//! yet seen by anyone), so closing never loses durability.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::error::{IoContext, StorageError};

/// Segment files the cache keeps open when not told otherwise.
pub const DEFAULT_MAX_OPEN_SEGMENT_FILES: usize = 1000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded values stay consistent whatever a panicking holder did.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The set of open segment files of a log directory, shared by its logs.
#[derive(Debug)]
pub struct OpenFiles {
    max_open: usize,
    /// Ticks on every use, so that the oldest `last_used` is the LRU file.
    clock: AtomicU64,
    /// Files opened and not closed since (dead entries are segments that
    /// were dropped; they are pruned on the next open).
    open: Mutex<Vec<Weak<SegmentFile>>>,
}

impl OpenFiles {
    /// A cache keeping at most `max_open` files open (at least one).
    pub fn new(max_open: usize) -> Arc<OpenFiles> {
        Arc::new(OpenFiles {
            max_open: max_open.max(1),
            clock: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        })
    }

    /// The most files kept open at once.
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Segment files open right now.
    pub fn open_count(&self) -> usize {
        lock(&self.open)
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|file| file.is_open())
            .count()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that `file` was just opened and closes the least recently
    /// used others while more than `max_open` are open.
    fn opened(&self, file: &Arc<SegmentFile>) {
        let mut open = lock(&self.open);
        open.retain(|entry| entry.strong_count() > 0);
        if !open.iter().any(|entry| entry.as_ptr() == Arc::as_ptr(file)) {
            open.push(Arc::downgrade(file));
        }
        while open.len() > self.max_open {
            let victim = open
                .iter()
                .enumerate()
                .filter_map(|(i, entry)| entry.upgrade().map(|f| (i, f)))
                .filter(|(_, f)| !Arc::ptr_eq(f, file))
                .min_by_key(|(_, f)| f.last_used.load(Ordering::Relaxed));
            let Some((i, victim)) = victim else {
                break;
            };
            open.swap_remove(i);
            // Readers holding the descriptor keep it until they finish.
            victim.close();
        }
    }
}

/// One segment's `.log` file, open or not.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
    last_used: AtomicU64,
    cache: Arc<OpenFiles>,
}

fn open_read_write(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

impl SegmentFile {
    /// A segment file the caller just opened (created, recovered or loaded).
    pub(crate) fn new(path: PathBuf, file: File, cache: &Arc<OpenFiles>) -> Arc<SegmentFile> {
        let segment_file = Arc::new(SegmentFile {
            path,
            file: Mutex::new(Some(Arc::new(file))),
            last_used: AtomicU64::new(cache.tick()),
            cache: Arc::clone(cache),
        });
        cache.opened(&segment_file);
        segment_file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it again if the cache closed it.
    pub(crate) fn get(self: &Arc<Self>) -> Result<Arc<File>, StorageError> {
        self.last_used.store(self.cache.tick(), Ordering::Relaxed);
        let mut slot = lock(&self.file);
        if let Some(file) = &*slot {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(
            open_read_write(&self.path).context(|| format!("opening {}", self.path.display()))?,
        );
        *slot = Some(Arc::clone(&file));
        // Not while holding the slot: eviction locks other slots.
        drop(slot);
        self.cache.opened(self);
        Ok(file)
    }

    /// Forgets the open descriptor, so that the next use opens the path
    /// again (after the file was replaced by a rename).
    pub(crate) fn reopen_on_next_use(&self) {
        self.close();
    }

    fn close(&self) {
        lock(&self.file).take();
    }

    fn is_open(&self) -> bool {
        lock(&self.file).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn segment_file(dir: &Path, name: &str, cache: &Arc<OpenFiles>) -> Arc<SegmentFile> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        SegmentFile::new(path, file, cache)
    }

    #[test]
    fn keeps_at_most_max_open_files_open_closing_the_least_recently_used() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = OpenFiles::new(2);
        let a = segment_file(tmp.path(), "a", &cache);
        let b = segment_file(tmp.path(), "b", &cache);
        a.get().unwrap();
        let c = segment_file(tmp.path(), "c", &cache);
        assert_eq!(cache.open_count(), 2);
        assert!(a.is_open() && !b.is_open() && c.is_open());

        // A closed file opens again on use and another one makes room.
        b.get().unwrap().write_all_at(b"x", 0).unwrap();
        assert_eq!(cache.open_count(), 2);
        assert!(!a.is_open() && b.is_open() && c.is_open());
        let mut byte = [0u8; 1];
        b.get().unwrap().read_exact_at(&mut byte, 0).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn dropped_segments_free_their_place() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = OpenFiles::new(2);
        let a = segment_file(tmp.path(), "a", &cache);
        drop(segment_file(tmp.path(), "b", &cache));
        let _c = segment_file(tmp.path(), "c", &cache);
        assert!(a.is_open(), "the dropped segment's place was reused");
        assert_eq!(cache.open_count(), 2);
    }

    #[test]
    fn a_file_replaced_by_rename_is_read_from_its_new_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = OpenFiles::new(4);
        let a = segment_file(tmp.path(), "a", &cache);
        a.get().unwrap().write_all_at(b"old", 0).unwrap();
        std::fs::write(tmp.path().join("a.new"), b"new").unwrap();
        std::fs::rename(tmp.path().join("a.new"), tmp.path().join("a")).unwrap();
        a.reopen_on_next_use();
        let mut bytes = [0u8; 3];
        a.get().unwrap().read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(&bytes, b"new");
    }
}
