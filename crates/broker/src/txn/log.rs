//! Records of `__transaction_state`, in Kafka's formats so its tools can read
//! them: key `TransactionLogKey` v0 (version i16, transactional id string)
//! and value `TransactionLogValue`. A null value deletes.
//!
//! Values are written at v1, as Kafka does once `transaction.version` is 1
//! or more (this broker finalizes 2): the flexible encoding (compact
//! strings and arrays, tagged fields) of producer id, epoch, timeout,
//! status, partitions (null when `Empty`), last update and start
//! timestamps, with tagged fields for what transactions v2 needs to
//! survive a restart: tag 0 `PreviousProducerId`, tag 1 `NextProducerId`
//! (both default -1) and tag 2 `ClientTransactionVersion` (default 0),
//! each written only when it differs from its default. Later tags (Kafka
//! 4.2's `NextProducerEpoch`) are skipped when read. v0 values, written by
//! earlier Sluice versions, are still read.

use super::{TxnMetadata, TxnStatus};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;

const VALUE_VERSION: i16 = 1;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    take_string(buf, len)
}

fn take_string(buf: &mut &[u8], len: usize) -> Option<String> {
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn get_uvarint(buf: &mut &[u8]) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        value |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A compact (flexible) string or array length: `n + 1`, 0 for null.
fn get_compact_len(buf: &mut &[u8]) -> Option<Option<usize>> {
    let n = get_uvarint(buf)?;
    Some((n > 0).then(|| (n - 1) as usize))
}

pub(crate) fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(0);
    put_string(&mut out, transactional_id);
    out.freeze()
}

pub(crate) fn decode_key(mut buf: &[u8]) -> Option<String> {
    if buf.remaining() < 2 || buf.get_i16() != 0 {
        return None;
    }
    get_string(&mut buf)
}

fn topics_of(txn: &TxnMetadata) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics.last_mut() {
            Some((t, parts)) if *t == topic.as_str() => parts.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    topics
}

pub(crate) fn encode_value(txn: &TxnMetadata) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(VALUE_VERSION);
    out.put_i64(txn.producer_id);
    out.put_i16(txn.producer_epoch);
    out.put_i32(txn.timeout_ms);
    out.put_i8(txn.status as i8);
    if txn.status == TxnStatus::Empty {
        put_uvarint(&mut out, 0);
    } else {
        let topics = topics_of(txn);
        put_uvarint(&mut out, topics.len() as u32 + 1);
        for (topic, partitions) in topics {
            put_uvarint(&mut out, topic.len() as u32 + 1);
            out.put_slice(topic.as_bytes());
            put_uvarint(&mut out, partitions.len() as u32 + 1);
            for p in partitions {
                out.put_i32(p);
            }
            put_uvarint(&mut out, 0);
        }
    }
    out.put_i64(txn.last_update_ms);
    out.put_i64(txn.start_ms);
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if txn.previous_producer_id != -1 {
        tags.push((
            TAG_PREVIOUS_PRODUCER_ID,
            txn.previous_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if txn.next_producer_id != -1 {
        tags.push((
            TAG_NEXT_PRODUCER_ID,
            txn.next_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if txn.client_txn_version != 0 {
        tags.push((
            TAG_CLIENT_TRANSACTION_VERSION,
            txn.client_txn_version.to_be_bytes().to_vec(),
        ));
    }
    put_uvarint(&mut out, tags.len() as u32);
    for (tag, data) in tags {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, data.len() as u32);
        out.put_slice(&data);
    }
    out.freeze()
}

/// The fields both value versions share, up to the partitions.
fn decode_head(buf: &mut &[u8]) -> Option<TxnMetadata> {
    if buf.remaining() < 8 + 2 + 4 + 1 {
        return None;
    }
    Some(TxnMetadata {
        producer_id: buf.get_i64(),
        producer_epoch: buf.get_i16(),
        timeout_ms: buf.get_i32(),
        status: TxnStatus::from_id(buf.get_i8())?,
        ..TxnMetadata::default()
    })
}

fn get_i32s(buf: &mut &[u8], count: usize) -> Option<Vec<i32>> {
    if buf.remaining() < count.checked_mul(4)? {
        return None;
    }
    Some((0..count).map(|_| buf.get_i32()).collect())
}

fn decode_v0(buf: &mut &[u8]) -> Option<TxnMetadata> {
    let mut txn = decode_head(buf)?;
    if buf.remaining() < 4 {
        return None;
    }
    let topic_count = buf.get_i32();
    for _ in 0..topic_count.max(0) {
        let topic = get_string(buf)?;
        if buf.remaining() < 4 {
            return None;
        }
        let count = usize::try_from(buf.get_i32()).unwrap_or(0);
        for p in get_i32s(buf, count)? {
            txn.partitions.insert((topic.clone(), p));
        }
    }
    if buf.remaining() < 16 {
        return None;
    }
    txn.last_update_ms = buf.get_i64();
    txn.start_ms = buf.get_i64();
    Some(txn)
}

fn skip_tags(buf: &mut &[u8]) -> Option<()> {
    for _ in 0..get_uvarint(buf)? {
        get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if buf.remaining() < size {
            return None;
        }
        buf.advance(size);
    }
    Some(())
}

fn decode_v1(buf: &mut &[u8]) -> Option<TxnMetadata> {
    let mut txn = decode_head(buf)?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = get_compact_len(buf)? {
        for _ in 0..topics {
            let len = get_compact_len(buf)??;
            let topic = take_string(buf, len)?;
            let count = get_compact_len(buf)?.unwrap_or(0);
            for p in get_i32s(buf, count)? {
                partitions.insert((topic.clone(), p));
            }
            skip_tags(buf)?;
        }
    }
    txn.partitions = partitions;
    if buf.remaining() < 16 {
        return None;
    }
    txn.last_update_ms = buf.get_i64();
    txn.start_ms = buf.get_i64();
    for _ in 0..get_uvarint(buf)? {
        let tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if buf.remaining() < size {
            return None;
        }
        let (mut data, rest) = buf.split_at(size);
        *buf = rest;
        match (tag, size) {
            (TAG_PREVIOUS_PRODUCER_ID, 8) => txn.previous_producer_id = data.get_i64(),
            (TAG_NEXT_PRODUCER_ID, 8) => txn.next_producer_id = data.get_i64(),
            (TAG_CLIENT_TRANSACTION_VERSION, 2) => txn.client_txn_version = data.get_i16(),
            _ => {}
        }
    }
    Some(txn)
}

pub(crate) fn decode_value(mut buf: &[u8]) -> Option<TxnMetadata> {
    if buf.remaining() < 2 {
        return None;
    }
    match buf.get_i16() {
        0 => decode_v0(&mut buf),
        1 => decode_v1(&mut buf),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let txn = TxnMetadata {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".into(), 1)]
                .into_iter()
                .collect(),
            last_update_ms: 11,
            start_ms: 10,
            ..TxnMetadata::default()
        };
        assert_eq!(decode_value(&encode_value(&txn)), Some(txn));
        assert_eq!(decode_key(&encode_key("tx-1")).as_deref(), Some("tx-1"));
        assert_eq!(
            decode_value(&encode_value(&TxnMetadata::default())[..12]),
            None
        );
    }

    #[test]
    fn transactions_v2_fields_round_trip() {
        let txn = TxnMetadata {
            producer_id: 7,
            producer_epoch: i16::MAX,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareCommit,
            partitions: [("a".to_string(), 1)].into_iter().collect(),
            last_update_ms: 11,
            start_ms: 10,
            previous_producer_id: 6,
            next_producer_id: 9,
            client_txn_version: 2,
        };
        assert_eq!(decode_value(&encode_value(&txn)), Some(txn));
        let empty = TxnMetadata {
            producer_id: 3,
            producer_epoch: 0,
            ..TxnMetadata::default()
        };
        let bytes = encode_value(&empty);
        // Version 1, then no partitions (null) and no tagged fields.
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(bytes.len(), 2 + 8 + 2 + 4 + 1 + 1 + 16 + 1);
        assert_eq!(decode_value(&bytes), Some(empty));
    }

    #[test]
    fn version_0_values_are_still_read() {
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i64(5);
        v0.put_i16(2);
        v0.put_i32(1000);
        v0.put_i8(TxnStatus::Ongoing as i8);
        v0.put_i32(1);
        put_string(&mut v0, "t");
        v0.put_i32(2);
        v0.put_i32(0);
        v0.put_i32(3);
        v0.put_i64(20);
        v0.put_i64(19);
        let txn = decode_value(&v0).unwrap();
        assert_eq!((txn.producer_id, txn.producer_epoch), (5, 2));
        assert_eq!(txn.partitions.len(), 2);
        assert_eq!((txn.previous_producer_id, txn.client_txn_version), (-1, 0));
    }
}
