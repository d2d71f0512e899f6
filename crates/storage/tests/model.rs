//! Property test: random appends, reads, syncs, clean reopens and crashes
//! that lose unsynced data, checked against an in-memory model.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use sluice_storage::{LogConfig, LogDir, PartitionLog, StorageError};

const TOPIC: &str = "model";

#[derive(Debug, Clone)]
enum Op {
    /// 1..=3 batches of (records, payload length, base timestamp) in one call.
    Append {
        batches: Vec<(usize, usize, i64)>,
        log_append_time: bool,
    },
    Read {
        offset_pick: u64,
        max_bytes: usize,
        max_offset_pick: Option<u64>,
    },
    OffsetForTimestamp(i64),
    Sync,
    ReopenCleanly,
    /// Drops the log without closing it and cuts the active segment at a
    /// random point at or after the synced data, maybe adding garbage.
    Crash {
        cut_pick: u64,
        garbage: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec((1usize..=5, 0usize..120, 0i64..1_000), 1..=3),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(batches, log_append_time)| Op::Append { batches, log_append_time }),
        3 => (any::<u64>(), 0usize..1_500, prop::option::of(any::<u64>())).prop_map(
            |(offset_pick, max_bytes, max_offset_pick)| Op::Read { offset_pick, max_bytes, max_offset_pick }
        ),
        1 => (-10i64..2_000).prop_map(Op::OffsetForTimestamp),
        1 => Just(Op::Sync),
        1 => Just(Op::ReopenCleanly),
        1 => (any::<u64>(), prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(cut_pick, garbage)| Op::Crash { cut_pick, garbage }),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (200u64..2_000, 0u64..600).prop_map(|(segment_bytes, index_interval_bytes)| LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    })
}

/// What `read` must return according to the model and the segment layout
/// (reads do not cross segments).
fn expected_read(
    model: &Model,
    segment_bases: &[i64],
    offset: i64,
    max_bytes: usize,
    max_offset: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    if offset >= max_offset {
        return out;
    }
    let first = model.batches.partition_point(|b| b.last_offset < offset);
    for (i, batch) in model.batches[first..].iter().enumerate() {
        let starts_segment = segment_bases.contains(&batch.base_offset);
        let fits = out.len() + batch.bytes.len() <= max_bytes;
        if batch.base_offset >= max_offset || (i > 0 && (starts_segment || !fits)) {
            break;
        }
        out.extend_from_slice(&batch.bytes);
    }
    out
}

/// Cuts the active segment somewhere at or after the first batch at or above
/// `synced`, then appends `garbage`.
fn lose_unsynced_tail(partition_dir: &Path, synced: i64, cut_pick: u64, garbage: &[u8]) {
    let bases = segment_bases(partition_dir);
    let active_base = *bases.last().unwrap();
    assert!(
        active_base <= synced,
        "a roll syncs the segments it leaves behind"
    );
    let active = segment_files(partition_dir, "log").pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    let synced_position = batch_positions(&active)
        .into_iter()
        .find(|&(_, base)| base >= synced)
        .map_or(len, |(position, _)| position);
    let cut = synced_position + cut_pick % (len - synced_position + 1);
    let file = OpenOptions::new().write(true).open(&active).unwrap();
    file.set_len(cut).unwrap();
    drop(file);
    OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(garbage)
        .unwrap();
}

fn open(root: &Path, config: LogConfig, expect_clean: bool, now_ms: i64) -> PartitionLog {
    let dir = LogDir::open(root).unwrap();
    assert_eq!(dir.was_clean_shutdown(), expect_clean);
    dir.open_log(TOPIC, 0, config, now_ms).unwrap()
}

fn run(config: LogConfig, ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let partition_dir = root.join(format!("{TOPIC}-0"));
    let mut log = open(root, config, false, 0);
    let mut model = Model::default();
    let mut now_ms = 10_000;

    for op in ops {
        now_ms += 1;
        match op {
            Op::Append {
                batches,
                log_append_time,
            } => {
                let mut bytes: Vec<u8> = batches
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &(records, len, ts))| batch(ts, records, len, i as u8))
                    .collect();
                let stamp = log_append_time.then_some(now_ms);
                let info = log.append(&mut bytes, 1, stamp, now_ms).unwrap();
                assert_eq!(info.first_offset, model.log_end_offset());
                model.appended(&bytes);
                assert_eq!(info.last_offset + 1, model.log_end_offset());
                assert_eq!(log.log_end_offset(), model.log_end_offset());
            }
            Op::Read {
                offset_pick,
                max_bytes,
                max_offset_pick,
            } => {
                let end = model.log_end_offset();
                // Mostly valid offsets, sometimes one past the end.
                let offset = (offset_pick % (end as u64 + 2)) as i64;
                let max_offset = max_offset_pick.map_or(end, |p| (p % (end as u64 + 1)) as i64);
                match log.read(offset, max_bytes, max_offset) {
                    Err(StorageError::OffsetOutOfRange { .. }) => assert!(offset > end),
                    Err(e) => panic!("read failed: {e}"),
                    Ok(read) => {
                        assert!(offset <= end);
                        let bases = segment_bases(&partition_dir);
                        let expected = expected_read(&model, &bases, offset, max_bytes, max_offset);
                        assert_eq!(
                            read.data.len(),
                            expected.len(),
                            "read({offset}, {max_bytes}, {max_offset})"
                        );
                        assert_eq!(&read.data[..], &expected[..]);
                    }
                }
            }
            Op::OffsetForTimestamp(ts) => {
                let expected = model
                    .batches
                    .iter()
                    .find(|b| b.max_timestamp >= ts)
                    .map(|b| (b.max_timestamp, b.base_offset));
                assert_eq!(
                    log.offset_for_timestamp(ts, 0).unwrap(),
                    expected,
                    "ts {ts}"
                );
            }
            Op::Sync => {
                let end = log.log_end_offset();
                assert_eq!(log.durability().sync_to(end).unwrap(), end);
                assert_eq!(log.unflushed_messages(), 0);
            }
            Op::ReopenCleanly => {
                log.close().unwrap();
                LogDir::open(root).unwrap().mark_clean_shutdown();
                log = open(root, config, true, now_ms);
                assert_log_matches(&log, &model);
            }
            Op::Crash { cut_pick, garbage } => {
                let synced = log.durability().synced_offset();
                drop(log);
                lose_unsynced_tail(&partition_dir, synced, cut_pick, &garbage);
                log = open(root, config, false, now_ms);
                let recovered = log.log_end_offset();
                assert!(
                    recovered >= synced,
                    "lost synced data: {recovered} < {synced}"
                );
                assert!(recovered <= model.log_end_offset());
                model.truncate_to(recovered);
                assert_log_matches(&log, &model);
                assert_eq!(log.durability().synced_offset(), recovered);
            }
        }
        let max = model
            .batches
            .iter()
            .fold(None, |best: Option<(i64, i64)>, b| match best {
                Some((ts, _)) if ts >= b.max_timestamp => best,
                _ => Some((b.max_timestamp, b.base_offset)),
            });
        assert_eq!(log.max_timestamp_and_offset(), max);
    }
    log.close().unwrap();
    let log = open(root, config, false, now_ms);
    assert_log_matches(&log, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_behaves_like_the_model(config in config(), ops in prop::collection::vec(op(), 1..60)) {
        run(config, ops);
    }
}
