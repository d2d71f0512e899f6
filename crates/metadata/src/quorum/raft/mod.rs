//! The controller quorum on openraft: [`RaftQuorum`] implements
//! [`Quorum`] with openraft's Raft over our own durable log
//! (`log_store`), a state machine whose state is the [`MetadataImage`]
//! (`state_machine`) and a [`Transport`] seam (`network`). No openraft type
//! appears outside this folder.

mod files;
mod identity;
mod in_process;
mod log_store;
mod network;
mod state_machine;
mod tcp;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod simulation_tests;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod test_cluster;

pub use identity::ClusterIdentity;
pub use in_process::InProcessNetwork;
pub use network::{RpcHandler, Transport, TransportError};
pub use tcp::{
    serve_tcp, Plaintext, QuorumIo, QuorumStream, StreamSecurity, TcpTransport, VoterLinks,
};

use crate::image::MetadataImage;
use crate::quorum::{
    Heartbeats, LogPosition, Quorum, QuorumError, QuorumFuture, QuorumStatus, VoterStatus,
};
use crate::record::MetadataRecord;
use log_store::LogStore;
use network::NetworkFactory;
use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{
    Config, ErrorSubject, ErrorVerb, Raft, SnapshotPolicy, StorageError, StorageIOError,
};
use state_machine::StateMachine;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a forwarded append waits before trying again when there is
/// no leader yet or the leader moved.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

openraft::declare_raft_types!(
    /// Entries carry a batch of metadata records; a node is known by the
    /// address of its CONTROLLER listener.
    pub(crate) TypeConfig:
        D = Vec<MetadataRecord>,
        R = state_machine::Applied,
        NodeId = u64,
        Node = String,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// How one node of the quorum runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// Every voter's node id and address (Kafka's `controller.quorum.voters`).
    pub voters: BTreeMap<i32, String>,
    /// Where the log, vote and snapshot live.
    pub dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`. A follower that stops
    /// hearing its leader stands after openraft's leader lease (this long)
    /// plus a wait drawn between half of this and this, so voters rarely
    /// stand together: 1.5 to 2 times this in all, about Kafka's
    /// `controller.quorum.fetch.timeout.ms` (twice the election timeout).
    pub election_timeout: Duration,
    /// How often the leader heartbeats; well under the election timeout.
    pub heartbeat_interval: Duration,
    /// `controller.quorum.request.timeout.ms`: how long an append waits to
    /// be committed.
    pub append_timeout: Duration,
    /// Entries between snapshots. As many entries are kept behind the
    /// snapshot, so a voter that is a little behind needs no snapshot.
    pub snapshot_interval: u64,
}

impl QuorumConfig {
    /// Kafka's defaults: election timeout 1 s, request timeout 2 s; a
    /// heartbeat each fifth of the election timeout.
    pub fn new(node_id: i32, voters: BTreeMap<i32, String>, dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            voters,
            dir,
            election_timeout: Duration::from_millis(1000),
            heartbeat_interval: Duration::from_millis(200),
            append_timeout: Duration::from_millis(2000),
            snapshot_interval: crate::snapshot::SNAPSHOT_INTERVAL,
        }
    }

    fn raft_config(&self) -> Result<Config, QuorumError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let election = millis(self.election_timeout);
        Config {
            cluster_name: "sluice-metadata".to_string(),
            election_timeout_min: (election / 2).max(1),
            election_timeout_max: election.max(2),
            heartbeat_interval: millis(self.heartbeat_interval),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_interval),
            max_in_snapshot_log_to_keep: self.snapshot_interval,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

/// A poisoned lock only means another thread panicked while holding it;
/// every update here happens after its I/O succeeded, so the data is whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn storage_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl ToString,
) -> StorageError<u64> {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

/// Kafka node ids are non-negative `i32`s; openraft's are `u64`.
fn raft_id(id: i32) -> Result<u64, QuorumError> {
    u64::try_from(id).map_err(|_| QuorumError::Config(format!("node id {id} is negative")))
}

fn kafka_id(id: u64) -> Option<i32> {
    i32::try_from(id).ok()
}

fn fatal(e: Fatal<u64>) -> QuorumError {
    match e {
        Fatal::Stopped => QuorumError::ShuttingDown,
        other => QuorumError::Storage(other.to_string()),
    }
}

/// One node of the Raft controller quorum.
pub struct RaftQuorum {
    shared: Arc<Shared>,
    log_fence: log_store::LogFence,
    snapshot_fence: state_machine::SnapshotFence,
}

/// What the node and the requests its peers send it share.
pub(super) struct Shared {
    node_id: i32,
    raft: Raft<TypeConfig>,
    images: watch::Receiver<Arc<MetadataImage>>,
    append_timeout: Duration,
    /// Held by an append on the leader from its stale check until it is
    /// applied, so no append is decided against an image another one is
    /// about to change.
    writer: tokio::sync::Mutex<()>,
    heartbeats: Heartbeats,
    transport: Arc<dyn Transport>,
}

/// A leader's answer to a forwarded append.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Forwarded {
    term: u64,
    index: u64,
    /// The leader's image offset right after the entry.
    applied: u64,
}

impl RaftQuorum {
    /// Opens the log in `config.dir` and starts the node. On a new cluster
    /// (empty log) the lowest voter id writes the voter set as the first
    /// entry; the others wait to hear from it. A lone voter stands for
    /// election at once instead of waiting out the election timeout.
    ///
    /// A voter that lost its directory starts empty and is caught up from
    /// the leader, but it has forgotten its vote too: nothing yet tells it
    /// from a new voter (Kafka adds directory ids for this, KIP-853).
    pub async fn start(
        config: QuorumConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, QuorumError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(QuorumError::Config(format!(
                "node {} is not one of the voters {:?}",
                config.node_id,
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let mut members = BTreeMap::new();
        for (id, address) in &config.voters {
            members.insert(raft_id(*id)?, address.clone());
        }
        let raft_config = Arc::new(config.raft_config()?);
        let dir = config.dir.clone();
        let (log, (state_machine, images)) = tokio::task::spawn_blocking(move || {
            Ok::<_, QuorumError>((LogStore::open(&dir)?, StateMachine::open(&dir)?))
        })
        .await
        .map_err(|e| QuorumError::Storage(e.to_string()))??;
        let (log_fence, snapshot_fence) = (log.fence(), state_machine.fence());
        let network = NetworkFactory {
            me: config.node_id,
            transport: Arc::clone(&transport),
        };
        let raft = Raft::new(
            raft_id(config.node_id)?,
            raft_config,
            network,
            log,
            state_machine,
        )
        .await
        .map_err(fatal)?;
        // The voter set lives in the log once written; a different one in
        // the configuration would be silently ignored, and changing voters
        // is not supported yet.
        // (Asked of the core: the metrics are a placeholder until it reports.)
        let logged: Vec<u64> = raft
            .with_raft_state(|state| state.membership_state.effective().voter_ids().collect())
            .await
            .map_err(fatal)?;
        if !logged.is_empty() && !logged.iter().eq(members.keys()) {
            let _stopped = raft.shutdown().await;
            return Err(QuorumError::Config(format!(
                "the configured voters {:?} are not the voters {logged:?} recorded in {}; \
                 changing the voter set is not supported yet",
                config.voters.keys().collect::<Vec<_>>(),
                config.dir.display()
            )));
        }
        let lowest = config.voters.keys().next() == Some(&config.node_id);
        if lowest && !raft.is_initialized().await.map_err(fatal)? {
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(RaftError::Fatal(e)) => return Err(fatal(e)),
                Err(e) => return Err(QuorumError::Config(e.to_string())),
            }
        } else if config.voters.len() == 1 {
            raft.trigger().elect().await.map_err(fatal)?;
        }
        Ok(RaftQuorum {
            shared: Arc::new(Shared {
                node_id: config.node_id,
                raft,
                images,
                append_timeout: config.append_timeout,
                writer: tokio::sync::Mutex::new(()),
                heartbeats: Heartbeats::default(),
                transport,
            }),
            log_fence,
            snapshot_fence,
        })
    }

    /// What a transport hands the requests addressed to this node.
    pub fn rpc_handler(&self) -> RpcHandler {
        RpcHandler::new(Arc::clone(&self.shared))
    }

    /// Stops the node; later appends answer [`QuorumError::ShuttingDown`].
    /// Once it returns nothing writes to the directory any more, so a new
    /// node may start on it.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        let stopped = self.shared.raft.shutdown().await;
        self.log_fence.close().await;
        self.snapshot_fence.close().await;
        stopped.map_err(|e| QuorumError::Storage(e.to_string()))
    }
}

impl Shared {
    fn leader(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(kafka_id)
    }

    /// Appends on this node as the leader; with `based_on`, only if the
    /// image is still at that offset once everything committed before is
    /// applied.
    pub(super) async fn append_as_leader(
        &self,
        based_on: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<(LogPosition, Arc<MetadataImage>), QuorumError> {
        let _writer = self.writer.lock().await;
        if let Some(based_on) = based_on {
            match self.raft.ensure_linearizable().await {
                Ok(_) => {}
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                    return Err(QuorumError::NotLeader {
                        leader: to.leader_id.and_then(kafka_id),
                    })
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                    return Err(QuorumError::Timeout)
                }
                Err(RaftError::Fatal(e)) => return Err(fatal(e)),
            }
            let applied = self.images.borrow().offset;
            if applied != based_on {
                return Err(QuorumError::Stale { applied });
            }
        }
        match self.raft.client_write(records).await {
            Ok(response) => Ok((
                LogPosition {
                    term: response.log_id.leader_id.term,
                    index: response.log_id.index,
                },
                response.data.0,
            )),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(QuorumError::NotLeader {
                    leader: to.leader_id.and_then(kafka_id),
                })
            }
            // Only membership changes fail this way; we append none.
            Err(RaftError::APIError(e)) => Err(QuorumError::Storage(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    /// Appends through whichever node leads: here, or forwarded to it and
    /// then waited for until this node has applied it too. Tries again
    /// while there is no leader or it moves, until the append timeout.
    async fn append(
        &self,
        based_on: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<(LogPosition, Arc<MetadataImage>), QuorumError> {
        let attempts = async {
            loop {
                match self.leader() {
                    Some(leader) if leader == self.node_id => {
                        match self.append_as_leader(based_on, records.clone()).await {
                            Err(QuorumError::NotLeader { .. }) => {}
                            outcome => return outcome,
                        }
                    }
                    Some(leader) => match self.forward(leader, based_on, records.clone()).await {
                        Ok(Ok(forwarded)) => return self.caught_up(forwarded).await,
                        Ok(Err(QuorumError::NotLeader { .. })) | Err(_) => {}
                        Ok(Err(e)) => return Err(e),
                    },
                    None => {}
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        };
        tokio::time::timeout(self.append_timeout, attempts)
            .await
            .map_err(|_| QuorumError::Timeout)?
    }

    async fn forward(
        &self,
        leader: i32,
        based_on: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<Result<Forwarded, QuorumError>, TransportError> {
        network::call_peer(
            &*self.transport,
            self.node_id,
            leader,
            &network::Request::Forward { based_on, records },
        )
        .await
    }

    /// Waits until this node applied what the leader answered for.
    async fn caught_up(
        &self,
        forwarded: Forwarded,
    ) -> Result<(LogPosition, Arc<MetadataImage>), QuorumError> {
        let mut images = self.images.clone();
        let image = images
            .wait_for(|image| image.offset >= forwarded.applied)
            .await
            .map_err(|_| QuorumError::ShuttingDown)?
            .clone();
        Ok((
            LogPosition {
                term: forwarded.term,
                index: forwarded.index,
            },
            image,
        ))
    }

    /// Notes an AppendEntries from `leader` that Raft accepted.
    pub(super) fn note_leader_contact(&self, leader: i32) {
        self.heartbeats
            .record_leader_contact(leader, Instant::now());
    }

    /// Records a heartbeat here as the leader.
    pub(super) fn heartbeat_as_leader(&self, node_id: i32, epoch: i64) -> Result<(), QuorumError> {
        if self.leader() != Some(self.node_id) {
            return Err(QuorumError::NotLeader {
                leader: self.leader(),
            });
        }
        let image = self.images.borrow().clone();
        self.heartbeats
            .record(&image, node_id, epoch, Instant::now())
    }

    async fn heartbeat(&self, node_id: i32, epoch: i64) -> Result<(), QuorumError> {
        match self.leader() {
            Some(leader) if leader == self.node_id => self.heartbeat_as_leader(node_id, epoch),
            Some(leader) => {
                let request = network::Request::Heartbeat { node_id, epoch };
                let sent = network::call_peer(&*self.transport, self.node_id, leader, &request);
                match tokio::time::timeout(self.append_timeout, sent).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) | Err(_) => Err(QuorumError::NotLeader {
                        leader: Some(leader),
                    }),
                }
            }
            None => Err(QuorumError::NotLeader { leader: None }),
        }
    }
}

impl Quorum for RaftQuorum {
    fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>> {
        Box::pin(self.shared.append(None, records))
    }

    fn append_after(
        &self,
        based_on: u64,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>> {
        Box::pin(self.shared.append(Some(based_on), records))
    }

    fn heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
    ) -> QuorumFuture<'_, Result<(), QuorumError>> {
        Box::pin(self.shared.heartbeat(node_id, broker_epoch))
    }

    fn previous_leader_contact(&self) -> Option<(i32, Instant)> {
        self.shared
            .heartbeats
            .last_leader_contact()
            .filter(|(leader, _)| *leader != self.shared.node_id)
    }

    fn heard_from(&self) -> Option<BTreeMap<i32, Instant>> {
        if self.shared.leader() == Some(self.shared.node_id) {
            Some(self.shared.heartbeats.snapshot())
        } else {
            self.shared.heartbeats.clear();
            None
        }
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.shared.images.borrow().clone()
    }

    fn close(&self) -> QuorumFuture<'_, Result<(), QuorumError>> {
        Box::pin(self.shutdown())
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.images.clone()
    }

    fn status(&self) -> QuorumStatus {
        let node_id = self.shared.node_id;
        let metrics = self.shared.raft.metrics().borrow().clone();
        let last_log_end = metrics.last_log_index.map_or(0, |i| i + 1);
        let voters = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter_map(|id| {
                let voter = kafka_id(id)?;
                let log_end_offset = match &metrics.replication {
                    Some(progress) => progress.get(&id).map(|m| m.map_or(0, |l| l.index + 1)),
                    None if voter == node_id => Some(last_log_end),
                    None => None,
                };
                let lag = match metrics.replication {
                    Some(_) => log_end_offset.map(|end| last_log_end.saturating_sub(end)),
                    None => None,
                };
                Some(VoterStatus {
                    node_id: voter,
                    log_end_offset,
                    lag,
                })
            })
            .collect();
        QuorumStatus {
            node_id,
            leader: metrics.current_leader.and_then(kafka_id),
            term: metrics.current_term,
            high_watermark: metrics.last_applied.map_or(0, |l| l.index + 1),
            voters,
        }
    }
}
