//! Idempotent producers: per partition, the last five batches of every
//! producer id (sequence range and the offsets they got), so a retried batch
//! is answered with its original offsets instead of being written twice, a
//! gap in sequences is refused, and a stale epoch is fenced.
//!
//!
//! It also tracks transactions: which producers have a transaction open in
//! the partition (from the offset of its first batch, which bounds the last
//! stable offset) and which transactions were aborted (what read_committed
//! consumers must drop).
//!
//! The state is snapshotted (see [`ProducerStates::encode_snapshot`]) at
//! segment rolls and clean shutdown, and rebuilt at start from the newest
//! usable snapshot plus the batches after it ([`ProducerStates::observe`]).

use bytes::{Buf, BufMut, BytesMut};
use sluice_protocol::batch::BatchHeader;
use sluice_protocol::control::{marker_of, Marker};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::{HashMap, VecDeque};

/// Kafka keeps this many batches per producer for deduplication (it is
/// also the client's `max.in.flight.requests.per.connection` limit).
const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSpan {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
}

#[derive(Debug, PartialEq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSpan>,
    /// Max timestamp of its last batch: idle producers expire after
    /// `producer.id.expiration.ms`.
    last_timestamp: i64,
}

/// What to do with an idempotent batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    /// Already written: answer with the offset it got then.
    Duplicate {
        first_offset: i64,
    },
    Reject(ErrorCode, String),
}

/// A transaction that ended with an abort marker: read_committed
/// consumers drop this producer's records in `first_offset..=last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// The offset of the abort marker.
    pub(crate) last_offset: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActiveProducer {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    /// -1 when it has written no sequenced batch here.
    pub(crate) last_sequence: i32,
    pub(crate) last_timestamp: i64,
    /// First offset of its open transaction here.
    pub(crate) txn_start_offset: Option<i64>,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: producer id -> offset of its first batch here.
    ongoing: HashMap<i64, i64>,
    /// Aborted transactions, in marker order.
    aborted: Vec<AbortedTxn>,
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_sequence(header: &BatchHeader<'_>) -> i32 {
    let span = header.last_offset_delta();
    let seq = i64::from(header.base_sequence()) + i64::from(span);
    // Sequences wrap at i32::MAX like Kafka's.
    if seq > i64::from(i32::MAX) {
        (seq - i64::from(i32::MAX) - 1) as i32
    } else {
        seq as i32
    }
}

impl ProducerStates {
    /// Checks a batch with a producer id against the producer's state.
    /// Unknown producers are accepted at any sequence: their state may have
    /// aged out with the segments that held it.
    pub(crate) fn check(&self, header: &BatchHeader<'_>) -> SequenceCheck {
        let Some(entry) = self.producers.get(&header.producer_id()) else {
            return SequenceCheck::Append;
        };
        let epoch = header.producer_epoch();
        let first_seq = header.base_sequence();
        if epoch < entry.epoch {
            return SequenceCheck::Reject(
                error::INVALID_PRODUCER_EPOCH,
                format!(
                    "producer epoch {epoch} is older than the current epoch {}",
                    entry.epoch
                ),
            );
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(
                    error::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!(
                        "a new producer epoch {epoch} must start at sequence 0, not {first_seq}"
                    ),
                )
            };
        }
        let last_seq = last_sequence(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if first_seq == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Reject(
                error::OUT_OF_ORDER_SEQUENCE_NUMBER,
                format!("expected sequence {expected}, got {first_seq}"),
            )
        }
    }

    /// Records a batch as written (its header carries its final offsets);
    /// `batch` is the whole batch, read only for transaction markers.
    pub(crate) fn observe(&mut self, header: &BatchHeader<'_>, batch: &[u8]) {
        let pid = header.producer_id();
        if pid < 0 {
            return;
        }
        let epoch = header.producer_epoch();
        if header.is_control() {
            self.observe_marker(pid, epoch, header.base_offset(), marker_of(batch));
            return;
        }
        if header.is_transactional() {
            self.ongoing.entry(pid).or_insert(header.base_offset());
        }
        // Internal transactional writes (offsets in a transaction) carry no
        // sequence: nothing to deduplicate.
        if header.base_sequence() < 0 {
            return;
        }
        let entry = self.producers.entry(pid).or_insert(ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: header.max_timestamp(),
        });
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp());
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSpan {
            first_seq: header.base_sequence(),
            last_seq: last_sequence(header),
            first_offset: header.base_offset(),
        });
    }

    /// A marker ends the producer's open transaction here; a marker with a
    /// newer epoch (the coordinator fenced the producer) also fences its
    /// older epoch.
    fn observe_marker(&mut self, pid: i64, epoch: i16, offset: i64, marker: Option<Marker>) {
        if let Some(entry) = self.producers.get_mut(&pid) {
            if epoch > entry.epoch {
                entry.epoch = epoch;
                entry.batches.clear();
            }
        }
        let Some(first_offset) = self.ongoing.remove(&pid) else {
            return;
        };
        if marker == Some(Marker::Abort) {
            self.aborted.push(AbortedTxn {
                producer_id: pid,
                first_offset,
                last_offset: offset,
            });
        }
    }

    /// The first offset of the oldest open transaction: nothing at or after
    /// it is stable yet.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.values().copied().min()
    }

    /// Every producer known here (DescribeProducers), by producer id.
    pub(crate) fn active(&self) -> Vec<ActiveProducer> {
        let mut ids: Vec<i64> = self
            .producers
            .keys()
            .chain(self.ongoing.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|pid| {
                let entry = self.producers.get(&pid);
                ActiveProducer {
                    producer_id: pid,
                    epoch: entry.map_or(-1, |e| e.epoch),
                    last_sequence: entry
                        .and_then(|e| e.batches.back())
                        .map_or(-1, |b| b.last_seq),
                    last_timestamp: entry.map_or(-1, |e| e.last_timestamp),
                    txn_start_offset: self.ongoing.get(&pid).copied(),
                }
            })
            .collect()
    }

    /// Aborted transactions overlapping `from..to`.
    pub(crate) fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets producers idle for longer than `expiration_ms` (by their last
    /// batch's timestamp) with no open transaction, as Kafka does after
    /// `producer.id.expiration.ms`: a later batch from one is accepted as
    /// from a new producer. Returns how many were forgotten.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let ongoing = &self.ongoing;
        self.producers.retain(|pid, entry| {
            ongoing.contains_key(pid) || entry.last_timestamp.saturating_add(expiration_ms) > now_ms
        });
        before - self.producers.len()
    }

    /// Forgets aborted transactions wholly below `offset` (the log start,
    /// or where the cleaner removed their records).
    pub(crate) fn forget_before(&mut self, offset: i64) {
        self.aborted.retain(|a| a.last_offset >= offset);
    }

    /// Serializes the state as of `end_offset` (the log end it covers),
    /// checksummed with CRC32C.
    pub(crate) fn encode_snapshot(&self, end_offset: i64) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_slice(SNAPSHOT_MAGIC);
        out.put_i64(end_offset);
        out.put_u32(self.producers.len() as u32);
        for (pid, entry) in &self.producers {
            out.put_i64(*pid);
            out.put_i16(entry.epoch);
            out.put_i64(entry.last_timestamp);
            out.put_u8(entry.batches.len() as u8);
            for b in &entry.batches {
                out.put_i32(b.first_seq);
                out.put_i32(b.last_seq);
                out.put_i64(b.first_offset);
            }
        }
        out.put_u32(self.ongoing.len() as u32);
        for (pid, first) in &self.ongoing {
            out.put_i64(*pid);
            out.put_i64(*first);
        }
        out.put_u32(self.aborted.len() as u32);
        for a in &self.aborted {
            out.put_i64(a.producer_id);
            out.put_i64(a.first_offset);
            out.put_i64(a.last_offset);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out.to_vec()
    }

    /// Parses a snapshot into the state and the log end offset it covers;
    /// `None` if it is truncated, corrupt or of another format.
    pub(crate) fn decode_snapshot(data: &[u8]) -> Option<(ProducerStates, i64)> {
        let (body, crc) = data.split_at(data.len().checked_sub(4)?);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut buf = body.strip_prefix(SNAPSHOT_MAGIC)?;
        let need = |buf: &&[u8], n: usize| (buf.remaining() >= n).then_some(());
        need(&buf, 12)?;
        let end_offset = buf.get_i64();
        let mut states = ProducerStates::default();
        for _ in 0..buf.get_u32() {
            need(&buf, 19)?;
            let (pid, epoch) = (buf.get_i64(), buf.get_i16());
            let (last_timestamp, count) = (buf.get_i64(), buf.get_u8());
            let mut batches = VecDeque::new();
            for _ in 0..count {
                need(&buf, 16)?;
                batches.push_back(BatchSpan {
                    first_seq: buf.get_i32(),
                    last_seq: buf.get_i32(),
                    first_offset: buf.get_i64(),
                });
            }
            states.producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        need(&buf, 4)?;
        for _ in 0..buf.get_u32() {
            need(&buf, 16)?;
            states.ongoing.insert(buf.get_i64(), buf.get_i64());
        }
        need(&buf, 4)?;
        for _ in 0..buf.get_u32() {
            need(&buf, 24)?;
            states.aborted.push(AbortedTxn {
                producer_id: buf.get_i64(),
                first_offset: buf.get_i64(),
                last_offset: buf.get_i64(),
            });
        }
        buf.is_empty().then_some((states, end_offset))
    }
}

/// Identifies a producer-state snapshot file and its format version.
const SNAPSHOT_MAGIC: &[u8] = b"SLPS\x00\x02";

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, Record, TimestampType};
    use sluice_protocol::batch::BatchMut;

    fn batch(pid: i64, epoch: i16, first_seq: i32, count: i32, base_offset: i64) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: first_seq + i,
                timestamp: 1,
                key: None,
                value: None,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        sluice_protocol::compression::encode_batch(&mut buf, &records, Compression::None).unwrap();
        BatchMut::new(&mut buf).set_base_offset(base_offset);
        buf.freeze()
    }

    fn check(states: &ProducerStates, b: &Bytes) -> SequenceCheck {
        states.check(&BatchHeader::parse(b).unwrap())
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_its_original_offset() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3, 100);
        assert_eq!(check(&states, &first), SequenceCheck::Append);
        states.observe(&BatchHeader::parse(&first).unwrap(), &first);
        assert_eq!(
            check(&states, &batch(7, 0, 0, 3, -1)),
            SequenceCheck::Duplicate { first_offset: 100 }
        );
        assert_eq!(
            check(&states, &batch(7, 0, 3, 2, -1)),
            SequenceCheck::Append
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut states = ProducerStates::default();
        let b = batch(7, 1, 0, 3, 0);
        states.observe(&BatchHeader::parse(&b).unwrap(), &b);
        assert!(matches!(
            check(&states, &batch(7, 1, 5, 1, -1)),
            SequenceCheck::Reject(error::OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert!(matches!(
            check(&states, &batch(7, 0, 3, 1, -1)),
            SequenceCheck::Reject(error::INVALID_PRODUCER_EPOCH, _)
        ));
        assert!(matches!(
            check(&states, &batch(7, 2, 4, 1, -1)),
            SequenceCheck::Reject(error::OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert_eq!(
            check(&states, &batch(7, 2, 0, 1, -1)),
            SequenceCheck::Append
        );
        assert_eq!(
            check(&states, &batch(8, 0, 42, 1, -1)),
            SequenceCheck::Append,
            "unknown producers are accepted"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..6 {
            let b = batch(1, 0, i, 1, i64::from(i));
            states.observe(&BatchHeader::parse(&b).unwrap(), &b);
        }
        assert!(matches!(
            check(&states, &batch(1, 0, 0, 1, -1)),
            SequenceCheck::Reject(..)
        ));
        assert_eq!(
            check(&states, &batch(1, 0, 1, 1, -1)),
            SequenceCheck::Duplicate { first_offset: 1 }
        );
    }

    #[test]
    fn snapshots_round_trip_and_reject_corruption() {
        let mut states = ProducerStates::default();
        let b = batch(7, 2, 0, 3, 10);
        states.observe(&BatchHeader::parse(&b).unwrap(), &b);
        states.ongoing.insert(9, 12);
        states.aborted.push(AbortedTxn {
            producer_id: 8,
            first_offset: 1,
            last_offset: 4,
        });
        let snapshot = states.encode_snapshot(13);
        let (decoded, end) = ProducerStates::decode_snapshot(&snapshot).unwrap();
        assert_eq!((decoded, end), (states, 13));
        let mut corrupt = snapshot.clone();
        corrupt[10] ^= 1;
        assert!(ProducerStates::decode_snapshot(&corrupt).is_none());
        assert!(ProducerStates::decode_snapshot(&snapshot[..snapshot.len() - 1]).is_none());
        assert!(ProducerStates::decode_snapshot(&[]).is_none());
    }

    #[test]
    fn markers_end_transactions_and_aborts_are_remembered() {
        use sluice_protocol::control::marker_batch;
        let mut states = ProducerStates::default();
        let mut data = BytesMut::from(&batch(7, 0, 0, 2, 5)[..]);
        // Make it transactional: attributes bit 4, then fix the CRC.
        data[22] |= 0x10;
        let crc = crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        states.observe(&BatchHeader::parse(&data).unwrap(), &data);
        assert_eq!(states.first_unstable_offset(), Some(5));
        let mut abort = marker_batch(Marker::Abort, 7, 0, 0, 1).unwrap();
        BatchMut::new(&mut abort).set_base_offset(7);
        states.observe(&BatchHeader::parse(&abort).unwrap(), &abort);
        assert_eq!(states.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 7,
            first_offset: 5,
            last_offset: 7,
        };
        assert_eq!(states.aborted_between(0, 5), vec![]);
        assert_eq!(states.aborted_between(6, 7), vec![aborted]);
        states.forget_before(8);
        assert_eq!(states.aborted_between(0, 100), vec![]);
    }

    #[test]
    fn idle_producers_expire_unless_in_a_transaction() {
        let mut states = ProducerStates::default();
        let b = batch(7, 0, 0, 1, 0);
        states.observe(&BatchHeader::parse(&b).unwrap(), &b);
        let b = batch(8, 0, 0, 1, 1);
        states.observe(&BatchHeader::parse(&b).unwrap(), &b);
        states.ongoing.insert(8, 1);
        // The test batches carry timestamp 1.
        assert_eq!(states.expire(100, 100), 0);
        assert_eq!(states.expire(102, 100), 1);
        assert_eq!(
            check(&states, &batch(7, 0, 5, 1, -1)),
            SequenceCheck::Append,
            "an expired producer is unknown again"
        );
        assert!(states.producers.contains_key(&8));
    }
}
