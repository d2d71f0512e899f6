//! A log directory holding one sub-directory per partition.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::error::{IoContext, StorageError};
use crate::fsutil::{sync_dir, write_file_atomically};
use crate::log::PartitionLog;
use crate::open_files::{OpenFiles, DEFAULT_MAX_OPEN_SEGMENT_FILES};

/// Written after every log was closed; its absence at startup means the
/// previous run crashed and logs must be recovered.
const CLEAN_SHUTDOWN_MARKER: &str = ".sluice-clean-shutdown";

/// Held with `flock` by the process that owns the directory; holds its pid.
const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a data directory, so that two brokers never write
/// the same logs. The kernel drops a `flock` when its holder dies, so a
/// `.lock` left behind by a killed process does not block the next start.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (creating it if needed) and records this process's pid
    /// in its `.lock` file; fails at once, naming the holder's pid, if
    /// another process holds it. Released when the value is dropped.
    pub fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let opening = || format!("opening {}", path.display());
        // Not truncated on open: until we hold the lock, the pid in it is
        // the holder's.
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .context(opening)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StorageError::DirectoryLocked {
                    dir: dir.to_path_buf(),
                    holder_pid: read_pid(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).context(|| format!("locking {}", path.display()))
            }
        }
        let writing = || format!("writing {}", path.display());
        file.set_len(0).context(writing)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .context(writing)?;
        Ok(DirLock { _file: file })
    }
}

/// The pid a lock holder wrote, if it has written one yet.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

pub struct LogDir {
    path: PathBuf,
    was_clean_shutdown: bool,
    /// Shared by every log of the directory, so the bound is the broker's.
    files: Arc<OpenFiles>,
}

impl LogDir {
    /// Opens (creating if needed) a log directory. Notes whether the previous
    /// run shut down cleanly and removes the marker, so that a crash from now
    /// on is seen as unclean.
    pub fn open(path: &Path) -> Result<LogDir, StorageError> {
        LogDir::open_keeping(path, DEFAULT_MAX_OPEN_SEGMENT_FILES)
    }

    /// [`LogDir::open`], keeping at most `max_open_segment_files` segment
    /// files open at once (see [`OpenFiles`]).
    pub fn open_keeping(
        path: &Path,
        max_open_segment_files: usize,
    ) -> Result<LogDir, StorageError> {
        fs::create_dir_all(path).context(|| format!("creating {}", path.display()))?;
        let marker = path.join(CLEAN_SHUTDOWN_MARKER);
        let was_clean_shutdown = match fs::remove_file(&marker) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).context(|| format!("removing {}", marker.display())),
        };
        sync_dir(path)?;
        Ok(LogDir {
            path: path.to_path_buf(),
            was_clean_shutdown,
            files: OpenFiles::new(max_open_segment_files),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn was_clean_shutdown(&self) -> bool {
        self.was_clean_shutdown
    }

    /// The cache of open segment files shared by this directory's logs.
    pub fn open_files(&self) -> &Arc<OpenFiles> {
        &self.files
    }

    /// (topic, partition) of every `<topic>-<partition>` directory present.
    pub fn existing_partitions(&self) -> Result<Vec<(String, i32)>, StorageError> {
        let mut partitions = Vec::new();
        let listing = || format!("listing {}", self.path.display());
        for entry in fs::read_dir(&self.path).context(listing)? {
            let entry = entry.context(listing)?;
            if !entry.file_type().context(listing)?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some((topic, digits)) = name.to_str().and_then(|n| n.rsplit_once('-')) else {
                continue;
            };
            // Only canonical names: "t-07" is not the directory of partition 7.
            let canonical = digits
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0 && p.to_string() == digits && is_valid_topic(topic));
            if let Some(partition) = canonical {
                partitions.push((topic.to_string(), partition));
            }
        }
        partitions.sort();
        Ok(partitions)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> Result<PathBuf, StorageError> {
        if !is_valid_topic(topic) || partition < 0 {
            return Err(StorageError::InvalidTopicName {
                topic: topic.to_string(),
            });
        }
        Ok(self.path.join(format!("{topic}-{partition}")))
    }

    /// Opens or creates the log of one partition, recovering it if the
    /// previous run did not shut down cleanly.
    pub fn open_log(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<PartitionLog, StorageError> {
        let dir = self.partition_dir(topic, partition)?;
        let created = !dir.exists();
        let log = PartitionLog::open(dir, config, self.was_clean_shutdown, now_ms, &self.files)?;
        if created {
            sync_dir(&self.path)?;
        }
        Ok(log)
    }

    /// Deletes a partition's directory; its log must have been dropped.
    pub fn delete_log(&self, topic: &str, partition: i32) -> Result<(), StorageError> {
        let dir = self.partition_dir(topic, partition)?;
        fs::remove_dir_all(&dir).context(|| format!("deleting {}", dir.display()))?;
        sync_dir(&self.path)
    }

    /// Whether a partition's directory exists.
    pub fn has_log(&self, topic: &str, partition: i32) -> bool {
        self.partition_dir(topic, partition)
            .is_ok_and(|dir| dir.exists())
    }

    /// Renames a partition's directory to `<topic>-<partition>.<now_ms>-orphaned`
    /// and returns the new path. The suffix ends in a word, so the moved
    /// directory is never taken for a partition again (as Kafka's `-delete`
    /// and `-stray` directories).
    pub fn move_aside(
        &self,
        topic: &str,
        partition: i32,
        now_ms: i64,
    ) -> Result<PathBuf, StorageError> {
        let dir = self.partition_dir(topic, partition)?;
        let mut name = dir.as_os_str().to_owned();
        name.push(format!(".{now_ms}-orphaned"));
        let aside = PathBuf::from(name);
        fs::rename(&dir, &aside).context(|| format!("moving {} aside", dir.display()))?;
        sync_dir(&self.path)?;
        Ok(aside)
    }

    /// Writes the clean-shutdown marker (synced). Call after every log was
    /// closed. When the write fails (a full disk) the shutdown still
    /// succeeds: without the marker the next start recovers every log as
    /// after a crash, which is slower but loses nothing.
    pub fn mark_clean_shutdown(&self) {
        let marker = self.path.join(CLEAN_SHUTDOWN_MARKER);
        if let Err(error) = write_file_atomically(&marker, b"") {
            tracing::warn!(marker = %marker.display(), %error, "cannot write the clean-shutdown marker; the next start recovers every log");
        }
    }
}

/// Kafka's legal topic characters; this also keeps names from escaping the
/// log directory.
fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic != "."
        && topic != ".."
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flock locks belong to an open file, so a second acquire fails even
    /// from the same process, naming the holder; dropping the lock frees it.
    #[test]
    fn a_held_directory_cannot_be_locked_again_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(tmp.path()).unwrap();
        match DirLock::acquire(tmp.path()) {
            Err(StorageError::DirectoryLocked { dir, holder_pid }) => {
                assert_eq!(dir, tmp.path());
                assert_eq!(holder_pid, Some(std::process::id()));
            }
            other => panic!("expected DirectoryLocked, got {other:?}"),
        }
        drop(held);
        let again = DirLock::acquire(tmp.path()).unwrap();
        drop(again);
        let pid = fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }

    #[test]
    fn a_directory_moved_aside_is_no_partition_any_more() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path()).unwrap();
        fs::create_dir(tmp.path().join("orders-3")).unwrap();
        fs::write(tmp.path().join("orders-3").join("data"), b"kept").unwrap();
        assert!(dir.has_log("orders", 3));
        let aside = dir.move_aside("orders", 3, 1234).unwrap();
        assert_eq!(aside, tmp.path().join("orders-3.1234-orphaned"));
        assert_eq!(fs::read(aside.join("data")).unwrap(), b"kept");
        assert!(!dir.has_log("orders", 3));
        assert_eq!(dir.existing_partitions().unwrap(), vec![]);
    }
}
