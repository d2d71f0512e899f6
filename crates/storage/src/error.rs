use std::io;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// The bytes handed to `append` are not a sequence of whole v2 batches.
    #[error("invalid record batches for append: {0}")]
    InvalidBatch(String),
    /// Batches a follower got from its leader do not continue its log.
    #[error("replicated batches start at offset {got}, but the log ends at {expected}")]
    ReplicaOffsetMismatch { expected: i64, got: i64 },
    /// An aborted-transaction entry that does not fit the log: its marker
    /// is outside the log or not after the last entry of its segment.
    #[error("invalid aborted transaction entry: {0}")]
    InvalidAbortedTxn(String),
    /// A topic name that cannot safely be used as a directory name.
    #[error("invalid partition directory name for topic {topic:?}")]
    InvalidTopicName { topic: String },
    /// Another process holds the data directory's lock: two brokers on one
    /// directory would overwrite each other's records.
    #[error(
        "data directory {} is locked by another process ({}); two brokers cannot share a data directory",
        dir.display(),
        holder_pid.map_or("pid unknown".to_string(), |pid| format!("pid {pid}"))
    )]
    DirectoryLocked {
        dir: std::path::PathBuf,
        holder_pid: Option<u32>,
    },
}

/// Attaches a human-readable context to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io {
            context: context(),
            source,
        })
    }
}
