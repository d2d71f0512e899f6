//! A cluster of in-process quorum nodes for tests: each node has its own
//! directory and can be stopped and started again from it.

use super::{InProcessNetwork, QuorumConfig, RaftQuorum};
use crate::quorum::{LogPosition, Quorum, QuorumError};
use crate::{MetadataImage, MetadataRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: name.to_string(),
        id: uuid::Uuid::new_v4(),
        partitions: 1,
        replicas: vec![1],
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    }
}

/// Waits (in tokio time, paused in some tests) until `done` holds, up to
/// five minutes of it: generous for a loaded machine.
pub(super) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..30_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

pub(super) struct Cluster {
    pub(super) network: InProcessNetwork,
    dirs: BTreeMap<i32, tempfile::TempDir>,
    pub(super) nodes: BTreeMap<i32, RaftQuorum>,
    tune: fn(&mut QuorumConfig),
}

impl Cluster {
    /// Starts nodes `1..=size`; `tune` adjusts each node's config.
    pub(super) async fn start(size: i32, tune: fn(&mut QuorumConfig)) -> Self {
        let mut cluster = Cluster {
            network: InProcessNetwork::new(),
            dirs: (1..=size)
                .map(|id| (id, tempfile::tempdir().expect("a temp dir")))
                .collect(),
            nodes: BTreeMap::new(),
            tune,
        };
        for id in 1..=size {
            cluster.start_node(id).await;
        }
        cluster
    }

    pub(super) fn dir(&self, id: i32) -> &std::path::Path {
        self.dirs[&id].path()
    }

    pub(super) fn config(&self, id: i32) -> QuorumConfig {
        let voters = self
            .dirs
            .keys()
            .map(|id| (*id, format!("node-{id}")))
            .collect();
        let mut config = QuorumConfig::new(id, voters, self.dir(id).to_path_buf());
        // Short, for the tests that run in real time.
        config.election_timeout = std::time::Duration::from_millis(300);
        config.heartbeat_interval = std::time::Duration::from_millis(60);
        (self.tune)(&mut config);
        config
    }

    pub(super) async fn start_node(&mut self, id: i32) {
        let node = RaftQuorum::start(self.config(id), Arc::new(self.network.clone()))
            .await
            .expect("the node starts");
        self.network.register(id, node.rpc_handler());
        self.nodes.insert(id, node);
    }

    pub(super) async fn stop_node(&mut self, id: i32) {
        self.network.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await.expect("the node stops");
        }
    }

    /// A running node that considers itself leader, once there is one.
    pub(super) async fn leader(&self) -> i32 {
        let mut leader = None;
        eventually("a leader is elected", || {
            leader = self
                .nodes
                .iter()
                .find(|(id, node)| node.status().leader == Some(**id))
                .map(|(id, _)| *id);
            leader.is_some()
        })
        .await;
        leader.unwrap_or_default()
    }

    /// Appends through whichever node leads, retrying until one commits it.
    pub(super) async fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> (LogPosition, Arc<MetadataImage>) {
        for _ in 0..100 {
            let leader = self.leader().await;
            match self.nodes[&leader].append(records.clone()).await {
                Ok(done) => return done,
                Err(QuorumError::NotLeader { .. } | QuorumError::Timeout) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("append failed: {e}"),
            }
        }
        panic!("no leader committed the append");
    }

    /// Waits until every running node's image has `offset` records.
    pub(super) async fn converge(&self, offset: u64) {
        eventually(&format!("every node applied {offset} records"), || {
            self.nodes.values().all(|n| n.image().offset == offset)
        })
        .await;
    }
}
