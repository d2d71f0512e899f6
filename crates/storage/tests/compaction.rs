//! Log compaction against a model: random keyed appends (with tombstones and
//! every codec) over many rolled segments, cleaning passes, reopens, and
//! crashes at every step of the segment swap.

mod common;

use std::collections::HashMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::batch::{BatchHeader, BatchIter};
use sluice_protocol::compression::{decode_batches, encode_batch, plain_record};
use sluice_protocol::kafka_protocol::records::Compression;
use sluice_storage::{
    crash_at, CleanerConfig, CrashPoint, LogConfig, LogDir, PartitionLog, Throttle,
};

const TOPIC: &str = "compacted";
const RETENTION_MS: i64 = 10_000;

type Value = Option<Vec<u8>>;

/// One record as written: offset, key, value (`None`: tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    offset: i64,
    key: Vec<u8>,
    value: Value,
}

fn keyed_batch(timestamp: i64, records: &[(Vec<u8>, Value)], codec: Compression) -> Vec<u8> {
    let records: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            plain_record(
                i as i64,
                timestamp,
                Some(Bytes::copy_from_slice(key)),
                value.as_deref().map(Bytes::copy_from_slice),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    encode_batch(&mut buf, &records, codec).unwrap();
    buf.to_vec()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn cleaner_config() -> CleanerConfig {
    CleanerConfig {
        delete_retention_ms: RETENTION_MS,
        min_cleanable_dirty_ratio: 0.0,
        ..CleanerConfig::default()
    }
}

fn open(dir: &Path) -> PartitionLog {
    LogDir::open(dir)
        .unwrap()
        .open_log(TOPIC, 0, config(), 0)
        .unwrap()
}

/// Every record readable from the log start, checking batch CRCs and that
/// offsets only grow.
fn read_records(log: &PartitionLog) -> Vec<Written> {
    let mut out: Vec<Written> = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, 4096, i64::MAX).unwrap().data;
        assert!(!data.is_empty(), "nothing readable at {offset}");
        for batch in BatchIter::new(&data) {
            let (header, bytes) = batch.unwrap();
            header.verify().unwrap();
            offset = header.last_offset() + 1;
            for record in decode_batches(Bytes::copy_from_slice(bytes)).unwrap() {
                assert!(out.last().is_none_or(|w| w.offset < record.offset));
                assert!(record.offset <= header.last_offset());
                out.push(Written {
                    offset: record.offset,
                    key: record.key.unwrap().to_vec(),
                    value: record.value.map(|v| v.to_vec()),
                });
            }
        }
    }
    out
}

/// When a pass first kept each tombstone (by offset): its delete horizon
/// is that time plus `delete.retention.ms`.
type Stamps = HashMap<i64, i64>;

/// What the log must hold after passes that cleaned everything below
/// `cleaned_to`: there, each key's last record, without the tombstones
/// whose horizon had passed by `now`; from there on, everything written.
fn expected(history: &[Written], cleaned_to: i64, stamps: &Stamps, now: i64) -> Vec<Written> {
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    for w in history.iter().filter(|w| w.offset < cleaned_to) {
        latest.insert(&w.key, w.offset);
    }
    let expired = |w: &Written| {
        w.value.is_none()
            && stamps
                .get(&w.offset)
                .is_some_and(|t| t + RETENTION_MS <= now)
    };
    history
        .iter()
        .filter(|w| w.offset >= cleaned_to || (latest[&w.key[..]] == w.offset && !expired(w)))
        .cloned()
        .collect()
}

/// Notes the tombstones a pass at `now` kept for the first time.
fn stamp(stamps: &mut Stamps, kept: &[Written], cleaned_to: i64, now: i64) {
    for w in kept
        .iter()
        .filter(|w| w.offset < cleaned_to && w.value.is_none())
    {
        stamps.entry(w.offset).or_insert(now);
    }
}

/// Appends random keyed batches; returns them as written.
struct Writer {
    history: Vec<Written>,
}

impl Writer {
    fn append(
        &mut self,
        log: &mut PartitionLog,
        batch: &[(Vec<u8>, Value)],
        codec: Compression,
        now: i64,
    ) {
        let mut bytes = keyed_batch(now, batch, codec);
        let info = log.append(&mut bytes, 0, None, now).unwrap();
        for (i, (key, value)) in batch.iter().enumerate() {
            self.history.push(Written {
                offset: info.first_offset + i as i64,
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn record_strategy() -> impl Strategy<Value = (Vec<u8>, Value)> {
    (0..40u8, prop::bool::weighted(0.15), 1..60usize, any::<u8>()).prop_map(
        |(key, tombstone, len, fill)| {
            let value = (!tombstone).then(|| vec![fill; len]);
            (format!("key-{key}").into_bytes(), value)
        },
    )
}

/// (records, codec index, clean after this batch?, reopen after it?)
type Step = (Vec<(Vec<u8>, Value)>, usize, bool, bool);

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop::collection::vec(record_strategy(), 1..6),
            0..CODECS.len(),
            prop::bool::weighted(0.08),
            prop::bool::weighted(0.03),
        ),
        40..160,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn cleaning_keeps_exactly_the_latest_record_per_key(steps in steps()) {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        let mut writer = Writer { history: Vec::new() };
        let mut cleaned_to = 0;
        let mut stamps = Stamps::new();
        let throttle = Throttle::unlimited();
        let mut now = 1_000;
        for (records, codec, clean, reopen) in steps {
            now += 1;
            writer.append(&mut log, &records, CODECS[codec], now);
            if clean {
                let active_base = *log.segment_base_offsets().last().unwrap();
                let active_before = log.read(active_base, usize::MAX, i64::MAX).unwrap();
                if let Some(stats) = log.clean(&cleaner_config(), now, i64::MAX, &throttle).unwrap() {
                    cleaned_to = stats.cleaned_up_to;
                    prop_assert_eq!(cleaned_to, active_base, "everything closed is cleaned");
                }
                let active_after = log.read(active_base, usize::MAX, i64::MAX).unwrap();
                prop_assert_eq!(active_before, active_after, "the active segment is untouched");
                let want = expected(&writer.history, cleaned_to, &stamps, now);
                prop_assert_eq!(read_records(&log), want.clone());
                stamp(&mut stamps, &want, cleaned_to, now);
            }
            if reopen {
                log.close().unwrap();
                LogDir::open(tmp.path()).unwrap().mark_clean_shutdown();
                log = open(tmp.path());
            }
        }
        prop_assert_eq!(read_records(&log), expected(&writer.history, cleaned_to, &stamps, now));

        // A last pass stamps every tombstone still unstamped; each one stays
        // until its delete horizon and goes in the first pass after it.
        log.roll_active().unwrap();
        if let Some(stats) = log.clean(&cleaner_config(), now, i64::MAX, &throttle).unwrap() {
            cleaned_to = stats.cleaned_up_to;
        }
        let want = expected(&writer.history, cleaned_to, &stamps, now);
        prop_assert_eq!(read_records(&log), want.clone());
        stamp(&mut stamps, &want, cleaned_to, now);
        let horizon = now + RETENTION_MS;
        for at in [horizon - 1, horizon] {
            let want = expected(&writer.history, cleaned_to, &stamps, at);
            let due = log.cleanable_range(&cleaner_config(), at, cleaned_to).unwrap();
            let has_expired = read_records(&log).len() != want.len();
            prop_assert_eq!(due.tombstones_expired, has_expired, "at {}", at);
            log.clean(&cleaner_config(), at, cleaned_to, &throttle).unwrap();
            prop_assert_eq!(read_records(&log), want, "at {}", at);
        }
        prop_assert!(!read_records(&log).iter().any(|w| w.offset < cleaned_to && w.value.is_none()));
        // The same after a reopen that is not clean.
        drop(log);
        let log = open(tmp.path());
        prop_assert_eq!(read_records(&log), expected(&writer.history, cleaned_to, &stamps, horizon));
    }
}

/// A log of `rounds` rounds over `keys` keys, each round ending with a
/// roll; every fifth key is deleted in the last round.
fn rounds_of_updates(
    log: &mut PartitionLog,
    keys: usize,
    rounds: usize,
    first_round: usize,
) -> Writer {
    let mut writer = Writer {
        history: Vec::new(),
    };
    for round in first_round..first_round + rounds {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(4) {
            let records: Vec<_> = chunk
                .iter()
                .map(|k| {
                    let value = (round + 1 < first_round + rounds || k % 5 != 0)
                        .then(|| format!("{k}@{round}").into_bytes());
                    (format!("k{k:03}").into_bytes(), value)
                })
                .collect();
            writer.append(
                log,
                &records,
                CODECS[round % CODECS.len()],
                1_000 + round as i64,
            );
        }
        log.roll_active().unwrap();
    }
    writer
}

#[test]
fn a_crash_at_any_step_of_a_pass_loses_no_latest_value() {
    for point in [
        CrashPoint::AfterCleaned,
        CrashPoint::AfterSwapRename,
        CrashPoint::AfterDeletingAnOriginal,
        CrashPoint::BeforeCheckpoint,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        let mut history = rounds_of_updates(&mut log, 60, 4, 0).history;
        let throttle = Throttle::unlimited();
        // A first pass shrinks the segments, so the next one merges them.
        log.clean(&cleaner_config(), 2_000, i64::MAX, &throttle)
            .unwrap()
            .unwrap();
        history.extend(rounds_of_updates(&mut log, 60, 3, 4).history);
        let end = *log.segment_base_offsets().last().unwrap();
        let segments_before = log.segment_count();

        crash_at(Some(point));
        let crashed = log.clean(&cleaner_config(), 2_000, i64::MAX, &throttle);
        crash_at(None);
        assert!(crashed.is_err(), "{point:?} was reached");
        drop(log); // no close: the next open is unclean

        let mut log = open(tmp.path());
        let dir = tmp.path().join(format!("{TOPIC}-0"));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{point:?}: {leftovers:?}");
        let records = read_records(&log);
        // Whatever the crash left: only records as written, at their
        // offsets, and every key's latest one.
        let mut latest: HashMap<&[u8], &Written> = HashMap::new();
        for w in &history {
            latest.insert(&w.key, w);
        }
        for r in &records {
            assert!(
                history.contains(r),
                "{point:?}: {r:?} was never written there"
            );
        }
        for w in latest.values() {
            assert!(records.contains(w), "{point:?}: lost {w:?}");
        }
        if point != CrashPoint::AfterCleaned {
            assert!(
                log.segment_count() < segments_before,
                "{point:?}: the swap completed"
            );
        }
        // And the next pass finishes the job.
        log.clean(&cleaner_config(), 2_000, i64::MAX, &throttle)
            .unwrap();
        assert_eq!(
            read_records(&log),
            expected(&history, end, &Stamps::new(), 0),
            "{point:?}"
        );
    }
}

#[test]
fn dirty_ratio_follows_the_checkpoint_across_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    rounds_of_updates(&mut log, 40, 3, 0);
    let config = CleanerConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..cleaner_config()
    };
    let range = log.cleanable_range(&config, 2_000, i64::MAX).unwrap();
    assert_eq!((range.first_dirty_offset, range.clean_bytes), (0, 0));
    assert_eq!(range.dirty_ratio(), 1.0);
    let end = range.end_offset;
    let stats = log
        .clean(&config, 2_000, i64::MAX, &Throttle::unlimited())
        .unwrap()
        .unwrap();
    assert_eq!(stats.cleaned_up_to, end);
    assert!(stats.bytes_written < stats.bytes_read);
    assert_eq!(stats.records_removed, 80, "two of three rounds");
    log.close().unwrap();
    LogDir::open(tmp.path()).unwrap().mark_clean_shutdown();
    let mut log = open(tmp.path());
    let range = log.cleanable_range(&config, 2_000, i64::MAX).unwrap();
    assert_eq!((range.first_dirty_offset, range.dirty_bytes), (end, 0));
    assert!(range.clean_bytes > 0);
    assert!(!range.needs_cleaning(&config));
    // One more round: dirty / (clean + dirty).
    rounds_of_updates(&mut log, 40, 1, 3);
    let range = log.cleanable_range(&config, 2_000, i64::MAX).unwrap();
    let ratio = range.dirty_bytes as f64 / (range.clean_bytes + range.dirty_bytes) as f64;
    assert_eq!(range.dirty_ratio(), ratio);
    assert!(range.dirty_bytes > 0);
}

#[test]
fn compaction_lags_and_the_caller_bound_limit_the_cleanable_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    // Round r is written at time 1_000 + r, one segment set per round.
    rounds_of_updates(&mut log, 8, 4, 0);
    let bases = log.segment_base_offsets();
    let lagged = CleanerConfig {
        min_compaction_lag_ms: 100,
        ..cleaner_config()
    };
    // At 1_101 only rounds 0 and 1 are older than the lag.
    let range = log.cleanable_range(&lagged, 1_101, i64::MAX).unwrap();
    assert_eq!(range.end_offset, bases[2]);
    let range = log
        .cleanable_range(&cleaner_config(), 1_102, bases[1] + 1)
        .unwrap();
    assert_eq!(range.end_offset, bases[1], "whole segments below the bound");

    let reluctant = CleanerConfig {
        min_cleanable_dirty_ratio: 1.0,
        max_compaction_lag_ms: 500,
        ..cleaner_config()
    };
    log.clean(&cleaner_config(), 1_102, bases[1], &Throttle::unlimited())
        .unwrap()
        .unwrap();
    let range = log.cleanable_range(&reluctant, 1_400, i64::MAX).unwrap();
    assert!(
        !range.needs_cleaning(&reluctant),
        "ratio below 1, lag not exceeded"
    );
    let range = log.cleanable_range(&reluctant, 1_600, i64::MAX).unwrap();
    assert!(range.max_lag_exceeded && range.needs_cleaning(&reluctant));
}

#[test]
fn control_batches_and_keyless_records_follow_kafka() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    let mut marker = plain_record(
        0,
        5,
        Some(Bytes::from_static(b"k")),
        Some(Bytes::from_static(b"m")),
    );
    marker.control = true;
    let mut control = BytesMut::new();
    encode_batch(&mut control, &[marker], Compression::None).unwrap();
    let mut control = control.to_vec();
    assert!(BatchHeader::parse(&control).unwrap().is_control());
    log.append(&mut control, 0, None, 5).unwrap();
    let keyless = sluice_protocol::batch::build_uncompressed_batch(5, &[(None, Some(b"v"))]);
    log.append(&mut keyless.to_vec(), 0, None, 5).unwrap();
    log.append(
        &mut keyed_batch(
            5,
            &[(b"k".to_vec(), Some(b"v2".to_vec()))],
            Compression::None,
        ),
        0,
        None,
        5,
    )
    .unwrap();
    log.roll_active().unwrap();
    log.clean(&cleaner_config(), 10, i64::MAX, &Throttle::unlimited())
        .unwrap()
        .unwrap();
    let data = log.read(0, usize::MAX, i64::MAX).unwrap().data;
    let batches: Vec<_> = BatchIter::new(&data)
        .map(|b| {
            let (h, _) = b.unwrap();
            (h.base_offset(), h.is_control(), h.record_count())
        })
        .collect();
    // The control batch stays whole although a later record has its key;
    // the keyless record goes; the last batch stays.
    assert_eq!(batches, vec![(0, true, 1), (2, false, 1)]);
    assert!(BatchHeader::parse(&data).unwrap().verify().is_ok());
}

/// Cleaner throughput in MB/s of dirty log cleaned, printed; not an
/// assertion. Run it in release (see docs/PERFORMANCE.md):
/// `cargo test --release -p sluice-storage --test compaction -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; run explicitly in release"]
fn cleaner_throughput() {
    const KEYS: usize = 100_000;
    const VALUE_LEN: usize = 200;
    const RECORDS: usize = 1_000_000;
    for codec in [Compression::None, Compression::Lz4] {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = LogDir::open(tmp.path())
            .unwrap()
            .open_log(
                TOPIC,
                0,
                LogConfig {
                    segment_bytes: 64 << 20,
                    ..LogConfig::default()
                },
                0,
            )
            .unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            // xorshift: a fixed, cheap key sequence.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for chunk in 0..RECORDS / 100 {
            let records: Vec<_> = (0..100)
                .map(|i| {
                    let key = format!("key-{:06}", next() as usize % KEYS).into_bytes();
                    // Hex digits: compressible about as well as typical payloads.
                    let value: String = (0..VALUE_LEN / 16)
                        .map(|_| format!("{:016x}", next()))
                        .collect();
                    let value = format!("{chunk}-{i}-{value}").into_bytes();
                    (key, Some(value))
                })
                .collect();
            let mut bytes = keyed_batch(1_000, &records, codec);
            log.append(&mut bytes, 0, None, 1_000).unwrap();
        }
        log.roll_active().unwrap();
        let started = std::time::Instant::now();
        let stats = log
            .clean(&cleaner_config(), 2_000, i64::MAX, &Throttle::unlimited())
            .unwrap()
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "cleaner {codec:?}: {:.1} MB dirty in {seconds:.2} s = {:.1} MB/s, {:.2}M records/s \
             ({} records read, {} removed, {:.1} MB written)",
            stats.dirty_bytes as f64 / 1e6,
            stats.dirty_bytes as f64 / 1e6 / seconds,
            stats.records_read as f64 / 1e6 / seconds,
            stats.records_read,
            stats.records_removed,
            stats.bytes_written as f64 / 1e6,
        );
    }
}

#[test]
fn a_cleaned_group_whose_segments_went_meanwhile_is_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path());
    let history = rounds_of_updates(&mut log, 40, 3, 0).history;
    let throttle = Throttle::unlimited();
    let mut job = log
        .start_cleaning(&cleaner_config(), 2_000, i64::MAX)
        .unwrap()
        .unwrap();
    let first = job.clean_next(&throttle).unwrap().unwrap();
    // Retention (or DeleteRecords) takes the oldest segment while the job
    // works without the log.
    let bases = log.segment_base_offsets();
    log.advance_log_start(bases[1]).unwrap();
    assert!(!log.install_cleaned(first).unwrap());
    while let Some(cleaned) = job.clean_next(&throttle).unwrap() {
        assert!(log.install_cleaned(cleaned).unwrap());
    }
    log.finish_cleaning(job).unwrap();
    let dir = tmp.path().join(format!("{TOPIC}-0"));
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".cleaned")));
    let end = *log.segment_base_offsets().last().unwrap();
    let surviving: Vec<_> = history
        .into_iter()
        .filter(|w| w.offset >= bases[1])
        .collect();
    assert_eq!(
        read_records(&log),
        expected(&surviving, end, &Stamps::new(), 0)
    );
}
