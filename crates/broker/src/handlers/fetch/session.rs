//! Fetch sessions (KIP-227): a consumer names its partitions once and then
//! sends only changes; the broker answers only partitions with something new.

use sluice_metadata::Uuid;
use std::collections::HashMap;
use std::time::Instant;

/// Session epoch meaning "close the session / fetch without one".
pub(crate) const FINAL_EPOCH: i32 = -1;
/// Session epoch meaning "open a new session with this full request".
pub(crate) const INITIAL_EPOCH: i32 = 0;

/// One partition as a fetch names it, after topic ids are resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FetchTarget {
    pub(crate) topic: String,
    pub(crate) topic_id: Uuid,
    pub(crate) partition: i32,
    pub(crate) fetch_offset: i64,
    pub(crate) max_bytes: i32,
    /// The leader epoch the client knows (-1: not checked).
    pub(crate) current_leader_epoch: i32,
    /// The epoch of the last batch a follower has (-1: none or unknown):
    /// the leader checks that the follower's log has not diverged.
    pub(crate) last_fetched_epoch: i32,
}

/// What the last response told the client about a partition; a partition
/// is sent again in an incremental response only when this changes or it
/// has records or an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SentState {
    pub(crate) high_watermark: i64,
    pub(crate) log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: Vec<(FetchTarget, Option<SentState>)>,
    last_used: Instant,
}

/// Why an incremental fetch could not use its session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionError {
    NotFound,
    InvalidEpoch,
}

pub(crate) struct FetchSessionCache {
    slots: usize,
    next_id: i32,
    sessions: HashMap<i32, Session>,
}

impl FetchSessionCache {
    pub(crate) fn new(slots: usize) -> Self {
        FetchSessionCache {
            slots,
            next_id: 1,
            sessions: HashMap::new(),
        }
    }

    pub(crate) fn remove(&mut self, id: i32) {
        self.sessions.remove(&id);
    }

    /// Opens a session over `targets`; returns its id, or 0 when sessions are
    /// disabled (`max.incremental.fetch.session.cache.slots=0`). The least
    /// recently used session makes room when the cache is full.
    pub(crate) fn create(&mut self, targets: &[FetchTarget]) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        if self.sessions.len() >= self.slots {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            {
                self.sessions.remove(&oldest);
            }
        }
        let id = self.next_id;
        self.next_id = if self.next_id == i32::MAX {
            1
        } else {
            self.next_id + 1
        };
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions: targets.iter().cloned().map(|t| (t, None)).collect(),
                last_used: Instant::now(),
            },
        );
        id
    }

    /// Applies an incremental request (new or changed partitions, forgotten
    /// ones) and returns the session's whole partition list. The caller
    /// answers only what changed (see [`FetchSessionCache::record_sent`]).
    pub(crate) fn update(
        &mut self,
        id: i32,
        epoch: i32,
        changed: Vec<FetchTarget>,
        forgotten: &[(String, i32)],
    ) -> Result<Vec<(FetchTarget, Option<SentState>)>, SessionError> {
        let session = self.sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
        if session.next_epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = Instant::now();
        session.partitions.retain(|(t, _)| {
            !forgotten
                .iter()
                .any(|(topic, p)| *topic == t.topic && *p == t.partition)
        });
        for target in changed {
            match session
                .partitions
                .iter_mut()
                .find(|(t, _)| t.topic == target.topic && t.partition == target.partition)
            {
                Some(slot) => {
                    // A changed partition is always sent back.
                    *slot = (target, None);
                }
                None => session.partitions.push((target, None)),
            }
        }
        Ok(session.partitions.clone())
    }

    /// Remembers what a response told the client. After an incremental
    /// response the partitions that returned records move to the end of
    /// the session's order, as in Kafka: the next response serves the
    /// others first, so partitions skipped once the response's byte budget
    /// was spent are not skipped for ever.
    pub(crate) fn record_sent(&mut self, id: i32, sent: &[SentPartition], incremental: bool) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut served = Vec::new();
        for sent in sent {
            let Some(at) = session
                .partitions
                .iter()
                .position(|(t, _)| t.topic == sent.topic && t.partition == sent.partition)
            else {
                continue;
            };
            // The fetch offset stays the client's: it sends a partition
            // again once its position moves (Kafka's CachedPartition only
            // takes it from requests). A client that drops a response, as
            // the Java client does for a partition revoked while its fetch
            // was in flight, must get the same records again.
            let (_, state) = &mut session.partitions[at];
            *state = Some(sent.state);
            if incremental && sent.returned_records {
                served.push(at);
            }
        }
        // Stable: served partitions keep their relative order at the end.
        served.sort_unstable();
        for (moved, at) in served.into_iter().enumerate() {
            let entry = session.partitions.remove(at - moved);
            session.partitions.push(entry);
        }
    }
}

/// One partition of a response, as [`FetchSessionCache::record_sent`]
/// remembers it.
pub(crate) struct SentPartition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) state: SentState,
    pub(crate) returned_records: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition: p,
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        }
    }

    #[test]
    fn epochs_must_follow() {
        let mut cache = FetchSessionCache::new(10);
        let id = cache.create(&[target(0, 0), target(1, 0)]);
        assert_eq!(
            cache.update(id, 2, vec![], &[]),
            Err(SessionError::InvalidEpoch)
        );
        let parts = cache
            .update(id, 1, vec![target(2, 5)], &[("t".into(), 0)])
            .unwrap();
        let ids: Vec<i32> = parts.iter().map(|(t, _)| t.partition).collect();
        assert_eq!(ids, vec![1, 2]);
        assert!(cache.update(id, 2, vec![], &[]).is_ok());
        assert_eq!(
            cache.update(99, 1, vec![], &[]),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn full_cache_evicts_least_recently_used() {
        let mut cache = FetchSessionCache::new(2);
        let a = cache.create(&[target(0, 0)]);
        let b = cache.create(&[target(0, 0)]);
        cache.update(a, 1, vec![], &[]).unwrap();
        let c = cache.create(&[target(0, 0)]);
        assert_eq!(cache.update(b, 1, vec![], &[]), Err(SessionError::NotFound));
        assert!(cache.update(c, 1, vec![], &[]).is_ok());
        assert_eq!(FetchSessionCache::new(0).create(&[]), 0);
    }

    fn sent(p: i32, returned_records: bool) -> SentPartition {
        SentPartition {
            topic: "t".into(),
            partition: p,
            state: SentState::default(),
            returned_records,
        }
    }

    fn order(cache: &mut FetchSessionCache, id: i32, epoch: i32) -> Vec<(i32, i64)> {
        cache
            .update(id, epoch, vec![], &[])
            .unwrap()
            .iter()
            .map(|(t, _)| (t.partition, t.fetch_offset))
            .collect()
    }

    #[test]
    fn partitions_that_returned_records_move_to_the_back() {
        let mut cache = FetchSessionCache::new(10);
        let id = cache.create(&[target(0, 0), target(1, 0), target(2, 0)]);
        // The full response that opened the session keeps the client's order.
        cache.record_sent(id, &[sent(0, true), sent(1, false)], false);
        // Fetch offsets stay what the client asked for.
        assert_eq!(order(&mut cache, id, 1), vec![(0, 0), (1, 0), (2, 0)]);
        // Incremental: 0 and 2 returned records, 1 did not (budget spent).
        cache.record_sent(id, &[sent(0, true), sent(1, false), sent(2, true)], true);
        assert_eq!(order(&mut cache, id, 2), vec![(1, 0), (0, 0), (2, 0)]);
    }
}
