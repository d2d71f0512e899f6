//! The controller quorum: where metadata records are agreed on before any
//! node applies them to its image.
//!
//! Callers (the controller, the broker's metadata listener, DescribeQuorum)
//! see only the [`Quorum`] trait and the plain types here. A single node
//! runs [`LocalQuorum`], the one-voter metadata log of today. The Raft
//! implementation ([`RaftQuorum`], on the `openraft` crate) keeps every
//! openraft type inside `quorum/raft`, so an openraft upgrade touches that
//! folder alone. Node ids are Kafka's `i32` broker/controller ids.

mod heartbeats;
mod local;
mod raft;

pub use heartbeats::Heartbeats;

pub use local::LocalQuorum;
pub use raft::{
    serve_tcp, ClusterIdentity, InProcessNetwork, Plaintext, QuorumConfig, QuorumIo, QuorumStream,
    RaftQuorum, RpcHandler, StreamSecurity, TcpTransport, Transport, TransportError, VoterLinks,
};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// A boxed future, so the trait stays object safe (`Arc<dyn Quorum>`).
pub type QuorumFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where an entry sits in the replicated log: the term (Kafka's leader
/// epoch) of the leader that wrote it and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum QuorumError {
    /// This node is not the leader; `leader` is the one it knows of, if
    /// any. Maps to Kafka's NOT_CONTROLLER.
    #[error("this node is not the active controller (leader: {leader:?})")]
    NotLeader { leader: Option<i32> },
    /// The append was not known to be committed in time. Its outcome is
    /// unknown: it may still commit later.
    #[error("the metadata quorum did not commit the append in time")]
    Timeout,
    /// The log, vote or snapshot could not be read or written.
    #[error("metadata quorum storage: {0}")]
    Storage(String),
    /// The configuration cannot run (for example a node id not among the
    /// voters).
    #[error("metadata quorum configuration: {0}")]
    Config(String),
    /// The quorum was shut down.
    #[error("the metadata quorum is shutting down")]
    ShuttingDown,
    /// A conditional append was decided against an image older than the
    /// leader's (`applied` records): decide again once this node has it.
    #[error("the metadata changed meanwhile (the leader has applied {applied} records)")]
    Stale { applied: u64 },
    /// A heartbeat from a broker whose registration is not the current
    /// one (Kafka's STALE_BROKER_EPOCH): it must register again.
    #[error("broker {node_id} is not registered with epoch {epoch}")]
    StaleBrokerEpoch { node_id: i32, epoch: i64 },
}

/// What DescribeQuorum reports, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: i32,
    pub leader: Option<i32>,
    /// The current term: Kafka's leader epoch.
    pub term: u64,
    /// One past the last entry this node applied (so known committed), as
    /// Kafka's exclusive high watermark; 0 before the first.
    pub high_watermark: u64,
    pub voters: Vec<VoterStatus>,
}

/// One voter's replication progress. Only the leader knows the others'
/// progress; elsewhere it is `None` (except for this node's own log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterStatus {
    pub node_id: i32,
    /// One past the last entry known to be in this voter's log.
    pub log_end_offset: Option<u64>,
    /// Entries the voter is behind the leader's log.
    pub lag: Option<u64>,
}

/// The replicated metadata log as the rest of Sluice sees it.
pub trait Quorum: Send + Sync {
    /// Appends `records` as one entry. Resolves once a majority has it and
    /// it is applied here, with its position and the image right after it.
    fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>>;

    /// Appends `records` only if the leader's image is still the one
    /// they were decided against (`based_on`, its record count), so a
    /// node that is not the leader can validate a change against its own
    /// image. [`QuorumError::Stale`] otherwise. From any voter: a
    /// follower forwards it to the leader and resolves once it has
    /// applied the entry itself.
    fn append_after(
        &self,
        based_on: u64,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>>;

    /// Tells the active controller that broker `node_id`, registered at
    /// `broker_epoch`, is alive (Kafka's BrokerHeartbeat).
    fn heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
    ) -> QuorumFuture<'_, Result<(), QuorumError>>;

    /// On the active controller: when each broker last sent a heartbeat
    /// with its current epoch. `None` on other nodes.
    fn heard_from(&self) -> Option<BTreeMap<i32, Instant>>;

    /// The leader this node last followed and when it last heard from it
    /// (Raft's AppendEntries), so that a new active controller knows how
    /// long its predecessor has been silent. `None` on a single node.
    fn previous_leader_contact(&self) -> Option<(i32, Instant)> {
        None
    }

    /// The latest applied image.
    fn image(&self) -> Arc<MetadataImage>;

    /// A new image after every applied batch of entries.
    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>>;

    fn status(&self) -> QuorumStatus;

    /// Stops this node's part in the quorum, leaving its files consistent.
    fn close(&self) -> QuorumFuture<'_, Result<(), QuorumError>>;
}
