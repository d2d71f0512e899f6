//! Produce's checks of one partition's record set, made as Kafka's
//! LogValidator makes them. A problem with a batch (magic, size, CRC32C,
//! codec, a control batch) refuses the whole set with one error. A problem
//! with records (no key on a compacted topic, a timestamp out of range)
//! names each offending record in `record_errors` (Produce v8+; older
//! versions carry only the error code), so a client fails exactly those
//! records and can tell the others apart. Records are decoded only when a
//! check needs them: on compacted topics, and for timestamps when the
//! batch header or a finite `message.timestamp.before.max.ms` says one may
//! be out of range.

use crate::partition::LogSettings;
use bytes::BytesMut;
use sluice_protocol::batch::{BatchError, BatchHeader, BatchIter};
use sluice_protocol::compression::CodecLevel;
use sluice_protocol::error::{self, ErrorCode};
use sluice_protocol::record::{checked_records, recompress_batch, records_section, RecordView};

/// Why a partition's record set was refused.
pub(crate) struct Rejection {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// The records at fault, in order; empty when the batch itself is.
    pub(crate) record_errors: Vec<RecordError>,
}

/// One refused record: its index in the partition's record set (Kafka's
/// `batch_index`, counted across batches when a set holds several) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordError {
    pub(crate) index: i32,
    pub(crate) message: String,
}

pub(crate) fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        record_errors: Vec::new(),
    }
}

/// The answer for records refused one by one, with Kafka's messages: an
/// invalid timestamp anywhere makes it INVALID_TIMESTAMP, anything else
/// INVALID_RECORD listing the first three.
fn reject_records(record_errors: Vec<(ErrorCode, RecordError)>) -> Rejection {
    let (code, message) = if record_errors
        .iter()
        .any(|(code, _)| *code == error::INVALID_TIMESTAMP)
    {
        (
            error::INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp".to_string(),
        )
    } else {
        let shown: Vec<String> = record_errors
            .iter()
            .take(3)
            .map(|(_, e)| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.index, e.message
                )
            })
            .collect();
        (
            error::INVALID_RECORD,
            format!(
                "One or more records have been rejected due to {} record errors in total, \
                 and only showing the first three errors at most: [{}]",
                record_errors.len(),
                shown.join(", ")
            ),
        )
    };
    Rejection {
        code,
        message,
        record_errors: record_errors.into_iter().map(|(_, e)| e).collect(),
    }
}

/// The partition a record set is for, as Kafka names it in messages.
#[derive(Clone, Copy)]
pub(crate) struct TopicPartition<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
}

impl std::fmt::Display for TopicPartition<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The range of record timestamps the topic accepts, from broker time.
struct TimestampRange {
    lowest: i64,
    highest: i64,
    /// `message.timestamp.before.max.ms` is not its default, unbounded.
    bounded_below: bool,
}

impl TimestampRange {
    fn new(settings: &LogSettings, now: i64) -> Self {
        TimestampRange {
            lowest: now.saturating_sub(settings.timestamp_before_max_ms),
            highest: now.saturating_add(settings.timestamp_after_max_ms),
            bounded_below: settings.timestamp_before_max_ms < i64::MAX,
        }
    }

    /// Whether the batch header shows a record may be out of range. The
    /// header holds the largest timestamp but not the smallest (a later
    /// record may be older than the first), so the records are read
    /// whenever there is a lower bound at all.
    fn may_refuse(&self, header: &BatchHeader<'_>) -> bool {
        self.bounded_below || header.max_timestamp() > self.highest
    }
}

/// Checks every batch of a record set; see the module comment.
pub(crate) fn validate(
    records: &[u8],
    settings: &LogSettings,
    now: i64,
    target: TopicPartition<'_>,
) -> Result<(), Rejection> {
    if records.is_empty() {
        return Err(reject(error::INVALID_RECORD, "empty record set"));
    }
    let range = TimestampRange::new(settings, now);
    let mut first_index: i32 = 0;
    for (position, batch) in BatchIter::new(records).enumerate() {
        if position == 1 {
            return Err(reject(
                error::INVALID_RECORD,
                "Produce requests with version 3+ must have exactly one record batch per partition",
            ));
        }
        let (header, bytes) = batch.map_err(|e| match e {
            BatchError::UnsupportedMagic(m) => reject(
                error::UNSUPPORTED_FOR_MESSAGE_FORMAT,
                format!("record batch magic {m} is not supported; produce v3+ requires magic 2"),
            ),
            other => reject(error::CORRUPT_MESSAGE, other.to_string()),
        })?;
        if bytes.len() > settings.max_message_bytes {
            return Err(reject(
                error::MESSAGE_TOO_LARGE,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes {}",
                    bytes.len(),
                    settings.max_message_bytes
                ),
            ));
        }
        header
            .verify()
            .map_err(|e| reject(error::CORRUPT_MESSAGE, e.to_string()))?;
        header
            .codec()
            .map_err(|e| reject(error::UNSUPPORTED_COMPRESSION_TYPE, e.to_string()))?;
        if header.is_control() {
            return Err(reject(
                error::INVALID_RECORD,
                format!(
                    "Clients are not allowed to write control records in topic partition {target}"
                ),
            ));
        }
        let check_timestamps = if settings.log_append_time {
            header.is_log_append_time()
        } else {
            header.is_log_append_time() || range.may_refuse(&header)
        };
        if settings.compact_policy || check_timestamps {
            let errors = check_records(&header, bytes, settings, &range, first_index, target)?;
            if !errors.is_empty() {
                return Err(reject_records(errors));
            }
        }
        first_index = first_index.saturating_add(header.record_count().max(0));
    }
    Ok(())
}

/// Decodes a batch's records (decompressing them) and returns each
/// record's first problem, as Kafka's `validateRecord`: a missing key on a
/// compacted topic, then its timestamp.
fn check_records(
    header: &BatchHeader<'_>,
    batch: &[u8],
    settings: &LogSettings,
    range: &TimestampRange,
    first_index: i32,
    target: TopicPartition<'_>,
) -> Result<Vec<(ErrorCode, RecordError)>, Rejection> {
    // A record that cannot be read has no index to report: the batch is
    // corrupt as a whole.
    let corrupt =
        |e: sluice_protocol::record::RecordError| reject(error::CORRUPT_MESSAGE, e.to_string());
    let section = records_section(batch).map_err(corrupt)?;
    let records = checked_records(header, &section).map_err(corrupt)?;
    let mut errors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let index = first_index.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
        let problem = if settings.compact_policy && record.key.is_none() {
            Some((
                error::INVALID_RECORD,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {target}"
                ),
            ))
        } else {
            timestamp_problem(header, record, settings, range)
        };
        if let Some((code, message)) = problem {
            errors.push((code, RecordError { index, message }));
        }
    }
    Ok(errors)
}

/// Kafka's `validateTimestamp`: on a CreateTime topic a record's timestamp
/// (unless -1, "none") must lie within the range; a producer may never
/// claim LogAppendTime, which only the broker sets.
fn timestamp_problem(
    header: &BatchHeader<'_>,
    record: &RecordView<'_>,
    settings: &LogSettings,
    range: &TimestampRange,
) -> Option<(ErrorCode, String)> {
    const NO_TIMESTAMP: i64 = -1;
    let offset = header
        .base_offset()
        .saturating_add(i64::from(record.offset_delta));
    // A LogAppendTime batch's records all carry the header's max timestamp.
    let timestamp = if header.is_log_append_time() {
        header.max_timestamp()
    } else {
        header
            .base_timestamp()
            .saturating_add(record.timestamp_delta)
    };
    if !settings.log_append_time && timestamp != NO_TIMESTAMP {
        if timestamp < range.lowest || timestamp > range.highest {
            return Some((
                error::INVALID_TIMESTAMP,
                format!(
                    "Timestamp {timestamp} of message with offset {offset} is out of range. \
                     The timestamp should be within [{}, {}]",
                    range.lowest, range.highest
                ),
            ));
        }
        None
    } else if header.is_log_append_time() {
        Some((
            error::INVALID_TIMESTAMP,
            format!(
                "Invalid timestamp type in message with offset {offset}. \
                 Producer should not set timestamp type to LogAppendTime."
            ),
        ))
    } else {
        None
    }
}

/// Copies validated batches for the append, rewriting each one whose codec is
/// not `target` (Kafka's broker-side recompression). Runs before offsets are
/// assigned; the header fields the sequence check reads are kept.
pub(crate) fn recompress(
    records: &[u8],
    target: CodecLevel,
    max_message_bytes: usize,
) -> Result<BytesMut, Rejection> {
    let corrupt = |e: String| reject(error::CORRUPT_MESSAGE, e);
    let mut out = BytesMut::with_capacity(records.len());
    for batch in BatchIter::new(records) {
        let (header, bytes) = batch.map_err(|e| corrupt(e.to_string()))?;
        if header.codec().map_err(|e| corrupt(e.to_string()))? == target.codec {
            out.extend_from_slice(bytes);
            continue;
        }
        let rewritten = recompress_batch(bytes, target).map_err(|e| {
            corrupt(format!(
                "cannot recompress a {} batch to {}: {e}",
                header.codec().map_or("unknown", |c| c.name()),
                target.codec.name()
            ))
        })?;
        if rewritten.len() > max_message_bytes {
            return Err(reject(
                error::MESSAGE_TOO_LARGE,
                format!(
                    "record batch of {} bytes after recompression to {} exceeds \
                     max.message.bytes {max_message_bytes}",
                    rewritten.len(),
                    target.codec.name()
                ),
            ));
        }
        out.extend_from_slice(&rewritten);
    }
    Ok(out)
}
