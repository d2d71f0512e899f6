//! Replication between brokers (Kafka's ISR design): follower fetchers
//! that copy each leader's log, and the leader's ISR changes sent to the
//! controller (AlterPartition's job, as a record appended through the
//! quorum after the controller's checks, KIP-497).
//!
//! A supervisor task keeps one fetcher per (leader, slot) running for the
//! partitions this broker follows (`num.replica.fetchers` slots per
//! leader) and, as leader, proposes dropping followers that stopped
//! catching up for `replica.lag.time.max.ms`.

pub(crate) mod checkpoint;
mod fetcher;
pub(crate) mod peer;

use crate::controller::{ApiError, Controller};
use crate::locks::MutexExt;
use crate::partition::Partition;
use crate::state::{now_ms, BrokerState};
use sluice_metadata::cluster::{change_isr, elect_leaders, IsrChangeError};
use sluice_metadata::MetadataRecord;
use sluice_protocol::error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the supervisor checks fetchers and ISRs.
const SUPERVISE_EVERY: Duration = Duration::from_millis(200);

/// The running fetchers, by (leader, slot).
#[derive(Default)]
pub(crate) struct Fetchers {
    running: Mutex<HashMap<(i32, usize), JoinHandle<()>>>,
}

/// Which of `slots` fetchers of its leader copies `partition`.
fn slot_of(partition: &Partition, slots: usize) -> usize {
    let hash = partition
        .topic
        .bytes()
        .fold(u64::from(partition.index.unsigned_abs()), |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    usize::try_from(hash % slots.max(1) as u64).unwrap_or(0)
}

/// Runs until the broker stops (then stops the fetchers too): fetchers
/// for followed partitions, ISR shrinks for led ones.
pub(crate) async fn supervise(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checkpoint_every = Duration::from_millis(
        u64::try_from(state.broker_i64("replica.high.watermark.checkpoint.interval.ms"))
            .unwrap_or(5000),
    );
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tick.tick() => {}
        }
        ensure_fetchers(&state);
        shrink_isrs(&state);
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = tokio::time::Instant::now();
            let writer = state.clone();
            let written =
                tokio::task::spawn_blocking(move || writer.partitions.checkpoint_high_watermarks())
                    .await;
            if let Ok(Err(e)) = written {
                tracing::warn!(error = %e, "cannot write the high-watermark checkpoint");
            }
        }
    }
    for (_, task) in state.fetchers.running.locked("fetchers").drain() {
        task.abort();
    }
}

fn fetcher_slots(state: &BrokerState) -> usize {
    usize::try_from(state.broker_i64("num.replica.fetchers"))
        .unwrap_or(1)
        .max(1)
}

fn ensure_fetchers(state: &Arc<BrokerState>) {
    let slots = fetcher_slots(state);
    let mut wanted: Vec<(i32, usize)> = state
        .partitions
        .followed()
        .iter()
        .filter_map(|p| p.followed_leader().map(|l| (l, slot_of(p, slots))))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut running = state.fetchers.running.locked("fetchers");
    running.retain(|_, task| !task.is_finished());
    for key in wanted {
        if let std::collections::hash_map::Entry::Vacant(slot_entry) = running.entry(key) {
            let (leader, slot) = key;
            tracing::debug!(leader, slot, "starting a replica fetcher");
            slot_entry.insert(tokio::spawn(fetcher::run(
                state.clone(),
                leader,
                slot,
                slots,
            )));
        }
    }
}

fn shrink_isrs(state: &Arc<BrokerState>) {
    let lag_max_ms = state.broker_i64("replica.lag.time.max.ms");
    let now = now_ms();
    for partition in state.partitions.all() {
        partition.set_replica_lag_max_ms(lag_max_ms);
        if let Some((epoch, isr)) = partition.propose_isr_change(now) {
            submit_isr_change(state, partition, epoch, isr);
        }
    }
}

/// Sends a leader's ISR change to the controller, off the reactor: the
/// controller checks it against the latest image (this broker still
/// leads in `epoch`, new members are usable replicas) and appends it. The
/// change takes effect when its image arrives; a refused one is proposed
/// again later, against what the image then says.
pub(crate) fn submit_isr_change(
    state: &Arc<BrokerState>,
    partition: Arc<Partition>,
    epoch: i32,
    isr: Vec<i32>,
) {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let (topic_id, index, node) = (partition.topic_id, partition.index, state.node_id);
        let outcome = Controller::new(&state).commit_with(|image| {
            change_isr(image, topic_id, index, node, epoch, &isr)
                .map(|record| {
                    let changed = record.is_some();
                    (record.into_iter().collect(), changed)
                })
                .map_err(|e| {
                    let code = match e {
                        IsrChangeError::UnknownPartition => error::UNKNOWN_TOPIC_OR_PARTITION,
                        IsrChangeError::FencedLeaderEpoch { .. } => error::FENCED_LEADER_EPOCH,
                        IsrChangeError::IneligibleReplica(_) => error::INELIGIBLE_REPLICA,
                        IsrChangeError::LeaderNotInIsr => error::INVALID_REQUEST,
                    };
                    ApiError::new(code, e.to_string())
                })
        });
        match outcome {
            Ok(true) => {
                tracing::info!(topic = %partition.topic, partition = index, epoch, ?isr, "ISR changed");
            }
            // The image has that ISR already: nothing is pending any more.
            Ok(false) => partition.end_isr_proposal(),
            Err(e) => {
                tracing::warn!(topic = %partition.topic, partition = index, epoch, ?isr, error = %e.message, "the controller did not take the ISR change");
                partition.end_isr_proposal();
            }
        }
    });
}

/// How long a stopping broker waits for the controller to take its
/// leaderships before it stops anyway (they then move when its session
/// times out).
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's controlled shutdown: before a broker stops, the controller
/// fences it, which takes it out of every ISR and gives each partition it
/// leads to another in-sync replica with a new leader epoch. Clients then
/// see NOT_LEADER_OR_FOLLOWER (retriable) and follow Metadata, instead of
/// waiting out `broker.session.timeout.ms`. Only with another live broker
/// to take over: a single node keeps its leaderships.
pub(crate) async fn controlled_shutdown(state: &Arc<BrokerState>) {
    let node = state.node_id;
    let others_live = move |image: &sluice_metadata::MetadataImage| {
        image.brokers.iter().any(|(id, b)| *id != node && !b.fenced)
    };
    if !others_live(&state.image()) {
        return;
    }
    let moving = state.clone();
    let handed_over = tokio::task::spawn_blocking(move || {
        Controller::new(&moving).commit_with(|image| {
            let registered = image.brokers.get(&node).is_some_and(|b| !b.fenced);
            if !registered || !others_live(image) {
                return Ok((Vec::new(), ()));
            }
            let fenced = MetadataRecord::BrokerFenced { node_id: node };
            let mut next = image.clone();
            next.apply(&fenced);
            let mut records = vec![fenced];
            let unclean = moving.config.get("unclean.leader.election.enable") == Some("true");
            records.extend(elect_leaders(&next, unclean));
            Ok((records, ()))
        })
    });
    match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, handed_over).await {
        Ok(Ok(Ok(()))) => {
            tracing::info!("controlled shutdown: leaderships handed to other in-sync replicas");
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e.message, "controlled shutdown refused; leaderships move when this broker's session times out");
        }
        Ok(Err(e)) => tracing::error!(error = %e, "controlled shutdown task failed"),
        Err(_) => tracing::warn!(
            "the controller did not take the controlled shutdown in time; stopping anyway"
        ),
    }
}
