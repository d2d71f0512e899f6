//! The classic group membership protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) as a state machine: Empty → PreparingRebalance →
//! CompletingRebalance → Stable, back to PreparingRebalance when members
//! come or go, and Dead once deleted.
//!
//! Requests mutate state synchronously, in order; a member whose answer has
//! to wait (a join until the rebalance completes, a follower's sync until the
//! leader's) gets a oneshot receiver that is completed later by another
//! request or by [`Group::tick`] when a timeout passes.

use super::records::{ClassicGroupValue, ClassicMemberValue};
use crate::state::now_ms;
use bytes::Bytes;
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name, as DescribeGroups and ListGroups report it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup eventually answers.
#[derive(Debug, Clone)]
pub(crate) struct JoinResult {
    pub(crate) error: ErrorCode,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Only the leader gets the members and their metadata.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub(crate) fn error(error: ErrorCode, member_id: &str) -> Self {
        JoinResult {
            error,
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SyncResult {
    pub(crate) error: ErrorCode,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncResult {
    pub(crate) fn error(error: ErrorCode) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// A join request as the state machine sees it.
pub(crate) struct JoinRequest {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first obtain its id.
    pub(crate) require_known_member_id: bool,
}

/// A sync request as the state machine sees it.
pub(crate) struct SyncRequest<'a> {
    pub(crate) member_id: &'a str,
    pub(crate) instance_id: Option<&'a str>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<&'a str>,
    pub(crate) protocol: Option<&'a str>,
    /// Only the leader's assignments are used.
    pub(crate) assignments: Vec<(String, Bytes)>,
}

pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    last_heard: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// Group-level settings from the broker config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    pub(crate) initial_rebalance_delay: Duration,
    pub(crate) min_session_timeout: Duration,
    pub(crate) max_session_timeout: Duration,
    pub(crate) max_size: usize,
}

pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    /// Wall-clock time of the last state change (Kafka's
    /// currentStateTimestamp, persisted with the group).
    state_since_ms: i64,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_members: BTreeMap<String, Instant>,
    /// When the current join phase ends whatever happens.
    rebalance_deadline: Option<Instant>,
    /// While the first members of an empty group gather, the join waits
    /// (`group.initial.rebalance.delay.ms`) even when everyone has joined.
    initial_delay_until: Option<Instant>,
}

pub(crate) enum Joined {
    Now(JoinResult),
    Later(oneshot::Receiver<JoinResult>),
}

pub(crate) enum Synced {
    Now(SyncResult),
    Later(oneshot::Receiver<SyncResult>),
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms(),
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn transition(&mut self, state: GroupState) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms();
        }
    }

    /// The group's GroupMetadata record: its members and assignments once a
    /// rebalance has completed, or its generation once empty. `None` while
    /// a rebalance is under way (the last completed generation stays the
    /// persisted one, as in Kafka) and for a group that never completed one.
    pub(crate) fn metadata_value(&self) -> Option<ClassicGroupValue> {
        let stable = match self.state {
            GroupState::Stable => true,
            GroupState::Empty if self.generation > 0 => false,
            _ => return None,
        };
        let protocol = self.protocol.clone().filter(|_| stable);
        let ms = |d: Duration| d.as_millis().min(i32::MAX as u128) as i32;
        let members = protocol.as_deref().map_or_else(Vec::new, |protocol| {
            self.members
                .values()
                .map(|m| ClassicMemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: ms(m.rebalance_timeout),
                    session_timeout_ms: ms(m.session_timeout),
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect()
        });
        Some(ClassicGroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            leader: self.leader.clone().filter(|_| stable),
            protocol,
            current_state_timestamp: self.state_since_ms,
            members,
        })
    }

    /// Rebuilds a group from its GroupMetadata record at load: Stable with
    /// its generation, members and assignments (or Empty). Every member's
    /// session starts at `now`, as in Kafka, so a member that is gone
    /// expires as usual while the others carry on without a rebalance.
    pub(crate) fn from_metadata(id: &str, value: ClassicGroupValue, now: Instant) -> Group {
        let mut group = Group::new(id);
        group.generation = value.generation;
        if value.current_state_timestamp >= 0 {
            group.state_since_ms = value.current_state_timestamp;
        }
        if !value.protocol_type.is_empty() {
            group.protocol_type = Some(value.protocol_type);
        }
        let Some(protocol) = value.protocol.filter(|_| !value.members.is_empty()) else {
            return group;
        };
        let ms = |v: i32| Duration::from_millis(v.max(0) as u64);
        for m in value.members {
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: ms(m.session_timeout_ms),
                rebalance_timeout: ms(m.rebalance_timeout_ms),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                last_heard: now,
                join_waiter: None,
                sync_waiter: None,
            };
            group.members.insert(m.member_id, member);
        }
        group.leader = value
            .leader
            .filter(|l| group.members.contains_key(l))
            .or_else(|| group.members.keys().next().cloned());
        group.protocol = Some(protocol);
        group.state = GroupState::Stable;
        group
    }

    pub(crate) fn join(&mut self, req: JoinRequest, limits: &GroupLimits, now: Instant) -> Joined {
        if req.session_timeout < limits.min_session_timeout
            || req.session_timeout > limits.max_session_timeout
        {
            return Joined::Now(JoinResult::error(
                error::INVALID_SESSION_TIMEOUT,
                &req.member_id,
            ));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Joined::Now(JoinResult::error(
                error::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        if !self.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let common = self
                .members
                .values()
                .filter(|m| m.id != req.member_id)
                .all(|m| {
                    m.protocols
                        .iter()
                        .any(|(p, _)| req.protocols.iter().any(|(q, _)| p == q))
                });
            if !same_type || !common {
                return Joined::Now(JoinResult::error(
                    error::INCONSISTENT_GROUP_PROTOCOL,
                    &req.member_id,
                ));
            }
        }
        // A static member that comes back under a new member id replaces the
        // old one in place: no rebalance when nothing else changed.
        if let Some(instance) = &req.instance_id {
            if let Some(old_id) = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| m.id.clone())
            {
                if req.member_id.is_empty() || req.member_id != old_id {
                    return self.replace_static_member(&old_id, req, now);
                }
            }
        }
        if req.member_id.is_empty() {
            if self.members.len() + self.pending_members.len() >= limits.max_size {
                return Joined::Now(JoinResult::error(error::GROUP_MAX_SIZE_REACHED, ""));
            }
            let member_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if req.require_known_member_id && req.instance_id.is_none() {
                self.pending_members
                    .insert(member_id.clone(), now + req.session_timeout);
                return Joined::Now(JoinResult::error(error::MEMBER_ID_REQUIRED, &member_id));
            }
            return self.add_member(member_id, req, limits, now);
        }
        if self.pending_members.remove(&req.member_id).is_some() {
            let member_id = req.member_id.clone();
            return self.add_member(member_id, req, limits, now);
        }
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Joined::Now(JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id));
        };
        member.last_heard = now;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        let unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.client_host = req.client_host;
        let (tx, rx) = oneshot::channel();
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id));
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance
                if unchanged && (!is_leader || self.state == GroupState::CompletingRebalance) =>
            {
                // Rejoining with the same metadata: answer with the current
                // generation instead of starting another rebalance (as Kafka
                // does), so a member that missed its join answer cannot set
                // off a rebalance storm.
                let result = self.join_result_for(&req.member_id);
                if let Some(w) = self
                    .members
                    .get_mut(&req.member_id)
                    .and_then(|m| m.join_waiter.take())
                {
                    let _ = w.send(result);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            _ => self.prepare_rebalance(now),
        }
        Joined::Later(rx)
    }

    fn add_member(
        &mut self,
        member_id: String,
        req: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
    ) -> Joined {
        let (tx, rx) = oneshot::channel();
        let was_empty = self.is_empty();
        if was_empty {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heard: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        if was_empty && self.state == GroupState::Empty {
            // Let more of the first members arrive before the first assignment.
            self.initial_delay_until =
                Some(now + limits.initial_rebalance_delay.min(req.rebalance_timeout));
        } else if let Some(until) = self.initial_delay_until {
            let extended = (now + limits.initial_rebalance_delay)
                .min(self.rebalance_deadline.unwrap_or(until));
            self.initial_delay_until = Some(until.max(extended));
        }
        if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(now);
        } else {
            self.prepare_rebalance(now);
        }
        Joined::Later(rx)
    }

    fn replace_static_member(&mut self, old_id: &str, req: JoinRequest, now: Instant) -> Joined {
        let Some(mut member) = self.members.remove(old_id) else {
            return Joined::Now(JoinResult::error(error::UNKNOWN_MEMBER_ID, &req.member_id));
        };
        // The old incarnation is fenced.
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(error::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(error::FENCED_INSTANCE_ID));
        }
        let new_id = if req.member_id.is_empty() {
            format!("{}-{}", req.client_id, uuid::Uuid::new_v4())
        } else {
            req.member_id.clone()
        };
        member.id = new_id.clone();
        member.last_heard = now;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.protocols = req.protocols;
        member.client_host = req.client_host;
        let (tx, rx) = oneshot::channel();
        member.join_waiter = Some(tx);
        self.members.insert(new_id.clone(), member);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        // As in Kafka, only a change of the protocol the group would select
        // rebalances: a restarted member's metadata differs in details (a
        // consumer's subscription carries its owned partitions and
        // generation), and the point of a static member is that its
        // restart costs no rebalance.
        let same_protocol = self.select_protocol() == self.protocol;
        if self.state == GroupState::Stable && same_protocol {
            let result = self.join_result_for(&new_id);
            if let Some(w) = self
                .members
                .get_mut(&new_id)
                .and_then(|m| m.join_waiter.take())
            {
                let _ = w.send(result);
            }
        } else if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(now);
        } else {
            self.prepare_rebalance(now);
        }
        Joined::Later(rx)
    }

    /// The answer a member gets for the current generation.
    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: error::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        for member in self.members.values_mut() {
            if let Some(w) = member.sync_waiter.take() {
                let _ = w.send(SyncResult::error(error::REBALANCE_IN_PROGRESS));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.transition(GroupState::PreparingRebalance);
        self.maybe_complete_join(now);
    }

    /// Completes the join phase once every member has rejoined (and the
    /// initial delay has passed), or at the rebalance deadline without the
    /// members that did not rejoin.
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending_members.is_empty();
        let delaying = self.initial_delay_until.is_some_and(|until| now < until);
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !(deadline_passed || (all_joined && !delaying)) {
            return;
        }
        self.initial_delay_until = None;
        self.pending_members.clear();
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation += 1;
        if self.members.is_empty() {
            self.transition(GroupState::Empty);
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id);
            let member = self.members.get_mut(&id).expect("listed above");
            member.assignment = Bytes::new();
            member.last_heard = now;
            if let Some(w) = member.join_waiter.take() {
                let _ = w.send(result);
            }
        }
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == *p))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((p, _)) = member
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p))
            {
                *votes.entry(p).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|p| {
                (
                    votes.get(*p).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|c| c == *p)),
                )
            })
            .map(|p| (*p).clone())
    }

    /// Checks member, generation and instance id for sync, heartbeat and
    /// commit requests.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ErrorCode> {
        if let Some(instance) = instance_id {
            match self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
            {
                Some(m) if m.id != member_id => return Err(error::FENCED_INSTANCE_ID),
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(error::UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(error::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self, req: SyncRequest<'_>, now: Instant) -> Synced {
        let SyncRequest {
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol,
            assignments,
        } = req;
        if let Err(code) = self.check_member(member_id, instance_id, generation) {
            return Synced::Now(SyncResult::error(code));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            return Synced::Now(SyncResult::error(error::INCONSISTENT_GROUP_PROTOCOL));
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heard = now;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                Synced::Now(SyncResult::error(error::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => Synced::Now(self.sync_result(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: BTreeMap<String, Bytes> =
                        assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                    }
                    self.transition(GroupState::Stable);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let result = self.sync_result(&id);
                        if let Some(w) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            let _ = w.send(result);
                        }
                    }
                }
                Synced::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Synced::Now(SyncResult::error(error::UNKNOWN_MEMBER_ID))
            }
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: error::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> ErrorCode {
        if let Err(code) = self.check_member(member_id, instance_id, generation) {
            return code;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heard = now;
        }
        match self.state {
            GroupState::PreparingRebalance => error::REBALANCE_IN_PROGRESS,
            GroupState::Stable | GroupState::CompletingRebalance => error::NONE,
            GroupState::Empty | GroupState::Dead => error::UNKNOWN_MEMBER_ID,
        }
    }

    /// Removes a member (by id, or by instance id for static members).
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> ErrorCode {
        let id = match instance_id {
            Some(instance) => match self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
            {
                Some(m) if member_id.is_empty() || m.id == member_id => m.id.clone(),
                Some(_) => return error::FENCED_INSTANCE_ID,
                None => return error::UNKNOWN_MEMBER_ID,
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&id).is_some() {
            return error::NONE;
        }
        let Some(member) = self.members.remove(&id) else {
            return error::UNKNOWN_MEMBER_ID;
        };
        self.member_gone(member, now);
        error::NONE
    }

    fn member_gone(&mut self, mut member: Member, now: Instant) {
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(error::UNKNOWN_MEMBER_ID, &member.id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(error::UNKNOWN_MEMBER_ID));
        }
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::Empty | GroupState::Dead => {}
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.transition(GroupState::Empty);
        }
    }

    /// Expires silent members and finishes join phases whose time is up;
    /// returns whether the group's state or generation changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let before = (self.state, self.generation);
        self.pending_members.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none() && now.duration_since(m.last_heard) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            if let Some(member) = self.members.remove(&id) {
                tracing::info!(group = %self.id, member = %id, "member session expired");
                self.member_gone(member, now);
            }
        }
        self.maybe_complete_join(now);
        before != (self.state, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GroupLimits {
        GroupLimits {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(10),
            max_session_timeout: Duration::from_secs(60),
            max_size: 100,
        }
    }

    fn join_req(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(5),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_result(j: Joined) -> JoinResult {
        match j {
            Joined::Now(r) => r,
            Joined::Later(mut rx) => rx.try_recv().expect("join completed"),
        }
    }

    /// Joins a new member through MEMBER_ID_REQUIRED; returns its id.
    fn join_new(g: &mut Group, now: Instant) -> (String, Joined) {
        let first = now_result(g.join(join_req("", None), &limits(), now));
        assert_eq!(first.error, error::MEMBER_ID_REQUIRED);
        let id = first.member_id.clone();
        let joined = g.join(join_req(&id, None), &limits(), now);
        (id, joined)
    }

    #[test]
    fn single_member_becomes_stable() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (id, joined) = join_new(&mut g, now);
        let r = now_result(joined);
        assert_eq!(
            (r.error, r.generation, r.leader.clone()),
            (error::NONE, 1, id.clone())
        );
        assert_eq!(r.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let Synced::Later(mut rx) = g.sync(
            SyncRequest {
                member_id: &id,
                instance_id: None,
                generation: 1,
                protocol_type: None,
                protocol: None,
                assignments: vec![(id.clone(), Bytes::from_static(b"a"))],
            },
            now,
        ) else {
            panic!("leader sync waits on itself")
        };
        assert_eq!(rx.try_recv().unwrap().assignment, Bytes::from_static(b"a"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, now), error::NONE);
        assert_eq!(g.heartbeat(&id, None, 0, now), error::ILLEGAL_GENERATION);
        assert_eq!(
            g.heartbeat("zombie", None, 1, now),
            error::UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn second_member_triggers_rebalance_and_expiry_removes_it() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, joined) = join_new(&mut g, now);
        now_result(joined);
        g.sync(
            SyncRequest {
                member_id: &a,
                instance_id: None,
                generation: 1,
                protocol_type: None,
                protocol: None,
                assignments: vec![],
            },
            now,
        );
        let (b, joined_b) = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&a, None, 1, now), error::REBALANCE_IN_PROGRESS);
        let Joined::Later(mut rx_b) = joined_b else {
            panic!()
        };
        assert!(rx_b.try_recv().is_err(), "waits for a to rejoin");
        let ra = now_result(g.join(join_req(&a, None), &limits(), now));
        let rb = rx_b.try_recv().unwrap();
        assert_eq!((ra.generation, rb.generation), (2, 2));
        assert_eq!(ra.members.len(), 2, "a stays leader and sees both");
        // b syncs before the leader: it waits.
        let Synced::Later(mut sync_b) = g.sync(
            SyncRequest {
                member_id: &b,
                instance_id: None,
                generation: 2,
                protocol_type: None,
                protocol: None,
                assignments: vec![],
            },
            now,
        ) else {
            panic!()
        };
        g.sync(
            SyncRequest {
                member_id: &a,
                instance_id: None,
                generation: 2,
                protocol_type: None,
                protocol: None,
                assignments: vec![(b.clone(), Bytes::from_static(b"x"))],
            },
            now,
        );
        assert_eq!(
            sync_b.try_recv().unwrap().assignment,
            Bytes::from_static(b"x")
        );
        // b goes silent: after its session timeout it is removed and a
        // rebalance starts without it.
        let later = now + Duration::from_secs(11);
        g.heartbeat(&a, None, 2, now + Duration::from_secs(9));
        g.tick(later);
        assert!(!g.members.contains_key(&b));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&b, None, 2, later), error::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn static_member_restart_keeps_generation() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let first = now_result(g.join(join_req("", Some("i1")), &limits(), now));
        assert_eq!(first.error, error::NONE);
        let old = first.member_id.clone();
        g.sync(
            SyncRequest {
                member_id: &old,
                instance_id: Some("i1"),
                generation: 1,
                protocol_type: None,
                protocol: None,
                assignments: vec![(old.clone(), Bytes::from_static(b"p0"))],
            },
            now,
        );
        assert_eq!(g.state, GroupState::Stable);
        // Restart: a fresh join with the same instance id and no member id,
        // with other metadata for the same protocol.
        let mut restart = join_req("", Some("i1"));
        restart.protocols = vec![("range".into(), Bytes::from_static(b"other"))];
        let again = now_result(g.join(restart, &limits(), now));
        assert_eq!((again.error, again.generation), (error::NONE, 1));
        assert_eq!(g.state, GroupState::Stable, "no rebalance");
        assert_eq!(
            g.heartbeat(&old, Some("i1"), 1, now),
            error::FENCED_INSTANCE_ID
        );
        let Synced::Now(s) = g.sync(
            SyncRequest {
                member_id: &again.member_id,
                instance_id: Some("i1"),
                generation: 1,
                protocol_type: None,
                protocol: None,
                assignments: vec![],
            },
            now,
        ) else {
            panic!()
        };
        assert_eq!(s.assignment, Bytes::from_static(b"p0"));
    }

    #[test]
    fn rejoin_during_completing_rebalance_does_not_restart_it() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, ja) = join_new(&mut g, now);
        now_result(ja);
        let (b, jb) = join_new(&mut g, now);
        now_result(g.join(join_req(&a, None), &limits(), now));
        let Joined::Later(mut rb) = jb else { panic!() };
        assert_eq!(rb.try_recv().unwrap().generation, 2);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        // b rejoins instead of syncing: same generation, no new rebalance.
        let again = now_result(g.join(join_req(&b, None), &limits(), now));
        assert_eq!((again.error, again.generation), (error::NONE, 2));
        assert_eq!(g.state, GroupState::CompletingRebalance);
    }

    #[test]
    fn leave_rebalances_remaining_members() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let (a, ja) = join_new(&mut g, now);
        assert_eq!(now_result(ja).generation, 1);
        let (b, jb) = join_new(&mut g, now);
        let Joined::Later(mut rb) = jb else { panic!() };
        assert_eq!(
            now_result(g.join(join_req(&a, None), &limits(), now)).generation,
            2
        );
        assert_eq!(rb.try_recv().unwrap().generation, 2);
        assert_eq!(g.leave(&b, None, now), error::NONE);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let r = now_result(g.join(join_req(&a, None), &limits(), now));
        assert_eq!((r.generation, r.members.len()), (3, 1));
        assert_eq!(g.leave(&a, None, now), error::NONE);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, now), error::UNKNOWN_MEMBER_ID);
    }
}
