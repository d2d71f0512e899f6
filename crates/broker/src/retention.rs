//! The retention task: every `log.retention.check.interval.ms` it applies
//! each partition's time and size retention (Kafka's log retention thread).

use crate::state::{now_ms, BrokerState};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub(crate) async fn retention_task(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let interval_ms = state.broker_i64("log.retention.check.interval.ms").max(1) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        // Deleting files and syncing the checkpoint block: keep them off the
        // async threads.
        let pass = tokio::task::spawn_blocking({
            let state = state.clone();
            move || apply_retention(&state, now_ms())
        });
        if pass.await.is_err() {
            tracing::error!("retention pass panicked");
        }
    }
}

/// One pass over every partition.
fn apply_retention(state: &BrokerState, now_ms: i64) {
    for partition in state.partitions.all() {
        match partition.apply_retention(now_ms) {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                deleted,
                log_start_offset = partition.log_start_offset(),
                "retention deleted segments"
            ),
            Err(e) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed")
            }
        }
    }
}
