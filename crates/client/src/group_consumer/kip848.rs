//! The KIP-848 consumer group protocol, member side.
//!
//! A background task sends ConsumerGroupHeartbeat at the interval the
//! coordinator gives, reporting the member's epoch and the partitions it
//! owns, and keeps the latest assignment it is given. `poll` reconciles
//! (listener callbacks and commits belong to the caller's task): it
//! revokes what left the assignment first, takes what joined it, then
//! wakes the task to report the new owned set, which is what lets the
//! coordinator hand revoked partitions to their next owners. A fenced
//! member (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) loses its partitions and
//! rejoins with epoch 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{classic, lock, ms, GroupConsumer, Release, Shared};
use crate::admin::{s, Admin};
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};

/// The member epoch that leaves the group.
const LEAVE_EPOCH: i32 = -1;
/// The member epoch with which a static member leaves for a while: the
/// coordinator keeps its partitions for its successor.
const STATIC_LEAVE_EPOCH: i32 = -2;

/// What the heartbeat task and `poll` share.
#[derive(Debug)]
struct State {
    member_id: String,
    epoch: i32,
    topics: Vec<String>,
    /// Send the subscription on the next heartbeat.
    subscription_changed: bool,
    /// What the member owns, as `poll` last reconciled it.
    owned: BTreeSet<(Uuid, i32)>,
    /// The latest assignment from the coordinator, not yet reconciled.
    target: Option<BTreeSet<(Uuid, i32)>>,
    /// Fenced: `poll` must give up everything, then the task rejoins.
    fenced: bool,
}

/// A running KIP-848 membership.
pub(super) struct Member {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Member {
    /// The current member epoch.
    pub(super) fn epoch(&self) -> i32 {
        lock(&self.state).epoch
    }

    /// Sends the new subscription on the next heartbeat, which comes now.
    pub(super) fn subscribe(&self, topics: &[String]) {
        let mut st = lock(&self.state);
        st.topics = topics.to_vec();
        st.subscription_changed = true;
        drop(st);
        self.wake.notify_one();
    }

    /// Heartbeats now rather than at the next interval (to learn a new
    /// member epoch sooner).
    pub(super) fn heartbeat_now(&self) {
        self.wake.notify_one();
    }

    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

/// What the heartbeat task sends besides the shared state.
struct Settings {
    group: String,
    instance_id: Option<String>,
    rebalance_timeout: Duration,
    server_assignor: Option<String>,
}

impl GroupConsumer {
    /// Starts the membership if needed, then follows the coordinator:
    /// gives everything up after a fence, otherwise reconciles with the
    /// latest assignment.
    pub(super) async fn reconcile(&mut self) -> Result<()> {
        if self.kip848.is_none() {
            self.start_kip848();
        }
        let Some(member) = &self.kip848 else {
            return Ok(());
        };
        let (state, wake) = (member.state.clone(), member.wake.clone());
        let (fenced, target) = {
            let mut st = lock(&state);
            self.member_id = st.member_id.clone();
            self.generation = st.epoch;
            (st.fenced, st.target.take())
        };
        if fenced {
            let owned = self.owned();
            self.release(&owned, Release::Lost).await;
            let mut st = lock(&state);
            st.owned.clear();
            st.target = None;
            st.epoch = 0;
            st.fenced = false;
            self.generation = 0;
            drop(st);
            wake.notify_one();
            return Ok(());
        }
        let Some(target) = target else {
            return Ok(());
        };
        let names = self.topic_names(&target).await?;
        let named: BTreeSet<(String, i32)> = target
            .iter()
            .filter_map(|(id, p)| names.get(id).map(|n| (n.clone(), *p)))
            .collect();
        let owned = self.owned();
        let revoked: BTreeSet<(String, i32)> = owned.difference(&named).cloned().collect();
        let added: BTreeSet<(String, i32)> = named.difference(&owned).cloned().collect();
        self.release(&revoked, Release::Revoked).await;
        if !added.is_empty() {
            if let Err(e) = self.take(&added).await {
                // Try again on the next poll, unless a newer assignment came.
                lock(&state).target.get_or_insert(target);
                if e.is_retriable() {
                    tracing::debug!(error = %e, "taking assigned partitions failed; will retry");
                    return Ok(());
                }
                return Err(e);
            }
        }
        let owned = self.owned();
        let owned_ids: BTreeSet<(Uuid, i32)> = target
            .into_iter()
            .filter(|(id, p)| {
                names
                    .get(id)
                    .is_some_and(|n| owned.contains(&(n.clone(), *p)))
            })
            .collect();
        let mut st = lock(&state);
        let acknowledge = st.owned != owned_ids;
        st.owned = owned_ids;
        drop(st);
        if acknowledge {
            wake.notify_one();
        }
        Ok(())
    }

    fn start_kip848(&mut self) {
        let state = Arc::new(Mutex::new(State {
            member_id: Uuid::new_v4().to_string(),
            epoch: 0,
            topics: self.topics.clone(),
            subscription_changed: false,
            owned: BTreeSet::new(),
            target: None,
            fenced: false,
        }));
        let wake = Arc::new(Notify::new());
        let settings = Settings {
            group: self.config.group_id.clone(),
            instance_id: self.config.group_instance_id.clone(),
            rebalance_timeout: self.config.rebalance_timeout,
            server_assignor: self.config.server_assignor.clone(),
        };
        let task = tokio::spawn(heartbeat_loop(
            self.admin.clone(),
            settings,
            state.clone(),
            wake.clone(),
            self.shared.clone(),
        ));
        self.member_id = lock(&state).member_id.clone();
        self.generation = 0;
        self.joined = true;
        self.kip848 = Some(Member { state, wake, task });
    }

    /// Names of the assigned topic ids, refreshing metadata once when one
    /// is unknown (a topic created after the last refresh).
    async fn topic_names(
        &mut self,
        target: &BTreeSet<(Uuid, i32)>,
    ) -> Result<BTreeMap<Uuid, String>> {
        let known = || -> BTreeMap<Uuid, String> {
            self.cluster
                .metadata()
                .topics
                .values()
                .map(|t| (Uuid::from_bytes(t.topic_id), t.name.clone()))
                .collect()
        };
        let mut names = known();
        if target.iter().any(|(id, _)| !names.contains_key(id)) {
            self.cluster.refresh_metadata(Some(&self.topics)).await?;
            names = known();
        }
        Ok(names)
    }

    /// Leaves the group with epoch -1, or -2 for a static member (which
    /// keeps its partitions at the coordinator for its restart).
    pub(super) async fn leave_kip848(&mut self) -> Result<()> {
        let Some(member) = self.kip848.take() else {
            return Ok(());
        };
        member.stop();
        let member_id = lock(&member.state).member_id.clone();
        let epoch = match self.config.group_instance_id {
            Some(_) => STATIC_LEAVE_EPOCH,
            None => LEAVE_EPOCH,
        };
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&*self.config.group_id)))
            .with_member_id(s(member_id))
            .with_member_epoch(epoch)
            .with_instance_id(self.config.group_instance_id.as_ref().map(|i| s(&**i)));
        let conn = self.coordinator().await?;
        let resp = conn.call(req).await?;
        let owned = self.assignment();
        self.inner.unassign(&owned);
        self.awaiting_position.clear();
        if resp.error_code == codes::UNKNOWN_MEMBER_ID {
            return Ok(());
        }
        Error::check(
            resp.error_code,
            resp.error_message.map(|m| m.to_string()),
            self.group_resource(),
        )
    }
}

/// Heartbeats until stopped or fatally refused. Wakes early when `poll`
/// changed what the member owns or subscribes to.
async fn heartbeat_loop(
    admin: Admin,
    settings: Settings,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let mut conn: Option<Arc<Connection>> = None;
    let mut interval = Duration::ZERO;
    let mut failures = 0u32;
    loop {
        if !interval.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
        }
        if lock(&state).fenced {
            // `poll` releases the partitions first, then wakes us.
            wake.notified().await;
            continue;
        }
        let c = match &conn {
            Some(c) if !c.is_closed() => c.clone(),
            _ => match admin.find_group_coordinator(&settings.group).await {
                Ok((_, c)) => {
                    conn = Some(c.clone());
                    c
                }
                Err(e) => {
                    failures += 1;
                    interval = backoff(failures);
                    tracing::debug!(error = %e, "no group coordinator for the heartbeat");
                    continue;
                }
            },
        };
        let (req, sent_subscription) = request(&state, &settings, &c);
        let res = c.call(req).await;
        let outcome = match res {
            Ok(resp) => answer(&state, resp, &settings.group),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(next) => {
                failures = 0;
                interval = next;
            }
            Err(e) => {
                if sent_subscription {
                    lock(&state).subscription_changed = true;
                }
                if classic::coordinator_gone(&e) {
                    conn = None;
                } else if !e.is_retriable() {
                    tracing::warn!(error = %e, "consumer group heartbeat refused");
                    shared.set_fatal(e);
                    return;
                }
                failures += 1;
                interval = backoff(failures);
                tracing::debug!(error = %e, "consumer group heartbeat failed; retrying");
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(10)))
}

/// The next heartbeat: the full subscription when joining (epoch 0) or
/// when it changed, and the owned partitions (none when joining).
fn request(
    state: &Mutex<State>,
    settings: &Settings,
    conn: &Connection,
) -> (ConsumerGroupHeartbeatRequest, bool) {
    let mut st = lock(state);
    let joining = st.epoch == 0;
    let send_subscription = joining || st.subscription_changed;
    st.subscription_changed = false;
    // v0 has the coordinator choose the member id on the first join.
    let member_id = if joining && conn.negotiated_version(ApiKey::ConsumerGroupHeartbeat) == Some(0)
    {
        String::new()
    } else {
        st.member_id.clone()
    };
    let mut owned: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    if !joining {
        for (id, p) in &st.owned {
            owned.entry(*id).or_default().push(*p);
        }
    }
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&*settings.group)))
        .with_member_id(s(member_id))
        .with_member_epoch(st.epoch)
        .with_instance_id(settings.instance_id.as_ref().map(|i| s(&**i)))
        .with_rebalance_timeout_ms(if joining {
            ms(settings.rebalance_timeout)
        } else {
            -1
        })
        .with_subscribed_topic_names(
            send_subscription.then(|| st.topics.iter().map(|t| TopicName(s(&**t))).collect()),
        )
        .with_server_assignor(
            settings
                .server_assignor
                .as_ref()
                .filter(|_| joining)
                .map(|a| s(&**a)),
        )
        .with_topic_partitions(Some(
            owned
                .into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                })
                .collect(),
        ));
    (req, send_subscription)
}

/// Applies a heartbeat answer; returns when to heartbeat next. Fencing
/// marks the state for `poll`; other refusals are errors.
fn answer(
    state: &Mutex<State>,
    resp: ConsumerGroupHeartbeatResponse,
    group: &str,
) -> Result<Duration> {
    let mut st = lock(state);
    match resp.error_code {
        codes::NONE => {
            st.epoch = resp.member_epoch;
            if let Some(id) = resp.member_id.filter(|id| !id.is_empty()) {
                st.member_id = id.to_string();
            }
            if let Some(a) = resp.assignment {
                st.target = Some(
                    a.topic_partitions
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
                        .collect(),
                );
            }
            Ok(Duration::from_millis(
                u64::try_from(resp.heartbeat_interval_ms.max(1)).unwrap_or(1),
            ))
        }
        codes::FENCED_MEMBER_EPOCH | codes::UNKNOWN_MEMBER_ID => {
            tracing::info!(
                group,
                epoch = st.epoch,
                code = resp.error_code,
                "member fenced; rejoining"
            );
            st.fenced = true;
            Ok(Duration::ZERO)
        }
        code => Err(Error::Kafka(
            KafkaError::new(code, resp.error_message.map(|m| m.to_string()))
                .on(format!("group '{group}'")),
        )),
    }
}
