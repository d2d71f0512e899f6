//! Cluster administration: topics, partitions, configs, cluster and log
//! directory descriptions, offsets, record deletion. Consumer-group administration is in
//! [`crate::group`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use sluice_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use sluice_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use sluice_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use sluice_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use sluice_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use sluice_protocol::kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::cluster::{BrokerInfo, ClientConfig, Cluster, ListedOffset, OffsetSpec, TopicMetadata};
use crate::error::{Error, Result};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count; -1 uses the broker default.
    pub num_partitions: i32,
    /// Replication factor; -1 uses the broker default.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with the given partitions and replication factor.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a config.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// A resource whose configs can be described or altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by id.
    Broker(i32),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(b) => (4, b.to_string()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic '{t}'"),
            ConfigResource::Broker(b) => format!("broker {b}"),
        }
    }
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Unknown.
    Unknown,
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically as the cluster-wide default.
    DynamicDefaultBroker,
    /// From the broker's static configuration file.
    StaticBroker,
    /// The built-in default.
    Default,
    /// Dynamic broker logger config.
    DynamicBrokerLogger,
    /// A client metrics config.
    ClientMetrics,
    /// A group config.
    Group,
}

impl ConfigSource {
    fn from_i8(v: i8) -> Self {
        match v {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }

    /// Kafka's name for the source.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown => "UNKNOWN",
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::ClientMetrics => "CLIENT_METRICS_CONFIG",
            ConfigSource::Group => "GROUP_CONFIG",
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value; `None` when sensitive or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it can be changed.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub sensitive: bool,
}

/// An incremental config change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set a value.
    Set(String, String),
    /// Remove the override (revert to the default).
    Delete(String),
    /// Append to a list config.
    Append(String, String),
    /// Remove from a list config.
    Subtract(String, String),
}

/// A cluster description from DescribeCluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// Controller broker id (-1 when unknown).
    pub controller_id: i32,
    /// Brokers.
    pub brokers: Vec<BrokerInfo>,
}

/// One partition's size in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Bytes on disk.
    pub size: i64,
    /// Lag of a future replica (0 otherwise).
    pub offset_lag: i64,
}

/// A log directory of one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirDescription {
    /// The broker.
    pub broker: i32,
    /// Directory path.
    pub path: String,
    /// Error code for the directory (0 = healthy).
    pub error_code: i16,
    /// Total bytes of the volume (-1 when unknown).
    pub total_bytes: i64,
    /// Usable bytes of the volume (-1 when unknown).
    pub usable_bytes: i64,
    /// Partitions stored there.
    pub partitions: Vec<LogDirPartition>,
}

/// An admin client.
///
/// ```no_run
/// # async fn demo() -> sluice_client::Result<()> {
/// use sluice_client::{Admin, ClientConfig, NewTopic};
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// admin.create_topics(&[NewTopic::new("orders", 3, 1)], false).await?;
/// for t in admin.list_topics().await? {
///     println!("{} ({} partitions)", t.name, t.partitions.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) timeout: Duration,
}

pub(crate) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn timeout_ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

impl Admin {
    /// Connects to the cluster.
    pub async fn connect(client: ClientConfig) -> Result<Admin> {
        Ok(Admin::new(Cluster::connect(client).await?))
    }

    /// An admin client on an existing cluster handle.
    pub fn new(cluster: Arc<Cluster>) -> Admin {
        let timeout = cluster.config().request_timeout;
        Admin { cluster, timeout }
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Creates topics. Fails with the first per-topic error.
    pub async fn create_topics(&self, topics: &[NewTopic], validate_only: bool) -> Result<()> {
        let conn = self.cluster.controller_connection().await?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms(self.timeout))
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(s(t.name.clone())))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(s(k.clone()))
                                            .with_value(Some(s(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = conn.call(req).await?;
        for t in resp.topics {
            Error::check(
                t.error_code,
                t.error_message.map(|m| m.to_string()),
                format!("topic '{}'", t.name.0.as_str()),
            )?;
        }
        Ok(())
    }

    /// Deletes topics by name. Fails with the first per-topic error.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let conn = self.cluster.controller_connection().await?;
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout_ms(self.timeout))
            .with_topic_names(names.iter().map(|n| TopicName(s(n.clone()))).collect())
            .with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(TopicName(s(n.clone())))))
                    .collect(),
            );
        let resp = conn.call(req).await?;
        for r in resp.responses {
            let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("topic '{name}'"),
            )?;
        }
        Ok(())
    }

    /// All topics with their partitions (Metadata).
    pub async fn list_topics(&self) -> Result<Vec<Arc<TopicMetadata>>> {
        let md = self.cluster.refresh_metadata(None).await?;
        Ok(md.topics.into_values().collect())
    }

    /// One topic's partitions, leaders, replicas and ISR (Metadata).
    pub async fn describe_topic(&self, name: &str) -> Result<Arc<TopicMetadata>> {
        self.cluster
            .refresh_metadata(Some(&[name.to_string()]))
            .await?;
        let t = self.cluster.topic(name).ok_or_else(|| {
            Error::kafka(
                sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION,
                Some("This server does not host this topic".into()),
            )
        });
        match t {
            Ok(t) if t.error_code != 0 => {
                Error::check(t.error_code, None, format!("topic '{name}'"))?;
                Ok(t)
            }
            Ok(t) => Ok(t),
            Err(Error::Kafka(k)) => Err(Error::Kafka(k.on(format!("topic '{name}'")))),
            Err(e) => Err(e),
        }
    }

    /// Raises a topic's partition count to `total`.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.cluster.controller_connection().await?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms(self.timeout))
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_count(total)
                .with_assignments(None)]);
        let resp = conn.call(req).await?;
        for r in resp.results {
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("topic '{}'", r.name.0.as_str()),
            )?;
        }
        Ok(())
    }

    /// Describes the configs of a resource (all keys).
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.broker_connection(*id).await?,
            ConfigResource::Topic(_) => self.cluster.any_connection().await?,
        };
        let (rtype, rname) = resource.wire();
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(rname))
                .with_configuration_keys(None),
        ]);
        let resp = conn.call(req).await?;
        let mut out = Vec::new();
        for r in resp.results {
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                resource.describe(),
            )?;
            for c in r.configs {
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: ConfigSource::from_i8(c.config_source),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Applies config changes to a resource (IncrementalAlterConfigs).
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.broker_connection(*id).await?,
            ConfigResource::Topic(_) => self.cluster.controller_connection().await?,
        };
        let (rtype, rname) = resource.wire();
        let configs = ops
            .iter()
            .map(|op| {
                let (name, op, value) = match op {
                    AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
                    AlterConfigOp::Delete(k) => (k, 1, None),
                    AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
                    AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
                };
                AlterableConfig::default()
                    .with_name(s(name.clone()))
                    .with_config_operation(op)
                    .with_value(value.map(|v| s(v.clone())))
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(rname))
                .with_configs(configs)]);
        let resp = conn.call(req).await?;
        for r in resp.responses {
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                resource.describe(),
            )?;
        }
        Ok(())
    }

    /// Cluster id, controller and brokers (DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let conn = self.cluster.any_connection().await?;
        let resp = conn.call(DescribeClusterRequest::default()).await?;
        Error::check(
            resp.error_code,
            resp.error_message.map(|m| m.to_string()),
            "cluster",
        )?;
        let mut brokers: Vec<BrokerInfo> = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id.0,
            brokers,
        })
    }

    /// Looks up offsets (earliest, latest, max timestamp or by timestamp);
    /// results are in the order of `partitions`.
    pub async fn list_offsets(
        &self,
        partitions: &[(String, i32, OffsetSpec)],
    ) -> Result<Vec<ListedOffset>> {
        self.cluster.list_offsets(partitions).await
    }

    /// Deletes the records of a partition below `before_offset` (-1: below
    /// the high watermark) with DeleteRecords, sent to the partition's
    /// leader, and returns the new log start offset (the low watermark).
    /// The broker refuses an offset beyond the high watermark with
    /// OFFSET_OUT_OF_RANGE, and a topic whose `cleanup.policy` lacks
    /// `delete` with POLICY_VIOLATION.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before_offset: i64,
    ) -> Result<i64> {
        let leader = self.cluster.current_leader(topic, partition).await?;
        let conn = self.cluster.broker_connection(leader).await?;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(timeout_ms(self.timeout))
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(before_offset)])]);
        let resp = conn.call(req).await?;
        let result = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "DeleteRecords response has no result for {topic}-{partition}"
                ))
            })?;
        Error::check(result.error_code, None, format!("{topic}-{partition}"))?;
        Ok(result.low_watermark)
    }

    /// Log directories of every broker (or of `brokers` when given).
    pub async fn describe_log_dirs(
        &self,
        brokers: Option<&[i32]>,
    ) -> Result<Vec<LogDirDescription>> {
        let ids: Vec<i32> = match brokers {
            Some(b) => b.to_vec(),
            None => self
                .cluster
                .refresh_metadata(Some(&[]))
                .await?
                .brokers
                .keys()
                .copied()
                .collect(),
        };
        let mut out = Vec::new();
        for id in ids {
            let conn = self.cluster.broker_connection(id).await?;
            let resp = conn
                .call(DescribeLogDirsRequest::default().with_topics(None))
                .await?;
            Error::check(resp.error_code, None, format!("broker {id}"))?;
            for r in resp.results {
                let mut parts: BTreeMap<(String, i32), LogDirPartition> = BTreeMap::new();
                for t in r.topics {
                    for p in t.partitions {
                        parts.insert(
                            (t.name.0.to_string(), p.partition_index),
                            LogDirPartition {
                                topic: t.name.0.to_string(),
                                partition: p.partition_index,
                                size: p.partition_size,
                                offset_lag: p.offset_lag,
                            },
                        );
                    }
                }
                out.push(LogDirDescription {
                    broker: id,
                    path: r.log_dir.to_string(),
                    error_code: r.error_code,
                    total_bytes: r.total_bytes,
                    usable_bytes: r.usable_bytes,
                    partitions: parts.into_values().collect(),
                });
            }
        }
        Ok(out)
    }
}
