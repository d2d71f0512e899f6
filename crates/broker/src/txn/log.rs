//! Records of `__transaction_state`, in Kafka's formats so its tools can read
//! them: key `TransactionLogKey` v0 (version i16, transactional id string)
//! and value `TransactionLogValue` v0 (producer id, epoch, timeout, status,
//! partitions, last update and start timestamps). A null value deletes.

use super::{TxnMetadata, TxnStatus};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
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

pub(crate) fn encode_value(txn: &TxnMetadata) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i64(txn.producer_id);
    out.put_i16(txn.producer_epoch);
    out.put_i32(txn.timeout_ms);
    out.put_i8(txn.status as i8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics.last_mut() {
            Some((t, parts)) if *t == topic.as_str() => parts.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    out.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(p);
        }
    }
    out.put_i64(txn.last_update_ms);
    out.put_i64(txn.start_ms);
    out.freeze()
}

pub(crate) fn decode_value(mut buf: &[u8]) -> Option<TxnMetadata> {
    if buf.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let version = buf.get_i16();
    if version != 0 {
        return None;
    }
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let status = TxnStatus::from_id(buf.get_i8())?;
    let topic_count = buf.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topic_count.max(0) {
        let topic = get_string(&mut buf)?;
        if buf.remaining() < 4 {
            return None;
        }
        let count = buf.get_i32();
        for _ in 0..count.max(0) {
            if buf.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), buf.get_i32()));
        }
    }
    if buf.remaining() < 16 {
        return None;
    }
    let last_update_ms = buf.get_i64();
    let start_ms = buf.get_i64();
    Some(TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
    })
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
        };
        assert_eq!(decode_value(&encode_value(&txn)), Some(txn));
        assert_eq!(decode_key(&encode_key("tx-1")).as_deref(), Some("tx-1"));
        assert_eq!(
            decode_value(&encode_value(&TxnMetadata::default())[..20]),
            None
        );
    }
}
