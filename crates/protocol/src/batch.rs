//! A zero-copy view over Kafka v2 record batches (magic 2).
//!
//! The broker never decodes individual records on the produce/fetch path: it
//! reads header fields, checks the CRC32C and patches the base offset (and,
//! for LogAppendTime, the max timestamp plus CRC) in place. The layout:
//!
//! ```text
//! 0  baseOffset i64        8  batchLength i32     12 partitionLeaderEpoch i32
//! 16 magic i8              17 crc u32             21 attributes i16
//! 23 lastOffsetDelta i32   27 baseTimestamp i64   35 maxTimestamp i64
//! 43 producerId i64        51 producerEpoch i16   53 baseSequence i32
//! 57 recordCount i32       61 records...
//! ```
//! The CRC covers `attributes` to the end, so the base offset and the leader
//! epoch can be rewritten without recomputing it.

use bytes::{Bytes, BytesMut};

/// Size of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Attribute bits 0..2: the compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    #[error("record batch declares {count} records but lastOffsetDelta is {delta}")]
    InvalidRecordCount { count: i32, delta: i32 },
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
}

/// The compression codec of a batch (attribute bits 0..2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn from_id(id: i16) -> Result<Self, BatchError> {
        Ok(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }

    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// Kafka's name for the codec, as used by `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" | "uncompressed" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            _ => return None,
        })
    }
}

/// Read-only view of one v2 batch header. Cheap to construct: it only checks
/// that the slice is long enough and the magic is 2.
#[derive(Clone, Copy)]
pub struct BatchHeader<'a> {
    buf: &'a [u8],
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> BatchHeader<'a> {
    /// Parses the header of the batch at the start of `buf`. `buf` may hold
    /// more bytes than the batch; `total_len()` says how many belong to it.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let len = i32_at(buf, BATCH_LENGTH);
        if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(len));
        }
        Ok(BatchHeader { buf })
    }

    /// Bytes this batch occupies, including the 12-byte offset/length prefix.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + i32_at(self.buf, BATCH_LENGTH) as usize
    }
    pub fn base_offset(&self) -> i64 {
        i64_at(self.buf, BASE_OFFSET)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        i32_at(self.buf, LEADER_EPOCH)
    }
    pub fn stored_crc(&self) -> u32 {
        i32_at(self.buf, CRC) as u32
    }
    pub fn attributes(&self) -> i16 {
        i16_at(self.buf, ATTRIBUTES)
    }
    pub fn codec(&self) -> Result<Codec, BatchError> {
        Codec::from_id(self.attributes() & COMPRESSION_MASK)
    }
    /// True when the batch uses LogAppendTime (attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32_at(self.buf, LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    pub fn base_timestamp(&self) -> i64 {
        i64_at(self.buf, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        i64_at(self.buf, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        i64_at(self.buf, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        i16_at(self.buf, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        i32_at(self.buf, BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        i32_at(self.buf, RECORD_COUNT)
    }

    /// Checks that the whole batch is present and its CRC32C matches.
    pub fn verify(&self) -> Result<(), BatchError> {
        let total = self.total_len();
        if self.buf.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: self.buf.len(),
            });
        }
        let computed = crc32c::crc32c(&self.buf[ATTRIBUTES..total]);
        let stored = self.stored_crc();
        if computed != stored {
            return Err(BatchError::CorruptCrc { stored, computed });
        }
        let count = self.record_count();
        let delta = self.last_offset_delta();
        // Compaction may leave fewer records than the offset span, never more.
        if count < 0 || delta < 0 || (count > 0 && count - 1 > delta) {
            return Err(BatchError::InvalidRecordCount { count, delta });
        }
        Ok(())
    }
}

/// Iterates over the batches in a record set, yielding `(header, bytes)`
/// for each whole batch. Stops with an error at the first malformed or
/// truncated batch.
pub struct BatchIter<'a> {
    rest: &'a [u8],
}

impl<'a> BatchIter<'a> {
    pub fn new(records: &'a [u8]) -> Self {
        BatchIter { rest: records }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader<'a>, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let header = match BatchHeader::parse(self.rest) {
            Ok(h) => h,
            Err(e) => {
                self.rest = &[];
                return Some(Err(e));
            }
        };
        let total = header.total_len();
        if self.rest.len() < total {
            let available = self.rest.len();
            self.rest = &[];
            return Some(Err(BatchError::Truncated {
                needed: total,
                available,
            }));
        }
        let (this, rest) = self.rest.split_at(total);
        self.rest = rest;
        Some(Ok((BatchHeader { buf: this }, this)))
    }
}

/// In-place edits of a batch that the broker owns (a copy in a `BytesMut`).
pub struct BatchMut<'a> {
    buf: &'a mut [u8],
}

impl<'a> BatchMut<'a> {
    /// `buf` must hold exactly one batch that already passed `verify`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        BatchMut { buf }
    }

    /// Rewrites the base offset; the CRC does not cover it.
    pub fn set_base_offset(&mut self, offset: i64) {
        self.buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    }

    /// Rewrites the partition leader epoch; the CRC does not cover it.
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.buf[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }

    /// Stamps LogAppendTime: sets the timestamp-type bit and the max
    /// timestamp, then recomputes the CRC (both fields are covered by it).
    pub fn set_log_append_time(&mut self, now_ms: i64) {
        let attrs = i16_at(self.buf, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        self.buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        self.buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES..]);
        self.buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A record's optional key and value, for [`build_uncompressed_batch`].
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds a v2 batch from already-encoded record bodies. Used by tests and by
/// tools that need a batch without going through a client.
pub fn build_uncompressed_batch(base_timestamp: i64, records: &[KeyValue<'_>]) -> Bytes {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            crate::compression::plain_record(
                i as i64,
                base_timestamp + i as i64,
                k.map(Bytes::copy_from_slice),
                v.map(Bytes::copy_from_slice),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding an uncompressed batch cannot fail");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_crc() {
        let batch =
            build_uncompressed_batch(1_000, &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))]);
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.total_len(), batch.len());
        assert_eq!(h.record_count(), 2);
        assert_eq!(h.last_offset_delta(), 1);
        assert_eq!(h.base_timestamp(), 1_000);
        assert_eq!(h.max_timestamp(), 1_001);
        assert_eq!(h.codec().unwrap(), Codec::None);
        h.verify().unwrap();
    }

    #[test]
    fn patching_base_offset_keeps_crc_valid() {
        let batch = build_uncompressed_batch(5, &[(None, Some(b"x"))]);
        let mut owned = batch.to_vec();
        BatchMut::new(&mut owned).set_base_offset(42);
        let h = BatchHeader::parse(&owned).unwrap();
        assert_eq!(h.base_offset(), 42);
        h.verify().unwrap();
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let batch = build_uncompressed_batch(5, &[(None, Some(b"x"))]);
        let mut owned = batch.to_vec();
        BatchMut::new(&mut owned).set_log_append_time(99);
        let h = BatchHeader::parse(&owned).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp(), 99);
        h.verify().unwrap();
    }

    #[test]
    fn flipped_bit_is_detected() {
        let batch = build_uncompressed_batch(5, &[(None, Some(b"hello"))]);
        let mut owned = batch.to_vec();
        let last = owned.len() - 1;
        owned[last] ^= 1;
        assert!(matches!(
            BatchHeader::parse(&owned).unwrap().verify(),
            Err(BatchError::CorruptCrc { .. })
        ));
    }

    #[test]
    fn iterator_reports_truncation() {
        let batch = build_uncompressed_batch(5, &[(None, Some(b"hello"))]);
        let mut two = batch.to_vec();
        two.extend_from_slice(&batch[..batch.len() - 3]);
        let results: Vec<_> = BatchIter::new(&two).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn wrong_magic_is_refused() {
        let batch = build_uncompressed_batch(5, &[(None, Some(b"hello"))]);
        let mut owned = batch.to_vec();
        owned[MAGIC] = 1;
        assert_eq!(
            BatchHeader::parse(&owned).err(),
            Some(BatchError::UnsupportedMagic(1))
        );
    }
}
