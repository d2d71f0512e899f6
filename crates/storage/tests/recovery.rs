//! Recovery after crashes and damaged files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use sluice_storage::{verify_segment, DamagedRange, LogDir, PartitionLog, Throttle};

const TOPIC: &str = "events";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: Model,
}

impl Fixture {
    /// A log with several segments of one-to-three-record batches.
    fn new() -> (Fixture, PartitionLog) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dir = LogDir::open(&root).unwrap();
        let mut log = dir.open_log(TOPIC, 0, small_segments(), 0).unwrap();
        let mut model = Model::default();
        for i in 0..30u8 {
            let records = usize::from(i % 3) + 1;
            append(
                &mut log,
                &mut model,
                batch(i64::from(i) * 10, records, 40, i),
                0,
            );
        }
        assert!(log.segment_count() >= 3);
        let fixture = Fixture {
            _tmp: tmp,
            root,
            model,
        };
        (fixture, log)
    }

    fn partition_dir(&self) -> PathBuf {
        self.root.join(format!("{TOPIC}-0"))
    }

    fn active_segment(&self) -> PathBuf {
        segment_files(&self.partition_dir(), "log").pop().unwrap()
    }

    /// Reopens the log directory and the log; `clean` says what the log
    /// directory is expected to have recorded.
    fn reopen(&self, clean: bool) -> PartitionLog {
        let dir = LogDir::open(&self.root).unwrap();
        assert_eq!(dir.was_clean_shutdown(), clean);
        dir.open_log(TOPIC, 0, small_segments(), 0).unwrap()
    }
}

fn close_cleanly(root: &Path, log: PartitionLog) {
    log.close().unwrap();
    LogDir::open(root).unwrap().mark_clean_shutdown();
}

fn append_garbage(path: &Path, garbage: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(garbage)
        .unwrap();
}

#[test]
fn torn_last_batch_is_cut_off() {
    let (mut fixture, log) = Fixture::new();
    drop(log); // crash: no close, no clean marker
    let active = fixture.active_segment();
    let len = fs::metadata(&active).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let mut log = fixture.reopen(false);
    let last = fixture.model.batches.last().unwrap().base_offset;
    fixture.model.truncate_to(last);
    assert_log_matches(&log, &fixture.model);
    let last_start = batch_positions(&active).last().unwrap().0;
    assert_eq!(
        fs::metadata(&active).unwrap().len(),
        last_start + fixture.model.batches.last().unwrap().bytes.len() as u64
    );
    assert_eq!(log.durability().synced_offset(), last);
    // The lost offset is handed out again: it was never acknowledged as written.
    append(&mut log, &mut fixture.model, batch(0, 2, 5, 0xee), 0);
    assert_log_matches(&log, &fixture.model);
}

/// Flips one byte inside the CRC-covered part of the batch at `position`.
fn flip_byte_in_batch(path: &Path, position: u64, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize + at] ^= 0x40;
    fs::write(path, &bytes).unwrap();
}

#[test]
fn a_corrupt_batch_is_cut_out_and_the_batches_after_it_kept() {
    let (probe, log) = Fixture::new();
    drop(log);
    let batches = batch_positions(&probe.active_segment()).len();
    assert!(batches >= 4);
    // Every batch of the active segment but its last, which is the tail.
    for k in 0..batches - 1 {
        let (mut fixture, log) = Fixture::new();
        drop(log); // crash: no close, no clean marker
        let active = fixture.active_segment();
        let positions = batch_positions(&active);
        let file_len = fs::metadata(&active).unwrap().len();
        let (position, base_offset) = positions[k];
        let damaged = fixture
            .model
            .batches
            .iter()
            .position(|b| b.base_offset == base_offset)
            .unwrap();
        let lost = fixture.model.batches.remove(damaged);
        flip_byte_in_batch(&active, position, 70);
        let check = verify_segment(&active, &Throttle::unlimited()).unwrap();
        assert_eq!(
            check.damaged,
            vec![DamagedRange {
                bytes: position..position + lost.bytes.len() as u64,
                first_lost_offset: lost.base_offset,
                resumes_at: Some(lost.last_offset + 1),
            }]
        );
        assert!(check.can_skip_damage());

        let mut log = fixture.reopen(false);
        assert_log_matches(&log, &fixture.model);
        assert_eq!(
            fs::metadata(&active).unwrap().len(),
            file_len - lost.bytes.len() as u64,
            "batch {k}: exactly the damaged batch is cut out of the file"
        );
        // The gap is exactly the lost batch's offsets: a read inside it
        // starts at the next batch.
        let next = &fixture.model.batches[damaged];
        for offset in lost.base_offset..=lost.last_offset {
            let read = log.read(offset, 0, i64::MAX).unwrap();
            assert_eq!(read.first_offset, Some(next.base_offset));
        }
        assert!(
            batch_positions(&active).len() == positions.len() - 1,
            "the repaired file holds whole batches only"
        );
        // Appends continue at the old end, and the repair survives both
        // kinds of restart.
        append(&mut log, &mut fixture.model, batch(0, 2, 5, 0xee), 0);
        drop(log);
        assert_log_matches(&fixture.reopen(false), &fixture.model);
        close_cleanly(&fixture.root, fixture.reopen(false));
        assert_log_matches(&fixture.reopen(true), &fixture.model);
    }
}

#[test]
fn a_corrupt_last_batch_is_a_torn_tail() {
    let (mut fixture, log) = Fixture::new();
    drop(log);
    let active = fixture.active_segment();
    let (position, base_offset) = *batch_positions(&active).last().unwrap();
    flip_byte_in_batch(&active, position, 70);

    let log = fixture.reopen(false);
    fixture.model.truncate_to(base_offset);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(fs::metadata(&active).unwrap().len(), position);
}

#[test]
fn a_corrupt_batch_before_a_torn_tail_truncates_at_the_corruption() {
    // Batches after the damage are kept only when they run to the end of
    // the file: before a torn tail nothing proves they are not stale bytes.
    let (mut fixture, log) = Fixture::new();
    drop(log);
    let active = fixture.active_segment();
    let positions = batch_positions(&active);
    let (position, base_offset) = positions[1];
    flip_byte_in_batch(&active, position, 70);
    let len = fs::metadata(&active).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let log = fixture.reopen(false);
    fixture.model.truncate_to(base_offset);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(fs::metadata(&active).unwrap().len(), position);
}

#[test]
fn a_valid_looking_batch_in_a_garbage_tail_is_not_kept() {
    let (fixture, log) = Fixture::new();
    drop(log);
    let active = fixture.active_segment();
    let len = fs::metadata(&active).unwrap().len();
    let end = fixture.model.log_end_offset();
    // Garbage, then a CRC-valid batch ending the file: an older batch with
    // a base offset past the log end (the base offset is outside the CRC).
    let mut tail = vec![0xab; 300];
    let mut stale = fixture.model.batches[0].bytes.clone();
    stale[..8].copy_from_slice(&(end + 10_000).to_be_bytes());
    tail.extend_from_slice(&stale);
    append_garbage(&active, &tail);
    // Its offsets would leave a gap larger than the garbage before it.
    let log = fixture.reopen(false);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(fs::metadata(&active).unwrap().len(), len);
}

#[test]
fn corrupt_batch_in_an_older_unsynced_segment_keeps_the_rest_of_the_log() {
    let (mut fixture, log) = Fixture::new();
    drop(log);
    // Without a recovery point everything is scanned.
    fs::remove_file(fixture.partition_dir().join("recovery-point")).unwrap();
    let logs = segment_files(&fixture.partition_dir(), "log");
    let second = &logs[1];
    let (position, base_offset) = batch_positions(second)[1];
    flip_byte_in_batch(second, position, 65);

    let log = fixture.reopen(false);
    let damaged = fixture
        .model
        .batches
        .iter()
        .position(|b| b.base_offset == base_offset)
        .unwrap();
    fixture.model.batches.remove(damaged);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(log.segment_count(), logs.len());
}

#[test]
fn a_corrupt_last_batch_of_an_older_segment_leaves_a_gap_before_the_next() {
    // A closed segment was synced before the next one was written, so its
    // damaged tail is no torn write: the later segments stay.
    let (mut fixture, log) = Fixture::new();
    drop(log);
    fs::remove_file(fixture.partition_dir().join("recovery-point")).unwrap();
    let logs = segment_files(&fixture.partition_dir(), "log");
    let (position, base_offset) = *batch_positions(&logs[1]).last().unwrap();
    flip_byte_in_batch(&logs[1], position, 65);

    let log = fixture.reopen(false);
    let damaged = fixture
        .model
        .batches
        .iter()
        .position(|b| b.base_offset == base_offset)
        .unwrap();
    fixture.model.batches.remove(damaged);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(log.segment_count(), logs.len());
    assert_eq!(fs::metadata(&logs[1]).unwrap().len(), position);
}

#[test]
fn segments_below_the_recovery_point_are_trusted() {
    let (fixture, log) = Fixture::new();
    drop(log);
    // Damage an old segment after its roll moved the recovery point past it:
    // an unclean restart does not scan it (that is the point of the checkpoint).
    let first = &segment_files(&fixture.partition_dir(), "log")[0];
    let mut bytes = fs::read(first).unwrap();
    bytes[100] ^= 1;
    fs::write(first, &bytes).unwrap();
    let log = fixture.reopen(false);
    assert_eq!(log.log_end_offset(), fixture.model.log_end_offset());
}

#[test]
fn garbage_after_the_last_batch_is_removed_after_a_crash() {
    let (mut fixture, log) = Fixture::new();
    drop(log);
    let active = fixture.active_segment();
    let len = fs::metadata(&active).unwrap().len();
    append_garbage(&active, &[0xab; 300]);

    let mut log = fixture.reopen(false);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(fs::metadata(&active).unwrap().len(), len);
    append(&mut log, &mut fixture.model, batch(0, 1, 5, 1), 0);
    assert_log_matches(&log, &fixture.model);
}

#[test]
fn garbage_after_the_last_batch_is_caught_even_after_a_clean_shutdown() {
    let (mut fixture, log) = Fixture::new();
    close_cleanly(&fixture.root, log);
    let active = fixture.active_segment();
    let len = fs::metadata(&active).unwrap().len();
    // Looks like the start of a batch header, then stops.
    let mut garbage = fixture.model.batches[0].bytes[..40].to_vec();
    garbage[0] = 0x7f;
    append_garbage(&active, &garbage);

    let mut log = fixture.reopen(true);
    assert_log_matches(&log, &fixture.model);
    assert_eq!(fs::metadata(&active).unwrap().len(), len);
    append(&mut log, &mut fixture.model, batch(0, 1, 5, 1), 0);
    assert_log_matches(&log, &fixture.model);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let (fixture, log) = Fixture::new();
    let expected_max = log.max_timestamp_and_offset();
    close_cleanly(&fixture.root, log);
    let dir = fixture.partition_dir();
    let indexes = segment_files(&dir, "index");
    let time_indexes = segment_files(&dir, "timeindex");
    let originals: Vec<Vec<u8>> = indexes
        .iter()
        .chain(&time_indexes)
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert!(originals.iter().all(|bytes| !bytes.is_empty()));

    fs::remove_file(&indexes[0]).unwrap();
    fs::remove_file(&time_indexes[0]).unwrap();
    // Not a whole number of entries.
    fs::write(&indexes[1], &originals[1][..originals[1].len() - 3]).unwrap();
    fs::write(&time_indexes[1], b"0123456789abc").unwrap();
    // Whole entries, but out of order.
    let mut swapped = originals[2][8..16].to_vec();
    swapped.extend_from_slice(&originals[2][..8]);
    fs::write(&indexes[2], &swapped).unwrap();
    // Pointing beyond the segment's offsets.
    let mut beyond = originals[indexes.len() + 2].clone();
    let last = beyond.len() - 4;
    beyond[last..].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(&time_indexes[2], &beyond).unwrap();

    let log = fixture.reopen(true);
    assert_log_matches(&log, &fixture.model);
    let rebuilt: Vec<Vec<u8>> = indexes
        .iter()
        .chain(&time_indexes)
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(
        rebuilt, originals,
        "rebuilt indexes equal the ones written at roll"
    );
    assert_eq!(log.max_timestamp_and_offset(), expected_max);
    for batch in &fixture.model.batches {
        let found = log.offset_for_timestamp(batch.max_timestamp, 0).unwrap();
        assert_eq!(found, Some((batch.max_timestamp, batch.base_offset)));
    }
}

#[test]
fn clean_shutdown_marker_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LogDir::open(tmp.path()).unwrap();
    assert!(!dir.was_clean_shutdown());
    dir.mark_clean_shutdown();
    let dir = LogDir::open(tmp.path()).unwrap();
    assert!(dir.was_clean_shutdown());
    let dir = LogDir::open(tmp.path()).unwrap();
    assert!(!dir.was_clean_shutdown(), "the marker is consumed by open");
}

#[test]
fn partitions_are_listed_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LogDir::open(tmp.path()).unwrap();
    for (topic, partition) in [("a-b", 0), ("a-b", 11), ("c", 2)] {
        dir.open_log(topic, partition, small_segments(), 0).unwrap();
    }
    fs::create_dir(tmp.path().join("not-a-partition")).unwrap();
    fs::create_dir(tmp.path().join("c-07")).unwrap();
    fs::write(tmp.path().join("x-1"), b"a file").unwrap();
    assert_eq!(
        dir.existing_partitions().unwrap(),
        vec![("a-b".into(), 0), ("a-b".into(), 11), ("c".into(), 2)]
    );
    dir.delete_log("a-b", 11).unwrap();
    assert_eq!(dir.existing_partitions().unwrap().len(), 2);
    assert!(dir.open_log("../escape", 0, small_segments(), 0).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any single flipped byte in the CRC-covered part of a batch that is
    /// not the last costs exactly that batch.
    #[test]
    fn any_flip_inside_a_batch_costs_only_that_batch(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let (mut fixture, log) = Fixture::new();
        drop(log);
        let active = fixture.active_segment();
        let positions = batch_positions(&active);
        let (position, base_offset) = positions[pick.index(positions.len() - 1)];
        let damaged = fixture
            .model
            .batches
            .iter()
            .position(|b| b.base_offset == base_offset)
            .unwrap();
        let len = fixture.model.batches[damaged].bytes.len();
        // From the CRC field on (the base offset, length and leader epoch
        // before it are not covered by the CRC).
        let flip = 17 + at.index(len - 17);
        let mut bytes = fs::read(&active).unwrap();
        bytes[position as usize + flip] ^= mask;
        fs::write(&active, &bytes).unwrap();

        let log = fixture.reopen(false);
        fixture.model.batches.remove(damaged);
        assert_log_matches(&log, &fixture.model);
    }
}
