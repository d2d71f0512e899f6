//! The producer's record accumulator: per-partition queues of batches that
//! become sendable when full (`batch.size`), when they have waited
//! `linger.ms`, or when the producer is flushing. Pure data structure, no
//! I/O, so the batching rules are unit-testable.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_protocol::compression::{encode_batch, plain_record};
use sluice_protocol::kafka_protocol::indexmap::IndexMap;
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::records::{Compression, Record};

use crate::error::{Error, Result};
use crate::producer::{Completion, RecordMetadata};
use crate::transaction::ProducerIdentity;

/// Topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition from borrowed parts.
    pub fn of(topic: &str, partition: i32) -> Self {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Size of the v2 batch header.
const BATCH_OVERHEAD: usize = 61;

/// Upper bound of a record's encoded size (body varints + attributes).
pub(crate) fn estimate_record_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Option<Bytes>)],
) -> usize {
    let mut n = 21 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    for (k, v) in headers {
        n += 10 + k.len() + v.as_ref().map_or(0, |b| b.len());
    }
    n
}

/// A batch of records for one partition, with their completions.
pub(crate) struct ProducerBatch {
    pub(crate) tp: TopicPartition,
    /// Creation order within the accumulator: a later batch of a partition
    /// holds later records. Retries use it to go back to their place.
    pub(crate) seq: u64,
    pub(crate) records: Vec<Record>,
    pub(crate) completions: Vec<Completion>,
    pub(crate) size: usize,
    pub(crate) created: Instant,
    pub(crate) attempts: u32,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) encoded: Option<Bytes>,
    /// Idempotence: the producer identity and base sequence the batch was
    /// (or will be) written with. Kept across retries so the broker can
    /// recognise a duplicate; reassigned only under a new identity.
    pub(crate) sequenced: Option<Sequenced>,
}

/// A batch's producer id, epoch and base sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequenced {
    pub(crate) identity: ProducerIdentity,
    pub(crate) base_sequence: i32,
    /// Part of a transaction (attributes bit 4).
    pub(crate) transactional: bool,
}

impl ProducerBatch {
    fn new(tp: TopicPartition, seq: u64, now: Instant) -> Self {
        ProducerBatch {
            tp,
            seq,
            records: Vec::new(),
            completions: Vec::new(),
            size: BATCH_OVERHEAD,
            created: now,
            attempts: 0,
            retry_at: None,
            encoded: None,
            sequenced: None,
        }
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Gives the batch a producer identity and base sequence; the bytes
    /// are encoded again with them.
    pub(crate) fn set_sequence(&mut self, sequenced: Sequenced) {
        self.sequenced = Some(sequenced);
        self.encoded = None;
        for (i, r) in self.records.iter_mut().enumerate() {
            r.producer_id = sequenced.identity.id;
            r.producer_epoch = sequenced.identity.epoch;
            r.transactional = sequenced.transactional;
            // The encoder keeps one batch while offset - sequence is
            // constant (in wrapping i32 arithmetic), and writes only the
            // first record's sequence: the batch's base sequence.
            r.sequence = sequenced.base_sequence.wrapping_add(i as i32);
        }
    }

    /// Encodes the batch (once; retries reuse the bytes). Record `i` gets
    /// offset delta `i` and, without idempotence, sequence `i - 1` so the
    /// batch's base sequence is -1 and the encoder emits a single batch.
    pub(crate) fn encode(&mut self, compression: Compression) -> Result<Bytes> {
        if let Some(b) = &self.encoded {
            return Ok(b.clone());
        }
        let mut buf = BytesMut::with_capacity(self.size);
        encode_batch(&mut buf, &self.records, compression)
            .map_err(|e| Error::Protocol(format!("encoding batch for {}: {e}", self.tp)))?;
        let b = buf.freeze();
        self.encoded = Some(b.clone());
        Ok(b)
    }

    /// Completes every record: offsets count up from `base_offset`; the
    /// timestamp is `log_append_time` when the broker set one.
    pub(crate) fn complete(self, base_offset: i64, log_append_time: i64) {
        let ProducerBatch {
            tp,
            records,
            completions,
            ..
        } = self;
        for (i, (rec, c)) in records.iter().zip(completions).enumerate() {
            c.complete(Ok(RecordMetadata {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: if base_offset >= 0 {
                    base_offset + i as i64
                } else {
                    -1
                },
                timestamp: if log_append_time >= 0 {
                    log_append_time
                } else {
                    rec.timestamp
                },
            }));
        }
    }

    /// Fails every record with `err`.
    pub(crate) fn fail(self, err: Error) {
        for c in self.completions {
            c.complete(Err(err.clone()));
        }
    }
}

/// A new record to append.
pub(crate) struct NewRecord {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    pub(crate) timestamp: i64,
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendOutcome {
    /// The record did not fit in the open batch, which is now closed (full).
    pub(crate) closed_previous: bool,
}

pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    queues: HashMap<TopicPartition, VecDeque<ProducerBatch>>,
    records: usize,
    next_seq: u64,
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration) -> Self {
        Accumulator {
            batch_size,
            linger,
            queues: HashMap::new(),
            records: 0,
            next_seq: 0,
        }
    }

    /// Records waiting in the accumulator.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends a record to the open batch of `tp`, opening a new batch when
    /// the record does not fit (a record larger than `batch.size` gets a
    /// batch of its own).
    pub(crate) fn append(
        &mut self,
        tp: TopicPartition,
        rec: NewRecord,
        completion: Completion,
        now: Instant,
    ) -> AppendOutcome {
        let size = estimate_record_size(rec.key.as_deref(), rec.value.as_deref(), &rec.headers);
        let queue = self.queues.entry(tp.clone()).or_default();
        let mut outcome = AppendOutcome {
            closed_previous: false,
        };
        let needs_new = match queue.back() {
            None => true,
            Some(b) => {
                let sealed = b.encoded.is_some() || b.attempts > 0;
                if sealed {
                    true
                } else if b.size + size > self.batch_size && !b.records.is_empty() {
                    outcome.closed_previous = true;
                    true
                } else {
                    false
                }
            }
        };
        if needs_new {
            queue.push_back(ProducerBatch::new(tp, self.next_seq, now));
            self.next_seq += 1;
        }
        let batch = queue.back_mut().expect("just ensured");
        let i = batch.records.len() as i64;
        let headers: IndexMap<StrBytes, Option<Bytes>> = rec
            .headers
            .into_iter()
            .map(|(k, v)| (StrBytes::from_string(k), v))
            .collect();
        let mut record = plain_record(i, rec.timestamp, rec.key, rec.value);
        record.headers = headers;
        batch.records.push(record);
        batch.completions.push(completion);
        batch.size += size;
        self.records += 1;
        outcome
    }

    /// Partitions whose first batch can be sent now, and the earliest instant
    /// at which another batch becomes sendable.
    pub(crate) fn ready(
        &self,
        now: Instant,
        flush: bool,
    ) -> (Vec<TopicPartition>, Option<Instant>) {
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let mut wake = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for (tp, q) in &self.queues {
            let Some(front) = q.front() else { continue };
            if let Some(at) = front.retry_at {
                if at > now {
                    wake(at);
                    continue;
                }
            }
            let full = q.len() > 1 || front.size >= self.batch_size;
            let deadline = front.created + self.linger;
            if full || flush || front.retry_at.is_some() || deadline <= now {
                ready.push(tp.clone());
            } else {
                wake(deadline);
            }
        }
        ready.sort();
        (ready, next)
    }

    /// Removes and returns the first batch of `tp`.
    pub(crate) fn drain(&mut self, tp: &TopicPartition) -> Option<ProducerBatch> {
        let q = self.queues.get_mut(tp)?;
        let b = q.pop_front();
        if q.is_empty() {
            self.queues.remove(tp);
        }
        if let Some(b) = &b {
            self.records -= b.len();
        }
        b
    }

    /// Puts a batch back into its queue to be retried at `retry_at`, ahead
    /// of every batch created after it. Usually that is the front; when
    /// several batches of a partition were in flight and failed, they end
    /// up in creation order whatever order their failures arrived in.
    pub(crate) fn reenqueue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        self.records += batch.len();
        let queue = self.queues.entry(batch.tp.clone()).or_default();
        let at = queue.partition_point(|b| b.seq < batch.seq);
        queue.insert(at, batch);
    }

    /// Removes every batch (a transaction is aborting or has failed).
    pub(crate) fn drain_all(&mut self) -> Vec<ProducerBatch> {
        self.records = 0;
        self.queues.drain().flat_map(|(_, q)| q).collect()
    }

    /// Removes batches created more than `timeout` ago.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<ProducerBatch> {
        let mut out = Vec::new();
        for q in self.queues.values_mut() {
            while q
                .front()
                .is_some_and(|b| now.saturating_duration_since(b.created) >= timeout)
            {
                let b = q.pop_front().expect("checked");
                self.records -= b.len();
                out.push(b);
            }
        }
        self.queues.retain(|_, q| !q.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::compression::decode_batches;
    use tokio::sync::oneshot;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn rec(value: &str) -> NewRecord {
        NewRecord {
            key: Some(Bytes::from(format!("k-{value}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
            timestamp: 1_700_000_000_000,
        }
    }

    fn completion() -> (Completion, oneshot::Receiver<Result<RecordMetadata>>) {
        let (tx, rx) = oneshot::channel();
        (Completion::Oneshot(tx), rx)
    }

    #[test]
    fn linger_controls_readiness() {
        let now = Instant::now();
        let mut acc = Accumulator::new(16384, Duration::from_millis(5));
        let (c, _rx) = completion();
        acc.append(tp(0), rec("a"), c, now);
        let (ready, next) = acc.ready(now, false);
        assert!(ready.is_empty());
        assert_eq!(next, Some(now + Duration::from_millis(5)));
        let (ready, _) = acc.ready(now + Duration::from_millis(5), false);
        assert_eq!(ready, vec![tp(0)]);
        // Flushing makes it ready immediately.
        let (ready, _) = acc.ready(now, true);
        assert_eq!(ready, vec![tp(0)]);
    }

    #[test]
    fn full_batch_is_ready_and_new_batch_opens() {
        let now = Instant::now();
        let mut acc = Accumulator::new(200, Duration::from_secs(60));
        let mut closed = 0;
        for i in 0..10 {
            let (c, _rx) = completion();
            let out = acc.append(tp(1), rec(&"x".repeat(40 + i)), c, now);
            closed += usize::from(out.closed_previous);
        }
        assert!(closed >= 3, "batches closed: {closed}");
        assert_eq!(acc.len(), 10);
        let (ready, _) = acc.ready(now, false);
        assert_eq!(ready, vec![tp(1)]);
        let first = acc.drain(&tp(1)).unwrap();
        assert!(first.size <= 200, "{}", first.size);
        assert!(first.len() >= 1);
        assert_eq!(acc.len(), 10 - first.len());
    }

    #[test]
    fn oversized_record_gets_its_own_batch() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_secs(60));
        let (c, _rx) = completion();
        acc.append(tp(0), rec(&"y".repeat(500)), c, now);
        let (c, _rx2) = completion();
        let out = acc.append(tp(0), rec("small"), c, now);
        assert!(out.closed_previous);
        assert_eq!(acc.drain(&tp(0)).unwrap().len(), 1);
        assert_eq!(acc.drain(&tp(0)).unwrap().len(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn retry_backoff_and_expiry() {
        let now = Instant::now();
        let mut acc = Accumulator::new(16384, Duration::ZERO);
        let (c, _rx) = completion();
        acc.append(tp(0), rec("a"), c, now);
        let mut b = acc.drain(&tp(0)).unwrap();
        b.attempts = 1;
        acc.reenqueue(b, now + Duration::from_millis(100));
        let (ready, next) = acc.ready(now, true);
        assert!(ready.is_empty());
        assert_eq!(next, Some(now + Duration::from_millis(100)));
        // New records do not join a batch being retried.
        let (c, _rx2) = completion();
        acc.append(tp(0), rec("b"), c, now);
        let (ready, _) = acc.ready(now + Duration::from_millis(100), false);
        assert_eq!(ready, vec![tp(0)]);
        let expired = acc.expire(now + Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(expired.len(), 2);
        assert!(acc.is_empty());
    }

    #[test]
    fn retried_batches_keep_creation_order() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::ZERO);
        let mut rxs = Vec::new();
        for v in ["a", "b", "c"] {
            let (c, rx) = completion();
            rxs.push(rx);
            acc.append(tp(0), rec(&format!("{v}{}", "x".repeat(40))), c, now);
        }
        // Batches a and b are in flight together and both fail, a's failure
        // handled first (putting each back at the front would yield b, a).
        // c was never sent.
        let a = acc.drain(&tp(0)).unwrap();
        let b = acc.drain(&tp(0)).unwrap();
        acc.reenqueue(a, now);
        acc.reenqueue(b, now);
        let (c, rx) = completion();
        rxs.push(rx);
        acc.append(tp(0), rec("d"), c, now);
        let order: Vec<u8> = std::iter::from_fn(|| acc.drain(&tp(0)))
            .map(|b| b.records[0].value.as_ref().unwrap()[0])
            .collect();
        assert_eq!(order, b"abcd");
    }

    #[test]
    fn batch_encoding_round_trips_for_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let now = Instant::now();
            let mut acc = Accumulator::new(1 << 20, Duration::ZERO);
            let mut rxs = Vec::new();
            for i in 0..25 {
                let (c, rx) = completion();
                rxs.push(rx);
                acc.append(tp(0), rec(&format!("value-{i}")), c, now);
            }
            let mut batch = acc.drain(&tp(0)).unwrap();
            let bytes = batch.encode(codec).unwrap();
            let header = sluice_protocol::batch::BatchHeader::parse(&bytes).unwrap();
            header.verify().unwrap();
            assert_eq!(header.base_sequence(), -1);
            assert_eq!(header.record_count(), 25);
            assert_eq!(header.total_len(), bytes.len(), "exactly one batch");
            let back = decode_batches(bytes).unwrap();
            assert_eq!(back.len(), 25);
            for (i, r) in back.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
                assert_eq!(r.key.as_deref(), Some(format!("k-value-{i}").as_bytes()));
                assert_eq!(r.headers.len(), 1);
                assert_eq!(r.timestamp, 1_700_000_000_000);
            }
            batch.complete(100, -1);
            let md = rxs[3].try_recv().unwrap().unwrap();
            assert_eq!(
                (md.partition, md.offset, md.timestamp),
                (0, 103, 1_700_000_000_000)
            );
        }
    }
}
