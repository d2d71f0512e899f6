//! Idempotent producers: per partition, the last five batches of every
//! producer id (sequence range and the offsets they got), so a retried batch
//! is answered with its original offsets instead of being written twice, a
//! gap in sequences is refused, and a stale epoch is fenced.
//!
//! The state is rebuilt from batch headers at start (see
//! [`ProducerStates::observe`]); nothing but headers is read.

use sluice_protocol::batch::BatchHeader;
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

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchSpan>,
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

#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
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

    /// Records a batch as written (its header carries its final offsets).
    pub(crate) fn observe(&mut self, header: &BatchHeader<'_>) {
        let pid = header.producer_id();
        if pid < 0 || header.is_control() {
            return;
        }
        let epoch = header.producer_epoch();
        let entry = self.producers.entry(pid).or_insert(ProducerEntry {
            epoch,
            batches: VecDeque::new(),
        });
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

    fn check(states: &ProducerStates, b: &Bytes) -> SequenceCheck {
        states.check(&BatchHeader::parse(b).unwrap())
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_its_original_offset() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3, 100);
        assert_eq!(check(&states, &first), SequenceCheck::Append);
        states.observe(&BatchHeader::parse(&first).unwrap());
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
        states.observe(&BatchHeader::parse(&batch(7, 1, 0, 3, 0)).unwrap());
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
            states.observe(&BatchHeader::parse(&batch(1, 0, i, 1, i64::from(i))).unwrap());
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
}
