//! A histogram recorded with atomics only: `prometheus-client`'s own
//! `Histogram` takes a mutex on every observation, which the produce and
//! fetch paths must not.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fixed buckets over integer observations (nanoseconds, bytes) that are
/// exposed in a base unit (`scale` per raw unit: 1e-9 for seconds).
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Upper bounds in raw units, ascending; a last bucket catches the rest.
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    scale: f64,
}

/// Request and sync latencies: 0.5 ms to 10 s, in nanoseconds.
pub(crate) const LATENCY_BOUNDS_NANOS: &[u64] = &[
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Produce batch sizes: 256 B to 16 MiB.
pub(crate) const BATCH_BOUNDS_BYTES: &[u64] = &[
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
];

impl Histogram {
    pub(crate) fn new(bounds: &'static [u64], scale: f64) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Durations, observed in nanoseconds and exposed in seconds.
    pub(crate) fn seconds() -> Histogram {
        Histogram::new(LATENCY_BOUNDS_NANOS, 1e-9)
    }

    pub(crate) fn bytes() -> Histogram {
        Histogram::new(BATCH_BOUNDS_BYTES, 1.0)
    }

    pub(crate) fn observe(&self, raw: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < raw);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(raw, Ordering::Relaxed);
    }

    pub(crate) fn observe_duration(&self, elapsed: std::time::Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let upper = self
                    .bounds
                    .get(i)
                    .map_or(f64::INFINITY, |&b| b as f64 * self.scale);
                (upper, count.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.sum.load(Ordering::Relaxed) as f64 * self.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(&[10, 100], 1.0);
        for v in [0, 10, 11, 100, 101, 5_000] {
            h.observe(v);
        }
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [2, 2, 2]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum.load(Ordering::Relaxed), 5_222);
    }
}
