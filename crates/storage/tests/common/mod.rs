//! Helpers shared by the integration tests: building batches and an
//! in-memory model of what the log must contain.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};

use sluice_protocol::batch::{build_uncompressed_batch, BatchHeader, BatchIter};
use sluice_storage::{LogConfig, PartitionLog};

/// A v2 batch of `records` records whose values are `payload_len` copies of `fill`.
pub(crate) fn batch(base_timestamp: i64, records: usize, payload_len: usize, fill: u8) -> Vec<u8> {
    let payload = vec![fill; payload_len];
    let records: Vec<_> = (0..records).map(|_| (None, Some(&payload[..]))).collect();
    build_uncompressed_batch(base_timestamp, &records).to_vec()
}

/// A batch as the log must hold it (offsets assigned, headers patched).
#[derive(Debug, Clone)]
pub(crate) struct ModelBatch {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) bytes: Vec<u8>,
}

/// What the log must contain: its batches, in order, with dense offsets.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) batches: Vec<ModelBatch>,
}

impl Model {
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.last_offset + 1)
    }

    /// Records the batches of a buffer that `append` has just patched.
    pub(crate) fn appended(&mut self, patched: &[u8]) {
        for batch in BatchIter::new(patched) {
            let (header, bytes) = batch.unwrap();
            assert_eq!(header.base_offset(), self.log_end_offset(), "dense offsets");
            self.batches.push(ModelBatch {
                base_offset: header.base_offset(),
                last_offset: header.last_offset(),
                max_timestamp: header.max_timestamp(),
                bytes: bytes.to_vec(),
            });
        }
    }

    /// Drops everything from `offset` on; it must be a batch boundary.
    pub(crate) fn truncate_to(&mut self, offset: i64) {
        let keep = self.batches.partition_point(|b| b.base_offset < offset);
        assert_eq!(
            self.batches[..keep].last().map_or(0, |b| b.last_offset + 1),
            offset,
            "the log was cut inside a batch"
        );
        self.batches.truncate(keep);
    }

    /// Concatenated bytes of all batches.
    pub(crate) fn all_bytes(&self) -> Vec<u8> {
        self.batches.iter().flat_map(|b| b.bytes.clone()).collect()
    }
}

/// Appends `bytes` and records the result in the model.
pub(crate) fn append(log: &mut PartitionLog, model: &mut Model, mut bytes: Vec<u8>, now_ms: i64) {
    let info = log.append(&mut bytes, 3, None, now_ms).unwrap();
    assert_eq!(info.first_offset, model.log_end_offset());
    model.appended(&bytes);
    assert_eq!(info.last_offset + 1, model.log_end_offset());
    assert_eq!(log.log_end_offset(), model.log_end_offset());
}

/// Every batch of the log, read front to back with small reads.
pub(crate) fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1, i64::MAX).unwrap();
        let header = BatchHeader::parse(&read.data).unwrap();
        header.verify().unwrap();
        assert_eq!(header.total_len(), read.data.len());
        out.extend_from_slice(&read.data);
        offset = header.last_offset() + 1;
    }
    out
}

/// Asserts that the log holds exactly the model's batches, and that a read
/// at every offset starts with the batch containing it.
pub(crate) fn assert_log_matches(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_end_offset(), model.log_end_offset());
    assert_eq!(read_all(log), model.all_bytes());
    for batch in &model.batches {
        for offset in [batch.base_offset, batch.last_offset] {
            let read = log.read(offset, 0, i64::MAX).unwrap();
            assert_eq!(read.first_offset, Some(batch.base_offset));
            assert_eq!(&read.data[..], &batch.bytes[..]);
        }
    }
}

pub(crate) fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// Segment files with `suffix` in a partition directory, by base offset.
pub(crate) fn segment_files(partition_dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

/// Base offsets of the segments in a partition directory.
pub(crate) fn segment_bases(partition_dir: &Path) -> Vec<i64> {
    segment_files(partition_dir, "log")
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

/// (byte position, base offset) of every batch in a segment file.
pub(crate) fn batch_positions(log_file: &Path) -> Vec<(u64, i64)> {
    let bytes = fs::read(log_file).unwrap();
    let mut position = 0;
    let mut out = Vec::new();
    for batch in BatchIter::new(&bytes) {
        let (header, data) = batch.unwrap();
        out.push((position, header.base_offset()));
        position += data.len() as u64;
    }
    out
}
