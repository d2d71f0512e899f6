//! The Raft log on disk, in the data directory:
//!
//! - `quorum.log`: one framed JSON openraft entry after another, appended
//!   and fsynced before openraft is told they are flushed. A conflict
//!   truncates the file at the entry's offset; a purge (after a snapshot)
//!   rewrites it without the purged prefix.
//! - `quorum.state`: the vote and the last purged log id, replaced whole and
//!   fsynced (a vote forgotten after a crash could elect two leaders).
//! - `quorum.committed`: the last committed log id, replaced without fsync:
//!   it only lets a restart apply what was committed before an election, so
//!   an old or missing copy is safe.
//!
//! Entries are kept in memory too (metadata is small), so readers never
//! touch the disk and never wait on an fsync. Disk work runs on tokio's
//! blocking pool.

use super::files::{decode_frames, frame_all, io_error, read_file, replace_file, sync_dir};
use super::{lock, storage_error, TypeConfig};
use crate::quorum::QuorumError;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(super) type Entry = openraft::Entry<TypeConfig>;

const LOG_FILE: &str = "quorum.log";
const STATE_FILE: &str = "quorum.state";
const COMMITTED_FILE: &str = "quorum.committed";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    vote: Option<Vote<u64>>,
    last_purged: Option<LogId<u64>>,
}

type Entries = Arc<Mutex<BTreeMap<u64, Entry>>>;

/// The log store openraft writes through; clones share the same log.
pub(crate) struct LogStore {
    entries: Entries,
    disk: Arc<Mutex<Disk>>,
    state: State,
    committed: Option<LogId<u64>>,
}

/// A reader for openraft's replication tasks: memory only.
pub(crate) struct LogReader {
    entries: Entries,
}

/// The open log file and where each entry's frame starts in it.
struct Disk {
    log_path: PathBuf,
    state_path: PathBuf,
    committed_path: PathBuf,
    file: File,
    len: u64,
    offsets: BTreeMap<u64, u64>,
    /// Set at shutdown: a blocking write that outlived openraft's core
    /// finishes, no new one starts.
    closed: bool,
}

/// Stops log writes once the quorum is shut down.
pub(crate) struct LogFence(Arc<Mutex<Disk>>);

impl LogFence {
    /// Waits for a write in progress, then lets no other start.
    pub(crate) async fn close(&self) {
        let disk = self.0.clone();
        let _ignored = tokio::task::spawn_blocking(move || lock(&disk).closed = true).await;
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`. A torn final entry is
    /// truncated; any other damage refuses to open, naming file and offset.
    pub(crate) fn open(dir: &Path) -> Result<Self, QuorumError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let state_path = dir.join(STATE_FILE);
        let state = match read_file(&state_path)? {
            None => State::default(),
            Some(bytes) => decode_frames(&state_path, &bytes, false, |p| {
                serde_json::from_slice::<State>(p).map_err(|e| format!("not a quorum state: {e}"))
            })?
            .items
            .pop()
            .map(|(_, state)| state)
            .ok_or_else(|| io_error(&state_path, "the file is empty"))?,
        };
        let committed_path = dir.join(COMMITTED_FILE);
        let committed = read_committed(&committed_path);

        let log_path = dir.join(LOG_FILE);
        let bytes = read_file(&log_path)?.unwrap_or_default();
        let frames = decode_frames(&log_path, &bytes, true, |p| {
            serde_json::from_slice::<Entry>(p).map_err(|e| format!("not a raft log entry: {e}"))
        })?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(|e| io_error(&log_path, e))?;
        if let Some((at, reason)) = &frames.torn {
            tracing::warn!(path = %log_path.display(), offset = at, %reason, "truncating the torn final entry of the quorum log");
            file.set_len(*at)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&log_path, e))?;
        }
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut expected = state.last_purged.map_or(0, |p| p.index + 1);
        for (at, entry) in frames.items {
            let index = entry.log_id.index;
            // A crash between recording a purge and rewriting the file
            // leaves purged entries at its start.
            if state.last_purged.is_some_and(|p| index <= p.index) {
                continue;
            }
            // Nothing purged, the first entry may be any (openraft starts at
            // 0, its test suite elsewhere); after that, no holes.
            let first_unpurged = entries.is_empty() && state.last_purged.is_none();
            if index != expected && !first_unpurged {
                return Err(QuorumError::Storage(format!(
                    "{} is damaged at byte offset {at}: entry {index} where entry {expected} \
                     belongs; refusing to open a log with a hole",
                    log_path.display(),
                )));
            }
            expected = index + 1;
            offsets.insert(index, at);
            entries.insert(index, entry);
        }
        // Only damage the framing cannot see puts the committed id past the
        // log (entries are durable before they can commit); forget it then,
        // and the entries are applied again once a leader commits them.
        let last = entries.keys().next_back().copied();
        let last = last.or(state.last_purged.map(|p| p.index));
        let committed = committed.filter(|c| last.is_some_and(|last| c.index <= last));
        Ok(LogStore {
            entries: Arc::new(Mutex::new(entries)),
            disk: Arc::new(Mutex::new(Disk {
                log_path,
                state_path,
                committed_path,
                file,
                len: frames.valid_len,
                offsets,
                closed: false,
            })),
            state,
            committed,
        })
    }

    /// Runs `work` on the disk in the blocking pool.
    async fn on_disk<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Disk) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let disk = self.disk.clone();
        tokio::task::spawn_blocking(move || {
            let mut disk = lock(&disk);
            if disk.closed {
                return Err(std::io::Error::other("the metadata quorum is shut down"));
            }
            work(&mut disk)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    async fn save_state(&mut self, state: State) -> std::io::Result<()> {
        let payload = serde_json::to_vec(&state)?;
        self.on_disk(move |disk| replace_file(&disk.state_path, &frame_all(&[&payload]), true))
            .await?;
        self.state = state;
        Ok(())
    }

    pub(crate) fn fence(&self) -> LogFence {
        LogFence(self.disk.clone())
    }

    /// Every entry, in order (for tests that compare logs across nodes).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<Entry> {
        lock(&self.entries).values().cloned().collect()
    }
}

fn read_committed(path: &Path) -> Option<LogId<u64>> {
    let bytes = read_file(path).ok()??;
    let frames = decode_frames(path, &bytes, false, |p| {
        serde_json::from_slice::<Option<LogId<u64>>>(p).map_err(|e| e.to_string())
    });
    match frames {
        Ok(mut frames) => frames.items.pop().and_then(|(_, c)| c),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the committed log id; entries are applied again once a leader commits them");
            None
        }
    }
}

impl Disk {
    fn append(&mut self, bytes: &[u8], starts: &[(u64, u64)]) -> std::io::Result<()> {
        if let Err(e) = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
        {
            // Cut off whatever part reached the file, so the next append
            // does not follow a torn entry.
            let _ignored = self.file.set_len(self.len);
            return Err(e);
        }
        for (index, start) in starts {
            self.offsets.insert(*index, self.len + start);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Drops the entries from `index` on.
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some((_, &at)) = self.offsets.range(index..).next() else {
            return Ok(());
        };
        self.file.set_len(at)?;
        self.file.sync_data()?;
        self.len = at;
        self.offsets.split_off(&index);
        Ok(())
    }

    /// Rewrites the file without the entries up to `index`.
    fn purge(&mut self, index: u64) -> std::io::Result<()> {
        let kept = self.offsets.split_off(&(index + 1));
        let from = kept.values().next().copied().unwrap_or(self.len);
        let mut rest = vec![0; usize::try_from(self.len - from).unwrap_or(0)];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut rest, from)?;
        replace_file(&self.log_path, &rest, true)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.log_path)?;
        sync_dir(&self.log_path)?;
        self.offsets = kept.into_iter().map(|(i, at)| (i, at - from)).collect();
        self.len = rest.len() as u64;
        Ok(())
    }
}

fn read_range<RB: RangeBounds<u64>>(entries: &Entries, range: RB) -> Vec<Entry> {
    lock(entries).range(range).map(|(_, e)| e.clone()).collect()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<u64>> {
        Ok(read_range(&self.entries, range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<u64>> {
        Ok(read_range(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last = lock(&self.entries).values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: self.state.last_purged,
            last_log_id: last.or(self.state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let state = State {
            vote: Some(*vote),
            ..self.state.clone()
        };
        self.save_state(state)
            .await
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let payload = serde_json::to_vec(&committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.on_disk(move |disk| {
            replace_file(&disk.committed_path, &frame_all(&[&payload]), false)
        })
        .await
        .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for entry in &entries {
            let payload = serde_json::to_vec(entry)
                .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            starts.push((entry.log_id.index, bytes.len() as u64));
            bytes.extend_from_slice(&frame_all(&[&payload]));
        }
        match self.on_disk(move |disk| disk.append(&bytes, &starts)).await {
            Ok(()) => {
                lock(&self.entries).extend(entries.into_iter().map(|e| (e.log_id.index, e)));
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = storage_error(ErrorSubject::Logs, ErrorVerb::Write, &e);
                callback.log_io_completed(Err(e));
                Err(error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let index = log_id.index;
        self.on_disk(move |disk| disk.truncate(index))
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        lock(&self.entries).split_off(&index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        if self
            .state
            .last_purged
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        // Recorded first: if the rewrite below does not happen, open
        // skips the purged entries still in the file.
        let state = State {
            last_purged: Some(log_id),
            ..self.state.clone()
        };
        self.save_state(state)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        {
            let mut entries = lock(&self.entries);
            *entries = entries.split_off(&(log_id.index + 1));
        }
        let index = log_id.index;
        self.on_disk(move |disk| disk.purge(index))
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{blank_ent, log_id};

    #[tokio::test]
    async fn vote_truncation_and_purge_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut log = LogStore::open(dir.path()).expect("opens");
        log.blocking_append((0..10).map(|i| blank_ent::<TypeConfig>(1, 1, i)))
            .await
            .expect("appended");
        log.save_vote(&Vote::new(2, 1)).await.expect("vote saved");
        log.truncate(log_id(1, 1, 8)).await.expect("truncated");
        log.purge(log_id(1, 1, 3)).await.expect("purged");
        log.blocking_append([blank_ent::<TypeConfig>(2, 1, 8)])
            .await
            .expect("appended after the truncation");
        drop(log);

        let mut log = LogStore::open(dir.path()).expect("reopens");
        let indexes: Vec<u64> = log.entries().iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, [4, 5, 6, 7, 8]);
        assert_eq!(log.entries()[4].log_id, log_id(2, 1, 8));
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(2, 1)));
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 8)));
    }

    #[tokio::test]
    async fn a_hole_in_the_log_refuses_to_open() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut log = LogStore::open(dir.path()).expect("opens");
        log.blocking_append([0, 1, 3].map(|i| blank_ent::<TypeConfig>(1, 1, i)))
            .await
            .expect("appended");
        drop(log);
        let error = LogStore::open(dir.path()).err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(
            error.contains("quorum.log is damaged at byte offset"),
            "{error}"
        );
        assert!(error.contains("entry 3 where entry 2 belongs"), "{error}");
    }
}
