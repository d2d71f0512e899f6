//! A consumer-group consumer (the classic group protocol).
//!
//! [`GroupConsumer`] joins a group at its coordinator (FindCoordinator,
//! JoinGroup, SyncGroup), computes the assignment when it is the leader
//! (`range` or `roundrobin`), resumes each assigned partition at the group's
//! committed offset (OffsetFetch; `auto.offset.reset` without one), keeps
//! the membership alive with a background Heartbeat task, and rejoins when a
//! heartbeat or commit reports a rebalance. Fetching and decoding are the
//! assign-based [`Consumer`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use sluice_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use sluice_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use sluice_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use tokio::task::JoinHandle;

use crate::admin::{s, Admin};
use crate::cluster::{ClientConfig, Cluster};
use crate::connection::Connection;
use crate::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, StartOffset,
};
use crate::error::{Error, KafkaError, Result};
use crate::group::MemberAssignment;
use crate::transaction::ConsumerGroupMetadata;

const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

/// How the group leader spreads partitions over members
/// (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    /// Per topic, contiguous ranges of partitions by sorted member id.
    Range,
    /// All topic-partitions dealt round-robin over sorted members.
    RoundRobin,
}

impl AssignmentStrategy {
    /// The protocol name used in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
        }
    }
}

impl FromStr for AssignmentStrategy {
    type Err = Error;
    fn from_str(v: &str) -> Result<Self> {
        match v {
            "range" => Ok(AssignmentStrategy::Range),
            "roundrobin" => Ok(AssignmentStrategy::RoundRobin),
            other => Err(Error::Config(format!(
                "invalid partition.assignment.strategy '{other}' (expected range or roundrobin)"
            ))),
        }
    }
}

/// Group consumer settings. Defaults follow the Java client.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// `group.id`.
    pub group_id: String,
    /// `session.timeout.ms` (default 45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout (default 5 min).
    pub rebalance_timeout: Duration,
    /// `partition.assignment.strategy` (default range).
    pub assignment_strategy: AssignmentStrategy,
    /// `enable.auto.commit` (default true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5 s).
    pub auto_commit_interval: Duration,
    /// Fetch settings, including `auto.offset.reset` (used for partitions
    /// the group has no committed offset for).
    pub consumer: ConsumerConfig,
}

impl GroupConsumerConfig {
    /// Defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupConsumerConfig {
            group_id: group_id.into(),
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            rebalance_timeout: Duration::from_millis(300_000),
            assignment_strategy: AssignmentStrategy::Range,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            consumer: ConsumerConfig::default(),
        }
    }
}

/// Told about partitions leaving and joining the assignment.
pub trait RebalanceListener: Send {
    /// Called before a rebalance (and on close) with the partitions being
    /// given up; offsets are already committed when auto-commit is on.
    fn on_revoked(&mut self, _partitions: &[(String, i32)]) {}
    /// Called after a rebalance with the new assignment.
    fn on_assigned(&mut self, _partitions: &[(String, i32)]) {}
}

/// A consumer that shares the partitions of its subscribed topics with the
/// other members of its group.
///
/// ```no_run
/// # async fn demo() -> sluice_client::Result<()> {
/// use std::time::Duration;
/// use sluice_client::{ClientConfig, GroupConsumer, GroupConsumerConfig};
/// let mut c = GroupConsumer::connect(ClientConfig::new("127.0.0.1:9092"), GroupConsumerConfig::new("billing")).await?;
/// c.subscribe(&["orders"]);
/// for record in c.poll(Duration::from_secs(1)).await? {
///     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
/// }
/// c.close().await?;
/// # Ok(()) }
/// ```
pub struct GroupConsumer {
    cluster: Arc<Cluster>,
    admin: Admin,
    config: GroupConsumerConfig,
    inner: Consumer,
    topics: Vec<String>,
    coordinator: Option<Arc<Connection>>,
    member_id: String,
    generation: i32,
    /// Set by the heartbeat task or a failed commit: rejoin before fetching.
    rejoin: Arc<AtomicBool>,
    joined: bool,
    heartbeat: Option<JoinHandle<()>>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_commit: Instant,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.config.group_id)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// Connects to the cluster.
    pub async fn connect(client: ClientConfig, config: GroupConsumerConfig) -> Result<Self> {
        Self::new(Cluster::connect(client).await?, config)
    }

    /// Creates a group consumer on an existing cluster handle.
    pub fn new(cluster: Arc<Cluster>, config: GroupConsumerConfig) -> Result<Self> {
        if config.group_id.is_empty() {
            return Err(Error::Config("group.id must not be empty".into()));
        }
        let admin = Admin {
            cluster: cluster.clone(),
            timeout: cluster.config().request_timeout,
        };
        Ok(GroupConsumer {
            inner: Consumer::new(cluster.clone(), config.consumer.clone()),
            cluster,
            admin,
            config,
            topics: Vec::new(),
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            rejoin: Arc::new(AtomicBool::new(true)),
            joined: false,
            heartbeat: None,
            listener: None,
            last_commit: Instant::now(),
        })
    }

    /// Sets the rebalance listener.
    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Subscribes to `topics` (replacing earlier subscriptions); the group
    /// is (re)joined on the next `poll`.
    pub fn subscribe<T: AsRef<str>>(&mut self, topics: &[T]) {
        let mut t: Vec<String> = topics.iter().map(|t| t.as_ref().to_string()).collect();
        t.sort();
        t.dedup();
        self.topics = t;
        self.rejoin.store(true, Ordering::SeqCst);
    }

    /// The partitions currently assigned to this member.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.inner.assignment()
    }

    /// Moves the position of an assigned partition to `offset`; the next
    /// commit commits it.
    pub async fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        self.inner
            .seek(topic, partition, StartOffset::Offset(offset))
            .await
    }

    /// The member id the coordinator issued (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The group generation of the current assignment (-1 before joining).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The member's identity for
    /// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction),
    /// so the coordinator refuses the offsets if this member has been
    /// rebalanced out meanwhile.
    pub fn group_metadata(&self) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: self.config.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: None,
        }
    }

    /// Joins (or rejoins) the group when needed, then returns records from
    /// the assigned partitions, waiting up to `timeout` for some. Commits
    /// positions every `auto.commit.interval.ms` when auto-commit is on.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.topics.is_empty() {
            return Err(Error::Config("poll before subscribe".into()));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if !self.joined || self.rejoin.load(Ordering::SeqCst) {
                self.join().await?;
            }
            if self.config.enable_auto_commit
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
            {
                self.last_commit = Instant::now();
                if let Err(e) = self.commit_sync().await {
                    tracing::warn!(error = %e, "auto-commit failed");
                }
                if self.rejoin.load(Ordering::SeqCst) {
                    continue;
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let slice = remaining.min(self.config.consumer.max_wait.max(Duration::from_millis(10)));
            let records = self.inner.poll(slice).await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// The offsets to commit: the position of every assigned partition.
    fn positions(&self) -> Vec<(String, i32, i64)> {
        self.inner
            .assignment()
            .into_iter()
            .filter_map(|(t, p)| self.inner.position(&t, p).map(|o| (t, p, o)))
            .collect()
    }

    /// Commits the positions of the assigned partitions and waits for the
    /// coordinator. A rebalance in progress fails the commit and makes the
    /// next `poll` rejoin.
    pub async fn commit_sync(&mut self) -> Result<()> {
        if !self.joined {
            return Ok(());
        }
        let offsets = self.positions();
        if offsets.is_empty() {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let res = commit_offsets(
            &conn,
            &self.config.group_id,
            self.generation,
            &self.member_id,
            &offsets,
        )
        .await;
        if let Err(e) = &res {
            self.on_group_error(e);
        }
        res
    }

    /// Starts a commit of the current positions in the background; await
    /// the handle for its outcome.
    pub fn commit_async(&mut self) -> JoinHandle<Result<()>> {
        let offsets = self.positions();
        let conn = self.coordinator.clone();
        let group = self.config.group_id.clone();
        let generation = self.generation;
        let member = self.member_id.clone();
        let joined = self.joined;
        let rejoin = self.rejoin.clone();
        tokio::spawn(async move {
            if !joined || offsets.is_empty() {
                return Ok(());
            }
            let conn = conn.ok_or_else(|| Error::NoBroker("no group coordinator".into()))?;
            let res = commit_offsets(&conn, &group, generation, &member, &offsets).await;
            if let Err(e) = &res {
                if needs_rejoin(e) {
                    rejoin.store(true, Ordering::SeqCst);
                }
            }
            res
        })
    }

    /// Commits (with auto-commit on), tells the listener the partitions are
    /// revoked and leaves the group (LeaveGroup), so the others rebalance at
    /// once.
    pub async fn close(mut self) -> Result<()> {
        self.stop_heartbeat();
        if !self.joined {
            return Ok(());
        }
        let mut first_err = None;
        if self.config.enable_auto_commit {
            if let Err(e) = self.commit_sync().await {
                first_err = Some(e);
            }
        }
        self.revoke();
        if let Err(e) = self.leave().await {
            first_err = first_err.or(Some(e));
        }
        self.joined = false;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn leave(&mut self) -> Result<()> {
        let conn = self.coordinator().await?;
        let v = conn.negotiated_version(ApiKey::LeaveGroup).unwrap_or(0);
        let mut req =
            LeaveGroupRequest::default().with_group_id(GroupId(s(&*self.config.group_id)));
        req = if v >= 3 {
            req.with_members(vec![
                MemberIdentity::default().with_member_id(s(&*self.member_id))
            ])
        } else {
            req.with_member_id(s(&*self.member_id))
        };
        let resp = conn.call(req).await?;
        Error::check(resp.error_code, None, self.group_resource())?;
        for m in resp.members {
            if m.error_code != UNKNOWN_MEMBER_ID {
                Error::check(m.error_code, None, self.group_resource())?;
            }
        }
        Ok(())
    }

    fn group_resource(&self) -> String {
        format!("group '{}'", self.config.group_id)
    }

    fn on_group_error(&mut self, e: &Error) {
        if needs_rejoin(e) {
            self.rejoin.store(true, Ordering::SeqCst);
        }
        if matches!(e.code(), Some(UNKNOWN_MEMBER_ID) | Some(ILLEGAL_GENERATION)) {
            self.generation = -1;
        }
        if matches!(e.code(), Some(UNKNOWN_MEMBER_ID)) {
            self.member_id.clear();
        }
        if coordinator_gone(e) {
            self.coordinator = None;
            self.rejoin.store(true, Ordering::SeqCst);
        }
    }

    async fn coordinator(&mut self) -> Result<Arc<Connection>> {
        if let Some(c) = &self.coordinator {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let (_, conn) = self
            .admin
            .find_group_coordinator(&self.config.group_id)
            .await?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    fn revoke(&mut self) {
        let revoked = self.inner.assignment();
        if let Some(l) = self.listener.as_mut() {
            l.on_revoked(&revoked);
        }
    }

    /// Rejoins the group, retrying coordinator moves and rebalances.
    async fn join(&mut self) -> Result<()> {
        self.stop_heartbeat();
        if self.joined {
            if self.config.enable_auto_commit {
                if let Err(e) = self.commit_sync().await {
                    tracing::debug!(error = %e, "commit before rebalance failed");
                }
            }
            self.revoke();
            self.inner.assign(Vec::new()).await?;
            self.joined = false;
        }
        let mut attempt = 0u32;
        loop {
            self.rejoin.store(false, Ordering::SeqCst);
            match self.join_once().await {
                Ok(assignment) => {
                    self.start(assignment).await?;
                    return Ok(());
                }
                Err(e) if attempt < 20 && (needs_rejoin(&e) || e.is_retriable()) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "rejoining group");
                    self.on_group_error(&e);
                    if coordinator_gone(&e) || !needs_rejoin(&e) {
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10))))
                            .await;
                    }
                }
                Err(e) => return Err(e),
            }
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
        let resp = loop {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&*group)))
                .with_session_timeout_ms(ms(self.config.session_timeout))
                .with_rebalance_timeout_ms(ms(self.config.rebalance_timeout))
                .with_member_id(s(&*self.member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s(strategy.name()))
                    .with_metadata(encode_subscription(&self.topics))]);
            let resp = conn.call_version(req, jv, timeout).await?;
            if resp.error_code == MEMBER_ID_REQUIRED {
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
        let assignments = if resp.leader.as_str() == self.member_id {
            let mut subs = BTreeMap::new();
            for m in &resp.members {
                subs.insert(m.member_id.to_string(), decode_subscription(&m.metadata)?);
            }
            let wanted: Vec<String> = subs
                .values()
                .flatten()
                .cloned()
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
            let plan = match protocol.parse::<AssignmentStrategy>()? {
                AssignmentStrategy::Range => assign_range(&subs, &counts),
                AssignmentStrategy::RoundRobin => assign_roundrobin(&subs, &counts),
            };
            plan.into_iter()
                .map(|(m, parts)| {
                    let parts: Vec<(String, Vec<i32>)> = parts.into_iter().collect();
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(encode_assignment(&parts))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sv = conn.negotiated_version(ApiKey::SyncGroup).unwrap_or(0);
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&*group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&*self.member_id))
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

    /// Positions the inner consumer on the new assignment and starts the
    /// heartbeat.
    /// The group's committed offsets of `parts`. A read_committed member
    /// asks for stable offsets only (KIP-447): while a transaction that
    /// commits offsets for these partitions is open, the coordinator answers
    /// UNSTABLE_OFFSET_COMMIT and we wait, up to half the session timeout
    /// (no heartbeats run yet), then let the caller rejoin.
    async fn committed_offsets(
        &mut self,
        parts: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let require_stable = self.config.consumer.isolation_level == IsolationLevel::ReadCommitted;
        let deadline = Instant::now() + self.config.session_timeout / 2;
        let mut backoff = Duration::from_millis(50);
        loop {
            let conn = self.coordinator().await?;
            match fetch_committed(&conn, &self.config.group_id, parts, require_stable).await {
                Err(e)
                    if e.code() == Some(codes::UNSTABLE_OFFSET_COMMIT)
                        && Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn start(&mut self, assignment: Vec<(String, Vec<i32>)>) -> Result<()> {
        let parts: Vec<(String, i32)> = assignment
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let committed = if parts.is_empty() {
            BTreeMap::new()
        } else {
            self.committed_offsets(&parts).await?
        };
        let mut assign = Vec::with_capacity(parts.len());
        for (t, p) in &parts {
            let start = match committed.get(&(t.clone(), *p)) {
                Some(&o) if o >= 0 => StartOffset::Offset(o),
                _ => match self.config.consumer.auto_offset_reset {
                    OffsetReset::Earliest => StartOffset::Earliest,
                    OffsetReset::Latest => StartOffset::Latest,
                    OffsetReset::None => {
                        return Err(Error::Config(format!(
                            "no committed offset for {t}-{p} in group '{}' and auto.offset.reset is none",
                            self.config.group_id
                        )))
                    }
                },
            };
            assign.push((t.clone(), *p, start));
        }
        self.inner.assign(assign).await?;
        self.joined = true;
        self.last_commit = Instant::now();
        if let Some(l) = self.listener.as_mut() {
            l.on_assigned(&parts);
        }
        let conn = self.coordinator().await?;
        self.heartbeat = Some(tokio::spawn(heartbeat_loop(
            conn,
            self.config.group_id.clone(),
            self.generation,
            self.member_id.clone(),
            self.config.heartbeat_interval,
            self.rejoin.clone(),
        )));
        Ok(())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

fn needs_rejoin(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(REBALANCE_IN_PROGRESS)
            | Some(UNKNOWN_MEMBER_ID)
            | Some(ILLEGAL_GENERATION)
            | Some(FENCED_INSTANCE_ID)
    ) || coordinator_gone(e)
}

fn coordinator_gone(e: &Error) -> bool {
    matches!(e.code(), Some(14) | Some(15) | Some(16))
        || matches!(e, Error::Disconnected(_) | Error::Io { .. })
}

async fn heartbeat_loop(
    conn: Arc<Connection>,
    group: String,
    generation: i32,
    member: String,
    interval: Duration,
    rejoin: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(interval).await;
        if rejoin.load(Ordering::SeqCst) {
            return;
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&*group)))
            .with_generation_id(generation)
            .with_member_id(s(&*member));
        let res = match conn.call(req).await {
            Ok(r) => Error::check(r.error_code, None, format!("heartbeat of group '{group}'")),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {}
            Err(e) if needs_rejoin(&e) => {
                tracing::debug!(error = %e, "heartbeat: rejoin needed");
                rejoin.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}

async fn commit_offsets(
    conn: &Connection,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(String, i32, i64)],
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in offsets {
        topics.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = conn.call(req).await?;
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != codes::NONE {
                return Err(Error::Kafka(KafkaError::new(p.error_code, None).on(
                    format!(
                        "committing {}-{} for group '{group}'",
                        t.name.0.as_str(),
                        p.partition_index
                    ),
                )));
            }
        }
    }
    Ok(())
}

/// The group's committed offsets for `parts` (-1 when there is none).
async fn fetch_committed(
    conn: &Connection,
    group: &str,
    parts: &[(String, i32)],
    require_stable: bool,
) -> Result<BTreeMap<(String, i32), i64>> {
    let v = conn
        .negotiated_version(ApiKey::OffsetFetch)
        .ok_or_else(|| Error::UnsupportedVersion {
            addr: conn.addr().to_string(),
            api: "OffsetFetch".into(),
        })?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let resource = format!("offsets of group '{group}'");
    let mut out = BTreeMap::new();
    let mut add = |t: &str, p: i32, code: i16, o: i64| -> Result<()> {
        Error::check(code, None, format!("{t}-{p} of group '{group}'"))?;
        out.insert((t.to_string(), p), o);
        Ok(())
    };
    if v >= 8 {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(*t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let req = OffsetFetchRequest::default()
            .with_require_stable(require_stable)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_member_epoch(-1)
                .with_topics(Some(topics))]);
        let resp = conn.call_version(req, v, conn_timeout()).await?;
        for g in resp.groups {
            Error::check(g.error_code, None, resource.clone())?;
            for t in g.topics {
                for p in t.partitions {
                    add(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.error_code,
                        p.committed_offset,
                    )?;
                }
            }
        }
    } else {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(*t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let mut req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(topics));
        // v7 brought require_stable.
        if v >= 7 {
            req = req.with_require_stable(require_stable);
        }
        let resp = conn.call_version(req, v, conn_timeout()).await?;
        Error::check(resp.error_code, None, resource)?;
        for t in resp.topics {
            for p in t.partitions {
                add(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code,
                    p.committed_offset,
                )?;
            }
        }
    }
    Ok(out)
}

fn conn_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Encodes a `ConsumerProtocolSubscription` v0: i16 version, array of topic
/// strings, null user data.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

/// Decodes the topics of a `ConsumerProtocolSubscription` (any version; the
/// fields after the topics are ignored).
pub fn decode_subscription(bytes: &[u8]) -> Result<Vec<String>> {
    let err = || Error::Protocol("consumer subscription: truncated".into());
    let mut buf = bytes;
    let take = |buf: &mut &[u8], n: usize| -> Result<Vec<u8>> {
        if buf.len() < n {
            return Err(err());
        }
        let (a, b) = buf.split_at(n);
        *buf = b;
        Ok(a.to_vec())
    };
    take(&mut buf, 2)?;
    let n = i32::from_be_bytes(take(&mut buf, 4)?.try_into().map_err(|_| err())?);
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let len = i16::from_be_bytes(take(&mut buf, 2)?.try_into().map_err(|_| err())?);
        let name = take(&mut buf, usize::try_from(len).map_err(|_| err())?)?;
        out.push(
            String::from_utf8(name)
                .map_err(|_| Error::Protocol("consumer subscription: topic is not UTF-8".into()))?,
        );
    }
    Ok(out)
}

/// Encodes a `ConsumerProtocolAssignment` v0: i16 version, array of (topic,
/// array of i32 partitions), null user data.
pub fn encode_assignment(parts: &[(String, Vec<i32>)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(parts.len() as i32);
    for (t, ps) in parts {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

/// Member id -> topic -> partitions.
pub type GroupAssignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// The range assignor: for each topic, its subscribers sorted by member id
/// get contiguous ranges; the first `partitions % members` get one extra.
/// Every member appears in the result, possibly with nothing.
pub fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut out: GroupAssignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &n) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let per = n / members.len() as i32;
        let extra = n % members.len() as i32;
        for (i, m) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                out.get_mut(m)
                    .expect("member")
                    .insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// The round-robin assignor: all subscribed topic-partitions, sorted, are
/// dealt over the members sorted by id, skipping members not subscribed to
/// the partition's topic.
pub fn assign_roundrobin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut out: GroupAssignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    if members.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, &n) in partition_counts {
        if !subscriptions.values().any(|ts| ts.contains(topic)) {
            continue;
        }
        for p in 0..n {
            loop {
                let m = members[next % members.len()];
                next += 1;
                if subscriptions[m].contains(topic) {
                    out.get_mut(m)
                        .expect("member")
                        .entry(topic.clone())
                        .or_default()
                        .push(p);
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(v: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        v.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn parts(a: &GroupAssignment, m: &str, t: &str) -> Vec<i32> {
        a[m].get(t).cloned().unwrap_or_default()
    }

    #[test]
    fn range_splits_each_topic_by_sorted_member() {
        let s = subs(&[("b", &["t1", "t2"]), ("a", &["t1", "t2"])]);
        let a = assign_range(&s, &counts(&[("t1", 3), ("t2", 4)]));
        assert_eq!(parts(&a, "a", "t1"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "t1"), vec![2]);
        assert_eq!(parts(&a, "a", "t2"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "t2"), vec![2, 3]);
    }

    #[test]
    fn range_with_more_members_than_partitions_and_partial_subscriptions() {
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t", "u"])]);
        let a = assign_range(&s, &counts(&[("t", 2), ("u", 2)]));
        assert_eq!(parts(&a, "a", "t"), vec![0]);
        assert_eq!(parts(&a, "b", "t"), vec![1]);
        assert!(parts(&a, "c", "t").is_empty());
        assert_eq!(parts(&a, "c", "u"), vec![0, 1]);
        assert!(a.contains_key("c"));
    }

    #[test]
    fn roundrobin_deals_sorted_partitions() {
        let s = subs(&[("m2", &["t1", "t2"]), ("m1", &["t1", "t2"])]);
        let a = assign_roundrobin(&s, &counts(&[("t1", 3), ("t2", 2)]));
        // t1-0 m1, t1-1 m2, t1-2 m1, t2-0 m2, t2-1 m1
        assert_eq!(parts(&a, "m1", "t1"), vec![0, 2]);
        assert_eq!(parts(&a, "m2", "t1"), vec![1]);
        assert_eq!(parts(&a, "m1", "t2"), vec![1]);
        assert_eq!(parts(&a, "m2", "t2"), vec![0]);
    }

    #[test]
    fn roundrobin_skips_unsubscribed_members() {
        let s = subs(&[("a", &["t"]), ("b", &["u"])]);
        let a = assign_roundrobin(&s, &counts(&[("t", 2), ("u", 1), ("x", 5)]));
        assert_eq!(parts(&a, "a", "t"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "u"), vec![0]);
        assert!(!a["a"].contains_key("x") && !a["b"].contains_key("x"));
    }

    #[test]
    fn subscription_round_trips_and_has_kafka_layout() {
        let topics = vec!["ab".to_string(), "c".to_string()];
        let b = encode_subscription(&topics);
        assert_eq!(
            &b[..],
            &[0, 0, 0, 0, 0, 2, 0, 2, b'a', b'b', 0, 1, b'c', 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_subscription(&b).unwrap(), topics);
        assert!(decode_subscription(&b[..7]).is_err());
    }

    #[test]
    fn assignment_encoding_decodes_with_member_assignment() {
        let parts = vec![
            ("orders".to_string(), vec![0, 2]),
            ("x".to_string(), vec![]),
        ];
        let b = encode_assignment(&parts);
        let a = MemberAssignment::decode(&b).unwrap();
        assert_eq!(a.version, 0);
        assert_eq!(a.partitions, parts);
        assert_eq!(a.user_data, None);
        assert_eq!(&b[b.len() - 4..], &[0xff; 4]);
    }

    #[test]
    fn parses_strategy() {
        assert_eq!(
            "roundrobin".parse::<AssignmentStrategy>().unwrap(),
            AssignmentStrategy::RoundRobin
        );
        assert!("sticky".parse::<AssignmentStrategy>().is_err());
        let c = GroupConsumerConfig::new("g");
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert!(c.enable_auto_commit);
        assert_eq!(c.assignment_strategy, AssignmentStrategy::Range);
    }
}
