//! What the active controller has heard from each broker: the time of its
//! latest heartbeat with its current broker epoch. Kept in memory only; a
//! new leader starts empty and gives every broker a session to be heard.

use super::QuorumError;
use crate::image::MetadataImage;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Heartbeats {
    seen: Mutex<BTreeMap<i32, Instant>>,
    /// The last leader this node followed, and when it last heard from it
    /// (an AppendEntries): kept across leadership changes, so a node that
    /// takes over knows how long its predecessor has been silent.
    leader_contact: Mutex<Option<(i32, Instant)>>,
}

impl Heartbeats {
    /// Records a heartbeat if `epoch` is the broker's registration in
    /// `image`; a heartbeat of an older (or unknown) registration is
    /// refused so the broker registers again.
    pub fn record(
        &self,
        image: &MetadataImage,
        node_id: i32,
        epoch: i64,
        now: Instant,
    ) -> Result<(), QuorumError> {
        if image.brokers.get(&node_id).map(|b| b.epoch) != Some(epoch) {
            return Err(QuorumError::StaleBrokerEpoch { node_id, epoch });
        }
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node_id, now);
        Ok(())
    }

    pub fn snapshot(&self) -> BTreeMap<i32, Instant> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes that `leader` was heard from as leader at `now`.
    pub fn record_leader_contact(&self, leader: i32, now: Instant) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((leader, now));
    }

    /// The last leader heard from, and when.
    pub fn last_leader_contact(&self) -> Option<(i32, Instant)> {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the heartbeats (not the leader contact): this node stopped
    /// leading.
    pub fn clear(&self) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
