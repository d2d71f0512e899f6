//! The producer: `send` hands a record to a background sender task and
//! returns a future for its delivery. The sender task partitions records,
//! accumulates them into batches, sends ready batches to partition leaders
//! (up to `max.in.flight.requests.per.connection` requests per broker) and
//! retries retriable failures with backoff until `delivery.timeout.ms`.
//!
//! Idempotence (the default) stamps every batch with the producer id and
//! epoch from InitProducerId and a per-partition sequence number, so the
//! broker drops duplicates of retried batches and refuses gaps. With a
//! `transactional_id` the producer also runs transactions (Kafka's
//! `init_transactions`/`begin`/`commit`/`abort` model); the coordinator side
//! is in [`crate::transaction`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use sluice_protocol::kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol::records::Compression;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::accumulator::{Accumulator, NewRecord, ProducerBatch, Sequenced, TopicPartition};
use crate::cluster::{ClientConfig, Cluster, TopicMetadata};
use crate::connection::TV1_PRODUCE_MAX;
use crate::error::{is_fencing_code, needs_metadata_refresh, Error, KafkaError, Result};
use crate::group::GroupOffset;
use crate::partitioner::{partition_for_key, StickyPartitioner};
use crate::transaction::{
    ConsumerGroupMetadata, Coordinators, ProducerIdentity, SharedState, TxnPhase,
};

/// Acknowledgement level (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget; the broker sends no response and offsets
    /// are reported as -1.
    None,
    /// `acks=1`: the leader has written the records.
    Leader,
    /// `acks=all` (-1): all in-sync replicas have the records.
    All,
}

impl Acks {
    /// The wire value.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::Config(format!(
                "invalid acks '{other}' (expected 0, 1 or all)"
            ))),
        }
    }
}

/// Compression codec (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (frame format).
    Lz4,
    /// Zstandard.
    Zstd,
}

impl CompressionType {
    pub(crate) fn codec(self) -> Compression {
        match self {
            CompressionType::None => Compression::None,
            CompressionType::Gzip => Compression::Gzip,
            CompressionType::Snappy => Compression::Snappy,
            CompressionType::Lz4 => Compression::Lz4,
            CompressionType::Zstd => Compression::Zstd,
        }
    }

    /// The name Kafka uses.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

impl FromStr for CompressionType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => CompressionType::None,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            other => {
                return Err(Error::Config(format!(
                    "invalid compression type '{other}' (expected none, gzip, snappy, lz4 or zstd)"
                )))
            }
        })
    }
}

/// Producer settings. Defaults follow the Java client, except `batch_size`.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Upper bound of a batch in bytes (`batch.size`). The default,
    /// 1,000,000, is librdkafka's rather than the Java client's 16384: a
    /// Sluice broker syncs every batch before acknowledging it, and 16 KiB
    /// batches of 1 KiB records make it sync four times as often for a
    /// quarter of the throughput (docs/PERFORMANCE.md). `linger` still
    /// bounds how long a batch waits to fill.
    pub batch_size: usize,
    /// How long to wait for more records before sending a batch that is not
    /// full (`linger.ms`, default 5 ms).
    pub linger: Duration,
    /// Acknowledgement level (`acks`, default all).
    pub acks: Acks,
    /// Batch compression (`compression.type`, default none).
    pub compression: CompressionType,
    /// How many times a failed batch is retried (`retries`, default
    /// unlimited, bounded by `delivery_timeout`). See `max_in_flight` for
    /// what retries mean for record order.
    pub retries: u32,
    /// Pause before retrying a batch (`retry.backoff.ms`, default 100 ms).
    pub retry_backoff: Duration,
    /// Upper bound on the time from `send` to success or failure
    /// (`delivery.timeout.ms`, default 120 s).
    pub delivery_timeout: Duration,
    /// Unacknowledged produce requests per broker
    /// (`max.in.flight.requests.per.connection`, default 5).
    ///
    /// Ordering: records sent to one partition are appended to its log in
    /// send order as long as no batch has to be retried; this holds also
    /// while the topic's metadata is still being fetched. With idempotence
    /// (the default, at most 5 in flight) order holds across retries too:
    /// the broker refuses a batch whose predecessor is missing, and the
    /// producer retries it after the predecessor. Without idempotence and
    /// with a value greater than 1, a failed batch may be overtaken by a
    /// later batch of the same partition that was already in flight and
    /// succeeds (the Java client's caveat for `enable.idempotence=false`);
    /// set it to 1 to keep send order across retries then: at most one
    /// batch per partition is in flight, and a retried batch is always sent
    /// before any later one of its partition, even when the partition's
    /// leader moves meanwhile.
    pub max_in_flight: usize,
    /// Broker-side timeout for acknowledgements (sent as the produce
    /// request's `timeout_ms`; default 30 s).
    pub ack_timeout: Duration,
    /// How long to wait for metadata of an unknown topic before failing its
    /// records, and how long transactional calls retry the coordinator
    /// (`max.block.ms`, default 60 s).
    pub max_block: Duration,
    /// Exactly-once delivery per partition: the broker drops duplicates of
    /// retried batches and keeps send order (`enable.idempotence`, default
    /// true as in Kafka 3+). Needs `acks=all`, `retries > 0` and at most 5
    /// requests in flight; turn it off to use `acks` 0 or 1.
    pub enable_idempotence: bool,
    /// Makes this a transactional producer (`transactional.id`): call
    /// [`Producer::init_transactions`] once, then send inside
    /// `begin_transaction`/`commit_transaction`. Needs idempotence.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open before
    /// aborting it (`transaction.timeout.ms`, default 60 s).
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 1_000_000,
            linger: Duration::from_millis(5),
            acks: Acks::All,
            compression: CompressionType::None,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(120),
            max_in_flight: 5,
            ack_timeout: Duration::from_secs(30),
            max_block: Duration::from_secs(60),
            enable_idempotence: true,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition; when `None` the key's murmur2 hash picks it, or
    /// the sticky partitioner when there is no key either.
    pub partition: Option<i32>,
    /// Record key.
    pub key: Option<Bytes>,
    /// Record value.
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value only.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }
}

/// Where a record ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition; -1 with `acks=0`.
    pub offset: i64,
    /// The record's timestamp (the broker's LogAppendTime when the topic
    /// uses it).
    pub timestamp: i64,
}

type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;

/// How a record's outcome is reported.
pub(crate) enum Completion {
    Oneshot(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Callback),
}

impl Completion {
    pub(crate) fn complete(self, res: Result<RecordMetadata>) {
        match self {
            Completion::Oneshot(tx) => {
                let _ = tx.send(res);
            }
            Completion::Callback(cb) => cb(res),
        }
    }
}

/// The outcome of one `send`; resolves when the record is acknowledged or has
/// failed for good. Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(res)) => Poll::Ready(res),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

enum Command {
    Send(ProducerRecord, Completion),
    Flush(oneshot::Sender<()>),
    /// Drop every unsent record of the aborting transaction, then answer
    /// once nothing is in flight any more.
    AbortUnsent(oneshot::Sender<()>),
}

enum Event {
    Metadata(Vec<String>),
    /// A non-transactional producer's InitProducerId finished.
    ProducerId(Result<ProducerIdentity>),
    /// AddPartitionsToTxn finished.
    PartitionsAdded {
        partitions: Vec<TopicPartition>,
        result: Result<()>,
    },
    Produced {
        broker: i32,
        batches: Vec<ProducerBatch>,
        result: Result<Option<ProduceResponse>>,
    },
}

/// An asynchronous, batching Kafka producer.
///
/// ```no_run
/// # async fn demo() -> sluice_client::Result<()> {
/// use sluice_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
/// let producer = Producer::connect(ClientConfig::new("127.0.0.1:9092"), ProducerConfig::default()).await?;
/// let delivery = producer.send(ProducerRecord::new("orders", "hello").with_key("k1"));
/// let md = delivery.await?;
/// println!("written at {}-{}@{}", md.topic, md.partition, md.offset);
/// producer.close().await;
/// # Ok(()) }
/// ```
pub struct Producer {
    tx: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
    cluster: Arc<Cluster>,
    transactional: bool,
    shared: Arc<Mutex<SharedState>>,
    coordinators: Arc<Coordinators>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects to the cluster and starts a producer.
    pub async fn connect(client: ClientConfig, config: ProducerConfig) -> Result<Producer> {
        let cluster = Cluster::connect(client).await?;
        Producer::new(cluster, config)
    }

    /// Starts a producer on an existing cluster handle.
    pub fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Producer> {
        if config.batch_size == 0 {
            return Err(Error::Config("batch.size must be positive".into()));
        }
        if config.max_in_flight == 0 {
            return Err(Error::Config(
                "max.in.flight.requests.per.connection must be positive".into(),
            ));
        }
        if config.transactional_id.as_deref() == Some("") {
            return Err(Error::Config("transactional.id must not be empty".into()));
        }
        if config.transactional_id.is_some() && !config.enable_idempotence {
            return Err(Error::Config(
                "transactional.id needs enable.idempotence=true".into(),
            ));
        }
        if config.enable_idempotence {
            if config.acks != Acks::All {
                return Err(Error::Config(
                    "enable.idempotence needs acks=all (disable idempotence to use acks 0 or 1)"
                        .into(),
                ));
            }
            if config.max_in_flight > 5 || config.retries == 0 {
                return Err(Error::Config(
                    "enable.idempotence needs max.in.flight.requests.per.connection <= 5 and retries > 0"
                        .into(),
                ));
            }
        }
        let shared = Arc::new(Mutex::new(SharedState::new()));
        let coordinators = Arc::new(Coordinators::new(
            cluster.clone(),
            config.transactional_id.clone(),
            config.transaction_timeout,
            config.max_block,
            config.retry_backoff,
        ));
        let transactional = config.transactional_id.is_some();
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::unbounded_channel();
        let sender = Sender::new(
            cluster.clone(),
            config,
            etx,
            shared.clone(),
            coordinators.clone(),
        );
        let task = tokio::spawn(sender.run(rx, erx));
        Ok(Producer {
            tx,
            task: Mutex::new(Some(task)),
            cluster,
            transactional,
            shared,
            coordinators,
        })
    }

    /// The cluster handle (metadata, connections) this producer uses.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Queues a record and returns a future for its delivery. The record is
    /// sent when its batch is full or `linger` has passed; awaiting the
    /// future is optional.
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.admit_send() {
            let _ = tx.send(Err(e));
            return DeliveryFuture { rx };
        }
        // If the sender task is gone the command (and `tx`) is dropped and
        // the future resolves to `Error::Closed`.
        let _ = self.tx.send(Command::Send(record, Completion::Oneshot(tx)));
        DeliveryFuture { rx }
    }

    /// Queues a record; `callback` runs on the producer's sender task with
    /// the outcome. Keep it short and non-blocking.
    pub fn send_with_callback<F>(&self, record: ProducerRecord, callback: F)
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        if let Err(e) = self.admit_send() {
            callback(Err(e));
            return;
        }
        if let Err(mpsc::error::SendError(Command::Send(_, c))) = self.tx.send(Command::Send(
            record,
            Completion::Callback(Box::new(callback)),
        )) {
            c.complete(Err(Error::Closed));
        }
    }

    /// Sends everything queued so far without waiting for `linger` and waits
    /// until all of it has been acknowledged or has failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then stops the sender task. Later sends fail with
    /// [`Error::Closed`].
    pub async fn close(&self) {
        self.flush().await;
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Producer {
    fn state(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn require_transactional(&self) -> Result<()> {
        if self.transactional {
            Ok(())
        } else {
            Err(Error::TransactionState(
                "the producer has no transactional_id".into(),
            ))
        }
    }

    /// A transactional producer sends only inside a transaction.
    fn admit_send(&self) -> Result<()> {
        if !self.transactional {
            return Ok(());
        }
        let state = self.state();
        match &state.phase {
            TxnPhase::InTransaction => Ok(()),
            _ => Err(state.phase_error().unwrap_or_else(|| {
                Error::TransactionState(
                    "a transactional producer sends only inside a transaction (call begin_transaction first)"
                        .into(),
                )
            })),
        }
    }

    /// Registers the producer's transactional id with its coordinator
    /// (InitProducerId): gets the producer id and a new epoch, which fences
    /// any older producer with the same transactional id and aborts a
    /// transaction it left open. Call once, before the first transaction.
    pub async fn init_transactions(&self) -> Result<()> {
        self.require_transactional()?;
        match &self.state().phase {
            TxnPhase::Uninitialized => {}
            TxnPhase::Fatal(e) => return Err(e.clone()),
            _ => {
                return Err(Error::TransactionState(
                    "init_transactions was already called".into(),
                ))
            }
        }
        let initialized = async {
            let identity = self.coordinators.init_producer_id(None).await?;
            let tv2 = self.coordinators.transactions_v2().await?;
            Ok::<_, Error>((identity, tv2))
        }
        .await;
        match initialized {
            Ok((identity, tv2)) => {
                let mut state = self.state();
                state.identity = Some(identity);
                state.tv2 = tv2;
                state.phase = TxnPhase::Ready;
                Ok(())
            }
            Err(e) => {
                if matches!(e, Error::Fenced(_)) {
                    self.state().fail_transaction(e.clone());
                }
                Err(e)
            }
        }
    }

    /// The producer id and epoch batches are written with, once known.
    /// With transactions v2 the epoch moves on with every commit and abort.
    pub fn transactional_identity(&self) -> Option<(i64, i16)> {
        self.state().identity.map(|i| (i.id, i.epoch))
    }

    /// Whether this transactional producer uses transactions v2 (KIP-890
    /// part 2), which `init_transactions` decides from the coordinator's
    /// finalized `transaction.version`.
    pub fn uses_transactions_v2(&self) -> bool {
        self.state().tv2
    }

    /// Opens a transaction: records sent from now on are committed or
    /// aborted together.
    pub fn begin_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let mut state = self.state();
        match &state.phase {
            TxnPhase::Ready => {
                state.phase = TxnPhase::InTransaction;
                Ok(())
            }
            TxnPhase::Uninitialized => Err(Error::TransactionState(
                "call init_transactions before begin_transaction".into(),
            )),
            TxnPhase::Fatal(e) => Err(e.clone()),
            _ => Err(Error::TransactionState(
                "a transaction is already open".into(),
            )),
        }
    }

    /// The identity of the open transaction, or why there is none.
    fn open_transaction(&self) -> Result<ProducerIdentity> {
        self.require_transactional()?;
        let state = self.state();
        if let Some(e) = state.phase_error() {
            return Err(e);
        }
        match (&state.phase, state.identity) {
            (TxnPhase::InTransaction, Some(identity)) => Ok(identity),
            _ => Err(Error::TransactionState("no transaction is open".into())),
        }
    }

    /// Makes `offsets` the committed offsets of `group` if, and only if, the
    /// open transaction commits (consume-transform-produce): AddOffsetsToTxn
    /// at the transaction coordinator, then TxnOffsetCommit at the group's
    /// coordinator. An error makes the transaction abort-only.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[GroupOffset],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let identity = self.open_transaction()?;
        let tv2 = self.state().tv2;
        let result = async {
            if !tv2 {
                self.coordinators
                    .add_offsets(identity, &group.group_id)
                    .await?;
            }
            // With transactions v2 the commit itself may add the partition.
            self.state().coordinator_involved = true;
            self.coordinators
                .txn_offset_commit(identity, group, offsets, tv2)
                .await
        }
        .await;
        if let Err(e) = &result {
            self.state().fail_transaction(e.clone());
        }
        result
    }

    /// Sends every record of the transaction, then commits it (EndTxn). If
    /// a record or request of the transaction failed, this returns
    /// [`Error::AbortableTransaction`] and the transaction must be aborted;
    /// after a timeout it may be called again.
    pub async fn commit_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let identity = {
            let mut state = self.state();
            if let Some(e) = state.phase_error() {
                return Err(e);
            }
            match (&state.phase, state.identity) {
                (TxnPhase::InTransaction | TxnPhase::Committing, Some(identity)) => {
                    state.phase = TxnPhase::Committing;
                    identity
                }
                _ => return Err(Error::TransactionState("no transaction is open".into())),
            }
        };
        self.flush().await;
        let (involved, tv2) = {
            let state = self.state();
            if let Some(e) = state.phase_error() {
                return Err(e);
            }
            (state.coordinator_involved, state.tv2)
        };
        let mut next = None;
        if involved {
            match self.coordinators.end_txn(identity, true, tv2).await {
                Ok(identity) => next = identity,
                Err(e) => {
                    // A timeout leaves the outcome open: committing again is
                    // allowed. Anything else decides the transaction's fate.
                    if !e.is_retriable() {
                        self.state().fail_transaction(e.clone());
                        return Err(self.state().phase_error().unwrap_or(e));
                    }
                    return Err(e);
                }
            }
        }
        let mut state = self.state();
        if let Some(next) = next {
            // Transactions v2: the next transaction runs at the bumped epoch
            // (or new id), whose sequence numbers start at 0.
            state.identity = Some(next);
        }
        state.end_transaction();
        Ok(())
    }

    /// Aborts the open transaction: unsent records fail with
    /// [`Error::TransactionAborted`], and once nothing is in flight the
    /// coordinator aborts what was written (EndTxn). If records failed in
    /// the transaction, the producer's epoch is bumped so that sequence
    /// numbers start afresh.
    pub async fn abort_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let identity = {
            let mut state = self.state();
            match (&state.phase, state.identity) {
                (TxnPhase::Fatal(e), _) => return Err(e.clone()),
                (
                    TxnPhase::InTransaction
                    | TxnPhase::Committing
                    | TxnPhase::Aborting
                    | TxnPhase::Abortable(_),
                    Some(identity),
                ) => {
                    state.phase = TxnPhase::Aborting;
                    identity
                }
                _ => return Err(Error::TransactionState("no transaction is open".into())),
            }
        };
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::AbortUnsent(tx)).is_ok() {
            let _ = rx.await;
        }
        let (involved, unresolved, tv2) = {
            let state = self.state();
            (
                state.coordinator_involved,
                state.sequences_unresolved,
                state.tv2,
            )
        };
        let fenced = |e: Error| {
            if matches!(e, Error::Fenced(_)) {
                self.state().fail_transaction(e.clone());
            }
            e
        };
        let mut next = None;
        if involved {
            next = self
                .coordinators
                .end_txn(identity, false, tv2)
                .await
                .map_err(fenced)?;
        }
        if let Some(next) = next {
            // Transactions v2: the abort bumped the epoch, so sequence
            // numbers start afresh without an InitProducerId.
            let mut state = self.state();
            state.identity = Some(next);
            state.sequences_unresolved = false;
        } else if unresolved {
            let bumped = self
                .coordinators
                .init_producer_id(Some(identity))
                .await
                .map_err(fenced)?;
            let mut state = self.state();
            state.identity = Some(bumped);
            state.sequences_unresolved = false;
        }
        self.state().end_transaction();
        Ok(())
    }
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 as Kafka's
/// sequences do.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Error code, message, base offset, log append time.
type PartitionResult = (i16, Option<String>, i64, i64);

struct Waiting {
    record: ProducerRecord,
    completion: Completion,
    since: Instant,
}

struct Sender {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    acc: Accumulator,
    sticky: StickyPartitioner,
    /// Records whose topic metadata is not known yet, by topic.
    waiting: HashMap<String, Vec<Waiting>>,
    refreshing: HashSet<String>,
    in_flight: HashMap<i32, usize>,
    /// With `max_in_flight == 1`: partitions that have a batch in flight
    /// and so must not send another one yet (Kafka's
    /// `guaranteeMessageOrder`). Empty otherwise.
    muted: HashSet<TopicPartition>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    /// Per broker, the queue of the task that sends its produce requests.
    dispatchers: HashMap<i32, mpsc::UnboundedSender<ProduceJob>>,
    events: mpsc::UnboundedSender<Event>,
    shared: Arc<Mutex<SharedState>>,
    coordinators: Arc<Coordinators>,
    transactional: bool,
    /// Next sequence number per partition under `sequences_for`.
    sequences: HashMap<TopicPartition, i32>,
    sequences_for: Option<ProducerIdentity>,
    /// Base sequences of batches sent under `sequences_for` and not yet
    /// acknowledged or failed: OUT_OF_ORDER_SEQUENCE_NUMBER for a batch
    /// behind one of these only means its predecessor is being retried.
    unacked: HashMap<TopicPartition, BTreeSet<i32>>,
    /// A non-transactional InitProducerId is running.
    initializing: bool,
    /// A sequenced batch failed for good (a gap the broker would refuse):
    /// bump the epoch once nothing is in flight.
    identity_stale: bool,
    /// Partitions to add to the transaction with the next
    /// AddPartitionsToTxn.
    to_add: BTreeSet<TopicPartition>,
    /// An AddPartitionsToTxn is running.
    adding: bool,
}

impl Sender {
    fn new(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        events: mpsc::UnboundedSender<Event>,
        shared: Arc<Mutex<SharedState>>,
        coordinators: Arc<Coordinators>,
    ) -> Self {
        Sender {
            transactional: config.transactional_id.is_some(),
            shared,
            coordinators,
            sequences: HashMap::new(),
            sequences_for: None,
            unacked: HashMap::new(),
            initializing: false,
            identity_stale: false,
            to_add: BTreeSet::new(),
            adding: false,
            cluster,
            acc: Accumulator::new(config.batch_size, config.linger),
            config,
            sticky: StickyPartitioner::default(),
            waiting: HashMap::new(),
            refreshing: HashSet::new(),
            in_flight: HashMap::new(),
            muted: HashSet::new(),
            flush_waiters: Vec::new(),
            dispatchers: HashMap::new(),
            events,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut commands_open = true;
        loop {
            let now = Instant::now();
            self.expire(now);
            let next = self.send_ready(now);
            if !self.flush_waiters.is_empty() && self.idle() {
                for w in self.flush_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            if !commands_open && self.idle() {
                break;
            }
            let sleep_until = next.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(Command::Send(rec, c)) => {
                        self.enqueue(rec, c, Instant::now());
                        // Take whatever else is queued without re-running the loop.
                        while let Ok(cmd) = commands.try_recv() {
                            match cmd {
                                Command::Send(rec, c) => self.enqueue(rec, c, Instant::now()),
                                Command::Flush(w) => self.flush_waiters.push(w),
                                Command::AbortUnsent(w) => self.abort_unsent(w),
                            }
                        }
                    }
                    Some(Command::Flush(w)) => self.flush_waiters.push(w),
                    Some(Command::AbortUnsent(w)) => self.abort_unsent(w),
                    None => {
                        commands_open = false;
                        self.flush_waiters.clear();
                    }
                },
                Some(ev) = events.recv() => self.handle_event(ev),
                _ = tokio::time::sleep_until(sleep_until.into()) => {}
            }
        }
    }

    fn idle(&self) -> bool {
        self.acc.is_empty()
            && self.waiting.is_empty()
            && self.in_flight.values().all(|n| *n == 0)
            && !self.adding
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails every record not sent yet, then answers `done` once nothing is
    /// in flight.
    fn abort_unsent(&mut self, done: oneshot::Sender<()>) {
        self.fail_unsent(Error::TransactionAborted);
        self.to_add.clear();
        self.flush_waiters.push(done);
    }

    /// Fails the records in the accumulator and those waiting for metadata.
    fn fail_unsent(&mut self, err: Error) {
        for b in self.acc.drain_all() {
            self.fail_batch(b, err.clone());
        }
        for (_, waiting) in self.waiting.drain() {
            for w in waiting {
                w.completion.complete(Err(err.clone()));
            }
        }
    }

    /// A record failed for good. Inside a transaction this makes the
    /// transaction abort-only (or the producer unusable when fenced).
    fn note_failure(&self, err: &Error) {
        if self.transactional {
            self.state().fail_transaction(err.clone());
        }
    }

    /// Fails a batch for good, remembering that its sequence numbers are
    /// now a gap the broker will not accept.
    fn fail_batch(&mut self, batch: ProducerBatch, err: Error) {
        let err = match err {
            Error::Kafka(k) if self.transactional && is_fencing_code(k.code) => Error::Fenced(k),
            other => other,
        };
        if let Some(sq) = batch.sequenced {
            self.acknowledged(&batch.tp, sq);
            if self.transactional {
                self.state().sequences_unresolved = true;
            } else if self.sequences_for == Some(sq.identity) {
                self.identity_stale = true;
            }
        }
        self.note_failure(&err);
        batch.fail(err);
    }

    /// Forgets a batch's sequence once it is written or failed.
    fn acknowledged(&mut self, tp: &TopicPartition, sq: Sequenced) {
        if self.sequences_for == Some(sq.identity) {
            if let Some(set) = self.unacked.get_mut(tp) {
                set.remove(&sq.base_sequence);
            }
        }
    }

    /// Whether an OUT_OF_ORDER_SEQUENCE_NUMBER for `batch` only reflects an
    /// earlier batch of its partition that failed and is being retried.
    fn behind_unacknowledged(&self, batch: &ProducerBatch) -> bool {
        batch.sequenced.is_some_and(|sq| {
            self.sequences_for == Some(sq.identity)
                && self
                    .unacked
                    .get(&batch.tp)
                    .is_some_and(|set| set.range(..sq.base_sequence).next().is_some())
        })
    }

    /// The identity to write batches with, or `None` when batches must wait:
    /// a non-transactional producer fetches one (or bumps its epoch after a
    /// sequence gap, once nothing is in flight).
    fn current_identity(&mut self) -> Option<ProducerIdentity> {
        let identity = self.state().identity;
        if self.transactional || (identity.is_some() && !self.identity_stale) {
            return identity;
        }
        if !self.initializing && self.in_flight.values().all(|n| *n == 0) {
            self.initializing = true;
            let current = identity.filter(|_| self.identity_stale);
            let coordinators = self.coordinators.clone();
            let events = self.events.clone();
            tokio::spawn(async move {
                let result = coordinators.init_producer_id(current).await;
                let _ = events.send(Event::ProducerId(result));
            });
        }
        None
    }

    /// Gives a batch its sequence numbers, unless it already has them under
    /// `identity` (a retry must be byte-identical to be deduplicated).
    fn assign_sequence(&mut self, batch: &mut ProducerBatch, identity: ProducerIdentity) {
        if batch.sequenced.is_some_and(|sq| sq.identity == identity) {
            return;
        }
        if self.sequences_for != Some(identity) {
            self.sequences.clear();
            self.unacked.clear();
            self.sequences_for = Some(identity);
        }
        let next = self.sequences.entry(batch.tp.clone()).or_insert(0);
        let base_sequence = *next;
        *next = increment_sequence(base_sequence, batch.len() as i32);
        self.unacked
            .entry(batch.tp.clone())
            .or_default()
            .insert(base_sequence);
        batch.set_sequence(Sequenced {
            identity,
            base_sequence,
            transactional: self.transactional,
        });
    }

    fn spawn_add_partitions(&mut self, identity: ProducerIdentity) {
        let partitions: Vec<TopicPartition> =
            std::mem::take(&mut self.to_add).into_iter().collect();
        self.adding = true;
        let coordinators = self.coordinators.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = coordinators.add_partitions(identity, &partitions).await;
            let _ = events.send(Event::PartitionsAdded { partitions, result });
        });
    }

    /// The metadata of `topic` when it is usable (known, with partitions).
    fn usable_topic(&self, topic: &str) -> Option<Arc<TopicMetadata>> {
        self.cluster
            .topic(topic)
            .filter(|t| !t.partitions.is_empty())
    }

    /// Takes a newly sent record. Records for one topic reach the
    /// accumulator in send order: while earlier records of the topic wait
    /// for metadata, a new one queues behind them, even when the (shared)
    /// metadata cache has meanwhile learned the topic; in that case the
    /// waiting records are released first, then the new one follows.
    fn enqueue(&mut self, rec: ProducerRecord, completion: Completion, now: Instant) {
        if self.waiting.contains_key(&rec.topic) && self.usable_topic(&rec.topic).is_some() {
            self.release_waiting(&rec.topic);
        }
        self.append(rec, completion, now);
    }

    /// Moves the records waiting for `topic`'s metadata into the
    /// accumulator, oldest first.
    fn release_waiting(&mut self, topic: &str) {
        let Some(waiting) = self.waiting.remove(topic) else {
            return;
        };
        for w in waiting {
            // Should the topic vanish from the cache midway, `append` parks
            // this record and, because `waiting` is then non-empty, every
            // later one behind it: order still holds.
            self.append(w.record, w.completion, w.since);
        }
    }

    /// Partitions a record and appends it to the accumulator, or parks it in
    /// `waiting` when the topic's metadata is unknown or older records of
    /// the topic are already parked there.
    fn append(&mut self, rec: ProducerRecord, completion: Completion, now: Instant) {
        let tm = if self.waiting.contains_key(&rec.topic) {
            None
        } else {
            self.usable_topic(&rec.topic)
        };
        let Some(tm) = tm else {
            let topic = rec.topic.clone();
            self.waiting
                .entry(topic.clone())
                .or_default()
                .push(Waiting {
                    record: rec,
                    completion,
                    since: now,
                });
            self.request_metadata(topic, Duration::ZERO);
            return;
        };
        let n = tm.partitions.len() as i32;
        let available = tm.available_partitions();
        let partition = match (rec.partition, &rec.key) {
            (Some(p), _) => {
                if p < 0 || p >= n {
                    let err = Error::Kafka(
                        KafkaError::new(
                            sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION,
                            Some(format!(
                                "partition {p} does not exist; topic has {n} partitions"
                            )),
                        )
                        .on(format!("topic '{}'", rec.topic)),
                    );
                    self.note_failure(&err);
                    completion.complete(Err(err));
                    return;
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => self.sticky.partition(&rec.topic, &available, n),
        };
        let sticky = rec.partition.is_none() && rec.key.is_none();
        let tp = TopicPartition {
            topic: rec.topic,
            partition,
        };
        let outcome = self.acc.append(
            tp.clone(),
            NewRecord {
                key: rec.key,
                value: rec.value,
                headers: rec.headers,
                timestamp: rec.timestamp.unwrap_or_else(now_ms),
            },
            completion,
            now,
        );
        if sticky && outcome.closed_previous {
            self.sticky
                .batch_closed(&tp.topic, tp.partition, &available, n);
        }
        if self.transactional {
            let state = self.state();
            // Transactions v2: Produce v12 adds the partition itself.
            if !state.tv2 && !state.added.contains(&tp) {
                drop(state);
                self.to_add.insert(tp);
            }
        }
    }

    fn request_metadata(&mut self, topic: String, delay: Duration) {
        if !self.refreshing.insert(topic.clone()) {
            return;
        }
        let cluster = self.cluster.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Err(e) = cluster
                .refresh_metadata(Some(std::slice::from_ref(&topic)))
                .await
            {
                tracing::debug!(%topic, error = %e, "metadata refresh failed");
            }
            let _ = events.send(Event::Metadata(vec![topic]));
        });
    }

    fn handle_event(&mut self, ev: Event) {
        match ev {
            Event::Metadata(topics) => {
                for topic in topics {
                    self.refreshing.remove(&topic);
                    if !self.waiting.contains_key(&topic) {
                        continue;
                    }
                    if self.usable_topic(&topic).is_some() {
                        self.release_waiting(&topic);
                        continue;
                    }
                    let Some(waiting) = self.waiting.remove(&topic) else {
                        continue;
                    };
                    // Refused by the broker's ACLs: no point in waiting.
                    let refused = self.cluster.topic(&topic).filter(|t| {
                        t.error_code == sluice_protocol::error::TOPIC_AUTHORIZATION_FAILED
                    });
                    if let Some(refused) = refused {
                        let err = Error::Kafka(
                            KafkaError::new(refused.error_code, None)
                                .on(format!("topic '{topic}'")),
                        );
                        self.note_failure(&err);
                        for w in waiting {
                            w.completion.complete(Err(err.clone()));
                        }
                        continue;
                    }
                    let now = Instant::now();
                    let mut still = Vec::new();
                    for w in waiting {
                        if now.duration_since(w.since) >= self.config.max_block {
                            let err = Error::Kafka(
                                KafkaError::new(
                                    sluice_protocol::error::UNKNOWN_TOPIC_OR_PARTITION,
                                    Some(format!(
                                        "topic not present in metadata after {} ms",
                                        self.config.max_block.as_millis()
                                    )),
                                )
                                .on(format!("topic '{topic}'")),
                            );
                            self.note_failure(&err);
                            w.completion.complete(Err(err));
                        } else {
                            still.push(w);
                        }
                    }
                    if !still.is_empty() {
                        self.waiting.insert(topic.clone(), still);
                        self.request_metadata(topic, self.config.retry_backoff);
                    }
                }
            }
            Event::ProducerId(result) => {
                self.initializing = false;
                match result {
                    Ok(identity) => {
                        self.state().identity = Some(identity);
                        self.identity_stale = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "InitProducerId failed");
                        self.fail_unsent(e);
                    }
                }
            }
            Event::PartitionsAdded { partitions, result } => {
                self.adding = false;
                match result {
                    Ok(()) => {
                        let mut state = self.state();
                        state.added.extend(partitions);
                        state.coordinator_involved = true;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "AddPartitionsToTxn failed");
                        self.note_failure(&e);
                    }
                }
            }
            Event::Produced {
                broker,
                batches,
                result,
            } => {
                if let Some(n) = self.in_flight.get_mut(&broker) {
                    *n = n.saturating_sub(1);
                }
                for b in &batches {
                    self.muted.remove(&b.tp);
                }
                self.handle_produced(batches, result);
            }
        }
    }

    fn handle_produced(
        &mut self,
        batches: Vec<ProducerBatch>,
        result: Result<Option<ProduceResponse>>,
    ) {
        let resp = match result {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                for b in batches {
                    if let Some(sq) = b.sequenced {
                        self.acknowledged(&b.tp, sq);
                    }
                    b.complete(-1, -1);
                }
                return;
            }
            Err(e) => {
                for b in batches {
                    self.retry_or_fail(b, e.clone());
                }
                return;
            }
        };
        let mut results: HashMap<(String, i32), PartitionResult> = HashMap::new();
        for t in &resp.responses {
            for p in &t.partition_responses {
                results.insert(
                    (t.name.0.to_string(), p.index),
                    (
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                        p.base_offset,
                        p.log_append_time_ms,
                    ),
                );
            }
        }
        for b in batches {
            match results.remove(&(b.tp.topic.clone(), b.tp.partition)) {
                None => {
                    let err =
                        Error::Protocol(format!("produce response has no result for {}", b.tp));
                    self.fail_batch(b, err);
                }
                Some((0, _, base, log_append)) => {
                    if let Some(sq) = b.sequenced {
                        self.acknowledged(&b.tp, sq);
                    }
                    b.complete(base, log_append)
                }
                // Written before; the broker no longer knows the offset.
                Some((sluice_protocol::error::DUPLICATE_SEQUENCE_NUMBER, ..)) => {
                    if let Some(sq) = b.sequenced {
                        self.acknowledged(&b.tp, sq);
                    }
                    b.complete(-1, -1)
                }
                Some((code, msg, _, _)) => {
                    let err = Error::Kafka(KafkaError::new(code, msg).on(b.tp.to_string()));
                    self.retry_or_fail(b, err);
                }
            }
        }
    }

    fn retry_or_fail(&mut self, mut batch: ProducerBatch, err: Error) {
        let now = Instant::now();
        let refresh = match &err {
            Error::Kafka(k) => needs_metadata_refresh(k.code),
            _ => err.is_retriable(),
        };
        if refresh {
            self.request_metadata(batch.tp.topic.clone(), Duration::ZERO);
        }
        let expired = now.duration_since(batch.created) >= self.config.delivery_timeout;
        let retriable = err.is_retriable()
            || (err.code() == Some(sluice_protocol::error::OUT_OF_ORDER_SEQUENCE_NUMBER)
                && self.behind_unacknowledged(&batch));
        if !retriable || batch.attempts > self.config.retries || expired {
            tracing::debug!(tp = %batch.tp, error = %err, "failing batch");
            self.fail_batch(batch, err);
            return;
        }
        tracing::debug!(tp = %batch.tp, error = %err, attempt = batch.attempts, "retrying batch");
        batch.attempts += 1;
        self.acc.reenqueue(batch, now + self.config.retry_backoff);
    }

    fn expire(&mut self, now: Instant) {
        for b in self.acc.expire(now, self.config.delivery_timeout) {
            self.fail_batch(b, Error::DeliveryTimeout(self.config.delivery_timeout));
        }
    }

    /// Sends every batch that is ready; returns when to look again.
    fn send_ready(&mut self, now: Instant) -> Option<Instant> {
        if self.transactional {
            let failed = self.state().phase_error();
            if let Some(err) = failed {
                // Nothing more of this transaction can commit.
                self.fail_unsent(err);
                return None;
            }
        }
        if self.acc.is_empty() {
            return None;
        }
        let identity = if self.config.enable_idempotence {
            // Batches wait for InitProducerId (its event wakes the loop).
            Some(self.current_identity()?)
        } else {
            None
        };
        if let (Some(identity), false) = (identity, self.to_add.is_empty() || self.adding) {
            self.spawn_add_partitions(identity);
        }
        let tv2 = self.transactional && self.state().tv2;
        let added = if self.transactional && !tv2 {
            self.state().added.clone()
        } else {
            HashSet::new()
        };
        let flushing = !self.flush_waiters.is_empty();
        let (ready, mut next) = self.acc.ready(now, flushing);
        let mut by_broker: BTreeMap<i32, Vec<ProducerBatch>> = BTreeMap::new();
        let guarantee_order = self.config.max_in_flight == 1;
        for tp in ready {
            if guarantee_order && self.muted.contains(&tp) {
                // Its previous batch is in flight (perhaps to a former
                // leader); a retry of that one must go first.
                continue;
            }
            if self.transactional && !tv2 && !added.contains(&tp) {
                // Waits for AddPartitionsToTxn.
                continue;
            }
            let Some(leader) = self.cluster.leader(&tp.topic, tp.partition) else {
                self.request_metadata(tp.topic.clone(), Duration::ZERO);
                let retry = now + self.config.retry_backoff;
                next = Some(next.map_or(retry, |n| n.min(retry)));
                continue;
            };
            // All batches for one broker in this round share one request.
            if self.in_flight.get(&leader).copied().unwrap_or(0) >= self.config.max_in_flight {
                continue;
            }
            let Some(mut batch) = self.acc.drain(&tp) else {
                continue;
            };
            if batch.retry_at.is_none() {
                // This batch is now closed: move the sticky partition on.
                if let Some(tm) = self.cluster.topic(&tp.topic) {
                    self.sticky.batch_closed(
                        &tp.topic,
                        tp.partition,
                        &tm.available_partitions(),
                        tm.partitions.len() as i32,
                    );
                }
            }
            if let Some(identity) = identity {
                self.assign_sequence(&mut batch, identity);
            }
            if let Err(e) = batch.encode(self.config.compression.codec()) {
                self.fail_batch(batch, e);
                continue;
            }
            if guarantee_order {
                self.muted.insert(tp);
            }
            by_broker.entry(leader).or_default().push(batch);
        }
        if tv2 && !by_broker.is_empty() {
            // The broker adds the partitions as it takes the batches: from
            // now on the transaction must be ended with EndTxn.
            self.state().coordinator_involved = true;
        }
        for (broker, batches) in by_broker {
            *self.in_flight.entry(broker).or_default() += 1;
            self.spawn_produce(broker, batches, tv2);
        }
        next
    }

    /// A transactional producer names its transactional id; without
    /// transactions v2 it stays below Produce v12, which the broker would
    /// take as adding the partition to the transaction.
    fn spawn_produce(&mut self, broker: i32, batches: Vec<ProducerBatch>, tv2: bool) {
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        for b in &batches {
            topics.entry(b.tp.topic.as_str()).or_default().push(
                PartitionProduceData::default()
                    .with_index(b.tp.partition)
                    .with_records(b.encoded.clone()),
            );
        }
        let req = ProduceRequest::default()
            .with_transactional_id(
                self.config
                    .transactional_id
                    .as_ref()
                    .map(|id| TransactionalId(StrBytes::from_string(id.clone()))),
            )
            .with_acks(self.config.acks.as_i16())
            .with_timeout_ms(self.config.ack_timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_data(ps)
                    })
                    .collect(),
            );
        let max_version = if self.transactional && !tv2 {
            TV1_PRODUCE_MAX
        } else {
            i16::MAX
        };
        let job = ProduceJob {
            req,
            max_version,
            batches,
        };
        let (cluster, acks, events) = (self.cluster.clone(), self.config.acks, self.events.clone());
        let queue = self.dispatchers.entry(broker).or_insert_with(|| {
            let (queue, jobs) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(cluster, broker, acks, events, jobs));
            queue
        });
        // The dispatcher lives as long as the sender holds its queue.
        let _ = queue.send(job);
    }
}

/// A produce request for one broker, with the batches it carries.
struct ProduceJob {
    req: ProduceRequest,
    max_version: i16,
    batches: Vec<ProducerBatch>,
}

/// Puts one broker's produce requests on the wire in the order the sender
/// built them, so each partition's batches arrive in sequence order (a
/// task per request could overtake its predecessor, and the broker would
/// refuse the overtaking batch as out of order), and reports each answer
/// as it comes.
async fn dispatch(
    cluster: Arc<Cluster>,
    broker: i32,
    acks: Acks,
    events: mpsc::UnboundedSender<Event>,
    mut jobs: mpsc::UnboundedReceiver<ProduceJob>,
) {
    while let Some(ProduceJob {
        req,
        max_version,
        batches,
    }) = jobs.recv().await
    {
        let report = |batches, result| {
            let _ = events.send(Event::Produced {
                broker,
                batches,
                result,
            });
        };
        let conn = match cluster.broker_connection(broker).await {
            Ok(conn) => conn,
            Err(e) => {
                report(batches, Err(e));
                continue;
            }
        };
        if acks == Acks::None {
            report(batches, conn.send_no_response(req).await.map(|()| None));
            continue;
        }
        match conn.submit_capped(req, max_version) {
            Err(e) => report(batches, Err(e)),
            Ok(response) => {
                let events = events.clone();
                tokio::spawn(async move {
                    let result = response.await.map(Some);
                    let _ = events.send(Event::Produced {
                        broker,
                        batches,
                        result,
                    });
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_acks_and_compression() {
        assert_eq!("all".parse::<Acks>().unwrap(), Acks::All);
        assert_eq!("-1".parse::<Acks>().unwrap().as_i16(), -1);
        assert_eq!("0".parse::<Acks>().unwrap(), Acks::None);
        assert!("2".parse::<Acks>().is_err());
        for c in ["none", "gzip", "snappy", "lz4", "zstd"] {
            assert_eq!(c.parse::<CompressionType>().unwrap().name(), c);
        }
        assert!("brotli".parse::<CompressionType>().is_err());
    }

    fn topic(name: &str, leader: i32) -> TopicMetadata {
        TopicMetadata {
            name: name.to_string(),
            topic_id: [0; 16],
            is_internal: false,
            error_code: 0,
            partitions: vec![crate::cluster::PartitionInfo {
                partition: 0,
                leader,
                leader_epoch: 0,
                replicas: vec![leader],
                isr: vec![leader],
                offline_replicas: vec![],
                error_code: 0,
            }],
        }
    }

    /// A sender on a cluster handle that knows no topics and whose brokers
    /// refuse connections; "late" counts as being refreshed already, so
    /// enqueueing spawns no metadata task.
    fn sender(config: ProducerConfig) -> (Sender, mpsc::UnboundedReceiver<Event>) {
        let mut metadata = crate::cluster::ClusterMetadata::default();
        for id in [1, 2] {
            metadata.brokers.insert(
                id,
                crate::cluster::BrokerInfo {
                    id,
                    host: "127.0.0.1".into(),
                    port: 1,
                    rack: None,
                },
            );
        }
        let (etx, erx) = mpsc::unbounded_channel();
        let cluster = Cluster::offline(metadata);
        let coordinators = Arc::new(Coordinators::new(
            cluster.clone(),
            config.transactional_id.clone(),
            config.transaction_timeout,
            config.max_block,
            config.retry_backoff,
        ));
        let shared = Arc::new(Mutex::new(SharedState::new()));
        let mut s = Sender::new(cluster, config, etx, shared, coordinators);
        s.refreshing.insert("late".to_string());
        (s, erx)
    }

    fn send(s: &mut Sender, i: usize) -> oneshot::Receiver<Result<RecordMetadata>> {
        let (tx, rx) = oneshot::channel();
        let rec = ProducerRecord::new("late", format!("record {i}")).with_partition(0);
        s.enqueue(rec, Completion::Oneshot(tx), Instant::now());
        rx
    }

    fn values(b: &ProducerBatch) -> Vec<String> {
        b.records
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect()
    }

    fn late0() -> TopicPartition {
        TopicPartition {
            topic: "late".into(),
            partition: 0,
        }
    }

    fn expected(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("record {i}")).collect()
    }

    #[test]
    fn records_sent_after_the_cache_learns_the_topic_queue_behind_waiting_ones() {
        let (mut s, _events) = sender(ProducerConfig::default());
        let _rx0 = send(&mut s, 0);
        assert_eq!(s.waiting["late"].len(), 1);
        assert!(s.acc.is_empty());
        // Someone else's refresh teaches the shared cache the topic before
        // this producer's own metadata request reports back.
        s.cluster.cache_topic(topic("late", 1));
        let _rxs: Vec<_> = (1..10).map(|i| send(&mut s, i)).collect();
        assert!(s.waiting.is_empty());
        let batch = s.acc.drain(&late0()).unwrap();
        assert_eq!(values(&batch), expected(10));
        // The producer's own refresh reporting back later changes nothing.
        s.handle_event(Event::Metadata(vec!["late".into()]));
        assert!(s.acc.is_empty() && s.waiting.is_empty() && s.refreshing.is_empty());
    }

    #[test]
    fn waiting_records_go_first_when_metadata_arrives() {
        let (mut s, _events) = sender(ProducerConfig::default());
        let _rxs: Vec<_> = (0..3).map(|i| send(&mut s, i)).collect();
        assert_eq!(s.waiting["late"].len(), 3);
        s.cluster.cache_topic(topic("late", 1));
        s.handle_event(Event::Metadata(vec!["late".into()]));
        assert!(s.waiting.is_empty());
        let _more: Vec<_> = (3..6).map(|i| send(&mut s, i)).collect();
        let batch = s.acc.drain(&late0()).unwrap();
        assert_eq!(values(&batch), expected(6));
    }

    #[tokio::test]
    async fn with_one_in_flight_a_retried_batch_is_not_overtaken() {
        let (mut s, mut events) = sender(ProducerConfig {
            enable_idempotence: false,
            max_in_flight: 1,
            batch_size: 100,
            linger: Duration::ZERO,
            retry_backoff: Duration::from_millis(1),
            ..ProducerConfig::default()
        });
        s.cluster.cache_topic(topic("late", 1));
        // Two batches of one record each (a record does not fit twice).
        let big = |i: usize| {
            ProducerRecord::new("late", format!("record {i} {}", "x".repeat(40))).with_partition(0)
        };
        for i in 0..2 {
            let (tx, _rx) = oneshot::channel();
            s.enqueue(big(i), Completion::Oneshot(tx), Instant::now());
        }
        s.send_ready(Instant::now());
        assert_eq!(s.acc.len(), 1, "first batch in flight");
        // The leader moves: the second batch would go to broker 2, but the
        // first one (to broker 1, which refuses it) must be retried first.
        s.cluster.cache_topic(topic("late", 2));
        s.send_ready(Instant::now());
        assert_eq!(s.acc.len(), 1, "second batch held back");
        let ev = events.recv().await.unwrap();
        s.handle_event(ev);
        assert_eq!(s.acc.len(), 2, "first batch back for a retry");
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.send_ready(Instant::now());
        assert_eq!(s.acc.len(), 1, "the retry went out, to the new leader");
        let left = s.acc.drain(&late0()).unwrap();
        assert_eq!(left.attempts, 0);
        assert!(values(&left)[0].starts_with("record 1 "));
    }

    #[tokio::test]
    async fn idempotent_batches_keep_their_sequence_across_retries() {
        let (mut s, mut events) = sender(ProducerConfig {
            batch_size: 100,
            linger: Duration::ZERO,
            retry_backoff: Duration::from_millis(1),
            ..ProducerConfig::default()
        });
        s.state().identity = Some(ProducerIdentity { id: 7, epoch: 2 });
        s.cluster.cache_topic(topic("late", 1));
        for i in 0..2 {
            let (tx, _rx) = oneshot::channel();
            let rec = ProducerRecord::new("late", format!("record {i} {}", "x".repeat(40)))
                .with_partition(0);
            s.enqueue(rec, Completion::Oneshot(tx), Instant::now());
        }
        // Both batches go out (one per round) and fail: broker 1 refuses
        // connections.
        s.send_ready(Instant::now());
        s.send_ready(Instant::now());
        for _ in 0..2 {
            let ev = events.recv().await.unwrap();
            s.handle_event(ev);
        }
        let first = s.acc.drain(&late0()).unwrap();
        let second = s.acc.drain(&late0()).unwrap();
        // The retry will say OUT_OF_ORDER for the second batch only
        // because the first one is being retried.
        assert!(!s.behind_unacknowledged(&first));
        assert!(s.behind_unacknowledged(&second));
        for (batch, base) in [(first, 0), (second, 1)] {
            let sq = batch.sequenced.unwrap();
            assert_eq!((sq.identity.id, sq.identity.epoch), (7, 2));
            assert_eq!(sq.base_sequence, base);
            let bytes = batch.encoded.clone().unwrap();
            let header = sluice_protocol::batch::BatchHeader::parse(&bytes).unwrap();
            assert_eq!(header.producer_id(), 7);
            assert_eq!(header.producer_epoch(), 2);
            assert_eq!(header.base_sequence(), base);
            assert!(!header.is_transactional());
        }
    }

    #[test]
    fn sequences_wrap_to_zero_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX - 2, 3), 0);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 5), 3);
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let cluster = Cluster::offline(crate::cluster::ClusterMetadata::default());
        let leader_only = ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::default()
        };
        assert!(matches!(
            Producer::new(cluster.clone(), leader_only.clone()),
            Err(Error::Config(_))
        ));
        let plain = ProducerConfig {
            enable_idempotence: false,
            ..leader_only
        };
        assert!(Producer::new(cluster, plain).is_ok());
    }

    #[tokio::test]
    async fn delivery_future_reports_closed_when_dropped() {
        let (tx, rx) = oneshot::channel::<Result<RecordMetadata>>();
        drop(tx);
        let res = DeliveryFuture { rx }.await;
        assert!(matches!(res, Err(Error::Closed)));
    }
}
