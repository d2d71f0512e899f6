//! Sluice's storage engine: the on-disk log of each partition.
//!
//! This crate owns everything between record batches and the disk: Kafka's
//! segment layout (`<topic>-<partition>/<base offset>.log`, `.index`,
//! `.timeindex`, and `.txnindex` for segments holding abort markers),
//! offset assignment, reads by offset and by timestamp,
//! segment rolling, time/size retention and the persisted log start offset
//! (DeleteRecords), the leader-epoch cache (`leader-epoch-checkpoint`),
//! log compaction (the cleaner), crash recovery
//! (CRC-checked scans that cut torn tails) and group-committed durability.
//! It stores batches exactly as they arrive on the wire; only the cleaner
//! decodes individual records. It must not know about
//! the network, sockets or async runtimes: callers hand it bytes and call the
//! blocking `Durability::sync_to` from wherever blocking is allowed.

mod cleaner;
mod config;
mod dir;
mod durability;
mod error;
mod fsutil;
mod index;
mod leader_epoch;
mod log;
mod open_files;
mod segment;
mod txn_index;
mod verify;

#[cfg(feature = "failpoints")]
pub use cleaner::{crash_at, CrashPoint};
pub use cleaner::{CleanJob, CleanStats, CleanableRange, CleanedSegment, CleanerConfig, Throttle};
pub use config::LogConfig;
pub use dir::{DirLock, LogDir};
pub use durability::Durability;
pub use error::StorageError;
pub use leader_epoch::EpochEntry;
pub use log::{AppendInfo, PartitionLog, ReadResult};
pub use open_files::{OpenFiles, DEFAULT_MAX_OPEN_SEGMENT_FILES};
pub use txn_index::{
    decode_txn_index, AbortedTxnEntry, TxnIndexContents, TxnIndexDamage, TXN_INDEX_ENTRY_LEN,
};
pub use verify::{segment_base_offset, verify_segment, DamagedRange, SegmentCheck};

#[cfg(test)]
mod tests {
    /// The broker keeps logs behind a mutex and shares `Durability` across threads.
    #[test]
    fn handles_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::PartitionLog>();
        assert_send_sync::<crate::Durability>();
        assert_send_sync::<crate::LogDir>();
    }
}
