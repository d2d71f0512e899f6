//! Record-level access to v2 batches, for the few features that must look
//! inside one: the log cleaner (keep the latest record per key), the
//! produce check that compacted topics only take keyed records, and
//! broker-side recompression to a topic's `compression.type`.
//!
//! Records are read in place from the (decompressed) records section, and a
//! batch is rebuilt from kept records by copying their bytes, so headers and
//! every other field a client wrote survive unchanged. The record layout:
//!
//! ```text
//! length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint, key, valueLength varint, value, headerCount varint, headers
//! ```

use crate::batch::{BatchError, BatchHeader, Codec, BATCH_HEADER_LEN, COMPRESSION_MASK};
use crate::compression::{compress_records, decompress_records, CodecLevel};

/// Attribute bit 6: the batch's base timestamp holds the time after which
/// its tombstones may be removed (KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why the records inside a batch could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("batch declares {declared} records but holds {found}")]
    CountMismatch { declared: i32, found: usize },
    #[error("compression codec error: {0}")]
    Codec(String),
}

/// One record, borrowed from a records section.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    attributes: u8,
    /// From `offsetDelta` to the end of the record: copied as is on rewrite.
    after_timestamp: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> Result<i64, RecordError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or(RecordError::Malformed("truncated varint"))?;
        *buf = rest;
        if shift == 63 && byte > 1 {
            return Err(RecordError::Malformed("varint too long"));
        }
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(RecordError::Malformed("varint too long"))
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], RecordError> {
    if buf.len() < len {
        return Err(RecordError::Malformed("field runs past the record"));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

/// A length-prefixed byte field; a negative length is null.
fn nullable_bytes<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, RecordError> {
    let len = varint(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordError::Malformed("length"))?;
    take(buf, len).map(Some)
}

fn parse_record<'a>(body: &'a [u8]) -> Result<RecordView<'a>, RecordError> {
    let mut buf = body;
    let (&attributes, rest) = buf
        .split_first()
        .ok_or(RecordError::Malformed("empty record"))?;
    buf = rest;
    let timestamp_delta = varint(&mut buf)?;
    let after_timestamp = buf;
    let offset_delta = i32::try_from(varint(&mut buf)?)
        .map_err(|_| RecordError::Malformed("offset delta out of range"))?;
    let key = nullable_bytes(&mut buf)?;
    let value = nullable_bytes(&mut buf)?;
    let header_count = varint(&mut buf)?;
    for _ in 0..header_count.max(0) {
        let key_len = usize::try_from(varint(&mut buf)?)
            .map_err(|_| RecordError::Malformed("negative header key length"))?;
        take(&mut buf, key_len)?;
        nullable_bytes(&mut buf)?;
    }
    if !buf.is_empty() {
        return Err(RecordError::Malformed("bytes after the last header"));
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        attributes,
        after_timestamp,
    })
}

/// Parses every record of an uncompressed records section.
pub fn parse_records(mut section: &[u8]) -> Result<Vec<RecordView<'_>>, RecordError> {
    let mut records = Vec::new();
    while !section.is_empty() {
        let len = usize::try_from(varint(&mut section)?)
            .map_err(|_| RecordError::Malformed("negative record length"))?;
        records.push(parse_record(take(&mut section, len)?)?);
    }
    Ok(records)
}

/// The records section of a verified batch, decompressed.
pub fn records_section(batch: &[u8]) -> Result<Vec<u8>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    let body = batch
        .get(BATCH_HEADER_LEN..header.total_len())
        .ok_or(RecordError::Malformed("batch shorter than its length"))?;
    match header.codec()? {
        Codec::None => Ok(body.to_vec()),
        codec => decompress_records(codec, body).map_err(|e| RecordError::Codec(e.to_string())),
    }
}

/// Parses a records section and checks it holds as many records as the
/// batch header declares.
pub fn checked_records<'a>(
    header: &BatchHeader<'_>,
    section: &'a [u8],
) -> Result<Vec<RecordView<'a>>, RecordError> {
    let records = parse_records(section)?;
    if records.len() != usize::try_from(header.record_count()).unwrap_or(usize::MAX) {
        return Err(RecordError::CountMismatch {
            declared: header.record_count(),
            found: records.len(),
        });
    }
    Ok(records)
}

/// The delete horizon of a batch the cleaner already stamped (KIP-534).
pub fn delete_horizon(header: &BatchHeader<'_>) -> Option<i64> {
    (header.attributes() & DELETE_HORIZON_BIT != 0).then(|| header.base_timestamp())
}

/// Rebuilds `original` with only `kept` (records taken from it), as Kafka's
/// cleaner does: base offset, last offset delta, producer fields, leader
/// epoch and codec stay, so offsets keep their absolute values and the
/// producer's last sequence survives. With `new_horizon`, the batch is
/// stamped with that delete horizon (its base timestamp; record timestamp
/// deltas are rebased so record timestamps do not change). With no records
/// kept the result is an empty batch (no compression), which Kafka also
/// writes to keep a batch's offsets and producer state.
pub fn rebuild_batch(
    original: &BatchHeader<'_>,
    kept: &[RecordView<'_>],
    new_horizon: Option<i64>,
) -> Result<Vec<u8>, RecordError> {
    let old_base_ts = original.base_timestamp();
    let base_ts = new_horizon.unwrap_or(old_base_ts);
    let mut section = Vec::new();
    let mut record = Vec::new();
    let mut max_ts = i64::MIN;
    for view in kept {
        let timestamp = old_base_ts.wrapping_add(view.timestamp_delta);
        max_ts = max_ts.max(timestamp);
        record.clear();
        record.push(view.attributes);
        put_varint(&mut record, timestamp.wrapping_sub(base_ts));
        record.extend_from_slice(view.after_timestamp);
        put_varint(&mut section, record.len() as i64);
        section.extend_from_slice(&record);
    }
    let mut attributes = original.attributes();
    if new_horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let codec = original.codec()?;
    let body = match codec {
        _ if kept.is_empty() => {
            attributes &= !COMPRESSION_MASK;
            section
        }
        codec => compress(CodecLevel::quick(codec), section)?,
    };
    if original.is_log_append_time() || kept.is_empty() {
        max_ts = original.max_timestamp();
    }
    let count = i32::try_from(kept.len()).map_err(|_| RecordError::Malformed("size"))?;
    assemble_batch(original, attributes, base_ts, max_ts, count, &body)
}

/// Rewrites a batch with its records compressed by `target` (Kafka's
/// broker-side recompression to a topic's `compression.type`). Every header
/// field a client or the producer state relies on stays: producer id, epoch,
/// base sequence, transactional flag, timestamps and offset deltas. The
/// records are parsed first, so a batch whose decompressed content does not
/// hold the records its header declares is an error, not a rewrite.
pub fn recompress_batch(batch: &[u8], target: CodecLevel) -> Result<Vec<u8>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    let section = records_section(batch)?;
    checked_records(&header, &section)?;
    let attributes = (header.attributes() & !COMPRESSION_MASK) | target.codec.id();
    let body = compress(target, section)?;
    assemble_batch(
        &header,
        attributes,
        header.base_timestamp(),
        header.max_timestamp(),
        header.record_count(),
        &body,
    )
}

fn compress(target: CodecLevel, section: Vec<u8>) -> Result<Vec<u8>, RecordError> {
    match target.codec {
        Codec::None => Ok(section),
        _ => compress_records(target, &section).map_err(|e| RecordError::Codec(e.to_string())),
    }
}

/// A v2 batch with `original`'s base offset, leader epoch, last offset
/// delta and producer fields, the given attributes, timestamps and record
/// count, and `body` as its records section; the CRC is computed.
fn assemble_batch(
    original: &BatchHeader<'_>,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    record_count: i32,
    body: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let total = BATCH_HEADER_LEN + body.len();
    let batch_length = i32::try_from(total - 12).map_err(|_| RecordError::Malformed("size"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&original.base_offset().to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch().to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&original.last_offset_delta().to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&original.producer_id().to_be_bytes());
    out.extend_from_slice(&original.producer_epoch().to_be_bytes());
    out.extend_from_slice(&original.base_sequence().to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::{decode_batches, encode_batch, plain_record};
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, Record};

    fn batch(codec: Compression) -> Bytes {
        let records: Vec<_> = (0..5)
            .map(|i| {
                let value = (i != 2).then(|| Bytes::from(format!("value-{i}")));
                plain_record(i, 1_000 + i * 10, Some(Bytes::from(format!("k{i}"))), value)
            })
            .collect();
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, &records, codec).unwrap();
        let mut owned = buf.to_vec();
        crate::batch::BatchMut::new(&mut owned).set_base_offset(100);
        Bytes::from(owned)
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(varint(&mut &out[..]).unwrap(), value);
        }
        assert!(varint(&mut &[0x80u8][..]).is_err());
    }

    #[test]
    fn rebuilt_batches_keep_offsets_timestamps_and_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let original = batch(codec);
            let header = BatchHeader::parse(&original).unwrap();
            let section = records_section(&original).unwrap();
            let records = checked_records(&header, &section).unwrap();
            assert_eq!(records.len(), 5);
            assert_eq!(records[2].value, None);
            assert_eq!(records[3].key, Some(&b"k3"[..]));
            let kept = [records[1], records[2], records[3]];
            let rebuilt = rebuild_batch(&header, &kept, Some(9_999)).unwrap();
            let new = BatchHeader::parse(&rebuilt).unwrap();
            new.verify().unwrap();
            assert_eq!(new.base_offset(), 100);
            assert_eq!(new.last_offset(), 104, "{codec:?}");
            assert_eq!(new.codec().unwrap().id(), codec as i16);
            assert_eq!(delete_horizon(&new), Some(9_999));
            assert_eq!(new.max_timestamp(), 1_030);
            let decoded = decode_batches(Bytes::from(rebuilt)).unwrap();
            let got: Vec<_> = decoded.iter().map(|r| (r.offset, r.timestamp)).collect();
            assert_eq!(got, vec![(101, 1_010), (102, 1_020), (103, 1_030)]);
            assert_eq!(decoded[1].value, None);
        }
    }

    #[test]
    fn an_empty_rebuild_keeps_the_offset_span() {
        let original = batch(Compression::Snappy);
        let header = BatchHeader::parse(&original).unwrap();
        let rebuilt = rebuild_batch(&header, &[], None).unwrap();
        let new = BatchHeader::parse(&rebuilt).unwrap();
        new.verify().unwrap();
        assert_eq!(
            (new.base_offset(), new.last_offset(), new.record_count()),
            (100, 104, 0)
        );
        assert_eq!(new.codec().unwrap(), Codec::None);
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn codec(compression: Compression) -> Codec {
        Codec::from_id(compression as i16).unwrap()
    }

    #[test]
    fn recompression_keeps_records_and_producer_fields() {
        for from in CODECS {
            let records: Vec<_> = (0..4)
                .map(|i| Record {
                    transactional: true,
                    producer_id: 77,
                    producer_epoch: 3,
                    sequence: 10 + i as i32,
                    ..plain_record(i, 2_000 + i, Some(Bytes::from(format!("k{i}"))), None)
                })
                .collect();
            let mut buf = BytesMut::new();
            encode_batch(&mut buf, &records, from).unwrap();
            let original = BatchHeader::parse(&buf).unwrap();
            for to in CODECS {
                let target = CodecLevel::default_for(codec(to));
                let rewritten = recompress_batch(&buf, target).unwrap();
                let new = BatchHeader::parse(&rewritten).unwrap();
                new.verify().unwrap();
                assert_eq!(new.codec().unwrap(), codec(to), "{from:?} -> {to:?}");
                assert_eq!(
                    (new.attributes() & !COMPRESSION_MASK),
                    (original.attributes() & !COMPRESSION_MASK)
                );
                assert!(new.is_transactional());
                assert_eq!(
                    (new.producer_id(), new.producer_epoch(), new.base_sequence()),
                    (77, 3, 10)
                );
                assert_eq!((new.base_timestamp(), new.max_timestamp()), (2_000, 2_003));
                assert_eq!((new.last_offset_delta(), new.record_count()), (3, 4));
                let decoded = decode_batches(Bytes::from(rewritten)).unwrap();
                let keys: Vec<_> = decoded.iter().map(|r| r.key.clone()).collect();
                let expected: Vec<_> = records.iter().map(|r| r.key.clone()).collect();
                assert_eq!(keys, expected);
            }
        }
    }

    #[test]
    fn recompressing_an_undecodable_batch_is_an_error() {
        let original = batch(Compression::Zstd);
        let mut broken = original.to_vec();
        broken[BATCH_HEADER_LEN + 2] ^= 0xff;
        let target = CodecLevel::default_for(Codec::Gzip);
        assert!(recompress_batch(&broken, target).is_err());
    }

    #[test]
    fn malformed_sections_are_errors() {
        let original = batch(Compression::None);
        let header = BatchHeader::parse(&original).unwrap();
        let section = records_section(&original).unwrap();
        for cut in 1..section.len() {
            // A cut at a record boundary parses, but holds too few records.
            assert!(
                checked_records(&header, &section[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
