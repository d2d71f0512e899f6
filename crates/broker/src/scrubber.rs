//! The scrubber: every `log.scrub.interval.ms` (0, the default, turns it
//! off) it verifies the CRC and offsets of every batch in every closed
//! segment, at most `log.scrub.max.bytes.per.second`, and logs each damaged
//! range with ERROR. Without it a damaged closed segment is found only when
//! a consumer fetches it and gets stuck there; with it the operator hears of
//! it first (see docs/OPERATIONS.md, "Corrupt segment files").
//!
//! Files are read on a blocking thread without holding any partition: the
//! list of closed segments is taken under the log lock, then each file is
//! verified unlocked. A segment that retention or the cleaner deletes
//! meanwhile is skipped.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_storage::{verify_segment, StorageError, Throttle};
use tokio::sync::watch;

use crate::state::BrokerState;

/// What the scrubber found, for a metrics endpoint to export (there is
/// none yet).
#[derive(Debug, Default)]
pub struct ScrubProbe {
    passes: AtomicU64,
    bytes_verified: AtomicU64,
    damaged_ranges: AtomicU64,
}

impl ScrubProbe {
    /// Completed passes over every partition.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Segment bytes read and verified, over all passes.
    pub fn bytes_verified(&self) -> u64 {
        self.bytes_verified.load(Ordering::Relaxed)
    }

    /// Damaged ranges found by the last completed pass.
    pub fn damaged_ranges(&self) -> u64 {
        self.damaged_ranges.load(Ordering::Relaxed)
    }
}

pub(crate) async fn scrubber_task(
    state: Arc<BrokerState>,
    probe: Arc<ScrubProbe>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval_ms = state.broker_i64("log.scrub.interval.ms");
    if interval_ms <= 0 {
        return;
    }
    let rate = state.broker_i64("log.scrub.max.bytes.per.second");
    let throttle = Arc::new(Throttle::new(if rate > 0 {
        rate as f64
    } else {
        f64::INFINITY
    }));
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        let pass = tokio::task::spawn_blocking({
            let (state, probe, throttle) = (state.clone(), probe.clone(), throttle.clone());
            let stopped = stopped.clone();
            move || scrub_pass(&state, &probe, &throttle, &stopped)
        });
        if pass.await.is_err() {
            tracing::error!("scrubber pass panicked");
        }
    }
}

/// One pass over the closed segments of every partition; stops early (and
/// publishes nothing) when the broker shuts down.
fn scrub_pass(
    state: &BrokerState,
    probe: &ScrubProbe,
    throttle: &Throttle,
    stopped: &watch::Receiver<bool>,
) {
    // Only paths leave this loop: holding a partition through the pass
    // would keep shutdown from closing it cleanly.
    let segments: Vec<(String, i32, Vec<PathBuf>)> = state
        .partitions
        .all()
        .iter()
        .map(|p| (p.topic.clone(), p.index, p.closed_segment_files()))
        .collect();
    let mut damaged = 0;
    for (topic, partition, files) in segments {
        for file in files {
            if *stopped.borrow() {
                return;
            }
            match verify_segment(&file, throttle) {
                Ok(check) => {
                    probe
                        .bytes_verified
                        .fetch_add(check.bytes, Ordering::Relaxed);
                    for range in &check.damaged {
                        damaged += 1;
                        tracing::error!(
                            topic,
                            partition,
                            segment = %file.display(),
                            bytes = ?range.bytes,
                            first_lost_offset = range.first_lost_offset,
                            resumes_at = ?range.resumes_at,
                            "damaged range in a closed segment: consumers cannot read past it (see `sluice log verify`)"
                        );
                    }
                }
                Err(StorageError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(topic, partition, segment = %file.display(), %error, "cannot verify a segment");
                }
            }
        }
    }
    probe.damaged_ranges.store(damaged, Ordering::Relaxed);
    probe.passes.fetch_add(1, Ordering::Relaxed);
}
