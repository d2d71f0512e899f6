//! A consumer-group consumer, over either group protocol.
//!
//! * `classic` (JoinGroup, SyncGroup, Heartbeat, LeaveGroup): the leader
//!   member assigns with `range`, `roundrobin` (both eager: every member
//!   gives up everything before each rebalance) or `cooperative-sticky`
//!   (KIP-429: members keep what they own while rejoining and give up only
//!   the partitions that move, then rejoin once more so the new owners get
//!   them).
//! * `consumer` (KIP-848 ConsumerGroupHeartbeat): the coordinator assigns;
//!   a background task heartbeats at the interval the coordinator gives and
//!   `poll` reconciles: it revokes first (listener, commit, then reports
//!   what it still owns) and takes new partitions when they are free.
//!
//! Both support static membership (`group.instance.id`). Each newly owned
//! partition resumes at the group's committed offset (OffsetFetch), or per
//! `auto.offset.reset` without one. Fetching and decoding are the
//! assign-based [`Consumer`]'s.

mod assignor;
mod classic;
mod kip848;
mod offsets;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_protocol::error as codes;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::cluster::{ClientConfig, Cluster};
use crate::connection::Connection;
use crate::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, StartOffset,
};
use crate::error::{Error, Result};
use crate::transaction::ConsumerGroupMetadata;

use offsets::{commit_offsets, fetch_committed, Committer};

/// Which group protocol the member speaks (`group.protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with client-side assignment.
    #[default]
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat with server-side assignment.
    Consumer,
}

impl FromStr for GroupProtocol {
    type Err = Error;
    fn from_str(v: &str) -> Result<Self> {
        match v {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            other => Err(Error::Config(format!(
                "invalid group.protocol '{other}' (expected classic or consumer)"
            ))),
        }
    }
}

/// How the classic group's leader spreads partitions over members
/// (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    /// Per topic, contiguous ranges of partitions by sorted member id.
    Range,
    /// All topic-partitions dealt round-robin over sorted members.
    RoundRobin,
    /// Balanced and sticky, with the cooperative rebalance protocol: only
    /// partitions that move are revoked.
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name used in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether members keep their partitions across a rebalance.
    pub fn is_cooperative(self) -> bool {
        self == AssignmentStrategy::CooperativeSticky
    }
}

impl FromStr for AssignmentStrategy {
    type Err = Error;
    fn from_str(v: &str) -> Result<Self> {
        match v {
            "range" => Ok(AssignmentStrategy::Range),
            "roundrobin" => Ok(AssignmentStrategy::RoundRobin),
            "cooperative-sticky" => Ok(AssignmentStrategy::CooperativeSticky),
            other => Err(Error::Config(format!(
                "invalid partition.assignment.strategy '{other}' (expected range, roundrobin or cooperative-sticky)"
            ))),
        }
    }
}

/// Group consumer settings. Defaults follow the Java client.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.protocol` (default classic).
    pub group_protocol: GroupProtocol,
    /// `group.instance.id`: a static member keeps its partitions across a
    /// restart within the session timeout, with no rebalance. A second
    /// member with the same id fences the first (FENCED_INSTANCE_ID).
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (default 45 s; classic only — the KIP-848
    /// coordinator sets its own).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3 s; classic only — the KIP-848
    /// coordinator gives the interval).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout (default 5 min).
    pub rebalance_timeout: Duration,
    /// `partition.assignment.strategy` (classic; default range).
    pub assignment_strategy: AssignmentStrategy,
    /// `group.remote.assignor` (KIP-848): the server-side assignor to ask
    /// for (`uniform`, `range`); `None` takes the coordinator's default.
    pub server_assignor: Option<String>,
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
            group_protocol: GroupProtocol::Classic,
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            rebalance_timeout: Duration::from_millis(300_000),
            assignment_strategy: AssignmentStrategy::Range,
            server_assignor: None,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            consumer: ConsumerConfig::default(),
        }
    }
}

/// Told about partitions leaving and joining the assignment. Called from
/// `poll` (and `close`), never from a background task.
pub trait RebalanceListener: Send {
    /// Partitions this member gives up; with auto-commit their positions
    /// are already committed. Eager assignors revoke everything before each
    /// rebalance; cooperative-sticky and the KIP-848 protocol only what
    /// moves to another member.
    fn on_revoked(&mut self, _partitions: &[(String, i32)]) {}
    /// Partitions added to the assignment (for eager assignors: the whole
    /// new assignment).
    fn on_assigned(&mut self, _partitions: &[(String, i32)]) {}
    /// Partitions lost without a chance to commit: the member was fenced
    /// or fell out of the group, and others may own them already. By
    /// default this is treated as a revocation.
    fn on_lost(&mut self, partitions: &[(String, i32)]) {
        self.on_revoked(partitions);
    }
}

/// State the heartbeat task shares with the member.
#[derive(Debug, Default)]
struct Shared {
    /// Rejoin before fetching again (classic).
    rejoin: AtomicBool,
    /// The membership ended (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION): what
    /// the member owns is lost.
    lost: Mutex<Option<Error>>,
    /// An error the member cannot recover from (FENCED_INSTANCE_ID, ...):
    /// every later `poll` returns it.
    fatal: Mutex<Option<Error>>,
}

impl Shared {
    fn set_fatal(&self, e: Error) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some(e);
        }
    }

    fn fatal(&self) -> Option<Error> {
        lock(&self.fatal).clone()
    }
}

/// Locks a mutex, ignoring poisoning: the guarded state stays consistent
/// because no code panics while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why partitions leave the assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Handed over cleanly: commit first (with auto-commit).
    Revoked,
    /// Already gone: no commit.
    Lost,
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
    /// The classic generation, or the KIP-848 member epoch.
    generation: i32,
    /// Owned partitions with no position yet: no committed offset and
    /// `auto.offset.reset` is none. `poll` fails until they are sought.
    awaiting_position: BTreeSet<(String, i32)>,
    shared: Arc<Shared>,
    joined: bool,
    /// The classic heartbeat task.
    heartbeat: Option<JoinHandle<()>>,
    /// The KIP-848 membership, once started.
    kip848: Option<kip848::Member>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_commit: Instant,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.config.group_id)
            .field("protocol", &self.config.group_protocol)
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
        if config.group_instance_id.as_deref() == Some("") {
            return Err(Error::Config("group.instance.id must not be empty".into()));
        }
        let admin = Admin {
            cluster: cluster.clone(),
            timeout: cluster.config().request_timeout,
        };
        let shared = Arc::new(Shared::default());
        shared.rejoin.store(true, Ordering::SeqCst);
        Ok(GroupConsumer {
            inner: Consumer::new(cluster.clone(), config.consumer.clone()),
            cluster,
            admin,
            config,
            topics: Vec::new(),
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            awaiting_position: BTreeSet::new(),
            shared,
            joined: false,
            heartbeat: None,
            kip848: None,
            listener: None,
            last_commit: Instant::now(),
        })
    }

    /// Sets the rebalance listener.
    pub fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Subscribes to `topics` (replacing earlier subscriptions); the group
    /// learns of it on the next `poll`.
    pub fn subscribe<T: AsRef<str>>(&mut self, topics: &[T]) {
        let mut t: Vec<String> = topics.iter().map(|t| t.as_ref().to_string()).collect();
        t.sort();
        t.dedup();
        self.topics = t;
        self.shared.rejoin.store(true, Ordering::SeqCst);
        if let Some(member) = &self.kip848 {
            member.subscribe(&self.topics);
        }
    }

    /// The partitions currently assigned to this member.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.owned().into_iter().collect()
    }

    fn owned(&self) -> BTreeSet<(String, i32)> {
        let mut owned: BTreeSet<(String, i32)> = self.inner.assignment().into_iter().collect();
        owned.extend(self.awaiting_position.iter().cloned());
        owned
    }

    /// Moves the position of an assigned partition to `offset`; the next
    /// commit commits it. This is also how a partition without a committed
    /// offset gets a position when `auto.offset.reset` is none.
    pub async fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        let key = (topic.to_string(), partition);
        if self.awaiting_position.contains(&key) {
            self.inner
                .assign_more(vec![(
                    key.0.clone(),
                    partition,
                    StartOffset::Offset(offset),
                )])
                .await?;
            self.awaiting_position.remove(&key);
            return Ok(());
        }
        self.inner
            .seek(topic, partition, StartOffset::Offset(offset))
            .await
    }

    /// The next offset `poll` returns for an assigned partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner.position(topic, partition)
    }

    /// Stops fetching these assigned partitions until [`resume`](Self::resume);
    /// the member keeps them (a rebalance that keeps them keeps them
    /// paused).
    pub fn pause(&mut self, partitions: &[(String, i32)]) {
        self.inner.pause(partitions);
    }

    /// Fetches paused partitions again.
    pub fn resume(&mut self, partitions: &[(String, i32)]) {
        self.inner.resume(partitions);
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<(String, i32)> {
        self.inner.paused()
    }

    /// The member id the coordinator issued (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The group generation of the current assignment (classic), or the
    /// member epoch (KIP-848); -1 before joining.
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
            generation_id: self.current_generation(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
        }
    }

    /// The generation or member epoch as of now: the KIP-848 heartbeat task
    /// may have moved the epoch since the last `poll`.
    fn current_generation(&self) -> i32 {
        match &self.kip848 {
            Some(member) => member.epoch(),
            None => self.generation,
        }
    }

    fn committer(&self) -> Committer {
        Committer {
            group: self.config.group_id.clone(),
            generation: self.current_generation(),
            member_id: self.member_id.clone(),
            instance_id: self.config.group_instance_id.clone(),
        }
    }

    /// Joins the group or follows its rebalances when needed, then returns
    /// records from the assigned partitions, waiting up to `timeout` for
    /// some. Commits positions every `auto.commit.interval.ms` when
    /// auto-commit is on. Listener callbacks run in here.
    ///
    /// Fails at once, every time, after a fatal error (FENCED_INSTANCE_ID:
    /// another member took this one's `group.instance.id`), and while an
    /// owned partition has no committed offset under `auto.offset.reset`
    /// none (until [`seek`](Self::seek) gives it a position).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.topics.is_empty() {
            return Err(Error::Config("poll before subscribe".into()));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.shared.fatal() {
                return Err(e);
            }
            match self.config.group_protocol {
                GroupProtocol::Classic => {
                    if !self.joined || self.shared.rejoin.load(Ordering::SeqCst) {
                        self.join().await?;
                    }
                }
                GroupProtocol::Consumer => self.reconcile().await?,
            }
            if let Some((topic, partition)) = self.awaiting_position.first() {
                return Err(Error::NoOffsetForPartition {
                    topic: topic.clone(),
                    partition: *partition,
                    group: self.config.group_id.clone(),
                });
            }
            if self.config.enable_auto_commit
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
            {
                self.last_commit = Instant::now();
                if let Err(e) = self.commit_sync().await {
                    tracing::warn!(error = %e, "auto-commit failed");
                }
                if self.shared.rejoin.load(Ordering::SeqCst) {
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
    fn positions(&self, of: Option<&BTreeSet<(String, i32)>>) -> Vec<(String, i32, i64)> {
        self.inner
            .assignment()
            .into_iter()
            .filter(|tp| of.is_none_or(|of| of.contains(tp)))
            .filter_map(|(t, p)| self.inner.position(&t, p).map(|o| (t, p, o)))
            .collect()
    }

    /// Commits the positions of the assigned partitions and waits for the
    /// coordinator. A rebalance in progress fails the commit and makes the
    /// next `poll` rejoin.
    pub async fn commit_sync(&mut self) -> Result<()> {
        self.commit_positions(None).await
    }

    async fn commit_positions(&mut self, of: Option<&BTreeSet<(String, i32)>>) -> Result<()> {
        if !self.joined {
            return Ok(());
        }
        let offsets = self.positions(of);
        if offsets.is_empty() {
            return Ok(());
        }
        // A KIP-848 member's epoch can move under a commit (STALE_MEMBER_EPOCH):
        // heartbeat at once to learn the new one, then retry with it.
        let mut attempts = 0;
        loop {
            let conn = self.coordinator().await?;
            let res = commit_offsets(&conn, &self.committer(), &offsets).await;
            match res {
                Err(e) if e.code() == Some(codes::STALE_MEMBER_EPOCH) && attempts < 20 => {
                    attempts += 1;
                    if let Some(member) = &self.kip848 {
                        member.heartbeat_now();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.on_group_error(&e);
                    return Err(e);
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Starts a commit of the current positions in the background; await
    /// the handle for its outcome.
    pub fn commit_async(&mut self) -> JoinHandle<Result<()>> {
        let offsets = self.positions(None);
        let conn = self.coordinator.clone();
        let who = self.committer();
        let joined = self.joined;
        let shared = self.shared.clone();
        let protocol = self.config.group_protocol;
        tokio::spawn(async move {
            if !joined || offsets.is_empty() {
                return Ok(());
            }
            let conn = conn.ok_or_else(|| Error::NoBroker("no group coordinator".into()))?;
            let res = commit_offsets(&conn, &who, &offsets).await;
            if let Err(e) = &res {
                if protocol == GroupProtocol::Classic && classic::needs_rejoin(e) {
                    shared.rejoin.store(true, Ordering::SeqCst);
                }
            }
            res
        })
    }

    /// Commits (with auto-commit on), tells the listener the partitions are
    /// revoked and leaves the group, so the others rebalance at once. A
    /// static member (`group.instance.id`) leaves only temporarily: the
    /// coordinator keeps its partitions for a restart within the session
    /// timeout (classic: no LeaveGroup; KIP-848: member epoch -2).
    pub async fn close(mut self) -> Result<()> {
        if !self.joined {
            self.stop_heartbeat();
            return Ok(());
        }
        let mut first_err = None;
        // Still heartbeating: a commit refused for a stale member epoch can
        // learn the current one.
        if self.config.enable_auto_commit {
            if let Err(e) = self.commit_sync().await {
                first_err = Some(e);
            }
        }
        self.stop_heartbeat();
        let owned: Vec<(String, i32)> = self.assignment();
        if !owned.is_empty() {
            if let Some(l) = self.listener.as_mut() {
                l.on_revoked(&owned);
            }
        }
        let left = match self.config.group_protocol {
            GroupProtocol::Classic => self.leave_classic().await,
            GroupProtocol::Consumer => self.leave_kip848().await,
        };
        if let Err(e) = left {
            first_err = first_err.or(Some(e));
        }
        self.joined = false;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn group_resource(&self) -> String {
        format!("group '{}'", self.config.group_id)
    }

    /// Reacts to a failed group request: forget the coordinator when it
    /// moved, and (classic) reset what the error invalidates.
    fn on_group_error(&mut self, e: &Error) {
        if classic::coordinator_gone(e) {
            self.coordinator = None;
        }
        if self.config.group_protocol == GroupProtocol::Classic {
            classic::on_error(self, e);
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
        if let Some(member) = &self.kip848 {
            member.stop();
        }
    }

    /// Gives up `partitions`: commits their positions first when they are
    /// revoked with auto-commit on, tells the listener, stops fetching them.
    async fn release(&mut self, partitions: &BTreeSet<(String, i32)>, how: Release) {
        if partitions.is_empty() {
            return;
        }
        if how == Release::Revoked && self.config.enable_auto_commit {
            if let Err(e) = self.commit_positions(Some(partitions)).await {
                tracing::warn!(error = %e, "commit of revoked partitions failed");
            }
        }
        let list: Vec<(String, i32)> = partitions.iter().cloned().collect();
        if let Some(l) = self.listener.as_mut() {
            match how {
                Release::Revoked => l.on_revoked(&list),
                Release::Lost => l.on_lost(&list),
            }
        }
        self.inner.unassign(&list);
        for tp in partitions {
            self.awaiting_position.remove(tp);
        }
    }

    /// Starts fetching newly owned partitions at the group's committed
    /// offsets (else per `auto.offset.reset`; with none they wait for a
    /// seek) and tells the listener.
    async fn take(&mut self, partitions: &BTreeSet<(String, i32)>) -> Result<()> {
        let list: Vec<(String, i32)> = partitions.iter().cloned().collect();
        let committed = if list.is_empty() {
            BTreeMap::new()
        } else {
            self.committed_offsets(&list).await?
        };
        let mut assign = Vec::with_capacity(list.len());
        for (t, p) in &list {
            let start = match committed.get(&(t.clone(), *p)) {
                Some(&o) if o >= 0 => StartOffset::Offset(o),
                _ => match self.config.consumer.auto_offset_reset {
                    OffsetReset::Earliest => StartOffset::Earliest,
                    OffsetReset::Latest => StartOffset::Latest,
                    OffsetReset::None => {
                        self.awaiting_position.insert((t.clone(), *p));
                        continue;
                    }
                },
            };
            assign.push((t.clone(), *p, start));
        }
        self.inner.assign_more(assign).await?;
        if let Some(l) = self.listener.as_mut() {
            l.on_assigned(&list);
        }
        Ok(())
    }

    /// The group's committed offsets of `parts`. A read_committed member
    /// asks for stable offsets only (KIP-447): while a transaction that
    /// commits offsets for these partitions is open, the coordinator answers
    /// UNSTABLE_OFFSET_COMMIT and we wait, up to half the session timeout,
    /// then let the caller retry.
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
                Err(e) => {
                    self.on_group_error(&e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strategy_and_protocol() {
        assert_eq!(
            "roundrobin".parse::<AssignmentStrategy>().unwrap(),
            AssignmentStrategy::RoundRobin
        );
        let sticky = "cooperative-sticky".parse::<AssignmentStrategy>().unwrap();
        assert!(sticky.is_cooperative());
        assert_eq!(sticky.name(), "cooperative-sticky");
        assert!("sticky".parse::<AssignmentStrategy>().is_err());
        assert_eq!(
            "consumer".parse::<GroupProtocol>().unwrap(),
            GroupProtocol::Consumer
        );
        assert!("eager".parse::<GroupProtocol>().is_err());
        let c = GroupConsumerConfig::new("g");
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert!(c.enable_auto_commit);
        assert_eq!(c.assignment_strategy, AssignmentStrategy::Range);
        assert_eq!(c.group_protocol, GroupProtocol::Classic);
    }
}
