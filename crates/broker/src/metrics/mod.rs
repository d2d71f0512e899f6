//! What the broker measures. Recording costs the produce and fetch paths
//! atomics only (no lock, no allocation): counters live in fixed tables and
//! in each partition's [`PartitionStats`], and [`render`] turns them into
//! the OpenMetrics text that `/metrics` serves, at scrape time.

mod histogram;
mod process;
mod render;
mod response_errors;

pub(crate) use histogram::Histogram;
pub(crate) use render::render;
pub(crate) use response_errors::error_of;

use crate::handlers::APIS;
use kafka_protocol::messages::ApiKey;
use sluice_protocol::error::ErrorCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Error codes -1 (UNKNOWN_SERVER_ERROR) up to this count minus 2 have a
/// slot each; Kafka 4's highest is in the 130s.
const ERROR_SLOTS: usize = 200;
/// API keys below this are looked up in a table; Kafka's highest is ~92.
const MAX_API_KEY: usize = 128;

fn error_slot(code: ErrorCode) -> usize {
    usize::try_from(i32::from(code) + 1)
        .unwrap_or(0)
        .min(ERROR_SLOTS - 1)
}

fn slot_error(slot: usize) -> ErrorCode {
    slot as ErrorCode - 1
}

/// Per-API request counts (by the error the response reports) and latency.
#[derive(Debug)]
struct RequestStats {
    key: ApiKey,
    by_error: Box<[AtomicU64]>,
    seconds: Histogram,
}

/// The broker-wide measurements.
#[derive(Debug)]
pub(crate) struct BrokerMetrics {
    /// Index into `requests` by API key (`u8::MAX`: not served).
    api_index: [u8; MAX_API_KEY],
    requests: Box<[RequestStats]>,
    produce_batch_bytes: Histogram,
    connections: Arc<AtomicI64>,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        let mut api_index = [u8::MAX; MAX_API_KEY];
        for (i, api) in APIS.iter().enumerate() {
            if let Ok(key) = usize::try_from(api.key as i16) {
                if key < MAX_API_KEY {
                    api_index[key] = u8::try_from(i).expect("fewer than 255 APIs");
                }
            }
        }
        BrokerMetrics {
            api_index,
            requests: APIS
                .iter()
                .map(|api| RequestStats {
                    key: api.key,
                    by_error: (0..ERROR_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                    seconds: Histogram::seconds(),
                })
                .collect(),
            produce_batch_bytes: Histogram::bytes(),
            connections: Arc::default(),
        }
    }
}

impl BrokerMetrics {
    fn request_stats(&self, key: ApiKey) -> Option<&RequestStats> {
        let index = *self.api_index.get(usize::try_from(key as i16).ok()?)?;
        self.requests.get(usize::from(index))
    }

    /// One answered request: its API, the error its response reports and
    /// how long it took from arriving whole to being encoded.
    pub(crate) fn record_request(&self, key: ApiKey, error: ErrorCode, elapsed: Duration) {
        if let Some(stats) = self.request_stats(key) {
            stats.by_error[error_slot(error)].fetch_add(1, Ordering::Relaxed);
            stats.seconds.observe_duration(elapsed);
        }
    }

    pub(crate) fn record_produce_batch(&self, bytes: usize) {
        self.produce_batch_bytes.observe(bytes as u64);
    }

    /// Counts a connection until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> ConnectionGauge {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(Arc::clone(&self.connections))
    }
}

/// Keeps a connection counted in `sluice_connections` while it lives.
pub(crate) struct ConnectionGauge(Arc<AtomicI64>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One partition's traffic and log size, updated where the partition
/// already does the work (append under its log lock, a fetch's read).
#[derive(Debug, Default)]
pub(crate) struct PartitionStats {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    log_end_offset: AtomicI64,
    log_size_bytes: AtomicU64,
}

impl PartitionStats {
    pub(crate) fn record_append(&self, bytes: usize, records: i64) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.records_in
            .fetch_add(u64::try_from(records).unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn record_fetch(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (bytes in, bytes out, records in) since the broker started.
    pub(crate) fn traffic(&self) -> (u64, u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.records_in.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn log_size_bytes(&self) -> u64 {
        self.log_size_bytes.load(Ordering::Relaxed)
    }

    /// Publishes the log's end offset and size after a change to it.
    pub(crate) fn publish_log(&self, log_end_offset: i64, size_bytes: u64) {
        self.log_end_offset.store(log_end_offset, Ordering::Relaxed);
        self.log_size_bytes.store(size_bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_api_and_error() {
        let metrics = BrokerMetrics::default();
        metrics.record_request(ApiKey::Produce, 0, Duration::from_millis(2));
        metrics.record_request(ApiKey::Produce, 3, Duration::from_millis(2));
        metrics.record_request(ApiKey::Produce, -1, Duration::from_millis(2));
        let produce = metrics.request_stats(ApiKey::Produce).unwrap();
        assert_eq!(produce.seconds.count(), 3);
        let counted: Vec<(ErrorCode, u64)> = produce
            .by_error
            .iter()
            .enumerate()
            .map(|(slot, n)| (slot_error(slot), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(counted, [(-1, 1), (0, 1), (3, 1)]);
        let open = metrics.connection_opened();
        assert_eq!(metrics.connections.load(Ordering::Relaxed), 1);
        drop(open);
        assert_eq!(metrics.connections.load(Ordering::Relaxed), 0);
    }
}
