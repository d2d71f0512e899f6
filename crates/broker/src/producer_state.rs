//! Idempotent producers: per partition, the last five batches of every
//! producer id (sequence range and the offsets they got), so a retried batch
//! is answered with its original offsets instead of being written twice, a
//! gap in sequences is refused, and a stale epoch is fenced.
//!
//!
//! It also tracks transactions: which producers have a transaction open in
//! the partition (from the offset of its first batch, which bounds the last
//! stable offset). When an abort marker ends one, [`ProducerStates::observe`]
//! returns the entry for the log's aborted-transaction index (Kafka's
//! `.txnindex`), which is what read_committed consumers learn to drop from;
//! the aborted transactions themselves live in the log, not here.
//!
//! The state is snapshotted (see [`ProducerStates::encode_snapshot`]) at
//! segment rolls and clean shutdown, and rebuilt at start from the newest
//! usable snapshot plus the batches after it ([`ProducerStates::observe`]).

use bytes::{Buf, BufMut, BytesMut};
use sluice_protocol::batch::BatchHeader;
use sluice_protocol::control::{marker_and_epoch, Marker};
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::AbortedTxnEntry;
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
    /// The coordinator epoch of the last marker written for it here (-1:
    /// none seen).
    pub(crate) coordinator_epoch: i32,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: producer id -> offset of its first batch here.
    ongoing: HashMap<i64, i64>,
    /// Producer id -> the highest coordinator epoch of its markers here: a
    /// marker from an older coordinator (one deposed since) is refused.
    coordinator_epochs: HashMap<i64, i32>,
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
    /// `batch` is the whole batch, read only for transaction markers. For
    /// an abort marker that ends an open transaction, returns the entry the
    /// log's aborted-transaction index must get.
    #[must_use = "an aborted transaction must go to the log's txnindex"]
    pub(crate) fn observe(
        &mut self,
        header: &BatchHeader<'_>,
        batch: &[u8],
    ) -> Option<AbortedTxnEntry> {
        let pid = header.producer_id();
        if pid < 0 {
            return None;
        }
        let epoch = header.producer_epoch();
        if header.is_control() {
            let (marker, coordinator_epoch) = match marker_and_epoch(batch) {
                Some((marker, coordinator_epoch)) => (Some(marker), coordinator_epoch),
                None => (None, None),
            };
            if let Some(coordinator_epoch) = coordinator_epoch {
                let known = self
                    .coordinator_epochs
                    .entry(pid)
                    .or_insert(coordinator_epoch);
                *known = (*known).max(coordinator_epoch);
            }
            return self.observe_marker(pid, epoch, header.base_offset(), marker);
        }
        if header.is_transactional() {
            self.ongoing.entry(pid).or_insert(header.base_offset());
        }
        // Internal transactional writes (offsets in a transaction) carry no
        // sequence: nothing to deduplicate.
        if header.base_sequence() < 0 {
            return None;
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
        None
    }

    /// A marker ends the producer's open transaction here; a marker with a
    /// newer epoch (the coordinator fenced the producer) also fences its
    /// older epoch. An abort yields Kafka's index entry: the transaction's
    /// first offset, the marker's offset, and the last stable offset right
    /// after the marker (the first offset of the oldest transaction still
    /// open, else the offset after the marker). A marker without an open
    /// transaction here (a retried marker, or one whose transaction's
    /// records are no longer in the log) yields none.
    fn observe_marker(
        &mut self,
        pid: i64,
        epoch: i16,
        offset: i64,
        marker: Option<Marker>,
    ) -> Option<AbortedTxnEntry> {
        if let Some(entry) = self.producers.get_mut(&pid) {
            if epoch > entry.epoch {
                entry.epoch = epoch;
                entry.batches.clear();
            }
        }
        let first_offset = self.ongoing.remove(&pid)?;
        (marker == Some(Marker::Abort)).then(|| AbortedTxnEntry {
            producer_id: pid,
            first_offset,
            last_offset: offset,
            last_stable_offset: self.first_unstable_offset().unwrap_or(offset + 1),
        })
    }

    /// Whether a marker for `pid` from a coordinator at `coordinator_epoch`
    /// may be written: not if a newer coordinator has written one here
    /// (Kafka's TRANSACTION_COORDINATOR_FENCED).
    pub(crate) fn check_coordinator_epoch(
        &self,
        pid: i64,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        match self.coordinator_epochs.get(&pid) {
            Some(known) if *known > coordinator_epoch => Err(error::TRANSACTION_COORDINATOR_FENCED),
            _ => Ok(()),
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
                    coordinator_epoch: self.coordinator_epochs.get(&pid).copied().unwrap_or(-1),
                }
            })
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
        let producers = &self.producers;
        self.coordinator_epochs
            .retain(|pid, _| producers.contains_key(pid) || ongoing.contains_key(pid));
        before - self.producers.len()
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
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out.to_vec()
    }

    /// Parses a snapshot into the state and the log end offset it covers;
    /// `None` if it is truncated, corrupt or of another format (including
    /// the older version 2, whose list of aborted transactions now lives in
    /// the log's txnindex files: see [`is_older_snapshot`]).
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
        buf.is_empty().then_some((states, end_offset))
    }
}

/// Identifies a producer-state snapshot file and its format version.
/// Version 3 dropped the aborted transactions (now in `.txnindex` files).
const SNAPSHOT_MAGIC: &[u8] = b"SLPS\x00\x03";
const SNAPSHOT_MAGIC_PREFIX: &[u8] = b"SLPS\x00";

/// Whether `data` is a snapshot of an older format version (which a
/// restart replaces by a replay of the log, rebuilding the txnindex).
pub(crate) fn is_older_snapshot(data: &[u8]) -> bool {
    data.strip_prefix(SNAPSHOT_MAGIC_PREFIX)
        .and_then(|rest| rest.first())
        .is_some_and(|&version| version < SNAPSHOT_MAGIC[SNAPSHOT_MAGIC.len() - 1])
}

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

    /// Makes a batch transactional: attributes bit 4, then fix the CRC.
    fn transactional(b: Bytes) -> BytesMut {
        let mut data = BytesMut::from(&b[..]);
        data[22] |= 0x10;
        let crc = crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        data
    }

    fn observe(states: &mut ProducerStates, b: &[u8]) -> Option<AbortedTxnEntry> {
        states.observe(&BatchHeader::parse(b).unwrap(), b)
    }

    fn check(states: &ProducerStates, b: &Bytes) -> SequenceCheck {
        states.check(&BatchHeader::parse(b).unwrap())
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_its_original_offset() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3, 100);
        assert_eq!(check(&states, &first), SequenceCheck::Append);
        assert_eq!(observe(&mut states, &first), None);
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
        assert_eq!(observe(&mut states, &b), None);
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
            assert_eq!(observe(&mut states, &b), None);
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
        assert_eq!(observe(&mut states, &b), None);
        states.ongoing.insert(9, 12);
        let snapshot = states.encode_snapshot(13);
        let (decoded, end) = ProducerStates::decode_snapshot(&snapshot).unwrap();
        assert_eq!((decoded, end), (states, 13));
        let mut corrupt = snapshot.clone();
        corrupt[10] ^= 1;
        assert!(ProducerStates::decode_snapshot(&corrupt).is_none());
        assert!(ProducerStates::decode_snapshot(&snapshot[..snapshot.len() - 1]).is_none());
        assert!(ProducerStates::decode_snapshot(&[]).is_none());
        assert!(!is_older_snapshot(&snapshot));
    }

    #[test]
    fn version_2_snapshots_are_recognized_and_not_decoded() {
        // A version 2 snapshot: no producers, one open transaction, one
        // aborted transaction.
        let mut v2 = BytesMut::new();
        v2.put_slice(b"SLPS\x00\x02");
        v2.put_i64(20);
        v2.put_u32(0);
        v2.put_u32(1);
        v2.put_i64(9);
        v2.put_i64(12);
        v2.put_u32(1);
        v2.put_i64(8);
        v2.put_i64(1);
        v2.put_i64(4);
        let crc = crc32c::crc32c(&v2);
        v2.put_u32(crc);
        assert!(ProducerStates::decode_snapshot(&v2).is_none());
        assert!(is_older_snapshot(&v2));
        assert!(!is_older_snapshot(b"garbage"));
    }

    #[test]
    fn a_marker_from_a_deposed_coordinator_is_refused() {
        use sluice_protocol::control::marker_batch;
        let mut states = ProducerStates::default();
        assert_eq!(states.check_coordinator_epoch(7, 0), Ok(()));
        let mut commit = marker_batch(Marker::Commit, 7, 0, 3, 1).unwrap();
        BatchMut::new(&mut commit).set_base_offset(4);
        assert_eq!(observe(&mut states, &commit), None);
        assert_eq!(
            states.check_coordinator_epoch(7, 2),
            Err(error::TRANSACTION_COORDINATOR_FENCED)
        );
        assert_eq!(states.check_coordinator_epoch(7, 3), Ok(()));
        assert_eq!(states.check_coordinator_epoch(7, 4), Ok(()));
        assert_eq!(states.check_coordinator_epoch(8, 0), Ok(()), "per producer");
        assert_eq!(states.active().iter().find(|p| p.producer_id == 7), None);
    }

    #[test]
    fn markers_end_transactions_and_aborts_yield_index_entries() {
        use sluice_protocol::control::marker_batch;
        let mut states = ProducerStates::default();
        let data = transactional(batch(7, 0, 0, 2, 5));
        assert_eq!(observe(&mut states, &data), None);
        assert_eq!(states.first_unstable_offset(), Some(5));
        // Another producer's transaction opens at 8, after this one.
        let other = transactional(batch(8, 0, 0, 1, 8));
        assert_eq!(observe(&mut states, &other), None);
        let mut abort = marker_batch(Marker::Abort, 7, 0, 0, 1).unwrap();
        BatchMut::new(&mut abort).set_base_offset(9);
        assert_eq!(
            observe(&mut states, &abort),
            Some(AbortedTxnEntry {
                producer_id: 7,
                first_offset: 5,
                last_offset: 9,
                last_stable_offset: 8,
            }),
            "the LSO after the marker is held back by producer 8"
        );
        assert_eq!(states.first_unstable_offset(), Some(8));
        // A retried marker finds no open transaction: no second entry.
        BatchMut::new(&mut abort).set_base_offset(10);
        assert_eq!(observe(&mut states, &abort), None);
        let mut commit = marker_batch(Marker::Commit, 8, 0, 0, 1).unwrap();
        BatchMut::new(&mut commit).set_base_offset(11);
        assert_eq!(
            observe(&mut states, &commit),
            None,
            "commits are not indexed"
        );
        let again = transactional(batch(7, 0, 3, 1, 12));
        assert_eq!(observe(&mut states, &again), None);
        BatchMut::new(&mut abort).set_base_offset(13);
        assert_eq!(
            observe(&mut states, &abort).map(|e| (e.first_offset, e.last_stable_offset)),
            Some((12, 14)),
            "with nothing else open, the LSO is the offset after the marker"
        );
    }

    #[test]
    fn idle_producers_expire_unless_in_a_transaction() {
        let mut states = ProducerStates::default();
        let b = batch(7, 0, 0, 1, 0);
        assert_eq!(observe(&mut states, &b), None);
        let b = batch(8, 0, 0, 1, 1);
        assert_eq!(observe(&mut states, &b), None);
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
