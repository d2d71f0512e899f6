//! The log cleaner task (Kafka's LogCleaner with one thread): it cleans the
//! dirtiest compacted partition that is due, one pass at a time, and sleeps
//! `log.cleaner.backoff.ms` when none is.

use crate::locks::MutexExt;
use crate::partition::Partition;
use crate::state::{now_ms, BrokerState};
use sluice_metadata::Uuid;
use sluice_storage::Throttle;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Partitions whose cleaning failed (a corrupt batch, an I/O error): like
/// Kafka's uncleanable partitions, skipped until the broker restarts.
type Uncleanable = Mutex<HashSet<(String, i32, Uuid)>>;

pub(crate) async fn cleaner_task(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    if state.broker_setting("log.cleaner.enable").value.as_deref() != Some("true") {
        return;
    }
    let uncleanable: Arc<Uncleanable> = Arc::default();
    loop {
        let pass = tokio::task::spawn_blocking({
            let state = state.clone();
            let uncleanable = uncleanable.clone();
            move || clean_dirtiest(&state, &uncleanable, now_ms())
        });
        let cleaned = tokio::select! {
            _ = stopped.changed() => return,
            result = pass => result.unwrap_or_else(|_| {
                tracing::error!("cleaner pass panicked");
                false
            }),
        };
        if cleaned {
            continue;
        }
        let backoff = state.broker_i64("log.cleaner.backoff.ms").max(1) as u64;
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(backoff)) => {}
        }
    }
}

/// Cleans the compacted partition with the highest dirty ratio among those
/// due; returns whether there was one.
fn clean_dirtiest(state: &BrokerState, uncleanable: &Uncleanable, now_ms: i64) -> bool {
    let skip = |p: &Partition| {
        uncleanable
            .locked("uncleanable")
            .contains(&(p.topic.clone(), p.index, p.topic_id))
    };
    let mut dirtiest = None;
    for partition in state.partitions.all() {
        if skip(&partition) {
            continue;
        }
        match partition.cleanable_range(now_ms) {
            Ok(Some((range, config))) => {
                let ratio = range.dirty_ratio();
                if dirtiest.as_ref().is_none_or(|(best, _, _)| ratio > *best) {
                    dirtiest = Some((ratio, config, partition));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "cannot measure the dirty ratio");
            }
        }
    }
    let Some((ratio, mut config, partition)) = dirtiest else {
        return false;
    };
    config.dedupe_buffer_bytes = state
        .broker_i64("log.cleaner.dedupe.buffer.size")
        .try_into()
        .unwrap_or(usize::MAX);
    let rate = state
        .broker_setting("log.cleaner.io.max.bytes.per.second")
        .value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(f64::INFINITY);
    match partition.clean(&config, now_ms, &Throttle::new(rate)) {
        Ok(Some(stats)) => {
            tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                dirty_ratio = ratio,
                read_bytes = stats.bytes_read,
                written_bytes = stats.bytes_written,
                records_removed = stats.records_removed,
                segments = stats.segments_after,
                cleaned_up_to = stats.cleaned_up_to,
                "cleaned a compacted partition"
            );
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "cleaning failed; the partition is not cleaned again until restart");
            uncleanable.locked("uncleanable").insert((
                partition.topic.clone(),
                partition.index,
                partition.topic_id,
            ));
            false
        }
    }
}
