//! Transaction markers: the control batches a transaction coordinator writes
//! to every partition of a transaction when it commits or aborts. Each holds
//! one record whose key is (version i16 = 0, type i16: 0 abort, 1 commit) and
//! whose value is (version i16 = 0, coordinator epoch i32).

use crate::batch::BatchHeader;
use crate::compression::encode_batch;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, TimestampType};

/// What a transaction marker ends the transaction with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

impl Marker {
    fn type_id(self) -> i16 {
        match self {
            Marker::Abort => 0,
            Marker::Commit => 1,
        }
    }
}

/// Size of a v2 batch header; records follow it.
const HEADER_LEN: usize = 61;

/// Reads a zigzag varint, advancing `buf`.
fn read_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// The marker a control batch carries and the coordinator epoch in its
/// value; `None` for data batches and for control records of other kinds.
/// Control batches are never compressed.
pub fn marker_and_epoch(batch: &[u8]) -> Option<(Marker, Option<i32>)> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.record_count() < 1 {
        return None;
    }
    let mut rest = batch.get(HEADER_LEN..header.total_len())?;
    let _record_len = read_varint(&mut rest)?;
    let (_attributes, tail) = rest.split_first()?;
    rest = tail;
    let _timestamp_delta = read_varint(&mut rest)?;
    let _offset_delta = read_varint(&mut rest)?;
    let key_len = usize::try_from(read_varint(&mut rest)?).ok()?;
    let key = rest.get(..key_len)?;
    if key.len() < 4 {
        return None;
    }
    let marker = match i16::from_be_bytes([key[2], key[3]]) {
        0 => Marker::Abort,
        1 => Marker::Commit,
        _ => return None,
    };
    rest = &rest[key_len..];
    let coordinator_epoch = (|| {
        let value_len = usize::try_from(read_varint(&mut rest)?).ok()?;
        let value = rest.get(..value_len)?;
        Some(i32::from_be_bytes(value.get(2..6)?.try_into().ok()?))
    })();
    Some((marker, coordinator_epoch))
}

/// The marker a control batch carries (see [`marker_and_epoch`]).
pub fn marker_of(batch: &[u8]) -> Option<Marker> {
    marker_and_epoch(batch).map(|(marker, _)| marker)
}

/// A marker batch for producer `producer_id`/`producer_epoch` (offsets are
/// assigned on append, like any batch).
pub fn marker_batch(
    marker: Marker,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> anyhow::Result<BytesMut> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(marker.type_id());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    encode_batch(&mut out, &[record], Compression::None)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_carries_its_coordinator_epoch() {
        let batch = marker_batch(Marker::Commit, 7, 1, 42, 5).unwrap();
        assert_eq!(marker_and_epoch(&batch), Some((Marker::Commit, Some(42))));
    }

    #[test]
    fn markers_round_trip() {
        for marker in [Marker::Abort, Marker::Commit] {
            let batch = marker_batch(marker, 42, 3, 0, 1_000).unwrap();
            let header = BatchHeader::parse(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id(), header.producer_epoch()), (42, 3));
            header.verify().unwrap();
            assert_eq!(marker_of(&batch), Some(marker));
        }
    }

    #[test]
    fn data_batches_are_not_markers() {
        let mut out = BytesMut::new();
        let record = crate::compression::plain_record(0, 1, None, Some(Bytes::from_static(b"v")));
        encode_batch(&mut out, &[record], Compression::None).unwrap();
        assert_eq!(marker_of(&out), None);
        assert_eq!(marker_of(&out[..10]), None);
    }
}
