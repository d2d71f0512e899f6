//! The classic group protocol: JoinGroup and SyncGroup rounds (the leader
//! member assigns), a background Heartbeat task, LeaveGroup; eager or
//! cooperative (KIP-429) rebalancing, static membership (KIP-345).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use sluice_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use sluice_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use super::assignor::{
    assign_cooperative_sticky, assign_range, assign_roundrobin, encode_assignment, Subscription,
};
use super::{lock, ms, AssignmentStrategy, GroupConsumer, Release, Shared};
use crate::admin::s;
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};
use crate::group::MemberAssignment;

/// How often a failing join is retried before `poll` gives up.
const JOIN_ATTEMPTS: u32 = 20;

/// Errors after which the member must join again.
pub(super) fn needs_rejoin(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(codes::REBALANCE_IN_PROGRESS)
            | Some(codes::UNKNOWN_MEMBER_ID)
            | Some(codes::ILLEGAL_GENERATION)
    ) || coordinator_gone(e)
}

/// Errors after which the coordinator must be looked up again.
pub(super) fn coordinator_gone(e: &Error) -> bool {
    crate::group::coordinator_retriable(e)
}

/// Errors that end the membership: the partitions are lost.
fn membership_ended(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(codes::UNKNOWN_MEMBER_ID) | Some(codes::ILLEGAL_GENERATION)
    )
}

/// The fatal error of a static member whose instance id another member
/// took over.
fn fenced_instance(group: &str, instance: Option<&str>) -> Error {
    Error::Kafka(
        KafkaError::new(
            codes::FENCED_INSTANCE_ID,
            Some(format!(
                "another member joined with group.instance.id '{}'; this one is fenced and must be closed",
                instance.unwrap_or_default()
            )),
        )
        .on(format!("group '{group}'")),
    )
}

/// Resets what a failed group request invalidates.
pub(super) fn on_error(gc: &mut GroupConsumer, e: &Error) {
    if e.code() == Some(codes::FENCED_INSTANCE_ID) {
        gc.shared.set_fatal(fenced_instance(
            &gc.config.group_id,
            gc.config.group_instance_id.as_deref(),
        ));
        return;
    }
    if needs_rejoin(e) {
        gc.shared.rejoin.store(true, Ordering::SeqCst);
    }
    if membership_ended(e) {
        gc.generation = -1;
    }
    // ILLEGAL_GENERATION keeps the member id, as the Java client does.
    if e.code() == Some(codes::UNKNOWN_MEMBER_ID) {
        gc.member_id.clear();
    }
}

impl GroupConsumer {
    /// Rejoins the group: an eager member first gives up everything; a
    /// cooperative one keeps consuming what it owns and reports it in its
    /// subscription. Retries coordinator moves and rebalances.
    pub(super) async fn join(&mut self) -> Result<()> {
        self.stop_heartbeat();
        let lost = lock(&self.shared.lost).take();
        if let Some(e) = lost {
            self.on_group_error(&e);
        }
        if self.joined && self.generation >= 0 && !self.config.assignment_strategy.is_cooperative()
        {
            let owned = self.owned();
            self.release(&owned, Release::Revoked).await;
        }
        let mut attempt = 0u32;
        loop {
            if self.generation < 0 {
                let owned = self.owned();
                self.release(&owned, Release::Lost).await;
            }
            self.shared.rejoin.store(false, Ordering::SeqCst);
            let res = match self.join_once().await {
                Ok(assignment) => self.apply_assignment(assignment).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => {
                    self.start_heartbeat().await?;
                    return Ok(());
                }
                Err(e) if e.code() == Some(codes::FENCED_INSTANCE_ID) => {
                    self.on_group_error(&e);
                    return Err(self.shared.fatal().unwrap_or(e));
                }
                Err(e) if attempt < JOIN_ATTEMPTS && (needs_rejoin(&e) || e.is_retriable()) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "rejoining group");
                    self.on_group_error(&e);
                    if coordinator_gone(&e) || !needs_rejoin(&e) {
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10))))
                            .await;
                    }
                }
                Err(e) => {
                    self.shared.rejoin.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    }

    /// Moves to the assignment SyncGroup gave: revokes what is no longer
    /// ours (cooperative: then rejoins, so the partitions reach their new
    /// owners) and takes what is new.
    async fn apply_assignment(&mut self, assignment: Vec<(String, Vec<i32>)>) -> Result<()> {
        let assigned: BTreeSet<(String, i32)> = assignment
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect();
        let owned = self.owned();
        let revoked: BTreeSet<(String, i32)> = owned.difference(&assigned).cloned().collect();
        let added: BTreeSet<(String, i32)> = assigned.difference(&owned).cloned().collect();
        self.joined = true;
        if !revoked.is_empty() {
            self.release(&revoked, Release::Revoked).await;
            if self.config.assignment_strategy.is_cooperative() {
                self.shared.rejoin.store(true, Ordering::SeqCst);
            }
        }
        self.take(&added).await?;
        self.last_commit = std::time::Instant::now();
        Ok(())
    }

    async fn start_heartbeat(&mut self) -> Result<()> {
        let conn = self.coordinator().await?;
        self.heartbeat = Some(tokio::spawn(heartbeat_loop(
            conn,
            HeartbeatIdentity {
                group: self.config.group_id.clone(),
                generation: self.generation,
                member_id: self.member_id.clone(),
                instance_id: self.config.group_instance_id.clone(),
            },
            self.config.heartbeat_interval,
            self.shared.clone(),
        )));
        Ok(())
    }

    /// This member's JoinGroup metadata: its topics and, for the
    /// cooperative protocol, what it owns and since which generation (also
    /// in the user data, where the Java cooperative-sticky assignor reads
    /// it).
    fn subscription(&self) -> Subscription {
        let cooperative = self.config.assignment_strategy.is_cooperative();
        Subscription {
            topics: self.topics.clone(),
            user_data: cooperative.then(|| Bytes::copy_from_slice(&self.generation.to_be_bytes())),
            owned: self.owned(),
            generation: self.generation,
        }
    }

    /// One JoinGroup + SyncGroup round; returns the assignment.
    async fn join_once(&mut self) -> Result<Vec<(String, Vec<i32>)>> {
        let conn = self.coordinator().await?;
        let group = self.config.group_id.clone();
        let strategy = self.config.assignment_strategy;
        let timeout = self.config.rebalance_timeout + self.cluster.config().request_timeout;
        let jv = conn.negotiated_version(ApiKey::JoinGroup).ok_or_else(|| {
            Error::UnsupportedVersion {
                addr: conn.addr().to_string(),
                api: "JoinGroup".into(),
            }
        })?;
        // Static membership needs JoinGroup v5, SyncGroup and Heartbeat v3.
        let instance_id = match &self.config.group_instance_id {
            Some(_) if jv < 5 => {
                return Err(Error::UnsupportedVersion {
                    addr: conn.addr().to_string(),
                    api: "JoinGroup v5+ (group.instance.id)".into(),
                })
            }
            other => other.clone(),
        };
        let metadata = self.subscription().encode();
        let resp = loop {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&*group)))
                .with_session_timeout_ms(ms(self.config.session_timeout))
                .with_rebalance_timeout_ms(ms(self.config.rebalance_timeout))
                .with_member_id(s(&*self.member_id))
                .with_group_instance_id(instance_id.as_ref().map(|i| s(&**i)))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s(strategy.name()))
                    .with_metadata(metadata.clone())]);
            let resp = conn.call_version(req, jv, timeout).await?;
            if resp.error_code == codes::MEMBER_ID_REQUIRED {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            Error::check(resp.error_code, None, format!("joining group '{group}'"))?;
            break resp;
        };
        self.member_id = resp.member_id.to_string();
        self.generation = resp.generation_id;
        let protocol = resp
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| strategy.name().to_string());
        // A static leader that rejoined without changes is told to skip
        // the assignment (JoinGroup v9): the group keeps its current one.
        let assignments = if resp.leader.as_str() == self.member_id && !resp.skip_assignment {
            let mut subscriptions = BTreeMap::new();
            for m in &resp.members {
                subscriptions.insert(m.member_id.to_string(), Subscription::decode(&m.metadata)?);
            }
            self.assign(&protocol, &subscriptions).await?
        } else {
            Vec::new()
        };
        let sv = conn.negotiated_version(ApiKey::SyncGroup).unwrap_or(0);
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&*group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&*self.member_id))
            .with_group_instance_id(instance_id.as_ref().filter(|_| sv >= 3).map(|i| s(&**i)))
            .with_assignments(assignments);
        if sv >= 5 {
            req = req
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s(protocol)));
        }
        let resp = conn.call_version(req, sv, timeout).await?;
        Error::check(resp.error_code, None, format!("syncing group '{group}'"))?;
        Ok(MemberAssignment::decode(&resp.assignment)?.partitions)
    }

    /// The leader's work: every member's assignment under `protocol`.
    async fn assign(
        &mut self,
        protocol: &str,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let wanted: Vec<String> = subscriptions
            .values()
            .flat_map(|sub| sub.topics.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.cluster.refresh_metadata(Some(&wanted)).await?;
        let mut counts = BTreeMap::new();
        for t in &wanted {
            if let Some(tm) = self.cluster.topic(t) {
                if tm.error_code == codes::NONE {
                    counts.insert(t.clone(), tm.partitions.len() as i32);
                }
            }
        }
        let topics_of = || {
            subscriptions
                .iter()
                .map(|(m, sub)| (m.clone(), sub.topics.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let plan = match protocol.parse::<AssignmentStrategy>()? {
            AssignmentStrategy::Range => assign_range(&topics_of(), &counts),
            AssignmentStrategy::RoundRobin => assign_roundrobin(&topics_of(), &counts),
            AssignmentStrategy::CooperativeSticky => {
                assign_cooperative_sticky(subscriptions, &counts)
            }
        };
        Ok(plan
            .into_iter()
            .map(|(m, parts)| {
                let parts: Vec<(String, Vec<i32>)> = parts.into_iter().collect();
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(m))
                    .with_assignment(encode_assignment(&parts))
            })
            .collect())
    }

    /// Leaves with LeaveGroup, so the others rebalance at once. A static
    /// member does not: the coordinator keeps its partitions until its
    /// session times out, so a restart costs no rebalance.
    pub(super) async fn leave_classic(&mut self) -> Result<()> {
        if self.config.group_instance_id.is_some() {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let v = conn.negotiated_version(ApiKey::LeaveGroup).unwrap_or(0);
        let req = LeaveGroupRequest::default().with_group_id(GroupId(s(&*self.config.group_id)));
        let req = if v >= 3 {
            req.with_members(vec![
                MemberIdentity::default().with_member_id(s(&*self.member_id))
            ])
        } else {
            req.with_member_id(s(&*self.member_id))
        };
        let resp = conn.call(req).await?;
        Error::check(resp.error_code, None, self.group_resource())?;
        for m in resp.members {
            if m.error_code != codes::UNKNOWN_MEMBER_ID {
                Error::check(m.error_code, None, self.group_resource())?;
            }
        }
        Ok(())
    }
}

/// Who heartbeats.
struct HeartbeatIdentity {
    group: String,
    generation: i32,
    member_id: String,
    instance_id: Option<String>,
}

/// Heartbeats until the group needs a rejoin (then flags it for `poll`) or
/// the member is fenced (then records the fatal error).
async fn heartbeat_loop(
    conn: Arc<Connection>,
    who: HeartbeatIdentity,
    interval: Duration,
    shared: Arc<Shared>,
) {
    let instance_id = who
        .instance_id
        .as_ref()
        .filter(|_| conn.negotiated_version(ApiKey::Heartbeat) >= Some(3));
    loop {
        tokio::time::sleep(interval).await;
        if shared.rejoin.load(Ordering::SeqCst) {
            return;
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&*who.group)))
            .with_generation_id(who.generation)
            .with_member_id(s(&*who.member_id))
            .with_group_instance_id(instance_id.map(|i| s(&**i)));
        let res = match conn.call(req).await {
            Ok(r) => Error::check(
                r.error_code,
                None,
                format!("heartbeat of group '{}'", who.group),
            ),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {}
            Err(e) if e.code() == Some(codes::FENCED_INSTANCE_ID) => {
                shared.set_fatal(fenced_instance(&who.group, who.instance_id.as_deref()));
                return;
            }
            Err(e) if needs_rejoin(&e) => {
                tracing::debug!(error = %e, "heartbeat: rejoin needed");
                if membership_ended(&e) {
                    *lock(&shared.lost) = Some(e);
                }
                shared.rejoin.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}
