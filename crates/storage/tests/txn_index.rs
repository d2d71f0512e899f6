//! The aborted-transaction index (`<base>.txnindex`): entries in the
//! segment of their marker, Kafka's file format, reopen, truncation,
//! deletion with the segment, damaged files, Kafka's collect semantics
//! across segments, and what the cleaner keeps (also after a crash).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::BatchIter;
use sluice_protocol::compression::{decode_batches, encode_batch, plain_record};
use sluice_protocol::control::{marker_batch, Marker};
use sluice_protocol::kafka_protocol::records::Compression;
use sluice_storage::{
    crash_at, decode_txn_index, AbortedTxnEntry, CleanerConfig, CrashPoint, LogConfig, LogDir,
    PartitionLog, StorageError, Throttle, TXN_INDEX_ENTRY_LEN,
};

const TOPIC: &str = "t";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 100_000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn open(root: &Path) -> PartitionLog {
    LogDir::open(root)
        .unwrap()
        .open_log(TOPIC, 0, config(), 0)
        .unwrap()
}

fn close(root: &Path, log: PartitionLog) {
    let dir = LogDir::open(root).unwrap();
    log.close().unwrap();
    dir.mark_clean_shutdown();
}

fn partition_dir(root: &Path) -> PathBuf {
    root.join(format!("{TOPIC}-0"))
}

fn txnindex_path(root: &Path, base: i64) -> PathBuf {
    partition_dir(root).join(format!("{base:020}.txnindex"))
}

/// Base offsets of the segments that have a txnindex file.
fn txnindex_bases(root: &Path) -> Vec<i64> {
    common::segment_files(&partition_dir(root), "txnindex")
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

/// A keyed batch, transactional for producer `pid` when `pid >= 0`.
fn data(pid: i64, key: &str, value: &str) -> Vec<u8> {
    let mut record = plain_record(
        0,
        1_000,
        Some(Bytes::from(key.to_string())),
        Some(Bytes::from(value.to_string())),
    );
    if pid >= 0 {
        record.transactional = true;
        record.producer_id = pid;
        record.producer_epoch = 0;
        record.sequence = 0;
    }
    let mut buf = BytesMut::new();
    encode_batch(&mut buf, &[record], Compression::None).unwrap();
    buf.to_vec()
}

fn abort(pid: i64) -> Vec<u8> {
    marker_batch(Marker::Abort, pid, 0, 0, 1_000)
        .unwrap()
        .to_vec()
}

/// Appends one batch and returns its offset.
fn append(log: &mut PartitionLog, mut batch: Vec<u8>) -> i64 {
    log.append(&mut batch, 0, None, 0).unwrap().first_offset
}

fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
    AbortedTxnEntry {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// Segments [0, 1] [2] [3, 4, 5 (active)]: producer 1's transaction starts
/// at 0 and is aborted at 3, two segments later; producer 2's runs from 4
/// to its abort at 5.
fn two_aborts(root: &Path) -> (PartitionLog, AbortedTxnEntry, AbortedTxnEntry) {
    let mut log = open(root);
    assert_eq!(append(&mut log, data(1, "k", "aborted-1")), 0);
    append(&mut log, data(-1, "k", "plain"));
    log.roll_active().unwrap();
    append(&mut log, data(-1, "j", "plain"));
    log.roll_active().unwrap();
    let first = entry(1, 0, append(&mut log, abort(1)), 4);
    log.append_aborted_txn(first).unwrap();
    assert_eq!(append(&mut log, data(2, "j", "aborted-2")), 4);
    let second = entry(2, 4, append(&mut log, abort(2)), 6);
    log.append_aborted_txn(second).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
    (log, first, second)
}

#[test]
fn entries_go_to_the_segment_of_their_marker_in_kafkas_format() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, first, second) = two_aborts(tmp.path());
    // Only the segment holding abort markers has a file.
    assert_eq!(txnindex_bases(tmp.path()), vec![3]);
    let bytes = fs::read(txnindex_path(tmp.path(), 3)).unwrap();
    assert_eq!(bytes.len(), 2 * TXN_INDEX_ENTRY_LEN);
    let mut expected = Vec::new();
    for e in [first, second] {
        expected.extend_from_slice(&0i16.to_be_bytes());
        expected.extend_from_slice(&e.producer_id.to_be_bytes());
        expected.extend_from_slice(&e.first_offset.to_be_bytes());
        expected.extend_from_slice(&e.last_offset.to_be_bytes());
        expected.extend_from_slice(&e.last_stable_offset.to_be_bytes());
    }
    assert_eq!(bytes, expected, "big-endian version, pid, first, last, LSO");
    let decoded = decode_txn_index(&bytes);
    assert_eq!(decoded.entries, vec![first, second]);
    assert!(decoded.damage.is_none());
    drop(log);
}

/// What `collect_aborted_txns` answers for the log of `two_aborts`.
fn assert_collects(log: &PartitionLog, first: AbortedTxnEntry, second: AbortedTxnEntry) {
    // A fetch inside the first segment learns of the transaction aborted
    // two segments later.
    assert_eq!(log.collect_aborted_txns(0, 2), vec![first]);
    assert_eq!(log.collect_aborted_txns(2, 3), vec![first]);
    // Overlap: marker at or after `from`, first offset below the bound.
    assert_eq!(log.collect_aborted_txns(3, 4), vec![first]);
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first, second]);
    assert_eq!(log.collect_aborted_txns(4, 6), vec![second]);
    assert_eq!(log.collect_aborted_txns(5, 6), vec![second]);
    assert_eq!(log.collect_aborted_txns(6, 7), vec![]);
    // The first entry's last stable offset (4) reaches the bound: the scan
    // stops there, as Kafka's does.
    assert_eq!(log.collect_aborted_txns(0, 4), vec![first]);
}

#[test]
fn collect_follows_kafka_across_segments_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, first, second) = two_aborts(tmp.path());
    assert_collects(&log, first, second);
    close(tmp.path(), log);
    let log = open(tmp.path());
    assert_eq!(log.txn_index_damaged_from(), None);
    assert_collects(&log, first, second);
    // An unclean reopen (no marker) reads the same files.
    drop(log);
    let log = open(tmp.path());
    assert_collects(&log, first, second);
}

#[test]
fn collect_stops_at_the_first_entry_stable_past_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    for _ in 0..8 {
        append(&mut log, data(-1, "k", "v"));
    }
    log.append_aborted_txn(entry(1, 0, 2, 3)).unwrap();
    log.append_aborted_txn(entry(2, 3, 4, 5)).unwrap();
    // Not something a broker writes (the transaction would have held the
    // LSO back), but it shows where the scan stops.
    log.append_aborted_txn(entry(3, 0, 6, 7)).unwrap();
    assert_eq!(
        log.collect_aborted_txns(0, 4),
        vec![entry(1, 0, 2, 3), entry(2, 3, 4, 5)]
    );
    assert_eq!(log.collect_aborted_txns(0, 8).len(), 3);
}

#[test]
fn entries_outside_the_log_or_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _, second) = two_aborts(tmp.path());
    for bad in [
        entry(3, 6, 6, 7),   // past the log end
        entry(3, 5, 4, 6),   // first offset past the marker
        entry(3, 4, 5, 6),   // the same marker again
        entry(3, 3, 4, 6),   // before the segment's last entry
        entry(3, -5, -1, 0), // below the log
    ] {
        assert!(
            matches!(
                log.append_aborted_txn(bad),
                Err(StorageError::InvalidAbortedTxn(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(log.collect_aborted_txns(0, i64::MAX).last(), Some(&second));
    // An older segment takes an entry for its own markers (a rebuild).
    log.append_aborted_txn(entry(3, 0, 1, 2)).unwrap();
    assert_eq!(txnindex_bases(tmp.path()), vec![0, 3]);
}

#[test]
fn truncation_drops_entries_from_an_offset_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, first, _) = two_aborts(tmp.path());
    log.truncate_aborted_txns(5).unwrap();
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
    assert_eq!(
        fs::read(txnindex_path(tmp.path(), 3)).unwrap().len(),
        TXN_INDEX_ENTRY_LEN
    );
    drop(log);
    let mut log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
    // Appends go on after the kept entries.
    let again = entry(2, 4, 5, 6);
    log.append_aborted_txn(again).unwrap();
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first, again]);
    log.truncate_aborted_txns(0).unwrap();
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![]);
    assert!(txnindex_bases(tmp.path()).is_empty(), "no entries, no file");
}

#[test]
fn a_recovery_that_cuts_the_log_drops_the_entries_past_its_new_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, first, _) = two_aborts(tmp.path());
    drop(log);
    // Tear the last batch (the second abort marker, offset 5).
    let segment = partition_dir(tmp.path()).join(format!("{:020}.log", 3));
    let len = fs::metadata(&segment).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(len - 5).unwrap();
    let log = open(tmp.path());
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
    assert_eq!(
        decode_txn_index(&fs::read(txnindex_path(tmp.path(), 3)).unwrap()).entries,
        vec![first]
    );
}

#[test]
fn retention_and_delete_records_take_the_txnindex_with_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, first, _) = two_aborts(tmp.path());
    log.append_aborted_txn(entry(9, 1, 1, 2)).unwrap();
    assert_eq!(txnindex_bases(tmp.path()), vec![0, 3]);
    // DeleteRecords past the first segment deletes it with its txnindex.
    assert_eq!(log.advance_log_start(2).unwrap(), 1);
    assert_eq!(txnindex_bases(tmp.path()), vec![3]);
    assert_eq!(log.collect_aborted_txns(2, 3), vec![first]);
    // Retention of everything rolls and deletes the active segment too.
    log.roll_active().unwrap();
    log.apply_retention(i64::MAX, 0, -1, log.log_end_offset())
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![6]);
    assert!(txnindex_bases(tmp.path()).is_empty());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![]);
}

#[test]
fn a_torn_or_corrupt_txnindex_is_cut_back_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, first, second) = two_aborts(tmp.path());
    close(tmp.path(), log);
    let path = txnindex_path(tmp.path(), 3);
    let intact = fs::read(&path).unwrap();

    // A torn append: part of a third entry.
    let mut torn = intact.clone();
    torn.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3, 0, 0]);
    fs::write(&path, &torn).unwrap();
    let mut log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first, second]);
    assert_eq!(log.txn_index_damaged_from(), Some(6));
    assert_eq!(
        fs::read(&path).unwrap(),
        intact,
        "cut back to whole entries"
    );
    log.truncate_aborted_txns(6).unwrap();
    assert_eq!(
        log.txn_index_damaged_from(),
        None,
        "the caller rebuilt from there"
    );
    drop(log);

    // An unknown version in the second entry: only the first is trusted.
    let mut bad = intact.clone();
    bad[TXN_INDEX_ENTRY_LEN + 1] = 7;
    fs::write(&path, &bad).unwrap();
    let log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
    assert_eq!(log.txn_index_damaged_from(), Some(first.last_offset + 1));
    assert_eq!(fs::read(&path).unwrap().len(), TXN_INDEX_ENTRY_LEN);
    drop(log);

    // Nothing valid at all: the file goes.
    fs::write(&path, [1u8; 20]).unwrap();
    let log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![]);
    assert_eq!(log.txn_index_damaged_from(), Some(3));
    assert!(!path.exists());
}

#[test]
fn close_and_rolls_sync_the_txnindex() {
    // Not observable without a power cut; this checks the paths run and
    // leave the file whole.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, first, second) = two_aborts(tmp.path());
    log.sync_aborted_txns().unwrap();
    let durability = log.durability();
    durability.sync_to(log.log_end_offset()).unwrap();
    log.roll_active().unwrap();
    append(&mut log, data(-1, "k", "v"));
    close(tmp.path(), log);
    let log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first, second]);
}

/// Values of the data records the log holds, front to back.
fn values(log: &PartitionLog) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20, i64::MAX).unwrap().data;
        let last = BatchIter::new(&data)
            .map(|b| b.unwrap().0.last_offset())
            .last()
            .unwrap();
        for record in decode_batches(Bytes::from(data.to_vec())).unwrap() {
            if !record.control {
                out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
            }
        }
        offset = last + 1;
    }
    out
}

/// Segments [0: producer 1's data] [1: plain] [2: abort 1] [3: producer
/// 2's data] [4: abort 2] [5: plain, active], with the first segment gone
/// (DeleteRecords), so that producer 1's transaction starts below the
/// first segment a cleaning pass rewrites.
fn cleanable(root: &Path) -> (PartitionLog, AbortedTxnEntry, AbortedTxnEntry) {
    let mut log = open(root);
    append(&mut log, data(1, "k", "aborted-1"));
    log.roll_active().unwrap();
    append(&mut log, data(-1, "k", "committed"));
    log.roll_active().unwrap();
    let first = entry(1, 0, append(&mut log, abort(1)), 3);
    log.append_aborted_txn(first).unwrap();
    log.roll_active().unwrap();
    append(&mut log, data(2, "k", "aborted-2"));
    log.roll_active().unwrap();
    let second = entry(2, 3, append(&mut log, abort(2)), 5);
    log.append_aborted_txn(second).unwrap();
    log.roll_active().unwrap();
    append(&mut log, data(-1, "j", "active"));
    log.advance_log_start(1).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![1, 2, 3, 4, 5]);
    assert_eq!(txnindex_bases(root), vec![2, 4]);
    (log, first, second)
}

fn cleaner_config() -> CleanerConfig {
    CleanerConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..CleanerConfig::default()
    }
}

#[test]
fn cleaning_drops_the_entries_of_transactions_it_removed_and_merges_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, first, _) = cleanable(tmp.path());
    let stats = log
        .clean(&cleaner_config(), 0, i64::MAX, &Throttle::unlimited())
        .unwrap()
        .expect("a pass ran");
    assert_eq!(stats.records_removed, 1, "producer 2's aborted record");
    assert_eq!(log.segment_base_offsets(), vec![1, 5], "one merged group");
    assert_eq!(values(&log), ["committed", "active"]);
    // Producer 2's transaction lay wholly in the group: gone from the
    // index. Producer 1's started below it (its record went with the
    // first segment, but the index cannot know): carried over.
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
    assert_eq!(txnindex_bases(tmp.path()), vec![1]);
    assert_eq!(
        decode_txn_index(&fs::read(txnindex_path(tmp.path(), 1)).unwrap()).entries,
        vec![first]
    );
    drop(log);
    let log = open(tmp.path());
    assert_eq!(log.collect_aborted_txns(0, i64::MAX), vec![first]);
}

#[test]
fn a_crash_during_the_swap_keeps_the_entries_of_the_group() {
    for point in [
        CrashPoint::AfterCleaned,
        CrashPoint::AfterSwapRename,
        CrashPoint::AfterDeletingAnOriginal,
        CrashPoint::BeforeCheckpoint,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, first, second) = cleanable(tmp.path());
        crash_at(Some(point));
        let crashed = log.clean(&cleaner_config(), 0, i64::MAX, &Throttle::unlimited());
        crash_at(None);
        assert!(crashed.is_err(), "{point:?} was reached");
        drop(log);
        let mut log = open(tmp.path());
        let aborted = log.collect_aborted_txns(0, i64::MAX);
        // Producer 2's entry may stay (the merge after a crash cannot tell
        // it went): harmless, its record is gone or still aborted.
        assert!(
            aborted == vec![first] || aborted == vec![first, second],
            "{point:?}: {aborted:?}"
        );
        if point == CrashPoint::AfterCleaned {
            assert_eq!(aborted, vec![first, second], "nothing was swapped");
        } else {
            assert_eq!(txnindex_bases(tmp.path()), vec![1], "{point:?}");
        }
        // The data agrees, and the next pass finishes.
        log.clean(&cleaner_config(), 0, i64::MAX, &Throttle::unlimited())
            .unwrap();
        assert_eq!(values(&log), ["committed", "active"], "{point:?}");
        assert!(log.collect_aborted_txns(0, i64::MAX).contains(&first));
    }
}

/// What the property test does to a log.
#[derive(Debug, Clone)]
enum Op {
    /// Appends a plain batch.
    Data,
    /// Appends a marker batch and an entry whose transaction began `span`
    /// offsets earlier (not below the previous entry's marker).
    Abort {
        pid: i64,
        span: i64,
    },
    Roll,
    /// DeleteRecords up to a point picked in the log.
    DeleteRecords {
        pick: u64,
    },
    /// Drops the entries from a point picked in the log on.
    Truncate {
        pick: u64,
    },
    Reopen {
        clean: bool,
    },
    /// Checks `collect_aborted_txns` for a range picked in the log.
    Collect {
        from_pick: u64,
        len: i64,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => Just(Op::Data),
        3 => (0i64..4, 0i64..6).prop_map(|(pid, span)| Op::Abort { pid, span }),
        1 => Just(Op::Roll),
        1 => any::<u64>().prop_map(|pick| Op::DeleteRecords { pick }),
        1 => any::<u64>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        3 => (any::<u64>(), 0i64..8).prop_map(|(from_pick, len)| Op::Collect { from_pick, len }),
    ]
}

fn pick_in(pick: u64, low: i64, high: i64) -> i64 {
    low + (pick % (high - low + 1) as u64) as i64
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Against a model (the entries appended, minus those truncated or
    /// below the first segment): every answer of `collect_aborted_txns`
    /// for consistent entries (transactions that do not overlap, each
    /// stable right after its marker) is the plain overlap filter.
    #[test]
    fn the_index_behaves_like_a_list_of_entries(ops in proptest::collection::vec(op(), 1..60)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        let mut model: Vec<AbortedTxnEntry> = Vec::new();
        for op in ops {
            match op {
                Op::Data => {
                    append(&mut log, data(-1, "k", "v"));
                }
                Op::Abort { pid, span } => {
                    let marker = append(&mut log, abort(pid));
                    let floor = model.last().map_or(log.log_start_offset(), |e| e.last_offset + 1);
                    let e = entry(pid, (marker - span).max(floor), marker, marker + 1);
                    log.append_aborted_txn(e).unwrap();
                    model.push(e);
                }
                Op::Roll => log.roll_active().unwrap(),
                Op::DeleteRecords { pick } => {
                    let to = pick_in(pick, log.log_start_offset(), log.log_end_offset());
                    log.advance_log_start(to).unwrap();
                }
                Op::Truncate { pick } => {
                    let from = pick_in(pick, 0, log.log_end_offset());
                    log.truncate_aborted_txns(from).unwrap();
                    model.retain(|e| e.last_offset < from);
                }
                Op::Reopen { clean } => {
                    if clean {
                        close(tmp.path(), log);
                    } else {
                        drop(log);
                    }
                    log = open(tmp.path());
                    proptest::prop_assert_eq!(log.txn_index_damaged_from(), None);
                }
                Op::Collect { from_pick, len } => {
                    let from = pick_in(from_pick, log.log_start_offset(), log.log_end_offset());
                    let expected: Vec<_> = model
                        .iter()
                        .filter(|e| e.last_offset >= from && e.first_offset < from + len)
                        .copied()
                        .collect();
                    proptest::prop_assert_eq!(log.collect_aborted_txns(from, from + len), expected);
                }
            }
            // Entries go with the segments that held their markers.
            let first_base = log.segment_base_offsets()[0];
            model.retain(|e| e.last_offset >= first_base);
            proptest::prop_assert_eq!(log.collect_aborted_txns(i64::MIN, i64::MAX), model.clone());
            let on_disk: Vec<AbortedTxnEntry> = common::segment_files(&partition_dir(tmp.path()), "txnindex")
                .iter()
                .flat_map(|p| decode_txn_index(&fs::read(p).unwrap()).entries)
                .collect();
            proptest::prop_assert_eq!(on_disk, model.clone());
        }
    }
}
