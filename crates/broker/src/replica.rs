//! What this broker is for one partition it holds a replica of: the leader,
//! which tracks how far each follower has fetched and derives the high
//! watermark and ISR changes from it (Kafka's ISR design, KIP-497 for the
//! changes going through the controller), or a follower of another broker.
//! Pure bookkeeping: the partition calls it under its own lock, the
//! fetch handler reports follower fetches, and the ISR task sends the
//! changes it proposes to the controller.

use std::collections::BTreeMap;

/// What the image assigns this broker for one partition it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub(crate) leader_epoch: i32,
    pub(crate) role: AssignedRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AssignedRole {
    Lead {
        replicas: Vec<i32>,
        isr: Vec<i32>,
    },
    /// `leader` is -1 while the partition has none.
    Follow {
        leader: i32,
    },
}

/// This broker's role for one partition.
#[derive(Debug)]
pub(crate) enum Role {
    Leader(LeaderState),
    /// Copies the log of `leader` (-1: no leader is known).
    Follower {
        leader: i32,
    },
}

/// How far one follower has come, as its fetches tell the leader.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's log end offset: the offset of its last fetch
    /// (-1 until it fetched from this leader).
    log_end_offset: i64,
    /// When the follower last had everything the leader had (Kafka's
    /// `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end offset when that fetch was answered.
    leader_end_at_last_fetch: i64,
}

impl Progress {
    /// A follower not heard from (since it left the ISR).
    fn unknown() -> Progress {
        Progress {
            log_end_offset: -1,
            last_caught_up_ms: 0,
            last_fetch_ms: 0,
            leader_end_at_last_fetch: 0,
        }
    }
}

/// The leader's view of its partition's replicas.
#[derive(Debug)]
pub(crate) struct LeaderState {
    node_id: i32,
    replicas: Vec<i32>,
    /// The in-sync replicas of the latest image.
    isr: Vec<i32>,
    /// An ISR change sent to the controller whose image has not arrived:
    /// no second change is proposed meanwhile.
    pending: Option<Vec<i32>>,
    /// `min.insync.replicas` of the topic.
    min_insync: usize,
    /// The log end offset when this epoch began: a follower joins the ISR
    /// only once it has reached it (it then holds every earlier epoch).
    epoch_start_offset: i64,
    followers: BTreeMap<i32, Progress>,
}

impl LeaderState {
    /// A leader that just took over at `log_end_offset`: every follower
    /// counts as caught up now, so none is dropped from the ISR before it
    /// had `replica.lag.time.max.ms` to fetch from the new leader.
    pub(crate) fn new(
        node_id: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        min_insync: usize,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| {
                (
                    *r,
                    Progress {
                        log_end_offset: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: now_ms,
                        leader_end_at_last_fetch: log_end_offset,
                    },
                )
            })
            .collect();
        LeaderState {
            node_id,
            replicas,
            isr,
            pending: None,
            min_insync,
            epoch_start_offset: log_end_offset,
            followers,
        }
    }

    /// Takes a newer image's replicas, ISR and `min.insync.replicas` (same
    /// leader epoch). An ISR change the controller made ends the pending
    /// proposal.
    pub(crate) fn update(&mut self, replicas: Vec<i32>, isr: Vec<i32>, min_insync: usize) {
        if isr != self.isr {
            self.pending = None;
        }
        // A follower that left the ISR (fenced, or lagging) rejoins only on
        // what it fetches from now on, never on progress from before: it
        // may have lost its unsynced tail or its disk since.
        for left in self.isr.iter().filter(|r| !isr.contains(r)) {
            if let Some(progress) = self.followers.get_mut(left) {
                *progress = Progress::unknown();
            }
        }
        for r in &replicas {
            if *r != self.node_id && !self.followers.contains_key(r) {
                self.followers.insert(*r, Progress::unknown());
            }
        }
        self.followers.retain(|r, _| replicas.contains(r));
        self.replicas = replicas;
        self.isr = isr;
        self.min_insync = min_insync;
    }

    pub(crate) fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub(crate) fn is_replica(&self, node: i32) -> bool {
        self.replicas.contains(&node)
    }

    /// Whether other brokers copy this partition.
    pub(crate) fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }

    /// Whether the ISR is too small for acks=all (NOT_ENOUGH_REPLICAS).
    pub(crate) fn below_min_insync(&self) -> bool {
        self.isr.len() < self.min_insync
    }

    pub(crate) fn min_insync(&self) -> usize {
        self.min_insync
    }

    /// Records a fetch by `follower` at `fetch_offset`, answered when the
    /// leader's log ends at `leader_end` (Kafka's `updateFetchState`).
    pub(crate) fn record_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return;
        };
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.leader_end_at_last_fetch {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = fetch_offset;
        progress.last_fetch_ms = now_ms;
        progress.leader_end_at_last_fetch = leader_end;
    }

    /// The ISR the high watermark waits for: the image's and the members a
    /// pending change adds (Kafka's maximal ISR), so that a replica joins
    /// only with every record below the high watermark.
    fn maximal_isr(&self) -> impl Iterator<Item = &i32> {
        let added = self
            .pending
            .iter()
            .flatten()
            .filter(|r| !self.isr.contains(r));
        self.isr.iter().chain(added)
    }

    /// The high watermark the replicas allow when this leader's own copy
    /// ends at `local_end` (what it has synced, in durable mode): the
    /// least end over the maximal ISR. None while a replicated partition's
    /// ISR is smaller than `min.insync.replicas`: then nothing is committed
    /// (Kafka's strict min ISR, KIP-966). A partition with one replica has
    /// no followers to wait for: its own copy is committed (acks=all is
    /// still refused before the append).
    pub(crate) fn high_watermark(&self, local_end: i64) -> Option<i64> {
        if self.below_min_insync() && self.has_followers() {
            return None;
        }
        let mut hw = local_end;
        for r in self.maximal_isr() {
            if *r == self.node_id {
                continue;
            }
            let end = self.followers.get(r).map_or(-1, |p| p.log_end_offset);
            hw = hw.min(end);
        }
        (hw >= 0).then_some(hw)
    }

    /// The ISR change this leader should propose now, if any, and marks it
    /// pending: followers that have not caught up within `lag_max_ms` leave
    /// (never the leader), replicas that reached the high watermark and
    /// this epoch's start join.
    pub(crate) fn propose_isr_change(
        &mut self,
        high_watermark: i64,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == self.node_id
                    || self
                        .followers
                        .get(r)
                        .is_some_and(|p| now_ms - p.last_caught_up_ms <= lag_max_ms)
            })
            .collect();
        for (r, p) in &self.followers {
            let caught_up = p.log_end_offset >= high_watermark.max(self.epoch_start_offset)
                && now_ms - p.last_caught_up_ms <= lag_max_ms;
            if !isr.contains(r) && caught_up {
                isr.push(*r);
            }
        }
        if !isr.contains(&self.node_id) {
            isr.push(self.node_id);
        }
        let mut sorted = isr.clone();
        sorted.sort_unstable();
        let mut current = self.isr.clone();
        current.sort_unstable();
        if sorted == current {
            return None;
        }
        self.pending = Some(isr.clone());
        Some(isr)
    }

    /// The controller refused or failed the pending change: propose again.
    pub(crate) fn clear_pending(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderState {
        LeaderState::new(1, vec![1, 2, 3], vec![1, 2, 3], 2, 0, 0)
    }

    #[test]
    fn the_high_watermark_is_the_least_end_over_the_isr() {
        let mut state = leader();
        assert_eq!(state.high_watermark(10), None, "no follower fetched yet");
        state.record_fetch(2, 10, 10, 5);
        state.record_fetch(3, 4, 10, 5);
        assert_eq!(state.high_watermark(10), Some(4));
        assert_eq!(state.high_watermark(3), Some(3), "the leader's own sync");
        state.update(vec![1, 2, 3], vec![1, 2], 2);
        assert_eq!(state.high_watermark(10), Some(10));
    }

    #[test]
    fn below_min_insync_nothing_is_committed() {
        let mut state = leader();
        state.record_fetch(2, 10, 10, 5);
        state.update(vec![1, 2, 3], vec![1], 2);
        assert!(state.below_min_insync());
        assert_eq!(state.high_watermark(10), None);
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_rejoins() {
        let mut state = leader();
        state.record_fetch(2, 100, 100, 1_000);
        state.record_fetch(3, 50, 100, 1_000);
        assert_eq!(state.propose_isr_change(50, 20_000, 30_000), None);
        state.record_fetch(2, 100, 100, 40_000);
        assert_eq!(
            state.propose_isr_change(50, 40_000, 30_000),
            Some(vec![1, 2]),
            "3 has not caught up for 40 s"
        );
        assert_eq!(
            state.propose_isr_change(50, 40_000, 30_000),
            None,
            "one change at a time"
        );
        state.update(vec![1, 2, 3], vec![1, 2], 2);
        state.record_fetch(3, 100, 100, 41_000);
        assert_eq!(
            state.propose_isr_change(100, 41_000, 30_000),
            Some(vec![1, 2, 3])
        );
        // Pending additions count for the high watermark at once.
        assert_eq!(state.high_watermark(100), Some(100));
    }

    #[test]
    fn a_follower_that_left_the_isr_rejoins_only_on_new_fetches() {
        let mut state = leader();
        state.record_fetch(3, 100, 100, 1_000);
        state.update(vec![1, 2, 3], vec![1, 2], 2);
        assert_eq!(state.propose_isr_change(100, 2_000, 30_000), None);
        state.record_fetch(3, 100, 100, 3_000);
        assert_eq!(
            state.propose_isr_change(100, 3_000, 30_000),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_follower_that_fetches_behind_a_moving_end_counts_as_caught_up_at_its_previous_fetch() {
        let mut state = leader();
        state.record_fetch(2, 10, 10, 1_000);
        // Reaches the end the leader had at the previous fetch.
        state.record_fetch(2, 10, 20, 2_000);
        state.record_fetch(2, 20, 30, 3_000);
        state.record_fetch(3, 30, 30, 33_000);
        assert_eq!(
            state.propose_isr_change(30, 33_500, 30_000),
            Some(vec![1, 3])
        );
    }
}
