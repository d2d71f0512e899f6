//! Which partitions of the coordinators' internal topics
//! (`__consumer_offsets`, `__transaction_state`) this broker has loaded.
//!
//! A coordinator serves the groups or transactional ids of a partition only
//! while this broker leads it and has replayed it at its current leader
//! epoch (Kafka's coordinator epoch). When leadership arrives the partition
//! is replayed into the coordinator's state (requests meanwhile are told
//! COORDINATOR_LOAD_IN_PROGRESS); when it leaves, or the epoch moves on,
//! that state is dropped (requests are told NOT_COORDINATOR, and clients
//! look the coordinator up again). So a coordinator moves with its
//! partition's leadership and the new one starts from what the partition
//! holds, never from state another broker has since changed.

use crate::controller::ApiError;
use crate::group::offsets::{partition_for, OFFSETS_TOPIC};
use crate::locks::{MutexExt, RwLockExt};
use crate::partition::AppendError;
use crate::state::BrokerState;
use crate::txn::TRANSACTION_STATE_TOPIC;
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::StorageError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{watch, Notify};

/// The coordinators' internal topics.
const TOPICS: [&str; 2] = [OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC];

#[derive(Default)]
pub(crate) struct Coordination {
    /// (topic, partition) -> the leader epoch it was loaded at.
    loaded: RwLock<HashMap<(&'static str, i32), i32>>,
    /// Held by one [`Coordination::sync`] at a time.
    syncing: Mutex<()>,
    /// `__transaction_state` partitions loaded since the last
    /// [`resume_loaded`]: their prepared transactions are to be finished.
    to_resume: Mutex<Vec<i32>>,
    /// Woken when partition leadership may have changed.
    changed: Notify,
}

impl Coordination {
    /// Whether this broker coordinates the keys of `topic`-`index`: Ok, or
    /// the error a client is told (COORDINATOR_LOAD_IN_PROGRESS while it is
    /// being loaded, NOT_COORDINATOR when another broker leads it,
    /// COORDINATOR_NOT_AVAILABLE when no broker does).
    pub(crate) fn status(
        &self,
        state: &BrokerState,
        topic: &str,
        index: i32,
    ) -> Result<(), ErrorCode> {
        let Some(partition) = state.partitions.get(topic, index) else {
            return Err(state.partitions.not_here_code(topic, index));
        };
        let loaded = self
            .loaded
            .read_locked("coordination")
            .get(&(topic_name(topic)?, index))
            .copied();
        match loaded {
            Some(epoch) if epoch == partition.leader_epoch() => Ok(()),
            _ => Err(error::COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    /// [`Coordination::status`] for `key` (a group id or transactional
    /// id) of `topic`, which must exist.
    pub(crate) fn status_of_key(
        &self,
        state: &BrokerState,
        topic: &str,
        key: &str,
    ) -> Result<(), ErrorCode> {
        let count = state
            .image()
            .topic(topic)
            .map_or(0, |t| t.partitions.len() as i32);
        if count == 0 {
            return Err(error::COORDINATOR_NOT_AVAILABLE);
        }
        self.status(state, topic, partition_for(key, count))
    }

    /// The coordinator epoch of `key`'s partition of `topic`: the leader
    /// epoch it was loaded at, if this broker coordinates it.
    pub(crate) fn epoch_of_key(&self, state: &BrokerState, topic: &str, key: &str) -> Option<i32> {
        let count = state.image().topic(topic)?.partitions.len() as i32;
        let topic = topic_name(topic).ok()?;
        self.loaded
            .read_locked("coordination")
            .get(&(topic, partition_for(key, count)))
            .copied()
    }

    /// Whether this broker coordinates `key` of `topic`, after `ensured`
    /// (creating the topic on first use): the error a request about it is
    /// answered with if not.
    pub(crate) fn check(
        &self,
        state: &BrokerState,
        ensured: Result<(), ApiError>,
        topic: &str,
        key: &str,
    ) -> Option<ErrorCode> {
        if let Err(e) = ensured {
            tracing::warn!(error = %e.message, "cannot create {topic}");
            return Some(error::COORDINATOR_NOT_AVAILABLE);
        }
        self.status_of_key(state, topic, key).err()
    }

    /// Asks the background task to bring the loaded partitions in line
    /// with leadership.
    pub(crate) fn leadership_changed(&self) {
        self.changed.notify_one();
    }

    /// Loads the internal partitions this broker leads and has not loaded
    /// at their current epoch, and unloads those it no longer leads.
    pub(crate) fn sync(&self, state: &BrokerState) -> Result<(), StorageError> {
        let _syncing = self.syncing.locked("coordination sync");
        let image = state.image();
        for topic in TOPICS {
            let count = image.topic(topic).map_or(0, |t| t.partitions.len() as i32);
            let loaded: Vec<(i32, i32)> = self
                .loaded
                .read_locked("coordination")
                .iter()
                .filter(|((t, _), _)| *t == topic)
                .map(|((_, index), epoch)| (*index, *epoch))
                .collect();
            // Unload first, from the set and then the state, so no request
            // is served from state being dropped.
            let mut unloaded: Vec<i32> = Vec::new();
            for (index, epoch) in loaded {
                let current = state.partitions.get(topic, index).map(|p| p.leader_epoch());
                if current != Some(epoch) {
                    self.loaded
                        .write_locked("coordination")
                        .remove(&(topic, index));
                    unload(state, topic, index, count);
                    unloaded.push(index);
                }
            }
            let mut newly: Vec<i32> = Vec::new();
            let mut records = 0;
            for index in 0..count {
                let Some(partition) = state.partitions.get(topic, index) else {
                    continue;
                };
                if self
                    .loaded
                    .read_locked("coordination")
                    .contains_key(&(topic, index))
                {
                    continue;
                }
                let epoch = partition.leader_epoch();
                records += load(state, topic, &partition, count)?;
                if topic == TRANSACTION_STATE_TOPIC {
                    self.to_resume.locked("coordination").push(index);
                }
                self.loaded
                    .write_locked("coordination")
                    .insert((topic, index), epoch);
                newly.push(index);
            }
            if !unloaded.is_empty() {
                tracing::info!(topic, partitions = ?unloaded, "no longer coordinating for these partitions");
            }
            if !newly.is_empty() {
                tracing::info!(topic, partitions = ?newly, records, "coordinating for these partitions (loaded)");
            }
        }
        Ok(())
    }
}

/// A coordinator's append that failed, as its client is told: leadership
/// that moved away meanwhile took the coordinator with it.
pub(crate) fn append_error(e: &AppendError) -> ApiError {
    let (code, message) = e.code_and_message();
    let code = match code {
        error::NOT_LEADER_OR_FOLLOWER => error::NOT_COORDINATOR,
        code => code,
    };
    ApiError::new(code, message)
}

/// The `&'static` name of an internal topic.
fn topic_name(topic: &str) -> Result<&'static str, ErrorCode> {
    TOPICS
        .into_iter()
        .find(|t| *t == topic)
        .ok_or(error::COORDINATOR_NOT_AVAILABLE)
}

/// Replays `partition` into its coordinator; returns the records read.
fn load(
    state: &BrokerState,
    topic: &str,
    partition: &crate::partition::Partition,
    count: i32,
) -> Result<usize, StorageError> {
    if topic == OFFSETS_TOPIC {
        state.groups.load_partition(state, partition, count)
    } else {
        state.txns.load_partition(partition)
    }
}

fn unload(state: &BrokerState, topic: &str, index: i32, count: i32) {
    if topic == OFFSETS_TOPIC {
        state.groups.unload_partition(index, count);
    } else {
        state.txns.unload_partition(index, count);
    }
}

/// Finishes the prepared transactions of the `__transaction_state`
/// partitions loaded since the last call: a crash or a coordinator move in
/// the middle of ending one leaves it prepared.
pub(crate) fn resume_loaded(state: &Arc<BrokerState>) {
    let partitions: Vec<i32> =
        std::mem::take(&mut *state.coordination.to_resume.locked("coordination"));
    if !partitions.is_empty() {
        crate::txn::TransactionCoordinator::resume_prepared(state, &partitions);
    }
}

/// Keeps the loaded partitions in line with leadership as the metadata
/// changes, until `stopped`.
pub(crate) async fn coordination_task(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = state.coordination.changed.notified() => {}
            _ = stopped.changed() => return,
        }
        let synced = {
            let state = Arc::clone(&state);
            tokio::task::spawn_blocking(move || state.coordination.sync(&state)).await
        };
        match synced {
            Ok(Ok(())) => resume_loaded(&state),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot load coordinator state; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                state.coordination.leadership_changed();
            }
            Err(e) => tracing::error!(error = %e, "coordinator load task failed"),
        }
    }
}
