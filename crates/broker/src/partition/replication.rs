//! A partition's part in replication: its role (leader or follower), the
//! high watermark the leader derives from its followers' fetches, the
//! acks=all wait, and the follower's copy of the leader's log (append as
//! written, truncation of a divergent tail).

use super::{load_producer_state, snapshot_files, Partition};
use crate::locks::MutexExt;
use crate::replica::{AssignedRole, Assignment, LeaderState, Role};
use bytes::Bytes;
use sluice_protocol::batch::BatchIter;
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::StorageError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What the leader answers a follower's fetch with.
pub(crate) struct FollowerRead {
    pub(crate) records: Bytes,
    pub(crate) high_watermark: i64,
    pub(crate) log_start_offset: i64,
    /// Where the follower's log leaves this one (epoch, end offset of that
    /// epoch here), when its last fetched epoch says it has diverged: it
    /// truncates there before fetching again (KIP-320's diverging epoch).
    pub(crate) diverging: Option<(i32, i64)>,
    /// An ISR change this fetch calls for (the follower caught up), for the
    /// caller to send to the controller.
    pub(crate) isr_change: Option<(i32, Vec<i32>)>,
}

/// A follower fetch the leader refuses.
pub(crate) enum FollowerReadError {
    Refused(ErrorCode),
    Storage(StorageError),
}

impl Partition {
    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// The broker this one copies the partition from, when it follows.
    pub(crate) fn followed_leader(&self) -> Option<i32> {
        match *self.role.locked("role") {
            Role::Follower { leader } if leader >= 0 => Some(leader),
            _ => None,
        }
    }

    /// Takes the role the image gives this broker. A new leader epoch
    /// starts in the log at its end (as Kafka's makeLeader); a change of
    /// ISR or replicas within the same epoch updates the leader's view.
    pub(crate) fn apply_assignment(&self, assignment: &Assignment, now_ms: i64) {
        let min_insync = self.settings().min_insync_replicas;
        let epoch = assignment.leader_epoch;
        let mut role = self.role.locked("role");
        let same_epoch = self.leader_epoch() == epoch;
        match (&assignment.role, &mut *role) {
            (AssignedRole::Lead { replicas, isr }, Role::Leader(state)) if same_epoch => {
                state.update(replicas.clone(), isr.clone(), min_insync);
            }
            (AssignedRole::Lead { replicas, isr }, current) => {
                let opened = self.leader_epoch() < 0;
                let end = {
                    let mut log = self.log.locked("log");
                    log.start_leader_epoch(epoch);
                    log.log_end_offset()
                };
                self.leader_epoch.store(epoch, Ordering::Release);
                *current = Role::Leader(LeaderState::new(
                    self.node_id,
                    replicas.clone(),
                    isr.clone(),
                    min_insync,
                    end,
                    now_ms,
                ));
                // Every partition takes a role when it opens: only changes
                // are worth the operator's attention.
                if opened {
                    tracing::debug!(topic = %self.topic, partition = self.index, epoch, ?isr, "leading the partition");
                } else {
                    tracing::info!(topic = %self.topic, partition = self.index, epoch, ?isr, "leading the partition");
                }
            }
            (AssignedRole::Follow { leader }, current) => {
                let changed =
                    !same_epoch || !matches!(current, Role::Follower { leader: l } if l == leader);
                if self.leader_epoch() < 0 {
                    tracing::debug!(topic = %self.topic, partition = self.index, epoch, leader, "following the partition's leader");
                } else if changed {
                    tracing::info!(topic = %self.topic, partition = self.index, epoch, leader, "following the partition's leader");
                }
                self.leader_epoch.store(epoch, Ordering::Release);
                *current = Role::Follower { leader: *leader };
            }
        }
        let has_followers = matches!(&*role, Role::Leader(state) if state.has_followers());
        self.has_followers.store(has_followers, Ordering::Release);
        drop(role);
        self.update_high_watermark();
        self.replication_changed.notify_waiters();
    }

    /// What this broker's own copy contributes to the high watermark: its
    /// synced end in durable mode, its log end otherwise.
    fn local_end(&self) -> i64 {
        let end = self.log_end_offset();
        if self.settings().sync_before_ack() {
            self.durability.synced_offset().min(end)
        } else {
            end
        }
    }

    /// Moves the high watermark to what the leader's ISR allows now.
    pub(crate) fn update_high_watermark(&self) {
        let local = self.local_end();
        let allowed = match &*self.role.locked("role") {
            Role::Leader(state) => state.high_watermark(local),
            Role::Follower { .. } => None,
        };
        if let Some(hw) = allowed {
            self.advance_high_watermark(hw);
        }
    }

    /// Long-polling follower fetches wait for new data, not for the high
    /// watermark: wake them at every append of a replicated partition.
    pub(super) fn wake_followers(&self) {
        if self.has_followers.load(Ordering::Acquire) {
            self.data_available.notify_waiters();
        }
    }

    /// For acks=all before the append: the ISR size and the
    /// `min.insync.replicas` it falls short of, if it does.
    pub(crate) fn insync_shortfall(&self) -> Option<(usize, usize)> {
        match &*self.role.locked("role") {
            Role::Leader(state) if state.below_min_insync() => {
                Some((state.isr().len(), state.min_insync()))
            }
            _ => None,
        }
    }

    /// Waits until the high watermark passes `end` (acks=all): every ISR
    /// member has the records. Fails with NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// when the ISR shrinks below `min.insync.replicas` meanwhile, and with
    /// NOT_LEADER_OR_FOLLOWER when this broker stops leading. The caller
    /// bounds the wait by the request's timeout.
    pub(crate) async fn wait_replicated(&self, end: i64) -> Result<(), ErrorCode> {
        loop {
            let changed = self.replication_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.high_watermark() >= end {
                return Ok(());
            }
            match &*self.role.locked("role") {
                Role::Leader(state) if state.below_min_insync() => {
                    return Err(error::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
                }
                Role::Leader(_) => {}
                Role::Follower { .. } => return Err(error::NOT_LEADER_OR_FOLLOWER),
            }
            changed.await;
        }
    }

    /// For a coordinator's write (offsets, group metadata, transaction
    /// state and markers): waits until `end` is durable here and below the
    /// high watermark, so every in-sync replica has it, as Kafka's
    /// coordinators append with acks=all. A write that is not replicated
    /// within `timeout` is REQUEST_TIMED_OUT; a storage failure is
    /// KAFKA_STORAGE_ERROR (logged here).
    pub(crate) async fn make_committed(
        self: &Arc<Self>,
        end: i64,
        timeout: Duration,
    ) -> Result<(), ErrorCode> {
        self.make_durable(end).await.map_err(|e| {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "coordinator write not durable");
            error::KAFKA_STORAGE_ERROR
        })?;
        match tokio::time::timeout(timeout, self.wait_replicated(end)).await {
            Ok(replicated) => replicated,
            Err(_) => Err(error::REQUEST_TIMED_OUT),
        }
    }

    /// The leader's side of a follower's fetch at `fetch_offset` (its log
    /// end) after `last_fetched_epoch`: records up to this log's end (not
    /// only the high watermark), the follower's progress recorded, the
    /// high watermark moved, and an ISR change when the follower caught up.
    pub(crate) fn read_for_follower(
        &self,
        follower: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<FollowerRead, FollowerReadError> {
        let replica = match &*self.role.locked("role") {
            Role::Leader(state) => state.is_replica(follower),
            Role::Follower { .. } => false,
        };
        if !replica {
            return Err(FollowerReadError::Refused(error::NOT_LEADER_OR_FOLLOWER));
        }
        if last_fetched_epoch >= 0 {
            // An epoch this leader knows nothing at or below: the follower
            // is told its offset is out of range (it then starts over from
            // the leader's log start or high watermark), as in Kafka.
            let Some((epoch, end)) = self.end_offset_for_epoch(last_fetched_epoch) else {
                return Err(FollowerReadError::Refused(error::OFFSET_OUT_OF_RANGE));
            };
            if epoch < last_fetched_epoch || end < fetch_offset {
                return Ok(FollowerRead {
                    records: Bytes::new(),
                    high_watermark: self.high_watermark(),
                    log_start_offset: self.log_start_offset(),
                    diverging: Some((epoch, end)),
                    isr_change: None,
                });
            }
        }
        let (records, leader_end) = {
            let log = self.log.locked("log");
            let end = log.log_end_offset();
            let records = log
                .read(fetch_offset, max_bytes, end)
                .map_err(FollowerReadError::Storage)?
                .data;
            (records, end)
        };
        let lag_max_ms = self.replica_lag_max_ms.load(Ordering::Relaxed);
        let local = self.local_end();
        let (hw, isr_change) = {
            let mut role = self.role.locked("role");
            let Role::Leader(state) = &mut *role else {
                return Err(FollowerReadError::Refused(error::NOT_LEADER_OR_FOLLOWER));
            };
            state.record_fetch(follower, fetch_offset, leader_end, now_ms);
            let hw = state.high_watermark(local);
            let current = hw.unwrap_or(-1).max(self.high_watermark());
            let change = state.propose_isr_change(current, now_ms, lag_max_ms);
            (hw, change.map(|isr| (self.leader_epoch(), isr)))
        };
        if let Some(hw) = hw {
            self.advance_high_watermark(hw);
        }
        Ok(FollowerRead {
            records,
            high_watermark: self.high_watermark(),
            log_start_offset: self.log_start_offset(),
            diverging: None,
            isr_change,
        })
    }

    /// The ISR change the leader should propose without a fetch to prompt
    /// it (followers that stopped fetching leave the ISR), with the leader
    /// epoch it is proposed in.
    pub(crate) fn propose_isr_change(&self, now_ms: i64) -> Option<(i32, Vec<i32>)> {
        let lag_max_ms = self.replica_lag_max_ms.load(Ordering::Relaxed);
        let hw = self.high_watermark();
        match &mut *self.role.locked("role") {
            Role::Leader(state) => state
                .propose_isr_change(hw, now_ms, lag_max_ms)
                .map(|isr| (self.leader_epoch(), isr)),
            Role::Follower { .. } => None,
        }
    }

    /// The proposed ISR change is over without the image ending it (the
    /// controller refused it, or the image had that ISR already): the
    /// leader may propose again.
    pub(crate) fn end_isr_proposal(&self) {
        if let Role::Leader(state) = &mut *self.role.locked("role") {
            state.clear_pending();
        }
    }

    /// `replica.lag.time.max.ms`, as the broker setting is now.
    pub(crate) fn set_replica_lag_max_ms(&self, ms: i64) {
        self.replica_lag_max_ms.store(ms, Ordering::Relaxed);
    }

    /// The latest leader epoch this replica's log holds, for the next
    /// fetch's `last_fetched_epoch`.
    pub(crate) fn last_fetched_epoch(&self) -> i32 {
        self.log
            .locked("log")
            .leader_epochs()
            .last()
            .map_or(-1, |e| e.epoch)
    }

    /// A follower appends the leader's batches as they are (offsets,
    /// epochs and timestamps kept), tracking their producers as the leader
    /// does, so that it can take over deduplication and transactions.
    pub(crate) fn append_as_follower(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        let mut producers = self.producers.locked("producer state");
        let (info, rolled) = {
            let role = self.role.locked("role");
            Self::still_following(&role)?;
            let mut log = self.log.locked("log");
            let segments = log.segment_count();
            let info = log.append_replicated(batches, now_ms)?;
            self.publish_log_stats(&log);
            (info, log.segment_count() != segments)
        };
        self.observe_appended(&mut producers, batches, &info, rolled)?;
        Ok(info.last_offset + 1)
    }

    /// The end of what this replica's log has synced.
    pub(crate) fn synced_end(&self) -> i64 {
        self.durability.synced_offset().min(self.log_end_offset())
    }

    /// A follower learns the leader's high watermark: its own is that, but
    /// never past what it has.
    pub(crate) fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let end = self.log_end_offset();
        self.advance_high_watermark(leader_high_watermark.min(end));
    }

    /// A follower moves its log start up to the leader's (retention or
    /// DeleteRecords there), never past what it has copied.
    pub(crate) fn follow_log_start(&self, leader_log_start: i64) -> Result<(), StorageError> {
        let mut log = self.log.locked("log");
        let target = leader_log_start.min(log.log_end_offset());
        if target > log.log_start_offset() {
            log.advance_log_start(target)?;
            self.publish_log_stats(&log);
        }
        Ok(())
    }

    /// Cuts the log where it leaves the leader's (KIP-101/279) and rebuilds
    /// the producer state of what is left. Returns the new log end.
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<i64, StorageError> {
        let mut producers = self.producers.locked("producer state");
        let role = self.role.locked("role");
        Self::still_following(&role)?;
        let mut log = self.log.locked("log");
        let end = log.truncate_to(offset, crate::state::now_ms())?;
        self.after_cut(&mut producers, &mut log, end)?;
        tracing::warn!(topic = %self.topic, partition = self.index, end, "truncated the replica where it diverged from the leader's log");
        Ok(end)
    }

    /// Empties the log and starts it at `offset` (the leader's log start is
    /// past this replica's end).
    pub(crate) fn reset_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut producers = self.producers.locked("producer state");
        let role = self.role.locked("role");
        Self::still_following(&role)?;
        let mut log = self.log.locked("log");
        log.reset_to(offset, crate::state::now_ms())?;
        // No producer snapshot of the old log applies to the new one.
        for (_, path) in snapshot_files(log.dir()) {
            let _ignored = std::fs::remove_file(&path);
        }
        self.after_cut(&mut producers, &mut log, offset)?;
        tracing::warn!(topic = %self.topic, partition = self.index, offset, "emptied the replica: the leader's log starts after its end");
        Ok(())
    }

    /// What a leader's answer may change only while this broker follows:
    /// the role lock is held across the change, so that a replica that has
    /// just become leader is never cut or extended by a stale fetch.
    fn still_following(role: &Role) -> Result<(), StorageError> {
        match role {
            Role::Follower { .. } => Ok(()),
            Role::Leader(_) => Err(StorageError::InvalidBatch(
                "this replica leads now: a fetch answer from its former leader is dropped".into(),
            )),
        }
    }

    fn after_cut(
        &self,
        producers: &mut crate::producer_state::ProducerStates,
        log: &mut sluice_storage::PartitionLog,
        end: i64,
    ) -> Result<(), StorageError> {
        for (covered, path) in snapshot_files(log.dir()) {
            if covered > end {
                let _ignored = std::fs::remove_file(&path);
            }
        }
        *producers = load_producer_state(log)?;
        self.first_unstable.store(
            producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::Release,
        );
        // Never above what is left; the next fetch brings it up again.
        self.high_watermark.fetch_min(end, Ordering::AcqRel);
        self.sync_requested.fetch_min(end, Ordering::AcqRel);
        self.synced.send_modify(|synced| {
            if let Ok(offset) = synced {
                *offset = (*offset).min(end);
            }
        });
        self.publish_log_stats(log);
        Ok(())
    }
}

/// The longest run of whole batches at the start of `records` (a fetch
/// response may end in part of one).
pub(crate) fn whole_batches(records: &Bytes) -> Bytes {
    let mut end = 0;
    for (_, bytes) in BatchIter::new(records).map_while(Result::ok) {
        end += bytes.len();
    }
    records.slice(..end)
}
