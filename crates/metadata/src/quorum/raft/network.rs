//! The network seam: openraft's three RPCs, and our own two (an append
//! forwarded to the leader, a broker heartbeat), as JSON request/response
//! bytes over a [`Transport`] of our own, so a transport moves bytes
//! between node ids and knows nothing of Raft (`in_process.rs` for tests
//! and one-node setups, `tcp.rs` between processes).

use super::{Shared, TypeConfig};
use crate::quorum::{QuorumError, QuorumFuture};
use crate::record::MetadataRecord;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Carries one request from a node to another and brings back the answer.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` from node `from` to node `to`; resolves with the
    /// bytes the receiver's [`RpcHandler`] answered.
    fn call(
        &self,
        from: i32,
        to: i32,
        request: Vec<u8>,
    ) -> QuorumFuture<'static, Result<Vec<u8>, TransportError>>;
}

/// The request did not reach the node, or its answer did not come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {to} is unreachable: {reason}")]
pub struct TransportError {
    pub to: i32,
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// An append a follower forwards; the receiver appends it only as the
    /// leader and never forwards it on.
    Forward {
        based_on: Option<u64>,
        records: Vec<MetadataRecord>,
    },
    Heartbeat {
        node_id: i32,
        epoch: i64,
    },
}

/// Raft's answer, or why the request could not be read.
type Answer<T, E = openraft::error::Infallible> = Result<Result<T, RaftError<u64, E>>, String>;

/// Our own RPCs' answer, or why the request could not be read.
type OwnAnswer<T> = Result<Result<T, QuorumError>, String>;

/// Answers the requests a transport delivers to this node.
#[derive(Clone)]
pub struct RpcHandler {
    shared: Arc<Shared>,
}

impl RpcHandler {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        RpcHandler { shared }
    }

    /// Handles one request (bytes a peer's transport sent) and returns the
    /// answer to carry back. Unreadable requests get an error answer.
    pub fn handle(&self, request: Vec<u8>) -> QuorumFuture<'static, Vec<u8>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let raft: &Raft<TypeConfig> = &shared.raft;
            let request = match serde_json::from_slice::<Request>(&request) {
                Ok(request) => request,
                Err(e) => return encode(&Err::<(), _>(format!("unreadable request: {e}"))),
            };
            match request {
                Request::AppendEntries(rpc) => {
                    let leader = rpc.vote.leader_id().voted_for();
                    let answer = raft.append_entries(rpc).await;
                    if let (Some(leader), Ok(_)) = (leader, &answer) {
                        if let Ok(leader) = i32::try_from(leader) {
                            shared.note_leader_contact(leader);
                        }
                    }
                    encode(&Ok::<_, String>(answer))
                }
                Request::Vote(rpc) => encode(&Ok::<_, String>(raft.vote(rpc).await)),
                Request::InstallSnapshot(rpc) => {
                    encode(&Ok::<_, String>(raft.install_snapshot(rpc).await))
                }
                Request::Forward { based_on, records } => {
                    let appended = shared.append_as_leader(based_on, records).await.map(
                        |(position, image)| super::Forwarded {
                            term: position.term,
                            index: position.index,
                            applied: image.offset,
                        },
                    );
                    encode::<OwnAnswer<_>>(&Ok(appended))
                }
                Request::Heartbeat { node_id, epoch } => {
                    encode::<OwnAnswer<()>>(&Ok(shared.heartbeat_as_leader(node_id, epoch)))
                }
            }
        })
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our own plain data types always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Sends one of our own requests to node `to` and reads its answer.
pub(super) async fn call_peer<T: DeserializeOwned>(
    transport: &dyn Transport,
    from: i32,
    to: i32,
    request: &Request,
) -> Result<Result<T, QuorumError>, TransportError> {
    let failed = |reason: String| TransportError { to, reason };
    let bytes = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
    let answer = transport.call(from, to, bytes).await?;
    match serde_json::from_slice::<OwnAnswer<T>>(&answer) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(reason)) => Err(failed(reason)),
        Err(e) => Err(failed(format!("unreadable answer: {e}"))),
    }
}

/// Makes a [`Peer`] per target node for openraft.
pub(super) struct NetworkFactory {
    pub(super) me: i32,
    pub(super) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _address: &String) -> Peer {
        Peer {
            me: self.me,
            target,
            transport: self.transport.clone(),
        }
    }
}

pub(super) struct Peer {
    me: i32,
    target: u64,
    transport: Arc<dyn Transport>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, String, RaftError<u64, E>>>;

impl Peer {
    async fn call<T: DeserializeOwned, E>(&self, request: &Request) -> RpcResult<T, E>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let to =
            i32::try_from(self.target).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let bytes =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .call(self.me, to, bytes)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let answer: Answer<T, E> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(reason) => Err(RPCError::Network(NetworkError::new(&TransportError {
                to,
                reason,
            }))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.call(&Request::AppendEntries(rpc)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(&Request::InstallSnapshot(rpc)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        self.call(&Request::Vote(rpc)).await
    }
}
