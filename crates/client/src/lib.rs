//! `sluice-client`: a native async (tokio) client for Sluice and other
//! Kafka-compatible brokers.
//!
//! * [`Producer`] — batching producer with `batch.size`/`linger.ms`,
//!   compression (none, gzip, snappy, lz4, zstd), `acks`, Java-compatible
//!   murmur2 key partitioning, sticky partitioning for unkeyed records, and
//!   retries with backoff bounded by `delivery.timeout.ms`. Idempotent by
//!   default (`enable.idempotence`); with a `transactional_id` it runs
//!   transactions: `init_transactions`, `begin_transaction`,
//!   `send_offsets_to_transaction`, `commit_transaction`,
//!   `abort_transaction` (errors: [`Error::Fenced`] is fatal,
//!   [`Error::AbortableTransaction`] asks for an abort).
//! * [`Consumer`] — reads explicitly assigned partitions from an
//!   earliest/latest/offset/timestamp start, with seek,
//!   `auto.offset.reset` and `isolation.level` (read_committed skips
//!   aborted transactions).
//! * [`GroupConsumer`] — consumer-group member over the classic protocol
//!   (`range`, `roundrobin`, or `cooperative-sticky` with incremental
//!   rebalances) or the KIP-848 consumer protocol (server-side assignment,
//!   incremental reconciliation); static membership (`group.instance.id`),
//!   rebalance listener (assigned/revoked/lost), committed offsets (auto or
//!   `commit_sync`/`commit_async`), pause/resume, seek.
//! * [`Admin`] — topics, partitions, configs, cluster, offsets, log dirs,
//!   and consumer groups: list, describe (with decoded member assignments),
//!   committed offsets (list, alter, delete) and group deletion;
//!   transactions: list and describe.
//! * [`Cluster`] / [`Connection`] — the shared metadata cache and
//!   per-broker connections; every API version is negotiated with
//!   ApiVersions (the highest version both sides support).
//!
//! Broker errors surface as [`Error::Kafka`] carrying a [`KafkaError`] with
//! the Kafka error code, its name and the broker's message.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_client::{
//!     Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
//!     ProducerRecord, StartOffset,
//! };
//!
//! # async fn demo() -> sluice_client::Result<()> {
//! let client = ClientConfig::new("127.0.0.1:9092");
//!
//! let admin = Admin::connect(client.clone()).await?;
//! admin.create_topics(&[NewTopic::new("greetings", 3, 1)], false).await?;
//!
//! let producer = Producer::connect(client.clone(), ProducerConfig::default()).await?;
//! let pending: Vec<_> = (0..10)
//!     .map(|i| producer.send(ProducerRecord::new("greetings", format!("hello {i}")).with_key("k")))
//!     .collect();
//! for delivery in pending {
//!     let md = delivery.await?;
//!     println!("partition {} offset {}", md.partition, md.offset);
//! }
//! producer.close().await;
//!
//! let mut consumer = Consumer::connect(client, ConsumerConfig::default()).await?;
//! consumer.assign(vec![("greetings".into(), 0, StartOffset::Earliest)]).await?;
//! let records = consumer.poll(Duration::from_secs(1)).await?;
//! println!("read {} records", records.len());
//! # Ok(()) }
//! ```

mod accumulator;
pub mod acl_admin;
pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod group_consumer;
pub mod partitioner;
pub mod producer;
pub mod quorum_admin;
pub mod quota_admin;
pub mod reassignment_admin;
mod sasl;
pub mod scram_admin;
pub mod security;
pub mod transaction;
pub mod txn_admin;

pub use accumulator::TopicPartition;
pub use acl_admin::AclBinding;
pub use admin::{
    Admin, AlterConfigOp, ClusterDescription, ConfigEntry, ConfigResource, ConfigSource,
    LogDirDescription, LogDirPartition, NewTopic,
};
pub use cluster::{
    BrokerInfo, ClientConfig, Cluster, ClusterMetadata, ListedOffset, OffsetSpec, PartitionInfo,
    TopicMetadata,
};
pub use connection::{Connection, ConnectionOptions};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, StartOffset,
    TimestampType,
};
pub use error::{Error, KafkaError, Result};
pub use group::{GroupDescription, GroupListing, GroupMember, GroupOffset, MemberAssignment};
pub use group_consumer::{
    AssignmentStrategy, GroupConsumer, GroupConsumerConfig, GroupProtocol, RebalanceListener,
};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{
    Acks, CompressionType, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
pub use quorum_admin::{ElectionResult, ElectionType, QuorumDescription, QuorumVoter};
pub use quota_admin::{ClientQuotas, QuotaEntity, QuotaMatch};
pub use reassignment_admin::{MoveResult, OngoingReassignment, PartitionMove};
pub use scram_admin::{ScramAlteration, ScramMechanism, UserScramCredentials};
pub use security::{SaslLogin, SaslMechanism, Security};
pub use sluice_protocol;
pub use transaction::ConsumerGroupMetadata;
pub use txn_admin::{TransactionDescription, TransactionFilters, TransactionListing};
