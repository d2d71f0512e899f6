//! A consumer of manually assigned partitions; the group consumer builds on
//! it.
//!
//! `poll` sends one Fetch per partition leader, decodes the returned batches,
//! skips control batches (transaction markers are never records), records
//! below the position and, with `isolation.level=read_committed`, records of
//! aborted transactions, and advances the position. Out-of-range positions
//! are reset per `auto.offset.reset`. Paused partitions are not fetched.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::batch::BatchHeader;
use sluice_protocol::compression::decode_batches;
use sluice_protocol::control::{marker_of, Marker};
use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use sluice_protocol::kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::records::TimestampType as WireTimestampType;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::accumulator::TopicPartition;
use crate::cluster::{ClientConfig, Cluster, OffsetSpec};
use crate::error::{needs_metadata_refresh, Error, KafkaError, Result};

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    /// An exact offset.
    Offset(i64),
    /// The first record whose timestamp is >= this many ms since the epoch
    /// (the log end when there is none).
    Timestamp(i64),
}

/// What to do when the position is out of range (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// Jump to the log start.
    Earliest,
    /// Jump to the log end.
    Latest,
    /// Return an `OFFSET_OUT_OF_RANGE` error from `poll`.
    None,
}

impl FromStr for OffsetReset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            other => Err(Error::Config(format!(
                "invalid auto.offset.reset '{other}' (expected earliest, latest or none)"
            ))),
        }
    }
}

/// Which records a fetch may return (`isolation.level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, including records of open and
    /// aborted transactions (the Java client's default).
    #[default]
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones),
    /// up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value.
    pub fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }

    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        }
    }
}

impl FromStr for IsolationLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            other => Err(Error::Config(format!(
                "invalid isolation.level '{other}' (expected read_uncommitted or read_committed)"
            ))),
        }
    }
}

/// Consumer settings. Defaults follow the Java client.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Longest time the broker may hold a fetch waiting for `min_bytes`
    /// (`fetch.max.wait.ms`, default 500 ms).
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering (`fetch.min.bytes`,
    /// default 1).
    pub min_bytes: i32,
    /// Upper bound of a fetch response (`fetch.max.bytes`, default 50 MiB).
    pub max_bytes: i32,
    /// Upper bound per partition (`max.partition.fetch.bytes`, default 1 MiB).
    pub partition_max_bytes: i32,
    /// Out-of-range policy (`auto.offset.reset`, default latest).
    pub auto_offset_reset: OffsetReset,
    /// Most records returned by one `poll` (`max.poll.records`, default 500).
    pub max_poll_records: usize,
    /// `isolation.level` (default read_uncommitted, as in the Java client).
    pub isolation_level: IsolationLevel,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            auto_offset_reset: OffsetReset::Latest,
            max_poll_records: 500,
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

/// How a record's timestamp was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch.
    pub timestamp: i64,
    /// Meaning of `timestamp`.
    pub timestamp_type: TimestampType,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A consumer of explicitly assigned partitions.
///
/// ```no_run
/// # async fn demo() -> sluice_client::Result<()> {
/// use std::time::Duration;
/// use sluice_client::{ClientConfig, Consumer, ConsumerConfig, StartOffset};
/// let mut consumer = Consumer::connect(ClientConfig::new("127.0.0.1:9092"), ConsumerConfig::default()).await?;
/// consumer.assign(vec![("orders".to_string(), 0, StartOffset::Earliest)]).await?;
/// for record in consumer.poll(Duration::from_secs(1)).await? {
///     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    /// The next offset to fetch per assigned partition (past any records
    /// still in `buffer`).
    positions: BTreeMap<TopicPartition, i64>,
    paused: BTreeSet<TopicPartition>,
    buffer: VecDeque<ConsumerRecord>,
}

struct PartitionFetch {
    tp: TopicPartition,
    error_code: i16,
    high_watermark: i64,
    records: Option<Bytes>,
    /// With read_committed: the aborted transactions overlapping the
    /// returned records, as (producer id, first offset).
    aborted: Option<Vec<(i64, i64)>>,
}

impl Consumer {
    /// Connects to the cluster and creates a consumer with no assignment.
    pub async fn connect(client: ClientConfig, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer::new(Cluster::connect(client).await?, config))
    }

    /// Creates a consumer on an existing cluster handle.
    pub fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Consumer {
        Consumer {
            cluster,
            config,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            buffer: VecDeque::new(),
        }
    }

    /// Replaces the assignment, resolving each start offset (ListOffsets for
    /// `Earliest`, `Latest` and `Timestamp`).
    pub async fn assign(&mut self, partitions: Vec<(String, i32, StartOffset)>) -> Result<()> {
        let resolved = self.check_and_resolve(&partitions).await?;
        self.positions = resolved.into_iter().collect();
        self.paused.clear();
        self.buffer.clear();
        Ok(())
    }

    /// Adds partitions to the assignment, leaving the others (and their
    /// positions and buffered records) alone: what a cooperative or
    /// KIP-848 rebalance needs.
    pub async fn assign_more(&mut self, partitions: Vec<(String, i32, StartOffset)>) -> Result<()> {
        let resolved = self.check_and_resolve(&partitions).await?;
        self.positions.extend(resolved);
        Ok(())
    }

    /// Removes partitions from the assignment, with their buffered records.
    pub fn unassign(&mut self, partitions: &[(String, i32)]) {
        let gone: BTreeSet<TopicPartition> = partitions
            .iter()
            .map(|(t, p)| TopicPartition {
                topic: t.clone(),
                partition: *p,
            })
            .collect();
        self.positions.retain(|tp, _| !gone.contains(tp));
        self.paused.retain(|tp| !gone.contains(tp));
        self.buffer
            .retain(|r| !gone.contains(&TopicPartition::of(&r.topic, r.partition)));
    }

    /// Stops fetching `partitions` until [`resume`](Self::resume); their
    /// records already fetched are dropped and will be fetched again.
    /// Unassigned partitions are ignored.
    pub fn pause(&mut self, partitions: &[(String, i32)]) {
        for (t, p) in partitions {
            let tp = TopicPartition::of(t, *p);
            if !self.positions.contains_key(&tp) {
                continue;
            }
            if let Some(first) = self.first_buffered(&tp) {
                self.positions.insert(tp.clone(), first);
                self.buffer
                    .retain(|r| !(r.topic == tp.topic && r.partition == tp.partition));
            }
            self.paused.insert(tp);
        }
    }

    /// Fetches paused partitions again.
    pub fn resume(&mut self, partitions: &[(String, i32)]) {
        for (t, p) in partitions {
            self.paused.remove(&TopicPartition::of(t, *p));
        }
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<(String, i32)> {
        self.paused
            .iter()
            .map(|tp| (tp.topic.clone(), tp.partition))
            .collect()
    }

    fn first_buffered(&self, tp: &TopicPartition) -> Option<i64> {
        self.buffer
            .iter()
            .find(|r| r.topic == tp.topic && r.partition == tp.partition)
            .map(|r| r.offset)
    }

    async fn check_and_resolve(
        &self,
        partitions: &[(String, i32, StartOffset)],
    ) -> Result<Vec<(TopicPartition, i64)>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let topics: Vec<String> = partitions.iter().map(|(t, _, _)| t.clone()).collect();
        self.cluster.refresh_metadata(Some(&topics)).await?;
        for (t, p, _) in partitions {
            let tm = self.cluster.topic(t).ok_or_else(|| {
                Error::Kafka(
                    KafkaError::new(codes::UNKNOWN_TOPIC_OR_PARTITION, None)
                        .on(format!("topic '{t}'")),
                )
            })?;
            if !tm.partitions.iter().any(|pi| pi.partition == *p) {
                return Err(Error::Kafka(
                    KafkaError::new(codes::UNKNOWN_TOPIC_OR_PARTITION, None).on(format!("{t}-{p}")),
                ));
            }
        }
        self.resolve(partitions).await
    }

    /// Moves the position of an assigned partition.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: StartOffset) -> Result<()> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        if !self.positions.contains_key(&tp) {
            return Err(Error::Config(format!("{tp} is not assigned")));
        }
        let resolved = self.resolve(&[(topic.to_string(), partition, to)]).await?;
        for (tp, off) in resolved {
            self.positions.insert(tp, off);
        }
        let keep = |r: &ConsumerRecord| !(r.topic == topic && r.partition == partition);
        self.buffer.retain(keep);
        Ok(())
    }

    /// The next offset to be returned for a partition: the first record
    /// fetched but not yet returned by `poll`, else the next to fetch. This
    /// is what a group commits.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        let tp = TopicPartition::of(topic, partition);
        let fetch_position = self.positions.get(&tp).copied()?;
        Some(self.first_buffered(&tp).unwrap_or(fetch_position))
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions
            .keys()
            .map(|tp| (tp.topic.clone(), tp.partition))
            .collect()
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    async fn resolve(
        &self,
        partitions: &[(String, i32, StartOffset)],
    ) -> Result<Vec<(TopicPartition, i64)>> {
        let mut queries = Vec::new();
        let mut out = Vec::new();
        for (t, p, start) in partitions {
            let tp = TopicPartition {
                topic: t.clone(),
                partition: *p,
            };
            let spec = match start {
                StartOffset::Offset(o) => {
                    out.push((tp, *o));
                    continue;
                }
                StartOffset::Earliest => OffsetSpec::Earliest,
                StartOffset::Latest => OffsetSpec::Latest,
                StartOffset::Timestamp(ts) => OffsetSpec::Timestamp(*ts),
            };
            queries.push((tp, spec));
        }
        if queries.is_empty() {
            return Ok(out);
        }
        let args: Vec<(String, i32, OffsetSpec)> = queries
            .iter()
            .map(|(tp, s)| (tp.topic.clone(), tp.partition, *s))
            .collect();
        let listed = self
            .cluster
            .list_offsets_isolated(&args, self.config.isolation_level)
            .await?;
        let mut latest_needed = Vec::new();
        for ((tp, spec), l) in queries.into_iter().zip(listed) {
            if l.offset < 0 && matches!(spec, OffsetSpec::Timestamp(_)) {
                latest_needed.push(tp);
            } else {
                out.push((tp, l.offset));
            }
        }
        if !latest_needed.is_empty() {
            let args: Vec<_> = latest_needed
                .iter()
                .map(|tp| (tp.topic.clone(), tp.partition, OffsetSpec::Latest))
                .collect();
            let listed = self
                .cluster
                .list_offsets_isolated(&args, self.config.isolation_level)
                .await?;
            out.extend(
                latest_needed
                    .into_iter()
                    .zip(listed.into_iter().map(|l| l.offset)),
            );
        }
        Ok(out)
    }

    /// Returns records from the assigned partitions, waiting up to `timeout`
    /// for some to arrive. An empty vector means none arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buffer.is_empty() {
                let n = self.buffer.len().min(self.config.max_poll_records.max(1));
                return Ok(self.buffer.drain(..n).collect());
            }
            if self.positions.len() == self.paused.len() {
                tokio::time::sleep_until(deadline.into()).await;
                return Ok(Vec::new());
            }
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            self.fetch_round(remaining.min(self.config.max_wait))
                .await?;
            if self.buffer.is_empty() && Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn fetch_round(&mut self, max_wait: Duration) -> Result<()> {
        // Group partitions by leader.
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        let mut missing = Vec::new();
        for (tp, &pos) in &self.positions {
            if self.paused.contains(tp) {
                continue;
            }
            match self.cluster.leader(&tp.topic, tp.partition) {
                Some(l) => by_leader.entry(l).or_default().push((tp.clone(), pos)),
                None => missing.push(tp.topic.clone()),
            }
        }
        if !missing.is_empty() {
            missing.dedup();
            let _ = self.cluster.refresh_metadata(Some(&missing)).await;
            if by_leader.is_empty() {
                tokio::time::sleep(Duration::from_millis(100).min(max_wait)).await;
                return Ok(());
            }
        }
        let mut set = JoinSet::new();
        for (leader, parts) in by_leader {
            let cluster = self.cluster.clone();
            let config = self.config.clone();
            set.spawn(fetch_from(cluster, config, leader, parts, max_wait));
        }
        let mut fetched = Vec::new();
        let mut refresh = Vec::new();
        let mut first_err = None;
        while let Some(res) = set.join_next().await {
            match res {
                Ok(Ok(parts)) => fetched.extend(parts),
                Ok(Err(e)) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed, will retry");
                    refresh.extend(self.positions.keys().map(|tp| tp.topic.clone()));
                }
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(e) => {
                    first_err = first_err.or(Some(Error::Protocol(format!("fetch task: {e}"))))
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut reset = Vec::new();
        for pf in fetched {
            let Some(&pos) = self.positions.get(&pf.tp) else {
                continue;
            };
            match pf.error_code {
                codes::NONE => {
                    let (records, next) = decode_partition(&pf.tp, pf.records, pos, pf.aborted)?;
                    let _ = pf.high_watermark;
                    self.positions.insert(pf.tp, next);
                    self.buffer.extend(records);
                }
                codes::OFFSET_OUT_OF_RANGE => match self.config.auto_offset_reset {
                    OffsetReset::Earliest => reset.push((pf.tp, OffsetSpec::Earliest)),
                    OffsetReset::Latest => reset.push((pf.tp, OffsetSpec::Latest)),
                    OffsetReset::None => {
                        return Err(Error::Kafka(
                            KafkaError::new(
                                codes::OFFSET_OUT_OF_RANGE,
                                Some(format!(
                                    "offset {pos} is out of range and auto.offset.reset is none"
                                )),
                            )
                            .on(pf.tp.to_string()),
                        ))
                    }
                },
                code if needs_metadata_refresh(code) || crate::error::is_retriable_code(code) => {
                    refresh.push(pf.tp.topic.clone());
                }
                code => {
                    return Err(Error::Kafka(
                        KafkaError::new(code, None).on(pf.tp.to_string()),
                    ));
                }
            }
        }
        if !reset.is_empty() {
            let args: Vec<_> = reset
                .iter()
                .map(|(tp, s)| (tp.topic.clone(), tp.partition, *s))
                .collect();
            let listed = self
                .cluster
                .list_offsets_isolated(&args, self.config.isolation_level)
                .await?;
            for ((tp, _), l) in reset.into_iter().zip(listed) {
                tracing::info!(%tp, offset = l.offset, "position out of range; reset");
                self.positions.insert(tp, l.offset);
            }
        }
        if !refresh.is_empty() {
            refresh.sort();
            refresh.dedup();
            let _ = self.cluster.refresh_metadata(Some(&refresh)).await;
            if self.buffer.is_empty() {
                tokio::time::sleep(Duration::from_millis(100).min(max_wait)).await;
            }
        }
        Ok(())
    }
}

async fn fetch_from(
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    leader: i32,
    parts: Vec<(TopicPartition, i64)>,
    max_wait: Duration,
) -> Result<Vec<PartitionFetch>> {
    let conn = cluster.broker_connection(leader).await?;
    let negotiated =
        conn.negotiated_version(ApiKey::Fetch)
            .ok_or_else(|| Error::UnsupportedVersion {
                addr: conn.addr().to_string(),
                api: "Fetch".into(),
            })?;
    // Fetch v13+ names topics by id; fall back to v12 when an id is unknown.
    let mut ids: HashMap<String, Uuid> = HashMap::new();
    for (tp, _) in &parts {
        let id = cluster
            .topic(&tp.topic)
            .map(|t| Uuid::from_bytes(t.topic_id))
            .unwrap_or(Uuid::nil());
        ids.insert(tp.topic.clone(), id);
    }
    let version = if negotiated >= 13 && ids.values().any(|id| id.is_nil()) {
        12
    } else {
        negotiated
    };
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, pos) in &parts {
        topics.entry(tp.topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*pos)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(config.partition_max_bytes),
        );
    }
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation_level.as_i8())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic_id(ids[&t])
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let timeout = cluster.config().request_timeout + max_wait;
    let resp: FetchResponse = conn.call_version(req, version, timeout).await?;
    if resp.error_code != codes::NONE {
        return Err(Error::Kafka(
            KafkaError::new(resp.error_code, None).on(format!("fetch from broker {leader}")),
        ));
    }
    let by_id: HashMap<Uuid, String> = ids.into_iter().map(|(n, id)| (id, n)).collect();
    let mut out = Vec::new();
    for t in resp.responses {
        let name = if version >= 13 {
            match by_id.get(&t.topic_id) {
                Some(n) => n.clone(),
                None => continue,
            }
        } else {
            t.topic.0.to_string()
        };
        for p in t.partitions {
            out.push(PartitionFetch {
                tp: TopicPartition {
                    topic: name.clone(),
                    partition: p.partition_index,
                },
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                records: p.records,
                aborted: (config.isolation_level == IsolationLevel::ReadCommitted).then(|| {
                    p.aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect()
                }),
            });
        }
    }
    Ok(out)
}

/// The read_committed filter, the way the Java client and librdkafka do
/// it: a producer's transactional batches are dropped from the first offset
/// of its aborted transaction until that producer's abort marker.
struct AbortedFilter {
    /// Aborted transactions not reached yet, latest first offset first.
    upcoming: Vec<(i64, i64)>,
    /// Producers inside an aborted transaction at the current batch.
    aborting: HashSet<i64>,
}

impl AbortedFilter {
    fn new(mut aborted: Vec<(i64, i64)>) -> Self {
        aborted.sort_by_key(|&(_, first_offset)| std::cmp::Reverse(first_offset));
        AbortedFilter {
            upcoming: aborted,
            aborting: HashSet::new(),
        }
    }

    /// Whether the records of `batch` belong to an aborted transaction.
    fn is_aborted(&mut self, header: &BatchHeader<'_>, batch: &[u8]) -> bool {
        let producer = header.producer_id();
        if producer < 0 {
            return false;
        }
        while let Some(&(pid, first_offset)) = self.upcoming.last() {
            if first_offset > header.last_offset() {
                break;
            }
            self.aborting.insert(pid);
            self.upcoming.pop();
        }
        if header.is_control() {
            if marker_of(batch) == Some(Marker::Abort) {
                self.aborting.remove(&producer);
            }
            return false;
        }
        header.is_transactional() && self.aborting.contains(&producer)
    }
}

/// Decodes a partition's record set: skips control batches, records below
/// `position` and, when `aborted` is given (read_committed), records of
/// aborted transactions; ignores a trailing partial batch, and returns the
/// records and the next position.
pub(crate) fn decode_partition(
    tp: &TopicPartition,
    records: Option<Bytes>,
    position: i64,
    aborted: Option<Vec<(i64, i64)>>,
) -> Result<(Vec<ConsumerRecord>, i64)> {
    let mut next = position;
    let mut out = Vec::new();
    let Some(mut data) = records else {
        return Ok((out, next));
    };
    let mut filter = aborted.map(AbortedFilter::new);
    while !data.is_empty() {
        let header = match BatchHeader::parse(&data) {
            Ok(h) => h,
            // A batch cut short by max bytes: the rest comes next fetch.
            Err(sluice_protocol::batch::BatchError::Truncated { .. }) => break,
            Err(e) => return Err(Error::Protocol(format!("{tp}: {e}"))),
        };
        let len = header.total_len();
        if len > data.len() {
            break;
        }
        let last = header.last_offset();
        // The filter must see control batches too: abort markers end a
        // producer's aborted range.
        let aborted = filter
            .as_mut()
            .is_some_and(|f| f.is_aborted(&header, &data[..len]));
        let skip = header.is_control() || aborted;
        let log_append = header.is_log_append_time();
        let max_ts = header.max_timestamp();
        let batch = data.split_to(len);
        if last < next {
            continue;
        }
        if !skip {
            let decoded = decode_batches(batch)
                .map_err(|e| Error::Protocol(format!("{tp}: cannot decode batch: {e}")))?;
            for r in decoded {
                if r.offset < next || r.control {
                    continue;
                }
                out.push(ConsumerRecord {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: r.offset,
                    timestamp: if log_append { max_ts } else { r.timestamp },
                    timestamp_type: if log_append
                        || r.timestamp_type == WireTimestampType::LogAppend
                    {
                        TimestampType::LogAppendTime
                    } else {
                        TimestampType::CreateTime
                    },
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                });
            }
        }
        next = next.max(last + 1);
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use sluice_protocol::compression::encode_batch;
    use sluice_protocol::kafka_protocol::records::{Compression, Record};

    fn batch(base: i64, n: i64, codec: Compression) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: WireTimestampType::Creation,
                offset: base + i,
                sequence: (base + i) as i32 - 1,
                timestamp: 1000 + base + i,
                key: None,
                value: Some(Bytes::from(format!("v{}", base + i))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, &recs, codec).unwrap();
        buf.freeze()
    }

    fn tp() -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: 0,
        }
    }

    #[test]
    fn skips_records_below_position_and_advances() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 5, Compression::None));
        data.extend_from_slice(&batch(5, 5, Compression::Lz4));
        let (recs, next) = decode_partition(&tp(), Some(data.freeze()), 3, None).unwrap();
        assert_eq!(next, 10);
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(recs[0].value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(recs[0].timestamp, 1003);
        assert_eq!(recs[0].timestamp_type, TimestampType::CreateTime);
    }

    #[test]
    fn ignores_trailing_partial_batch() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 3, Compression::None));
        let second = batch(3, 3, Compression::Gzip);
        data.extend_from_slice(&second[..second.len() - 7]);
        let (recs, next) = decode_partition(&tp(), Some(data.freeze()), 0, None).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(next, 3);
        let (recs, next) =
            decode_partition(&tp(), Some(Bytes::from_static(&[0, 0, 0])), 7, None).unwrap();
        assert!(recs.is_empty());
        assert_eq!(next, 7);
    }

    #[test]
    fn control_batches_are_skipped_but_advance_position() {
        let mut b = BytesMut::from(&batch(0, 2, Compression::None)[..]);
        // Set the control bit (attributes at byte 21..23) and fix the CRC.
        let attrs = i16::from_be_bytes([b[21], b[22]]) | 0x20;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        let crc = crc32c_of(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut data = BytesMut::new();
        data.extend_from_slice(&b);
        data.extend_from_slice(&batch(2, 1, Compression::None));
        let (recs, next) = decode_partition(&tp(), Some(data.freeze()), 0, None).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 2);
        assert_eq!(next, 3);
    }

    /// A transactional batch of `n` records of `producer` at `base`.
    fn txn_batch(producer: i64, base: i64, n: i64) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: true,
                producer_id: producer,
                producer_epoch: 0,
                sequence: (base + i) as i32,
                ..sluice_protocol::compression::plain_record(
                    base + i,
                    1000,
                    None,
                    Some(Bytes::from(format!("v{}", base + i))),
                )
            })
            .collect();
        let mut buf = BytesMut::new();
        encode_batch(&mut buf, &recs, Compression::None).unwrap();
        buf.freeze()
    }

    fn marker(marker: Marker, producer: i64, offset: i64) -> Bytes {
        let mut b = sluice_protocol::control::marker_batch(marker, producer, 0, 0, 1000).unwrap();
        sluice_protocol::batch::BatchMut::new(&mut b).set_base_offset(offset);
        b.freeze()
    }

    #[test]
    fn read_committed_drops_aborted_ranges_until_the_abort_marker() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&txn_batch(1, 0, 2)); // aborted below
        data.extend_from_slice(&txn_batch(2, 2, 1)); // committed below
        data.extend_from_slice(&marker(Marker::Abort, 1, 3));
        data.extend_from_slice(&txn_batch(1, 4, 1)); // producer 1's next one
        data.extend_from_slice(&marker(Marker::Commit, 2, 5));
        data.extend_from_slice(&marker(Marker::Commit, 1, 6));
        let data = data.freeze();
        let offsets = |aborted| {
            let (recs, next) = decode_partition(&tp(), Some(data.clone()), 0, aborted).unwrap();
            assert_eq!(next, 7);
            recs.iter().map(|r| r.offset).collect::<Vec<_>>()
        };
        assert_eq!(offsets(Some(vec![(1, 0)])), vec![2, 4]);
        // read_uncommitted: every data record, never a marker.
        assert_eq!(offsets(None), vec![0, 1, 2, 4]);
    }

    fn crc32c_of(data: &[u8]) -> u32 {
        // Bitwise CRC32C (Castagnoli), enough for a test.
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn parses_offset_reset() {
        assert_eq!(
            "earliest".parse::<OffsetReset>().unwrap(),
            OffsetReset::Earliest
        );
        assert!("first".parse::<OffsetReset>().is_err());
    }
}
