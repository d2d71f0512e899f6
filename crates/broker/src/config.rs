//! Broker and topic configuration under Kafka's names, defaults and docs.
//!
//! Every setting is declared once in a table ([`BROKER_CONFIGS`],
//! [`TOPIC_CONFIGS`]) with its type, default, validation and documentation;
//! parsing, validation, DescribeConfigs and the CLI all read that table. A
//! topic setting resolves, in Kafka's order: topic override, dynamic broker
//! setting, static broker setting (`--set`, config file, environment), then
//! the default. Sluice differs from Kafka in one default on purpose:
//! `log.flush.interval.messages=1`, so acknowledged data is on disk.

use std::collections::BTreeMap;

/// Kafka's `ConfigEntry.ConfigType` ids, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    /// A secret: DescribeConfigs answers it as null and sensitive, and
    /// errors never echo it.
    Password = 9,
}

/// Kafka's `ConfigSource` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// The dynamic broker settings in force on one node: its own overrides
/// (DYNAMIC_BROKER_CONFIG) before the cluster-wide defaults
/// (DYNAMIC_DEFAULT_BROKER_CONFIG), as Kafka resolves them.
#[derive(Clone, Copy)]
pub struct Dynamic<'a> {
    pub node: &'a BTreeMap<String, String>,
    pub cluster: &'a BTreeMap<String, String>,
}

static NO_OVERRIDES: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Dynamic<'a> {
    pub fn of(image: &'a sluice_metadata::MetadataImage, node_id: i32) -> Self {
        Dynamic {
            node: image.node_configs.get(&node_id).unwrap_or(&NO_OVERRIDES),
            cluster: &image.broker_configs,
        }
    }

    /// A setting's dynamic value and where it comes from, node first.
    pub fn get(&self, name: &str) -> Option<(&'a String, ConfigSource)> {
        self.layers()
            .into_iter()
            .find_map(|(map, source)| map.get(name).map(|v| (v, source)))
    }

    /// Every dynamic value of a setting, most specific first.
    pub fn all(&self, name: &str) -> Vec<(&'a String, ConfigSource)> {
        self.layers()
            .into_iter()
            .filter_map(|(map, source)| map.get(name).map(|v| (v, source)))
            .collect()
    }

    fn layers(&self) -> [(&'a BTreeMap<String, String>, ConfigSource); 2] {
        [
            (self.node, ConfigSource::DynamicBroker),
            (self.cluster, ConfigSource::DynamicDefaultBroker),
        ]
    }
}

/// The `replica.selector.class` values Sluice implements.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const REPLICA_SELECTORS: &[&str] = &[
    RACK_AWARE_SELECTOR,
    "org.apache.kafka.common.replica.LeaderSelector",
];

/// How a value is checked beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    AtLeast(i64),
    Between(i64, i64),
    /// In the range, or the one value outside it that means "default"
    /// (gzip's level -1).
    BetweenOr(i64, i64, i64),
    Ratio,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    Listener,
    /// `http://host:port` entries separated by commas, or empty.
    HttpListeners,
    /// Kafka's `host:count,host:count` (`max.connections.per.ip.overrides`).
    HostCounts,
    /// `ssl.principal.mapping.rules`: `DEFAULT` and `RULE:pattern/replacement/[LU]`.
    SslPrincipalRules,
}

#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None` is Kafka's `null` default.
    pub default: Option<&'static str>,
    pub check: Check,
    /// Broker settings that may change at runtime (IncrementalAlterConfigs).
    pub dynamic: bool,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
/// Kafka's `compression.type` values: a codec the broker recompresses to,
/// or `producer` to keep each batch as its producer compressed it.
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// The server-side assignors of KIP-848 consumer groups.
const CONSUMER_GROUP_ASSIGNORS: &[&str] = &["uniform", "range"];
/// The SASL mechanisms Sluice serves (Kafka also has GSSAPI).
const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];
/// The TLS versions rustls speaks.
const TLS_VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// Key and trust stores are PEM files (Kafka also reads JKS and PKCS12).
const STORE_TYPES: &[&str] = &["PEM"];

macro_rules! def {
    ($name:expr, $ty:ident, $default:expr, $check:expr, $dynamic:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            ty: ConfigType::$ty,
            default: $default,
            check: $check,
            dynamic: $dynamic,
            doc: $doc,
        }
    };
}

/// Broker settings. Names, defaults and docs follow Kafka's `KafkaConfig`.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    def!("node.id", Int, Some("1"), Check::AtLeast(0), false, "The node id of this broker."),
    def!("process.roles", List, Some("broker,controller"), Check::ListOf(&["broker", "controller"]), false, "The roles that this process plays: 'broker', 'controller', or 'broker,controller' if it is both. Sluice runs combined nodes (the default) today."),
    def!("listeners", List, Some("PLAINTEXT://127.0.0.1:9092"), Check::Listener, false, "Listener List - Comma-separated list of URIs we will listen on and the listener names, as NAME://host:port (a bare host:port is PLAINTEXT). The controller quorum listens on the listener named by controller.listener.names."),
    def!("advertised.listeners", List, None, Check::Listener, false, "Listeners to publish to clients in Metadata, if different from the listeners config property, as NAME://host:port. Defaults to listeners."),
    def!("listener.security.protocol.map", String, Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), Check::None, false, "Map between listener names and security protocols, as NAME:PROTOCOL pairs. When unset, each controller listener is PLAINTEXT. Sluice serves all four protocols on client listeners."),
    def!("controller.listener.names", List, None, Check::None, false, "A comma-separated list of the names of the listeners used by the controller quorum. Required when controller.quorum.voters is set."),
    def!("controller.quorum.voters", List, Some(""), Check::None, false, "Map of id/endpoint information for the set of voters in a comma-separated list of {id}@{host}:{port} entries, e.g. 1@localhost:9093,2@localhost:9193. Empty: a single node that is its own one-voter quorum."),
    def!("controller.quorum.election.timeout.ms", Int, Some("1000"), Check::AtLeast(1), false, "Maximum time in milliseconds to wait without being able to fetch from the leader before triggering a new election."),
    def!("controller.quorum.request.timeout.ms", Int, Some("2000"), Check::AtLeast(1), false, "How long a metadata change waits to be committed by the controller quorum before the request times out."),
    def!("broker.heartbeat.interval.ms", Int, Some("2000"), Check::AtLeast(1), false, "The length of time in milliseconds between broker heartbeats."),
    def!("broker.session.timeout.ms", Int, Some("9000"), Check::AtLeast(1), false, "The length of time in milliseconds that a broker lease lasts if no heartbeats are made; the controller fences the broker after it."),
    def!("broker.rack", String, None, Check::None, false, "Rack of the broker. This will be used in rack aware replication assignment for fault tolerance."),
    def!("log.dirs", List, Some("./sluice-data"), Check::None, false, "The directory in which the log data is kept."),
    def!("num.partitions", Int, Some("1"), Check::AtLeast(1), true, "The default number of log partitions per topic."),
    def!("default.replication.factor", Int, Some("1"), Check::AtLeast(1), true, "The replication factor for automatically created topics, and for topics created with -1 as the replication factor."),
    def!("auto.create.topics.enable", Boolean, Some("true"), Check::None, false, "Enable auto creation of topic on the server."),
    def!("delete.topic.enable", Boolean, Some("true"), Check::None, false, "Enables delete topic. Delete topic through the admin tool will have no effect if this config is turned off."),
    def!("socket.request.max.bytes", Int, Some("104857600"), Check::AtLeast(1), false, "The maximum number of bytes in a socket request."),
    def!("socket.request.read.timeout.ms", Long, Some("30000"), Check::AtLeast(1), false, "Sluice-specific (Kafka has no such setting): the time a request may take to arrive once its first byte has. A connection that sends part of a request and then stalls is closed after this, whatever connections.max.idle.ms says."),
    def!("connections.max.idle.ms", Long, Some("600000"), Check::AtLeast(-1), false, "Idle connections timeout: the server socket processor threads close the connections that idle more than this. A connection is idle while it has no request in flight and sends nothing. -1 disables the timeout."),
    def!("max.connections", Int, Some("2147483647"), Check::AtLeast(0), false, "The maximum number of connections we allow in the broker at any time. This limit is applied in addition to any per-ip limits configured using max.connections.per.ip. New connections are blocked (not accepted, left waiting in the listen backlog) while the limit is reached."),
    def!("max.connections.per.ip", Int, Some("2147483647"), Check::AtLeast(0), false, "The maximum number of connections we allow from each ip address. This can be set to 0 if there are overrides configured using max.connections.per.ip.overrides property. New connections from the ip address are dropped if the limit is reached."),
    def!("max.connection.creation.rate", Int, Some("2147483647"), Check::AtLeast(0), false, "The maximum connection creation rate we allow in the broker at any time. Listener-level limits may also be configured by prefixing the config name with the listener prefix, for example, listener.name.internal.max.connection.creation.rate. New connections wait in the listen backlog while the rate is reached."),
    def!("max.connections.per.ip.overrides", String, Some(""), Check::HostCounts, false, "A comma-separated list of per-ip or hostname overrides to the default maximum number of connections. An example value is \"hostName:100,127.0.0.1:200\""),
    def!("message.max.bytes", Int, Some("1048588"), Check::AtLeast(0), true, "The largest record batch size allowed by Kafka (after compression if compression is enabled)."),
    def!("group.initial.rebalance.delay.ms", Int, Some("3000"), Check::AtLeast(0), false, "The amount of time the group coordinator will wait for more consumers to join a new group before performing the first rebalance. A longer delay means potentially fewer rebalances, but increases the time until processing begins."),
    def!("group.min.session.timeout.ms", Int, Some("6000"), Check::AtLeast(0), false, "The minimum allowed session timeout for registered consumers. Shorter timeouts result in quicker failure detection at the cost of more frequent consumer heartbeating, which can overwhelm broker resources."),
    def!("group.max.session.timeout.ms", Int, Some("1800000"), Check::AtLeast(0), false, "The maximum allowed session timeout for registered consumers. Longer timeouts give consumers more time to process messages in between heartbeats at the cost of a longer time to detect failures."),
    def!("group.max.size", Int, Some("2147483647"), Check::AtLeast(1), false, "The maximum number of consumers that a single consumer group can accommodate."),
    def!("group.consumer.heartbeat.interval.ms", Int, Some("5000"), Check::AtLeast(1), false, "The heartbeat interval given to the members of a consumer group."),
    def!("group.consumer.session.timeout.ms", Int, Some("45000"), Check::AtLeast(1), false, "The timeout to detect client failures when using the consumer group protocol."),
    def!("group.consumer.max.size", Int, Some("2147483647"), Check::AtLeast(1), false, "The maximum number of consumers that a single consumer group can accommodate. This value will only impact groups under the CONSUMER group protocol. To configure the max group size when using the CLASSIC group protocol use group.max.size instead."),
    def!("group.consumer.assignors", List, Some("uniform,range"), Check::ListOf(CONSUMER_GROUP_ASSIGNORS), false, "The server side assignors as a list of either names for builtin assignors or full class names for customer assignors. The first one in the list is considered as the default assignor to be used in the case where the consumer does not specify an assignor. The supported builtin assignors are: uniform, range. Sluice has no custom assignors."),
    def!("offsets.topic.num.partitions", Int, Some("50"), Check::AtLeast(1), false, "The number of partitions for the offset commit topic (should not change after deployment)."),
    def!("offsets.topic.replication.factor", Short, Some("3"), Check::AtLeast(1), false, "The replication factor for the offsets topic (set higher to ensure availability). Sluice creates it with min(this, the number of brokers the cluster has or is configured with as voters), so a single node needs no setting; with fewer live brokers than that it is not created and coordinator lookups fail until enough brokers are up."),
    def!("offsets.commit.timeout.ms", Int, Some("5000"), Check::AtLeast(1), false, "Offset commit will be delayed until all replicas for the offsets topic receive the commit or this timeout is reached. This is similar to the producer request timeout. Sluice bounds every group coordinator write by it."),
    def!("offsets.topic.segment.bytes", Int, Some("104857600"), Check::AtLeast(1), false, "The offsets topic segment bytes should be kept relatively small in order to facilitate faster log compaction and cache loads."),
    def!("offsets.retention.minutes", Int, Some("10080"), Check::AtLeast(1), false, "For subscribed consumers, committed offset of a specific partition will be expired and discarded after 1) this retention period has elapsed after the consumer group loses all its consumers (i.e. becomes empty); 2) this retention period has elapsed since the last time an offset is committed for the partition and the group is no longer subscribed to the corresponding topic. For standalone consumers (using manual assignment), offsets will be expired after this retention period has elapsed since the time of last commit. Sluice expires by the time of the last commit once the group has no members."),
    def!("offsets.retention.check.interval.ms", Long, Some("600000"), Check::AtLeast(1), false, "Frequency at which to check for stale offsets."),
    def!("offset.metadata.max.bytes", Int, Some("4096"), Check::AtLeast(0), false, "The maximum size for a metadata entry associated with an offset commit."),
    def!("transaction.state.log.num.partitions", Int, Some("50"), Check::AtLeast(1), false, "The number of partitions for the transaction topic (should not change after deployment)."),
    def!("transaction.state.log.replication.factor", Short, Some("3"), Check::AtLeast(1), false, "The replication factor for the transaction topic (set higher to ensure availability). Sluice creates it with min(this, the number of brokers the cluster has or is configured with as voters), so a single node needs no setting; with fewer live brokers than that it is not created and coordinator lookups fail until enough brokers are up."),
    def!("transaction.state.log.segment.bytes", Int, Some("104857600"), Check::AtLeast(1), false, "The transaction topic segment bytes should be kept relatively small in order to facilitate faster log compaction and cache loads."),
    def!("transaction.max.timeout.ms", Int, Some("900000"), Check::AtLeast(1), false, "The maximum allowed timeout for transactions. If a client's requested transaction time exceed this, then the broker will return an error in InitProducerIdRequest. This prevents a client from too large of a timeout, which can stall consumers reading from topics included in the transaction."),
    def!("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Some("10000"), Check::AtLeast(1), false, "The interval at which to rollback transactions that have timed out."),
    def!("producer.id.expiration.ms", Int, Some("86400000"), Check::AtLeast(1), true, "The time in ms that a topic partition leader will wait before expiring producer IDs. Producer IDs will not expire while a transaction associated to them is still ongoing. Note that producer IDs may expire sooner if the last write from the producer ID is deleted due to the topic's retention settings. Setting this value the same or higher than delivery.timeout.ms can help prevent expiration during retries and protect against message duplication, but the default should be reasonable for most use cases."),
    def!("producer.id.expiration.check.interval.ms", Int, Some("600000"), Check::AtLeast(1), false, "The interval at which to remove producer IDs that have expired due to producer.id.expiration.ms passing."),
    def!("max.incremental.fetch.session.cache.slots", Int, Some("1000"), Check::AtLeast(0), false, "The maximum number of total incremental fetch sessions that we will maintain."),
    def!("log.segment.bytes", Int, Some("1073741824"), Check::AtLeast(14), true, "The maximum size of a single log file."),
    def!("log.roll.ms", Long, None, Check::AtLeast(1), true, "The maximum time before a new log segment is rolled out (in milliseconds). If not set, the value in log.roll.hours is used."),
    def!("log.roll.hours", Int, Some("168"), Check::AtLeast(1), true, "The maximum time before a new log segment is rolled out (in hours), secondary to log.roll.ms property."),
    def!("log.roll.jitter.ms", Long, None, Check::AtLeast(0), true, "The maximum jitter to subtract from logRollTimeMillis (in milliseconds). If not set, the value in log.roll.jitter.hours is used."),
    def!("log.roll.jitter.hours", Int, Some("0"), Check::AtLeast(0), true, "The maximum jitter to subtract from logRollTimeMillis (in hours), secondary to log.roll.jitter.ms property."),
    def!("log.index.interval.bytes", Int, Some("4096"), Check::AtLeast(0), true, "The interval with which we add an entry to the offset index."),
    def!("log.index.size.max.bytes", Int, Some("10485760"), Check::AtLeast(4), true, "The maximum size in bytes of the offset index."),
    def!("log.flush.interval.messages", Long, Some("1"), Check::AtLeast(1), true, "The number of messages accumulated on a log partition before messages are flushed to disk. Sluice defaults to 1: a produce with acks=1 or acks=all is answered only after its data is synced (with group commit). Set 9223372036854775807 for Kafka's lazy behaviour."),
    def!("log.flush.interval.ms", Long, None, Check::AtLeast(0), true, "The maximum time in ms that a message in any topic is kept in memory before flushed to disk. If not set, the value in log.flush.scheduler.interval.ms is used."),
    def!("log.flush.scheduler.interval.ms", Long, Some(LONG_MAX), Check::AtLeast(0), false, "The frequency in ms that the log flusher checks whether any log needs to be flushed to disk."),
    def!("log.retention.ms", Long, None, Check::AtLeast(-1), true, "The number of milliseconds to keep a log file before deleting it (in milliseconds), If not set, the value in log.retention.minutes is used. If set to -1, no time limit is applied."),
    def!("log.retention.minutes", Int, None, Check::AtLeast(-1), true, "The number of minutes to keep a log file before deleting it (in minutes), secondary to log.retention.ms property. If not set, the value in log.retention.hours is used."),
    def!("log.retention.hours", Int, Some("168"), Check::AtLeast(-1), true, "The number of hours to keep a log file before deleting it (in hours), tertiary to log.retention.ms property."),
    def!("log.retention.bytes", Long, Some("-1"), Check::AtLeast(-1), true, "The maximum size of the log before deleting it."),
    def!("log.retention.check.interval.ms", Long, Some("300000"), Check::AtLeast(1), false, "The frequency in milliseconds that the log cleaner checks whether any log is eligible for deletion."),
    def!("log.cleanup.policy", List, Some("delete"), Check::ListOf(CLEANUP_POLICIES), true, "The default cleanup policy for segments beyond the retention window. A comma separated list of valid policies."),
    def!("log.cleaner.enable", Boolean, Some("true"), Check::None, false, "Enable the log cleaner process to run on the server."),
    def!("log.cleaner.backoff.ms", Long, Some("15000"), Check::AtLeast(0), true, "The amount of time to sleep when there are no logs to clean."),
    def!("log.cleaner.io.max.bytes.per.second", Double, Some("1.7976931348623157E308"), Check::None, true, "The log cleaner will be throttled so that the sum of its read and write i/o will be less than this value on average."),
    def!("log.cleaner.dedupe.buffer.size", Long, Some("134217728"), Check::AtLeast(0), true, "The total memory used for log deduplication across all cleaner threads. Sluice bounds the key map of one pass by it; a pass that fills it cleans up to the segment that filled it."),
    def!("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), Check::Ratio, true, "The minimum ratio of dirty log to total log for a log to eligible for cleaning."),
    def!("log.cleaner.delete.retention.ms", Long, Some("86400000"), Check::AtLeast(0), true, "The amount of time to retain tombstone message markers for log compacted topics."),
    def!("log.cleaner.min.compaction.lag.ms", Long, Some("0"), Check::AtLeast(0), true, "The minimum time a message will remain uncompacted in the log. Only applicable for logs that are being compacted."),
    def!("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX), Check::AtLeast(1), true, "The maximum time a message will remain ineligible for compaction in the log. Only applicable for logs that are being compacted."),
    def!("log.scrub.interval.ms", Long, Some("0"), Check::AtLeast(0), false, "How often the scrubber verifies the CRC and offsets of every batch in every closed segment, logging each damaged range with ERROR (a Sluice setting; Kafka has none). 0 turns it off. A damaged range in a closed segment otherwise shows only when a consumer fetches it."),
    def!("log.scrub.max.bytes.per.second", Long, Some("52428800"), Check::AtLeast(0), false, "The most bytes per second the scrubber reads, so that verifying does not compete with produce and fetch for the disk. 0 means no limit."),
    def!("log.format", String, Some("text"), Check::OneOf(&["text", "json"]), false, "How the broker logs to stderr (a Sluice setting): text, or json (one object per line, for log shippers). Levels come from RUST_LOG (default info), per module as in RUST_LOG=info,sluice::request=debug for the request log."),
    def!("http.listeners", List, Some("http://127.0.0.1:9644"), Check::HttpListeners, false, "Where the broker serves HTTP (a Sluice setting): /metrics (Prometheus), /healthz and /readyz, as http://host:port entries separated by commas. Empty turns HTTP off. Its own address, so that it can stay on loopback or an admin network."),
    def!("http.max.connections", Int, Some("64"), Check::AtLeast(1), false, "The most HTTP connections (http.listeners) open at once, each listener (a Sluice setting); more wait in the listen backlog, so HTTP clients cannot take the descriptors the Kafka listeners need."),
    def!("http.max.requests.per.second", Int, Some("100"), Check::AtLeast(1), false, "The most HTTP requests per second from one client address, with one second of burst (a Sluice setting); more are answered 429 Too Many Requests with Retry-After."),
    def!("metrics.partition.labels.max", Int, Some("1000"), Check::AtLeast(0), false, "The most series with a partition label (log end offset, log size, consumer group lag) /metrics reports, so that thousands of partitions do not explode a Prometheus server's cardinality (a Sluice setting). Partitions beyond it are counted in sluice_partition_series_omitted."),
    def!("log.max.open.segment.files", Int, Some("1000"), Check::AtLeast(1), false, "The most segment files the broker keeps open at once (a Sluice setting; Kafka keeps every segment open). A segment opens its file when it is read, written or synced, and the least recently used one is closed when more are open, so descriptors stay bounded however many partitions and segments there are. Raise it when more partitions than this are busy at once, to spare the reopening."),
    def!("log.segment.delete.delay.ms", Long, Some("60000"), Check::AtLeast(0), true, "The amount of time to wait before deleting a file from the filesystem."),
    def!("log.preallocate", Boolean, Some("false"), Check::None, true, "Should pre allocate file when create new segment?"),
    def!("log.message.timestamp.type", String, Some("CreateTime"), Check::OneOf(TIMESTAMP_TYPES), true, "Define whether the timestamp in the message is message create time or log append time."),
    def!("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX), Check::AtLeast(0), true, "This configuration sets the allowable timestamp difference between the broker's timestamp and the message timestamp. The message timestamp can be earlier than or equal to the broker's timestamp, with the maximum allowable difference determined by the value set in this configuration."),
    def!("log.message.timestamp.after.max.ms", Long, Some("3600000"), Check::AtLeast(0), true, "This configuration sets the allowable timestamp difference between the message timestamp and the broker's timestamp. The message timestamp can be later than or equal to the broker's timestamp, with the maximum allowable difference determined by the value set in this configuration."),
    def!("compression.type", String, Some("producer"), Check::OneOf(COMPRESSION_TYPES), true, "Specify the final compression type for a given topic. This configuration accepts the standard compression codecs ('gzip', 'snappy', 'lz4', 'zstd'). It additionally accepts 'uncompressed' which is equivalent to no compression; and 'producer' which means retain the original compression codec set by the producer."),
    def!("compression.gzip.level", Int, Some("-1"), Check::BetweenOr(1, 9, -1), true, "The compression level to use if compression.type is set to gzip."),
    def!("compression.lz4.level", Int, Some("9"), Check::Between(1, 17), true, "The compression level to use if compression.type is set to lz4. Level 1 is the fast compressor; 2 and up are LZ4 HC (liblz4 caps at 12)."),
    def!("compression.zstd.level", Int, Some("3"), Check::Between(-131072, 22), true, "The compression level to use if compression.type is set to zstd."),
    def!("min.insync.replicas", Int, Some("1"), Check::AtLeast(1), true, "When a producer sets acks to \"all\" (or \"-1\"), min.insync.replicas specifies the minimum number of replicas that must acknowledge a write for the write to be considered successful."),
    def!("authorizer.class.name", String, Some(""), Check::OneOf(&["", crate::security::authorizer::STANDARD_AUTHORIZER]), false, "The fully qualified name of a class that implements org.apache.kafka.server.authorizer.Authorizer interface, which is used by the broker for authorization. Sluice implements org.apache.kafka.metadata.authorizer.StandardAuthorizer (ACLs in the cluster metadata); empty turns authorization off."),
    def!("super.users", String, Some(""), Check::None, false, "A semicolon-separated list of principals (User:alice;User:admin) allowed every operation on every resource whatever the ACLs say."),
    def!("allow.everyone.if.no.acl.found", Boolean, Some("false"), Check::None, false, "Whether a request on a resource that has no ACL at all is allowed. Off, only super.users may use a resource until an ACL grants it."),
    def!("inter.broker.listener.name", String, None, Check::None, false, "Name of listener used for communication between brokers. If this is unset, the listener name is defined by security.inter.broker.protocol. It is an error to set this and security.inter.broker.protocol properties at the same time. Sluice uses the listener named PLAINTEXT when it is unset, or else the first listener."),
    def!("ssl.keystore.type", String, Some("PEM"), Check::OneOf(STORE_TYPES), false, "The file format of the key store file. This is optional for client. The values currently supported by the default `ssl.engine.factory.class` are [JKS, PKCS12, PEM]. Sluice reads PEM key stores only (its default; Kafka's is JKS)."),
    def!("ssl.keystore.location", String, None, Check::None, false, "The location of the key store file. This is optional for client and can be used for two-way authentication for client. For a PEM key store: the private key (PKCS#8, PKCS#1 or SEC1, unencrypted) followed by the certificate chain, in one file. Sluice reloads it when the file changes."),
    def!("ssl.keystore.certificate.chain", Password, None, Check::None, false, "Certificate chain in the format specified by 'ssl.keystore.type'. Default SSL engine factory supports only PEM format with a list of X.509 certificates"),
    def!("ssl.keystore.key", Password, None, Check::None, false, "Private key in the format specified by 'ssl.keystore.type'. Default SSL engine factory supports only PEM format with PKCS#8 keys. If the key is encrypted, key password must be specified using 'ssl.key.password'. Sluice reads unencrypted keys only."),
    def!("ssl.truststore.type", String, Some("PEM"), Check::OneOf(STORE_TYPES), false, "The file format of the trust store file. The values currently supported by the default `ssl.engine.factory.class` are [JKS, PKCS12, PEM]. Sluice reads PEM trust stores only (its default; Kafka's is JKS)."),
    def!("ssl.truststore.location", String, None, Check::None, false, "The location of the trust store file: for Sluice, PEM certificates of the authorities whose client certificates are accepted (ssl.client.auth). Sluice reloads it when the file changes."),
    def!("ssl.truststore.certificates", Password, None, Check::None, false, "Trusted certificates in the format specified by 'ssl.truststore.type'. Default SSL engine factory supports only PEM format with X.509 certificates."),
    def!("ssl.client.auth", String, Some("none"), Check::OneOf(&["required", "requested", "none"]), false, "Configures kafka broker to request client authentication. The following settings are common: ssl.client.auth=required If set to required client authentication is required. ssl.client.auth=requested This means client authentication is optional. unlike required, if this option is set client can choose not to provide authentication information about itself ssl.client.auth=none This means client authentication is not needed."),
    def!("ssl.enabled.protocols", List, Some("TLSv1.2,TLSv1.3"), Check::ListOf(TLS_VERSIONS), false, "The list of protocols enabled for SSL connections. The default is 'TLSv1.2,TLSv1.3'. This means that clients and servers will prefer TLSv1.3 if both support it and fallback to TLSv1.2 otherwise (assuming both support at least TLSv1.2)."),
    def!("ssl.principal.mapping.rules", String, Some("DEFAULT"), Check::SslPrincipalRules, false, "A rule for mapping X.500 distinguished name to short name. The rules are evaluated in order and the first rule that matches a distinguished name is used to map it to a short name. Any later rules in the list are ignored. By default, distinguished name of the X.500 certificate will be the principal. For more details on the format please see security authorization and acls."),
    def!("sasl.enabled.mechanisms", List, Some("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"), Check::ListOf(SASL_MECHANISMS), false, "The list of SASL mechanisms enabled in the Kafka server. The list may contain any mechanism for which a security provider is available. Sluice serves PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, all checked against the SCRAM credentials of the metadata, and OAUTHBEARER (JWTs, see sasl.oauthbearer.jwks.endpoint.url); it enables the first three by default (Kafka's default is GSSAPI, which Sluice does not have)."),
    def!("connections.max.reauth.ms", Long, Some("0"), Check::AtLeast(0), false, "When explicitly set to a positive number (the default is 0, not a positive number), a session lifetime that will not exceed the configured value will be communicated to v2.2.0 or later clients when they authenticate. The broker will disconnect any such connection that is not re-authenticated within the session lifetime and that is then subsequently used for any purpose other than re-authentication."),
    def!("sasl.oauthbearer.jwks.endpoint.url", String, None, Check::None, false, "The OAuth/OIDC provider URL from which the provider's JWKS (JSON Web Key Set) can be retrieved. The URL can be HTTP(S)-based or file-based. If HTTP(S)-based, the JWKS data will be retrieved from the OAuth/OIDC provider via the configured URL on broker startup. All then-current keys will be cached on the broker for incoming requests. If an authentication request is received for a JWT that includes a \"kid\" header claim value that isn't yet in the cache, the JWKS endpoint will be queried again on demand. However, the broker polls the URL every sasl.oauthbearer.jwks.endpoint.refresh.ms milliseconds to refresh the cache with any forthcoming keys before any JWT requests that include them are received. If the URL is file-based, the broker will load the JWKS file from a configured location on startup. In the event that the JWT includes a \"kid\" header value that isn't in the JWKS file, the broker will reject the JWT and authentication will fail. In Sluice, setting it makes OAUTHBEARER logins signed JWTs checked against these keys (the unsecured validator is used only without it)."),
    def!("sasl.oauthbearer.jwks.endpoint.refresh.ms", Long, Some("3600000"), Check::AtLeast(1), false, "The (optional) value in milliseconds for the broker to wait between refreshing its JWKS (JSON Web Key Set) cache that contains the keys to verify the signature of the JWT."),
    def!("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", Long, Some("100"), Check::AtLeast(0), false, "The (optional) value in milliseconds for the initial wait between JWKS (JSON Web Key Set) retrieval attempts from the external authentication provider. JWKS retrieval uses an exponential backoff algorithm with an initial wait based on the sasl.oauthbearer.jwks.endpoint.retry.backoff.ms setting and will double in wait length between attempts up to a maximum wait length specified by the sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms setting."),
    def!("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", Long, Some("10000"), Check::AtLeast(0), false, "The (optional) value in milliseconds for the maximum wait between attempts to retrieve the JWKS (JSON Web Key Set) from the external authentication provider. JWKS retrieval uses an exponential backoff algorithm with an initial wait based on the sasl.oauthbearer.jwks.endpoint.retry.backoff.ms setting and will double in wait length between attempts up to a maximum wait length specified by the sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms setting."),
    def!("sasl.oauthbearer.expected.audience", List, None, Check::None, false, "The (optional) comma-delimited setting for the broker to use to verify that the JWT was issued for one of the expected audiences. The JWT will be inspected for the standard OAuth \"aud\" claim and if this value is set, the broker will match the value from JWT's \"aud\" claim to see if there is an exact match. If there is no match, the broker will reject the JWT and authentication will fail."),
    def!("sasl.oauthbearer.expected.issuer", String, None, Check::None, false, "The (optional) setting for the broker to use to verify that the JWT was created by the expected issuer. The JWT will be inspected for the standard OAuth \"iss\" claim and if this value is set, the broker will match it exactly against what is in the JWT's \"iss\" claim. If there is no match, the broker will reject the JWT and authentication will fail."),
    def!("sasl.oauthbearer.scope.claim.name", String, Some("scope"), Check::None, false, "The OAuth claim for the scope is often named \"scope\", but this (optional) setting can provide a different name to use for the scope included in the JWT payload's claims if the OAuth/OIDC provider uses a different name for that claim."),
    def!("sasl.oauthbearer.sub.claim.name", String, Some("sub"), Check::None, false, "The OAuth claim for the subject is often named \"sub\", but this (optional) setting can provide a different name to use for the subject included in the JWT payload's claims if the OAuth/OIDC provider uses a different name for that claim."),
    def!("sasl.oauthbearer.clock.skew.seconds", Int, Some("30"), Check::AtLeast(0), false, "The (optional) value in seconds to allow for differences between the time of the OAuth/OIDC identity provider and the broker."),
    def!("sasl.mechanism.inter.broker.protocol", String, Some("GSSAPI"), Check::None, false, "SASL mechanism used for inter-broker communication. Default is GSSAPI. Sluice speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 to other brokers (not GSSAPI): set this when the inter-broker listener uses SASL; the credentials are in listener.name.<listener>.<mechanism>.sasl.jaas.config."),
    def!("ssl.endpoint.identification.algorithm", String, Some("https"), Check::OneOf(&["https", ""]), false, "The endpoint identification algorithm to validate server hostname using server certificate. Sluice checks it when it connects to another broker over an SSL or SASL_SSL inter-broker listener: https checks that the certificate names the host connected to; empty skips that check (the certificate must still chain to ssl.truststore.*)."),
    def!("sasl.server.max.receive.size", Int, Some("524288"), Check::AtLeast(1), false, "The maximum receive size allowed before and during initial SASL authentication. Default receive size is 512KB. GSSAPI limits requests to 64K, but we allow upto 512KB by default for custom SASL mechanisms. In practice, PLAIN, SCRAM and OAUTH mechanisms can use much smaller limits."),
    def!("quota.window.num", Int, Some("11"), Check::AtLeast(1), false, "The number of samples to retain in memory for client quotas."),
    def!("quota.window.size.seconds", Int, Some("1"), Check::AtLeast(1), false, "The time span of each sample for client quotas."),
    def!("sasl.failed.authentications.per.ip.per.minute", Int, Some("30"), Check::AtLeast(0), false, "The most failed SASL logins one client address may make per minute (a Sluice setting): past it, logins from that address are refused without checking the credentials until the minute is over, however many connections it opens. 0 turns the limit off."),
    def!("connection.failed.authentication.delay.ms", Int, Some("100"), Check::AtLeast(0), false, "Connection close delay on failed authentication: this is the time (in milliseconds) by which connection close will be delayed on authentication failure. This must be configured to be less than connections.max.idle.ms to prevent connection timeout."),
    def!("replica.selector.class", String, None, Check::OneOf(REPLICA_SELECTORS), false, "The fully qualified class name that implements ReplicaSelector. This is used by the broker to find the preferred read replica. By default, we use an implementation that returns the leader. Sluice implements org.apache.kafka.common.replica.RackAwareReplicaSelector (a consumer whose client.rack is a follower's broker.rack reads from that follower, KIP-392) and org.apache.kafka.common.replica.LeaderSelector."),
    def!("replica.lag.time.max.ms", Long, Some("30000"), Check::AtLeast(1), false, "If a follower hasn't sent any fetch requests or hasn't consumed up to the leaders log end offset for at least this time, the leader will remove the follower from isr"),
    def!("replica.fetch.max.bytes", Int, Some("1048576"), Check::AtLeast(0), false, "The number of bytes of messages to attempt to fetch for each partition. This is not an absolute maximum, if the first record batch in the first non-empty partition of the fetch is larger than this value, the record batch will still be returned to ensure that progress can be made. The maximum record batch size accepted by the broker is defined via message.max.bytes (broker config) or max.message.bytes (topic config)."),
    def!("replica.fetch.response.max.bytes", Int, Some("10485760"), Check::AtLeast(0), false, "Maximum bytes expected for the entire fetch response. Records are fetched in batches, and if the first record batch in the first non-empty partition of the fetch is larger than this value, the record batch will still be returned to ensure that progress can be made. As such, this is not an absolute maximum. The maximum record batch size accepted by the broker is defined via message.max.bytes (broker config) or max.message.bytes (topic config)."),
    def!("replica.fetch.wait.max.ms", Int, Some("500"), Check::AtLeast(0), false, "The maximum wait time for each fetcher request issued by follower replicas. This value should always be less than the replica.lag.time.max.ms at all times to prevent frequent shrinking of ISR for low throughput topics"),
    def!("replica.fetch.min.bytes", Int, Some("1"), Check::AtLeast(0), false, "Minimum bytes expected for each fetch response. If not enough bytes, wait up to replica.fetch.wait.max.ms (broker config)."),
    def!("replica.fetch.backoff.ms", Int, Some("1000"), Check::AtLeast(0), false, "The amount of time to sleep when fetch partition error occurs."),
    def!("replica.high.watermark.checkpoint.interval.ms", Long, Some("5000"), Check::AtLeast(1), false, "The frequency with which the high watermark is saved out to disk"),
    def!("auto.leader.rebalance.enable", Boolean, Some("true"), Check::None, false, "Enables auto leader balancing. A background thread checks the distribution of partition leaders at regular intervals, configurable by leader.imbalance.check.interval.seconds. If the leader is imbalanced, leader rebalance to the preferred leader for partitions is triggered."),
    def!("leader.imbalance.check.interval.seconds", Long, Some("300"), Check::AtLeast(1), false, "The frequency with which the partition rebalance check is triggered by the controller"),
    def!("num.replica.fetchers", Int, Some("1"), Check::AtLeast(1), true, "Number of fetcher threads used to replicate records from each source broker. The total number of fetchers on each broker is bound by num.replica.fetchers multiplied by the number of brokers in the cluster. Sluice runs them as tasks; each copies the partitions of its slot from one leader."),
    def!("unclean.leader.election.enable", Boolean, Some("false"), Check::None, true, "Indicates whether to enable replicas not in the ISR set to be elected as leader as a last resort, even though doing so may result in data loss."),
];

/// Where a topic setting falls back to at the broker level. `scale` converts
/// the broker unit (minutes, hours) to the topic unit (milliseconds).
#[derive(Debug)]
pub struct Synonym {
    pub name: &'static str,
    pub scale: i64,
}

#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Used only when no broker synonym has a value.
    pub default: &'static str,
    pub check: Check,
    pub synonyms: &'static [Synonym],
    pub doc: &'static str,
}

macro_rules! syn {
    ($($name:expr => $scale:expr),*) => { &[$(Synonym { name: $name, scale: $scale }),*] };
}

macro_rules! topic_def {
    ($name:expr, $ty:ident, $default:expr, $check:expr, $syn:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            ty: ConfigType::$ty,
            default: $default,
            check: $check,
            synonyms: $syn,
            doc: $doc,
        }
    };
}

/// Topic settings, as Kafka's `TopicConfig` lists them.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic_def!("cleanup.policy", List, "delete", Check::ListOf(CLEANUP_POLICIES), syn!("log.cleanup.policy" => 1), "This config designates the retention policy to use on log segments. The \"delete\" policy (which is the default) will discard old segments when their retention time or size limit has been reached. The \"compact\" policy will enable log compaction, which retains the latest value for each key."),
    topic_def!("compression.type", String, "producer", Check::OneOf(COMPRESSION_TYPES), syn!("compression.type" => 1), "Specify the final compression type for a given topic. This configuration accepts the standard compression codecs ('gzip', 'snappy', 'lz4', 'zstd'). It additionally accepts 'uncompressed' which is equivalent to no compression; and 'producer' which means retain the original compression codec set by the producer."),
    topic_def!("compression.gzip.level", Int, "-1", Check::BetweenOr(1, 9, -1), syn!("compression.gzip.level" => 1), "The compression level to use if compression.type is set to gzip."),
    topic_def!("compression.lz4.level", Int, "9", Check::Between(1, 17), syn!("compression.lz4.level" => 1), "The compression level to use if compression.type is set to lz4. Level 1 is the fast compressor; 2 and up are LZ4 HC (liblz4 caps at 12)."),
    topic_def!("compression.zstd.level", Int, "3", Check::Between(-131072, 22), syn!("compression.zstd.level" => 1), "The compression level to use if compression.type is set to zstd."),
    topic_def!("delete.retention.ms", Long, "86400000", Check::AtLeast(0), syn!("log.cleaner.delete.retention.ms" => 1), "The amount of time to retain delete tombstone markers for log compacted topics."),
    topic_def!("file.delete.delay.ms", Long, "60000", Check::AtLeast(0), syn!("log.segment.delete.delay.ms" => 1), "The time to wait before deleting a file from the filesystem."),
    topic_def!("flush.messages", Long, "1", Check::AtLeast(1), syn!("log.flush.interval.messages" => 1), "This setting allows specifying an interval at which we will force an fsync of data written to the log. Sluice's default of 1 syncs before acknowledging (group commit makes that cheap)."),
    topic_def!("flush.ms", Long, LONG_MAX, Check::AtLeast(0), syn!("log.flush.interval.ms" => 1, "log.flush.scheduler.interval.ms" => 1), "This setting allows specifying a time interval at which we will force an fsync of data written to the log."),
    topic_def!("index.interval.bytes", Int, "4096", Check::AtLeast(0), syn!("log.index.interval.bytes" => 1), "This setting controls how frequently Kafka adds an index entry to its offset index."),
    topic_def!("max.compaction.lag.ms", Long, LONG_MAX, Check::AtLeast(1), syn!("log.cleaner.max.compaction.lag.ms" => 1), "The maximum time a message will remain ineligible for compaction in the log. Only applicable for logs that are being compacted."),
    topic_def!("max.message.bytes", Int, "1048588", Check::AtLeast(0), syn!("message.max.bytes" => 1), "The largest record batch size allowed by Kafka (after compression if compression is enabled)."),
    topic_def!("message.timestamp.after.max.ms", Long, "3600000", Check::AtLeast(0), syn!("log.message.timestamp.after.max.ms" => 1), "This configuration sets the allowable timestamp difference between the message timestamp and the broker's timestamp. The message timestamp can be later than or equal to the broker's timestamp, with the maximum allowable difference determined by the value set in this configuration."),
    topic_def!("message.timestamp.before.max.ms", Long, LONG_MAX, Check::AtLeast(0), syn!("log.message.timestamp.before.max.ms" => 1), "This configuration sets the allowable timestamp difference between the broker's timestamp and the message timestamp. The message timestamp can be earlier than or equal to the broker's timestamp, with the maximum allowable difference determined by the value set in this configuration."),
    topic_def!("message.timestamp.type", String, "CreateTime", Check::OneOf(TIMESTAMP_TYPES), syn!("log.message.timestamp.type" => 1), "Define whether the timestamp in the message is message create time or log append time."),
    topic_def!("min.cleanable.dirty.ratio", Double, "0.5", Check::Ratio, syn!("log.cleaner.min.cleanable.ratio" => 1), "This configuration controls how frequently the log compactor will attempt to clean the log (assuming log compaction is enabled)."),
    topic_def!("min.compaction.lag.ms", Long, "0", Check::AtLeast(0), syn!("log.cleaner.min.compaction.lag.ms" => 1), "The minimum time a message will remain uncompacted in the log. Only applicable for logs that are being compacted."),
    topic_def!("min.insync.replicas", Int, "1", Check::AtLeast(1), syn!("min.insync.replicas" => 1), "When a producer sets acks to \"all\" (or \"-1\"), this configuration specifies the minimum number of replicas that must acknowledge a write for the write to be considered successful."),
    topic_def!("preallocate", Boolean, "false", Check::None, syn!("log.preallocate" => 1), "True if we should preallocate the file on disk when creating a new log segment."),
    topic_def!("retention.bytes", Long, "-1", Check::AtLeast(-1), syn!("log.retention.bytes" => 1), "This configuration controls the maximum size a partition (which consists of log segments) can grow to before we will discard old log segments to free up space if we are using the \"delete\" retention policy."),
    topic_def!("retention.ms", Long, "604800000", Check::AtLeast(-1), syn!("log.retention.ms" => 1, "log.retention.minutes" => 60_000, "log.retention.hours" => 3_600_000), "This configuration controls the maximum time we will retain a log before we will discard old log segments to free up space if we are using the \"delete\" retention policy. If set to -1, no time limit is applied."),
    topic_def!("segment.bytes", Int, "1073741824", Check::AtLeast(14), syn!("log.segment.bytes" => 1), "This configuration controls the segment file size for the log."),
    topic_def!("segment.index.bytes", Int, "10485760", Check::AtLeast(4), syn!("log.index.size.max.bytes" => 1), "This configuration controls the size of the index that maps offsets to file positions."),
    topic_def!("segment.jitter.ms", Long, "0", Check::AtLeast(0), syn!("log.roll.jitter.ms" => 1, "log.roll.jitter.hours" => 3_600_000), "The maximum random jitter subtracted from the scheduled segment roll time to avoid thundering herds of segment rolling."),
    topic_def!("segment.ms", Long, "604800000", Check::AtLeast(1), syn!("log.roll.ms" => 1, "log.roll.hours" => 3_600_000), "This configuration controls the period of time after which Kafka will force the log to roll even if the segment file isn't full to ensure that retention can delete or compact old data."),
    topic_def!("unclean.leader.election.enable", Boolean, "false", Check::None, syn!("unclean.leader.election.enable" => 1), "Indicates whether to enable replicas not in the ISR set to be elected as leader as a last resort, even though doing so may result in data loss."),
];

/// The OAUTHBEARER validators (Kafka's server callback handler classes).
pub const OAUTH_UNSECURED_VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";
const OAUTH_VALIDATORS: &[&str] = &[
    OAUTH_UNSECURED_VALIDATOR,
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// Settings that exist only with a listener prefix, as
/// `listener.name.<listener>.<setting>`: Kafka's per-mechanism settings of
/// a SASL listener.
pub static LISTENER_ONLY_CONFIGS: &[ConfigDef] = &[
    def!("oauthbearer.sasl.jaas.config", Password, None, Check::None, false, "JAAS login context parameters for OAUTHBEARER on this listener, in the format used by JAAS configuration files: `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope=\"...\";`. Sluice reads the unsecured validator's options from it: unsecuredValidatorPrincipalClaimName, unsecuredValidatorScopeClaimName, unsecuredValidatorRequiredScope, unsecuredValidatorAllowableClockSkewMs."),
    def!("oauthbearer.sasl.server.callback.handler.class", String, None, Check::OneOf(OAUTH_VALIDATORS), false, "How this listener validates OAUTHBEARER tokens: org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler checks signed JWTs against sasl.oauthbearer.jwks.endpoint.url; org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler accepts unsigned ones (development only). Unset: the former when sasl.oauthbearer.jwks.endpoint.url is set, else the latter."),
    def!("plain.sasl.jaas.config", Password, None, Check::None, false, "JAAS login context parameters for SASL/PLAIN on this listener: `org.apache.kafka.common.security.plain.PlainLoginModule required username=\"...\" password=\"...\";`. Sluice reads the username and password this broker logs in to other brokers with when this is the inter-broker listener and sasl.mechanism.inter.broker.protocol is PLAIN; PLAIN logins to this broker are checked against the SCRAM credentials, not against user_<name> options."),
    def!("scram-sha-256.sasl.jaas.config", Password, None, Check::None, false, "JAAS login context parameters for SCRAM-SHA-256 on this listener: `org.apache.kafka.common.security.scram.ScramLoginModule required username=\"...\" password=\"...\";`. Sluice reads the username and password this broker logs in to other brokers with when this is the inter-broker listener and sasl.mechanism.inter.broker.protocol is SCRAM-SHA-256."),
    def!("scram-sha-512.sasl.jaas.config", Password, None, Check::None, false, "JAAS login context parameters for SCRAM-SHA-512 on this listener: `org.apache.kafka.common.security.scram.ScramLoginModule required username=\"...\" password=\"...\";`. Sluice reads the username and password this broker logs in to other brokers with when this is the inter-broker listener and sasl.mechanism.inter.broker.protocol is SCRAM-SHA-512."),
];

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    match listener_setting(name) {
        Some((_, setting)) => BROKER_CONFIGS
            .iter()
            .chain(LISTENER_ONLY_CONFIGS)
            .find(|d| d.name == setting),
        None => BROKER_CONFIGS.iter().find(|d| d.name == name),
    }
}

/// The settings a single listener may set for itself, as
/// `listener.name.<listener>.<setting>` (Kafka's listener prefix).
const PER_LISTENER_SETTINGS: &[&str] = &[
    "max.connections",
    "max.connection.creation.rate",
    "oauthbearer.sasl.jaas.config",
    "oauthbearer.sasl.server.callback.handler.class",
    "plain.sasl.jaas.config",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
];

/// `(listener, setting)` of a listener-prefixed setting name.
pub fn listener_setting(name: &str) -> Option<(&str, &'static str)> {
    let rest = name.strip_prefix("listener.name.")?;
    PER_LISTENER_SETTINGS.iter().find_map(|setting| {
        let listener = rest.strip_suffix(setting)?.strip_suffix('.')?;
        (!listener.is_empty() && !listener.contains('.')).then_some((listener, *setting))
    })
}

pub fn topic_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` against a type and rule; the error names what is wrong.
pub fn validate(name: &str, ty: ConfigType, check: Check, value: &str) -> Result<(), String> {
    let shown = if ty == ConfigType::Password {
        "[hidden]"
    } else {
        value
    };
    let bad = |why: String| {
        Err(format!(
            "Invalid value {shown} for configuration {name}: {why}"
        ))
    };
    let number = match ty {
        ConfigType::Boolean => {
            return match value.to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => bad("Expected value to be either true or false".into()),
            }
        }
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let parsed = value.trim().parse::<i64>();
            let fits = match (ty, &parsed) {
                (ConfigType::Int, Ok(v)) => i32::try_from(*v).is_ok(),
                (ConfigType::Short, Ok(v)) => i16::try_from(*v).is_ok(),
                (_, Ok(_)) => true,
                _ => false,
            };
            if !fits {
                return bad("Not a number of the right type".into());
            }
            parsed.ok()
        }
        ConfigType::Double => {
            return match value.trim().parse::<f64>() {
                Ok(v) if matches!(check, Check::Ratio) && !(0.0..=1.0).contains(&v) => {
                    bad("Value must be between 0 and 1".into())
                }
                Ok(v) if v.is_finite() => Ok(()),
                _ => bad("Not a number of type DOUBLE".into()),
            }
        }
        ConfigType::String | ConfigType::List | ConfigType::Password => None,
    };
    match (check, number) {
        (Check::AtLeast(min), Some(v)) if v < min => bad(format!("Value must be at least {min}")),
        (Check::Between(lo, hi), Some(v)) if v < lo || v > hi => {
            bad(format!("Value must be in [{lo}...{hi}]"))
        }
        (Check::BetweenOr(lo, hi, or), Some(v)) if (v < lo || v > hi) && v != or => {
            bad(format!("Value must be in [{lo}...{hi}] or {or}"))
        }
        (Check::OneOf(allowed), _) if !allowed.contains(&value) => {
            bad(format!("String must be one of: {}", allowed.join(", ")))
        }
        (Check::ListOf(allowed), _) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().any(|i| !allowed.contains(i)) || items.is_empty() {
                bad(format!("Items must be from: {}", allowed.join(", ")))
            } else {
                Ok(())
            }
        }
        (Check::HostCounts, _) => parse_connection_overrides(value)
            .map(|_| ())
            .map_err(|e| format!("Invalid value {value} for configuration {name}: {e}")),
        (Check::Listener, _) => crate::listeners::parse(value)
            .map(|_| ())
            .map_err(|e| format!("Invalid value {value} for configuration {name}: {e}")),
        (Check::SslPrincipalRules, _) => crate::security::principal::PrincipalRules::parse(value)
            .map(|_| ())
            .map_err(|e| format!("Invalid value {value} for configuration {name}: {e}")),
        (Check::HttpListeners, _) => parse_http_listeners(value)
            .map(|_| ())
            .map_err(|e| format!("Invalid value {value} for configuration {name}: {e}")),
        _ => Ok(()),
    }
}

/// Parses `max.connections.per.ip.overrides`: `host:count` pairs separated
/// by commas, where the host is a name or an IP address (split at the last
/// colon, so IPv6 addresses work) and the count is at least 0.
pub fn parse_connection_overrides(value: &str) -> Result<Vec<(String, u32)>, String> {
    let mut overrides = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("expected host:count, got '{entry}'"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let valid_host = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
        if !valid_host {
            return Err(format!("invalid host '{host}' in '{entry}'"));
        }
        let count = count
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| format!("invalid connection count in '{entry}'"))?;
        overrides.push((host.to_string(), count));
    }
    Ok(overrides)
}

/// Parses `http.listeners` into `host:port` addresses to bind.
pub fn parse_http_listeners(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once("://") {
            Some(("http", addr))
                if addr
                    .rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok()) =>
            {
                Ok(addr.to_string())
            }
            Some(("http", _)) => Err(format!("{entry} needs host:port after http://")),
            Some(("https", _)) => Err(format!(
                "{entry}: https is not supported yet; serve http on loopback or an admin network"
            )),
            _ => Err(format!("{entry} is not http://host:port")),
        })
        .collect()
}

/// Static broker settings: what the config file, `--set` and the
/// environment gave, validated against [`BROKER_CONFIGS`].
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    values: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// Builds a config from explicit settings; unknown names and invalid
    /// values are refused with a message naming the key.
    pub fn from_settings<I, K, V>(settings: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut values = BTreeMap::new();
        for (key, value) in settings {
            let (key, value) = (key.into(), value.into());
            let def = broker_def(&key).ok_or_else(|| format!("unknown broker setting '{key}'"))?;
            validate(&key, def.ty, def.check, &value)?;
            values.insert(key, value);
        }
        Ok(BrokerConfig { values })
    }

    /// The explicitly set value, if any.
    pub fn explicit(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every listener-prefixed setting given: `(listener, setting, value)`.
    pub fn listener_settings(&self) -> impl Iterator<Item = (&str, &'static str, &str)> {
        self.values.iter().filter_map(|(name, value)| {
            let (listener, setting) = listener_setting(name)?;
            Some((listener, setting, value.as_str()))
        })
    }

    /// The value or its default; `None` only for null-default settings.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.explicit(name)
            .or_else(|| broker_def(name).and_then(|d| d.default))
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("broker setting {name} has no numeric default"))
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name)
            .map(|v| v.eq_ignore_ascii_case("true"))
            .unwrap_or(false)
    }

    pub fn node_id(&self) -> i32 {
        self.get_i64("node.id") as i32
    }

    /// The listeners, checked against each other (`Broker::start`
    /// refuses settings for which this fails).
    pub fn listeners(&self) -> Result<crate::listeners::Listeners, String> {
        crate::listeners::Listeners::from_config(self)
    }

    pub fn log_dir(&self) -> &str {
        self.get("log.dirs").expect("log.dirs has a default")
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let def = broker_def(key).ok_or_else(|| format!("unknown broker setting '{key}'"))?;
        validate(key, def.ty, def.check, value)?;
        self.values.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

/// One resolved setting with where its value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// Resolves a broker setting against dynamic overrides.
pub fn resolve_broker(name: &str, static_config: &BrokerConfig, dynamic: Dynamic<'_>) -> Resolved {
    if let Some((v, source)) = dynamic.get(name) {
        return Resolved {
            value: Some(v.clone()),
            source,
        };
    }
    if let Some(v) = static_config.explicit(name) {
        return Resolved {
            value: Some(v.to_string()),
            source: ConfigSource::StaticBroker,
        };
    }
    Resolved {
        value: broker_def(name).and_then(|d| d.default).map(str::to_string),
        source: ConfigSource::Default,
    }
}

/// The chain of values a topic setting could take, most specific first, as
/// DescribeConfigs reports synonyms: (name, value, source).
pub fn topic_synonyms(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    static_config: &BrokerConfig,
    dynamic: Dynamic<'_>,
) -> Vec<(String, String, ConfigSource)> {
    let mut chain = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        chain.push((def.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
    }
    for syn in def.synonyms {
        for (v, source) in dynamic.all(syn.name) {
            chain.push((syn.name.to_string(), v.clone(), source));
        }
    }
    for syn in def.synonyms {
        if let Some(v) = static_config.explicit(syn.name) {
            chain.push((
                syn.name.to_string(),
                v.to_string(),
                ConfigSource::StaticBroker,
            ));
        }
    }
    for syn in def.synonyms {
        if let Some(v) = broker_def(syn.name).and_then(|d| d.default) {
            chain.push((syn.name.to_string(), v.to_string(), ConfigSource::Default));
        }
    }
    chain
}

/// The synonyms DescribeConfigs lists for a topic setting: the topic's own
/// override and its primary broker setting only, as Kafka lists them
/// (the fallbacks, e.g. `log.retention.hours` for `retention.ms`, resolve
/// the value but are not shown).
pub fn described_topic_synonyms(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    static_config: &BrokerConfig,
    dynamic: Dynamic<'_>,
) -> Vec<(String, String, ConfigSource)> {
    let primary = def.synonyms.first().map(|s| s.name);
    topic_synonyms(def, overrides, static_config, dynamic)
        .into_iter()
        .filter(|(name, _, _)| name == def.name || Some(name.as_str()) == primary)
        .collect()
}

/// A topic setting's effective value and source, resolved through the
/// synonym chain (broker values are scaled to the topic's unit).
pub fn resolve_topic(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    static_config: &BrokerConfig,
    dynamic: Dynamic<'_>,
) -> Resolved {
    match topic_synonyms(def, overrides, static_config, dynamic)
        .into_iter()
        .next()
    {
        Some((name, value, source)) => Resolved {
            value: Some(scale_synonym(def, &name, value)),
            source,
        },
        None => Resolved {
            value: Some(def.default.to_string()),
            source: ConfigSource::Default,
        },
    }
}

fn scale_synonym(def: &TopicConfigDef, name: &str, value: String) -> String {
    let scale = def
        .synonyms
        .iter()
        .find(|s| s.name == name)
        .map_or(1, |s| s.scale);
    match value.trim().parse::<i64>() {
        Ok(v) if scale != 1 && v >= 0 => v.saturating_mul(scale).to_string(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_precedence() {
        let static_config = BrokerConfig::from_settings([("log.retention.hours", "2")]).unwrap();
        let def = topic_def("retention.ms").unwrap();
        let none = BTreeMap::new();
        let no_dynamic = Dynamic {
            node: &none,
            cluster: &none,
        };
        let r = resolve_topic(def, &none, &static_config, no_dynamic);
        assert_eq!(r.value.as_deref(), Some("7200000"));
        assert_eq!(r.source, ConfigSource::StaticBroker);
        let cluster = BTreeMap::from([("log.retention.ms".to_string(), "5".to_string())]);
        let defaults = Dynamic {
            node: &none,
            cluster: &cluster,
        };
        let r = resolve_topic(def, &none, &static_config, defaults);
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("5"), ConfigSource::DynamicDefaultBroker)
        );
        // A node's own override wins over the cluster-wide default.
        let node = BTreeMap::from([("log.retention.ms".to_string(), "6".to_string())]);
        let both = Dynamic {
            node: &node,
            cluster: &cluster,
        };
        let r = resolve_topic(def, &none, &static_config, both);
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("6"), ConfigSource::DynamicBroker)
        );
        let topic = BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]);
        let r = resolve_topic(def, &topic, &static_config, both);
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("-1"), ConfigSource::DynamicTopic)
        );
        let r = resolve_topic(
            topic_def("cleanup.policy").unwrap(),
            &none,
            &BrokerConfig::default(),
            no_dynamic,
        );
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("delete"), ConfigSource::Default)
        );
        let r = resolve_topic(
            topic_def("flush.messages").unwrap(),
            &none,
            &BrokerConfig::default(),
            no_dynamic,
        );
        assert_eq!(r.value.as_deref(), Some("1"));
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let err = BrokerConfig::from_settings([("num.partitions", "zero")]).unwrap_err();
        assert!(err.contains("num.partitions"), "{err}");
        let err = BrokerConfig::from_settings([("no.such.thing", "1")]).unwrap_err();
        assert!(err.contains("no.such.thing"), "{err}");
        let err =
            BrokerConfig::from_settings([("log.cleaner.min.cleanable.ratio", "2")]).unwrap_err();
        assert!(err.contains("between 0 and 1"), "{err}");
        assert!(BrokerConfig::from_settings([("listeners", "ssl://x:1")]).is_err());
        assert!(validate(
            "cleanup.policy",
            ConfigType::List,
            Check::ListOf(CLEANUP_POLICIES),
            "compact,delete"
        )
        .is_ok());
        assert!(validate(
            "cleanup.policy",
            ConfigType::List,
            Check::ListOf(CLEANUP_POLICIES),
            "bogus"
        )
        .is_err());
    }

    #[test]
    fn compression_settings_follow_kafka() {
        for codec in ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"] {
            assert!(BrokerConfig::from_settings([("compression.type", codec)]).is_ok());
        }
        assert!(BrokerConfig::from_settings([("compression.type", "none")]).is_err());
        for (level, ok) in [
            ("-1", true),
            ("0", false),
            ("1", true),
            ("9", true),
            ("10", false),
        ] {
            let result = BrokerConfig::from_settings([("compression.gzip.level", level)]);
            assert_eq!(result.is_ok(), ok, "gzip level {level}");
        }
        assert!(BrokerConfig::from_settings([("compression.zstd.level", "-131072")]).is_ok());
        assert!(BrokerConfig::from_settings([("compression.zstd.level", "23")]).is_err());
        assert!(BrokerConfig::from_settings([("compression.lz4.level", "0")]).is_err());
    }

    #[test]
    fn connection_overrides_use_kafkas_syntax() {
        assert_eq!(
            parse_connection_overrides("hostName:100, 127.0.0.1:200,[::1]:3").unwrap(),
            [
                ("hostName".to_string(), 100),
                ("127.0.0.1".to_string(), 200),
                ("::1".to_string(), 3)
            ]
        );
        assert_eq!(parse_connection_overrides("").unwrap(), []);
        for bad in ["host", "host:-1", "host:many", ":5", "a b:1"] {
            assert!(
                BrokerConfig::from_settings([("max.connections.per.ip.overrides", bad)]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn listeners() {
        let c =
            BrokerConfig::from_settings([("listeners", "PLAINTEXT://127.0.0.1:19092")]).unwrap();
        assert_eq!(
            c.listeners().unwrap().clients[0].bind.address(),
            "127.0.0.1:19092"
        );
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// docs/CONFIGURATION.md must list every setting the broker knows.
    #[test]
    fn configuration_doc_lists_every_setting() {
        let doc = include_str!("../../../docs/CONFIGURATION.md");
        for name in BROKER_CONFIGS
            .iter()
            .map(|d| d.name)
            .chain(TOPIC_CONFIGS.iter().map(|d| d.name))
        {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "docs/CONFIGURATION.md lacks {name}"
            );
        }
    }
}
