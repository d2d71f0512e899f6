//! Cluster metadata cache and per-broker connection pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sluice_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use sluice_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use sluice_protocol::kafka_protocol::messages::{
    BrokerId, ListOffsetsRequest, MetadataRequest, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex as AsyncMutex;

use crate::connection::{Connection, ConnectionOptions};
use crate::consumer::IsolationLevel;
use crate::error::{needs_metadata_refresh, Error, KafkaError, Result};
use crate::security::Security;

/// Settings shared by every client type.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` addresses used to discover the cluster (`bootstrap.servers`).
    pub bootstrap_servers: Vec<String>,
    /// Sent to brokers as the client id (`client.id`).
    pub client_id: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long to wait for a response (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// Ask brokers to create unknown topics on metadata requests
    /// (`allow.auto.create.topics`); the broker decides.
    pub allow_auto_topic_creation: bool,
    /// TLS and SASL for every connection ([`Security::from_properties`]
    /// reads librdkafka's `security.protocol`, `sasl.*` and `ssl.*`).
    pub security: Security,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".to_string()],
            client_id: "sluice-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            allow_auto_topic_creation: false,
            security: Security::plaintext(),
        }
    }
}

impl ClientConfig {
    /// A config for the given comma-separated bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            ..Default::default()
        }
    }

    fn connection_options(&self) -> ConnectionOptions {
        ConnectionOptions {
            client_id: self.client_id.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            security: self.security.clone(),
        }
    }
}

/// A broker as advertised in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker id (`node.id`).
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, when configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic, from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, -1 when there is none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
    /// Offline replica broker ids.
    pub offline_replicas: Vec<i32>,
    /// Partition-level error code from metadata (0 = none).
    pub error_code: i16,
}

/// A topic, from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (all zeros when the broker does not send one).
    pub topic_id: [u8; 16],
    /// Whether the topic is internal.
    pub is_internal: bool,
    /// Topic-level error code (0 = none).
    pub error_code: i16,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicMetadata {
    /// Partitions that currently have a leader.
    pub fn available_partitions(&self) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|p| p.leader >= 0)
            .map(|p| p.partition)
            .collect()
    }

    /// The leader of `partition`, if known.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }
}

/// A snapshot of what the client knows about the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    /// Cluster id, when the broker sends one.
    pub cluster_id: Option<String>,
    /// Controller broker id, -1 when unknown.
    pub controller_id: i32,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMetadata>>,
}

/// Which offset to look up with ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The offset of the record with the largest timestamp.
    MaxTimestamp,
    /// The first offset whose timestamp is >= the given milliseconds.
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset (-1 when no record matches a timestamp query).
    pub offset: i64,
    /// The timestamp of that record, -1 when not applicable.
    pub timestamp: i64,
    /// Leader epoch of the record, -1 when unknown.
    pub leader_epoch: i32,
}

/// The shared core of producer, consumer and admin: metadata cache plus one
/// connection per broker.
#[derive(Debug)]
pub struct Cluster {
    config: ClientConfig,
    metadata: RwLock<ClusterMetadata>,
    connections: AsyncMutex<HashMap<i32, Arc<Connection>>>,
    bootstrap: AsyncMutex<Option<Arc<Connection>>>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and loads the broker
    /// list.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::Config("no bootstrap servers given".into()));
        }
        let cluster = Arc::new(Cluster {
            config,
            metadata: RwLock::new(ClusterMetadata {
                controller_id: -1,
                ..Default::default()
            }),
            connections: AsyncMutex::new(HashMap::new()),
            bootstrap: AsyncMutex::new(None),
        });
        cluster.refresh_metadata(Some(&[])).await?;
        Ok(cluster)
    }

    /// A handle that has not connected anywhere, holding `metadata`; for
    /// unit tests of code that only reads the cache.
    #[cfg(test)]
    pub(crate) fn offline(metadata: ClusterMetadata) -> Arc<Cluster> {
        Arc::new(Cluster {
            // Nothing listens on port 1: a refresh fails at once.
            config: ClientConfig::new("127.0.0.1:1"),
            metadata: RwLock::new(metadata),
            connections: AsyncMutex::new(HashMap::new()),
            bootstrap: AsyncMutex::new(None),
        })
    }

    /// Puts a topic into the cache, as a metadata refresh would.
    #[cfg(test)]
    pub(crate) fn cache_topic(&self, topic: TopicMetadata) {
        self.metadata
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .insert(topic.name.clone(), Arc::new(topic));
    }

    /// The configuration this cluster handle was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A snapshot of the cached metadata.
    pub fn metadata(&self) -> ClusterMetadata {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Cached metadata of one topic.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicMetadata>> {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .topics
            .get(name)
            .cloned()
    }

    /// Cached leader of a partition.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topic(topic)?.leader(partition)
    }

    /// Any live connection: an existing broker connection, else a bootstrap
    /// server, else a known broker.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let conns = self.connections.lock().await;
            if let Some(c) = conns.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let mut boot = self.bootstrap.lock().await;
        if let Some(c) = boot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let mut candidates = self.config.bootstrap_servers.clone();
        candidates.extend(self.metadata().brokers.values().map(BrokerInfo::addr));
        let mut last_err = None;
        for addr in candidates {
            match Connection::connect(&addr, &self.config.connection_options()).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    *boot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "bootstrap connection failed");
                    last_err = Some(e);
                }
            }
        }
        Err(match last_err {
            Some(Error::Io { addr, message }) => {
                Error::NoBroker(format!("cannot connect to {addr}: {message}"))
            }
            Some(e) => e,
            None => Error::NoBroker("no bootstrap servers".into()),
        })
    }

    /// The connection to broker `id`, opening it if needed.
    pub async fn broker_connection(&self, id: i32) -> Result<Arc<Connection>> {
        let mut conns = self.connections.lock().await;
        if let Some(c) = conns.get(&id).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let info = self.metadata().brokers.get(&id).cloned();
        let info = match info {
            Some(i) => i,
            None => {
                drop(conns);
                self.refresh_metadata(Some(&[])).await?;
                conns = self.connections.lock().await;
                self.metadata()
                    .brokers
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Error::NoBroker(format!("broker {id} is not in metadata")))?
            }
        };
        let c =
            Arc::new(Connection::connect(&info.addr(), &self.config.connection_options()).await?);
        conns.insert(id, c.clone());
        Ok(c)
    }

    /// The connection to the controller, or any broker when it is unknown.
    pub async fn controller_connection(&self) -> Result<Arc<Connection>> {
        let controller = self.metadata().controller_id;
        if controller >= 0 {
            if let Ok(c) = self.broker_connection(controller).await {
                return Ok(c);
            }
        }
        self.any_connection().await
    }

    /// Refreshes metadata for `topics` (`None` = all topics, `Some(&[])` =
    /// brokers only) and merges it into the cache.
    pub async fn refresh_metadata(&self, topics: Option<&[String]>) -> Result<ClusterMetadata> {
        let conn = self.any_connection().await?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(self.config.allow_auto_topic_creation);
        let resp = conn.call(req).await?;
        let mut md = self.metadata.write().unwrap_or_else(|e| e.into_inner());
        md.cluster_id = resp.cluster_id.map(|s| s.to_string());
        md.controller_id = resp.controller_id.0;
        if !resp.brokers.is_empty() {
            md.brokers = resp
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.node_id.0,
                        BrokerInfo {
                            id: b.node_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                    )
                })
                .collect();
        }
        if topics.is_none() {
            md.topics.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code == sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION {
                md.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            md.topics.insert(
                name.clone(),
                Arc::new(TopicMetadata {
                    name,
                    topic_id: *t.topic_id.as_bytes(),
                    is_internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                }),
            );
        }
        Ok(md.clone())
    }

    /// The leader of a partition, from the cache or else from fresh
    /// metadata: UNKNOWN_TOPIC_OR_PARTITION when there is no such
    /// partition, LEADER_NOT_AVAILABLE when it has no leader.
    pub async fn current_leader(&self, topic: &str, partition: i32) -> Result<i32> {
        if let Some(leader) = self.leader(topic, partition) {
            return Ok(leader);
        }
        self.refresh_metadata(Some(&[topic.to_string()])).await?;
        let tm = self.topic(topic).ok_or_else(|| {
            Error::Kafka(
                KafkaError::new(sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION, None)
                    .on(format!("topic '{topic}'")),
            )
        })?;
        tm.leader(partition).ok_or_else(|| {
            Error::Kafka(
                KafkaError::new(
                    if tm.partitions.iter().any(|p| p.partition == partition) {
                        5
                    } else {
                        sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION
                    },
                    None,
                )
                .on(format!("{topic}-{partition}")),
            )
        })
    }

    /// Looks up offsets with ListOffsets, sending one request per partition
    /// leader. Results come back in the order of `partitions`.
    pub async fn list_offsets(
        &self,
        partitions: &[(String, i32, OffsetSpec)],
    ) -> Result<Vec<ListedOffset>> {
        self.list_offsets_isolated(partitions, IsolationLevel::ReadUncommitted)
            .await
    }

    /// Like [`list_offsets`](Self::list_offsets); with read_committed the
    /// latest offset is the last stable offset, as a read_committed
    /// consumer sees it.
    pub async fn list_offsets_isolated(
        &self,
        partitions: &[(String, i32, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<Vec<ListedOffset>> {
        let mut attempt = 0;
        loop {
            match self.list_offsets_once(partitions, isolation).await {
                Err(e) if e.is_retriable() && attempt < 3 => {
                    attempt += 1;
                    let topics: Vec<String> =
                        partitions.iter().map(|(t, _, _)| t.clone()).collect();
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    let _ = self.refresh_metadata(Some(&topics)).await;
                }
                other => return other,
            }
        }
    }

    async fn list_offsets_once(
        &self,
        partitions: &[(String, i32, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<Vec<ListedOffset>> {
        // A request may name each partition once: split repeats into rounds.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        for (i, (t, p, _)) in partitions.iter().enumerate() {
            let free = rounds.iter_mut().find(|r| {
                !r.iter()
                    .any(|&j| partitions[j].0 == *t && partitions[j].1 == *p)
            });
            match free {
                Some(r) => r.push(i),
                None => rounds.push(vec![i]),
            }
        }
        let mut out = vec![
            ListedOffset {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1
            };
            partitions.len()
        ];
        for round in rounds {
            let subset: Vec<(String, i32, OffsetSpec)> =
                round.iter().map(|&i| partitions[i].clone()).collect();
            let listed = self.list_offsets_unique(&subset, isolation).await?;
            for (i, l) in round.into_iter().zip(listed) {
                out[i] = l;
            }
        }
        Ok(out)
    }

    async fn list_offsets_unique(
        &self,
        partitions: &[(String, i32, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<Vec<ListedOffset>> {
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, (topic, partition, _)) in partitions.iter().enumerate() {
            let leader = self.current_leader(topic, *partition).await?;
            by_leader.entry(leader).or_default().push(i);
        }
        let mut out = vec![
            ListedOffset {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1
            };
            partitions.len()
        ];
        for (leader, idxs) in by_leader {
            let conn = self.broker_connection(leader).await?;
            let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for &i in &idxs {
                let (t, p, spec) = &partitions[i];
                topics.entry(t.as_str()).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(*p)
                        .with_timestamp(spec.timestamp()),
                );
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation.as_i8())
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let resp = conn.call(req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    let Some(&i) = idxs.iter().find(|&&i| {
                        partitions[i].0 == t.name.0.as_str() && partitions[i].1 == p.partition_index
                    }) else {
                        continue;
                    };
                    if p.error_code != 0 {
                        let err = KafkaError::new(p.error_code, None).on(format!(
                            "{}-{}",
                            t.name.0.as_str(),
                            p.partition_index
                        ));
                        if needs_metadata_refresh(p.error_code) {
                            let _ = self
                                .refresh_metadata(Some(&[partitions[i].0.clone()]))
                                .await;
                        }
                        return Err(Error::Kafka(err));
                    }
                    out[i] = ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                        leader_epoch: p.leader_epoch,
                    };
                }
            }
        }
        Ok(out)
    }
}
